"""An httpx API client under a quota, offline: no 429, two hosts side by side.

The script starts its own aiohttp web server on 127.0.0.1 and 127.0.0.2 (two "APIs"). Each
enforces 5 requests per second per host and answers ``429 Too Many Requests`` to anything
beyond. An ``httpx.AsyncClient`` whose transport is a
:class:`~throttled_http.httpx.ThrottledTransport` sends 30 requests at once, half to each
host, through a chain of redirects on some of them; every hop waits its turn, so the
servers never refuse one.

Run::

    python examples/httpx_api_client.py     # about 3 seconds
"""

from __future__ import annotations

import asyncio
import time

import httpx

from throttled_http import Rate, ThrottlerMap
from throttled_http.httpx import ThrottledTransport
from throttled_http.testing import RecordingServer

REQUESTS = 30


async def main() -> None:
    async with RecordingServer(latency=0.05, server_limit=Rate(5, 1.0)) as server:
        # 5 per second per host, at most 3 responses open per host at once.
        transport = ThrottledTransport(throttler=ThrottlerMap(5, 1.0, max_concurrency=3))
        async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
            # Every third request takes one redirect: 2 hops, both throttled.
            paths = ["/redirect/1" if i % 3 == 0 else f"/?item={i}" for i in range(REQUESTS)]
            urls = [server.url(path, host=i % 2) for i, path in enumerate(paths)]
            start = time.monotonic()
            responses = await asyncio.gather(*(client.get(url) for url in urls))
            elapsed = time.monotonic() - start

        statuses = sorted({r.status_code for r in responses})
        print(f"{REQUESTS} requests, {len(server.arrivals)} hops, in {elapsed:.2f} s")
        print(f"final statuses: {statuses}")
        for host in server.hosts:
            arrivals = server.arrivals_at(host)
            print(
                f"  {host}: {len(arrivals):2d} arrivals, at most "
                f"{server.max_in_window(1.0, host)} in any 1 s window (limit 5), "
                f"{server.rejected.get(host, 0)} refused with 429"
            )
        if statuses != [200] or sum(server.rejected.values()) != 0:
            raise SystemExit("the server refused a request: the limit was not kept")
        if any(server.max_in_window(1.0, host) > 5 for host in server.hosts):
            raise SystemExit("a host saw more than 5 requests in a second")


if __name__ == "__main__":
    asyncio.run(main())
