"""What ThrottledTransport costs an httpx client when its limit never binds.

5,000 GETs at concurrency 50 against a local aiohttp server running in a separate
process, through a plain ``httpx.AsyncClient()`` and through
``httpx.AsyncClient(transport=ThrottledTransport(...))`` with a limit far above what the
machine can send; both use httpx's default transport and pool limits. The variants
alternate within each repeat (and swap order every repeat) so noise on this shared machine
hits both alike; the report gives the median of each and the median of the per-repeat
ratios.

Run::

    python benchmarks/bench_httpx.py              # 5,000 GETs x 5 repeats per client
    python benchmarks/bench_httpx.py --quick      # 1,000 GETs x 3 repeats

``sniffio`` must be installed: without it httpcore falls back to slower code paths and the
figures halve.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx
from _common import (
    Table,
    fmt_ratio,
    local_server,
    median,
    parse,
    parser,
    print_header,
    write_json,
)

from throttled_http.httpx import ThrottledTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

CONCURRENCY = 50


def plain() -> httpx.AsyncClient:
    """What an httpx user writes: the default transport and pool limits."""
    return httpx.AsyncClient()


def throttled() -> httpx.AsyncClient:
    """The same, throttled; the limit is one no run can reach, so only the cost shows."""
    return httpx.AsyncClient(transport=ThrottledTransport(rate_limit=10_000_000, period=1.0))


async def run_once(make: Callable[[], httpx.AsyncClient], url: str, total: int) -> float:
    """Send ``total`` GETs from ``CONCURRENCY`` workers; requests per second."""
    async with make() as client:
        await asyncio.gather(*(client.get(url) for _ in range(CONCURRENCY)))  # warm the pool
        per_worker = total // CONCURRENCY

        async def worker() -> None:
            for _ in range(per_worker):
                response = await client.get(url)
                if response.status_code != 200:
                    raise RuntimeError(f"unexpected status {response.status_code}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return per_worker * CONCURRENCY / (time.perf_counter() - start)


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"ok")


class _Body(httpx.AsyncByteStream):
    """A body that arrives as a stream, as from a real connection."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"ok"


_HEADERS = [
    (b"Content-Type", b"text/plain; charset=utf-8"),
    (b"Content-Length", b"2"),
    (b"Date", b"Wed, 25 Nov 2026 15:00:00 GMT"),
    (b"Server", b"Python/3.11 aiohttp/3.14"),
]


class StreamingMock(httpx.AsyncBaseTransport):
    """Answers at once, with the headers of the local server and a streamed body: unlike
    ``MockTransport`` (whose body is in memory), it makes the throttled transport hold
    the slot until the body is read, as a real connection does."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=_HEADERS, stream=_Body())


async def mock_cost(throttle: bool, count: int, streaming: bool = False) -> float:
    """Microseconds per request of a client over a mock transport (no network)."""
    inner: httpx.AsyncBaseTransport = StreamingMock() if streaming else httpx.MockTransport(answer)
    transport: httpx.AsyncBaseTransport = (
        ThrottledTransport(inner, rate_limit=10**7, period=1.0) if throttle else inner
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://bench.example/")
        start = time.process_time()
        for _ in range(count):
            await client.get("http://bench.example/")
        return (time.process_time() - start) / count * 1e6


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=5, quick_repeats=3)
    p.add_argument("--requests", type=int, default=None, help="GETs per run (default 5000)")
    args = parse(p)
    total = args.requests or (1_000 if args.quick else 5_000)
    env = print_header(
        f"httpx: ThrottledTransport overhead, {total} GETs at concurrency {CONCURRENCY}",
        "httpx",
        "httpcore",
        "sniffio",
        "aiohttp",
    )
    with local_server() as url:
        variants = {"plain AsyncClient": plain, "ThrottledTransport": throttled}
        results: dict[str, list[float]] = {name: [] for name in variants}
        ratios: list[float] = []
        for repeat in range(args.repeats):
            order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            got = {name: asyncio.run(run_once(variants[name], url, total)) for name in order}
            for name, rate in got.items():
                results[name].append(rate)
            ratios.append(got["ThrottledTransport"] / got["plain AsyncClient"])
            print(
                f"repeat {repeat + 1}: "
                + ", ".join(f"{name} {got[name]:,.0f}/s" for name in variants),
                flush=True,
            )
    count = 2_000 if args.quick else 10_000
    costs: dict[str, list[float]] = {
        "plain": [],
        "throttled": [],
        "plain streaming": [],
        "throttled streaming": [],
    }
    for repeat in range(args.repeats):
        for throttle in (False, True) if repeat % 2 == 0 else (True, False):
            for streaming in (False, True):
                name = ("throttled" if throttle else "plain") + (" streaming" if streaming else "")
                costs[name].append(asyncio.run(mock_cost(throttle, count, streaming)))
    print()
    table = Table("Client", "Median requests/s", "Min", "Max")
    for name, rates in results.items():
        table.add_row(name, f"{median(rates):,.0f}", f"{min(rates):,.0f}", f"{max(rates):,.0f}")
    table.print(f"{args.repeats} repeats, interleaved")
    ratio = median(ratios)
    shown = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"throughput ratio ThrottledTransport / plain (median of repeats): {fmt_ratio(ratio)}")
    print(f"per-repeat ratios: {shown}")
    print()
    added = median(costs["throttled"]) - median(costs["plain"])
    added_streaming = median(costs["throttled streaming"]) - median(costs["plain streaming"])
    cost_table = Table("Client, over a mock transport", "Median CPU per request")
    cost_table.add_row("plain AsyncClient, MockTransport", f"{median(costs['plain']):.1f} us")
    cost_table.add_row("ThrottledTransport, MockTransport", f"{median(costs['throttled']):.1f} us")
    cost_table.add_row(
        "plain AsyncClient, streamed body", f"{median(costs['plain streaming']):.1f} us"
    )
    cost_table.add_row(
        "ThrottledTransport, streamed body", f"{median(costs['throttled streaming']):.1f} us"
    )
    cost_table.print(f"CPU cost without a network, {count} requests x {args.repeats} repeats")
    print(f"added by ThrottledTransport: {added:.1f} us per request (body in memory)")
    print(f"added by ThrottledTransport: {added_streaming:.1f} us per request (streamed body)")
    write_json(
        args.json,
        {
            "env": env,
            "requests": total,
            "results": results,
            "ratios": ratios,
            "ratio": ratio,
            "mock_cpu_us": costs,
            "added_us": added,
            "added_streaming_us": added_streaming,
        },
    )


if __name__ == "__main__":
    main()
