"""Threads and ``httpx.Client`` under one limit, offline: 8 threads, one quota.

The script runs a local aiohttp web server (on its own event loop, in a background
thread) that enforces 4 requests per 0.5 s and answers ``429`` beyond. Eight worker
threads share one ``httpx.Client`` whose transport is a
:class:`~throttled_http.httpx.SyncThrottledTransport`: each blocks on a condition until
its turn (in arrival order, no polling), so the server never refuses a request.

Run::

    python examples/httpx_sync.py     # about 3 seconds
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from throttled_http import Rate
from throttled_http.httpx import SyncThrottledTransport
from throttled_http.testing import RecordingServer

THREADS = 8
PER_THREAD = 3


def serve_in_background(
    server: RecordingServer,
) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """Start ``server`` on a fresh event loop in a daemon thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait()
    return loop, thread


def main() -> None:
    server = RecordingServer(("127.0.0.1",), latency=0.02, server_limit=Rate(4, 0.5))
    loop, thread = serve_in_background(server)
    start = time.monotonic()
    try:
        transport = SyncThrottledTransport(rate_limit=4, period=0.5)
        with httpx.Client(transport=transport) as client:

            def worker(n: int) -> list[str]:
                lines = []
                for i in range(PER_THREAD):
                    response = client.get(server.url(f"/?thread={n}&i={i}"))
                    at = time.monotonic() - start
                    lines.append(f"t={at:5.2f} s  thread {n}  request {i}  {response.status_code}")
                return lines

            with ThreadPoolExecutor(THREADS) as pool:
                results = [line for lines in pool.map(worker, range(THREADS)) for line in lines]
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    for line in sorted(results):
        print(line)
    most = server.max_in_window(0.5)
    refused = sum(server.rejected.values())
    print(
        f"{len(server.arrivals)} requests; at most {most} in any 0.5 s window (limit 4); "
        f"{refused} refused"
    )
    if most > 4 or refused:
        raise SystemExit("the limit was not kept")


if __name__ == "__main__":
    main()
