"""Three worker processes share per-host limits through Redis.

The example starts a local server answering on two hosts (127.0.0.1 and 127.0.0.2), then three
worker processes. Each worker is an aiohttp ``ThrottledClientSession`` whose throttler is a
per-host ``ThrottlerMap`` with ``backend=RedisBackend(...)``, and sends 10 requests to each
host. The limit, 4 requests per 0.5 s per host, holds at the server for the three workers
together: the output shows the arrivals per host, the most any 0.5 s window held, and when
each host's requests arrived.

Needs Redis at ``REDIS_URL`` (default ``redis://127.0.0.1:6379``). Run::

    python examples/redis_workers.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import redis.asyncio as aioredis

from throttled_http import ThrottlerMap
from throttled_http.aiohttp import ThrottledClientSession
from throttled_http.redis import RedisBackend
from throttled_http.testing import RecordingServer

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
WORKERS = 3
PER_HOST = 10
LIMIT, PERIOD = 4, 0.5


async def worker(prefix: str, urls: list[str]) -> None:
    """One process of the fleet: its own session, limits shared through Redis."""
    backend = RedisBackend(REDIS_URL, prefix)
    hosts = ThrottlerMap(LIMIT, PERIOD, backend=backend)
    async with ThrottledClientSession(throttler=hosts) as session:

        async def fetch(url: str) -> None:
            async with session.get(url) as response:
                await response.read()

        await asyncio.gather(*(fetch(url) for url in urls * PER_HOST))
    await backend.aclose()


async def main() -> None:
    prefix = f"example:{uuid.uuid4().hex}:"  # keys expire by themselves; deleted below anyway
    async with RecordingServer() as server:
        urls = [server.url("/", host=0), server.url("/", host=1)]
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--worker", prefix, *urls
            )
            for _ in range(WORKERS)
        ]
        codes = [await proc.wait() for proc in procs]
        if any(codes):
            raise SystemExit(f"a worker failed: exit codes {codes}")
        start = min(a.time for a in server.arrivals)
        for host in ("127.0.0.1", "127.0.0.2"):
            times = sorted(a.time - start for a in server.arrivals if a.host == host)
            print(
                f"{host}: {len(times)} requests from {WORKERS} processes, "
                f"at most {server.max_in_window(PERIOD, host=host)} in any {PERIOD} s "
                f"window (limit {LIMIT})"
            )
            print("   arrivals (s):", " ".join(f"{t:.2f}" for t in times))
            assert server.max_in_window(PERIOD, host=host) <= LIMIT
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(worker(sys.argv[2], sys.argv[3:]))
    else:
        asyncio.run(main())
