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

**Processes.** Then 4 processes of 20 tasks each share one ``RedisThrottler`` at 20 per
0.25 s for 1.5 s (the shape of ``tests/test_redis.py::test_four_processes_share_one_limit``,
which asserts only the exact strictness and a generous floor): "max in window" is read from
the server's own stamps (it must be 20), and "utilization" is the steady rate after the
first (instant) window, against the quota.

**Faults** (``--faults``): what a stall, an outage and data loss cost a fleet. 3 worker
processes of 10 tasks each send requests to one loopback HTTP server through
``ThrottledClientSession(throttler=ThrottlerMap(10, 0.5, backend=RedisBackend(url,
command_timeout=0.3, on_error=...)))``, on a private ``redis-server``; once every worker
got an entry, the server is stalled for 1 s (``SIGSTOP``, then ``SIGCONT``), killed and
restarted empty 1 s later, or flushed (``FLUSHALL``). The table gives the longest time
without any arrival at the HTTP server from the fault on, and the most arrivals in any
0.5 s window, at the whole fleet and at any one process.

**Polling** (``--polling``): 8 processes of 10 tasks each share one key at 20 per 0.5 s
for 4 s through latency-proof entries whose responses take 200 ms (``async with
throttler.entry(): await asyncio.sleep(0.2)``). Each worker counts its admit calls and
those that admitted nothing (wasted: the head asked again before anything could free).

**Leases** (``--leases``): a worker holds the whole limit (10 per 0.5 s) in open entries
and is killed with ``SIGKILL`` at a random moment of its renewal cycle; a survivor
measures how long until it has all 10 entries again, with the default ``lease_timeout``
(5 s) and with 1 s.

**Replicas** (``--replicas``): the price of ``replicas=1`` (``WAIT`` after each script,
in the same round trip) against a local replica (``redis-server --replicaof``): the
latency of one admission (one task, ``open_entry()`` then ``close()``) and admissions
per second of 50 tasks (``acquire()``), with and without it.

Run::

    python benchmarks/bench_redis.py            # needs redis-server on PATH
    python benchmarks/bench_redis.py --url redis://127.0.0.1:6379   # counts are then shared
    python benchmarks/bench_redis.py --faults   # only the fault runs (about a minute)
    python benchmarks/bench_redis.py --polling  # admit calls per admission (about 10 s)
    python benchmarks/bench_redis.py --leases   # a killed worker's entries (about 40 s)
    python benchmarks/bench_redis.py --replicas # the price of replicas=1 (about 10 s)
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

import redis
import redis.asyncio as aioredis

from throttled_http.redis import RedisThrottler

TASKS = 50


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not on PATH: pass --url")
    port = _free_port() if port is None else port
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
    from limits import RateLimitItemPerSecond  # the bench extra; only the default run
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

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
    from limits import RateLimitItemPerSecond  # the bench extra; only the default run
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

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


_WORKER = """
import asyncio, sys, time
from throttled_http import ThrottlerTimeoutError
from throttled_http.redis import RedisThrottler

url, key, rate, start, duration, tasks = sys.argv[1:]

async def main():
    throttler = RedisThrottler(rates=(rate, "100000000/60s"), redis=url, key=key)
    await asyncio.sleep(max(0.0, float(start) - time.time()))
    loop = asyncio.get_running_loop()
    end = loop.time() + float(duration)
    async def worker():
        while loop.time() < end:
            try:
                await throttler.acquire(timeout=max(0.0, end - loop.time()))
            except ThrottlerTimeoutError:
                return
    await asyncio.gather(*(worker() for _ in range(int(tasks))))
    await throttler.aclose()

asyncio.run(main())
"""


async def _processes(
    url: str, processes: int, tasks: int, limit: int, period: float, duration: float
) -> tuple[int, float, int]:
    """``processes`` workers share one key; returns (admitted, utilization, max in window)
    from the server's stamps."""
    key = uuid.uuid4().hex
    rate = f"{limit}/{period}s"
    start = time.time() + 2.0  # let every interpreter start before the race begins
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, url, key, rate, repr(start), repr(duration), str(tasks)
        )
        for _ in range(processes)
    ]
    for proc in procs:
        await proc.wait()
    if any(proc.returncode for proc in procs):
        raise RuntimeError("a worker process failed")
    probe = RedisThrottler(rates=(rate, "100000000/60s"), redis=url, key=key)
    client = aioredis.Redis.from_url(url)
    rows = await client.zrange(probe.redis_keys[0], 0, -1, withscores=True)
    await client.aclose()
    await probe.aclose()
    times = sorted(float(row[1]) / 1e6 for row in rows)
    span = times[-1] - times[0]
    steady = (len(times) - limit) / span if span > 0 else 0.0
    return len(times), steady / (limit / period), _max_in_window(times, period)


_FLEET_WORKER = """
import asyncio, sys
from throttled_http import ThrottlerMap
from throttled_http.aiohttp import ThrottledClientSession
from throttled_http.redis import RedisBackend

url, target, on_error = sys.argv[1:]

async def main():
    backend = RedisBackend(url, on_error=on_error, command_timeout=0.3)
    hosts = ThrottlerMap(10, 0.5, backend=backend)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), stop.set)  # parent: done
    async with ThrottledClientSession(throttler=hosts) as session:
        async def fetch():
            async with session.get(target) as response:
                await response.read()
        await fetch()
        print("ready", flush=True)
        async def worker():
            while not stop.is_set():
                try:
                    await fetch()
                except Exception:
                    await asyncio.sleep(0.01)
        await asyncio.gather(*(worker() for _ in range(10)))
    await backend.aclose()

asyncio.run(main())
"""


async def _fault(fault: str, on_error: str) -> tuple[float, int, int]:
    """One fleet run around ``fault``: (longest gap from the fault on, max in any 0.5 s
    window at the fleet, and at one process)."""
    from throttled_http.testing import RecordingServer  # the aiohttp extra

    port = _free_port()
    proc, url = _start_server(port)
    async with RecordingServer(hosts=("127.0.0.1",)) as server:
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _FLEET_WORKER,
                url,
                server.url(f"/w{index}"),
                on_error,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for index in range(3)
        ]
        for worker in workers:
            assert worker.stdout is not None
            await worker.stdout.readline()  # its first entry went through
        await asyncio.sleep(1.0)
        at = time.monotonic()
        if fault == "stall":
            proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(1.0)
            proc.send_signal(signal.SIGCONT)
        elif fault == "outage":
            proc.kill()
            proc.wait()
            await asyncio.sleep(1.0)
            proc, _ = _start_server(port)
        else:
            client = aioredis.Redis.from_url(url)
            await client.flushall()
            await client.aclose()
        await asyncio.sleep(3.0)
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"stop\n")
            await worker.stdin.drain()
        # A worker the fault still holds back ends when its admission does: bound the wait.
        await asyncio.wait([asyncio.ensure_future(w.wait()) for w in workers], timeout=90)
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        arrivals = list(server.arrivals)
    proc.kill()
    proc.wait()
    times = sorted(a.time for a in arrivals)
    later = [at, *(t for t in times if t >= at)]
    gap = max(b - a for a, b in itertools.pairwise(later))
    one = max(
        _max_in_window([a.time for a in arrivals if a.path == f"/w{i}"], 0.5) for i in range(3)
    )
    return gap, _max_in_window(times, 0.5), one


async def _faults() -> None:
    print("faults: 3 processes x 10 tasks, 10 per 0.5 s, command_timeout=0.3 s")
    header = (
        f"{'fault':<34}{'on_error':<10}{'longest gap':>12}{'max in 0.5 s':>14}{'one process':>13}"
    )
    print(header)
    for fault, what in (
        ("stall", "stall 1 s (SIGSTOP, SIGCONT)"),
        ("outage", "outage 1 s (kill, restart empty)"),
        ("flush", "data loss (FLUSHALL)"),
    ):
        for on_error in ("raise", "local", "allow"):
            gap, fleet, one = await _fault(fault, on_error)
            print(f"{what:<34}{on_error:<10}{gap:>11.2f}s{fleet:>14}{one:>13}")


_POLL_WORKER = """
import asyncio, json, sys, time
from throttled_http._redis_wire import Wire
from throttled_http.redis import RedisThrottler

url, key, start, duration, tasks = sys.argv[1:]

async def main():
    throttler = RedisThrottler(20, 0.5, redis=url, key=key)
    counts = {"calls": 0, "wasted": 0}
    admit = Wire.admit  # counted here only: a benchmark may look inside
    async def counted(wire, batch, call):
        reply = await admit(wire, batch, call)
        counts["calls"] += 1
        counts["wasted"] += reply.admitted == 0
        return reply
    Wire.admit = counted
    await asyncio.sleep(max(0.0, float(start) - time.time()))
    loop = asyncio.get_running_loop()
    end = loop.time() + float(duration)
    async def worker():
        while loop.time() < end:
            try:
                async with throttler.entry(timeout=max(0.0, end - loop.time())):
                    await asyncio.sleep(0.2)
            except TimeoutError:
                return
    await asyncio.gather(*(worker() for _ in range(int(tasks))))
    counts["admitted"] = throttler.redis_statistics().admitted
    await throttler.aclose()
    print(json.dumps(counts))

asyncio.run(main())
"""


async def _polling() -> None:
    import json

    proc, url = _start_server()
    try:
        processes, duration = 8, 4.0
        start = time.time() + 2.0
        key = uuid.uuid4().hex
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _POLL_WORKER,
                url,
                key,
                repr(start),
                repr(duration),
                "10",
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(processes)
        ]
        outs = [json.loads((await w.communicate())[0]) for w in workers]
    finally:
        proc.kill()
        proc.wait()
    calls = sum(o["calls"] for o in outs)
    wasted = sum(o["wasted"] for o in outs)
    admitted = sum(o["admitted"] for o in outs)
    print(f"polling: {processes} processes x 10 tasks, 20 per 0.5 s, 200 ms responses, 4 s")
    print(f"{'admitted':>10}{'admit calls':>13}{'wasted':>8}{'calls/admission':>17}")
    print(f"{admitted:>10}{calls:>13}{wasted:>8}{calls / max(1, admitted):>17.3f}")


_HOLDER = """
import asyncio, sys
from throttled_http.redis import RedisThrottler

url, key, lease = sys.argv[1:]

async def main():
    throttler = RedisThrottler(10, 0.5, redis=url, key=key, lease_timeout=float(lease))
    entries = [await throttler.open_entry() for _ in range(10)]  # never settled
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def _leases() -> None:
    import random

    proc, url = _start_server()
    print("leases: a worker holding 10 of 10 per 0.5 s open is killed (SIGKILL)")
    print(f"{'lease_timeout':>14}{'run':>5}{'entries back after':>20}")
    try:
        for lease in (5.0, 1.0):
            for run in range(1, 4):
                key = uuid.uuid4().hex
                holder = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    _HOLDER,
                    url,
                    key,
                    repr(lease),
                    stdout=asyncio.subprocess.PIPE,
                )
                assert holder.stdout is not None
                await holder.stdout.readline()
                await asyncio.sleep(lease + random.random() * lease)
                holder.kill()
                await holder.wait()
                killed = time.monotonic()
                survivor = RedisThrottler(10, 0.5, redis=url, key=key)
                await asyncio.gather(*(survivor.acquire() for _ in range(10)))
                back = time.monotonic() - killed
                await survivor.aclose()
                print(f"{lease:>13.1f}s{run:>5}{back:>19.2f}s")
    finally:
        proc.kill()
        proc.wait()


def _start_replica(primary: int) -> tuple[subprocess.Popen[bytes], int]:
    """A redis-server replicating the one on port ``primary``, and its port."""
    port = _free_port()
    import tempfile

    options = ["--bind", "127.0.0.1", "--save", "", "--replicaof", "127.0.0.1", str(primary)]
    options += ["--dir", tempfile.gettempdir()]  # where it writes the primary's snapshot
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
    )
    return proc, port


async def _replicas() -> None:
    import statistics

    proc, url = _start_server()
    port = int(url.rsplit(":", 1)[1])
    client = aioredis.Redis.from_url(url)
    await client.config_set("repl-diskless-sync-delay", 0)
    replica, replica_port = _start_replica(port)
    try:
        mirror = aioredis.Redis(port=replica_port)
        while True:
            try:
                info = await mirror.info("replication")
            except redis.ConnectionError:
                info = {}
            if info.get("master_link_status") == "up":
                break
            await asyncio.sleep(0.05)
        await mirror.aclose()
        print("replicas: one primary and one replica on loopback")
        print(f"{'replicas':>9}{'median admission':>18}{'p99':>9}{'50 tasks admitted/s':>21}")
        for replicas in (0, 1):
            throttler = RedisThrottler(
                10_000_000, redis=url, key=uuid.uuid4().hex, replicas=replicas
            )
            times = []
            for _ in range(1000):
                start = time.perf_counter()
                entry = await throttler.open_entry()
                times.append(time.perf_counter() - start)
                entry.close()
            times.sort()
            count = 10_000

            async def worker(throttler: RedisThrottler = throttler, count: int = count) -> None:
                for _ in range(count // TASKS):
                    await throttler.acquire()

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(TASKS)))
            rate = count / (time.perf_counter() - start)
            await throttler.aclose()
            median, p99 = statistics.median(times), times[int(len(times) * 0.99)]
            print(f"{replicas:>9}{median * 1e3:>16.3f}ms{p99 * 1e3:>7.3f}ms{rate:>21,.0f}")
    finally:
        await client.aclose()
        for server in (replica, proc):
            server.kill()
            server.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="use this Redis instead of a private redis-server")
    parser.add_argument("--count", type=int, default=20_000, help="admissions per unbound run")
    parser.add_argument("--limit", type=int, default=1000, help="per second, for bound runs")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per bound run")
    parser.add_argument("--faults", action="store_true", help="only the fault runs")
    parser.add_argument("--polling", action="store_true", help="only the polling run")
    parser.add_argument("--leases", action="store_true", help="only the lease runs")
    parser.add_argument("--replicas", action="store_true", help="only the replica runs")
    args = parser.parse_args()
    if args.replicas:
        await _replicas()
        return
    if args.leases:
        await _leases()
        return
    if args.faults:
        await _faults()
        return
    if args.polling:
        await _polling()
        return
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
        print()
        limit, period = 20, 0.25
        admitted, used, peak = await _processes(url, 4, 20, limit, period, 1.5)
        print(f"4 processes x 20 tasks, {limit} per {period} s for 1.5 s, one key")
        print(f"{'library':<31}{'admitted':>10}{'utilization':>13}{'max in window':>19}")
        name = "throttled_http RedisThrottler"
        print(f"{name:<31}{admitted:>10}{used:>13.1%}{peak:>19}")
    finally:
        await client.aclose()
        if proc is not None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
