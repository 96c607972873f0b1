"""httpx integration: transports that make every request wait its turn.

```python
async with httpx.AsyncClient(transport=ThrottledTransport(rate_limit=10)) as client:
    await client.get("https://api.example.com/items")

with httpx.Client(transport=SyncThrottledTransport(rate_limit=10)) as client:
    client.get("https://api.example.com/items")
```

httpx calls its transport once per hop: every redirect and every authentication round
passes through here, and each is charged to the host it goes to.

**Options as objects.** A transport takes what throttles it as an object (`throttler=`
a [`ThrottlerMap`][throttled_http.ThrottlerMap], [`Throttler`][throttled_http.Throttler] or
`RedisThrottler`, shared with other clients if you like) and what to do with the server's
answers as another (`feedback=FeedbackPolicy(...)`). `rate_limit=`/`period=` are the
shorthand for a per-host map at that rate.

**The guarantee.** Each hop is a latency-proof entry of the throttler for its host: it
counts from the moment it is admitted until its response headers arrive (or it fails),
and for `period` seconds after that. A request can only reach the server in between,
so the server sees at most `rate_limit` requests in any window of `period` seconds,
whatever the latency, connection set-up or retries.

**Concurrency.** With `max_concurrency=n` on the map or throttler, each host has at most
`n` responses open. A slot is given back exactly once: when the response body has been
read to the end, when the response is closed (`aclose()`/`close()`, which
`async with client.stream()` and `client.get()` do for you), when reading the body
fails, or when the transport is closed. A response whose body is already in memory
(`httpx.MockTransport`, `respx`, a cache hit) gives its slot back at once. A response
that is never closed gives its slot back `release_timeout` seconds after its headers
arrived, with a warning on the `throttled_http` logger, so no slot is ever lost.

**Per-request control** through `request.extensions` (they survive redirects):

```python
client.get(url, extensions={"throttled_http_cost": 5})        # weigh this request 5
client.get(url, extensions={"throttled_http_key": "search"})  # charge another key
client.get(url, extensions={"throttled_http_bypass": True})   # do not throttle it
```

**Server feedback.** A `429`/`503` with `Retry-After` pauses that host's throttler
(at most `max_retry_after` seconds); `FeedbackPolicy(adapt=True)` follows the rate-limit
headers the server advertises; `FeedbackPolicy(retries=n)` sends a request again, through
the throttler, after the delay the server asked for (never a request whose body cannot be
replayed).

Both transports are thin adapters over the package's one request pipeline, so they keep
exactly the promises of the aiohttp integration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, final

from ._exceptions import InvalidURLError, ThrottlerTimeoutError, missing_extra

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra(__name__, "httpx", "httpx") from exc

from ._feedback import FeedbackPolicy
from ._holding import DEFAULT_RELEASE_TIMEOUT, Holds, ThreadHolds, check_release_timeout
from ._pipeline import Pipeline, check_feedback, check_throttle_timeout, throttler_from_options
from ._rates import Rate
from ._validate import positive_int

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable, Iterator

    from ._holding import Hold
    from ._hostmap import SyncThrottlerMap, ThrottlerMap
    from ._pipeline import Ticket
    from ._protocols import EntryLike, SyncThrottlerLike, ThrottlerLike

__all__ = [
    "BYPASS_EXTENSION",
    "COST_EXTENSION",
    "KEY_EXTENSION",
    "InvalidURL",
    "ThrottleTimeout",
    "SyncThrottledTransport",
    "ThrottledTransport",
]

COST_EXTENSION: Final = "throttled_http_cost"
"""`request.extensions` key: the request's cost, an int >= 1 (default 1)."""

KEY_EXTENSION: Final = "throttled_http_key"
"""`request.extensions` key: charge the request to this key instead of its host's."""

BYPASS_EXTENSION: Final = "throttled_http_bypass"
"""`request.extensions` key: `True` sends the request without throttling it."""


class InvalidURL(InvalidURLError, httpx.RequestError):
    """A hop's URL has no host a limit can be keyed by: no request was sent for it.

    Both [`throttled_http.InvalidURLError`][throttled_http.InvalidURLError] and an
    `httpx.RequestError` (an `httpx.HTTPError`), so `except httpx.HTTPError` catches it as
    it catches the errors httpx raises for a request it cannot send. Raised, for example,
    for a redirect to `http://a|b/`. Nothing was admitted for the hop.
    """

    def __init__(self, message: str, *, request: httpx.Request) -> None:
        httpx.RequestError.__init__(self, message, request=request)


class ThrottleTimeout(ThrottlerTimeoutError, httpx.TimeoutException):
    """A hop waited `throttle_timeout` seconds for its turn in vain; nothing was sent.

    Both [`throttled_http.ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError] (a
    `TimeoutError`) and an `httpx.TimeoutException` (an `httpx.HTTPError`), as httpx's own
    `PoolTimeout` is. The message names the host's key and the timeout.
    """

    def __init__(self, message: str, *, request: httpx.Request) -> None:
        httpx.TimeoutException.__init__(self, message, request=request)


def _native(request: httpx.Request, exc: Exception) -> httpx.HTTPError:
    """Our error as the one httpx code catches (`httpx.HTTPError`), same meaning."""
    if isinstance(exc, InvalidURLError):
        return InvalidURL(str(exc), request=request)
    return ThrottleTimeout(str(exc), request=request)


# -- reading httpx requests and responses for the pipeline -------------------------------


class _Exchange:
    """What the pipeline reads of an httpx request and response (both transports)."""

    __slots__ = ("holds",)

    def __init__(self, holds: Holds | ThreadHolds) -> None:
        self.holds = holds

    def status(self, response: httpx.Response) -> int:
        return response.status_code

    def headers(self, response: httpx.Response) -> list[tuple[bytes, bytes]]:
        return response.headers.raw  # bytes pairs, read as they are

    def method(self, request: httpx.Request) -> str:
        return request.method

    def replayable(self, request: httpx.Request) -> bool:
        return isinstance(request.stream, httpx.ByteStream)


@final
class _AsyncExchange(_Exchange):
    __slots__ = ()

    def hold(self, response: httpx.Response, entry: EntryLike, key: str) -> httpx.Response:
        stream = response.stream
        if isinstance(stream, httpx.ByteStream) or not isinstance(stream, httpx.AsyncByteStream):
            entry.close()  # the body is in memory already: nothing more to wait for
        else:
            response.stream = _AsyncReleasingStream(stream, self.holds.hold(entry, key))
        return response


@final
class _SyncExchange(_Exchange):
    __slots__ = ()

    def hold(self, response: httpx.Response, entry: EntryLike, key: str) -> httpx.Response:
        stream = response.stream
        if isinstance(stream, httpx.ByteStream) or not isinstance(stream, httpx.SyncByteStream):
            entry.close()
        else:
            response.stream = _SyncReleasingStream(stream, self.holds.hold(entry, key))
        return response


@final
class _AsyncReleasingStream(httpx.AsyncByteStream):
    """The response body; releases its hold once: at its end, on error or on close."""

    __slots__ = ("_chunks", "_hold", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, hold: Hold) -> None:
        self._stream = stream
        self._chunks: AsyncIterator[bytes] | None = None
        self._hold = hold

    def __aiter__(self) -> AsyncIterator[bytes]:
        # Its own iterator, not an async generator (the event loop tracks each of those
        # in a WeakSet): httpx reads a body once.
        self._chunks = self._stream.__aiter__()
        return self

    async def __anext__(self) -> bytes:
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = self._stream.__aiter__()
        try:
            return await chunks.__anext__()
        except BaseException:
            # The end (StopAsyncIteration), an error or a cancellation: the server is done
            # with this response either way.
            self._hold.release()
            raise

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._hold.release()


@final
class _SyncReleasingStream(httpx.SyncByteStream):
    """The response body of the sync transport; releases its hold exactly once."""

    __slots__ = ("_hold", "_stream")

    def __init__(self, stream: httpx.SyncByteStream, hold: Hold) -> None:
        self._stream = stream
        self._hold = hold

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        finally:
            self._hold.release()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._hold.release()


# -- what both transports do per request ---------------------------------------------------


def _route(request: httpx.Request) -> tuple[int, object, Hashable | None]:
    """The request's cost, what its throttler is chosen by, and its origin (or None)."""
    extensions = request.extensions
    cost = extensions.get(COST_EXTENSION)
    cost = 1 if cost is None else positive_int(COST_EXTENSION, cost)
    key = extensions.get(KEY_EXTENSION)
    url = request.url
    if key is None:
        return cost, url, (url.scheme, url.raw_host, url.port)  # the map remembers its key
    if not isinstance(key, str) or not key:
        raise TypeError(
            f"{KEY_EXTENSION} must be a URL or a host name such as 'api.example.com', got {key!r}"
        )
    return cost, (key if "://" in key else f"{url.scheme}://{key}"), None


def _check_transport(transport: object, kind: type[Any], default: type[Any]) -> Any:
    if transport is None:
        return default()
    if isinstance(transport, kind):
        return transport
    hint = ""
    if isinstance(transport, (int, str, Rate)):
        hint = f" (the rate goes by keyword: rate_limit={transport!r})"
    raise TypeError(f"transport must be an httpx.{kind.__name__}, got {transport!r}{hint}")


async def _aclose(response: httpx.Response) -> None:
    await response.aclose()


def _close(response: httpx.Response) -> None:
    response.close()


@final
class ThrottledTransport(httpx.AsyncBaseTransport):
    """An `httpx.AsyncBaseTransport` that admits every request through a throttler.

    ```python
    transport = ThrottledTransport(rate_limit=10, period=1.0)
    async with httpx.AsyncClient(transport=transport) as client:
        ...

    hosts = ThrottlerMap(rates="10/s; 1000/h", max_concurrency=4)
    transport = ThrottledTransport(inner, throttler=hosts, feedback=FeedbackPolicy(retries=3))
    ```

    Wraps `transport` (default `httpx.AsyncHTTPTransport()`; any transport works: a
    mounted one, a caching or retrying one, `httpx.MockTransport`) and forwards
    `aclose()` to it.

    **The guarantee.** Per key (the host, by default), the server sees at most
    `rate_limit` requests in any window of `period` seconds: each hop (redirect, auth
    round, retry) is admitted as a latency-proof entry that counts from admission until its
    response headers arrive (or it fails) and for `period` seconds after that. Two hosts
    proceed side by side. A map or throttler built with `burst=1` spaces requests
    `period / rate_limit` seconds apart at the server, so a leaky-bucket server (nginx
    `limit_req`) never answers 429.

    **Concurrency.** With `max_concurrency=n` on the throttler, each key has at most
    `n` responses open; a slot is given back exactly once, when the body is read to its
    end, the response is closed, reading it fails, or this transport is closed; at once
    for a response whose body is already in memory; and after `release_timeout` seconds
    for a response nobody closes (logged as a warning on the `throttled_http` logger).

    **Per request** (`request.extensions`): `throttled_http_cost` (an int >= 1),
    `throttled_http_key` (charge the request to another host's limit: a URL or a host
    name, which gets the request's scheme; ignored with a single shared throttler), and
    `throttled_http_bypass` (`True`: not throttled).

    **Server feedback.** After each response's headers, `feedback` pauses or retunes
    that key's throttler as the server asks, and decides whether to send the request again
    (see [`FeedbackPolicy`][throttled_http.FeedbackPolicy]). A retry closes the refused response,
    sleeps, and waits for a new entry like any request.

    Args:
        transport: the transport that sends the requests.
        rate_limit: shorthand for `throttler=ThrottlerMap(rate_limit, period)`: requests
            per window per host, an int >= 1 or a rate such as `"10/s"` (default 10).
        period: the window of an int `rate_limit`, in seconds (default 1.0).
        throttler: a [`ThrottlerMap`][throttled_http.ThrottlerMap] (a limit per host), a
            [`Throttler`][throttled_http.Throttler] or `RedisThrottler` (one limit for all),
            or any [`ThrottlerLike`][throttled_http.ThrottlerLike]; it carries its rates, burst,
            `max_concurrency`, scope, overrides and backend. Not with `rate_limit`
            or `period`.
        feedback: a [`FeedbackPolicy`][throttled_http.FeedbackPolicy] (default
            `FeedbackPolicy()`: pause on `Retry-After`, no retries).
        release_timeout: seconds after its headers arrived that a response nobody closes
            gives back its slot, a finite number > 0 (default 300); `None` keeps the
            slot until the response is closed or the transport is.
        throttle_timeout: seconds a hop may wait for its turn at most, then
            [`ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError] (a
            `TimeoutError`) is raised and nothing is sent (`None`: wait as long as it
            takes).

    Raises:
        TypeError, ValueError: at construction, naming the argument.

    Changed in 0.2: `transport` is the first parameter; the limit options moved to
    `throttler=` and the feedback options to `feedback=`; `hold_timeout` is
    `release_timeout`.
    """

    __slots__ = ("_exchange", "_pipeline", "_transport")

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        rate_limit: int | str | Rate | None = None,
        period: float | None = None,
        throttler: ThrottlerLike | ThrottlerMap | None = None,
        feedback: FeedbackPolicy | None = None,
        release_timeout: float | None = DEFAULT_RELEASE_TIMEOUT,
        throttle_timeout: float | None = None,
    ) -> None:
        self._transport: httpx.AsyncBaseTransport = _check_transport(
            transport, httpx.AsyncBaseTransport, httpx.AsyncHTTPTransport
        )
        holds = Holds(check_release_timeout(release_timeout))
        self._pipeline: Pipeline = Pipeline(
            throttler_from_options(throttler, rate_limit, period),
            check_feedback(feedback) or FeedbackPolicy(),
            holds,
            check_throttle_timeout(throttle_timeout),
        )
        self._exchange = _AsyncExchange(holds)

    @property
    def throttler(self) -> ThrottlerLike | ThrottlerMap:
        """The throttler or map requests wait in (share it with other clients)."""
        return self._pipeline.throttler  # type: ignore[no-any-return]

    @property
    def feedback(self) -> FeedbackPolicy:
        """The server-feedback policy (its `statistics` too)."""
        return self._pipeline.feedback  # type: ignore[return-value]

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """The wrapped transport."""
        return self._transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Wait for the request's turn, send it, and tie its slot to the response body."""
        if request.extensions.get(BYPASS_EXTENSION):
            return await self._transport.handle_async_request(request)
        cost, target, origin = _route(request)
        pipeline = self._pipeline
        steps = pipeline.steps(self._exchange, request, target, origin, cost)
        try:
            return await pipeline.run(steps, request, self._send, _aclose)
        except (InvalidURLError, ThrottlerTimeoutError) as exc:  # ours, as httpx's errors
            if isinstance(exc, httpx.HTTPError):
                raise  # already httpx's (a nested throttled transport)
            raise _native(request, exc) from exc

    def _send(self, request: httpx.Request, ticket: Ticket | None) -> Any:
        return self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Give back the slots of responses still open, then close the wrapped transport."""
        self._pipeline.holds.close_all()
        await self._transport.aclose()

    def __repr__(self) -> str:
        return f"<ThrottledTransport {self.throttler!r} over {type(self._transport).__name__}>"


@final
class SyncThrottledTransport(httpx.BaseTransport):
    """An `httpx.BaseTransport` that admits every request through a thread-safe throttler.

    ```python
    transport = SyncThrottledTransport(rate_limit=10, period=1.0)
    with httpx.Client(transport=transport) as client:
        ...
    ```

    The threaded twin of [`ThrottledTransport`][throttled_http.httpx.ThrottledTransport],
    with the same options and the same guarantees: per key, at most `rate_limit` requests
    reach the server in any window of `period` seconds, whatever the latency, across every
    thread that shares the client, the transport, or its `throttler=` (a
    [`SyncThrottlerMap`][throttled_http.SyncThrottlerMap] shared by several clients keeps
    one limit per host for all of them). Threads wait in arrival order, each blocked on a
    condition until its exact turn: no polling.

    A response nobody closes gives its concurrency slot back `release_timeout` seconds
    after its headers arrived; one helper thread, running only while responses are open,
    does that.

    Args:
        transport: the transport that sends the requests (default `httpx.HTTPTransport()`).
        rate_limit: shorthand for `throttler=SyncThrottlerMap(rate_limit, period)`.
        period: the window of an int `rate_limit`, in seconds (default 1.0).
        throttler: a [`SyncThrottlerMap`][throttled_http.SyncThrottlerMap] (a limit per host) or a
            [`SyncThrottler`][throttled_http.SyncThrottler] (one limit for all). Not with
            `rate_limit` or `period`.
        feedback: a [`FeedbackPolicy`][throttled_http.FeedbackPolicy] (default `FeedbackPolicy()`).
        release_timeout: as for [`ThrottledTransport`][throttled_http.httpx.ThrottledTransport].
        throttle_timeout: seconds a request may wait for its turn at most, then
            [`ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError] is raised and
            nothing is sent.

    Raises:
        TypeError, ValueError: at construction, naming the argument.

    Changed in 0.2: as [`ThrottledTransport`][throttled_http.httpx.ThrottledTransport];
    `throttler=` also takes a [`SyncThrottlerMap`][throttled_http.SyncThrottlerMap].
    """

    __slots__ = ("_exchange", "_pipeline", "_transport")

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        rate_limit: int | str | Rate | None = None,
        period: float | None = None,
        throttler: SyncThrottlerLike | SyncThrottlerMap | None = None,
        feedback: FeedbackPolicy | None = None,
        release_timeout: float | None = DEFAULT_RELEASE_TIMEOUT,
        throttle_timeout: float | None = None,
    ) -> None:
        self._transport: httpx.BaseTransport = _check_transport(
            transport, httpx.BaseTransport, httpx.HTTPTransport
        )
        holds = ThreadHolds(check_release_timeout(release_timeout))
        self._pipeline: Pipeline = Pipeline(
            throttler_from_options(throttler, rate_limit, period, sync=True),
            check_feedback(feedback) or FeedbackPolicy(),
            holds,
            check_throttle_timeout(throttle_timeout),
        )
        self._exchange = _SyncExchange(holds)

    @property
    def throttler(self) -> SyncThrottlerLike | SyncThrottlerMap:
        """The shared throttler, or the map of per-key throttlers."""
        return self._pipeline.throttler  # type: ignore[no-any-return]

    @property
    def feedback(self) -> FeedbackPolicy:
        """The server-feedback policy."""
        return self._pipeline.feedback  # type: ignore[return-value]

    @property
    def transport(self) -> httpx.BaseTransport:
        """The wrapped transport."""
        return self._transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Block until the request's turn, send it, and tie its slot to the response body."""
        if request.extensions.get(BYPASS_EXTENSION):
            return self._transport.handle_request(request)
        cost, target, origin = _route(request)
        pipeline = self._pipeline
        steps = pipeline.steps(self._exchange, request, target, origin, cost)
        try:
            return pipeline.run_sync(steps, request, self._send, _close)
        except (InvalidURLError, ThrottlerTimeoutError) as exc:
            if isinstance(exc, httpx.HTTPError):
                raise
            raise _native(request, exc) from exc

    def _send(self, request: httpx.Request, ticket: Ticket | None) -> httpx.Response:
        return self._transport.handle_request(request)

    def close(self) -> None:
        """Give back the slots of responses still open, then close the wrapped transport."""
        self._pipeline.holds.close_all()
        self._transport.close()

    def __repr__(self) -> str:
        return f"<SyncThrottledTransport {self.throttler!r} over {type(self._transport).__name__}>"
