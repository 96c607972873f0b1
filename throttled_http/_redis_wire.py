"""The wire: everything a :class:`~throttled_http.redis.RedisThrottler` sends to Redis.

Nothing here queues or decides; this is the one place that knows how Redis is spoken to.

**Scripts.** Every atomic operation is one Lua file shipped as package data in
``throttled_http/lua/``: ``admit.lua`` decides a batch of queued entries (a latency-proof
one is admitted open for one lease), ``settle.lua`` stamps open entries at the server's
time (and forgets entries that never happened, fences off admit calls whose answer was
lost, and renews the leases of entries still open) and ``pause.lua`` sets or clears the shared
pause. A script is called by its SHA
(``EVALSHA``); a server that answers ``NOSCRIPT`` (restarted, failed over, ``SCRIPT FLUSH``)
gets the source once with ``EVAL``, which caches it again: one extra round trip, once.

**Keys.** A throttler's four Redis keys are ``<prefix>{<escaped key>}:s`` (stamps),
``:t`` (GCRA time), ``:p`` (pause) and ``:x`` (fence: the ids of admit calls whose answer
was lost, which admit nothing if they run late). :func:`escape_key` keeps distinct keys
distinct and lets no key close the ``{...}`` hash tag, which puts all four in one Redis
Cluster slot.

**Lost answers.** A call that times out may still run: Redis took it in and answers after
the caller gave up (a stall, ``SIGSTOP``), or its answer is lost with the connection.
Each admit call therefore carries an id; a caller that gave up on one asks ``settle.lua``
(through the outbox, until Redis answers) to fence that id off and forget the members it
may have admitted. Both scripts are atomic, so in either order nothing stays admitted.

**Encoding.** Every call carries the limits (:class:`Terms`: the rates in force plus old
ones still retiring after :meth:`~throttled_http.redis.RedisThrottler.set_rates`), in
integer microseconds, so the scripts keep no configuration and every process sharing a key
must send the same rates. Keys live for the longest period plus ``open_timeout`` plus
1 s, so an idle key expires on its own.

**Clients.** redis-py's and valkey-py's asyncio clients work alike; :class:`Library`
holds what differs (the error classes, how to make a client of a URL). A client made from
a URL retries a dropped connection (its call is sent again, within ``command_timeout``):
safe, as ``admit.lua`` answers a call sent again with what its first run admitted.

**Replicas.** With ``replicas=n`` every call is sent in a pipeline (one round trip, one
connection) followed by ``WAIT n timeout`` (``timeout``: half of ``command_timeout``), as
a script cannot call ``WAIT`` itself; a call that fewer than ``n`` replicas acknowledged
in time fails like any other (an admission is then called off), so an admission is
answered only once a replica holds it and a failover to that replica loses none.

**Errors.** A redis-py or valkey-py error, an :class:`OSError` or a call that takes longer than
``command_timeout`` seconds (every call is bounded) becomes
:class:`~throttled_http.ThrottlerBackendError`, naming the script and the key, with the
original error as ``__cause__``; Redis may still run such a call (see above).
:class:`Wire` counts round trips (one per ``EVALSHA`` or ``EVAL``) and failures for
:class:`~throttled_http.redis.RedisStatistics`.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import math
import sys
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, final
from urllib.parse import quote

import redis as _redis_sync
import redis.asyncio as _aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry as _RedisRetry
from redis.backoff import EqualJitterBackoff as _RedisBackoff
from redis.exceptions import ConnectionError as _RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as _RedisTimeoutError

from ._exceptions import ThrottlerBackendError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._rates import Rate

__all__ = [
    "ADMIT",
    "BLOCKED_OPEN",
    "BLOCKED_PAUSE",
    "BLOCKED_SETTLE",
    "OPEN",
    "PAUSE",
    "ReplicaLag",
    "REDIS_PY",
    "RESUME",
    "SETTLE",
    "TAKE",
    "AdmitReply",
    "Library",
    "Request",
    "Script",
    "Terms",
    "Wire",
    "check_client",
    "check_key",
    "check_prefix",
    "check_replicas",
    "escape_key",
]

# How admit.lua admits an entry (its "mode" argument).
TAKE: Final = "0"  # admit and stamp now
OPEN: Final = "1"  # admit open, stamped when settled
RESUME: Final = "2"  # admit open, stamped when the waiting task resumes
# Why admit.lua refused the rest of a batch (its "blocked" reply).
BLOCKED_OPEN: Final = 1  # the head also waits for entries still open (wait: a lower bound)
BLOCKED_PAUSE: Final = 2  # a shared pause holds everything
BLOCKED_SETTLE: Final = 4  # only open entries hold back the burst: any settle may let it in


class ReplicaLag(Exception):
    """Fewer replicas than asked for acknowledged a call in time (``WAIT``)."""


@final
class Script:
    """One Lua file of ``throttled_http/lua``, called by SHA with a fallback to EVAL."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str) -> None:
        self.name = name
        path = importlib.resources.files("throttled_http").joinpath(f"lua/{name}.lua")
        self.source = path.read_text(encoding="utf-8")
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


ADMIT: Final = Script("admit")
SETTLE: Final = Script("settle")
PAUSE: Final = Script("pause")


def escape_key(key: str) -> str:
    """Percent-encode ``key`` so it cannot close a hash tag or mimic another key.

    Every character except ASCII letters, digits and ``_.-~`` is encoded (``%`` too), so
    distinct keys stay distinct and no key can contain ``{``, ``}`` or ``:``.

    >>> escape_key("https://api.example.com:443")
    'https%3A%2F%2Fapi.example.com%3A443'
    >>> escape_key("a}:s")
    'a%7D%3As'
    """
    return quote(key, safe="")


@final
class Library(NamedTuple):
    """The client library a client comes from: redis-py or valkey-py (its fork).

    The two speak the same protocol through the same interface, but each has its own error
    classes, which is all the wire needs to tell apart.
    """

    name: str  # as pip knows it, for messages
    error: type[Exception]  # the base of every error it raises
    no_script: type[Exception]  # its NoScriptError
    from_url: Callable[[str], Any]  # makes a client of a URL, with our retry policy
    connection_error: type[Exception]  # its ConnectionError: the connection was lost


# The retry policy of a client made from a URL (redis-py's and valkey-py's own from_url
# retry nothing): a connection the server closed while idle (a timeout, CLIENT KILL, a
# restart, a failover behind the same address) is replaced and the call sent again, after
# 10 ms doubling to 0.5 s, half of it jitter. Every call stays bounded by command_timeout,
# which cancels the retries too; sending an admit again is safe (see admit.lua).
_RETRIES: Final = 10
_LOST_CONNECTION_TRIES: Final = 3  # the wire's own, around the client's (see Wire._eval)
_BACKOFF_BASE: Final = 0.01
_BACKOFF_CAP: Final = 0.5


def _from_url(
    url: str, client: Any, retry: Any, backoff: Any, errors: tuple[type[Exception], ...]
) -> Any:
    """A client of `url` from one library's classes, with the retry policy above."""
    policy = retry(backoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE), _RETRIES, supported_errors=errors)
    # retry_on_error too: older redis-py (and valkey-py) retry a command only on those.
    return client.from_url(url, retry=policy, retry_on_error=list(errors))


def _redis_from_url(url: str) -> Any:
    errors = (_RedisConnectionError, _RedisTimeoutError)
    return _from_url(url, _aioredis.Redis, _RedisRetry, _RedisBackoff, errors)


def _valkey_from_url(url: str) -> Any:
    import valkey.asyncio as aiovalkey
    from valkey.asyncio.retry import Retry
    from valkey.backoff import EqualJitterBackoff
    from valkey.exceptions import ConnectionError, TimeoutError

    return _from_url(
        url, aiovalkey.Valkey, Retry, EqualJitterBackoff, (ConnectionError, TimeoutError)
    )


REDIS_PY: Final = Library(
    "redis", RedisError, NoScriptError, _redis_from_url, _RedisConnectionError
)


def _valkey_library() -> Library:
    """valkey-py's :class:`Library`; raises ImportError naming the extra without it."""
    try:
        from valkey.exceptions import ConnectionError as ValkeyConnectionError
        from valkey.exceptions import NoScriptError as ValkeyNoScript
        from valkey.exceptions import ValkeyError
    except ImportError as exc:
        raise ImportError(
            "valkey:// and valkeys:// URLs need valkey-py: pip install throttled_http[valkey]"
        ) from exc
    return Library("valkey", ValkeyError, ValkeyNoScript, _valkey_from_url, ValkeyConnectionError)


_REDIS_SCHEMES: Final = ("redis", "rediss", "unix")
_VALKEY_SCHEMES: Final = ("valkey", "valkeys")
_SCHEMES: Final = "a redis://, rediss://, unix://, valkey:// or valkeys:// URL"
_CLIENTS: Final = (
    "a redis.asyncio.Redis or RedisCluster client, a valkey.asyncio.Valkey or ValkeyCluster client"
)


def _valkey_classes(module: str, *names: str) -> tuple[type, ...]:
    """valkey-py's classes ``names`` of ``module`` if valkey-py was imported (a valkey
    client exists only then), else none: valkey-py is never imported just to check."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return ()
    return tuple(cls for name in names if isinstance(cls := getattr(loaded, name, None), type))


def check_client(redis: object) -> tuple[Any, bool, Library]:
    """The client to use, whether we created it (and so must close it), and its library.

    A URL makes a client with a retry policy (see ``_RETRIES``): redis-py's for
    ``redis://``, ``rediss://`` and ``unix://``, valkey-py's for ``valkey://`` and
    ``valkeys://``.
    """
    if isinstance(redis, str):
        scheme = redis.partition("://")[0] if "://" in redis else ""
        if scheme in _REDIS_SCHEMES:
            library = REDIS_PY
        elif scheme in _VALKEY_SCHEMES:
            library = _valkey_library()
        else:
            # Never echo the URL: it may carry a password.
            raise ValueError(
                f"redis must be {_SCHEMES} or an asyncio client, got a URL with scheme {scheme!r}"
            )
        try:
            return library.from_url(redis), True, library
        except ValueError as exc:
            raise ValueError(f"redis is not a valid {library.name} URL: {exc}") from None
    if isinstance(redis, (_aioredis.Redis, RedisCluster)):
        return redis, False, REDIS_PY
    valkey_async = _valkey_classes("valkey.asyncio", "Valkey", "ValkeyCluster")
    if valkey_async and isinstance(redis, valkey_async):
        return redis, False, _valkey_library()
    sync: tuple[type, ...] = (_redis_sync.Redis, _redis_sync.RedisCluster)
    sync += _valkey_classes("valkey", "Valkey", "ValkeyCluster")
    if isinstance(redis, sync):
        raise TypeError(
            "redis must be an asyncio client (redis.asyncio.Redis or RedisCluster, "
            "valkey.asyncio.Valkey or ValkeyCluster), "
            f"got the synchronous {type(redis).__module__}.{type(redis).__name__}"
        )
    raise TypeError(f"redis must be {_CLIENTS} or a URL, got {type(redis).__name__}")


def check_replicas(replicas: object, redis: object) -> int:
    """Return ``replicas`` if it is an int from 0 to 1000 that ``redis`` can wait for."""
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise TypeError(f"replicas must be an integer from 0 to 1000, got {replicas!r}")
    if not 0 <= replicas <= 1000:
        raise ValueError(f"replicas must be an integer from 0 to 1000, got {replicas}")
    clusters = (RedisCluster, *_valkey_classes("valkey.asyncio", "ValkeyCluster"))
    if replicas and isinstance(redis, clusters):
        raise ValueError(
            f"replicas={replicas} needs a client of one server: WAIT cannot follow a "
            "cluster client's calls (got a cluster client)"
        )
    return replicas


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is a str without hash tag braces, else raise naming it."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {prefix!r}")
    if "{" in prefix or "}" in prefix:
        raise ValueError(f"prefix must not contain '{{' or '}}' (hash tag braces), got {prefix!r}")
    return prefix


def check_key(key: object) -> str:
    """Return ``key`` if it is a non-empty str, else raise naming it."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a non-empty str, got {key!r}")
    if not key:
        raise ValueError("key must be a non-empty str, got ''")
    return key


@final
class Terms:
    """The limits every call carries: the rates in force, their burst, and retiring rates.

    After a retune, each old rate the new ones do not contain keeps being sent until its
    retirement time (one old period, plus whatever the caller adds while entries are
    open), so loosening never breaks a window already begun.

    Attributes:
        rates: the rates in force.
        burst: smooth-mode burst, or ``None``.
    """

    __slots__ = ("_retiring", "burst", "rates")

    def __init__(self, rates: tuple[Rate, ...], burst: int | None) -> None:
        self.rates = rates
        self.burst = burst
        self._retiring: list[tuple[Rate, float]] = []

    def every(self, now: float) -> list[Rate]:
        """The rates in force plus the old ones still retiring at ``now``."""
        if not self._retiring:
            return list(self.rates)
        self._retiring = [(r, until) for r, until in self._retiring if until > now]
        return list(self.rates) + [r for r, _ in self._retiring if r not in self.rates]

    def retune(self, now: float, rates: tuple[Rate, ...], burst: int | None, extra: float) -> None:
        """Put ``rates`` in force; each dropped rate retires ``period + extra`` s from ``now``."""
        self._retiring = [(r, until) for r, until in self._retiring if until > now]
        for old in self.rates:
            if old not in rates:
                self._retiring.append((old, now + old.period + extra))
        self.rates = rates
        self.burst = burst

    def check_cost(self, value: object) -> None:
        """Raise unless ``value`` is an int from 1 to the smallest limit (else it could
        never be admitted)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"cost must be a positive integer, got {value!r}")
        smallest = min(r.limit for r in self.rates)
        if not 1 <= value <= smallest:
            raise ValueError(
                f"cost must be an integer from 1 to the smallest limit ({smallest}), got {value}"
            )

    def interval_us(self) -> float:
        """GCRA spacing in µs (the slowest rate's interval), 0 without ``burst``."""
        return max(r.interval for r in self.rates) * 1e6 if self.burst is not None else 0.0


class Request(Protocol):
    """An entry asked for in an admit call."""

    @property
    def cost(self) -> int: ...

    @property
    def mode(self) -> str:
        """:data:`TAKE`, :data:`OPEN` or :data:`RESUME`."""

    @property
    def member(self) -> str:
        """The entry's sorted-set member (unique across processes)."""


class AdmitReply(NamedTuple):
    """What ``admit.lua`` answered (see the script's header)."""

    admitted: int  # how many of the batch, in order, were admitted
    wait_us: int  # nothing changes for the rest before this many µs
    blocked: int  # 0, BLOCKED_OPEN, BLOCKED_PAUSE or BLOCKED_SETTLE
    now_us: int  # the server's time of the decision
    in_window: int  # cost in the first rate's window after the call


@final
class Wire:
    """One throttler's connection to Redis: its client, keys, scripts and encodings.

    Args (all validated by the caller):
        client: the asyncio client to call (redis-py's or valkey-py's).
        owns_client: whether the client was made here from ``url`` (closed by
            :meth:`aclose`, made again by :meth:`remake_client`).
        url: the URL the client was made from, or ``None``.
        library: the client's library (its errors, and how to make a client of ``url``).
        key: the throttler's key, as given (named in error messages).
        prefix: prepended to every Redis key.
        terms: the limits to send.
        open_timeout: seconds an unsettled entry counts as open, at most.
        lease_timeout: seconds a latency-proof entry counts as open past its last
            renewal (at most ``open_timeout``).
        command_timeout: seconds any one call may take.
        replicas: replicas that must acknowledge each call (``WAIT``), 0 for none.

    Attributes:
        keys: the Redis keys: stamps (sorted set), GCRA time, pause, fence.
        round_trips: calls sent (``EVALSHA`` and ``EVAL`` each count).
        errors: calls that failed (an error or ``command_timeout``).
    """

    __slots__ = (
        "_client",
        "_command_timeout",
        "_hold_us",
        "_key",
        "_lease",
        "_library",
        "_open_timeout",
        "_owns_client",
        "_replicas",
        "_resume_us",
        "_terms",
        "_url",
        "errors",
        "keys",
        "round_trips",
    )

    def __init__(
        self,
        client: Any,
        owns_client: bool,
        url: str | None,
        library: Library,
        *,
        key: str,
        prefix: str,
        terms: Terms,
        open_timeout: float,
        lease_timeout: float,
        command_timeout: float,
        replicas: int = 0,
    ) -> None:
        self._client = client
        self._replicas = replicas
        self._owns_client = owns_client
        self._url = url
        self._library = library
        self._key = key
        base = f"{prefix}{{{escape_key(key)}}}"
        self.keys = (f"{base}:s", f"{base}:t", f"{base}:p", f"{base}:x")
        self._terms = terms
        self._open_timeout = open_timeout
        self._lease = min(lease_timeout, open_timeout)
        # A latency-proof entry is admitted open for one lease; its process renews it.
        self._hold_us = str(round(self._lease * 1e6))
        self._command_timeout = command_timeout
        # An acquire() entry counts as open at most this long, waiting for its task to
        # resume (its stamp is then on its way, bounded by command_timeout).
        self._resume_us = str(round(min(open_timeout, command_timeout) * 1e6))
        self.round_trips = 0
        self.errors = 0

    @property
    def open_timeout(self) -> float:
        """Seconds an unsettled entry counts as open."""
        return self._open_timeout

    @property
    def lease(self) -> float:
        """Seconds a latency-proof entry counts as open past its admission or last
        renewal (``lease_timeout``, at most ``open_timeout``)."""
        return self._lease

    @property
    def resume_timeout(self) -> float:
        """Seconds an ``acquire()`` entry counts as open, waiting for its stamp."""
        return int(self._resume_us) / 1e6

    def key_ttl(self, now: float) -> float:
        """Seconds the keys live after a write at ``now`` (loop time): the longest period
        plus ``open_timeout``, plus 1 s. Nothing a call added outlives it."""
        return int(self._ttl_ms(self._terms.every(now))) / 1000

    async def admit(self, batch: Sequence[Request], call: str) -> AdmitReply:
        """Ask ``admit.lua`` to admit ``batch`` in order (one round trip).

        ``call`` is the call's id: fenced off (:meth:`settle`), the call admits nothing.
        """
        terms = self._terms
        rates = terms.every(asyncio.get_running_loop().time())
        args = [
            self._hold_us,
            self._resume_us,
            str(terms.burst or 0),
            repr(terms.interval_us()),
            self._ttl_ms(rates),
            str(len(rates)),
        ]
        for rate in rates:
            args += (str(rate.limit), str(max(1, round(rate.period * 1e6))))
        args.append(str(len(batch)))
        for request in batch:
            args += (str(request.cost), request.mode, request.member)
        args.append(call)
        reply = await self.call(ADMIT, self.keys, args)
        admitted, wait_us, blocked, now_us, in_window = (int(x) for x in reply)
        return AdmitReply(admitted, wait_us, blocked, now_us, in_window)

    async def settle(
        self,
        settles: Sequence[tuple[int, str]],
        forgets: Sequence[tuple[int, str]],
        fences: Sequence[str],
        renewals: Sequence[tuple[int, str, int]] = (),
    ) -> None:
        """Stamp ``settles`` now and forget ``forgets``, each ``(cost, member)``, fence
        off the admit calls ``fences`` (by id), and renew the leases of ``renewals``, each
        ``(cost, member, deadline in server µs)``, of entries still open. Idempotent: safe
        to send again."""
        terms = self._terms
        args = [
            str(terms.burst or 0),
            repr(terms.interval_us()),
            self._ttl_ms(terms.every(asyncio.get_running_loop().time())),
            str(len(settles)),
        ]
        for cost, member in settles:
            args += (str(cost), member)
        args.append(str(len(forgets)))
        for cost, member in forgets:
            args += (str(cost), member)
        args.append(str(len(fences)))
        args += fences
        args += (self._hold_us, str(len(renewals)))
        for cost, member, deadline in renewals:
            args += (str(cost), member, str(deadline))
        stamps, tat, _, fence = self.keys
        await self.call(SETTLE, (stamps, tat, fence), args)

    async def pause(self, ms: float) -> None:
        """Share a pause of ``ms`` milliseconds of server time (0: end the shared pause)."""
        await self.call(PAUSE, self.keys[2:3], [repr(ms)])

    async def call(self, script: Script, keys: Sequence[str], args: list[str]) -> Any:
        """Run ``script`` by SHA (loading it on NOSCRIPT), bounded by ``command_timeout``.

        Raises:
            ThrottlerBackendError: on any error of the client's library or timeout, with it
                as ``__cause__``.
            asyncio.CancelledError: when the calling task is being cancelled, even if
                redis-py raised an error of its own instead (its connect retries may).
        """
        try:
            return await _bounded(self._eval(script, keys, args), self._command_timeout)
        except (TimeoutError, self._library.error, OSError, ReplicaLag) as exc:
            self.errors += 1
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A cancellation redis-py turned into an error: the caller must stop (a
                # flusher that took it for a failure would retry, and hold up the loop's
                # shutdown), so it is a cancellation still.
                raise asyncio.CancelledError from exc
            what = (
                f"no answer within command_timeout={self._command_timeout} s"
                if isinstance(exc, TimeoutError) and not isinstance(exc, self._library.error)
                else f"{type(exc).__name__}: {exc}"
            )
            raise ThrottlerBackendError(
                f"Redis failed running {script.name}.lua for key {self._key!r}: {what}"
            ) from exc

    def remake_client(self) -> None:
        """Make the client again, when it was made from a URL (for a new event loop: its
        connections belong to the closed loop and fail on any other)."""
        if self._owns_client and self._url is not None:
            self._client = self._library.from_url(self._url)

    async def aclose(self) -> None:
        """Close the client if it was made here."""
        if self._owns_client:
            await self._client.aclose()

    async def _eval(self, script: Script, keys: Sequence[str], args: list[str]) -> Any:
        # A connection lost where the client's own retries do not reach (valkey-py checks a
        # pooled connection before its retry loop, and raises if the server closed it just
        # then) is worth a few more tries: every script is safe to run again (see
        # admit.lua), and `call` bounds them all by command_timeout.
        for attempt in range(_LOST_CONNECTION_TRIES):
            try:
                return await self._eval_once(script, keys, args)
            except self._library.connection_error:
                if attempt == _LOST_CONNECTION_TRIES - 1:
                    raise
                await asyncio.sleep(_BACKOFF_BASE * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _eval_once(self, script: Script, keys: Sequence[str], args: list[str]) -> Any:
        client: Any = self._client
        self.round_trips += 1
        if self._replicas:
            return await self._eval_replicated(script, keys, args)
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except self._library.no_script:
            # The script cache was flushed (SCRIPT FLUSH, restart, failover): EVAL caches it.
            self.round_trips += 1
            return await client.eval(script.source, len(keys), *keys, *args)

    async def _eval_replicated(self, script: Script, keys: Sequence[str], args: list[str]) -> Any:
        """The script then ``WAIT``, in one pipeline: WAIT counts the replicas that have
        every write of its own connection."""
        wait_ms = max(1, round(self._command_timeout * 500))
        client: Any = self._client
        for source in (None, script.source):
            # As a context manager: its connection goes back to the pool whatever happens.
            async with client.pipeline(transaction=False) as pipe:
                if source is None:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                else:
                    self.round_trips += 1
                    pipe.eval(source, len(keys), *keys, *args)
                pipe.execute_command("WAIT", self._replicas, wait_ms)
                try:
                    reply, acknowledged = await pipe.execute()
                except self._library.no_script:
                    continue  # the script cache was flushed: EVAL caches it
            if int(acknowledged) < self._replicas:
                raise ReplicaLag(
                    f"acknowledged by {int(acknowledged)} of {self._replicas} replica(s) "
                    f"within {wait_ms / 1000:g} s (WAIT)"
                )
            return reply
        raise AssertionError("unreachable: EVAL cannot answer NOSCRIPT")

    def _ttl_ms(self, rates: Sequence[Rate]) -> str:
        """How long keys must live: the longest period plus ``open_timeout``, plus 1 s."""
        return str(math.ceil((max(r.period for r in rates) + self._open_timeout) * 1000) + 1000)


async def _bounded(call: Awaitable[Any], seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        return await call
