"""aiohttp integration: a session, a middleware and a trace config that throttle every hop.

```python
async with ThrottledClientSession(rate_limit=10) as session:
    async with session.get("https://api.example.com/items") as response:
        items = await response.json()
```

Three ways in, from the most complete to the least:

* [`ThrottledClientSession`][throttled_http.aiohttp.ThrottledClientSession] owns (or wraps)
  an `aiohttp.ClientSession` and throttles every request, every redirect hop and every
  retry, per host by default. Waiting for the throttler before the first hop does not count
  against the request's `ClientTimeout`.
* [`throttle_middleware`][throttled_http.aiohttp.throttle_middleware] for code that builds its own
  `ClientSession(middlewares=[...])`: aiohttp calls a client middleware once per hop,
  redirects and aiohttp's own retry of an idempotent request included. Put it **last** in
  the list (innermost), so that every request another middleware sends goes through it.
* [`throttle_trace_config`][throttled_http.aiohttp.throttle_trace_config] for code that can
  only add a `TraceConfig`. It sees the first hop and every redirect, but **not** aiohttp's
  internal retry of an idempotent request on a dropped keep-alive connection: the resent
  request rides on the entry of the one it replaces.

**Options as objects.** Each takes what throttles it as an object (`throttler=` a
[`ThrottlerMap`][throttled_http.ThrottlerMap], [`Throttler`][throttled_http.Throttler] or
`RedisThrottler`) and the server-feedback policy as another (`feedback=`); the session
also takes the shorthand `rate_limit=`/`period=` for a per-host map at that rate.

**The guarantee.** Each hop is a latency-proof entry of the throttler for its host: it
counts from admission until its response headers arrive (or it fails) and for `period`
seconds after that. A request can reach the server only in between, so the server sees at
most `rate_limit` requests in any window of `period` seconds, whatever the latency and
connection set-up time. With `burst=1` on the map, arrivals are at least
`period / rate_limit` seconds apart, which a leaky-bucket server (nginx `limit_req`)
accepts without a 429.

**Concurrency.** With `max_concurrency=n` on the map, a host has at most `n` responses
open. A slot is given back exactly once, when the response's connection is released: the
whole body has arrived (aiohttp buffers a small body at once, read or not), the response
was released or closed (`async with` does it), reading failed, or the request was
cancelled at any point. A response nobody releases gives its slot back `release_timeout`
seconds (default 300) after its headers arrived, with a warning on the `throttled_http`
logger. A `101 Switching Protocols` (`ws_connect`) gives the slot back as soon as the
handshake is done: a websocket is not a request in flight.

**Timeouts.** aiohttp starts a request's `ClientTimeout.total` before any middleware runs,
so a wait inside the middleware (every redirect hop or retry, and every hop with
[`throttle_middleware`][throttled_http.aiohttp.throttle_middleware]) counts against `total`.
[`ThrottledClientSession`][throttled_http.aiohttp.ThrottledClientSession] waits for the
first hop before calling aiohttp, outside `total`: queueing behind a quota never times a
request out by itself. `throttle_timeout=` bounds every wait for the throttler (raising
[`ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError], a `TimeoutError`).

**Server feedback.** A 429 or 503 with `Retry-After` pauses that host's throttler (at
most `max_retry_after` seconds); `FeedbackPolicy(adapt=True)` follows the rate-limit
headers the server advertises; `FeedbackPolicy(retries=n)` sends a refused request again,
through the throttler, after the delay the server asked for (never one whose body cannot
be replayed).

**Per request.** `session.get(url, throttled_http_cost=3)` weighs one call (an int, or
costs per unit such as `{"tokens": 420}`), `throttled_http_key=` charges another key and
`throttled_http_bypass=True` exempts it, redirects included; for a plain `ClientSession`
with the middleware, `with request_options(cost=3): ...` says the same.
`cost=fn(request)` and `reconcile=fn(response, tail)` on the session or the middleware
weigh every request and state its real cost once its body has been read.

**Mocks.** `aioresponses` replaces `ClientSession._request`, so no middleware runs;
[`ThrottledClientSession`][throttled_http.aiohttp.ThrottledClientSession] still charges each
mocked request (one entry per call, to the host of the URL called; aioresponses follows
mocked redirects itself, unseen), applies the server feedback of the mocked response and
retries it, so tests see the throttling. A `passthrough` request reaches the real middleware
and is charged once. See
[`throttled_http.testing.aioresponses_compat`][throttled_http.testing.aioresponses_compat].

All three are thin adapters over the package's one request pipeline, the one the httpx
transports use too: the session lends the first hop's entry to its middleware.

aiohttp names used that are not public API, each checked on aiohttp 3.12.0 to 3.14.5:
`ClientSession._build_url` (the base URL joined, as aiohttp will send the first hop;
`yarl.URL(url)` is the fallback), `ClientSession._middlewares` (the middlewares of a
wrapped session, which a per-request `middlewares=` would otherwise replace); and, with
`reconcile=` only, `ClientResponse._body` (a body read before the adapter saw the
response; checked on aiohttp 3.14.5, read with a fallback to `None`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar, final

from ._exceptions import InvalidURLError, ThrottlerTimeoutError, missing_extra

try:
    import aiohttp
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra(__name__, "aiohttp", "aiohttp") from exc

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._feedback import FeedbackPolicy
from ._holding import DEFAULT_RELEASE_TIMEOUT, Holds, check_release_timeout
from ._pipeline import (
    Pipeline,
    Ticket,
    check_callable,
    check_feedback,
    check_throttle_timeout,
    throttler_from_options,
)
from ._request_options import LENT as _LENT
from ._request_options import OPTIONS as _OPTIONS
from ._request_options import Options as _Options
from ._request_options import checked_options as _options
from ._request_options import request_options as request_options
from ._tail_reader import TailReader as _TailReader

if TYPE_CHECKING:
    from collections.abc import (
        Awaitable,
        Callable,
        Coroutine,
        Generator,
        Hashable,
        Iterable,
        Mapping,
        Sequence,
    )
    from types import SimpleNamespace

    from ._budgets import CostLike
    from ._hostmap import ThrottlerMap
    from ._pipeline import BodyTail
    from ._protocols import EntryLike, ThrottlerLike
    from ._rates import Rate

__all__ = [
    "DEFAULT_RELEASE_TIMEOUT",
    "InvalidURL",
    "RequestContextManager",
    "RequestLike",
    "ThrottleTimeout",
    "ThrottleMiddleware",
    "ThrottledClientSession",
    "request_options",
    "throttle_middleware",
    "throttle_trace_config",
]

_MAX_TARGETS: Final = 1024  # URL strings whose absolute URL a session remembers
_P: Final = "throttled_http_"  # the prefix of the session's per-call keywords

# 0.1 keywords that 0.2 moved into objects: named in the error, not passed on to aiohttp.
_MOVED: Final = {
    **dict.fromkeys(
        ("rates", "max_concurrency", "burst", "scope", "overrides", "backend"),
        "pass it to the map: throttler=ThrottlerMap(..., {name}=...)",
    ),
    **dict.fromkeys(
        ("max_retry_after", "adapt", "retries"),
        "pass it to the policy: feedback=FeedbackPolicy({name}=...)",
    ),
    "hold_timeout": "it is called release_timeout= now",
}

_Origin = tuple[str, "str | None", "int | None"]
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)


class InvalidURL(InvalidURLError, aiohttp.InvalidURL):
    """A hop's URL has no host a limit can be keyed by: no request was sent for it.

    Both [`throttled_http.InvalidURLError`][throttled_http.InvalidURLError] and aiohttp's
    own `InvalidURL` (an `aiohttp.ClientError`), so `except aiohttp.ClientError` catches it
    as it catches the error aiohttp raises for a URL it refuses. Raised, for example, for a
    redirect to `http://a|b/`. Nothing was admitted for the hop; the previous hop's slot was
    given back with its response.
    """

    def __init__(self, url: object, description: str) -> None:
        aiohttp.InvalidURL.__init__(self, str(url), description)


class ThrottleTimeout(ThrottlerTimeoutError, aiohttp.ClientError):
    """A hop waited `throttle_timeout` seconds for its turn in vain; nothing was sent.

    Both [`throttled_http.ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError] (a
    `TimeoutError`) and an `aiohttp.ClientError`, so `except aiohttp.ClientError` catches
    it. The message names the host's key and the timeout.
    """


def _native(url: object, exc: InvalidURLError | ThrottlerTimeoutError) -> aiohttp.ClientError:
    """Our error as the one aiohttp code catches (`aiohttp.ClientError`), same meaning."""
    if isinstance(exc, InvalidURLError):
        return InvalidURL(url, str(exc))
    return ThrottleTimeout(str(exc))


# -- per-request control -----------------------------------------------------------------

# request_options, its options value and context variable live in the client-agnostic
# _request_options; the public name is this module's.
request_options.__module__ = __name__


class RequestLike(Protocol):
    """What a `cost` callable reads of a request: its method, URL, headers and body.

    The middleware passes each hop's `aiohttp.ClientRequest`, which has these and more. A
    [`ThrottledClientSession`][throttled_http.aiohttp.ThrottledClientSession] weighs the
    first hop of a call before aiohttp builds that request (so that the wait stays outside
    `ClientTimeout`), and passes a stand-in with exactly these four attributes, as aiohttp
    will send them: the method in upper case, the absolute URL with `params=`, the
    session's default headers updated with the call's, and the body as the payload aiohttp
    makes of `json=` or of an in-memory `data=` (bytes, str, a `Payload`), else `b""` (a
    form, a file or a stream are not read ahead). Later hops (redirects) pass their
    `ClientRequest`. A callable that reads only these four serves both.
    """

    @property
    def method(self) -> str: ...
    @property
    def url(self) -> URL: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def body(self) -> aiohttp.Payload | bytes: ...


@final
class _FirstHop:
    """A session call's first hop, for its `cost` callable: see `RequestLike`."""

    __slots__ = ("_body", "_headers", "_kwargs", "_session", "method", "url")

    def __init__(
        self, session: aiohttp.ClientSession, method: str, url: URL, kwargs: dict[str, Any]
    ) -> None:
        self._session = session
        self.method = method.upper()
        params = kwargs.get("params")
        self.url = url.extend_query(params) if params else url
        self._kwargs = kwargs
        self._headers: CIMultiDictProxy[str] | None = None
        self._body: aiohttp.Payload | bytes | None = None

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        headers = self._headers
        if headers is None:
            merged = CIMultiDict(self._session.headers)
            given = self._kwargs.get("headers")
            if given:
                merged.update(given)
            headers = self._headers = CIMultiDictProxy(merged)
        return headers

    @property
    def body(self) -> aiohttp.Payload | bytes:
        body = self._body
        if body is None:
            kwargs = self._kwargs
            value = kwargs.get("json")
            data = kwargs.get("data")
            if value is not None:
                body = aiohttp.JsonPayload(value, dumps=self._session.json_serialize)
            elif isinstance(data, aiohttp.Payload):
                body = data
            elif isinstance(data, (bytes, bytearray, memoryview)):
                body = aiohttp.BytesPayload(data)
            elif isinstance(data, str):
                body = aiohttp.StringPayload(data)
            else:
                body = b""
            self._body = body
        return body

    def __repr__(self) -> str:
        return f"<first hop {self.method} {self.url}>"


# -- reading aiohttp requests and responses for the pipeline -----------------------------


class _Exchange:
    """What the pipeline reads of an aiohttp hop (the middleware's `ClientRequest`)."""

    __slots__ = ("holds", "reconciling")

    def __init__(self, holds: Holds, reconciling: Pipeline | None) -> None:
        self.holds = holds
        self.reconciling = reconciling  # the pipeline, when it has a reconcile callable

    def status(self, response: aiohttp.ClientResponse) -> int:
        return response.status

    def headers(self, response: aiohttp.ClientResponse) -> CIMultiDictProxy[str]:
        return response.headers

    def method(self, request: aiohttp.ClientRequest) -> str:
        return request.method

    def replayable(self, request: aiohttp.ClientRequest) -> bool:
        return not getattr(request.body, "consumed", False)

    def hold(
        self, response: aiohttp.ClientResponse, entry: EntryLike, key: str
    ) -> aiohttp.ClientResponse:
        """Close `entry` when `response`'s connection is released; follow its body."""
        connection = response.connection
        status = response.status
        if connection is None or response.closed or status == 101:
            entry.close()
        else:
            connection.add_callback(self.holds.hold(entry, key).release)
        reconciling = self.reconciling
        if reconciling is not None and status != 101:
            tail = reconciling.body_tail(response, entry)
            if tail is not None:
                _follow(response, tail)
        return response


def _follow(response: aiohttp.ClientResponse, tail: BodyTail) -> None:
    """Feed `response`'s body to `tail` as it is read; `done()` once it is complete."""
    body: bytes | None = getattr(response, "_body", None)
    content = response.content
    if body is None:
        if not content.at_eof():
            response.content = _TailReader(content, tail)  # type: ignore[assignment]
            return
    else:
        tail.feed(body)  # read already (a mock that sets the body)
    try:
        tail.done()  # an empty body, or one read already: complete now
    except BaseException:
        response.close()
        raise


@final
class _Call:
    """One call of a session request method: what the session's own journey reads."""

    __slots__ = ("cost", "kwargs", "method", "url")

    def __init__(self, method: str, url: Any, kwargs: dict[str, Any], cost: CostLike) -> None:
        self.method = method
        self.url = url
        self.kwargs = kwargs
        self.cost = cost


@final
class _CallExchange(_Exchange):
    """The session's side: a whole call, seen only when no middleware ran (a mock)."""

    __slots__ = ()

    def method(self, request: _Call) -> str:  # type: ignore[override]
        return request.method

    def replayable(self, request: _Call) -> bool:  # type: ignore[override]
        data = request.kwargs.get("data")
        return not (hasattr(data, "__aiter__") or hasattr(data, "read"))


def _release(response: aiohttp.ClientResponse) -> None:
    response.release()


# -- the middleware ----------------------------------------------------------------------


@final
class ThrottleMiddleware:
    """An aiohttp client middleware that makes every hop wait for its host's throttler.

    Build it with [`throttle_middleware`][throttled_http.aiohttp.throttle_middleware].
    aiohttp calls it once per hop: the first request, each redirect, and its own resend of
    an idempotent request whose keep-alive connection dropped. Each call waits for an entry
    of the hop's throttler, settles it when the response headers arrive and closes it when
    the response is released. It reads the options of
    [`request_options`][throttled_http.aiohttp.request_options] for every hop.
    """

    __slots__ = ("_exchange", "_pipeline")

    def __init__(
        self,
        throttler: ThrottlerLike | ThrottlerMap,
        *,
        feedback: FeedbackPolicy | None = None,
        release_timeout: float | None = DEFAULT_RELEASE_TIMEOUT,
        throttle_timeout: float | None = None,
        cost: Callable[[aiohttp.ClientRequest], CostLike] | None = None,
        reconcile: Callable[[aiohttp.ClientResponse, bytes], Mapping[str, int] | None]
        | None = None,
    ) -> None:
        holds = Holds(check_release_timeout(release_timeout))
        reconcile = check_callable("reconcile", reconcile)
        self._pipeline: Pipeline = Pipeline(
            throttler_from_options(throttler, None, None),
            check_feedback(feedback),
            holds,
            check_throttle_timeout(throttle_timeout),
            check_callable("cost", cost),
            reconcile,
        )
        self._exchange = _Exchange(holds, None if reconcile is None else self._pipeline)

    @property
    def throttler(self) -> ThrottlerLike | ThrottlerMap:
        """The throttler or map every hop is charged to."""
        return self._pipeline.throttler  # type: ignore[no-any-return]

    @property
    def feedback(self) -> FeedbackPolicy | None:
        """The server-feedback policy applied to every response, if any."""
        return self._pipeline.feedback

    async def __call__(
        self,
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        url = request.url
        options = _OPTIONS.get()
        cost: CostLike | None = None
        target: object = url
        origin: Hashable | None = (url.scheme, url.raw_host, url.port)  # the map remembers it
        if options is not None:
            if options.bypass:
                return await handler(request)
            cost = options.cost
            if options.key is not None:
                target, origin = options.keyed(url.scheme), None
        pipeline = self._pipeline
        lent = _LENT.get()
        ticket = None
        if lent is not None:
            ticket = lent[0]
            if cost is None and ticket.pipeline is pipeline and not ticket.claimed:
                cost = lent[1]  # what the session weighed this hop at
        steps = pipeline.steps(self._exchange, request, target, origin, cost, ticket=ticket)

        def send(request: aiohttp.ClientRequest, ticket: Ticket | None) -> Any:
            return handler(request)

        try:
            return await pipeline.run(steps, request, send, _release)
        except (InvalidURLError, ThrottlerTimeoutError) as exc:  # ours, as aiohttp's errors
            if isinstance(exc, aiohttp.ClientError):
                raise  # already aiohttp's (a session's lent hop, a nested middleware)
            raise _native(url, exc) from exc

    def __repr__(self) -> str:
        return f"<ThrottleMiddleware {self.throttler!r}>"


def throttle_middleware(
    throttler: ThrottlerLike | ThrottlerMap,
    *,
    feedback: FeedbackPolicy | None = None,
    release_timeout: float | None = DEFAULT_RELEASE_TIMEOUT,
    throttle_timeout: float | None = None,
    cost: Callable[[aiohttp.ClientRequest], CostLike] | None = None,
    reconcile: Callable[[aiohttp.ClientResponse, bytes], Mapping[str, int] | None] | None = None,
) -> ThrottleMiddleware:
    """A client middleware charging every hop to `throttler` (aiohttp >= 3.12).

    ```python
    hosts = ThrottlerMap(rate_limit=5, period=1.0)
    async with aiohttp.ClientSession(middlewares=[auth, throttle_middleware(hosts)]) as s:
        ...
    ```

    Put it **last** in `middlewares` (innermost): a middleware listed after it could send
    requests that skip the throttler. It sees every hop aiohttp sends: redirects and
    aiohttp's own retry of an idempotent request included. Its wait for the throttler runs
    inside aiohttp's `ClientTimeout.total` for the request.

    **Per request.** A plain `ClientSession` takes no keyword of ours, so the options of
    one request go in a block around it, which the middleware reads for each of its hops
    (see [`request_options`][throttled_http.aiohttp.request_options]):

    ```python
    with request_options(cost={"tokens": 420}):  # or key="api.example.com", bypass=True
        async with session.post(url, json=body) as response:
            ...
    ```

    **Costs and reconciliation.** `cost=fn` weighs every hop that names no cost of its
    own: it is called with the hop's `aiohttp.ClientRequest` (`method`, `url`, `headers`,
    `body`...) once per hop, before the hop waits, and returns an int >= 1 or costs per
    unit such as `{"tokens": 420}` (for a throttler built with `budgets=`). `reconcile=fn`
    states what a request really cost once its body has been read: it is called with the
    `aiohttp.ClientResponse` and the last `RECONCILE_TAIL_BYTES` (64 KiB) of the body
    as bytes, once, when a read (`read()`, `json()`, `text()`, or the end of iterating
    `response.content`) reaches the end of the body; at once for an empty body. It returns
    the real costs of some units (`{"tokens": 87}`, from a JSON body's `usage` say) or
    `None`, and the hop's entry is reconciled with them
    ([`Entry.reconcile`][throttled_http.Entry.reconcile]). A body released, closed or
    broken before its end is not reconciled: what was charged stands. With `reconcile=`,
    `response.content` is a thin wrapper over aiohttp's `StreamReader` with the same
    methods, which keeps the body's tail as it is read; without it nothing changes. An
    error either callable raises propagates to the caller (from the request, or from the
    read that ended the body).

    Args:
        throttler: a [`Throttler`][throttled_http.Throttler] (or any
            [`ThrottlerLike`][throttled_http.ThrottlerLike]) for one shared limit, or a
            [`ThrottlerMap`][throttled_http.ThrottlerMap] for a limit per host.
        feedback: a [`FeedbackPolicy`][throttled_http.FeedbackPolicy] applied to every response
            (pauses on `Retry-After`, optional adaptation and retries); `None`: none.
        release_timeout: seconds after its headers arrived that a response nobody releases
            gives its concurrency slot back (finite, > 0; `None`: never).
        throttle_timeout: seconds a hop may wait for the throttler at most, then
            [`ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError] (`None`: no limit).
        cost: `fn(request) -> int | Mapping[str, int]`, the cost of a hop that names none
            (`None`: 1).
        reconcile: `fn(response, tail: bytes) -> Mapping[str, int] | None`, the real costs
            of a request once its body has been read (`None`: none).

    Raises:
        TypeError, ValueError: on an invalid argument, naming it.

    Changed in 0.2: the first parameter is `throttler` (was `limiter`);
    `hold_timeout` is `release_timeout`. Added in 0.2: `cost` and `reconcile`.
    """
    return ThrottleMiddleware(
        throttler,
        feedback=feedback,
        release_timeout=release_timeout,
        throttle_timeout=throttle_timeout,
        cost=cost,
        reconcile=reconcile,
    )


# -- the trace config --------------------------------------------------------------------


def throttle_trace_config(
    throttler: ThrottlerLike | ThrottlerMap,
    *,
    release_timeout: float | None = DEFAULT_RELEASE_TIMEOUT,
    throttle_timeout: float | None = None,
) -> aiohttp.TraceConfig:
    """A `TraceConfig` that charges the first hop and every redirect to `throttler`.

    For code that can pass `trace_configs=[...]` but no middleware:

    ```python
    session = aiohttp.ClientSession(trace_configs=[throttle_trace_config(hosts)])
    ```

    It waits in `on_request_start` (for the first hop) and `on_request_redirect` (for
    the next hop, charged to the host the redirect goes to), settles an entry when its
    response headers arrive, and closes it when the response is released. It reads the
    cost, key and bypass of [`request_options`][throttled_http.aiohttp.request_options]
    for every hop; it takes no `cost` or `reconcile` callable.

    What it misses: aiohttp's internal resend of an idempotent request whose keep-alive
    connection dropped sends no signal, so the resend rides on its predecessor's entry and a
    server may see one request more than the limit in that window. Prefer
    [`throttle_middleware`][throttled_http.aiohttp.throttle_middleware] where you can. Its
    wait for the first hop runs after aiohttp armed `ClientTimeout.total` but before aiohttp
    watches it: a wait longer than `total` leaves that request without a total timeout
    (aiohttp behaviour). Use `throttle_timeout` to bound the wait.

    Args:
        throttler: a throttler or a [`ThrottlerMap`][throttled_http.ThrottlerMap], as for
            [`throttle_middleware`][throttled_http.aiohttp.throttle_middleware].
        release_timeout: as for [`throttle_middleware`][throttled_http.aiohttp.throttle_middleware].
        throttle_timeout: as for
            [`throttle_middleware`][throttled_http.aiohttp.throttle_middleware].
    """
    holds = Holds(check_release_timeout(release_timeout))
    pipeline: Pipeline = Pipeline(
        throttler_from_options(throttler, None, None),
        None,
        holds,
        check_throttle_timeout(throttle_timeout),
    )
    exchange = _Exchange(holds, None)

    async def admit(ctx: SimpleNamespace, url: URL) -> None:
        ctx.throttled_http_entry = None
        options = _OPTIONS.get()
        target: object = url
        cost: CostLike = 1
        if options is not None:
            if options.bypass:
                return
            if options.cost is not None:
                cost = options.cost
            if options.key is not None:
                target = options.keyed(url.scheme)
        try:
            admitted = await pipeline.admit(target, None, cost)
        except (InvalidURLError, ThrottlerTimeoutError) as exc:
            raise _native(url, exc) from exc
        if admitted is not None:
            ctx.throttled_http_key, _, ctx.throttled_http_entry = admitted

    def close(ctx: SimpleNamespace) -> None:
        entry: EntryLike | None = getattr(ctx, "throttled_http_entry", None)
        ctx.throttled_http_entry = None
        if entry is not None:
            entry.close()

    async def on_start(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        await admit(ctx, params.url)

    async def on_redirect(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestRedirectParams,
    ) -> None:
        close(ctx)  # aiohttp releases a redirect response right after this signal
        location = params.response.headers.get("Location") or params.response.headers.get("URI")
        if location is None:
            return
        try:
            target = params.url.join(URL(location))
        except ValueError:
            return  # aiohttp raises InvalidUrlRedirectClientError next
        if target.scheme in ("http", "https") and target.host:
            await admit(ctx, target)

    async def on_end(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        entry: EntryLike | None = getattr(ctx, "throttled_http_entry", None)
        ctx.throttled_http_entry = None
        if entry is not None:
            entry.settle()
            exchange.hold(params.response, entry, ctx.throttled_http_key)

    async def on_exception(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        close(ctx)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_start)
    config.on_request_redirect.append(on_redirect)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    config.freeze()
    return config


# -- the session -------------------------------------------------------------------------


class RequestContextManager(Protocol[_R_co]):
    """What the request methods of a session return, as aiohttp's own do.

    `await` it for the response, which you then release (`response.release()`) or read to
    the end; or `async with` it, which releases the response when the block exits:

    ```python
    response = await session.get(url)
    async with session.get(url) as response:
        ...
    ```

    A type for annotations only: the methods return an object of this shape.
    """

    def __await__(self) -> Generator[Any, None, _R_co]: ...

    async def __aenter__(self) -> _R_co: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


@final
class _RequestContext(Generic[_R]):
    """What a request method returns, as aiohttp's own: awaitable, or `async with`."""

    __slots__ = ("_coro", "_response")

    def __init__(self, coro: Coroutine[Any, Any, _R]) -> None:
        self._coro = coro
        self._response: Any = None

    def __await__(self) -> Generator[Any, None, _R]:
        return self._coro.__await__()

    async def __aenter__(self) -> _R:
        self._response = await self._coro
        return await self._response.__aenter__()  # type: ignore[no-any-return]

    async def __aexit__(self, *exc_info: object) -> None:
        await self._response.__aexit__(*exc_info)


@final
class ThrottledClientSession:
    """An `aiohttp.ClientSession` in which every request waits its turn, per host.

    ```python
    async with ThrottledClientSession(rate_limit=3, period=1.0) as session:
        async with session.get(url) as response:
            body = await response.read()

    hosts = ThrottlerMap(rates="10/s; 1000/h", max_concurrency=4, overrides={...})
    session = ThrottledClientSession(throttler=hosts, feedback=FeedbackPolicy(retries=3))
    ```

    It behaves as a `ClientSession` does for its users (`get`, `post`, `put`, `patch`,
    `delete`, `head`, `options`, `request` return the same awaitable context managers;
    `ws_connect`, `async with`, `close()`, `closed`; every keyword argument passes through)
    but it is not one: it owns one (composition, as aiohttp forbids subclassing
    `ClientSession`). [`session`][throttled_http.aiohttp.ThrottledClientSession.session] is
    the inner session.

    See the module documentation for the guarantee, concurrency, timeouts, feedback and
    mocks. In short: no window of `period` seconds at a host's server holds more than
    `rate_limit` of this session's requests (redirect hops and retries included), and
    waiting for the first hop does not count against `ClientTimeout`.

    **Per request**, every request method (and `ws_connect`) takes three keywords of ours,
    removed before aiohttp sees the others; each applies to every hop of the call
    (redirects, retries, aiohttp's resend), as the httpx extensions of the same names do:

    ```python
    await session.get(url, throttled_http_cost=3)  # weigh this request 3
    await session.post(url, json=body, throttled_http_cost={"tokens": 420})  # per unit
    await session.get(url, throttled_http_key="api.example.com")  # charge another key
    await session.get(url, throttled_http_bypass=True)  # do not throttle it
    ```

    `throttled_http_cost` is an int >= 1, or costs per unit for a throttler built with
    `budgets=` (checked by the throttler when it admits the hop; `None`: the `cost`
    callable decides, else 1). `throttled_http_key` is a URL or a host name (which gets
    the hop's scheme), ignored with a single shared throttler. `throttled_http_bypass=True`
    beside either of the others is a `TypeError`. Requests sent inside
    [`request_options`][throttled_http.aiohttp.request_options] get its options, which a
    call's own keywords override.

    **Costs and reconciliation** as for
    [`throttle_middleware`][throttled_http.aiohttp.throttle_middleware], with one
    difference: the session weighs a call's first hop before aiohttp builds its
    `ClientRequest` (the wait stays outside `ClientTimeout`), so `cost=fn` gets a stand-in
    with the same `method`, `url`, `headers` and `body` for it (see
    [`RequestLike`][throttled_http.aiohttp.RequestLike]), and the `ClientRequest` of every
    later hop. Mocked requests (aioresponses) are weighed and reconciled too.

    Create it inside a coroutine, as a `ClientSession`.

    Args:
        rate_limit: shorthand for `throttler=ThrottlerMap(rate_limit, period)`: requests
            per window per host, an int >= 1 or a rate such as `"10/s"` (default 10).
        period: the window of an int `rate_limit`, in seconds (default 1.0).
        throttler: a [`ThrottlerMap`][throttled_http.ThrottlerMap] (a limit per host: rates,
            burst, `max_concurrency`, scope, overrides, backend all live there), or a
            [`Throttler`][throttled_http.Throttler] or `RedisThrottler` (one limit for all),
            shared with other sessions or clients if you like. Not with `rate_limit` or
            `period`.
        feedback: a [`FeedbackPolicy`][throttled_http.FeedbackPolicy] (default
            `FeedbackPolicy()`: pause on `Retry-After`, no retries).
        session: an `aiohttp.ClientSession` to wrap instead of creating one; the caller
            keeps ownership (`close()` leaves it open) unless `close_session=True`.
            `client_session_kwargs` must then be empty.
        close_session: whether
            [`close`][throttled_http.aiohttp.ThrottledClientSession.close] closes a wrapped
            `session`.
        release_timeout: seconds after its headers arrived that a response nobody releases
            gives its concurrency slot back (`None`: never).
        throttle_timeout: seconds a hop may wait for the throttler at most, then
            [`ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError] (`None`: no limit).
        cost: `fn(request) -> int | Mapping[str, int]`, the cost of a request that names
            none (`None`: 1); `request` is a [`RequestLike`][throttled_http.aiohttp.RequestLike].
        reconcile: `fn(response, tail: bytes) -> Mapping[str, int] | None`, the real costs
            of a request once its body has been read to the end (`None`: none).
        client_session_kwargs: passed to `aiohttp.ClientSession` (`headers`,
            `timeout`, `connector`, `middlewares`, `trace_configs`...).

    Raises:
        TypeError, ValueError: on an invalid argument, naming it.

    Changed in 0.2: every parameter is keyword-only; the limit options moved to `throttler=`
    and the feedback options to `feedback=`; `hold_timeout` is `release_timeout`; the
    `limiter` property is
    [`throttler`][throttled_http.aiohttp.ThrottledClientSession.throttler].

    Added in 0.2: `cost`, `reconcile` and the `throttled_http_*` keywords.
    """

    __slots__ = (
        "_close_session",
        "_exchange",
        "_middleware",
        "_middlewares",
        "_per_request",
        "_pipeline",
        "_session",
        "_targets",
    )

    def __init__(
        self,
        *,
        rate_limit: int | str | Rate | None = None,
        period: float | None = None,
        throttler: ThrottlerLike | ThrottlerMap | None = None,
        feedback: FeedbackPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        close_session: bool = False,
        release_timeout: float | None = DEFAULT_RELEASE_TIMEOUT,
        throttle_timeout: float | None = None,
        cost: Callable[[RequestLike], CostLike] | None = None,
        reconcile: Callable[[aiohttp.ClientResponse, bytes], Mapping[str, int] | None]
        | None = None,
        **client_session_kwargs: Any,
    ) -> None:
        for name in client_session_kwargs.keys() & _MOVED.keys():
            raise TypeError(
                f"ThrottledClientSession() takes no {name}= since 0.2: "
                + _MOVED[name].format(name=name)
            )
        middleware = ThrottleMiddleware(
            throttler_from_options(throttler, rate_limit, period),
            feedback=check_feedback(feedback) or FeedbackPolicy(),
            release_timeout=release_timeout,
            throttle_timeout=throttle_timeout,
            cost=cost,
            reconcile=reconcile,
        )
        middlewares: Sequence[Any]
        if session is None:
            if close_session:
                raise TypeError("close_session=True needs a session= to close")
            middlewares = tuple(client_session_kwargs.pop("middlewares", None) or ())
            # Ours last: innermost, so every hop any other middleware sends is charged.
            session = aiohttp.ClientSession(
                middlewares=(*middlewares, middleware), **client_session_kwargs
            )
            close_session = True
            per_request = False
        else:
            if not isinstance(session, aiohttp.ClientSession):
                raise TypeError(f"session must be an aiohttp.ClientSession, got {session!r}")
            if client_session_kwargs:
                raise TypeError(
                    "session= wraps a session you built: pass "
                    f"{', '.join(sorted(client_session_kwargs))} to its constructor instead"
                )
            # The wrapped session's own middlewares run first, ours innermost, passed with
            # each request (a session's middlewares cannot be changed after it is built).
            middlewares = tuple(getattr(session, "_middlewares", None) or ())
            per_request = True
        self._session = session
        self._close_session = bool(close_session)
        self._middleware = middleware
        # The session's own journey shares the middleware's pipeline: the middleware
        # claims what the session lends it.
        self._pipeline = middleware._pipeline
        self._exchange = _CallExchange(
            self._pipeline.holds,  # type: ignore[arg-type]  # an asyncio pipeline's
            middleware._exchange.reconciling,
        )
        self._middlewares = (*middlewares, middleware)
        self._per_request = per_request
        self._targets = _Targets(session)

    # -- properties ------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        """The inner `aiohttp.ClientSession` (requests made on it directly bypass us)."""
        return self._session

    @property
    def throttler(self) -> ThrottlerLike | ThrottlerMap:
        """The [`ThrottlerMap`][throttled_http.ThrottlerMap] (or shared throttler) in use."""
        return self._middleware.throttler

    @property
    def feedback(self) -> FeedbackPolicy:
        """The server-feedback policy (its `statistics` too)."""
        return self._pipeline.feedback  # type: ignore[return-value]

    @property
    def closed(self) -> bool:
        """Whether the inner session is closed."""
        return self._session.closed

    @property
    def cookie_jar(self) -> aiohttp.abc.AbstractCookieJar:
        """The inner session's cookie jar."""
        return self._session.cookie_jar

    @property
    def headers(self) -> Any:
        """The inner session's default headers."""
        return self._session.headers

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        """The inner session's default `ClientTimeout`."""
        return self._session.timeout

    @property
    def connector(self) -> aiohttp.BaseConnector | None:
        """The inner session's connector."""
        return self._session.connector

    # -- requests --------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: Any,
        *,
        throttled_http_cost: CostLike | None = None,
        throttled_http_key: str | None = None,
        throttled_http_bypass: bool = False,
        **kwargs: Any,
    ) -> RequestContextManager[aiohttp.ClientResponse]:
        """Send `method` to `url` through the throttler; as `ClientSession.request`.

        The `throttled_http_*` keywords are this call's own options (every request method
        takes them), never passed to aiohttp: see the class documentation.
        """
        explicit = _options(throttled_http_cost, throttled_http_key, throttled_http_bypass, _P)
        return _RequestContext(self._request(method, url, kwargs, explicit))

    def get(
        self,
        url: Any,
        *,
        throttled_http_cost: CostLike | None = None,
        throttled_http_key: str | None = None,
        throttled_http_bypass: bool = False,
        **kwargs: Any,
    ) -> RequestContextManager[aiohttp.ClientResponse]:
        """`GET`, as `ClientSession.get`."""
        explicit = _options(throttled_http_cost, throttled_http_key, throttled_http_bypass, _P)
        return _RequestContext(self._request("GET", url, kwargs, explicit))

    def options(
        self,
        url: Any,
        *,
        throttled_http_cost: CostLike | None = None,
        throttled_http_key: str | None = None,
        throttled_http_bypass: bool = False,
        **kwargs: Any,
    ) -> RequestContextManager[aiohttp.ClientResponse]:
        """`OPTIONS`, as `ClientSession.options`."""
        explicit = _options(throttled_http_cost, throttled_http_key, throttled_http_bypass, _P)
        return _RequestContext(self._request("OPTIONS", url, kwargs, explicit))

    def head(
        self,
        url: Any,
        *,
        throttled_http_cost: CostLike | None = None,
        throttled_http_key: str | None = None,
        throttled_http_bypass: bool = False,
        **kwargs: Any,
    ) -> RequestContextManager[aiohttp.ClientResponse]:
        """`HEAD` (no redirects unless `allow_redirects=True`), as `ClientSession.head`."""
        kwargs.setdefault("allow_redirects", False)
        explicit = _options(throttled_http_cost, throttled_http_key, throttled_http_bypass, _P)
        return _RequestContext(self._request("HEAD", url, kwargs, explicit))

    def post(
        self,
        url: Any,
        *,
        throttled_http_cost: CostLike | None = None,
        throttled_http_key: str | None = None,
        throttled_http_bypass: bool = False,
        **kwargs: Any,
    ) -> RequestContextManager[aiohttp.ClientResponse]:
        """`POST`, as `ClientSession.post`."""
        explicit = _options(throttled_http_cost, throttled_http_key, throttled_http_bypass, _P)
        return _RequestContext(self._request("POST", url, kwargs, explicit))

    def put(
        self,
        url: Any,
        *,
        throttled_http_cost: CostLike | None = None,
        throttled_http_key: str | None = None,
        throttled_http_bypass: bool = False,
        **kwargs: Any,
    ) -> RequestContextManager[aiohttp.ClientResponse]:
        """`PUT`, as `ClientSession.put`."""
        explicit = _options(throttled_http_cost, throttled_http_key, throttled_http_bypass, _P)
        return _RequestContext(self._request("PUT", url, kwargs, explicit))

    def patch(
        self,
        url: Any,
        *,
        throttled_http_cost: CostLike | None = None,
        throttled_http_key: str | None = None,
        throttled_http_bypass: bool = False,
        **kwargs: Any,
    ) -> RequestContextManager[aiohttp.ClientResponse]:
        """`PATCH`, as `ClientSession.patch`."""
        explicit = _options(throttled_http_cost, throttled_http_key, throttled_http_bypass, _P)
        return _RequestContext(self._request("PATCH", url, kwargs, explicit))

    def delete(
        self,
        url: Any,
        *,
        throttled_http_cost: CostLike | None = None,
        throttled_http_key: str | None = None,
        throttled_http_bypass: bool = False,
        **kwargs: Any,
    ) -> RequestContextManager[aiohttp.ClientResponse]:
        """`DELETE`, as `ClientSession.delete`."""
        explicit = _options(throttled_http_cost, throttled_http_key, throttled_http_bypass, _P)
        return _RequestContext(self._request("DELETE", url, kwargs, explicit))

    def ws_connect(
        self,
        url: Any,
        *,
        throttled_http_cost: CostLike | None = None,
        throttled_http_key: str | None = None,
        throttled_http_bypass: bool = False,
        **kwargs: Any,
    ) -> RequestContextManager[aiohttp.ClientWebSocketResponse]:
        """Open a websocket, as `ClientSession.ws_connect`; the handshake is throttled.

        The handshake's slot is given back once the connection is upgraded.
        """
        explicit = _options(throttled_http_cost, throttled_http_key, throttled_http_bypass, _P)
        return _RequestContext(self._ws_connect(url, kwargs, explicit))

    async def _ws_connect(self, url: Any, kwargs: dict[str, Any], explicit: _Options | None) -> Any:
        options = _OPTIONS.get()
        scope = None
        if explicit is not None:
            options = explicit.over(options)
            scope = _OPTIONS.set(options)
        try:
            hop = self._targets.first_hop(url)
            ticket = None
            cost: CostLike = 1
            if hop is not None and (options is None or not options.bypass):
                method = kwargs.get("method", "GET")
                target, origin, cost = _route(
                    self._pipeline, self._session, hop, options, method, kwargs
                )
                try:
                    ticket = await self._pipeline.lend(target, origin, cost)
                except (InvalidURLError, ThrottlerTimeoutError) as exc:
                    raise _native(url, exc) from exc
            token = _LENT.set(None if ticket is None else (ticket, cost))
            try:
                return await self._session.ws_connect(url, **kwargs)
            finally:
                _LENT.reset(token)
                if ticket is not None and not ticket.claimed:
                    ticket.entry.close()  # the wrapped session runs no middleware of ours
        finally:
            if scope is not None:
                _OPTIONS.reset(scope)

    async def _request(
        self, method: str, url: Any, kwargs: dict[str, Any], explicit: _Options | None
    ) -> aiohttp.ClientResponse:
        middlewares = kwargs.get("middlewares")
        if middlewares is not None or self._per_request:
            kwargs["middlewares"] = _with_ours(self._middlewares, middlewares)
        options = _OPTIONS.get()
        scope = None
        if explicit is not None:  # the middleware reads them for every hop of this call
            options = explicit.over(options)
            scope = _OPTIONS.set(options)
        try:
            hop = self._targets.first_hop(url)
            session = self._session
            if hop is None or (options is not None and options.bypass):
                # aiohttp will refuse the URL (or the session is closed), or not throttled
                return await session.request(method, url, **kwargs)
            pipeline = self._pipeline
            target: object
            origin: Hashable | None
            cost: CostLike
            if options is None and pipeline.cost_of is None:
                (target, origin), cost = hop, 1
            else:
                target, origin, cost = _route(pipeline, session, hop, options, method, kwargs)
            # The session waits for the first hop's entry itself, outside aiohttp's
            # ClientTimeout, and lends it to its middleware, which runs the hop's journey.
            try:
                ticket = await pipeline.lend(target, origin, cost)
            except (InvalidURLError, ThrottlerTimeoutError) as exc:
                raise _native(url, exc) from exc
            if ticket is None:  # no limit for this host
                return await session.request(method, url, **kwargs)
            token = _LENT.set((ticket, cost))
            try:
                response = await session.request(method, url, **kwargs)
            except BaseException:
                if not ticket.claimed:
                    ticket.entry.close()
                raise
            finally:
                _LENT.reset(token)
            if ticket.claimed:
                return response
            # No middleware ran: a mock (aioresponses) replaced aiohttp's send. The rest of
            # the journey (settle, feedback, hold, retry) is this session's.
            call = _Call(method, url, kwargs, cost)
            sent = (ticket.key, ticket.throttler, ticket.entry, response)
            steps = pipeline.steps(self._exchange, call, target, origin, cost, lend=True, sent=sent)
            return await pipeline.run(steps, call, self._send, _release)
        finally:
            if scope is not None:
                _OPTIONS.reset(scope)

    async def _send(self, call: _Call, ticket: Ticket | None) -> aiohttp.ClientResponse:
        token = _LENT.set(None if ticket is None else (ticket, call.cost))
        try:
            return await self._session.request(call.method, call.url, **call.kwargs)
        finally:
            _LENT.reset(token)

    # -- lifecycle -------------------------------------------------------------------

    async def close(self) -> None:
        """Close the inner session if this object owns it (idempotent)."""
        if self._close_session:
            await self._session.close()

    async def __aenter__(self) -> ThrottledClientSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<ThrottledClientSession {state} {self.throttler!r}>"


# -- helpers -----------------------------------------------------------------------------


@final
class _Targets:
    """Where a session's calls go: each URL string's absolute URL and origin, remembered.

    The session's base URL never changes, so neither does the answer for a URL string.
    """

    __slots__ = ("_known", "_session")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._known: dict[str, tuple[URL, _Origin]] = {}

    def first_hop(self, url: Any) -> tuple[URL, _Origin] | None:
        """Where the first hop goes; `None` when aiohttp will refuse the URL."""
        session = self._session
        if session.closed:
            return None
        targets = self._known
        known = targets.get(url) if url.__class__ is str else None
        if known is None:
            target = _absolute_url(session, url)
            if target is None:
                return None
            known = (target, (target.scheme, target.raw_host, target.port))
            if url.__class__ is str:
                if len(targets) >= _MAX_TARGETS:
                    targets.clear()
                targets[url] = known
        return known


def _route(
    pipeline: Pipeline,
    session: aiohttp.ClientSession,
    hop: tuple[URL, _Origin],
    options: _Options | None,
    method: str,
    kwargs: dict[str, Any],
) -> tuple[object, Hashable | None, CostLike]:
    """What a call's first hop is charged to (its throttler's target, origin) and its cost."""
    target: object = hop[0]
    origin: Hashable | None = hop[1]
    cost = None
    if options is not None:
        cost = options.cost
        if options.key is not None:
            target, origin = options.keyed(hop[0].scheme), None
    if cost is None:
        weigh = pipeline.cost_of
        cost = 1 if weigh is None else weigh(_FirstHop(session, method, hop[0], kwargs))
    return target, origin, cost


def _with_ours(ours: tuple[Any, ...], middlewares: Iterable[Any] | None) -> tuple[Any, ...]:
    """A call's `middlewares=`, with ours (the last of `ours`) innermost; `ours` if none."""
    if middlewares is None:
        return ours
    theirs = tuple(middlewares)
    middleware = ours[-1]
    return theirs if middleware in theirs else (*theirs, middleware)


def _absolute_url(session: aiohttp.ClientSession, url: Any) -> URL | None:
    """The URL aiohttp will send the first hop to, or None if aiohttp will reject it."""
    try:
        build = getattr(session, "_build_url", None)
        target = build(url) if build is not None else URL(url)
    except (TypeError, ValueError):
        return None
    if not isinstance(target, URL) or not target.is_absolute() or not target.host:
        return None
    return target
