"""An aiohttp API client under a quota, offline: a plain session gets 429s, ours gets none.

The script starts its own aiohttp web server (a RecordingServer) playing an API that allows
5 requests per second and answers ``429 Too Many Requests`` with ``Retry-After`` beyond
that. It sends 12 requests at once twice: through a plain ``aiohttp.ClientSession``, then
through ``ThrottledClientSession(rate_limit=5, period=1.0)``, and prints what the server saw.

Run::

    python examples/aiohttp_api_client.py     # about 3 seconds
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from throttled_http import Rate
from throttled_http.aiohttp import ThrottledClientSession
from throttled_http.testing import RecordingServer

REQUESTS = 12
QUOTA = Rate(5, 1.0)


async def fetch_all(session: aiohttp.ClientSession | ThrottledClientSession, url: str) -> list[int]:
    """GET ``url`` REQUESTS times at once; the statuses."""

    async def one(item: int) -> int:
        async with session.get(url, params={"item": item}) as response:
            await response.read()
            return response.status

    return await asyncio.gather(*(one(item) for item in range(REQUESTS)))


async def main() -> None:
    async with RecordingServer(latency=0.02, server_limit=QUOTA) as server:
        url = server.url("/")

        async with aiohttp.ClientSession() as plain:
            statuses = await fetch_all(plain, url)
        print(f"plain ClientSession:     {statuses.count(429):2} of {REQUESTS} refused (429)")
        assert statuses.count(429) > 0

        await asyncio.sleep(QUOTA.period)  # let the server's window empty
        server.reset()
        start = time.monotonic()
        async with ThrottledClientSession(rate_limit=QUOTA.limit, period=QUOTA.period) as session:
            statuses = await fetch_all(session, url)
        elapsed = time.monotonic() - start
        busiest = server.max_in_window(QUOTA.period)
        print(f"ThrottledClientSession:  {statuses.count(429):2} of {REQUESTS} refused (429)")
        print(f"  took {elapsed:.1f} s; busiest {QUOTA.period:g} s window at the server: {busiest}")
        first = server.arrivals[0].time
        print("  arrivals (s):", " ".join(f"{a.time - first:.2f}" for a in server.arrivals))
        assert statuses == [200] * REQUESTS
        assert busiest <= QUOTA.limit


if __name__ == "__main__":
    asyncio.run(main())
