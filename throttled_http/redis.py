"""A throttler whose limit holds across processes and machines, kept in Redis.

:class:`RedisThrottler` has the interface of :class:`~throttled_http.Throttler`, but its
windows live in Redis (or Valkey, KeyDB), so every process using the same ``key`` shares one
limit. :class:`RedisBackend` plugs it into :class:`~throttled_http.ThrottlerMap` and the
HTTP integrations, for per-host limits shared by a fleet of workers.

**Exactness.** Each admission is decided by one Lua script, atomically, on the Redis
server's clock (``TIME``), never on a client's: skewed client clocks cannot break the limit.
The rules are those of the in-memory throttler: a strict sliding window per rate, ``burst``
as GCRA, and latency-proof entries (:meth:`RedisThrottler.open_entry`) that count from
admission until they are settled, at the server's time of settling, and for ``period``
after it. An :meth:`RedisThrottler.acquire` entry is settled when its task resumes, as in
the in-memory throttler.

**No polling.** Tasks of one process queue locally, first come first served, and only the
head of the queue talks to Redis (asking for up to 64 queued entries in one round trip). A
refused head sleeps until the moment the server says the next entry frees, plus a little
jitter. The one case where nobody can know that moment is a window full of entries still
open in *another* process (requests awaiting their headers): the head then asks again
after ``period / rate_limit`` seconds (clamped to 5-250 ms). Settles in the same process
wake it at once.

**Data.** Per key, with the key escaped and wrapped in a ``{...}`` hash tag so that every
Redis key of one throttler lives in one Redis Cluster slot::

    <prefix>{<escaped key>}:s   sorted set: one member per unit of cost, scored by its stamp
                                (µs of server time); an open entry is scored at its deadline
    <prefix>{<escaped key>}:t   GCRA theoretical arrival time (smooth mode only)
    <prefix>{<escaped key>}:p   end of a shared pause

Every key expires on its own once idle (after the longest period plus ``hold_timeout``).

**Faults.** A Redis error, timeout or restart raises :class:`ThrottlerBackendError` (with
the redis-py error as ``__cause__``) from the waiting call by default; ``on_error="local"``
falls back to an in-memory :class:`~throttled_http.Throttler` at the same rates in this
process, which starts from this process's own entries of the last period (and keeps
counting its own entries for one period after Redis is back); ``on_error="allow"``
admits. Either way Redis is tried again ``recover_after`` seconds later, and used again
as soon as it answers. No call waits on Redis longer than
``command_timeout``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import itertools
import logging
import math
import random
import secrets
import sys
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, final
from urllib.parse import quote

try:
    import redis as _redis_sync
    import redis.asyncio as _aioredis
    from redis.asyncio.cluster import RedisCluster
    from redis.exceptions import NoScriptError, RedisError
except ImportError as _exc:  # pragma: no cover - exercised by the no-extras test run
    raise ImportError(
        "throttled_http.redis requires redis-py: pip install throttled_http[redis]"
    ) from _exc

from ._exceptions import ThrottlerBackendError, ThrottlerTimeoutError
from ._ledger import INF, Ledger
from ._rates import Rate, RatesLike, parse_rates, resolve_rates
from ._throttler import Throttler, ThrottlerStatistics, _check_burst, _EntryState
from ._validate import int_in_range, non_negative_float, positive_float

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence
    from types import TracebackType

    from ._protocols import EntryLike

__all__ = [
    "OnError",
    "RedisBackend",
    "RedisEntry",
    "RedisStatistics",
    "RedisThrottler",
    "escape_key",
]

logger = logging.getLogger("throttled_http")

OnError = Literal["raise", "local", "allow"]

_ON_ERROR: Final = ("raise", "local", "allow")
_BATCH: Final = 64  # entries asked for in one round trip
_TAKE: Final = "0"  # admit and stamp now
_OPEN: Final = "1"  # admit open, stamped when settled
_RESUME: Final = "2"  # admit open, stamped when the waiting task resumes
_REDIS: Final = 0  # admission came from Redis
_LOCAL: Final = 1  # Redis failed: use the local fallback throttler
_ALLOW: Final = 2  # Redis failed: admit
_BLOCKED_OPEN: Final = 1
_BLOCKED_PAUSE: Final = 2
_PAUSE_RECHECK: Final = 1.0  # seconds between asks while another process's pause holds
_ST_OPEN: Final = 0
_ST_SETTLED: Final = 1
_ST_CLOSED: Final = 2

# Whether RedisThrottler.try_acquire() has warned that it cannot ask Redis (once a process).
_warned_try_acquire = False


@final
class _Script:
    """One Lua file of ``throttled_http/lua``, called by SHA with a fallback to EVAL."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str) -> None:
        self.name = name
        path = importlib.resources.files("throttled_http").joinpath(f"lua/{name}.lua")
        self.source = path.read_text(encoding="utf-8")
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


_ADMIT: Final = _Script("admit")
_SETTLE: Final = _Script("settle")
_PAUSE: Final = _Script("pause")


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


def _check_client(redis: object) -> tuple[_aioredis.Redis | RedisCluster, bool]:
    """The client to use and whether we created it (and so must close it)."""
    if isinstance(redis, str):
        scheme = redis.partition("://")[0] if "://" in redis else ""
        if scheme not in ("redis", "rediss", "unix"):
            # Never echo the URL: it may carry a password.
            raise ValueError(
                "redis must be a redis://, rediss:// or unix:// URL or a redis.asyncio client, "
                f"got a URL with scheme {scheme!r}"
            )
        try:
            return _aioredis.Redis.from_url(redis), True
        except ValueError as exc:
            raise ValueError(f"redis is not a valid Redis URL: {exc}") from None
    if isinstance(redis, (_aioredis.Redis, RedisCluster)):
        return redis, False
    if isinstance(redis, (_redis_sync.Redis, _redis_sync.RedisCluster)):
        raise TypeError(
            "redis must be an asyncio client (redis.asyncio.Redis or RedisCluster), "
            f"got the synchronous {type(redis).__module__}.{type(redis).__name__}"
        )
    raise TypeError(
        "redis must be a redis.asyncio.Redis or RedisCluster client or a redis:// URL, "
        f"got {type(redis).__name__}"
    )


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {prefix!r}")
    if "{" in prefix or "}" in prefix:
        raise ValueError(f"prefix must not contain '{{' or '}}' (hash tag braces), got {prefix!r}")
    return prefix


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a non-empty str, got {key!r}")
    if not key:
        raise ValueError("key must be a non-empty str, got ''")
    return key


def _check_on_error(on_error: object) -> OnError:
    if on_error == "raise":
        return "raise"
    if on_error == "local":
        return "local"
    if on_error == "allow":
        return "allow"
    raise ValueError(f"on_error must be one of 'raise', 'local', 'allow', got {on_error!r}")


@final
@dataclass(frozen=True, slots=True)
class RedisStatistics:
    """Counters of a :class:`RedisThrottler`'s traffic, from
    :meth:`RedisThrottler.redis_statistics`.

    Attributes:
        round_trips: Redis calls made (admissions, settles, pauses, script reloads).
        admitted: entries admitted through Redis.
        backend_errors: Redis calls that failed (error or ``command_timeout``).
        degraded: whether Redis is being bypassed now (``on_error`` ``"local"``/``"allow"``).
    """

    round_trips: int
    admitted: int
    backend_errors: int
    degraded: bool


@final
class _Waiter:
    __slots__ = ("cost", "fut", "generation", "hold", "member", "mode")

    def __init__(
        self, fut: asyncio.Future[tuple[int, int]], cost: int, mode: str, hold: bool, member: str
    ) -> None:
        self.fut = fut
        self.cost = cost
        self.mode = mode
        self.hold = hold
        self.member = member
        # The shadow ledger's generation of an entry admitted open through Redis.
        self.generation: int | None = None


@final
class RedisThrottler:
    """Admit at most ``rate_limit`` entries in any window of ``period`` seconds, fleet-wide.

    Every process (or machine) that builds a ``RedisThrottler`` with the same Redis, ``prefix``
    and ``key`` shares one limit::

        throttler = RedisThrottler(10, 1.0, redis="redis://127.0.0.1:6379", key="my-api")
        async with throttler:
            await fetch()

    **The guarantee.** For every half-open interval ``[t, t + period)`` of the *Redis
    server's* clock, the entries stamped in it cost at most ``rate_limit`` in all, whichever
    process admitted them. An entry of :meth:`acquire` (or ``async with``) counts from
    admission until its task actually resumes, and is stamped then (the stamp reaches
    Redis in the background, batched), so a busy loop that runs an admitted task late
    cannot bunch entries up; it counts as open for at most ``command_timeout`` (or
    ``hold_timeout`` if shorter) after admission, then as if stamped at that deadline,
    until its stamp arrives. An entry from :meth:`open_entry` or :meth:`entry` counts
    from admission until it is settled and for ``period`` after the server's time of
    settling, so no window at a remote HTTP server sees more either, whatever the latency.
    An entry not settled within ``hold_timeout`` of admission counts from then on as if
    stamped at that deadline (so a crashed process blocks nothing for long), until it is
    settled; the guarantee at a remote server therefore needs each request to *reach* the
    server within ``hold_timeout`` of admission (its response may take longer).

    **Fairness.** Within a process, entries are admitted first come, first served; across
    processes, whichever head asks first once an entry frees gets it.

    **Concurrency** (``max_concurrency``) and :meth:`release` are per process.

    **Pause.** :meth:`pause` takes effect at once in this process and is shared through
    Redis (on the server's clock) with every process using the key, which learns of it at
    its next round trip; :meth:`resume` ends it everywhere. A head held back by another
    process's pause asks again at least every second, so such a resume takes effect
    within about a second.

    **Loops.** As for :class:`~throttled_http.Throttler`: while it has waiters or open
    entries it belongs to their loop; once that loop is closed, the next loop takes it
    over, forgetting the stranded tasks and giving back what they held (their slots, and
    their entries in Redis). A client made from a URL is made again for the new loop.

    **Retuning.** :meth:`set_rates` changes this process's rates only (every process sharing
    a key must use the same rates: they are sent with each call). The old rates keep being
    enforced by this process for one old period (plus ``hold_timeout`` while it has open
    entries), so loosening never breaks a window already begun.

    Args:
        rate_limit: entries allowed per window (an int >= 1), or a :class:`Rate` or a rate
            string such as ``"10/s; 1000/h"``.
        period: the window's length in seconds, a finite number > 0.
        redis: a ``redis.asyncio.Redis`` or ``RedisCluster`` client (not closed by
            :meth:`aclose`), or a ``redis://``, ``rediss://`` or ``unix://`` URL (a client
            is made with ``Redis.from_url`` and closed by :meth:`aclose`).
        key: the shared limit's name, any non-empty string (escaped before use).
        rates: several limits that must all allow an entry; replaces ``rate_limit`` and
            ``period``.
        burst: smooth mode, ``1 <= burst <= rate_limit`` (GCRA spacing, as in
            :class:`~throttled_http.Throttler`).
        max_concurrency: cap on this process's entries in flight (``None``: no cap).
        prefix: prepended to every Redis key; must not contain ``{`` or ``}``.
        on_error: what to do when Redis fails: ``"raise"``
            :class:`~throttled_http.ThrottlerBackendError`, fall back to a ``"local"``
            in-memory throttler at the same rates, or ``"allow"`` entries.
        hold_timeout: seconds an open entry counts before it is considered stamped at
            that deadline (finite, > 0).
        command_timeout: seconds any one Redis call may take before it counts as a failure
            (finite, > 0).
        recover_after: seconds to bypass Redis after a failure with ``on_error`` ``"local"``
            or ``"allow"`` before trying it again (finite, > 0).

    Raises:
        TypeError, ValueError: at construction, naming the argument and its allowed range.
    """

    __slots__ = (
        "__weakref__",
        "_admitted",
        "_asking",
        "_burst",
        "_client",
        "_closed",
        "_command_timeout",
        "_counter",
        "_down_until",
        "_errors",
        "_fallback",
        "_flusher",
        "_forgets",
        "_hold",
        "_in_batch",
        "_in_flight",
        "_key",
        "_keys",
        "_last_in_window",
        "_last_wait",
        "_local_until",
        "_loop",
        "_max_concurrency",
        "_nap",
        "_on_error",
        "_open_cost",
        "_owns_client",
        "_pause_op",
        "_paused_until",
        "_pump",
        "_rates",
        "_recover_after",
        "_retiring",
        "_retry_at",
        "_round_trips",
        "_sent",
        "_sent_fut",
        "_settles",
        "_shadow",
        "_shared_pause_until",
        "_taken",
        "_token",
        "_url",
        "_waiters",
        "_woken",
    )

    def __init__(
        self,
        rate_limit: int | Rate | str | None = None,
        period: float = 1.0,
        *,
        redis: _aioredis.Redis | RedisCluster | str,
        key: str,
        rates: RatesLike | None = None,
        burst: int | None = None,
        max_concurrency: int | None = None,
        prefix: str = "throttled_http:",
        on_error: OnError = "raise",
        hold_timeout: float = 60.0,
        command_timeout: float = 2.0,
        recover_after: float = 1.0,
    ) -> None:
        self._rates = resolve_rates(rate_limit, period, rates)
        self._burst = _check_burst(burst, self._rates)
        if max_concurrency is not None:
            max_concurrency = int_in_range("max_concurrency", max_concurrency, 1, 2**62)
        self._max_concurrency = max_concurrency
        self._key = _check_key(key)
        base = f"{_check_prefix(prefix)}{{{escape_key(key)}}}"
        self._keys = (f"{base}:s", f"{base}:t", f"{base}:p")
        self._on_error = _check_on_error(on_error)
        self._hold = positive_float("hold_timeout", hold_timeout)
        self._command_timeout = positive_float("command_timeout", command_timeout)
        self._recover_after = positive_float("recover_after", recover_after)
        self._client, self._owns_client = _check_client(redis)
        self._url = redis if isinstance(redis, str) else None
        self._token = secrets.token_hex(6)
        self._counter = itertools.count(1)
        self._retiring: list[tuple[Rate, float]] = []
        self._waiters: deque[_Waiter] = deque()
        # Admitted waiters that have not resumed yet, with their kind of admission, and the
        # waiters whose admission round trip is under way.
        self._woken: dict[asyncio.Future[tuple[int, int]], tuple[_Waiter, int]] = {}
        self._asking: set[_Waiter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pump: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._nap: asyncio.Future[None] | None = None
        # (cost, member, whether losing it keeps an entry open until hold_timeout)
        self._settles: list[tuple[int, str, bool]] = []
        self._forgets: list[tuple[int, str, bool]] = []
        # Batches of settles/forgets/pauses the flusher has taken, and has finished with
        # (sent, failed or dropped); _sent_fut wakes whoever waits for _sent to grow.
        self._taken = 0
        self._sent = 0
        self._in_batch = 0
        self._sent_fut: asyncio.Future[None] | None = None
        self._pause_op: float | None = None  # ms to pause (0: resume), not yet sent
        self._paused_until = -math.inf
        self._shared_pause_until = -math.inf  # learned from Redis (loop time)
        self._down_until = -math.inf
        self._fallback: Throttler | None = None
        # This process's own recent entries, stamped on the local clock: what the "local"
        # fallback starts from, and what it keeps enforcing for a while after recovery.
        self._shadow = Ledger(self._rates, burst=self._burst)
        self._local_until = -math.inf
        self._in_flight = 0
        self._open_cost = 0
        self._closed = False
        self._round_trips = 0
        self._admitted = 0
        self._errors = 0
        self._last_in_window = 0
        self._last_wait = 0.0
        self._retry_at = -math.inf

    # -- configuration ---------------------------------------------------------------

    @property
    def rate_limit(self) -> int:
        """Entries allowed per window of the first rate."""
        return self._rates[0].limit

    @property
    def period(self) -> float:
        """The first rate's window, in seconds."""
        return self._rates[0].period

    @property
    def rates(self) -> tuple[Rate, ...]:
        """Every limit in force."""
        return self._rates

    @property
    def burst(self) -> int | None:
        """Smooth-mode burst, or ``None``."""
        return self._burst

    @property
    def max_concurrency(self) -> int | None:
        """This process's concurrency cap, or ``None``."""
        return self._max_concurrency

    @property
    def key(self) -> str:
        """The shared limit's name, as given."""
        return self._key

    @property
    def redis_keys(self) -> tuple[str, str, str]:
        """The Redis keys holding the state: stamps (sorted set), GCRA time, pause."""
        return self._keys

    @property
    def hold_timeout(self) -> float:
        """Seconds an unsettled entry counts as open."""
        return self._hold

    @property
    def on_error(self) -> OnError:
        """What happens when Redis fails: ``"raise"``, ``"local"`` or ``"allow"``."""
        return self._on_error

    # -- entering --------------------------------------------------------------------

    async def __aenter__(self) -> None:
        await self._acquire(1, True, None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release_slot()

    async def acquire(self, cost: int = 1, *, timeout: float | None = None) -> None:
        """Wait for an entry of ``cost``, stamped when this task resumes after admission.

        The entry counts in every window from the server's time of admission; when the task
        resumes, its stamp is sent to Redis in the background (batched with the others of
        the moment) and it counts for ``period`` after the server's time of that stamp. If
        the stamp never arrives (Redis failed, or the loop ended first), it counts as
        stamped ``min(command_timeout, hold_timeout)`` seconds after admission.

        With ``max_concurrency`` set, this also takes a slot: give it back with
        :meth:`release` (``async with`` does both for you).

        Args:
            cost: weight of the entry, ``1 <= cost <= `` the smallest limit.
            timeout: seconds to wait at most, Redis round trips included (``None``: no
                limit). On expiry nothing is taken and
                :class:`~throttled_http.ThrottlerTimeoutError` is raised.

        Raises:
            ValueError: when ``cost`` exceeds a limit (it could never be admitted).
            ThrottlerTimeoutError: when ``timeout`` expires first.
            ThrottlerBackendError: when Redis fails and ``on_error="raise"``.
        """
        self._check_cost(cost)
        await self._acquire(cost, self._max_concurrency is not None, timeout)

    def try_acquire(self, cost: int = 1) -> bool:
        """Always ``False`` while Redis is healthy: use :meth:`try_acquire_async` instead.

        Warning:
            A synchronous call cannot ask the Redis server, and only the server knows
            whether the shared window has room. So while Redis is used, this **never admits
            anything** and returns ``False`` even when an entry is free. It exists only
            because the ``AsyncLimiter`` protocol requires it. The first call in a process
            that could not rule the entry out locally (a full window of this process's own
            entries, a pause, a full ``max_concurrency``, tasks queued here) logs a warning
            on logger ``throttled_http``.

        While Redis is bypassed after a failure it answers for real: with ``on_error``
        ``"local"`` the local fallback decides (``True`` took an entry), with ``"allow"``
        it returns ``True``. With ``max_concurrency``, ``True`` also took a slot (give it
        back with :meth:`release`).
        """
        global _warned_try_acquire
        self._check_cost(cost)
        loop = asyncio.get_running_loop()
        self._bind(loop)
        now = loop.time()
        if self._waiters or not self._slot_free() or self.paused_for > 0:
            return False
        if self._down_until <= now:
            # Healthy: only Redis could say yes. Stay silent when the answer is a sure no.
            if not _warned_try_acquire and self._shadow.earliest(now, cost, False) <= now:
                _warned_try_acquire = True
                logger.warning(
                    "throttled_http: RedisThrottler.try_acquire() cannot ask Redis and "
                    "returns False while Redis is used (%r); await try_acquire_async() "
                    "instead. This warning is shown once.",
                    self._key,
                )
            return False
        hold = self._max_concurrency is not None
        if self._on_error == "local" and not self._local().try_acquire(cost):
            return False
        if hold:
            self._in_flight += 1
        return True

    async def try_acquire_async(self, cost: int = 1) -> bool:
        """Take an entry if Redis has one free now and nobody here waits; never queues.

        One round trip. With ``max_concurrency``, a ``True`` also took a slot (give it back
        with :meth:`release`).

        Raises:
            ThrottlerBackendError: when Redis fails and ``on_error="raise"``.
        """
        self._check_cost(cost)
        loop = asyncio.get_running_loop()
        self._bind(loop)
        if self._waiters or not self._slot_free():
            return False
        now = loop.time()
        if self._down_until > now:
            return self.try_acquire(cost)
        if self._local_windows_apply(now) and self._shadow.earliest(now, cost, False) > now:
            return False
        hold = self._max_concurrency is not None
        waiter = _Waiter(loop.create_future(), cost, _TAKE, hold, self._member())
        if hold:
            self._in_flight += 1
        self._asking.add(waiter)
        try:
            admitted, _ = await self._ask([waiter])
        except ThrottlerBackendError:
            if hold:
                self._in_flight -= 1
            if self._on_error == "raise":
                raise
            self._down(loop)
            return self.try_acquire(cost)
        except BaseException:
            if hold and waiter in self._asking:
                self._in_flight -= 1
            raise
        finally:
            self._asking.discard(waiter)
        if not admitted and hold:
            self._in_flight -= 1
        if admitted:
            self._shadow.take(self._now(), cost, False)
        return admitted == 1

    def release(self) -> None:
        """Give back the slot an :meth:`acquire` took when ``max_concurrency`` is set.

        A no-op without ``max_concurrency``.

        Raises:
            RuntimeError: when called more times than ``acquire()``.
        """
        if self._max_concurrency is not None:
            self._release_slot()

    def entry(self, cost: int = 1, *, timeout: float | None = None) -> _EntryContext:
        """A latency-proof entry: ``async with throttler.entry() as e:``.

        It counts from admission until ``e.settle()`` (or the block's exit) and for
        ``period`` after the server's time of settling. Leaving the block waits until the
        settle has reached Redis (one round trip, shared with other settles; at most
        ``command_timeout`` if Redis fails), so a program may end right after it.
        """
        self._check_cost(cost)
        return _EntryContext(self, cost, timeout)

    async def open_entry(self, cost: int = 1, *, timeout: float | None = None) -> EntryLike:
        """Wait for a latency-proof entry and return it open; the caller must close it.

        Call ``settle()`` when the effect happened (response headers arrived) and
        ``close()`` when the slot may be reused; both are synchronous and idempotent. The
        settle is sent to Redis in the background (batched with others);
        :meth:`aclose` waits for those still pending.

        Warning:
            A settle still unsent when the event loop stops (``asyncio.run`` returning
            without :meth:`aclose`) is lost: the entry stays open in Redis until
            ``hold_timeout``, blocking every process. A warning is logged on logger
            ``throttled_http`` when that happens.

        Raises:
            ThrottlerTimeoutError: when ``timeout`` expires first.
            ThrottlerBackendError: when Redis fails and ``on_error="raise"``.
        """
        self._check_cost(cost)
        loop = asyncio.get_running_loop()
        start = loop.time()
        kind, now_us, waiter = await self._admit(cost, _OPEN, True, timeout)
        if kind == _REDIS:
            entry = RedisEntry(self, cost, waiter.member, now_us / 1e6, None)
            entry._generation = waiter.generation
            return entry
        if kind == _ALLOW:
            return RedisEntry(self, cost, None, None, None)
        try:
            local = await self._local().open_entry(cost, timeout=_left(loop, start, timeout))
        except BaseException:
            self._release_slot()
            raise
        return RedisEntry(self, cost, None, None, local)

    # -- server feedback -------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """Admit nothing for ``seconds`` from now, here at once and in every process soon.

        A shorter pause never cuts a longer one short. The shared pause is sent to Redis in
        the background and measured on the server's clock.

        Raises:
            ValueError: when ``seconds`` is negative or not finite.
        """
        seconds = non_negative_float("seconds", seconds)
        if seconds == 0:
            return
        loop = self._running_loop()
        until = loop.time() + seconds
        if until > self._paused_until:
            self._paused_until = until
        pending = self._pause_op
        if pending is None or pending < seconds * 1000:
            self._pause_op = seconds * 1000
        self._schedule_flush(loop)

    def resume(self) -> None:
        """End a pause now, in this process and (soon) in every process sharing the key."""
        self._paused_until = -math.inf
        self._shared_pause_until = -math.inf
        self._pause_op = 0.0
        self._schedule_flush(self._running_loop())
        self._poke()

    @property
    def paused_for(self) -> float:
        """Seconds left of the pause this process knows about (0 when not paused)."""
        until = max(self._paused_until, self._shared_pause_until)
        if until == -math.inf:
            return 0.0
        return max(0.0, until - self._now())

    def set_rates(self, *rates: RatesLike, burst: int | None = None) -> None:
        """Retune this process's limits (see "Retuning" above).

        Args:
            rates: the new limits, as for :func:`~throttled_http.parse_rates`.
            burst: smooth mode for the new limits.
        """
        new = parse_rates(*rates)
        burst = _check_burst(burst, new)
        now = self._now()
        self._retiring = [(r, until) for r, until in self._retiring if until > now]
        extra = self._hold if self._open_cost else 0.0
        for old in self._rates:
            if old not in new:
                self._retiring.append((old, now + old.period + extra))
        self._rates = new
        self._burst = burst
        if self._fallback is not None:
            self._fallback.set_rates(new, burst=burst)  # retunes the shadow it shares
        else:
            self._shadow.set_rates(now, new, burst)
        self._poke()

    # -- introspection ---------------------------------------------------------------

    def statistics(self) -> ThrottlerStatistics:
        """A frozen snapshot of this process's view, as :meth:`Throttler.statistics` gives.

        Only this process's part is known without asking Redis: ``waiting``, ``open`` and
        ``in_flight`` count this process's entries; ``in_window`` (all processes) and
        ``wait_time`` are what the server reported at the last admission round trip
        (``wait_time`` is 0 after an admission).
        """
        return ThrottlerStatistics(
            rates=self._rates,
            burst=self._burst,
            max_concurrency=self._max_concurrency,
            waiting=sum(1 for w in self._waiters if not w.fut.done()),
            in_window=self._last_in_window,
            open=self._open_cost,
            in_flight=self._in_flight,
            wait_time=self._last_wait,
            paused_for=self.paused_for,
        )

    def redis_statistics(self) -> RedisStatistics:
        """Round trips, admissions and errors so far, and whether Redis is bypassed now."""
        return RedisStatistics(
            round_trips=self._round_trips,
            admitted=self._admitted,
            backend_errors=self._errors,
            degraded=self._down_until > self._now(),
        )

    def is_idle(self) -> bool:
        """Nothing of this process waiting, open, in flight, paused or left to send.

        The windows live in Redis, so an idle ``RedisThrottler`` can be dropped and rebuilt
        (as :class:`~throttled_http.ThrottlerMap` does) without loosening any limit.
        """
        return (
            not self._waiters
            and self._pump is None
            and self._flusher is None
            and not self._open_cost
            and not self._in_flight
            and self.paused_for == 0
            # The fallback would start from the shadow: keep it while it remembers entries.
            and (self._on_error != "local" or self._shadow.is_idle(self._now()))
        )

    async def aclose(self) -> None:
        """Send pending settles (waiting for them), stop, and close the client if it was made
        from a URL.

        Tasks still waiting get :class:`~throttled_http.ThrottlerBackendError`. Idempotent.
        """
        if self._closed:
            return
        if self._loop is not None and self._loop.is_closed():
            self._bind(asyncio.get_running_loop())
        self._closed = True
        pump = self._pump
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        self._fail_waiters(ThrottlerBackendError(f"{self!r} was closed"))
        await self._drain()
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        rates = ", ".join(str(r) for r in self._rates)
        extra = f" burst={self._burst}" if self._burst is not None else ""
        if self._max_concurrency is not None:
            extra += f" max_concurrency={self._max_concurrency}"
        return (
            f"<RedisThrottler {self._key!r} {rates}{extra} open={self._open_cost} "
            f"in_flight={self._in_flight} waiting={len(self._waiters)}>"
        )

    # -- the local queue ---------------------------------------------------------------

    async def _acquire(self, cost: int, hold: bool, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        kind, _, waiter = await self._admit(cost, _RESUME, hold, timeout)
        if kind == _REDIS:
            # Open from admission until now, when this task resumes: the stamp is sent in
            # the background, batched with the others of the moment.
            self._settle(cost, waiter.member, waiter.generation, False)
        elif kind == _LOCAL:
            try:
                await self._local().acquire(cost, timeout=_left(loop, start, timeout))
            except BaseException:
                if hold:
                    self._release_slot()
                raise

    async def _admit(
        self, cost: int, mode: str, hold: bool, timeout: float | None
    ) -> tuple[int, int, _Waiter]:
        """Queue, wait for the pump's verdict, and return ``(kind, server µs, waiter)``."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        self._bind(loop)
        if timeout is not None:
            timeout = non_negative_float("timeout", timeout)
        fut: asyncio.Future[tuple[int, int]] = loop.create_future()
        waiter = _Waiter(fut, cost, mode, hold, self._member())
        self._waiters.append(waiter)
        if self._pump is None:
            self._pump = loop.create_task(self._run_pump())
        timer = None if timeout is None else loop.call_later(timeout, _expire, fut, timeout)
        try:
            kind, now_us = await fut
        except BaseException:
            if self._woken.pop(fut, None) is not None:
                # Admitted, then cancelled before resuming: the entry never happened.
                self._undo(waiter, fut.result()[0])
            else:
                self._poke()
            raise
        finally:
            self._woken.pop(fut, None)
            if timer is not None:
                timer.cancel()
        return kind, now_us, waiter

    async def _run_pump(self) -> None:
        """Serve the queue head to tail; the only task that asks Redis for admissions."""
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        waiters = self._waiters
        try:
            while True:
                while waiters and waiters[0].fut.done():
                    waiters.popleft()
                if not waiters:
                    return
                now = loop.time()
                if self._paused_until > now:
                    await self._sleep(loop, self._paused_until - now)
                    continue
                batch = self._take_batch()
                if not batch:
                    await self._sleep(loop, None)  # the head waits for a slot
                    continue
                if self._down_until > now:
                    self._resolve(
                        batch, len(batch), _LOCAL if self._on_error == "local" else _ALLOW, 0
                    )
                    continue
                if self._local_windows_apply(now):
                    # Redis does not know the entries the fallback admitted: until they
                    # are out of every window, each entry must fit the local windows too.
                    self._give_back(batch[1:])
                    batch = batch[:1]
                    at = self._shadow.earliest(now, batch[0].cost, False)
                    if at > now:
                        self._give_back(batch)
                        wait = self._poll_interval() if at == INF else at - now
                        if self._down_until == -math.inf:
                            wait = min(wait, self._local_until - now)
                        await self._sleep(loop, wait)
                        continue
                self._asking.update(batch)
                try:
                    admitted, now_us = await self._ask(batch)
                except ThrottlerBackendError as exc:
                    self._asking.difference_update(batch)
                    self._give_back(batch)
                    if self._on_error == "raise":
                        self._fail_batch(batch, exc)
                    else:
                        self._down(loop)
                    continue
                except BaseException:
                    if self._pump is me:
                        self._asking.difference_update(batch)
                        self._give_back(batch)  # closed mid-call: the batch fails below
                    raise
                self._asking.difference_update(batch)
                self._resolve(batch, admitted, _REDIS, now_us)
                self._give_back(batch[admitted:])
                if admitted < len(batch):
                    await self._sleep(loop, self._delay())
        except BaseException as exc:
            if self._pump is not me:
                raise  # a pump of a closed loop, closed by the garbage collector: forgotten
            if not isinstance(exc, asyncio.CancelledError):
                logger.exception("throttled_http: the Redis throttler %r failed", self._key)
            self._fail_waiters(ThrottlerBackendError(f"the Redis throttler failed: {exc!r}"))
            raise
        finally:
            if self._pump is me:
                self._pump = None

    async def _ask(self, batch: list[_Waiter]) -> tuple[int, int]:
        """One admit round trip; returns how many of ``batch`` were admitted, and when."""
        loop = asyncio.get_running_loop()
        sent = loop.time()
        reply = await self._call(_ADMIT, self._keys, self._admit_args(batch))
        admitted, wait_us, blocked, now_us, in_window = (int(x) for x in reply)
        # The server's "now" was about half a round trip after sending: aim from there.
        decided = (sent + loop.time()) / 2
        if self._down_until != -math.inf:
            self._down_until = -math.inf
            if self._fallback is not None:
                # Entries the fallback admitted count until the longest period after the
                # last one; one still open counts as stamped at most hold_timeout from now.
                extra = self._hold if self._shadow.open else 0.0
                longest = max(r.period for r in self._all_rates())
                self._local_until = loop.time() + longest + extra
            logger.warning("throttled_http: Redis answers again for %r", self._key)
        self._last_in_window = in_window
        self._admitted += admitted
        if blocked != _BLOCKED_PAUSE:
            self._shared_pause_until = -math.inf  # no pause in Redis any more
        if admitted < len(batch):
            wait = wait_us / 1e6
            if blocked == _BLOCKED_PAUSE:
                # Shared by another process: report it, but ask again at least every
                # second so that a resume() elsewhere is noticed.
                self._shared_pause_until = decided + wait
                wait = min(wait, _PAUSE_RECHECK)
            elif blocked == _BLOCKED_OPEN:
                wait = max(wait, self._poll_interval())
            self._last_wait = wait
            self._retry_at = decided + wait
        else:
            self._last_wait = 0.0
        return admitted, now_us

    def _delay(self) -> float:
        """Seconds until the refused head asks again: when the server said, plus jitter."""
        wait = self._last_wait
        jitter = random.random() * min(0.0002 + 0.01 * wait, 0.002)
        return max(0.0, self._retry_at - self._now()) + jitter

    def _poll_interval(self) -> float:
        return min(max(min(r.interval for r in self._rates), 0.005), 0.25)

    def _take_batch(self) -> list[_Waiter]:
        """The first queued entries (up to 64) that have a slot; reserves their slots."""
        batch: list[_Waiter] = []
        free = self._max_concurrency - self._in_flight if self._max_concurrency else _BATCH
        for waiter in self._waiters:
            if waiter.fut.done():
                continue
            if waiter.hold:
                if free <= 0:
                    break
                free -= 1
            batch.append(waiter)
            if len(batch) == _BATCH:
                break
        for waiter in batch:
            if waiter.hold:
                self._in_flight += 1
        return batch

    def _give_back(self, batch: Sequence[_Waiter]) -> None:
        for waiter in batch:
            if waiter.hold:
                self._in_flight -= 1

    def _resolve(self, batch: list[_Waiter], count: int, kind: int, now_us: int) -> None:
        """Hand the first ``count`` of ``batch`` their verdict and drop them from the queue."""
        waiters = self._waiters
        shadow = self._shadow
        now = self._now()
        for waiter in batch[:count]:
            if kind == _REDIS and waiter.mode != _TAKE:
                self._open_cost += waiter.cost
            while waiters and waiters[0] is not waiter:
                waiters.popleft()  # done before the batch was taken
            if waiters:
                waiters.popleft()
            if waiter.fut.done():
                self._undo(waiter, kind)  # timed out or cancelled during the round trip
                continue
            if kind == _REDIS:
                # Stamped here a little after the server did: counted longer, never less.
                if waiter.mode != _TAKE:
                    waiter.generation = shadow.reserve(waiter.cost, False)
                else:
                    shadow.take(now, waiter.cost, False)
            waiter.fut.set_result((kind, now_us))
            self._woken[waiter.fut] = (waiter, kind)

    def _fail_batch(self, batch: list[_Waiter], exc: ThrottlerBackendError) -> None:
        waiters = self._waiters
        for waiter in batch:
            while waiters and waiters[0] is not waiter:
                waiters.popleft()
            if waiters:
                waiters.popleft()
            if not waiter.fut.done():
                error = ThrottlerBackendError(str(exc))
                error.__cause__ = exc.__cause__
                waiter.fut.set_exception(error)

    def _fail_waiters(self, exc: ThrottlerBackendError) -> None:
        while self._waiters:
            fut = self._waiters.popleft().fut
            if not fut.done():
                error = ThrottlerBackendError(str(exc))
                error.__cause__ = exc.__cause__
                fut.set_exception(error)

    def _undo(self, waiter: _Waiter, kind: int) -> None:
        """Give back what an admitted waiter that will never resume took."""
        if waiter.hold:
            self._release_slot()
        if kind == _REDIS:
            if waiter.mode != _TAKE:
                self._open_cost -= waiter.cost
                if waiter.generation is not None:
                    self._shadow.unreserve(waiter.cost, False, waiter.generation)
                    waiter.generation = None
            # (A forgotten stamp stays in the shadow: counted longer, never less.)
            self._forgets.append((waiter.cost, waiter.member, waiter.mode == _OPEN))
            if self._loop is not None:
                self._schedule_flush(self._loop)

    def _down(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._down_until == -math.inf:
            logger.warning(
                "throttled_http: Redis failed for %r; %s for %.3g s before trying it again",
                self._key,
                "using an in-memory throttler" if self._on_error == "local" else "admitting",
                self._recover_after,
            )
        self._down_until = loop.time() + self._recover_after

    async def _sleep(self, loop: asyncio.AbstractEventLoop, delay: float | None) -> None:
        """Sleep ``delay`` seconds (``None``: until poked); a local event ends it early."""
        fut: asyncio.Future[None] = loop.create_future()
        self._nap = fut
        handle = None if delay is None else loop.call_later(delay, _wake, fut)
        try:
            await fut
        finally:
            if self._nap is fut:
                self._nap = None
            if handle is not None:
                handle.cancel()

    def _poke(self) -> None:
        nap = self._nap
        if nap is not None and not nap.done():
            nap.set_result(None)

    # -- settles, forgets and pauses: sent in the background, batched ------------------

    def _settle_entry(self, entry: RedisEntry) -> None:
        if entry._member is not None:
            entry._ticket = self._settle(entry.cost, entry._member, entry._generation, True)

    def _settle(self, cost: int, member: str, generation: int | None, entry: bool) -> int:
        """Stamp an entry open through Redis: here at once, in Redis from the background.

        Returns the flusher batch that will carry it.
        """
        self._open_cost -= cost
        if generation is not None:
            self._shadow.settle(self._now(), cost, generation)
            if self._fallback is not None:
                self._fallback._after_settle()  # its queue may wait on this open entry
        self._settles.append((cost, member, entry))
        self._schedule_flush(self._running_loop())
        return self._taken + 1

    def _pending(self) -> bool:
        return bool(self._settles or self._forgets or self._pause_op is not None)

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        flusher = self._flusher
        if (
            flusher is None or flusher.done() or flusher.get_loop().is_closed()
        ) and not loop.is_closed():
            flusher = self._flusher = loop.create_task(self._run_flusher())
            flusher.add_done_callback(self._flusher_done)

    def _flusher_done(self, task: asyncio.Task[None]) -> None:
        """Runs even for a flusher cancelled before it started (at loop shutdown)."""
        if self._flusher is task:
            self._flusher = None
        if task.cancelled():
            dropped = self._in_batch + _costly(self._settles) + _costly(self._forgets)
            if dropped:
                logger.warning(
                    "throttled_http: %d settle(s) of %r may not have reached Redis (the "
                    "loop stopped first): those entries stay open there until hold_timeout, "
                    "blocking every process. Leave 'async with entry()' or await aclose() "
                    "before the loop ends.",
                    dropped,
                    self._key,
                )
        self._in_batch = 0
        self._mark_sent(self._taken)

    def _mark_sent(self, batch: int) -> None:
        if batch > self._sent:
            self._sent = batch
        fut = self._sent_fut
        if fut is not None and not fut.get_loop().is_closed():
            self._sent_fut = None
            if not fut.done():
                fut.set_result(None)

    async def _flushed(self, batch: int) -> None:
        """Wait until the flusher is done with ``batch`` (sent, failed or dropped)."""
        loop = asyncio.get_running_loop()
        while self._sent < batch:
            flusher = self._flusher
            if flusher is None or flusher.done():
                if not self._pending():
                    return  # nothing left that could reach that batch
                self._schedule_flush(loop)
            elif flusher.get_loop() is not loop:
                return  # another loop's flusher: nothing this loop can wait on
            fut = self._sent_fut
            if fut is None or fut.get_loop() is not loop:
                fut = self._sent_fut = loop.create_future()
            # Shielded: a waiter cancelled here must not cancel the others' future.
            await asyncio.shield(fut)

    async def _drain(self) -> None:
        """Wait until everything queued for Redis so far has been sent (or failed)."""
        await self._flushed(self._taken + 1 if self._pending() else self._taken)

    async def _run_flusher(self) -> None:
        me = asyncio.current_task()
        try:
            while self._pending():
                settles, self._settles = self._settles, []
                forgets, self._forgets = self._forgets, []
                pause, self._pause_op = self._pause_op, None
                self._taken += 1
                self._in_batch = _costly(settles) + _costly(forgets)
                if settles or forgets:
                    try:
                        await self._call(
                            _SETTLE, self._keys[:2], self._settle_args(settles, forgets)
                        )
                    except ThrottlerBackendError as exc:
                        # The entries stay open in Redis until hold_timeout: counted longer
                        # than needed, never less.
                        logger.warning(
                            "throttled_http: could not settle entries of %r (%d left open "
                            "in Redis until hold_timeout): %s",
                            self._key,
                            len(settles) + len(forgets),
                            exc,
                        )
                if pause is not None:
                    try:
                        await self._call(_PAUSE, self._keys[2:], [repr(pause)])
                    except ThrottlerBackendError as exc:
                        logger.warning(
                            "throttled_http: could not share a pause of %r: %s", self._key, exc
                        )
                self._in_batch = 0
                self._mark_sent(self._taken)
                self._poke()
        finally:
            if self._flusher is me:
                self._flusher = None

    # -- Redis calls ---------------------------------------------------------------------

    async def _call(self, script: _Script, keys: Sequence[str], args: list[str]) -> Any:
        """Run ``script`` by SHA (loading it on NOSCRIPT), bounded by ``command_timeout``."""
        try:
            return await _bounded(self._eval(script, keys, args), self._command_timeout)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._errors += 1
            what = (
                f"no answer within command_timeout={self._command_timeout} s"
                if isinstance(exc, asyncio.TimeoutError) and not isinstance(exc, RedisError)
                else f"{type(exc).__name__}: {exc}"
            )
            raise ThrottlerBackendError(
                f"Redis failed running {script.name}.lua for key {self._key!r}: {what}"
            ) from exc

    async def _eval(self, script: _Script, keys: Sequence[str], args: list[str]) -> Any:
        client: Any = self._client
        self._round_trips += 1
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            # The script cache was flushed (SCRIPT FLUSH, restart, failover): EVAL caches it.
            self._round_trips += 1
            return await client.eval(script.source, len(keys), *keys, *args)

    def _all_rates(self) -> list[Rate]:
        """The rates in force plus old ones still retiring (see :meth:`set_rates`)."""
        if not self._retiring:
            return list(self._rates)
        now = self._now()
        self._retiring = [(r, until) for r, until in self._retiring if until > now]
        return list(self._rates) + [r for r, _ in self._retiring if r not in self._rates]

    def _ttl_ms(self, rates: Sequence[Rate]) -> str:
        """How long keys must live: the longest period plus ``hold_timeout``, plus 1 s."""
        return str(math.ceil((max(r.period for r in rates) + self._hold) * 1000) + 1000)

    def _admit_args(self, batch: list[_Waiter]) -> list[str]:
        rates = self._all_rates()
        args = [
            str(round(self._hold * 1e6)),
            str(round(self._resume_hold() * 1e6)),
            str(self._burst or 0),
            repr(self._interval_us()),
            self._ttl_ms(rates),
            str(len(rates)),
        ]
        for rate in rates:
            args += (str(rate.limit), str(max(1, round(rate.period * 1e6))))
        args.append(str(len(batch)))
        for waiter in batch:
            args += (str(waiter.cost), waiter.mode, waiter.member)
        return args

    def _settle_args(
        self, settles: list[tuple[int, str, bool]], forgets: list[tuple[int, str, bool]]
    ) -> list[str]:
        args = [
            str(self._burst or 0),
            repr(self._interval_us()),
            self._ttl_ms(self._all_rates()),
            str(len(settles)),
        ]
        for cost, member, _ in settles:
            args += (str(cost), member)
        args.append(str(len(forgets)))
        for cost, member, _ in forgets:
            args += (str(cost), member)
        return args

    def _resume_hold(self) -> float:
        """Seconds an ``acquire()`` entry counts as open at most, waiting for its task to
        resume (its settle is then on its way, bounded by ``command_timeout``)."""
        return min(self._hold, self._command_timeout)

    def _interval_us(self) -> float:
        return max(r.interval for r in self._rates) * 1e6 if self._burst is not None else 0.0

    # -- helpers -------------------------------------------------------------------------

    def _member(self) -> str:
        return f"{self._token}:{next(self._counter)}"

    def _local(self) -> Throttler:
        if self._fallback is None:
            fallback = Throttler.from_rates(self._rates, burst=self._burst)
            # Start from this process's own recent entries, not from an empty window: at
            # failover it already counts what this process was admitted through Redis.
            fallback._ledger = self._shadow
            self._fallback = fallback
        return self._fallback

    def _local_windows_apply(self, now: float) -> bool:
        """Whether entries must fit the local windows too: the fallback admitted entries
        that Redis does not know, and they may still share a window with a new one."""
        return self._fallback is not None and (
            self._down_until != -math.inf or now < self._local_until
        )

    def _slot_free(self) -> bool:
        return self._max_concurrency is None or self._in_flight < self._max_concurrency

    def _release_slot(self) -> None:
        if self._in_flight <= 0:
            raise RuntimeError("release() called more times than acquire()")
        self._in_flight -= 1
        if self._max_concurrency is not None and self._waiters:
            self._poke()

    def _check_cost(self, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"cost must be a positive integer, got {value!r}")
        smallest = min(r.limit for r in self._rates)
        if not 1 <= value <= smallest:
            raise ValueError(
                f"cost must be an integer from 1 to the smallest limit ({smallest}), got {value}"
            )

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is None or self._loop.is_closed():
                raise
            return self._loop

    def _now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            loop = self._loop
            return loop.time() if loop is not None and not loop.is_closed() else time.monotonic()

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        old = self._loop
        if old is loop:
            return
        if (
            old is not None
            and not old.is_closed()
            and (
                self._waiters
                or self._pump is not None
                or self._flusher is not None
                or self._open_cost
            )
        ):
            raise RuntimeError(
                f"{self!r} is in use by another event loop; it may move to a new loop only "
                "when it has no waiters and no open entries"
            )
        self._loop = loop
        if old is not None and old.is_closed():
            self._forget_closed_loop()

    def _forget_closed_loop(self) -> None:
        """Drop what a closed loop left behind, giving back what it held.

        Its tasks can never run again: the pump, the flusher and the queued waiters are
        forgotten (their futures cannot even be resolved), the slots reserved for a round
        trip under way and for admitted waiters that never resumed are given back, and their
        entries are forgotten in Redis (an entry that never happened must not count).
        Queued settles and pauses are sent from the new loop.
        """
        self._pump = None
        self._flusher = None
        self._nap = None
        self._sent_fut = None
        self._waiters = deque()
        if self._in_batch:
            logger.warning(
                "throttled_http: %d settle(s) of %r may not have reached Redis (their loop "
                "was closed): those entries stay open there until hold_timeout",
                self._in_batch,
                self._key,
            )
        self._in_batch = 0
        self._sent = self._taken
        asking, self._asking = self._asking, set()
        self._give_back(list(asking))
        for waiter in asking:
            # In case Redis admitted it:
            self._forgets.append((waiter.cost, waiter.member, waiter.mode == _OPEN))
        woken = list(self._woken.values())
        self._woken.clear()
        for waiter, kind in woken:
            self._undo(waiter, kind)
        if self._owns_client and self._url is not None:
            # The client's connections belong to the closed loop and fail on any other.
            self._client = _aioredis.Redis.from_url(self._url)
        if self._pending() and self._loop is not None:
            self._schedule_flush(self._loop)


def _costly(items: list[tuple[int, str, bool]]) -> int:
    """How many queued settles or forgets would keep an entry open until hold_timeout."""
    return sum(1 for item in items if item[2])


def _left(loop: asyncio.AbstractEventLoop, start: float, timeout: float | None) -> float | None:
    return None if timeout is None else max(0.0, timeout - (loop.time() - start))


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _expire(fut: asyncio.Future[tuple[int, int]], timeout: float) -> None:
    if not fut.done():
        fut.set_exception(ThrottlerTimeoutError(f"no entry was admitted within {timeout} s"))


if sys.version_info >= (3, 11):

    async def _bounded(call: Awaitable[Any], seconds: float) -> Any:
        async with asyncio.timeout(seconds):
            return await call

else:  # pragma: no cover - Python 3.10

    async def _bounded(call: Awaitable[Any], seconds: float) -> Any:
        return await asyncio.wait_for(call, seconds)


@final
class RedisEntry(_EntryState):
    """An admitted latency-proof entry of a :class:`RedisThrottler` (an ``EntryLike``).

    ``settle()`` stamps it at the Redis server's time (sent in the background; idempotent);
    ``close()`` settles it if needed and gives back its concurrency slot (idempotent).

    Attributes:
        cost: the entry's weight.
        admitted_at: the server's time of admission in seconds since the epoch, or
            ``None`` when Redis was bypassed (``on_error`` ``"local"``/``"allow"``).
    """

    __slots__ = (
        "_generation",
        "_local",
        "_member",
        "_throttler",
        "_ticket",
        "admitted_at",
    )

    def __init__(
        self,
        throttler: RedisThrottler,
        cost: int,
        member: str | None,
        admitted_at: float | None,
        local: EntryLike | None,
    ) -> None:
        self._throttler = throttler
        self.cost = cost
        self._member = member
        self.admitted_at = admitted_at
        self._local = local
        self._state = _ST_OPEN
        self._generation: int | None = None  # in the throttler's shadow ledger
        self._ticket = 0  # the flusher batch that carries its settle to Redis

    def settle(self) -> None:
        """Stamp the entry now (on the server's clock): it counts until ``period`` later."""
        if self._state != _ST_OPEN:
            return
        self._state = _ST_SETTLED
        if self._local is not None:
            self._local.settle()
        elif self._member is not None:
            self._throttler._settle_entry(self)

    def close(self) -> None:
        """Settle (if still open) and give back the concurrency slot."""
        if self._state == _ST_CLOSED:
            return
        self.settle()
        self._state = _ST_CLOSED
        if self._local is not None:
            self._local.close()
        self._throttler._release_slot()


@final
class _EntryContext:
    __slots__ = ("_cost", "_entry", "_throttler", "_timeout")

    def __init__(self, throttler: RedisThrottler, cost: int, timeout: float | None) -> None:
        self._throttler = throttler
        self._cost = cost
        self._timeout = timeout
        self._entry: EntryLike | None = None

    async def __aenter__(self) -> EntryLike:
        self._entry = await self._throttler.open_entry(self._cost, timeout=self._timeout)
        return self._entry

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry = self._entry
        if entry is None:
            return
        entry.close()
        if isinstance(entry, RedisEntry) and entry._ticket:
            # Wait for the settle to reach Redis: returning from asyncio.run right after the
            # block must not leave the entry open there until hold_timeout.
            await self._throttler._flushed(entry._ticket)


@final
class RedisBackend:
    """Make every limit of a :class:`~throttled_http.ThrottlerMap` shared through Redis.

    ``ThrottlerMap(..., backend=RedisBackend("redis://127.0.0.1:6379"))`` (and the
    ``backend=`` option of ``ThrottledClientSession`` and ``ThrottledTransport``) gives
    each host a :class:`RedisThrottler` keyed ``prefix + "{" + escaped host key + "}"``,
    so every process using the same Redis and prefix shares per-host limits. All of them
    share one client. ``max_concurrency`` stays per process.

    Args:
        redis: a ``redis.asyncio.Redis``/``RedisCluster`` client or a URL (see
            :class:`RedisThrottler`); a client made from a URL is closed by :meth:`aclose`.
        prefix: prepended to every Redis key; must not contain ``{`` or ``}``.
        on_error, hold_timeout, command_timeout, recover_after: as for
            :class:`RedisThrottler`.
    """

    __slots__ = ("_client", "_made", "_options", "_owns_client", "_prefix")

    def __init__(
        self,
        redis: _aioredis.Redis | RedisCluster | str,
        prefix: str = "throttled_http:",
        *,
        on_error: OnError = "raise",
        hold_timeout: float = 60.0,
        command_timeout: float = 2.0,
        recover_after: float = 1.0,
    ) -> None:
        self._prefix = _check_prefix(prefix)
        self._options: dict[str, Any] = {
            "on_error": _check_on_error(on_error),
            "hold_timeout": positive_float("hold_timeout", hold_timeout),
            "command_timeout": positive_float("command_timeout", command_timeout),
            "recover_after": positive_float("recover_after", recover_after),
        }
        self._client, self._owns_client = _check_client(redis)
        self._made: weakref.WeakSet[RedisThrottler] = weakref.WeakSet()

    @property
    def prefix(self) -> str:
        """The prefix of every Redis key."""
        return self._prefix

    def create(
        self,
        key: str,
        rates: tuple[Rate, ...],
        *,
        burst: int | None,
        max_concurrency: int | None,
    ) -> RedisThrottler:
        """A :class:`RedisThrottler` for ``key`` (a host key such as ``https://h:443``)."""
        throttler = RedisThrottler(
            rates=rates,
            redis=self._client,
            key=key,
            burst=burst,
            max_concurrency=max_concurrency,
            prefix=self._prefix,
            **self._options,
        )
        self._made.add(throttler)
        return throttler

    async def aclose(self) -> None:
        """Close every throttler made here (sending their pending settles), then the client
        if it was made from a URL."""
        for throttler in list(self._made):
            await throttler.aclose()
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"<RedisBackend prefix={self._prefix!r} on_error={self._options['on_error']!r}>"
