"""httpx integration: transports that make every request wait its turn.

::

    async with httpx.AsyncClient(transport=ThrottledTransport(rate_limit=10)) as client:
        await client.get("https://api.example.com/items")

    with httpx.Client(transport=SyncThrottledTransport(rate_limit=10)) as client:
        client.get("https://api.example.com/items")

httpx calls its transport once per hop: every redirect and every authentication round
passes through here, and each is charged to the host it goes to.

**The guarantee.** Each hop is a latency-proof entry of the throttler for its host: it
counts from the moment it is admitted until its response headers arrive (or it fails),
and for ``period`` seconds after that. A request can only reach the server in between,
so the server sees at most ``rate_limit`` requests in any window of ``period`` seconds,
whatever the latency, connection set-up or retries.

**Concurrency.** With ``max_concurrency=n`` each host has at most ``n`` responses open.
A slot is given back exactly once: when the response body has been read to the end, when
the response is closed (``aclose()``/``close()``, which ``async with client.stream()``
and ``client.get()`` do for you), when reading the body fails, or when the transport is
closed. A response whose body is already in memory (``httpx.MockTransport``, ``respx``, a
cache hit) gives its slot back at once. A response that is never closed gives its slot
back ``hold_timeout`` seconds after its headers arrived, with a warning on the
``throttled_http`` logger, so no slot is ever lost.

**Per-request control** through ``request.extensions`` (they survive redirects)::

    client.get(url, extensions={"throttled_http_cost": 5})        # weigh this request 5
    client.get(url, extensions={"throttled_http_key": "search"})  # charge another key
    client.get(url, extensions={"throttled_http_bypass": True})   # do not throttle it

**Server feedback.** A ``429``/``503`` with ``Retry-After`` pauses that host's throttler
(at most ``max_retry_after`` seconds); ``adapt=True`` follows the ``RateLimit`` headers the
server advertises; ``retries=n`` sends a request again, through the throttler, after the
delay the server asked for (never a request whose body cannot be replayed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Final, cast, final

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "throttled_http.httpx needs httpx: pip install throttled_http[httpx]"
    ) from exc

from ._headers import may_carry_feedback
from ._holding import (
    DEFAULT_HOLD_TIMEOUT,
    Holds,
    check_exclusive,
    check_hold_timeout,
    check_throttle_timeout,
    limiter_from_options,
    make_policy,
)
from ._hostmap import ThrottlerMap, resolve_limiter
from ._ledger import INF
from ._sync import SyncThrottler
from ._validate import positive_int

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping

    from ._feedback import FeedbackPolicy, FeedbackTarget
    from ._hostmap import Scope, ThrottlerBackend
    from ._protocols import AsyncLimiter, EntryLike
    from ._rates import Rate, RatesLike
    from ._sync import SyncEntry

__all__ = [
    "BYPASS_EXTENSION",
    "COST_EXTENSION",
    "KEY_EXTENSION",
    "SyncThrottledTransport",
    "ThrottledTransport",
]

COST_EXTENSION: Final = "throttled_http_cost"
"""``request.extensions`` key: the request's cost, an int >= 1 (default 1)."""

KEY_EXTENSION: Final = "throttled_http_key"
"""``request.extensions`` key: charge the request to this key instead of its host's."""

BYPASS_EXTENSION: Final = "throttled_http_bypass"
"""``request.extensions`` key: ``True`` sends the request without throttling it."""


logger = logging.getLogger("throttled_http")


def _request_cost(request: httpx.Request) -> int:
    cost = request.extensions.get(COST_EXTENSION)
    return 1 if cost is None else positive_int(COST_EXTENSION, cost)


async def _open_charged(
    limiter: AsyncLimiter, cost: int, policy: FeedbackPolicy | None, timeout: float | None
) -> EntryLike:
    """``limiter.open_entry`` for ``cost``, charged as :func:`_room` says."""
    while True:
        charge = _room(limiter, cost, policy)
        try:
            return await limiter.open_entry(charge, timeout=timeout)
        except ValueError:
            # Adapted below this cost while it waited: charge the new whole limit.
            if _room(limiter, charge, policy) == charge:
                raise


def _room(limiter: AsyncLimiter | SyncThrottler, cost: int, policy: FeedbackPolicy | None) -> int:
    """The cost to charge: with ``adapt=True``, at most the smallest limit now in force.

    A server that advertises a quota smaller than a request's cost (or a 429 that cut the
    rate) must not make that request raise: it is charged as a whole window of the
    adopted limit instead, which the server's quota allows.
    """
    if cost == 1 or policy is None or not policy.adapt:
        return cost
    smallest = min(rate.limit for rate in limiter.rates)
    return cost if cost <= smallest else smallest


def _replayable(request: httpx.Request) -> bool:
    """Whether the request body can be sent again (it is in memory, not a one-shot stream)."""
    return isinstance(request.stream, httpx.ByteStream)


def _consult(
    policy: FeedbackPolicy,
    limiter: FeedbackTarget,
    key: str,
    request: httpx.Request,
    response: httpx.Response,
    attempt: int,
) -> float | None:
    """Apply the response's feedback; the seconds to wait before a retry, or ``None``."""
    status = response.status_code
    headers = response.headers
    # Most responses carry nothing to act on; skip parsing them (unless adapting, which
    # reads advertised quotas on every response). .raw names are bytes, read as they are.
    if not policy.adapt and not may_carry_feedback(status, headers.raw):
        return None
    delay = policy.observe(limiter, key, status, headers.multi_items())
    if status < 400:
        return None
    return policy.retry_delay(
        request.method, status, attempt, delay, replayable=_replayable(request), key=key
    )


def _warn_unclosed(key: str, hold_timeout: float | None) -> None:
    logger.warning(
        "a response from %s was not closed within hold_timeout=%s seconds; its "
        "concurrency slot was given back (close responses, or use 'with client.stream()')",
        key,
        hold_timeout,
    )


@final
class _AsyncReleasingStream(httpx.AsyncByteStream):
    """The response body; closes the entry once: at its end, on error or on close."""

    __slots__ = ("_chunks", "_entry", "_holds", "_stream", "key")

    def __init__(
        self,
        stream: httpx.AsyncByteStream,
        entry: EntryLike,
        holds: Holds[_AsyncReleasingStream],
        key: str,
    ) -> None:
        self._stream = stream
        self._chunks: AsyncIterator[bytes] | None = None
        self._entry = entry
        self._holds = holds
        self.key = key
        holds.add(self)

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
            self.release()
            raise

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self.release()

    def release(self) -> None:
        """Give the entry's slot back (idempotent)."""
        self._holds.discard(self)
        self._entry.close()

    def expire(self, hold_timeout: float) -> None:
        """Give the slot back after ``hold_timeout`` seconds, warning if still open."""
        if not self._entry.closed:
            _warn_unclosed(self.key, hold_timeout)
        self._entry.close()


@final
class _SyncReleasingStream(httpx.SyncByteStream):
    """The response body of the sync transport; closes the entry exactly once."""

    __slots__ = ("_entry", "_owner", "_stream", "key")

    def __init__(
        self,
        stream: httpx.SyncByteStream,
        entry: SyncEntry,
        owner: SyncThrottledTransport,
        key: str,
    ) -> None:
        self._stream = stream
        self._entry = entry
        self._owner = owner
        self.key = key

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        finally:
            self.release()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self.release()

    def release(self) -> None:
        """Give the entry's slot back (idempotent)."""
        self._owner._forget(self)
        self._entry.close()


def _target(request: httpx.Request) -> object:
    """What the limiter is chosen by: the URL, or the ``throttled_http_key`` extension."""
    key = request.extensions.get(KEY_EXTENSION)
    if key is None:
        return request.url
    if not isinstance(key, str) or not key:
        raise TypeError(
            f"{KEY_EXTENSION} must be a URL or a host name such as 'api.example.com', got {key!r}"
        )
    return key if "://" in key else f"{request.url.scheme}://{key}"


@final
class ThrottledTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that admits every request through a throttler.

    ::

        transport = ThrottledTransport(rate_limit=10, period=1.0)
        async with httpx.AsyncClient(transport=transport) as client:
            ...

    Wraps ``transport`` (default ``httpx.AsyncHTTPTransport()``; any transport works: a
    mounted one, a caching or retrying one, ``httpx.MockTransport``) and forwards
    ``aclose()`` to it.

    **The guarantee.** Per key (the host, by default), the server sees at most
    ``rate_limit`` requests in any window of ``period`` seconds: each hop (redirect, auth
    round, retry) is admitted as a latency-proof entry that counts from admission until its
    response headers arrive (or it fails) and for ``period`` seconds after that. Two hosts
    proceed side by side. ``burst=1`` spaces requests ``period / rate_limit`` seconds
    apart at the server, so a leaky-bucket server (nginx ``limit_req``) never answers 429.

    **Concurrency.** With ``max_concurrency=n`` each key has at most ``n`` responses open;
    a slot is given back exactly once, when the body is read to its end, the response is
    closed, reading it fails, or this transport is closed; at once for a response whose
    body is already in memory; and after ``hold_timeout`` seconds for a response nobody
    closes (logged as a warning on the ``throttled_http`` logger).

    **Per request** (``request.extensions``): ``throttled_http_cost`` (an int >= 1),
    ``throttled_http_key`` (charge the request to another host's limit: a URL or a host
    name, which gets the request's scheme; ignored with a single shared throttler), and
    ``throttled_http_bypass`` (``True``: not throttled).

    **Server feedback.** After each response's headers, ``feedback.observe()`` pauses or
    retunes that key's throttler as the server asks (``429``/``503`` with
    ``Retry-After``, capped at ``max_retry_after`` seconds; ``RateLimit`` headers when
    ``adapt=True``) and ``feedback.retry_delay()`` decides whether to send the request again
    (``retries`` times at most, never when the request body is a one-shot stream). A retry
    closes the refused response, sleeps, and waits for a new entry like any request.

    Args:
        rate_limit: requests per window per key, an int >= 1 (or a rate such as ``"10/s"``).
        period: the window, in seconds (finite, > 0).
        rates: several limits at once, such as ``"10/s; 1000/h"``.
        max_concurrency: open responses per key at most (``None``: no cap).
        burst: smooth mode, ``1 <= burst <= rate_limit`` (``None``: windows only).
        scope: ``"host"``, ``"domain"``, ``"global"`` or a callable ``scope(url) -> str``.
        overrides: other rates (or ``None``: no limit) for some hosts, as for
            :class:`~throttled_http.ThrottlerMap`.
        throttler: a :class:`~throttled_http.Throttler`, ``RedisThrottler`` or
            :class:`~throttled_http.ThrottlerMap` to share with other clients (then the
            limit options above must not be given).
        transport: the transport that sends the requests.
        backend: makes each key's throttler (for example ``RedisBackend``).
        max_retry_after: cap on a server-requested pause, in seconds (``None``: no pause).
        adapt: follow the rate-limit headers the server sends.
        retries: times a refused request is sent again at most, an int >= 0.
        feedback: a ``FeedbackPolicy`` to use instead of the three options above.
        hold_timeout: seconds after its headers arrived that a response nobody closes
            gives back its slot, a finite number > 0 (default 300); ``None`` keeps the
            slot until the response is closed or the transport is.
        throttle_timeout: seconds a hop may wait for its turn at most, then
            :class:`~throttled_http.ThrottlerTimeoutError` (a ``TimeoutError``) is raised
            and nothing is sent (``None``: wait as long as it takes).

    Raises:
        TypeError, ValueError: at construction, naming the argument.
    """

    __slots__ = (
        "_holds",
        "_limiter",
        "_policy",
        "_throttle_timeout",
        "_transport",
    )

    def __init__(
        self,
        rate_limit: int | str | Rate = 10,
        period: float = 1.0,
        *,
        rates: RatesLike | None = None,
        max_concurrency: int | None = None,
        burst: int | None = None,
        scope: Scope = "host",
        overrides: Mapping[str, RatesLike | None] | None = None,
        throttler: AsyncLimiter | ThrottlerMap | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backend: ThrottlerBackend | None = None,
        max_retry_after: float | None = 300.0,
        adapt: bool = False,
        retries: int = 0,
        feedback: FeedbackPolicy | None = None,
        hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT,
        throttle_timeout: float | None = None,
    ) -> None:
        limiter = limiter_from_options(
            throttler,
            rate_limit,
            period,
            rates=rates,
            max_concurrency=max_concurrency,
            burst=burst,
            scope=scope,
            overrides=overrides,
            backend=backend,
        )
        if transport is None:
            transport = httpx.AsyncHTTPTransport()
        elif not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(f"transport must be an httpx.AsyncBaseTransport, got {transport!r}")
        self._limiter: AsyncLimiter | ThrottlerMap = limiter
        self._transport = transport
        self._policy = make_policy(feedback, max_retry_after, adapt, retries)
        self._holds: Holds[_AsyncReleasingStream] = Holds(check_hold_timeout(hold_timeout))
        self._throttle_timeout = check_throttle_timeout(throttle_timeout)

    @property
    def throttler(self) -> AsyncLimiter | ThrottlerMap:
        """The throttler or map requests wait in (share it with other clients)."""
        return self._limiter

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """The wrapped transport."""
        return self._transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Wait for the request's turn, send it, and tie its slot to the response body."""
        inner = self._transport
        extensions = request.extensions
        if extensions.get(BYPASS_EXTENSION):
            return await inner.handle_async_request(request)
        cost = 1 if extensions.get(COST_EXTENSION) is None else _request_cost(request)
        target: object
        origin = None
        if extensions.get(KEY_EXTENSION) is None:
            target = url = request.url
            origin = (url.scheme, url.raw_host, url.port)  # the map remembers its key
        else:
            target = _target(request)
        policy = self._policy
        attempt = 0
        while True:
            # Resolved again for each attempt: the map may drop a limiter that went idle
            # while a retry slept, and the entry must count in the one the map holds.
            key, limiter = resolve_limiter(self._limiter, target, origin=origin)
            if limiter is None:
                return await inner.handle_async_request(request)
            entry = await _open_charged(limiter, cost, policy, self._throttle_timeout)
            try:
                response = await inner.handle_async_request(request)
            except BaseException:
                entry.close()
                raise
            entry.settle()
            attempt += 1
            try:
                # The pre-check of _consult, inlined: most responses carry no feedback.
                wait = (
                    _consult(policy, limiter, key, request, response, attempt)
                    if policy.adapt
                    or may_carry_feedback(response.status_code, response.headers.raw)
                    else None
                )
            except BaseException:
                try:
                    await response.aclose()
                finally:
                    entry.close()
                raise
            if wait is None:
                return self._bind(response, entry, key)
            try:
                await response.aclose()
            finally:
                entry.close()
            await asyncio.sleep(wait)

    def _bind(self, response: httpx.Response, entry: EntryLike, key: str) -> httpx.Response:
        stream = response.stream
        if isinstance(stream, httpx.ByteStream) or not isinstance(stream, httpx.AsyncByteStream):
            entry.close()  # the body is in memory already: nothing more to wait for
            return response
        response.stream = _AsyncReleasingStream(stream, entry, self._holds, key)
        return response

    async def aclose(self) -> None:
        """Give back the slots of responses still open, then close the wrapped transport."""
        for stream in self._holds.pop_all():
            stream.release()
        await self._transport.aclose()

    def __repr__(self) -> str:
        return f"<ThrottledTransport {self._limiter!r} over {type(self._transport).__name__}>"


@final
class _SyncBackend:
    """Builds a :class:`SyncThrottler` per key, so a ThrottlerMap can serve threads."""

    __slots__ = ()

    def create(
        self,
        key: str,
        rates: tuple[Rate, ...],
        *,
        burst: int | None,
        max_concurrency: int | None,
    ) -> AsyncLimiter:
        throttler = SyncThrottler.from_rates(*rates, burst=burst, max_concurrency=max_concurrency)
        # The map only calls is_idle(), paused_for, rates, pause() and statistics(), which
        # SyncThrottler shares with the async limiters; requests use it as a SyncThrottler.
        return cast("AsyncLimiter", throttler)


@final
class _Holds:
    """Responses still open, oldest first, and one thread that ends overlong holds.

    Every response gets the same ``hold_timeout``, so insertion order is deadline order and
    the thread only ever sleeps until the oldest deadline. It runs only while something is
    held and exits when nothing is.
    """

    __slots__ = ("_cond", "_deadlines", "_hold_timeout", "_running")

    def __init__(self, hold_timeout: float | None) -> None:
        self._hold_timeout = hold_timeout
        self._cond = threading.Condition(threading.Lock())
        self._deadlines: dict[_SyncReleasingStream, float] = {}
        self._running = False

    def add(self, stream: _SyncReleasingStream) -> None:
        hold_timeout = self._hold_timeout
        with self._cond:
            if hold_timeout is None:  # kept only so that close() can give the slot back
                self._deadlines[stream] = INF
                return
            self._deadlines[stream] = time.monotonic() + hold_timeout
            if not self._running:
                self._running = True
                threading.Thread(
                    target=self._run, name="throttled_http hold_timeout", daemon=True
                ).start()

    def discard(self, stream: _SyncReleasingStream) -> None:
        with self._cond:
            self._deadlines.pop(stream, None)

    def pop_all(self) -> list[_SyncReleasingStream]:
        with self._cond:
            streams = list(self._deadlines)
            self._deadlines.clear()
            self._cond.notify()
            return streams

    def _run(self) -> None:
        while True:
            with self._cond:
                deadlines = self._deadlines
                while True:
                    if not deadlines:
                        self._running = False
                        return
                    stream, deadline = next(iter(deadlines.items()))
                    now = time.monotonic()
                    if deadline <= now:
                        del deadlines[stream]
                        break
                    self._cond.wait(deadline - now)
            _warn_unclosed(stream.key, self._hold_timeout)
            stream.release()


@final
class SyncThrottledTransport(httpx.BaseTransport):
    """An ``httpx.BaseTransport`` that admits every request through a thread-safe throttler.

    ::

        transport = SyncThrottledTransport(rate_limit=10, period=1.0)
        with httpx.Client(transport=transport) as client:
            ...

    The threaded twin of :class:`ThrottledTransport`, with the same options (less
    ``backend``) and the same guarantees: per key, at most ``rate_limit`` requests reach
    the server in any window of ``period`` seconds, whatever the latency, across every
    thread that shares the client (or the transport, or a ``throttler=``
    :class:`~throttled_http.SyncThrottler`). Threads wait in arrival order, each blocked
    on a condition until its exact turn: no polling.

    A response nobody closes gives its concurrency slot back ``hold_timeout`` seconds after
    its headers arrived; one helper thread, running only while responses are open, does
    that.

    Args:
        rate_limit: requests per window per key, an int >= 1 (or a rate such as ``"10/s"``).
        period: the window, in seconds (finite, > 0).
        rates: several limits at once, such as ``"10/s; 1000/h"``.
        max_concurrency: open responses per key at most (``None``: no cap).
        burst: smooth mode, ``1 <= burst <= rate_limit`` (``None``: windows only).
        scope: ``"host"``, ``"domain"``, ``"global"`` or a callable ``scope(url) -> str``.
        overrides: other rates (or ``None``: no limit) for some hosts.
        throttler: one :class:`~throttled_http.SyncThrottler` for every request, to share
            with other clients (then the limit options above must not be given).
        transport: the transport that sends the requests (default ``httpx.HTTPTransport()``).
        max_retry_after: cap on a server-requested pause, in seconds (``None``: no pause).
        adapt: follow the rate-limit headers the server sends.
        retries: times a refused request is sent again at most, an int >= 0.
        feedback: a ``FeedbackPolicy`` to use instead of the three options above.
        hold_timeout: seconds after which a response nobody closes gives back its slot
            (``None``: only when it, or the transport, is closed).
        throttle_timeout: seconds a request may wait for its turn at most, then
            :class:`~throttled_http.ThrottlerTimeoutError` is raised and nothing is sent.

    Raises:
        TypeError, ValueError: at construction, naming the argument.
    """

    __slots__ = (
        "_holds",
        "_limiter",
        "_map_lock",
        "_policy",
        "_throttle_timeout",
        "_transport",
    )

    def __init__(
        self,
        rate_limit: int | str | Rate = 10,
        period: float = 1.0,
        *,
        rates: RatesLike | None = None,
        max_concurrency: int | None = None,
        burst: int | None = None,
        scope: Scope = "host",
        overrides: Mapping[str, RatesLike | None] | None = None,
        throttler: SyncThrottler | None = None,
        transport: httpx.BaseTransport | None = None,
        max_retry_after: float | None = 300.0,
        adapt: bool = False,
        retries: int = 0,
        feedback: FeedbackPolicy | None = None,
        hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT,
        throttle_timeout: float | None = None,
    ) -> None:
        check_exclusive(
            throttler,
            rates=rates,
            max_concurrency=max_concurrency,
            burst=burst,
            overrides=overrides,
            scope=None if scope == "host" else scope,
        )
        if throttler is None:
            self._limiter: SyncThrottler | ThrottlerMap = ThrottlerMap(
                rate_limit,
                period,
                rates=rates,
                max_concurrency=max_concurrency,
                burst=burst,
                scope=scope,
                overrides=overrides,
                backend=_SyncBackend(),
            )
        elif isinstance(throttler, SyncThrottler):
            self._limiter = throttler
        else:
            raise TypeError(f"throttler must be a SyncThrottler, got {throttler!r}")
        if transport is None:
            transport = httpx.HTTPTransport()
        elif not isinstance(transport, httpx.BaseTransport):
            raise TypeError(f"transport must be an httpx.BaseTransport, got {transport!r}")
        self._transport = transport
        self._map_lock = threading.Lock()
        self._policy = make_policy(feedback, max_retry_after, adapt, retries)
        self._holds = _Holds(check_hold_timeout(hold_timeout))
        self._throttle_timeout = check_throttle_timeout(throttle_timeout)

    @property
    def throttler(self) -> SyncThrottler | ThrottlerMap:
        """The shared throttler, or the map of per-key throttlers."""
        return self._limiter

    @property
    def transport(self) -> httpx.BaseTransport:
        """The wrapped transport."""
        return self._transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Block until the request's turn, send it, and tie its slot to the response body."""
        inner = self._transport
        if request.extensions.get(BYPASS_EXTENSION):
            return inner.handle_request(request)
        cost = _request_cost(request)
        policy = self._policy
        attempt = 0
        while True:
            admitted = self._admit(request, cost)
            if admitted is None:
                return inner.handle_request(request)
            key, throttler, entry = admitted
            try:
                response = inner.handle_request(request)
            except BaseException:
                entry.close()
                raise
            entry.settle()
            attempt += 1
            try:
                wait = _consult(policy, throttler, key, request, response, attempt)
            except BaseException:
                try:
                    response.close()
                finally:
                    entry.close()
                raise
            if wait is None:
                return self._bind(response, entry, key)
            try:
                response.close()
            finally:
                entry.close()
            time.sleep(wait)

    def _admit(
        self, request: httpx.Request, cost: int
    ) -> tuple[str, SyncThrottler, SyncEntry] | None:
        hosts = self._limiter
        if isinstance(hosts, SyncThrottler):
            charge = _room(hosts, cost, self._policy)
            return "*", hosts, hosts.open_entry(charge, timeout=self._throttle_timeout)
        target = _target(request)
        origin = None
        if target is request.url:
            url = request.url
            origin = (url.scheme, url.raw_host, url.port)  # the map remembers its key
        lock = self._map_lock
        while True:
            with lock:
                key, limiter = hosts.resolve(target, origin=origin)
            if limiter is None:
                return None
            throttler = cast("SyncThrottler", limiter)
            charge = _room(throttler, cost, self._policy)
            try:
                entry = throttler.open_entry(charge, timeout=self._throttle_timeout)
            except ValueError:
                # Adapted below this cost while it waited: go round with the new limit.
                if _room(throttler, charge, self._policy) == charge:
                    raise
                continue
            # Another thread may have evicted the (then idle) throttler while this one was
            # about to queue; an entry must count in the throttler the map holds.
            with lock:
                if hosts.holds(key, limiter):
                    return key, throttler, entry
            entry.close()

    def _bind(self, response: httpx.Response, entry: SyncEntry, key: str) -> httpx.Response:
        stream = response.stream
        if isinstance(stream, httpx.ByteStream) or not isinstance(stream, httpx.SyncByteStream):
            entry.close()  # the body is in memory already: nothing more to wait for
            return response
        wrapped = _SyncReleasingStream(stream, entry, self, key)
        response.stream = wrapped
        self._holds.add(wrapped)
        return response

    def _forget(self, stream: _SyncReleasingStream) -> None:
        self._holds.discard(stream)

    def close(self) -> None:
        """Give back the slots of responses still open, then close the wrapped transport."""
        for stream in self._holds.pop_all():
            stream.release()
        self._transport.close()

    def __repr__(self) -> str:
        return f"<SyncThrottledTransport {self.throttler!r} over {type(self._transport).__name__}>"
