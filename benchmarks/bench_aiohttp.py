"""Overhead of ThrottledClientSession over a plain aiohttp.ClientSession.

5,000 GETs at concurrency 50 against a local aiohttp server running in a separate process
(so client and server do not share an event loop), once through a plain ``ClientSession``
and once through ``ThrottledClientSession`` with a limit that never binds. Runs alternate
(plain, throttled, throttled, plain, ...) so drift on a shared machine hits both alike;
the medians and their ratio are reported.

Run::

    python benchmarks/bench_aiohttp.py            # 7 rounds
    python benchmarks/bench_aiohttp.py --quick    # 1,000 GETs, 2 rounds
    python benchmarks/bench_aiohttp.py --rounds 3 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from _common import local_server

from throttled_http.aiohttp import ThrottledClientSession


async def run(url: str, requests: int, concurrency: int, throttled: bool) -> tuple[float, float]:
    """Requests per second, and client CPU microseconds per request, for one run."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    session: aiohttp.ClientSession | ThrottledClientSession
    if throttled:
        # 10 million per second: the limit never binds; only the overhead shows.
        session = ThrottledClientSession(rate_limit=10_000_000, period=1.0, connector=connector)
    else:
        session = aiohttp.ClientSession(connector=connector)
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.get(url) as response:
                await response.read()

    async with session:
        remaining = concurrency  # warm the connection pool up
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        remaining = requests
        start = time.perf_counter()
        cpu = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu = time.process_time() - cpu
        elapsed = time.perf_counter() - start
    return requests / elapsed, cpu / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=None, help="default 5000 (1000 quick)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=None, help="default 7 (2 quick)")
    parser.add_argument("--quick", action="store_true", help="a short run: 1000 GETs, 2 rounds")
    args = parser.parse_args()
    args.requests = args.requests or (1000 if args.quick else 5000)
    args.rounds = args.rounds or (2 if args.quick else 7)
    with local_server() as url:
        plain: list[float] = []
        throttled: list[float] = []
        plain_cpu: list[float] = []
        throttled_cpu: list[float] = []
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for is_throttled in order:
                rate, cpu = asyncio.run(run(url, args.requests, args.concurrency, is_throttled))
                (throttled if is_throttled else plain).append(rate)
                (throttled_cpu if is_throttled else plain_cpu).append(cpu)
                label = "ThrottledClientSession" if is_throttled else "ClientSession"
                print(
                    f"round {round_ + 1}: {label:<22} {rate:8.0f} req/s "
                    f"{cpu:6.1f} us client CPU/request",
                    flush=True,
                )
    p, t = statistics.median(plain), statistics.median(throttled)
    pc, tc = statistics.median(plain_cpu), statistics.median(throttled_cpu)
    print(
        f"\n{args.requests} GETs at concurrency {args.concurrency}, "
        f"median of {args.rounds} interleaved rounds:"
    )
    print(f"  aiohttp.ClientSession        {p:8.0f} req/s {pc:6.1f} us client CPU/request")
    print(f"  ThrottledClientSession       {t:8.0f} req/s {tc:6.1f} us client CPU/request")
    print(f"  throughput ratio             {t / p:8.3f}")
    print(f"  added client CPU/request     {tc - pc:8.1f} us")


if __name__ == "__main__":
    main()
