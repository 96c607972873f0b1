"""A polite aiohttp crawler, offline: each site at its own pace, one request at a time.

The script starts a small two-site web on 127.0.0.1 and 127.0.0.2 (a RecordingServer with
extra routes): every page links to two more, some on the other site. The crawler follows
links breadth-first with 8 workers through one ``ThrottledClientSession``: at most 4
requests per second and one at a time per site by default, and 8 per second for the
second site (an override). The sites never see more, and neither waits for the other.

Run::

    python examples/aiohttp_crawler.py     # about 3 seconds
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

from aiohttp import web

from throttled_http import ThrottlerMap
from throttled_http.aiohttp import ThrottledClientSession
from throttled_http.testing import RecordingServer

PAGES = 12  # pages per site
WORKERS = 8
LINK = re.compile(r'href="([^"]+)"')


def site() -> list[web.RouteDef]:
    """Routes of the two-site web: /page/{n} links to pages 2n+1 and 2n+2."""

    async def page(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        here = request.url.host or "127.0.0.1"
        there = "127.0.0.2" if here == "127.0.0.1" else "127.0.0.1"
        links = [
            request.url.with_host(here if child % 3 else there).with_path(f"/page/{child}")
            for child in (2 * n + 1, 2 * n + 2)
            if child < PAGES
        ]
        body = "".join(f'<a href="{link}">page</a>\n' for link in links)
        await asyncio.sleep(0.02)  # the site takes a little time to answer
        return web.Response(text=body, content_type="text/html")

    return [web.get("/page/{n}", page)]


async def crawl(session: ThrottledClientSession, seeds: list[str]) -> int:
    """Fetch every page reachable from ``seeds`` once; the number fetched."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    seen = set(seeds)
    for seed in seeds:
        queue.put_nowait(seed)

    async def worker() -> None:
        while True:
            url = await queue.get()
            try:
                async with session.get(url) as response:
                    html = await response.text()
                for link in LINK.findall(html):
                    if link not in seen:
                        seen.add(link)
                        queue.put_nowait(link)
            finally:
                queue.task_done()

    workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    await queue.join()
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return len(seen)


async def main() -> None:
    async with RecordingServer(routes=site()) as server:
        politeness = ThrottledClientSession(
            throttler=ThrottlerMap(4, 1.0, max_concurrency=1, overrides={"127.0.0.2": "8/s"})
        )
        async with politeness as session:
            start = time.monotonic()
            fetched = await crawl(session, [server.url("/page/0", host=h) for h in (0, 1)])
            elapsed = time.monotonic() - start
    per_host = Counter(a.host for a in server.arrivals)
    print(f"crawled {fetched} pages in {elapsed:.1f} s")
    for host, limit in (("127.0.0.1", 4), ("127.0.0.2", 8)):
        busiest = server.max_in_window(1.0, host=host)
        at_once = server.max_in_flight[host]
        print(
            f"  {host}: {per_host[host]:2} requests, busiest 1 s window {busiest} "
            f"(limit {limit}), at most {at_once} at once"
        )
        assert busiest <= limit
        assert at_once == 1
    assert fetched == 2 * PAGES


if __name__ == "__main__":
    asyncio.run(main())
