"""Overhead of ThrottledClientSession over a plain aiohttp.ClientSession.

5,000 GETs at concurrency 50 against a local aiohttp server running in a separate process
(so client and server do not share an event loop), once through a plain ``ClientSession``
and once through ``ThrottledClientSession`` with a limit that never binds. Runs alternate
(plain, throttled, throttled, plain, ...) so drift on a shared machine hits both alike;
the medians and their ratio are reported.

Run::

    python benchmarks/bench_aiohttp.py            # 7 rounds
    python benchmarks/bench_aiohttp.py --rounds 3 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time

import aiohttp
from aiohttp import web

from throttled_http.aiohttp import ThrottledClientSession


def serve() -> None:
    """The server process: answer ``ok`` on a free port, print the port, run until killed."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        print(sock.getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


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
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        url = f"http://127.0.0.1:{int(child.stdout.readline())}/"
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
    finally:
        child.terminate()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
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
