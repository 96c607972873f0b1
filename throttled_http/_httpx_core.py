"""The httpx transports, written once for every library that speaks httpx's transport API.

httpx and httpx2 (its maintained continuation) share the small surface these transports
need: `Request` (`method`, `url`, `extensions`, `stream`), `Response` (`status_code`,
`headers.raw`, a replaceable `stream`), the byte-stream base classes, the transport base
classes and the error tree. The two are distinct libraries all the same: an httpx2 client
asserts that a response's body is an `httpx2.AsyncByteStream`, and code that uses httpx2
catches `httpx2.HTTPError`. So everything that must be the library's own is built from its
module, and everything else is written once:

```text
throttled_http.httpx  ─┐   imports its library, defines its two errors, binds a Library
throttled_http.httpx2 ─┴─> ThrottledTransportCore / SyncThrottledTransportCore  (here)
                             -> Pipeline (the journey every client's request follows)
```

An edge module declares its public classes as thin subclasses:
`class ThrottledTransport(ThrottledTransportCore[httpx.Request, httpx.Response,
httpx.AsyncBaseTransport], httpx.AsyncBaseTransport)` with `_library = Library(httpx, ...)`.
The type variables carry the names of the library classes they stand for, so a type
checker shows each edge's signatures in its own library's types, and the reference shows
the names a reader expects.

No HTTP client is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Protocol, TypeVar, cast, final

from ._exceptions import InvalidURLError, ThrottlerTimeoutError
from ._feedback import FeedbackPolicy
from ._holding import DEFAULT_RELEASE_TIMEOUT, Holds, ThreadHolds, check_release_timeout
from ._pipeline import (
    Pipeline,
    check_callable,
    check_feedback,
    check_throttle_timeout,
    throttler_from_options,
)
from ._rates import Rate
from ._validate import positive_int

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Hashable, Iterator
    from types import ModuleType

    from ._budgets import CostLike
    from ._holding import Hold
    from ._hostmap import SyncThrottlerMap, ThrottlerMap
    from ._pipeline import BodyTail, Ticket
    from ._protocols import EntryLike, SyncThrottlerLike, ThrottlerLike

__all__ = [
    "BYPASS_EXTENSION",
    "COST_EXTENSION",
    "KEY_EXTENSION",
    "Library",
    "SyncThrottledTransportCore",
    "ThrottledTransportCore",
]

COST_EXTENSION: Final = "throttled_http_cost"
"""`request.extensions` key: the request's cost, an int >= 1 (default 1)."""

KEY_EXTENSION: Final = "throttled_http_key"
"""`request.extensions` key: charge the request to this key instead of its host's."""

BYPASS_EXTENSION: Final = "throttled_http_bypass"
"""`request.extensions` key: `True` sends the request without throttling it."""


# -- the surface both libraries share ------------------------------------------------------


class URLLike(Protocol):
    """What is read of a request's URL."""

    @property
    def scheme(self) -> str: ...
    @property
    def raw_host(self) -> bytes: ...
    @property
    def port(self) -> int | None: ...


class RequestLike(Protocol):
    """What is read of a request."""

    @property
    def method(self) -> str: ...
    @property
    def url(self) -> URLLike: ...
    @property
    def extensions(self) -> Mapping[str, Any]: ...
    @property
    def stream(self) -> object: ...


class HeadersLike(Protocol):
    """Response headers: their raw byte pairs."""

    @property
    def raw(self) -> list[tuple[bytes, bytes]]: ...


class ResponseLike(Protocol):
    """What is read of a response, and its body, which is replaced by one that releases."""

    stream: Any

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> HeadersLike: ...
    async def aclose(self) -> None: ...
    def close(self) -> None: ...


class AsyncSender(Protocol):
    """An asyncio transport: `AsyncBaseTransport`'s two methods."""

    def handle_async_request(self, request: Any) -> Awaitable[Any]: ...
    async def aclose(self) -> None: ...


class SyncSender(Protocol):
    """A threaded transport: `BaseTransport`'s two methods."""

    def handle_request(self, request: Any) -> Any: ...
    def close(self) -> None: ...


class NativeError(Protocol):
    """An edge's error class: built from a message and the request it is about."""

    def __call__(self, message: str, *, request: Any) -> Exception: ...


# Named after the library classes they stand for: see the module docstring.
Request = TypeVar("Request", bound=RequestLike)
Response = TypeVar("Response", bound=ResponseLike)
AsyncBaseTransport = TypeVar("AsyncBaseTransport", bound=AsyncSender)
BaseTransport = TypeVar("BaseTransport", bound=SyncSender)


# -- response bodies that give their slot back ---------------------------------------------


class _AsyncReleasing:
    """The response body; releases its hold once: at its end, on error or on close.

    Mixed into a subclass of the library's `AsyncByteStream` (see `Library`).
    """

    __slots__ = ("_chunks", "_hold", "_stream", "_tail")

    def __init__(self, stream: Any, hold: Hold, tail: BodyTail | None = None) -> None:
        self._stream = stream
        self._chunks: AsyncIterator[bytes] | None = None
        self._hold = hold
        self._tail = tail

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
            chunk: bytes = await chunks.__anext__()
        except BaseException as exc:
            # The end (StopAsyncIteration), an error or a cancellation: the server is done
            # with this response either way.
            self._hold.release()
            if self._tail is not None and isinstance(exc, StopAsyncIteration):
                self._tail.done()  # the whole body was read: reconcile its cost
            raise
        if self._tail is not None:
            self._tail.feed(chunk)
        return chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._hold.release()


class _SyncReleasing:
    """The response body of the sync transport; releases its hold exactly once."""

    __slots__ = ("_hold", "_stream", "_tail")

    def __init__(self, stream: Any, hold: Hold, tail: BodyTail | None = None) -> None:
        self._stream = stream
        self._hold = hold
        self._tail = tail

    def __iter__(self) -> Iterator[bytes]:
        tail = self._tail
        try:
            if tail is None:
                yield from self._stream
            else:
                for chunk in self._stream:
                    tail.feed(chunk)
                    yield chunk
        finally:
            self._hold.release()
        if tail is not None:
            tail.done()  # the whole body was read: reconcile its cost

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._hold.release()


@final
class Library:
    """One client library as the transports use it: its classes, its errors, its bodies.

    Args:
        module: the library (`httpx`, `httpx2`); its classes are read once, here.
        invalid_url: the edge's `InvalidURL` (an `InvalidURLError` and the library's
            `RequestError`).
        throttle_timeout: the edge's `ThrottleTimeout` (a `ThrottlerTimeoutError` and the
            library's `TimeoutException`).
    """

    __slots__ = (
        "async_base",
        "async_default",
        "async_releasing",
        "async_stream",
        "byte_stream",
        "http_error",
        "invalid_url",
        "name",
        "request",
        "sync_base",
        "sync_default",
        "sync_releasing",
        "sync_stream",
        "throttle_timeout",
    )

    def __init__(
        self, module: ModuleType, invalid_url: NativeError, throttle_timeout: NativeError
    ) -> None:
        self.name: str = module.__name__
        self.request: type[Any] = module.Request
        self.byte_stream: type[Any] = module.ByteStream  # a body in memory, replayable
        self.async_stream: type[Any] = module.AsyncByteStream
        self.sync_stream: type[Any] = module.SyncByteStream
        self.async_base: type[Any] = module.AsyncBaseTransport
        self.sync_base: type[Any] = module.BaseTransport
        self.async_default: type[Any] = module.AsyncHTTPTransport
        self.sync_default: type[Any] = module.HTTPTransport
        self.http_error: type[Exception] = module.HTTPError
        self.invalid_url = invalid_url
        self.throttle_timeout = throttle_timeout
        # The library's client checks that a body is its own stream class: subclass it.
        self.async_releasing: type[_AsyncReleasing] = type(
            "AsyncReleasingStream", (_AsyncReleasing, self.async_stream), {"__slots__": ()}
        )
        self.sync_releasing: type[_SyncReleasing] = type(
            "SyncReleasingStream", (_SyncReleasing, self.sync_stream), {"__slots__": ()}
        )

    def native(self, request: object, exc: Exception) -> Exception:
        """Our error as the one the library's users catch (its `HTTPError`), same meaning."""
        if isinstance(exc, InvalidURLError):
            return self.invalid_url(str(exc), request=request)
        return self.throttle_timeout(str(exc), request=request)

    def foreign(self, transport: object, request: object) -> TypeError:
        """The error for a request of another library: its client needs the other edge.

        httpx and httpx2 clients each check that a response is their own, with an
        `assert`; this names the transport to use instead.
        """
        edge = type(transport)
        got = type(request)
        other = got.__module__.partition(".")[0]
        hint = ""
        if other in ("httpx", "httpx2"):
            hint = f": for an {other} client use throttled_http.{other}.{edge.__qualname__}"
        return TypeError(
            f"{edge.__module__}.{edge.__qualname__} serves {self.name} clients, "
            f"got a request of type {other}.{got.__qualname__}{hint}"
        )

    def check_transport(self, transport: object, *, sync: bool) -> Any:
        """The transport to wrap: `transport`, or the library's default when `None`."""
        kind = self.sync_base if sync else self.async_base
        if transport is None:
            return (self.sync_default if sync else self.async_default)()
        if isinstance(transport, kind):
            return transport
        hint = ""
        if isinstance(transport, (int, str, Rate)):
            hint = f" (the rate goes by keyword: rate_limit={transport!r})"
        raise TypeError(
            f"transport must be an {self.name}.{kind.__name__}, got {transport!r}{hint}"
        )

    def __repr__(self) -> str:
        return f"<Library {self.name}>"


# -- reading requests and responses for the pipeline -----------------------------------


@final
class _Exchange:
    """What the pipeline reads of a request and response, and how a response is held
    until its body ends (both transports: `sync` picks the library's stream classes)."""

    __slots__ = ("_releasing", "_streamed", "holds", "library", "pipeline")

    def __init__(self, pipeline: Pipeline, library: Library, *, sync: bool) -> None:
        self.pipeline = pipeline
        self.holds: Holds | ThreadHolds = pipeline.holds
        self.library = library
        self._streamed: type[Any] = library.sync_stream if sync else library.async_stream
        self._releasing: type[Any] = library.sync_releasing if sync else library.async_releasing

    def status(self, response: ResponseLike) -> int:
        return response.status_code

    def headers(self, response: ResponseLike) -> list[tuple[bytes, bytes]]:
        return response.headers.raw  # bytes pairs, read as they are

    def method(self, request: RequestLike) -> str:
        return request.method

    def replayable(self, request: RequestLike) -> bool:
        return isinstance(request.stream, self.library.byte_stream)

    def hold(self, response: ResponseLike, entry: EntryLike, key: str) -> ResponseLike:
        stream = response.stream
        pipeline = self.pipeline
        tail = None if pipeline.reconcile is None else pipeline.body_tail(response, entry)
        if isinstance(stream, self.library.byte_stream) or not isinstance(stream, self._streamed):
            try:
                _read_whole(tail, stream)
            finally:
                entry.close()  # the body is in memory already: nothing more to wait for
        else:
            response.stream = self._releasing(stream, self.holds.hold(entry, key), tail)
        return response


def _read_whole(tail: BodyTail | None, stream: object) -> None:
    """Reconcile a body held in memory (a `ByteStream`: iterating it reads no I/O)."""
    if tail is None:
        return
    if isinstance(stream, Iterable):
        for chunk in stream:
            tail.feed(chunk)
        tail.done()


# -- what both transports do per request -------------------------------------------------


def _route(request: RequestLike) -> tuple[CostLike | None, object, Hashable | None]:
    """The request's cost (`None`: the client's), what its throttler is chosen by, and
    its origin (or None)."""
    extensions = request.extensions
    cost = extensions.get(COST_EXTENSION)
    if cost is not None and not isinstance(cost, Mapping):  # a mapping: the throttler checks
        cost = positive_int(COST_EXTENSION, cost)
    key = extensions.get(KEY_EXTENSION)
    url = request.url
    if key is None:
        return cost, url, (url.scheme, url.raw_host, url.port)  # the map remembers its key
    if not isinstance(key, str) or not key:
        raise TypeError(
            f"{KEY_EXTENSION} must be a URL or a host name such as 'api.example.com', got {key!r}"
        )
    return cost, (key if "://" in key else f"{url.scheme}://{key}"), None


async def _aclose(response: ResponseLike) -> None:
    await response.aclose()


def _close(response: ResponseLike) -> None:
    response.close()


class ThrottledTransportCore(Generic[Request, Response, AsyncBaseTransport]):
    """`ThrottledTransport` of every library: subclassed by each edge with its `_library`."""

    __slots__ = ("_exchange", "_pipeline", "_transport")

    _library: ClassVar[Library]

    def __init__(
        self,
        transport: AsyncBaseTransport | None = None,
        *,
        rate_limit: int | str | Rate | None = None,
        period: float | None = None,
        throttler: ThrottlerLike | ThrottlerMap | None = None,
        feedback: FeedbackPolicy | None = None,
        release_timeout: float | None = DEFAULT_RELEASE_TIMEOUT,
        throttle_timeout: float | None = None,
        cost: Callable[[Request], CostLike] | None = None,
        reconcile: Callable[[Response, bytes], Mapping[str, int] | None] | None = None,
    ) -> None:
        library = self._library
        self._transport: AsyncBaseTransport = library.check_transport(transport, sync=False)
        holds = Holds(check_release_timeout(release_timeout))
        self._pipeline: Pipeline = Pipeline(
            throttler_from_options(throttler, rate_limit, period),
            check_feedback(feedback) or FeedbackPolicy(),
            holds,
            check_throttle_timeout(throttle_timeout),
            check_callable("cost", cost),
            check_callable("reconcile", reconcile),
        )
        self._exchange = _Exchange(self._pipeline, library, sync=False)

    @property
    def throttler(self) -> ThrottlerLike | ThrottlerMap:
        """The throttler or map requests wait in (share it with other clients)."""
        return self._pipeline.throttler  # type: ignore[no-any-return]

    @property
    def feedback(self) -> FeedbackPolicy:
        """The server-feedback policy (its `statistics` too)."""
        return self._pipeline.feedback  # type: ignore[return-value]

    @property
    def transport(self) -> AsyncBaseTransport:
        """The wrapped transport."""
        return self._transport

    async def handle_async_request(self, request: Request) -> Response:
        """Wait for the request's turn, send it, and tie its slot to the response body."""
        if not isinstance(request, self._library.request):
            raise self._library.foreign(self, request)
        if request.extensions.get(BYPASS_EXTENSION):
            return await self._send(request, None)
        cost, target, origin = _route(request)
        pipeline = self._pipeline
        steps = pipeline.steps(self._exchange, request, target, origin, cost)
        try:
            return await pipeline.run(steps, request, self._send, _aclose)
        except (InvalidURLError, ThrottlerTimeoutError) as exc:  # ours, as the library's errors
            library = self._library
            if isinstance(exc, library.http_error):
                raise  # already the library's (a nested throttled transport)
            raise library.native(request, exc) from exc

    def _send(self, request: Request, ticket: Ticket | None) -> Awaitable[Response]:
        return self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Give back the slots of responses still open, then close the wrapped transport."""
        self._pipeline.holds.close_all()
        await self._transport.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.throttler!r} over {type(self._transport).__name__}>"


class SyncThrottledTransportCore(Generic[Request, Response, BaseTransport]):
    """`SyncThrottledTransport` of every library: subclassed by each edge with its `_library`."""

    __slots__ = ("_exchange", "_pipeline", "_transport")

    _library: ClassVar[Library]

    def __init__(
        self,
        transport: BaseTransport | None = None,
        *,
        rate_limit: int | str | Rate | None = None,
        period: float | None = None,
        throttler: SyncThrottlerLike | SyncThrottlerMap | None = None,
        feedback: FeedbackPolicy | None = None,
        release_timeout: float | None = DEFAULT_RELEASE_TIMEOUT,
        throttle_timeout: float | None = None,
        cost: Callable[[Request], CostLike] | None = None,
        reconcile: Callable[[Response, bytes], Mapping[str, int] | None] | None = None,
    ) -> None:
        library = self._library
        self._transport: BaseTransport = library.check_transport(transport, sync=True)
        holds = ThreadHolds(check_release_timeout(release_timeout))
        self._pipeline: Pipeline = Pipeline(
            throttler_from_options(throttler, rate_limit, period, sync=True),
            check_feedback(feedback) or FeedbackPolicy(),
            holds,
            check_throttle_timeout(throttle_timeout),
            check_callable("cost", cost),
            check_callable("reconcile", reconcile),
        )
        self._exchange = _Exchange(self._pipeline, library, sync=True)

    @property
    def throttler(self) -> SyncThrottlerLike | SyncThrottlerMap:
        """The shared throttler, or the map of per-key throttlers."""
        return self._pipeline.throttler  # type: ignore[no-any-return]

    @property
    def feedback(self) -> FeedbackPolicy:
        """The server-feedback policy."""
        return self._pipeline.feedback  # type: ignore[return-value]

    @property
    def transport(self) -> BaseTransport:
        """The wrapped transport."""
        return self._transport

    def handle_request(self, request: Request) -> Response:
        """Block until the request's turn, send it, and tie its slot to the response body."""
        if not isinstance(request, self._library.request):
            raise self._library.foreign(self, request)
        if request.extensions.get(BYPASS_EXTENSION):
            return self._send(request, None)
        cost, target, origin = _route(request)
        pipeline = self._pipeline
        steps = pipeline.steps(self._exchange, request, target, origin, cost)
        try:
            return pipeline.run_sync(steps, request, self._send, _close)
        except (InvalidURLError, ThrottlerTimeoutError) as exc:
            library = self._library
            if isinstance(exc, library.http_error):
                raise
            raise library.native(request, exc) from exc

    def _send(self, request: Request, ticket: Ticket | None) -> Response:
        return cast("Response", self._transport.handle_request(request))

    def close(self) -> None:
        """Give back the slots of responses still open, then close the wrapped transport."""
        self._pipeline.holds.close_all()
        self._transport.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.throttler!r} over {type(self._transport).__name__}>"
