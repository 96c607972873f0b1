"""Polite scraping: one limit per registrable domain, a stricter one for a fragile site.

Offline: the script starts its own aiohttp web server on 127.0.0.1 and 127.0.0.2 (two
"sites"), fetches a list of URLs from both at once through a plain ``aiohttp`` session,
wrapping each request in ``async with hosts.limit(url):``, and prints what each site saw.

Run::

    python examples/scrape_per_domain.py     # about 3 seconds
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from throttled_http import ThrottlerMap
from throttled_http.testing import RecordingServer

PAGES_PER_SITE = 8


async def fetch(session: aiohttp.ClientSession, hosts: ThrottlerMap, url: str) -> int:
    """Fetch one page under its domain's limit; the entry counts until the body is read."""
    async with hosts.limit(url), session.get(url) as response:
        await response.read()
        return response.status


async def main() -> None:
    # 5 requests per second per domain by default; the fragile site gets 2 per second.
    hosts = ThrottlerMap(
        rates="5/s", scope="domain", overrides={"127.0.0.2": "2/s"}, max_keys=1_000
    )
    for url in ("https://www.bbc.co.uk/news", "https://news.bbc.co.uk/", "http://127.0.0.2/"):
        print(f"{url:<30} -> key {hosts.key_for(url)!r}")
    print()

    async with (
        RecordingServer(("127.0.0.1", "127.0.0.2")) as server,
        aiohttp.ClientSession() as session,
    ):
        urls = [
            server.url(f"/?page={page}", host=site)
            for page in range(PAGES_PER_SITE)
            for site in (0, 1)
        ]
        start = time.monotonic()
        statuses = await asyncio.gather(*(fetch(session, hosts, url) for url in urls))
        elapsed = time.monotonic() - start

    assert all(status == 200 for status in statuses), statuses
    print(f"fetched {len(urls)} pages in {elapsed:.2f} s\n")
    print(f"{'site':<12} {'limit':>6} {'pages':>6} {'span':>7} {'max in any 1 s':>15}")
    for site in server.hosts:
        times = sorted(a.time for a in server.arrivals_at(site))
        limiter = hosts.throttler_for(f"http://{site}/")
        assert limiter is not None
        limit = limiter.rates[0]
        seen = server.max_in_window(1.0, site)
        assert seen <= limit.limit, (site, seen)
        print(f"{site:<12} {limit!s:>6} {len(times):>6} {times[-1] - times[0]:>6.2f}s {seen:>15}")
    print(f"\n{hosts!r}")


if __name__ == "__main__":
    asyncio.run(main())
