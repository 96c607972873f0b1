"""aiohttp integration: a session, a middleware and a trace config that throttle every hop.

::

    async with ThrottledClientSession(rate_limit=10) as session:
        async with session.get("https://api.example.com/items") as response:
            items = await response.json()

Three ways in, from the most complete to the least:

* :class:`ThrottledClientSession` owns (or wraps) an ``aiohttp.ClientSession`` and throttles
  every request, every redirect hop and every retry, per host by default. Waiting for the
  throttler before the first hop does not count against the request's ``ClientTimeout``.
* :func:`throttle_middleware` for code that builds its own
  ``ClientSession(middlewares=[...])``: aiohttp calls a client middleware once per hop,
  redirects and aiohttp's own retry of an idempotent request included. Put it **last** in
  the list (innermost), so that every request another middleware sends goes through it.
* :func:`throttle_trace_config` for code that can only add a ``TraceConfig``. It sees the
  first hop and every redirect, but **not** aiohttp's internal retry of an idempotent
  request on a dropped keep-alive connection: the resent request rides on the entry of the
  one it replaces.

**The guarantee.** Each hop is a latency-proof entry of the throttler for its host: it
counts from admission until its response headers arrive (or it fails) and for ``period``
seconds after that. A request can reach the server only in between, so the server sees at
most ``rate_limit`` requests in any window of ``period`` seconds, whatever the latency and
connection set-up time. With ``burst=1`` arrivals are at least ``period / rate_limit``
seconds apart, which a leaky-bucket server (nginx ``limit_req``) accepts without a 429.

**Concurrency.** With ``max_concurrency=n`` a host has at most ``n`` responses open. A slot
is given back exactly once, when the response's connection is released: the whole body
has arrived (aiohttp buffers a small body at once, read or not), the response was released
or closed (``async with`` does it), reading failed, or the request was cancelled at any
point. A response nobody releases gives its slot back
``hold_timeout`` seconds (default 300) after its headers arrived, with a warning on the
``throttled_http`` logger. A ``101 Switching Protocols`` (``ws_connect``) gives the slot
back as soon as the handshake is done: a websocket is not a request in flight.

**Timeouts.** aiohttp starts a request's ``ClientTimeout.total`` before any middleware
runs, so a wait inside the middleware (every redirect hop or retry, and every hop with
:func:`throttle_middleware`) counts against ``total``. :class:`ThrottledClientSession`
waits for the first hop before calling aiohttp, outside ``total``: queueing behind a quota
never times a request out by itself. ``throttle_timeout=`` bounds every wait for the
throttler (raising :class:`~throttled_http.ThrottlerTimeoutError`, a ``TimeoutError``).

**Server feedback.** A 429 or 503 with ``Retry-After`` pauses that host's throttler (at
most ``max_retry_after`` seconds); ``adapt=True`` follows the rate-limit headers the server
advertises; ``retries=n`` sends a refused request again, through the throttler, after the
delay the server asked for (never one whose body cannot be replayed).

**Mocks.** ``aioresponses`` replaces ``ClientSession._request``, so no middleware runs;
:class:`ThrottledClientSession` still charges each mocked request (one entry per call, to
the host of the URL called; aioresponses follows mocked redirects itself, unseen), applies
the server feedback of the mocked response and retries it, so tests see the throttling.
A ``passthrough`` request reaches the real middleware and is charged once. See
:func:`throttled_http.testing.aioresponses_compat`.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, final

try:
    import aiohttp
    from aiohttp.client import _RequestContextManager, _WSRequestContextManager
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "throttled_http.aiohttp needs aiohttp: pip install throttled_http[aiohttp]"
    ) from exc

from yarl import URL

from ._feedback import FeedbackPolicy
from ._headers import may_carry_feedback
from ._holding import (
    DEFAULT_HOLD_TIMEOUT,
    Holds,
    check_hold_timeout,
    check_limiter,
    check_throttle_timeout,
    limiter_from_options,
    make_policy,
)
from ._hostmap import ThrottlerMap, resolve_limiter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
    from types import SimpleNamespace, TracebackType

    from ._hostmap import Scope, ThrottlerBackend
    from ._protocols import AsyncLimiter, EntryLike
    from ._rates import Rate, RatesLike

__all__ = [
    "DEFAULT_HOLD_TIMEOUT",
    "ThrottleMiddleware",
    "ThrottledClientSession",
    "throttle_middleware",
    "throttle_trace_config",
]


_logger = logging.getLogger("throttled_http")

_MAX_TARGETS: Final = 1024  # URL strings whose absolute URL a session remembers


# -- holding an entry until the response is released -----------------------------------


@final
class _Hold:
    """Closes an entry once: when the response's connection is released, or on expiry."""

    __slots__ = ("entry", "holds", "key")

    def __init__(self, entry: EntryLike, key: str, holds: Holds[_Hold]) -> None:
        self.entry = entry
        self.key = key
        self.holds = holds

    def release(self) -> None:
        self.holds.discard(self)
        self.entry.close()

    def expire(self, hold_timeout: float) -> None:
        if not self.entry.closed:
            _logger.warning(
                "a response from %s was not released within hold_timeout=%s seconds; its "
                "concurrency slot is given back now",
                self.key,
                hold_timeout,
            )
            self.entry.close()


def _hold_until_released(
    entry: EntryLike, response: aiohttp.ClientResponse, key: str, holds: Holds[_Hold]
) -> None:
    """Settle ``entry`` now (headers arrived) and close it when ``response`` is released."""
    entry.settle()
    connection = response.connection
    if connection is None or response.closed or response.status == 101:
        entry.close()
        return
    hold = _Hold(entry, key, holds)
    connection.add_callback(hold.release)
    holds.add(hold)


def _replayable(request: aiohttp.ClientRequest) -> bool:
    body = request.body
    return not getattr(body, "consumed", False)


# -- an entry opened before aiohttp runs, for the first hop ------------------------------


@final
class _Prepaid:
    """An entry :class:`ThrottledClientSession` opened for a request's first hop."""

    __slots__ = ("entry", "key", "limiter", "owner", "url")

    def __init__(
        self, owner: ThrottleMiddleware, url: URL, limiter: AsyncLimiter, key: str, entry: EntryLike
    ) -> None:
        self.owner = owner
        self.url = url
        self.limiter = limiter
        self.key = key
        self.entry: EntryLike | None = entry

    def take(self) -> EntryLike | None:
        entry, self.entry = self.entry, None
        return entry


_PREPAID: ContextVar[_Prepaid | None] = ContextVar("throttled_http_aiohttp_prepaid", default=None)


def _take_prepaid(owner: ThrottleMiddleware, limiter: AsyncLimiter) -> EntryLike | None:
    prepaid = _PREPAID.get()
    if prepaid is None or prepaid.entry is None or prepaid.owner is not owner:
        return None
    entry = prepaid.take()
    if prepaid.limiter is not limiter and entry is not None:
        # The hop goes elsewhere than the session computed: give the entry back (it counts
        # as used, which is safe) and wait for the right one.
        entry.close()
        return None
    return entry


def _may_carry_feedback(policy: FeedbackPolicy, response: aiohttp.ClientResponse) -> bool:
    """Whether ``policy.observe`` could act on this response (a cheap pre-check)."""
    return policy.adapt or may_carry_feedback(response.status, response.headers)


# -- the middleware ----------------------------------------------------------------------


@final
class ThrottleMiddleware:
    """An aiohttp client middleware that makes every hop wait for its host's throttler.

    Build it with :func:`throttle_middleware`. aiohttp calls it once per hop: the first
    request, each redirect, and its own resend of an idempotent request whose keep-alive
    connection dropped. Each call waits for an entry of the hop's limiter, settles it when
    the response headers arrive and closes it when the response is released.
    """

    __slots__ = ("_feedback", "_hold_timeout", "_holds", "_limiter", "_throttle_timeout")

    def __init__(
        self,
        limiter: AsyncLimiter | ThrottlerMap,
        *,
        hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT,
        throttle_timeout: float | None = None,
        feedback: FeedbackPolicy | None = None,
    ) -> None:
        self._limiter = check_limiter("limiter", limiter)
        self._hold_timeout = check_hold_timeout(hold_timeout)
        self._holds: Holds[_Hold] = Holds(self._hold_timeout)
        self._throttle_timeout = check_throttle_timeout(throttle_timeout)
        if feedback is not None and not isinstance(feedback, FeedbackPolicy):
            raise TypeError(f"feedback must be a FeedbackPolicy or None, got {feedback!r}")
        self._feedback = feedback

    @property
    def limiter(self) -> AsyncLimiter | ThrottlerMap:
        """The throttler or map every hop is charged to."""
        return self._limiter

    async def __call__(
        self,
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        attempt = 0
        while True:
            prepaid = _PREPAID.get()
            entry: EntryLike | None = None
            limiter: AsyncLimiter | None
            if (
                prepaid is not None
                and prepaid.owner is self
                and prepaid.entry is not None
                # aiohttp passes on the URL object it built, the one the session built
                and (prepaid.url is request.url or prepaid.url == request.url)
            ):
                # The first hop, admitted by ThrottledClientSession before aiohttp ran.
                key, limiter, entry = prepaid.key, prepaid.limiter, prepaid.take()
            else:
                url = request.url
                key, limiter = resolve_limiter(
                    self._limiter, url, origin=(url.scheme, url.raw_host, url.port)
                )
                if limiter is not None:
                    entry = _take_prepaid(self, limiter)
                    if entry is None:
                        entry = await limiter.open_entry(1, timeout=self._throttle_timeout)
            try:
                response = await handler(request)
            except BaseException:
                if entry is not None:
                    entry.close()
                raise
            if entry is not None:
                entry.settle()
            # Apply the server's feedback (a pause) before the slot can free: a complete
            # body releases the connection at once, and a queued hop must not slip through
            # ahead of the Retry-After pause.
            policy = self._feedback
            delay = None
            if policy is not None and _may_carry_feedback(policy, response):
                attempt += 1
                delay = _retry_delay(
                    policy, limiter, key, request.method, response, attempt, _replayable(request)
                )
            if entry is not None:
                _hold_until_released(entry, response, key, self._holds)
            if delay is None:
                return response
            response.release()
            await asyncio.sleep(delay)

    def __repr__(self) -> str:
        return f"<ThrottleMiddleware {self._limiter!r}>"


def _retry_delay(
    policy: FeedbackPolicy,
    limiter: AsyncLimiter | None,
    key: str,
    method: str,
    response: aiohttp.ClientResponse,
    attempt: int,
    replayable: bool,
) -> float | None:
    """Apply the server's feedback; seconds to wait before sending again, or None."""
    status = response.status
    server_delay = policy.observe(limiter, key, status, response.headers)
    if status < 400:
        return None
    return policy.retry_delay(method, status, attempt, server_delay, replayable=replayable, key=key)


def throttle_middleware(
    limiter: AsyncLimiter | ThrottlerMap,
    *,
    hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT,
    throttle_timeout: float | None = None,
    feedback: FeedbackPolicy | None = None,
) -> ThrottleMiddleware:
    """A client middleware charging every hop to ``limiter`` (aiohttp >= 3.12).

    ::

        hosts = ThrottlerMap(rate_limit=5, period=1.0)
        async with aiohttp.ClientSession(middlewares=[auth, throttle_middleware(hosts)]) as s:
            ...

    Put it **last** in ``middlewares`` (innermost): a middleware listed after it could send
    requests that skip the throttler. It sees every hop aiohttp sends: redirects and
    aiohttp's own retry of an idempotent request included. Its wait for the throttler runs
    inside aiohttp's ``ClientTimeout.total`` for the request.

    Args:
        limiter: a :class:`~throttled_http.Throttler` (or any
            :class:`~throttled_http.AsyncLimiter`) for one shared limit, or a
            :class:`~throttled_http.ThrottlerMap` for a limit per host.
        hold_timeout: seconds after its headers arrived that a response nobody releases
            gives its concurrency slot back (finite, > 0; ``None``: never).
        throttle_timeout: seconds a hop may wait for the throttler at most, then
            :class:`~throttled_http.ThrottlerTimeoutError` (``None``: no limit).
        feedback: a :class:`~throttled_http.FeedbackPolicy` applied to every response
            (pauses on ``Retry-After``, optional adaptation and retries); ``None``: none.

    Raises:
        TypeError, ValueError: on an invalid argument, naming it.
    """
    return ThrottleMiddleware(
        limiter, hold_timeout=hold_timeout, throttle_timeout=throttle_timeout, feedback=feedback
    )


# -- the trace config --------------------------------------------------------------------


def throttle_trace_config(
    limiter: AsyncLimiter | ThrottlerMap,
    *,
    hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT,
    throttle_timeout: float | None = None,
) -> aiohttp.TraceConfig:
    """A ``TraceConfig`` that charges the first hop and every redirect to ``limiter``.

    For code that can pass ``trace_configs=[...]`` but no middleware::

        session = aiohttp.ClientSession(trace_configs=[throttle_trace_config(hosts)])

    It waits in ``on_request_start`` (for the first hop) and ``on_request_redirect`` (for
    the next hop, charged to the host the redirect goes to), settles an entry when its
    response headers arrive, and closes it when the response is released.

    What it misses: aiohttp's internal resend of an idempotent request whose keep-alive
    connection dropped sends no signal, so the resend rides on its predecessor's entry and
    a server may see one request more than the limit in that window. Prefer
    :func:`throttle_middleware` where you can. Its wait for the first hop runs after aiohttp
    armed ``ClientTimeout.total`` but before aiohttp watches it: a wait longer than
    ``total`` leaves that request without a total timeout (aiohttp behaviour). Use
    ``throttle_timeout`` to bound the wait.

    Args:
        limiter: a throttler or a :class:`~throttled_http.ThrottlerMap`, as for
            :func:`throttle_middleware`.
        hold_timeout: as for :func:`throttle_middleware`.
        throttle_timeout: as for :func:`throttle_middleware`.
    """
    checked = check_limiter("limiter", limiter)
    holds: Holds[_Hold] = Holds(check_hold_timeout(hold_timeout))
    throttle_timeout = check_throttle_timeout(throttle_timeout)

    async def admit(ctx: SimpleNamespace, url: URL) -> None:
        ctx.throttled_http_entry = None
        key, hop_limiter = resolve_limiter(checked, url)
        ctx.throttled_http_key = key
        if hop_limiter is not None:
            ctx.throttled_http_entry = await hop_limiter.open_entry(1, timeout=throttle_timeout)

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
            _hold_until_released(entry, params.response, ctx.throttled_http_key, holds)

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


@final
class ThrottledClientSession:
    """An ``aiohttp.ClientSession`` in which every request waits its turn, per host.

    ::

        async with ThrottledClientSession(rate_limit=3, period=1.0) as session:
            async with session.get(url) as response:
                body = await response.read()

    It behaves as a ``ClientSession`` does for its users (``get``, ``post``, ``put``,
    ``patch``, ``delete``, ``head``, ``options``, ``request`` return the same awaitable
    context managers; ``ws_connect``, ``async with``, ``close()``, ``closed``; every
    keyword argument passes through) but it is not one: it owns one (composition, as
    aiohttp forbids subclassing ``ClientSession``). :attr:`session` is the inner session.

    See the module documentation for the guarantee, concurrency, timeouts, feedback and
    mocks. In short: no window of ``period`` seconds at a host's server holds more than
    ``rate_limit`` of this session's requests (redirect hops and retries included), and
    waiting for the first hop does not count against ``ClientTimeout``.

    Create it inside a coroutine, as a ``ClientSession``.

    Args:
        rate_limit: requests per window per host, an int >= 1 (or a rate such as
            ``"10/s"``).
        period: the window in seconds (finite, > 0).
        rates: several limits such as ``"10/s; 1000/h"`` (replaces ``rate_limit`` and
            ``period``).
        max_concurrency: responses open at once per host (``None``: no cap).
        burst: smooth mode: at most ``burst`` requests back to back, the rest spaced
            ``period / rate_limit`` seconds apart (``1``: evenly spaced).
        scope: what shares a limit: ``"host"`` (``scheme://host:port``), ``"domain"``,
            ``"global"`` or a callable ``scope(url) -> str``.
        overrides: other rates (or ``None``: no limit) for some hosts, as in
            :class:`~throttled_http.ThrottlerMap`.
        throttler: a :class:`~throttled_http.Throttler` or
            :class:`~throttled_http.ThrottlerMap` shared with other sessions or clients
            (then ``rates``, ``max_concurrency``, ``burst``, ``scope``, ``overrides`` and
            ``backend`` must not be given).
        session: an ``aiohttp.ClientSession`` to wrap instead of creating one; the caller
            keeps ownership (``close()`` leaves it open) unless ``close_session=True``.
            ``client_session_kwargs`` must then be empty.
        close_session: whether :meth:`close` closes a wrapped ``session``.
        backend: makes each host's throttler (e.g. a Redis backend shared by processes).
        max_retry_after: the longest pause in seconds a server may impose on a host
            (``None``: ignore the times servers give).
        adapt: follow the rate-limit headers the server advertises.
        retries: how many times a refused (429/503) replayable request is sent again.
        feedback: a ready :class:`~throttled_http.FeedbackPolicy` (replaces the three
            above).
        hold_timeout: seconds after its headers arrived that a response nobody releases
            gives its concurrency slot back (``None``: never).
        throttle_timeout: seconds a hop may wait for the throttler at most, then
            :class:`~throttled_http.ThrottlerTimeoutError` (``None``: no limit).
        client_session_kwargs: passed to ``aiohttp.ClientSession`` (``headers``,
            ``timeout``, ``connector``, ``middlewares``, ``trace_configs``...).

    Raises:
        TypeError, ValueError: on an invalid argument, naming it.
    """

    __slots__ = (
        "_close_session",
        "_limiter",
        "_middleware",
        "_middlewares",
        "_per_request",
        "_session",
        "_targets",
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
        session: aiohttp.ClientSession | None = None,
        close_session: bool = False,
        backend: ThrottlerBackend | None = None,
        max_retry_after: float | None = 300.0,
        adapt: bool = False,
        retries: int = 0,
        feedback: FeedbackPolicy | None = None,
        hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT,
        throttle_timeout: float | None = None,
        **client_session_kwargs: Any,
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
        middleware = ThrottleMiddleware(
            limiter,
            hold_timeout=hold_timeout,
            throttle_timeout=throttle_timeout,
            feedback=make_policy(feedback, max_retry_after, adapt, retries),
        )
        middlewares: Sequence[Any]
        if session is None:
            if close_session:
                raise ValueError("close_session=True needs a session= to close")
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
        self._limiter = limiter
        self._middleware = middleware
        self._middlewares = (*middlewares, middleware)
        self._per_request = per_request
        # URL string -> (the URL aiohttp builds from it, its origin): the session's base
        # URL never changes, so neither does the answer.
        self._targets: dict[str, tuple[URL, tuple[str, str | None, int | None]]] = {}

    # -- properties ------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        """The inner ``aiohttp.ClientSession`` (requests made on it directly bypass us)."""
        return self._session

    @property
    def limiter(self) -> AsyncLimiter | ThrottlerMap:
        """The :class:`~throttled_http.ThrottlerMap` (or shared throttler) in use."""
        return self._limiter

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
        """The inner session's default ``ClientTimeout``."""
        return self._session.timeout

    @property
    def connector(self) -> aiohttp.BaseConnector | None:
        """The inner session's connector."""
        return self._session.connector

    # -- requests --------------------------------------------------------------------

    def request(self, method: str, url: Any, **kwargs: Any) -> _RequestContextManager:
        """Send ``method`` to ``url`` through the throttler; as ``ClientSession.request``."""
        return _RequestContextManager(self._request(method, url, **kwargs))

    def get(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``GET``, as ``ClientSession.get``."""
        return _RequestContextManager(self._request("GET", url, **kwargs))

    def options(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``OPTIONS``, as ``ClientSession.options``."""
        return _RequestContextManager(self._request("OPTIONS", url, **kwargs))

    def head(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``HEAD`` (no redirects unless ``allow_redirects=True``), as ``ClientSession.head``."""
        kwargs.setdefault("allow_redirects", False)
        return _RequestContextManager(self._request("HEAD", url, **kwargs))

    def post(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``POST``, as ``ClientSession.post``."""
        return _RequestContextManager(self._request("POST", url, **kwargs))

    def put(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``PUT``, as ``ClientSession.put``."""
        return _RequestContextManager(self._request("PUT", url, **kwargs))

    def patch(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``PATCH``, as ``ClientSession.patch``."""
        return _RequestContextManager(self._request("PATCH", url, **kwargs))

    def delete(self, url: Any, **kwargs: Any) -> _RequestContextManager:
        """``DELETE``, as ``ClientSession.delete``."""
        return _RequestContextManager(self._request("DELETE", url, **kwargs))

    def ws_connect(self, url: Any, **kwargs: Any) -> _WSRequestContextManager:
        """Open a websocket, as ``ClientSession.ws_connect``; the handshake is throttled.

        The handshake's slot is given back once the connection is upgraded.
        """
        return _WSRequestContextManager(self._ws_connect(url, **kwargs))

    async def _ws_connect(self, url: Any, **kwargs: Any) -> Any:
        prepaid = await self._prepay(url)
        token = _PREPAID.set(prepaid)
        try:
            return await self._session.ws_connect(url, **kwargs)
        finally:
            _PREPAID.reset(token)
            if prepaid is not None and (unused := prepaid.take()) is not None:
                unused.close()  # the wrapped session runs no middleware of ours

    async def _prepay(self, url: Any) -> _Prepaid | None:
        """Wait for the first hop's entry, before aiohttp starts its timeout."""
        hop = self._first_hop(url)
        if hop is None:
            return None
        target, key, limiter = hop
        entry = await limiter.open_entry(1, timeout=self._middleware._throttle_timeout)
        return _Prepaid(self._middleware, target, limiter, key, entry)

    def _first_hop(self, url: Any) -> tuple[URL, str, AsyncLimiter] | None:
        """Where the first hop goes and its limiter; ``None``: aiohttp will refuse the URL,
        or nothing limits its host."""
        session = self._session
        if session.closed:
            return None
        targets = self._targets
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
        target, origin = known
        # The map remembers the key of each origin: no parsing of the URL again.
        key, limiter = resolve_limiter(self._limiter, target, origin=origin)
        return None if limiter is None else (target, key, limiter)

    async def _request(self, method: str, url: Any, **kwargs: Any) -> aiohttp.ClientResponse:
        middlewares = kwargs.get("middlewares")
        if middlewares is not None or self._per_request:
            kwargs["middlewares"] = self._with_ours(middlewares)
        attempt = 0
        middleware = self._middleware
        while True:
            # As _prepay(), inlined: one coroutine less per request.
            prepaid = None
            hop = self._first_hop(url)
            if hop is not None:
                target, key, limiter = hop
                entry = await limiter.open_entry(1, timeout=middleware._throttle_timeout)
                prepaid = _Prepaid(middleware, target, limiter, key, entry)
            token = _PREPAID.set(prepaid)
            try:
                # _request, not request(): one wrapper less on every resume of the task.
                response = await self._session._request(method, url, **kwargs)
            except BaseException:
                if prepaid is not None and (unused := prepaid.take()) is not None:
                    unused.close()
                raise
            finally:
                _PREPAID.reset(token)
            if prepaid is None or (unused := prepaid.take()) is None:
                return response
            # No middleware ran: aioresponses (or another mock) replaced _request. Do here
            # what the middleware does, for the one entry this call took.
            unused.settle()
            policy = middleware._feedback
            delay = None
            if policy is not None and _may_carry_feedback(policy, response):
                attempt += 1
                data = kwargs.get("data")
                replayable = not (hasattr(data, "__aiter__") or hasattr(data, "read"))
                delay = _retry_delay(
                    policy, prepaid.limiter, prepaid.key, method, response, attempt, replayable
                )
            _hold_until_released(unused, response, prepaid.key, middleware._holds)
            if delay is None:
                return response
            response.release()
            await asyncio.sleep(delay)

    def _with_ours(self, middlewares: Iterable[Any] | None) -> tuple[Any, ...]:
        if middlewares is None:
            return self._middlewares
        theirs = tuple(middlewares)
        return theirs if self._middleware in theirs else (*theirs, self._middleware)

    # -- lifecycle -------------------------------------------------------------------

    async def close(self) -> None:
        """Close the inner session if this object owns it (idempotent)."""
        if self._close_session:
            await self._session.close()

    async def __aenter__(self) -> ThrottledClientSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<ThrottledClientSession {state} {self._limiter!r}>"


# -- helpers -----------------------------------------------------------------------------


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
