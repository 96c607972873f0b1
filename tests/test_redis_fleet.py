"""Fleet tests of throttled_http.redis: real OS processes sharing a private Redis.

Issue 18's three parts, each against a ``redis-server`` of the test's own
(:class:`~test_redis_faults.PrivateRedis`), so its ``INFO commandstats`` counts only this
test's calls and a worker may be killed without touching the shared server: a head held
back by entries open in other processes does not poll; the entries of a worker killed
with ``SIGKILL`` come back within its lease plus a period; ``replicas=`` waits for a
replica's acknowledgement, and fails within its timeout without one. They run on the real
clock and bound durations and counts only with generous margins; the figures are
``benchmarks/bench_redis.py``'s (``--polling``, ``--leases``, ``--replicas``).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from test_redis_faults import PrivateRedis

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.realclock


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A private redis-server, started now and killed at the end."""
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


async def script_calls(server: PrivateRedis) -> int:
    """EVALSHA and EVAL calls the server ran since its start (or the last reset)."""
    client = server.client()
    stats: dict[str, Any] = await client.info("commandstats")
    await client.aclose()
    return sum(
        int(stats[name]["calls"]) for name in ("cmdstat_evalsha", "cmdstat_eval") if name in stats
    )


ENTRY_WORKER = """
import asyncio, sys, time
from throttled_http.redis import RedisThrottler

url, key, start, duration, tasks = sys.argv[1:]

async def main():
    throttler = RedisThrottler(40, 0.5, redis=url, key=key)
    await asyncio.sleep(max(0.0, float(start) - time.time()))
    loop = asyncio.get_running_loop()
    end = loop.time() + float(duration)
    async def worker():
        while loop.time() < end:
            try:
                async with throttler.entry(timeout=max(0.0, end - loop.time())):
                    await asyncio.sleep(0.2)  # the response takes 200 ms
            except TimeoutError:
                return
    await asyncio.gather(*(worker() for _ in range(int(tasks))))
    print(throttler.redis_statistics().admitted)
    await throttler.aclose()

asyncio.run(main())
"""


async def test_head_blocked_by_entries_open_elsewhere_does_not_poll(
    private_redis: PrivateRedis,
) -> None:
    """4 processes whose entries stay open 200 ms make few script calls per admission: a
    head held back by open entries sleeps a period, and settles do not wake it early."""
    start = time.time() + 1.5  # let every interpreter start before the race begins
    key = uuid.uuid4().hex
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            ENTRY_WORKER,
            private_redis.url,
            key,
            repr(start),
            "2.0",
            "15",
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [await proc.communicate() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    admitted = sum(int(out.decode()) for out, _ in outputs)
    calls = await script_calls(private_redis)
    assert admitted >= 10
    # Admit calls plus settle calls, per admission: polling every period / rate_limit
    # (12.5 ms) made 1.0 here; a head that sleeps a period makes about 0.3.
    assert calls / admitted < 0.7, (calls, admitted)
