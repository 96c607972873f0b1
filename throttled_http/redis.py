"""A throttler whose limit holds across processes and machines, kept in Redis.

`RedisThrottler` has the interface of `Throttler`, but its
windows live in Redis (or Valkey, KeyDB), so every process using the same ``key`` shares one
limit. `RedisBackend` plugs it into `ThrottlerMap` and the
HTTP integrations, for per-host limits shared by a fleet of workers.

**Exactness.** Each admission is decided by one Lua script, atomically, on the Redis
server's clock (``TIME``), never on a client's: skewed client clocks cannot break the limit.
The rules are those of the in-memory throttler: a strict sliding window per rate, ``burst``
as GCRA, and latency-proof entries (`RedisThrottler.open_entry`) that count from
admission until they are settled, at the server's time of settling, and for ``period``
after it. An `RedisThrottler.acquire` entry is settled when its task resumes, as in
the in-memory throttler.

**No polling.** Tasks of one process queue locally, first come first served, and only the
head of the queue talks to Redis (asking for up to 64 queued entries in one round trip). A
refused head sleeps until the moment the server says the next entry frees, plus a little
jitter. For a window full of entries still open (requests awaiting their headers) nobody
knows that moment, but none of them can leave the window before one period from now (it
settles no earlier than now, then counts for a period), so the head sleeps that long; a
settle here does not wake it (it frees nothing sooner), a cancelled entry does. Only in
smooth mode, when open entries alone hold the burst back, does the head ask again after
``period / rate_limit`` seconds (clamped to 5-250 ms), and a settle here wakes it.

**Data.** Per key, with the key escaped and wrapped in a ``{...}`` hash tag so that every
Redis key of one throttler lives in one Redis Cluster slot:

    <prefix>{<escaped key>}:s   sorted set: one member per unit of cost, scored by its stamp
                                (µs of server time); an open entry is scored at its deadline
    <prefix>{<escaped key>}:t   GCRA theoretical arrival time (smooth mode only)
    <prefix>{<escaped key>}:p   end of a shared pause
    <prefix>{<escaped key>}:x   set: ids of admit calls whose answer was lost (fenced off)

Every key expires on its own once idle (after the longest period plus ``open_timeout``).

**Faults.** A Redis error, timeout or restart raises `ThrottlerBackendError` (with
the redis-py error as ``__cause__``) from the waiting call by default, to every task queued
in this process at once; ``on_error="local"`` falls back to an in-memory
`Throttler` at the same rates in this process, which starts from
this process's own entries of the last period; ``on_error="allow"`` admits. Either way
Redis is tried again ``recover_after`` seconds later, and used again as soon as it
answers. No call waits on Redis longer than ``command_timeout``. A call that timed out may
still run in Redis (a stall): an admission is then fenced off and its entries forgotten,
and a settle sent again, once Redis answers, so a short stall costs about one
``command_timeout``, not ``open_timeout``. Whatever Redis forgets (a restart without
persistence, ``FLUSHALL``), this process never admits past its own record of its entries
of the last period, in any mode.

**Leases.** An open entry is scored at a lease deadline (``lease_timeout``, 5 s), which
this process renews while it lives, up to ``open_timeout``: a crashed process's entries
count as stamped within a lease of its last renewal.

**Parts.** A `RedisThrottler` composes five private parts, each a module of its
own that starts by teaching it: the *wire* (the Lua scripts, keys, argument encoding,
error mapping and bounded calls), the *local queue* (this process's FIFO queue and the
pump that asks Redis for it), the *outbox* (settles, forgets, renewals and pauses sent in
the background, batched), the *leases* (this process's open entries, renewed) and the
*failover* (the shadow ledger of this process's entries and
the local fallback). This module holds the public classes only.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, final

from ._exceptions import missing_extra

try:
    import redis.asyncio as _aioredis  # noqa: TC002 - imported at run time: the extra's check
    from redis.asyncio.cluster import RedisCluster  # noqa: TC002 - as above
except ImportError as _exc:  # pragma: no cover - exercised by the no-extras test run
    raise missing_extra(__name__, "redis-py", "redis") from _exc

from ._exceptions import ThrottlerBackendError
from ._front import ThrottlerStatistics, _check_burst, _EntryState
from ._rates import Rate, RatesLike, parse_rates, resolve_rates
from ._redis_failover import Failover, check_on_error
from ._redis_queue import ALLOW, LOCAL, REDIS, LocalQueue
from ._redis_wire import (
    OPEN,
    RESUME,
    Terms,
    Wire,
    check_client,
    check_key,
    check_prefix,
    check_replicas,
)
from ._redis_wire import escape_key as escape_key
from ._validate import int_in_range, non_negative_float, positive_float

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from valkey.asyncio import Valkey, ValkeyCluster

    from ._protocols import EntryLike
    from ._redis_queue import Waiter

OnError: TypeAlias = Literal["raise", "local", "allow"]
"""What a `RedisThrottler` does while Redis fails: `"raise"` a `ThrottlerBackendError`,
admit by this process's own `"local"` window, or `"allow"` every request (see **Faults**
above)."""

__all__ = [
    "OnError",
    "RedisBackend",
    "RedisEntry",
    "RedisStatistics",
    "RedisThrottler",
    "escape_key",
]

_ST_OPEN = 0
_ST_SETTLED = 1
_ST_CLOSED = 2


@final
@dataclass(frozen=True, slots=True)
class RedisStatistics:
    """Counters of a `RedisThrottler`'s traffic, from
    `RedisThrottler.redis_statistics`.

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
class RedisThrottler:
    """Admit at most ``rate_limit`` entries in any window of ``period`` seconds, fleet-wide.

    Every process (or machine) that builds a ``RedisThrottler`` with the same Redis, ``prefix``
    and ``key`` shares one limit:

        throttler = RedisThrottler(10, 1.0, redis="redis://127.0.0.1:6379", key="my-api")
        async with throttler:
            await fetch()

    **The guarantee.** For every half-open interval ``[t, t + period)`` of the *Redis
    server's* clock, the entries stamped in it cost at most ``rate_limit`` in all, whichever
    process admitted them. An entry of `acquire` (or ``async with``) counts from
    admission until its task actually resumes, and is stamped then (the stamp reaches
    Redis in the background, batched), so a busy loop that runs an admitted task late
    cannot bunch entries up; it counts as open for at most ``command_timeout`` (or
    ``open_timeout`` if shorter) after admission, then as if stamped at that deadline,
    until its stamp arrives. An entry from `open_entry` or `entry` counts
    from admission until it is settled and for ``period`` after the server's time of
    settling, so no window at a remote HTTP server sees more either, whatever the latency.
    An entry not settled within ``open_timeout`` of admission counts from then on as if
    stamped at that deadline, until it is settled; the guarantee at a remote server
    therefore needs each request to *reach* the server within ``open_timeout`` of
    admission (its response may take longer).

    **Leases.** An open entry holds its place in Redis for ``lease_timeout`` seconds,
    which this process renews (every third of a lease, all its open entries in one call)
    while it lives, up to ``open_timeout``. A crashed process stops renewing: its open
    entries count as stamped at most ``lease_timeout`` after its last renewal, and leave
    every window ``period`` later. A process that is alive but does not run for longer
    than two thirds of a lease (``SIGSTOP``, a blocked event loop, Redis unreachable from
    it) loses its leases the same way: the limit at a remote server then still holds for
    every request that reached it before its lease ran out.

    **Fairness.** Within a process, entries are admitted first come, first served; across
    processes, whichever head asks first once an entry frees gets it.

    **Concurrency** (``max_concurrency``) and `release` are per process: no slot is held
    in Redis, so a crashed process leaves none behind.

    **Pause.** `pause` takes effect at once in this process and is shared through
    Redis (on the server's clock) with every process using the key, which learns of it at
    its next round trip; `resume` ends it everywhere. A head held back by another
    process's pause asks again at least every second, so such a resume takes effect
    within about a second.

    **Loops.** As for `Throttler`: while it has waiters or open
    entries it belongs to their loop; once that loop is closed, the next loop takes it
    over, forgetting the stranded tasks and giving back what they held (their slots, and
    their entries in Redis). A client made from a URL is made again for the new loop.

    **Retuning.** `set_rates` changes this process's rates only (every process sharing
    a key must use the same rates: they are sent with each call). The old rates keep being
    enforced by this process for one old period (plus ``open_timeout`` while it has open
    entries), so loosening never breaks a window already begun.

    Args:
        rate_limit: entries allowed per window (an int >= 1), or a `Rate` or a rate
            string such as ``"10/s; 1000/h"``.
        period: the window's length in seconds, a finite number > 0.
        redis: a ``redis.asyncio.Redis`` or ``RedisCluster`` client, or a
            ``valkey.asyncio.Valkey`` or ``ValkeyCluster`` client (not closed by
            `aclose`), or a ``redis://``, ``rediss://``, ``unix://``, ``valkey://`` or
            ``valkeys://`` URL (a client is made with redis-py's or valkey-py's
            ``from_url``, retrying a dropped connection within ``command_timeout``, and
            closed by `aclose`).
        key: the shared limit's name, any non-empty string (escaped before use).
        rates: several limits that must all allow an entry; replaces ``rate_limit`` and
            ``period``.
        burst: smooth mode, ``1 <= burst <= rate_limit`` (GCRA spacing, as in
            `Throttler`).
        max_concurrency: cap on this process's entries in flight (``None``: no cap).
        prefix: prepended to every Redis key; must not contain ``{`` or ``}``.
        on_error: what to do when Redis fails: ``"raise"``
            `ThrottlerBackendError`, fall back to a ``"local"``
            in-memory throttler at the same rates, or ``"allow"`` entries.
        open_timeout: seconds an unsettled entry counts as open before it is considered
            stamped at that deadline (finite, > 0).
        lease_timeout: seconds an open entry of a process that stopped renewing it (it
            crashed) keeps counting as open (finite, > 0; at most ``open_timeout``).
        replicas: replicas that must have each call before it counts as done (``WAIT``
            after each script, in the same round trip): an admission is answered only
            once ``replicas`` replicas hold it, so a failover to one of them loses no
            entry. A call they do not acknowledge within ``command_timeout / 2`` fails as
            Redis failing does (see ``on_error``). 0 (the default) waits for none; not
            with a cluster client.
        command_timeout: seconds any one Redis call may take before it counts as a failure
            (finite, > 0).
        recover_after: seconds to bypass Redis after a failure with ``on_error`` ``"local"``
            or ``"allow"`` before trying it again (finite, > 0).

    Raises:
        TypeError, ValueError: at construction, naming the argument and its allowed range.

    .. versionchanged:: 0.2
       ``hold_timeout`` was renamed ``open_timeout``; the synchronous ``try_acquire()``
       was removed and ``try_acquire_async()`` renamed `try_acquire`; ``lease_timeout``
       and ``replicas`` were added.
    """

    __slots__ = ("__weakref__", "_closed", "_failover", "_key", "_queue", "_terms", "_wire")

    def __init__(
        self,
        rate_limit: int | Rate | str | None = None,
        period: float | None = None,
        *,
        redis: _aioredis.Redis | RedisCluster | Valkey | ValkeyCluster | str,
        key: str,
        rates: RatesLike | None = None,
        burst: int | None = None,
        max_concurrency: int | None = None,
        prefix: str = "throttled_http:",
        on_error: OnError = "raise",
        open_timeout: float = 60.0,
        lease_timeout: float = 5.0,
        command_timeout: float = 2.0,
        recover_after: float = 1.0,
        replicas: int = 0,
    ) -> None:
        resolved = resolve_rates(rate_limit, period, rates)
        burst = _check_burst(burst, resolved)
        if max_concurrency is not None:
            max_concurrency = int_in_range("max_concurrency", max_concurrency, 1, 2**62)
        self._key = check_key(key)
        prefix = check_prefix(prefix)
        on_error = check_on_error(on_error)
        open_timeout = positive_float("open_timeout", open_timeout)
        lease_timeout = positive_float("lease_timeout", lease_timeout)
        command_timeout = positive_float("command_timeout", command_timeout)
        recover_after = positive_float("recover_after", recover_after)
        replicas = check_replicas(replicas, redis)
        client, owns_client, library = check_client(redis)  # last: a URL makes a client
        self._terms = terms = Terms(resolved, burst)
        self._wire = wire = Wire(
            client,
            owns_client,
            redis if isinstance(redis, str) else None,
            library,
            key=key,
            prefix=prefix,
            terms=terms,
            open_timeout=open_timeout,
            lease_timeout=lease_timeout,
            command_timeout=command_timeout,
            replicas=replicas,
        )
        self._failover = failover = Failover(
            terms,
            key=key,
            on_error=on_error,
            recover_after=recover_after,
            open_timeout=open_timeout,
        )
        self._queue = LocalQueue(
            wire=wire, failover=failover, terms=terms, key=key, max_concurrency=max_concurrency
        )
        self._closed = False

    # -- configuration ---------------------------------------------------------------

    @property
    def rate_limit(self) -> int:
        """Entries allowed per window of the first rate."""
        return self._terms.rates[0].limit

    @property
    def period(self) -> float:
        """The first rate's window, in seconds."""
        return self._terms.rates[0].period

    @property
    def rates(self) -> tuple[Rate, ...]:
        """Every limit in force."""
        return self._terms.rates

    @property
    def burst(self) -> int | None:
        """Smooth-mode burst, or ``None``."""
        return self._terms.burst

    @property
    def max_concurrency(self) -> int | None:
        """This process's concurrency cap, or ``None``."""
        return self._queue.max_concurrency

    @property
    def key(self) -> str:
        """The shared limit's name, as given."""
        return self._key

    @property
    def redis_keys(self) -> tuple[str, str, str, str]:
        """The Redis keys holding the state: stamps (sorted set), GCRA time, pause, and
        the fence (the ids of admit calls whose answer was lost).

        .. versionchanged:: 0.2
           The fence was added.
        """
        return self._wire.keys

    @property
    def open_timeout(self) -> float:
        """Seconds an unsettled entry counts as open."""
        return self._wire.open_timeout

    @property
    def lease_timeout(self) -> float:
        """Seconds an open entry counts as open past its last renewal (at most
        `open_timeout`)."""
        return self._wire.lease

    @property
    def on_error(self) -> OnError:
        """What happens when Redis fails: ``"raise"``, ``"local"`` or ``"allow"``."""
        return self._failover.on_error

    # -- entering --------------------------------------------------------------------

    async def __aenter__(self) -> None:
        await self._acquire(1, True, None)

    async def __aexit__(self, *exc_info: object) -> None:
        self._queue.release_slot()

    async def acquire(self, cost: int = 1, *, timeout: float | None = None) -> None:
        """Wait for an entry of ``cost``, stamped when this task resumes after admission.

        The entry counts in every window from the server's time of admission; when the task
        resumes, its stamp is sent to Redis in the background (batched with the others of
        the moment) and it counts for ``period`` after the server's time of that stamp. If
        the stamp never arrives (Redis failed, or the loop ended first), it counts as
        stamped ``min(command_timeout, open_timeout)`` seconds after admission.

        With ``max_concurrency`` set, this also takes a slot: give it back with
        `release` (``async with`` does both for you).

        Args:
            cost: weight of the entry, ``1 <= cost <= `` the smallest limit.
            timeout: seconds to wait at most, Redis round trips included (``None``: no
                limit). On expiry nothing is taken and
                `ThrottlerTimeoutError` is raised.

        Raises:
            ValueError: when ``cost`` exceeds a limit (it could never be admitted).
            ThrottlerTimeoutError: when ``timeout`` expires first.
            ThrottlerBackendError: when Redis fails and ``on_error="raise"``.
        """
        self._terms.check_cost(cost)
        await self._acquire(cost, self._queue.max_concurrency is not None, timeout)

    async def try_acquire(self, cost: int = 1) -> bool:
        """Take an entry if Redis has one free now and nobody here waits; never queues.

        One round trip. With ``max_concurrency``, a ``True`` also took a slot (give it back
        with `release`). While Redis is bypassed after a failure (``on_error``
        ``"local"`` or ``"allow"``), no round trip is made: the local fallback decides, or
        ``"allow"`` answers ``True``, unless a pause, a full ``max_concurrency`` or tasks
        queued here rule the entry out.

        Raises:
            ThrottlerBackendError: when Redis fails and ``on_error="raise"``.

        .. versionchanged:: 0.2
           Was ``try_acquire_async()``; the synchronous ``try_acquire()``, which could
           not ask Redis and so always answered ``False`` while Redis was used, was removed.
        """
        self._terms.check_cost(cost)
        loop = asyncio.get_running_loop()
        self._queue.bind(self, loop)
        return await self._queue.try_take(loop, cost)

    def release(self) -> None:
        """Give back the slot an `acquire` took when ``max_concurrency`` is set.

        A no-op without ``max_concurrency``.

        Raises:
            RuntimeError: when called more times than ``acquire()``.
        """
        if self._queue.max_concurrency is not None:
            self._queue.release_slot()

    def entry(
        self, cost: int = 1, *, timeout: float | None = None
    ) -> AbstractAsyncContextManager[EntryLike]:
        """A latency-proof entry: ``async with throttler.entry() as e:``.

        It counts from admission until ``e.settle()`` (or the block's exit) and for
        ``period`` after the server's time of settling. Leaving the block waits until the
        settle has reached Redis (one round trip, shared with other settles; at most
        ``command_timeout`` if Redis fails), so a program may end right after it.
        """
        self._terms.check_cost(cost)
        return _EntryContext(self, cost, timeout)

    async def open_entry(self, cost: int = 1, *, timeout: float | None = None) -> EntryLike:
        """Wait for a latency-proof entry and return it open; the caller must close it.

        Call ``settle()`` when the effect happened (response headers arrived) and
        ``close()`` when the slot may be reused; both are synchronous and idempotent. The
        settle is sent to Redis in the background (batched with others);
        `aclose` waits for those still pending.

        Warning:
            A settle still unsent when the event loop stops (``asyncio.run`` returning
            without `aclose`) is lost: the entry stays open in Redis until
            ``open_timeout``, blocking every process. A warning is logged on logger
            ``throttled_http`` when that happens.

        Raises:
            ThrottlerTimeoutError: when ``timeout`` expires first.
            ThrottlerBackendError: when Redis fails and ``on_error="raise"``.
        """
        self._terms.check_cost(cost)
        loop = asyncio.get_running_loop()
        start = loop.time()
        kind, now_us, waiter = await self._admit(cost, OPEN, True, timeout)
        queue = self._queue
        if kind == REDIS:
            return RedisEntry(queue, cost, waiter.member, now_us / 1e6, None, waiter.reservation)
        if kind == ALLOW:
            return RedisEntry(queue, cost, None, None, None)
        try:
            local = await self._failover.open_entry(cost, _left(loop, start, timeout))
        except BaseException:
            queue.release_slot()
            raise
        return RedisEntry(queue, cost, None, None, local)

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
        queue = self._queue
        loop = queue.running_loop()
        queue.pacer.pause_until(loop.time() + seconds)
        queue.outbox.pause(seconds * 1000)
        queue.outbox.schedule(loop)

    def resume(self) -> None:
        """End a pause now, in this process and (soon) in every process sharing the key."""
        queue = self._queue
        queue.pacer.resume()
        queue.outbox.resume()
        queue.outbox.schedule(queue.running_loop())
        queue.poke()

    @property
    def paused_for(self) -> float:
        """Seconds left of the pause this process knows about (0 when not paused)."""
        return self._queue.paused_for()

    def set_rates(self, *rates: RatesLike, burst: int | None = None) -> None:
        """Retune this process's limits (see "Retuning" above).

        Args:
            rates: the new limits, as for `parse_rates`.
            burst: smooth mode for the new limits.
        """
        new = parse_rates(*rates)
        burst = _check_burst(burst, new)
        queue = self._queue
        now = queue.now()
        extra = self._wire.open_timeout if queue.open_cost else 0.0
        self._terms.retune(now, new, burst, extra)
        self._failover.set_rates(now, new, burst)
        queue.poke()

    # -- introspection ---------------------------------------------------------------

    def statistics(self) -> ThrottlerStatistics:
        """A frozen snapshot of this process's view, as `Throttler.statistics` gives.

        Only this process's part is known without asking Redis: ``waiting``, ``open`` and
        ``in_flight`` count this process's entries; ``in_window`` (all processes) and
        ``wait_time`` are what the server reported at the last admission round trip
        (``wait_time`` is 0 after an admission).
        """
        queue = self._queue
        return ThrottlerStatistics(
            rates=self._terms.rates,
            burst=self._terms.burst,
            max_concurrency=queue.max_concurrency,
            waiting=queue.waiting,
            in_window=queue.pacer.in_window,
            open=queue.open_cost,
            in_flight=queue.in_flight,
            wait_time=queue.pacer.wait,
            paused_for=queue.paused_for(),
        )

    def redis_statistics(self) -> RedisStatistics:
        """Round trips, admissions and errors so far, and whether Redis is bypassed now."""
        return RedisStatistics(
            round_trips=self._wire.round_trips,
            admitted=self._queue.pacer.admitted,
            backend_errors=self._wire.errors,
            degraded=self._failover.is_down(self._queue.now()),
        )

    def is_idle(self) -> bool:
        """Nothing of this process waiting, open, in flight, paused or left to send, and
        none of its entries in its own record of the last period.

        The windows live in Redis, and this process's record of its own entries (which
        guards the limit should Redis lose its data, and which the ``"local"`` fallback
        starts from) is empty, so an idle ``RedisThrottler`` can be dropped and rebuilt (as
        `ThrottlerMap` does) without loosening any limit.
        """
        return self._queue.is_idle() and self._failover.is_idle(self._queue.now())

    async def aclose(self) -> None:
        """Stop, send pending settles (waiting for them), and close the client if it was
        made from a URL.

        Tasks still waiting get `ThrottlerBackendError`. An
        admission under way is called off: Redis may run it all the same, so it is fenced
        off and its entries forgotten, with the pending settles. What cannot be sent now
        (Redis fails) gets one attempt, bounded by ``command_timeout``, and is then
        dropped (and logged). Idempotent.
        """
        if self._closed:
            return
        loop = self._queue.loop
        if loop is not None and loop.is_closed():
            self._queue.bind(self, asyncio.get_running_loop())
        self._closed = True
        self._queue.fail_waiters(ThrottlerBackendError(f"{self!r} was closed"))
        await self._queue.stop()
        await self._queue.outbox.drain()
        await self._wire.aclose()

    def __repr__(self) -> str:
        rates = ", ".join(str(r) for r in self._terms.rates)
        burst = self._terms.burst
        queue = self._queue
        extra = f" burst={burst}" if burst is not None else ""
        if queue.max_concurrency is not None:
            extra += f" max_concurrency={queue.max_concurrency}"
        return (
            f"<RedisThrottler {self._key!r} {rates}{extra} open={queue.open_cost} "
            f"in_flight={queue.in_flight} waiting={queue.queued}>"
        )

    # -- internals -------------------------------------------------------------------

    async def _acquire(self, cost: int, hold: bool, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        kind, _, waiter = await self._admit(cost, RESUME, hold, timeout)
        if kind == REDIS:
            # Open from admission until now, when this task resumes: the stamp is sent in
            # the background, batched with the others of the moment.
            self._queue.settle(cost, waiter.member, waiter.reservation, False)
        elif kind == LOCAL:
            try:
                await self._failover.acquire(cost, _left(loop, start, timeout))
            except BaseException:
                if hold:
                    self._queue.release_slot()
                raise

    async def _admit(
        self, cost: int, mode: str, hold: bool, timeout: float | None
    ) -> tuple[int, int, Waiter]:
        """Queue, wait for the pump's verdict, and return ``(kind, server µs, waiter)``."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        self._queue.bind(self, loop)
        if timeout is not None:
            timeout = non_negative_float("timeout", timeout)
        return await self._queue.admit(loop, cost, mode, hold, timeout)


def _left(loop: asyncio.AbstractEventLoop, start: float, timeout: float | None) -> float | None:
    return None if timeout is None else max(0.0, timeout - (loop.time() - start))


@final
class RedisEntry(_EntryState):
    """An admitted latency-proof entry of a `RedisThrottler` (an ``EntryLike``).

    ``settle()`` stamps it at the Redis server's time (sent in the background; idempotent);
    ``close()`` settles it if needed and gives back its concurrency slot (idempotent).

    Attributes:
        cost: the entry's weight.
        admitted_at: the server's time of admission in seconds since the epoch, or
            ``None`` when Redis was bypassed (``on_error`` ``"local"``/``"allow"``).
    """

    __slots__ = (
        "_local",
        "_member",
        "_queue",
        "_reservation",
        "_ticket",
        "admitted_at",
    )

    def __init__(
        self,
        queue: LocalQueue,
        cost: int,
        member: str | None,
        admitted_at: float | None,
        local: EntryLike | None,
        reservation: int | None = None,
    ) -> None:
        self._queue = queue
        self.cost = cost
        self._charge = None
        self._member = member
        self.admitted_at = admitted_at
        self._local = local
        self._state = _ST_OPEN
        self._reservation = reservation  # its ticket in the throttler's shadow ledger
        self._ticket = 0  # the outbox batch that carries its settle to Redis

    def settle(self) -> None:
        """Stamp the entry now (on the server's clock): it counts until ``period`` later."""
        if self._state != _ST_OPEN:
            return
        self._state = _ST_SETTLED
        if self._local is not None:
            self._local.settle()
        elif self._member is not None:
            self._ticket = self._queue.settle(self.cost, self._member, self._reservation, True)

    def close(self) -> None:
        """Settle (if still open) and give back the concurrency slot."""
        if self._state == _ST_CLOSED:
            return
        self.settle()
        self._state = _ST_CLOSED
        if self._local is not None:
            self._local.close()
        self._queue.release_slot()

    async def _sent(self) -> None:
        """Wait until the settle has reached Redis (or failed), if it was sent at all."""
        if self._ticket:
            await self._queue.outbox.flushed(self._ticket)


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

    async def __aexit__(self, *exc_info: object) -> None:
        entry = self._entry
        if entry is None:
            return
        entry.close()
        if isinstance(entry, RedisEntry):
            # Wait for the settle to reach Redis: returning from asyncio.run right after the
            # block must not leave the entry open there until open_timeout.
            await entry._sent()


@final
class RedisBackend:
    """Make every limit of a `ThrottlerMap` shared through Redis.

    ``ThrottlerMap(..., backend=RedisBackend("redis://127.0.0.1:6379"))`` gives each host
    a `RedisThrottler` keyed ``prefix + "{" + escaped host key + "}"``, so every
    process using the same Redis and prefix shares per-host limits; pass that map as
    ``throttler=`` to ``ThrottledClientSession`` or ``ThrottledTransport``. All of them
    share one client. ``max_concurrency`` stays per process.

    Args:
        redis: a redis-py or valkey-py asyncio client or a URL (see
            `RedisThrottler`); a client made from a URL is closed by `aclose`.
        prefix: prepended to every Redis key; must not contain ``{`` or ``}``.
        on_error, open_timeout, lease_timeout, command_timeout, recover_after, replicas:
            as for `RedisThrottler`.

    .. versionchanged:: 0.2
       ``hold_timeout`` was renamed ``open_timeout``; ``lease_timeout`` and ``replicas``
       were added.
    """

    __slots__ = ("_client", "_made", "_options", "_owns_client", "_prefix")

    def __init__(
        self,
        redis: _aioredis.Redis | RedisCluster | Valkey | ValkeyCluster | str,
        prefix: str = "throttled_http:",
        *,
        on_error: OnError = "raise",
        open_timeout: float = 60.0,
        lease_timeout: float = 5.0,
        command_timeout: float = 2.0,
        recover_after: float = 1.0,
        replicas: int = 0,
    ) -> None:
        self._prefix = check_prefix(prefix)
        self._options: dict[str, Any] = {
            "on_error": check_on_error(on_error),
            "open_timeout": positive_float("open_timeout", open_timeout),
            "lease_timeout": positive_float("lease_timeout", lease_timeout),
            "command_timeout": positive_float("command_timeout", command_timeout),
            "recover_after": positive_float("recover_after", recover_after),
            "replicas": check_replicas(replicas, redis),
        }
        self._client, self._owns_client, _ = check_client(redis)
        self._made: weakref.WeakSet[RedisThrottler] = weakref.WeakSet()

    @property
    def prefix(self) -> str:
        """The prefix of every Redis key."""
        return self._prefix

    @property
    def open_timeout(self) -> float:
        """Seconds an unsettled entry of the throttlers made here counts as open."""
        value: float = self._options["open_timeout"]
        return value

    def create(self, key: str, rates: tuple[Rate, ...], **options: Any) -> RedisThrottler:
        """A `RedisThrottler` for ``key`` (a host key such as ``https://h:443``).

        ``options`` are the map's ``burst`` and ``max_concurrency``.
        """
        throttler = RedisThrottler(
            rates=rates,
            redis=self._client,
            key=key,
            prefix=self._prefix,
            **options,
            **self._options,
        )
        self._made.add(throttler)
        return throttler

    async def aclose(self) -> None:
        """Close every throttler made here, all at once (sending their pending settles:
        with Redis failing, this takes one ``command_timeout``, not one per throttler),
        then the client if it was made from a URL."""
        await asyncio.gather(*(throttler.aclose() for throttler in list(self._made)))
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"<RedisBackend prefix={self._prefix!r} on_error={self._options['on_error']!r}>"
