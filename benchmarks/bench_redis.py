"""Admissions per second and Redis round trips per admission through one Redis key.

Compares ``throttled_http.redis.RedisThrottler`` with the ``limits`` package's async Redis
moving-window strategy (``limits.aio.strategies.MovingWindowRateLimiter`` over
``limits.aio.storage.RedisStorage(implementation="redispy")``), both on redis-py's asyncio
client, with 50 concurrent tasks in one process:

* **unbound**: a limit far above what either can reach, so the figure is the machinery's
  own throughput;
* **bound**: a limit of 1,000 per second for 3 seconds, where callers must wait. ``limits``
  has no waiting call, so its tasks do what its documentation suggests: ``hit()``, and when
  refused sleep until ``get_window_stats()`` says the window resets, then try again.

Round trips are counted by the Redis server itself (``INFO commandstats``: calls of EVAL,
EVALSHA and SCRIPT; neither library sends other commands here),
on a private ``redis-server`` started on a free port, so nothing else pollutes the counts.
For the bound runs, "max in window" is the most admissions any 1 s window holds, from the
client's clock (it may exceed 1,000 by reply latency only); "utilization" is admissions
over ``limit * duration``.

Run::

    python benchmarks/bench_redis.py            # needs redis-server on PATH
    python benchmarks/bench_redis.py --url redis://127.0.0.1:6379   # counts are then shared
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import shutil
import socket
import subprocess
import time
import uuid
from typing import Any

import redis
import redis.asyncio as aioredis
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from throttled_http.redis import RedisThrottler

TASKS = 50


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server() -> tuple[subprocess.Popen[bytes], str]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not on PATH: pass --url")
    port = _free_port()
    proc = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.02)


async def _round_trips(client: aioredis.Redis, run: Any) -> tuple[Any, int]:
    """Run ``run()`` and count the commands clients sent meanwhile (scripts count once)."""
    await client.config_resetstat()
    result = await run()
    stats: dict[str, Any] = await client.info("commandstats")
    sent = 0
    for name, value in stats.items():
        if name in ("cmdstat_eval", "cmdstat_evalsha") or name.startswith("cmdstat_script"):
            sent += int(value["calls"])
    return result, sent


def _max_in_window(times: list[float], period: float) -> int:
    times = sorted(times)
    return max(
        (bisect.bisect_left(times, t + period, lo=i) - i for i, t in enumerate(times)),
        default=0,
    )


async def _ours_unbound(url: str, count: int) -> float:
    throttler = RedisThrottler(10_000_000, redis=url, key=uuid.uuid4().hex)
    per_task = count // TASKS

    async def worker() -> None:
        for _ in range(per_task):
            await throttler.acquire()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    elapsed = time.perf_counter() - start
    await throttler.aclose()
    return per_task * TASKS / elapsed


async def _limits_unbound(url: str, count: int) -> float:
    storage = RedisStorage(url.replace("redis://", "async+redis://"), implementation="redispy")
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(10_000_000)
    key = uuid.uuid4().hex
    per_task = count // TASKS

    async def worker() -> None:
        for _ in range(per_task):
            if not await limiter.hit(item, key):
                raise RuntimeError("refused below the limit")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return per_task * TASKS / (time.perf_counter() - start)


async def _ours_bound(url: str, limit: int, duration: float) -> list[float]:
    throttler = RedisThrottler(limit, 1.0, redis=url, key=uuid.uuid4().hex)
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    times: list[float] = []

    async def worker() -> None:
        while True:
            try:
                await throttler.acquire(timeout=max(0.0, end - loop.time()))
            except TimeoutError:
                return
            now = loop.time()
            if now >= end:
                return
            times.append(now)

    await asyncio.gather(*(worker() for _ in range(TASKS)))
    await throttler.aclose()
    return times


async def _limits_bound(url: str, limit: int, duration: float) -> list[float]:
    storage = RedisStorage(url.replace("redis://", "async+redis://"), implementation="redispy")
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(limit)
    key = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    times: list[float] = []

    async def worker() -> None:
        while loop.time() < end:
            if await limiter.hit(item, key):
                times.append(loop.time())
                continue
            stats = await limiter.get_window_stats(item, key)
            await asyncio.sleep(max(0.0, min(stats.reset_time - time.time(), end - loop.time())))

    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return [t for t in times if t < end]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="use this Redis instead of a private redis-server")
    parser.add_argument("--count", type=int, default=20_000, help="admissions per unbound run")
    parser.add_argument("--limit", type=int, default=1000, help="per second, for bound runs")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per bound run")
    args = parser.parse_args()
    proc = None
    url = args.url
    if url is None:
        proc, url = _start_server()
    client = aioredis.Redis.from_url(url)
    try:
        print(f"{TASKS} tasks, one key, redis-py {redis.__version__}, server {url}")
        print(f"{'library':<31}{'run':<10}{'admitted/s':>12}{'round trips/admission':>24}")
        for name, run in (
            ("throttled_http RedisThrottler", _ours_unbound),
            ("limits moving window", _limits_unbound),
        ):
            rate, trips = await _round_trips(client, lambda run=run: run(url, args.count))
            per = trips / args.count
            print(f"{name:<31}{'unbound':<10}{rate:>12,.0f}{per:>24.3f}")
        print()
        print(f"bound: {args.limit}/s for {args.duration} s")
        header = "max in 1 s window"
        print(f"{'library':<31}{'admitted':>10}{'utilization':>13}{header:>19}{'trips/adm':>11}")
        for name, bound in (
            ("throttled_http RedisThrottler", _ours_bound),
            ("limits moving window", _limits_bound),
        ):
            times, trips = await _round_trips(
                client, lambda bound=bound: bound(url, args.limit, args.duration)
            )
            used = len(times) / (args.limit * args.duration)
            per = trips / max(1, len(times))
            peak = _max_in_window(times, 1.0)
            print(f"{name:<31}{len(times):>10}{used:>13.1%}{peak:>19}{per:>11.3f}")
    finally:
        await client.aclose()
        if proc is not None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
