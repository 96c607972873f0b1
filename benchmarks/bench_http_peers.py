"""Requests per second and client CPU per request, throttled_http and its peers side by side.

For each client (aiohttp, httpx), ``--requests`` GETs per run (default 5,000 for aiohttp;
1,000 for httpx, whose pool costs milliseconds of CPU per request on this machine) at
concurrency ``--concurrency`` (default 50) against a local aiohttp server running in a
separate process, with a limit far above what the machine can send (10 million per
second), so only the cost of each limiter shows:

* aiohttp: a plain ``aiohttp.ClientSession``; ``ThrottledClientSession(rate_limit=...)``;
  and each peer wrapped around a plain session as its documentation shows
  (``async with limiter:`` around ``session.get()``): asyncio-throttle's ``Throttler``,
  aiolimiter's ``AsyncLimiter`` and throttled-py's asyncio ``Throttled`` (sliding window).
* httpx: a plain ``httpx.AsyncClient``; ``ThrottledTransport(rate_limit=...)``;
  httpx-limiter's ``AsyncRateLimitedTransport`` with each of its two backends (aiolimiter
  and pyrate-limiter); and asyncio-throttle, aiolimiter and throttled-py wrapped around a
  plain client.

Every variant of a client uses the same pool: aiohttp's ``TCPConnector(limit=concurrency)``,
httpx's ``Limits(max_connections=concurrency, max_keepalive_connections=concurrency)``
(httpx's default keeps only 20 alive, which makes 50 workers reconnect all the time).

One *round* opens every variant of a client in one fresh event loop (each its own session
and pool, warmed with ``concurrency`` requests, not counted), then sends ``--requests``
GETs through each in turns of ``--chunk`` GETs (default a tenth), the order rotated every
turn: a burst of noise from another process on this 2-core machine lasts longer than a
turn, so it falls on every variant alike. Per variant and round: requests per second (over
its turns' wall time) and client CPU per request (``time.process_time()`` in the client
process, so the server's CPU is not counted). The report gives, per variant, the median
over rounds of the throughput, of its ratio to the plain client *within the round*, of
the CPU per request and of the CPU added over the plain client within the round; then
ours against the best peer (the peer with the highest ratio to plain), also round by
round.

Run::

    python benchmarks/bench_http_peers.py --client aiohttp   # 10 rounds of 5,000 GETs, 2-3 min
    python benchmarks/bench_http_peers.py --client httpx     # 5 rounds of 1,000, ~6 min loaded
    python benchmarks/bench_http_peers.py                    # both, one after the other
    python benchmarks/bench_http_peers.py --quick            # 2 rounds, a fifth of the GETs

``sniffio`` must be installed: without it httpcore falls back to slower code paths.
"""

from __future__ import annotations

import asyncio
import gc
import operator
import sys
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import aiolimiter
import asyncio_throttle
import httpx
import throttled.asyncio as throttled_py
from _common import (
    Table,
    fmt_ratio,
    local_server,
    median,
    parse,
    parser,
    per_round,
    print_header,
    rotated,
    write_json,
)
from httpx_limiter import AsyncRateLimitedTransport
from httpx_limiter import Rate as LimiterRate
from httpx_limiter.aiolimiter import AiolimiterAsyncLimiter
from httpx_limiter.pyrate import PyrateAsyncLimiter

from throttled_http.aiohttp import ThrottledClientSession
from throttled_http.httpx import ThrottledTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

# A limit no run can reach: the limiters admit at once, only their cost shows.
RATE = 10_000_000
PERIOD = 1.0


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of sending the GETs.

    Attributes:
        name: as printed.
        role: ``"plain"`` (the baseline), ``"ours"`` or ``"peer"``.
        open: ``open(url, concurrency)`` is an async context manager giving ``fetch()``,
            which sends one GET and reads its body; built inside the run's event loop.
    """

    name: str
    role: str
    open: Callable[[str, int], AbstractAsyncContextManager[Callable[[], Awaitable[None]]]]


# -- the peers' limiters, as each library spells a limit of RATE per PERIOD ---------------


def asyncio_throttle_limiter() -> AbstractAsyncContextManager[Any]:
    limiter: AbstractAsyncContextManager[Any] = asyncio_throttle.Throttler(
        rate_limit=RATE, period=PERIOD
    )
    return limiter


def aiolimiter_limiter() -> AbstractAsyncContextManager[Any]:
    return aiolimiter.AsyncLimiter(RATE, PERIOD)


def throttled_py_limiter() -> AbstractAsyncContextManager[Any]:
    """throttled-py's asyncio ``Throttled``: sliding window, whole-second periods only.

    ``timeout`` makes it wait for a slot rather than raise (its default, -1, raises
    ``LimitedError`` at once); its own in-memory store, not the process-wide one.
    """
    return throttled_py.Throttled(
        key="127.0.0.1",
        using=throttled_py.RateLimiterType.SLIDING_WINDOW.value,
        quota=throttled_py.per_sec(RATE),
        timeout=60,
        store=throttled_py.MemoryStore(),
    )


# -- aiohttp --------------------------------------------------------------------------------


def _aiohttp_fetch(session: Any, url: str) -> Callable[[], Awaitable[None]]:
    async def fetch() -> None:
        async with session.get(url) as response:
            await response.read()

    return fetch


@asynccontextmanager
async def aiohttp_plain(url: str, concurrency: int) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        yield _aiohttp_fetch(s, url)


@asynccontextmanager
async def aiohttp_ours(url: str, concurrency: int) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with ThrottledClientSession(rate_limit=RATE, period=PERIOD, connector=connector) as s:
        yield _aiohttp_fetch(s, url)


def aiohttp_wrapped(
    make_limiter: Callable[[], AbstractAsyncContextManager[Any]],
) -> Callable[[str, int], AbstractAsyncContextManager[Callable[[], Awaitable[None]]]]:
    """A plain session, each request inside ``async with limiter:``."""

    @asynccontextmanager
    async def open_(url: str, concurrency: int) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        limiter = make_limiter()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

            async def fetch() -> None:
                async with limiter, s.get(url) as response:
                    await response.read()

            yield fetch

    return open_


AIOHTTP = (
    Variant("aiohttp.ClientSession", "plain", aiohttp_plain),
    Variant("ThrottledClientSession", "ours", aiohttp_ours),
    Variant("asyncio-throttle + ClientSession", "peer", aiohttp_wrapped(asyncio_throttle_limiter)),
    Variant("aiolimiter + ClientSession", "peer", aiohttp_wrapped(aiolimiter_limiter)),
    Variant("throttled-py + ClientSession", "peer", aiohttp_wrapped(throttled_py_limiter)),
)


# -- httpx ----------------------------------------------------------------------------------


def _limits(concurrency: int) -> httpx.Limits:
    return httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)


def _httpx_fetch(client: httpx.AsyncClient, url: str) -> Callable[[], Awaitable[None]]:
    async def fetch() -> None:
        response = await client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"unexpected status {response.status_code}")

    return fetch


def httpx_client(
    transport: Callable[[int], httpx.AsyncBaseTransport] | None,
) -> Callable[[str, int], AbstractAsyncContextManager[Callable[[], Awaitable[None]]]]:
    """An ``AsyncClient`` over ``transport(concurrency)`` (``None``: httpx's own)."""

    @asynccontextmanager
    async def open_(url: str, concurrency: int) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        client = (
            httpx.AsyncClient(limits=_limits(concurrency))
            if transport is None
            else httpx.AsyncClient(transport=transport(concurrency))
        )
        async with client:
            yield _httpx_fetch(client, url)

    return open_


def ours_transport(concurrency: int) -> httpx.AsyncBaseTransport:
    inner = httpx.AsyncHTTPTransport(limits=_limits(concurrency))
    return ThrottledTransport(inner, rate_limit=RATE, period=PERIOD)


def httpx_limiter_transport(
    make: Callable[[LimiterRate], Any],
) -> Callable[[int], httpx.AsyncBaseTransport]:
    """httpx-limiter's ``AsyncRateLimitedTransport.create(limiter=..., limits=...)``."""

    def transport(concurrency: int) -> httpx.AsyncBaseTransport:
        limiter = make(LimiterRate.create(magnitude=RATE, duration=PERIOD))
        return AsyncRateLimitedTransport.create(limiter=limiter, limits=_limits(concurrency))

    return transport


def httpx_wrapped(
    make_limiter: Callable[[], AbstractAsyncContextManager[Any]],
) -> Callable[[str, int], AbstractAsyncContextManager[Callable[[], Awaitable[None]]]]:
    """A plain client, each request inside ``async with limiter:``."""

    @asynccontextmanager
    async def open_(url: str, concurrency: int) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        limiter = make_limiter()
        async with httpx.AsyncClient(limits=_limits(concurrency)) as client:

            async def fetch() -> None:
                async with limiter:
                    response = await client.get(url)
                if response.status_code != 200:
                    raise RuntimeError(f"unexpected status {response.status_code}")

            yield fetch

    return open_


HTTPX = (
    Variant("httpx.AsyncClient", "plain", httpx_client(None)),
    Variant("ThrottledTransport", "ours", httpx_client(ours_transport)),
    Variant(
        "httpx-limiter (aiolimiter backend)",
        "peer",
        httpx_client(httpx_limiter_transport(AiolimiterAsyncLimiter.create)),
    ),
    Variant(
        "httpx-limiter (pyrate backend)",
        "peer",
        httpx_client(httpx_limiter_transport(PyrateAsyncLimiter.create)),
    ),
    Variant("asyncio-throttle + AsyncClient", "peer", httpx_wrapped(asyncio_throttle_limiter)),
    Variant("aiolimiter + AsyncClient", "peer", httpx_wrapped(aiolimiter_limiter)),
    Variant("throttled-py + AsyncClient", "peer", httpx_wrapped(throttled_py_limiter)),
)

CLIENTS = {"aiohttp": AIOHTTP, "httpx": HTTPX}
# Per client: GETs per run and rounds (--requests and --repeats override them). httpx is
# slower per request here (its pool looks at every connection for each request), so it
# gets shorter runs to keep the whole measurement within a few minutes.
REQUESTS = {"aiohttp": 5_000, "httpx": 1_000}
ROUNDS = {"aiohttp": 10, "httpx": 5}


# -- one run ----------------------------------------------------------------------------------


async def run_round(
    variants: Sequence[Variant], url: str, *, requests: int, concurrency: int, chunk: int, r: int
) -> dict[str, dict[str, float]]:
    """One round: ``requests`` GETs through every variant, in interleaved chunks.

    Every variant's session is opened (and its pool warmed) first, in this round's event
    loop; then the variants take turns, ``chunk`` GETs each, the order rotated every turn,
    until each has sent ``requests``. A burst of noise from another process lasts longer
    than a chunk, so it falls on every variant alike. Returns each variant's requests per
    second (over its chunks' wall time) and client CPU µs per request.
    """
    async with AsyncExitStack() as stack:
        fetches = {}
        for v in variants:
            fetch = await stack.enter_async_context(v.open(url, concurrency))
            await asyncio.gather(*(fetch() for _ in range(concurrency)))  # warm the pool up
            fetches[v.name] = fetch
        wall = dict.fromkeys(fetches, 0.0)
        cpu = dict.fromkeys(fetches, 0.0)
        sent = dict.fromkeys(fetches, 0)
        turn = r
        while any(n < requests for n in sent.values()):
            for name in rotated(list(fetches), turn):
                count = min(chunk, requests - sent[name])
                if count <= 0:
                    continue
                fetch = fetches[name]
                remaining = count

                async def worker(fetch: Callable[[], Awaitable[None]] = fetch) -> None:
                    nonlocal remaining
                    while remaining > 0:
                        remaining -= 1
                        await fetch()

                gc.collect()  # each chunk starts from the same collector state
                start = time.perf_counter()
                cpu0 = time.process_time()
                await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
                cpu[name] += time.process_time() - cpu0
                wall[name] += time.perf_counter() - start
                sent[name] += count
            turn += 1
    return {
        name: {"rate": sent[name] / wall[name], "cpu_us": cpu[name] / sent[name] * 1e6}
        for name in fetches
    }


def bench_client(
    variants: Sequence[Variant],
    url: str,
    *,
    requests: int,
    concurrency: int,
    rounds: int,
    chunk: int,
) -> dict[str, Any]:
    by_name = {v.name: v for v in variants}
    plain = next(v.name for v in variants if v.role == "plain")
    ours = next(v.name for v in variants if v.role == "ours")
    peers = [v.name for v in variants if v.role == "peer"]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in by_name}
    for r in range(rounds):
        got = asyncio.run(
            run_round(variants, url, requests=requests, concurrency=concurrency, chunk=chunk, r=r)
        )
        for name, figures_ in got.items():
            runs[name].append(figures_)
            print(
                f"round {r + 1}/{rounds}: {name:<36} {figures_['rate']:7,.0f} req/s "
                f"{figures_['cpu_us']:6.1f} us CPU/request",
                file=sys.stderr,
                flush=True,
            )
    rates = {name: [r["rate"] for r in rs] for name, rs in runs.items()}
    cpus = {name: [r["cpu_us"] for r in rs] for name, rs in runs.items()}
    figures: dict[str, dict[str, Any]] = {}
    for name in by_name:
        figures[name] = {
            "role": by_name[name].role,
            "rate": median(rates[name]),
            "ratio_to_plain": median(per_round(rates[name], rates[plain], operator.truediv)),
            "cpu_us": median(cpus[name]),
            "added_cpu_us": median(per_round(cpus[name], cpus[plain], operator.sub)),
            "ours_over_this": median(per_round(rates[ours], rates[name], operator.truediv)),
            "runs": runs[name],
        }
    best = max(peers, key=lambda name: figures[name]["ratio_to_plain"])
    return {
        "plain": plain,
        "ours": ours,
        "best_peer": best,
        "variants": figures,
        "per_round_ratio_to_plain": per_round(rates[ours], rates[plain], operator.truediv),
        "per_round_ratio_to_best_peer": per_round(rates[ours], rates[best], operator.truediv),
    }


def report(client: str, result: dict[str, Any], *, requests: int, concurrency: int) -> None:
    ours, plain, best = result["ours"], result["plain"], result["best_peer"]
    figures = result["variants"]
    rounds = len(figures[plain]["runs"])
    t = Table(
        "Variant",
        "req/s",
        "Ratio to plain",
        "Ours ÷ this",
        "Client CPU/request",
        "CPU added over plain",
    )
    for name, f in figures.items():
        t.add_row(
            name,
            f"{f['rate']:,.0f}",
            f"{f['ratio_to_plain']:.3f}",
            "" if name == ours else f"{f['ours_over_this']:.3f}",
            f"{f['cpu_us']:.1f} µs",
            "" if name == plain else f"{f['added_cpu_us']:+.1f} µs",
        )
    t.print(
        f"{client}: {requests:,} GETs at concurrency {concurrency}, limit never binding, "
        f"median of {rounds} interleaved rounds (ratios and differences within each round)"
    )
    to_plain = figures[ours]["ratio_to_plain"]
    to_best = figures[best]["ours_over_this"]
    shown = ", ".join(f"{r:.2f}" for r in result["per_round_ratio_to_plain"])
    print(f"{ours} / {plain}, per round: {shown}")
    shown = ", ".join(f"{r:.2f}" for r in result["per_round_ratio_to_best_peer"])
    print(f"{ours} / {best} (best peer), per round: {shown}")
    print()
    checks = Table("Target", "Measured", "Met")
    checks.add_row(
        f"{ours} >= 0.95 x {plain}", fmt_ratio(to_plain), "yes" if to_plain >= 0.95 else "NO"
    )
    checks.add_row(
        f"{ours} >= 0.95 x the best peer ({best})",
        fmt_ratio(to_best),
        "yes" if to_best >= 0.95 else "NO",
    )
    checks.print(f"{client}: targets (medians of per-round ratios)")


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=None, quick_repeats=2)
    p.add_argument(
        "--client",
        action="append",
        choices=sorted(CLIENTS),
        help="measure only this client (repeatable; default: both)",
    )
    p.add_argument(
        "--requests",
        type=int,
        default=None,
        help="GETs per run (default 5,000 for aiohttp, 1,000 for httpx; 1,000 and 500 quick)",
    )
    p.add_argument("--concurrency", type=int, default=50, help="workers (default 50)")
    p.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="GETs per turn within a round (default a tenth of --requests)",
    )
    args = parse(p)
    if (args.requests is not None and args.requests < 1) or args.concurrency < 1:
        p.error("--requests and --concurrency must be positive integers")
    clients = args.client or list(CLIENTS)
    env = print_header(
        "HTTP clients through throttled_http and its peers, side by side",
        "throttled_http",
        "aiohttp",
        "httpx",
        "httpcore",
        "sniffio",
        "asyncio-throttle",
        "aiolimiter",
        "throttled-py",
        "httpx-limiter",
        "pyrate-limiter",
    )
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    with local_server() as url:
        for client in clients:
            requests = args.requests or REQUESTS[client] // (5 if args.quick else 1)
            rounds = args.repeats or ROUNDS[client]
            results[client] = bench_client(
                CLIENTS[client],
                url,
                requests=requests,
                concurrency=args.concurrency,
                rounds=rounds,
                chunk=args.chunk or max(1, requests // 10),
            )
            results[client]["requests"] = requests
            report(client, results[client], requests=requests, concurrency=args.concurrency)
    print(f"total {time.perf_counter() - t0:.0f} s")
    write_json(
        args.json,
        {
            "environment": env,
            "concurrency": args.concurrency,
            "rate": RATE,
            "period": PERIOD,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
