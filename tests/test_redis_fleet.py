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

from throttled_http import ThrottlerBackendError
from throttled_http.redis import RedisThrottler

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

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
from throttled_http import ThrottlerBackendError
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


HOLDER = """
import asyncio, sys
from throttled_http import ThrottlerBackendError
from throttled_http.redis import RedisThrottler

url, key = sys.argv[1:]

async def main():
    throttler = RedisThrottler(10, 0.5, redis=url, key=key, lease_timeout=1.0)
    entries = [await throttler.open_entry() for _ in range(10)]  # never settled
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_killed_workers_entries_come_back_within_lease_and_period(
    private_redis: PrivateRedis,
) -> None:
    """A worker that holds the whole limit open renews its leases while alive; killed with
    SIGKILL, its entries come back within lease_timeout + period, not open_timeout."""
    key = uuid.uuid4().hex
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, private_redis.url, key, stdout=asyncio.subprocess.PIPE
    )
    survivor = RedisThrottler(10, 0.5, redis=private_redis.url, key=key, lease_timeout=1.0)
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
        await asyncio.sleep(2.0)  # two leases: held only if they were renewed
        assert not await survivor.try_acquire()
        proc.kill()
        await proc.wait()
        killed = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(survivor.acquire() for _ in range(10))), 30)
        # Within one lease (1 s) plus one period (0.5 s), with a wide margin for load;
        # open_timeout (60 s) bounded it before.
        assert time.monotonic() - killed < 1.5 + 2.0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await survivor.aclose()


async def test_renewal_never_moves_a_settled_stamp(private_redis: PrivateRedis) -> None:
    """Renewals keep an open entry scored in the future and leave a settled one where
    its settle stamped it."""
    client = private_redis.client()
    throttler = RedisThrottler(
        rates=("10/0.5s", "1000000/60s"), redis=client, key="r", lease_timeout=0.3
    )
    assert throttler.lease_timeout == 0.3
    kept = await throttler.open_entry()
    settled = await throttler.open_entry()
    async with throttler.entry():
        pass  # its settle has reached Redis when the block ends
    settled.settle()
    await asyncio.sleep(0.9)  # three leases, nine renewals
    seconds, micros = await client.time()
    now = float(seconds) + float(micros) / 1e6
    rows = await client.zrange(throttler.redis_keys[0], 0, -1, withscores=True)
    scores = sorted(float(row[1]) / 1e6 for row in rows)
    assert len(scores) == 3
    assert scores[1] < now - 0.8  # the two settled stamps did not move
    assert now < scores[2] <= now + 0.3 + 0.05  # the open one is a lease ahead
    kept.close()
    settled.close()
    await throttler.aclose()
    await client.aclose()


async def wait_for_replica(primary: PrivateRedis, replica: PrivateRedis) -> None:
    """Wait until ``replica`` has synced with ``primary`` (its link is up)."""
    client = replica.client()
    deadline = time.monotonic() + 20
    while (await client.info("replication")).get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica never synced"
        await asyncio.sleep(0.05)
    await client.aclose()


async def test_replicas_waits_for_acknowledgement(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """replicas=1: an admission returns only once the replica holds it; without a replica
    it raises ThrottlerBackendError within command_timeout, and admits nothing."""
    primary = private_redis.client()
    await primary.config_set("repl-diskless-sync-delay", 0)  # sync at once, not in 5 s
    await primary.aclose()
    replica = PrivateRedis()
    # --dir: the replica writes the primary's snapshot there.
    replica.start("--replicaof", "127.0.0.1", str(private_redis.port), "--dir", str(tmp_path))
    throttler = None
    try:
        await wait_for_replica(private_redis, replica)
        # A generous command_timeout (WAIT gets half of it): a loaded machine may take a
        # while to replicate the first write after the link came up.
        throttler = RedisThrottler(
            rates=("10/0.5s", "1000000/60s"),
            redis=private_redis.url,
            key="w",
            replicas=1,
            command_timeout=4.0,
        )
        entry = await asyncio.wait_for(throttler.open_entry(), 10)
        mirror = replica.client()
        try:
            # Read at once from the replica: WAIT made the admission reach it first.
            assert await mirror.zcard(throttler.redis_keys[0]) == 1
        finally:
            await mirror.aclose()
        client = private_redis.client()
        try:
            stats: dict[str, Any] = await client.info("commandstats")
        finally:
            await client.aclose()
        assert int(stats["cmdstat_wait"]["calls"]) >= 1
        entry.close()
        replica.stop()
        start = time.monotonic()
        with pytest.raises(ThrottlerBackendError, match=r"acknowledged by 0 of 1 replica"):
            await asyncio.wait_for(throttler.acquire(), 10)
        assert time.monotonic() - start < 4.0 + 2.0  # WAIT's 2 s, with a wide margin
    finally:
        if throttler is not None:
            await throttler.aclose()
        replica.stop()


def test_replicas_is_checked() -> None:
    """replicas must be a small non-negative int, and not with a cluster client."""
    with pytest.raises(TypeError, match="replicas must be an integer"):
        RedisThrottler(1, redis="redis://127.0.0.1:6379", key="k", replicas=True)
    with pytest.raises(ValueError, match="got -1"):
        RedisThrottler(1, redis="redis://127.0.0.1:6379", key="k", replicas=-1)
