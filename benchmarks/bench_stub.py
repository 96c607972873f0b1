"""The CPU throttled_http adds per request, with the client's own I/O stubbed out.

Over a real network (``bench_http_peers.py``) the client's own work (sockets, parsing,
the event loop's polling) is a hundred times our layer's and varies more than that from
run to run on a shared machine. Here the I/O is replaced by answers built once, so what
is left of a request is the client's bookkeeping and ours, and the difference between a
throttled and a bare call is the CPU our layer adds (``time.process_time()``, in ns per
request). Every throttled variant uses a limit that never binds (10 million per second),
a per-host ``ThrottlerMap`` and the default ``FeedbackPolicy()``, as
``ThrottledClientSession(rate_limit=...)`` and ``ThrottledTransport(rate_limit=...)`` do.

httpx, at the transport (what ``AsyncClient`` calls for each request):

* ``stub.handle_async_request(request)`` bare, where the stub returns one prebuilt,
  in-memory ``httpx.Response``, against ``ThrottledTransport(stub, ...)`` around it;
* the same with a streamed body (a new response each time, its one chunk read to the end
  and the response closed): the path a real connection takes, where the entry is held
  until the body ends.

aiohttp:

* ``ThrottleMiddleware.__call__(request, handler)``, ``handler`` returning a prebuilt
  response-like object whose connection runs its release callbacks when the response is
  released, against ``await handler(request)`` bare;
* a real ``aiohttp.ClientSession`` whose connector and request class are stubbed (no
  socket: ``connect()`` returns a fake connection and ``ClientRequest.send()`` the
  prebuilt response), so all of aiohttp's own per-request work above the connection runs
  (URL, headers, timeouts, the middleware chain, the context manager): plain; with one
  no-op middleware (the floor of any middleware-based design); with
  ``throttle_middleware(...)``; and ``ThrottledClientSession(..., connector=...,
  request_class=...)``, which is the whole of our layer (the session waits for the first
  hop's entry itself and lends it to its middleware).

The variants run interleaved, the order rotated every repeat; each figure is the median
over repeats, and each "added" figure the median of the per-repeat differences. The
garbage collector stays on (our allocations cost collections too); a full collection
runs before each sample.

Run::

    python benchmarks/bench_stub.py            # 20,000 requests x 15 repeats, about 3 minutes
    python benchmarks/bench_stub.py --quick    # 5,000 x 5, about 10 s
"""

from __future__ import annotations

import asyncio
import gc
import operator
import sys
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
from _common import (
    Table,
    fmt_ns,
    median,
    parse,
    parser,
    per_round,
    print_header,
    rotated,
    write_json,
)
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from throttled_http import FeedbackPolicy, ThrottlerMap
from throttled_http.aiohttp import ThrottledClientSession, throttle_middleware
from throttled_http.httpx import ThrottledTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

RATE = 10_000_000
TARGET_NS = 3_000
URL_TEXT = "http://127.0.0.1:8080/"

# The headers the benchmarks' local aiohttp server sends with its "ok".
_HEADERS = {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": "2",
    "Date": "Wed, 25 Nov 2026 15:00:00 GMT",
    "Server": "Python/3.11 aiohttp/3.14",
}


def hosts() -> ThrottlerMap:
    """What ``rate_limit=RATE`` builds: a per-host map whose limit never binds."""
    return ThrottlerMap(rate_limit=RATE, period=1.0)


# -- httpx ------------------------------------------------------------------------------


class InMemoryStub(httpx.AsyncBaseTransport):
    """Returns one prebuilt response, body in memory (so the entry closes at once)."""

    def __init__(self) -> None:
        self.response = httpx.Response(200, headers=_HEADERS, content=b"ok")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.response


class _Body(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"ok"


class StreamingStub(httpx.AsyncBaseTransport):
    """A new response each time, with a streamed body, as from a real connection."""

    def __init__(self) -> None:
        self.headers = list(_HEADERS.items())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=self.headers, stream=_Body())


def httpx_loop(transport: httpx.AsyncBaseTransport, streamed: bool) -> Callable[[int], Any]:
    request = httpx.Request("GET", URL_TEXT)
    handle = transport.handle_async_request

    async def run(n: int) -> None:
        for _ in range(n):
            response = await handle(request)
            if streamed:
                async for _ in response.stream:  # type: ignore[union-attr]
                    pass
                await response.aclose()

    return run


# -- aiohttp ----------------------------------------------------------------------------


class FakeProtocol:
    def set_response_params(self, **kwargs: object) -> None:
        pass


class FakeConnection:
    """What a response's ``connection`` offers: callbacks run when it is released."""

    __slots__ = ("_callbacks", "protocol")

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], object]] = []
        self.protocol = FakeProtocol()

    def add_callback(self, callback: Callable[[], object]) -> None:
        self._callbacks.append(callback)

    def release(self) -> None:
        callbacks = self._callbacks
        if callbacks:
            self._callbacks = []
            for callback in callbacks:
                callback()

    close = release


class StubResponse:
    """The parts of ``aiohttp.ClientResponse`` the session, the middleware and we read."""

    _raw_cookie_headers = None
    status = 200
    closed = False
    method = "GET"

    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.headers = CIMultiDictProxy(CIMultiDict(_HEADERS))
        self.url = URL(URL_TEXT)
        self._history: tuple[object, ...] = ()

    async def start(self, connection: object) -> StubResponse:
        return self

    async def read(self) -> bytes:
        return b"ok"

    def release(self) -> None:
        self.connection.release()

    close = release

    async def __aenter__(self) -> StubResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


CONNECTION = FakeConnection()
RESPONSE = StubResponse(CONNECTION)


class StubRequest(aiohttp.ClientRequest):
    """A real ``ClientRequest`` (built as usual) whose ``send()`` writes nothing."""

    async def send(self, conn: Any) -> Any:
        return RESPONSE


class StubConnector(aiohttp.BaseConnector):
    """A connector that opens no socket."""

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        return CONNECTION


class RequestLike:
    """What ``ThrottleMiddleware`` reads of an ``aiohttp.ClientRequest``."""

    __slots__ = ("body", "method", "url")

    def __init__(self) -> None:
        self.url = URL(URL_TEXT)
        self.method = "GET"
        self.body = None


async def handler(request: Any) -> Any:
    return RESPONSE


async def noop_middleware(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
    return await handler(request)


def middleware_loop(throttled: bool) -> Callable[[int], Any]:
    request = RequestLike()
    middleware = throttle_middleware(hosts(), feedback=FeedbackPolicy())

    async def run(n: int) -> None:
        if throttled:
            for _ in range(n):
                response = await middleware(request, handler)  # type: ignore[arg-type]
                response.release()
        else:
            for _ in range(n):
                response = await handler(request)
                response.release()

    return run


def session_loop(session: Any) -> Callable[[int], Any]:
    get = session.get

    async def run(n: int) -> None:
        for _ in range(n):
            async with get(URL_TEXT) as response:
                await response.read()

    return run


def stubbed(**kwargs: Any) -> dict[str, Any]:
    return {"connector": StubConnector(), "request_class": StubRequest, **kwargs}


# -- the run ----------------------------------------------------------------------------

HX_BARE = "httpx: stub transport, bare"
HX_OURS = "httpx: ThrottledTransport(stub)"
HX_BARE_S = "httpx: stub transport, bare, streamed body"
HX_OURS_S = "httpx: ThrottledTransport(stub), streamed body"
MW_BARE = "aiohttp: handler(request), bare"
MW_OURS = "aiohttp: ThrottleMiddleware(request, handler)"
S_PLAIN = "aiohttp: ClientSession (stubbed I/O)"
S_NOOP = "aiohttp: ClientSession + no-op middleware"
S_MW = "aiohttp: ClientSession + throttle_middleware"
S_OURS = "aiohttp: ThrottledClientSession (stubbed I/O)"

# (what is added, the throttled variant, its baseline)
ADDED = (
    ("httpx ThrottledTransport, body in memory", HX_OURS, HX_BARE),
    ("httpx ThrottledTransport, streamed body", HX_OURS_S, HX_BARE_S),
    ("aiohttp ThrottleMiddleware.__call__", MW_OURS, MW_BARE),
    ("aiohttp no-op middleware in a ClientSession (the chain's floor)", S_NOOP, S_PLAIN),
    ("aiohttp throttle_middleware in a ClientSession", S_MW, S_PLAIN),
    ("aiohttp ThrottledClientSession (all of our layer)", S_OURS, S_PLAIN),
)
TARGETED = (HX_OURS, HX_OURS_S, MW_OURS, S_MW, S_OURS)


async def measure(n: int, repeats: int) -> dict[str, list[float]]:
    """CPU ns per request of every variant, one sample per repeat, interleaved."""
    plain = aiohttp.ClientSession(**stubbed())
    noop = aiohttp.ClientSession(**stubbed(middlewares=(noop_middleware,)))
    with_mw = aiohttp.ClientSession(
        **stubbed(middlewares=(throttle_middleware(hosts(), feedback=FeedbackPolicy()),))
    )
    ours = ThrottledClientSession(rate_limit=RATE, period=1.0, **stubbed())
    in_memory, streaming = InMemoryStub(), StreamingStub()
    loops: dict[str, Callable[[int], Any]] = {
        HX_BARE: httpx_loop(in_memory, streamed=False),
        HX_OURS: httpx_loop(ThrottledTransport(in_memory, rate_limit=RATE), streamed=False),
        HX_BARE_S: httpx_loop(streaming, streamed=True),
        HX_OURS_S: httpx_loop(ThrottledTransport(streaming, rate_limit=RATE), streamed=True),
        MW_BARE: middleware_loop(throttled=False),
        MW_OURS: middleware_loop(throttled=True),
        S_PLAIN: session_loop(plain),
        S_NOOP: session_loop(noop),
        S_MW: session_loop(with_mw),
        S_OURS: session_loop(ours),
    }
    for run in loops.values():  # warm-up: every code path taken, every cache filled
        await run(max(100, n // 10))
    if CONNECTION._callbacks:
        raise RuntimeError("a stubbed response was not released")

    samples: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(repeats):
        print(f"repeat {r + 1}/{repeats}", file=sys.stderr, flush=True)
        got = {}
        for name in rotated(list(loops), r):
            gc.collect()
            cpu = time.process_time_ns()
            await loops[name](n)
            got[name] = (time.process_time_ns() - cpu) / n
        for name, ns in got.items():
            samples[name].append(ns)
    for session in (plain, noop, with_mw, ours):
        await session.close()
    return samples


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=15, quick_repeats=5)
    p.add_argument("--requests", type=int, default=None, help="per sample (default 20,000)")
    args = parse(p)
    n = args.requests or (5_000 if args.quick else 20_000)
    env = print_header(
        "Stubbed harness: CPU our layer adds per request",
        "throttled_http",
        "aiohttp",
        "httpx",
    )
    t0 = time.perf_counter()
    samples = asyncio.run(measure(n, args.repeats))

    t = Table("Variant", "CPU per request (median)", "Min", "Max")
    for name, values in samples.items():
        t.add_row(name, fmt_ns(median(values)), fmt_ns(min(values)), fmt_ns(max(values)))
    t.print(f"CPU per request, {n:,} requests x {args.repeats} interleaved repeats")

    added: dict[str, dict[str, float]] = {}
    t = Table("Added CPU per request", "Median", "Best", "Target", "Met (median)")
    for what, variant, base in ADDED:
        diff = median(per_round(samples[variant], samples[base], operator.sub))
        best = min(samples[variant]) - min(samples[base])
        added[what] = {"median_ns": diff, "best_ns": best}
        targeted = variant in TARGETED
        t.add_row(
            what,
            fmt_ns(diff),
            fmt_ns(best),
            f"<= {fmt_ns(TARGET_NS)}" if targeted else "(reference)",
            ("yes" if diff <= TARGET_NS else "NO") if targeted else "",
        )
    t.print(
        "What each layer adds: variant minus its baseline (median of the per-repeat "
        "differences; best = fastest repeat minus fastest repeat)"
    )
    print(f"total {time.perf_counter() - t0:.0f} s")
    write_json(
        args.json,
        {
            "environment": env,
            "requests": n,
            "repeats": args.repeats,
            "cpu_ns": samples,
            "added_ns": added,
            "target_ns": TARGET_NS,
        },
    )


if __name__ == "__main__":
    main()
