"""The local queue: where one process's tasks wait their turn for Redis.

The tasks of one process waiting for a :class:`~throttled_http.redis.RedisThrottler`
queue here, first come first served, whatever their cost; only the head of the queue
talks to Redis. One task per event loop, the *pump*, serves the queue:

1. It takes up to 64 entries from the head that have a concurrency slot (reserving the
   slots) and fit this process's own windows (see below), and asks ``admit.lua`` about
   all of them in one round trip (through the wire).
2. The server admits a prefix of the batch, in order; the pump hands each admitted waiter
   its verdict (its future's result) and drops it from the queue. A waiter that timed out
   or was cancelled during the round trip gives its entry back: its slot here, and its
   member in Redis (a *forget*, sent by the :class:`~throttled_http._redis_outbox.Outbox`).
3. When the server refused the rest, the pump sleeps until the moment it named (counted
   from half a round trip after sending, when the server decided) plus a little jitter, so
   that processes do not stampede. For a window full of entries still open (requests
   awaiting their headers, here or in another process) nobody knows that moment, but
   the server names the soonest it could be: such an entry settles no earlier than now
   and then counts for a period, so the head sleeps at least one period. Only in smooth
   mode, when nothing but open entries hold the burst back, may any settle let the head
   in at once: it then asks again every ``period / rate_limit`` seconds, clamped to
   5-250 ms. A head held back by another process's pause asks again at least every
   second, so a resume there is noticed. Anything local that may let the head in sooner
   pokes the pump awake: a release, a cancellation (its entry is forgotten in Redis, which
   frees room at once), a resume, a retune, and in that smooth-mode case a settle. A
   settle otherwise frees nothing sooner than the server said, so it does not.

**Woken waiters.** An admitted waiter counts from admission until its task actually
resumes: an ``acquire()`` entry is then stamped (a settle, sent in the background), an
``open_entry()`` entry stays open until settled. One cancelled between admission and
resuming never happened, and is given back as above.

**Failures.** An admit call that fails (an error, or no answer within ``command_timeout``)
is called off through the outbox: Redis may run it yet. With ``on_error="raise"`` every
waiter queued at that moment gets the error from that one call, so a hung Redis costs
each waiter one ``command_timeout`` at most, however long the queue; the next waiter to
come tries Redis again. With ``"local"`` or ``"allow"`` the failover is told, and the
waiters are served by it at once.

**This process's own windows.** Before asking Redis, the pump reserves each entry of the
batch in the failover's shadow ledger (this process's record of its own entries), and asks
only for those that fit it: Redis may have lost entries (restarted empty, flushed, failed
over to a lagging replica) or never known them (the fallback admitted them), and this
process must not exceed the limit on its own whatever Redis says. When the head does not
fit, the pump sleeps until it may. Entries not admitted give their reservation back.

**Degraded.** While the :class:`~throttled_http._redis_failover.Failover` says Redis is
bypassed, the pump admits the batch at once with the verdict "local" (the waiter then asks
the in-memory fallback, which admits by the same shadow) or "allow".

**Loops.** The queue belongs to the loop of its waiters. When that loop was closed under
them, :meth:`LocalQueue.bind` forgets the pump and the stranded waiters (their futures
cannot even be resolved), gives back the slots of a round trip under way and of woken
waiters that never resumed, and forgets their entries in Redis.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Final, final

from ._exceptions import ThrottlerBackendError, ThrottlerTimeoutError
from ._redis_leases import Leases
from ._redis_outbox import Outbox
from ._redis_wire import BLOCKED_OPEN, BLOCKED_PAUSE, BLOCKED_SETTLE, OPEN, TAKE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._redis_failover import Failover
    from ._redis_wire import AdmitReply, Terms, Wire

__all__ = ["ALLOW", "LOCAL", "REDIS", "LocalQueue", "Pacer", "Waiter"]

logger = logging.getLogger("throttled_http")

_BATCH: Final = 64  # entries asked for in one round trip
_PAUSE_RECHECK: Final = 1.0  # seconds between asks while another process's pause holds
# A waiter's verdict: admitted through Redis, or (Redis failed) by the local fallback or
# the "allow" policy.
REDIS: Final = 0
LOCAL: Final = 1
ALLOW: Final = 2


@final
class Waiter:
    """A queued entry: its future (resolved with ``(verdict, server µs)``), cost and mode."""

    __slots__ = ("cost", "fut", "hold", "member", "mode", "reservation")

    def __init__(
        self, fut: asyncio.Future[tuple[int, int]], cost: int, mode: str, hold: bool, member: str
    ) -> None:
        self.fut = fut
        self.cost = cost
        self.mode = mode
        self.hold = hold  # whether it takes a concurrency slot
        self.member = member
        # Its ticket in the shadow ledger, from just before it is asked of Redis until it
        # is stamped (or given back).
        self.reservation: int | None = None


@final
class Pacer:
    """When the head of the queue may ask Redis next: pauses, and what the server said.

    Times are the event loop's clock, in seconds.

    Attributes (written here only):
        admitted: entries admitted through Redis so far.
        in_window: the first window's cost in Redis at the last round trip.
        wait: seconds the server asked the refused head to wait at the last round trip
            (0 after a whole batch was admitted).
        settle_frees: whether a settle here may let the refused head in sooner (only
            open entries hold back its burst, in smooth mode).
    """

    __slots__ = (
        "_paused_until",
        "_retry_at",
        "_shared_pause_until",
        "_terms",
        "admitted",
        "in_window",
        "settle_frees",
        "wait",
    )

    def __init__(self, terms: Terms) -> None:
        self._terms = terms
        self._paused_until = -math.inf  # this process's own pause
        self._shared_pause_until = -math.inf  # another process's, learned from Redis
        self._retry_at = -math.inf
        self.admitted = 0
        self.in_window = 0
        self.wait = 0.0
        self.settle_frees = False

    def pause_until(self, until: float) -> None:
        """Admit nothing here before ``until`` (a shorter pause never cuts a longer one)."""
        if until > self._paused_until:
            self._paused_until = until

    def resume(self) -> None:
        """End the pause here, and forget the shared pause learned from Redis."""
        self._paused_until = -math.inf
        self._shared_pause_until = -math.inf

    def paused_for(self, now: float) -> float:
        """Seconds left of the pause this process knows about (0 when not paused)."""
        until = max(self._paused_until, self._shared_pause_until)
        if until == -math.inf:
            return 0.0
        return max(0.0, until - now)

    def own_pause(self, now: float) -> float:
        """Seconds left of this process's own pause (<= 0 when none): nothing to ask."""
        return self._paused_until - now

    def heard(self, reply: AdmitReply, asked: int, decided: float) -> None:
        """Learn from an admit reply to ``asked`` entries, decided at about ``decided``."""
        self.in_window = reply.in_window
        self.admitted += reply.admitted
        self.settle_frees = reply.admitted < asked and reply.blocked == BLOCKED_SETTLE
        if reply.blocked != BLOCKED_PAUSE:
            self._shared_pause_until = -math.inf  # no pause in Redis any more
        if reply.admitted < asked:
            wait = reply.wait_us / 1e6
            if reply.blocked == BLOCKED_PAUSE:
                # Shared by another process: report it, but ask again at least every
                # second so that a resume() elsewhere is noticed.
                self._shared_pause_until = decided + wait
                wait = min(wait, _PAUSE_RECHECK)
            elif reply.blocked in (BLOCKED_OPEN, BLOCKED_SETTLE):
                # At least a period for a window of open entries (the server's bound); in
                # smooth mode, a settle anywhere may free the burst: ask now and then.
                wait = max(wait, self.poll_interval())
            self.wait = wait
            self._retry_at = decided + wait
        else:
            self.wait = 0.0

    def delay(self, now: float) -> float:
        """Seconds until the refused head asks again: when the server said, plus jitter."""
        jitter = random.random() * min(0.0002 + 0.01 * self.wait, 0.002)
        return max(0.0, self._retry_at - now) + jitter

    def poll_interval(self) -> float:
        """How often to ask when any settle may make room at once (5-250 ms)."""
        return min(max(min(r.interval for r in self._terms.rates), 0.005), 0.25)


@final
class LocalQueue:
    """One process's queue for one Redis key, its pump, its slots and its open entries.

    The queue makes the throttler's :class:`~throttled_http._redis_outbox.Outbox`, whose
    flusher tells it after each batch what went: a forget frees room (the pump is poked),
    a settle only when the pacer says so.

    Args:
        wire, failover, terms: the throttler's other parts.
        key: the throttler's key (named in log messages).
        max_concurrency: cap on this process's entries in flight, or ``None``.

    Attributes (written here only):
        outbox: the settles, forgets and pauses queued for Redis.
        leases: this process's latency-proof entries open in Redis, renewed while open.
        pacer: when the head may ask next (pauses, the last reply).
        loop: the event loop the queue belongs to, or ``None`` before first use.
        max_concurrency: as given.
        in_flight: slots held.
        open_cost: cost admitted through Redis and not yet settled.
    """

    __slots__ = (
        "_asking",
        "_counter",
        "_failover",
        "_key",
        "_nap",
        "_poked",
        "_pump",
        "_token",
        "_waiters",
        "_wire",
        "_woken",
        "in_flight",
        "leases",
        "loop",
        "max_concurrency",
        "open_cost",
        "outbox",
        "pacer",
    )

    def __init__(
        self,
        *,
        wire: Wire,
        failover: Failover,
        terms: Terms,
        key: str,
        max_concurrency: int | None,
    ) -> None:
        self._wire = wire
        self.outbox = Outbox(wire, key=key, on_sent=self._sent)
        self.leases = Leases(wire, self.outbox)
        self._failover = failover
        self.pacer = Pacer(terms)
        self._key = key
        self.max_concurrency = max_concurrency
        self._token = secrets.token_hex(6)
        self._counter = itertools.count(1)
        self._waiters: deque[Waiter] = deque()
        # Admitted waiters that have not resumed yet, with their verdict, and the waiters
        # whose admission round trip is under way.
        self._woken: dict[asyncio.Future[tuple[int, int]], tuple[Waiter, int]] = {}
        self._asking: dict[str, list[Waiter]] = {}  # by admit call id
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pump: asyncio.Task[None] | None = None
        self._nap: asyncio.Future[None] | None = None
        self._poked = False  # poked while not asleep: the next sleep ends at once
        self.in_flight = 0
        self.open_cost = 0

    # -- views -------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Tasks queued and still waiting."""
        return sum(1 for w in self._waiters if not w.fut.done())

    @property
    def queued(self) -> int:
        """Entries in the queue, including ones already done but not yet dropped."""
        return len(self._waiters)

    def is_idle(self) -> bool:
        """Nothing waiting, open, in flight, paused or left to send."""
        return (
            not self._waiters
            and self._pump is None
            and not self.outbox.busy
            and not self.open_cost
            and not self.in_flight
            and self.paused_for() == 0
        )

    def paused_for(self) -> float:
        """Seconds left of the pause this process knows about (0 when not paused)."""
        return self.pacer.paused_for(self.now())

    # -- the loop ----------------------------------------------------------------------

    def now(self) -> float:
        """The loop's time: the running loop's, else the bound loop's, else monotonic."""
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            loop = self.loop
            return loop.time() if loop is not None and not loop.is_closed() else time.monotonic()

    def running_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, else the bound one if it is still open."""
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            if self.loop is None or self.loop.is_closed():
                raise
            return self.loop

    def bind(self, owner: object, loop: asyncio.AbstractEventLoop) -> None:
        """Belong to ``loop`` from now on, unless tasks of another running loop depend on
        this queue; a closed loop's leftovers are forgotten (see below).

        Raises:
            RuntimeError: naming ``owner`` (the throttler), when the queue is in use by
                another loop.
        """
        old = self.loop
        if old is loop:
            return
        if (
            old is not None
            and not old.is_closed()
            and (self._waiters or self._pump is not None or self.outbox.busy or self.open_cost)
        ):
            raise RuntimeError(
                f"{owner!r} is in use by another event loop; it may move to a new loop only "
                "when it has no waiters and no open entries"
            )
        self.loop = loop
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
        self._nap = None
        self._waiters = deque()
        self.outbox.forget_loop()
        asking, self._asking = self._asking, {}
        for call, batch in asking.items():
            self._give_back(batch)
            self.outbox.call_off(call, batch, None)  # in case Redis admitted them
        woken = list(self._woken.values())
        self._woken.clear()
        for waiter, kind in woken:
            self._undo(waiter, kind)
        self._wire.remake_client()
        self.leases.move(self.loop)
        if self.outbox.pending and self.loop is not None:
            self.outbox.schedule(self.loop)

    # -- entering ----------------------------------------------------------------------

    async def admit(
        self,
        loop: asyncio.AbstractEventLoop,
        cost: int,
        mode: str,
        hold: bool,
        timeout: float | None,
    ) -> tuple[int, int, Waiter]:
        """Queue, wait for the pump's verdict, and return ``(verdict, server µs, waiter)``."""
        fut: asyncio.Future[tuple[int, int]] = loop.create_future()
        waiter = Waiter(fut, cost, mode, hold, self._member())
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
                self.poke()
            raise
        finally:
            self._woken.pop(fut, None)
            if timer is not None:
                timer.cancel()
        return kind, now_us, waiter

    async def try_take(self, loop: asyncio.AbstractEventLoop, cost: int) -> bool:
        """Take an entry if Redis has one free now and nobody here waits; never queues."""
        if self._waiters or not self._slot_free():
            return False
        now = loop.time()
        failover = self._failover
        if failover.is_down(now):
            return self._try_degraded(cost)
        reservation = failover.try_reserve(now, cost, False)
        if reservation is None:
            return False  # this process's own windows are full, whatever Redis says
        hold = self.max_concurrency is not None
        waiter = Waiter(loop.create_future(), cost, TAKE, hold, self._member())
        waiter.reservation = reservation
        if hold:
            self.in_flight += 1
        try:
            admitted, _ = await self._ask([waiter])  # gives the entry back if it fails
        except ThrottlerBackendError:
            if failover.on_error == "raise":
                raise
            failover.fail(loop.time())
            return self._try_degraded(cost)
        if not admitted:
            self._give_back([waiter])
            return False
        # Stamped here a little after the server did: counted longer, never less.
        failover.settle(self.now(), reservation)
        return True

    def _try_degraded(self, cost: int) -> bool:
        """:meth:`try_take` while Redis is bypassed: the fallback decides, or "allow"."""
        if self._waiters or not self._slot_free() or self.paused_for() > 0:
            return False
        if self._failover.on_error == "local" and not self._failover.try_acquire(cost):
            return False
        if self.max_concurrency is not None:
            self.in_flight += 1
        return True

    def settle(self, cost: int, member: str, reservation: int | None, entry: bool) -> int:
        """Stamp an entry open through Redis: here at once, in Redis from the background.

        ``reservation``: its ticket in the shadow ledger. ``entry``: whether it is a
        latency-proof entry (whose lost settle keeps it open until ``open_timeout``).
        Returns the outbox ticket that will carry it.
        """
        self.open_cost -= cost
        if entry:
            self.leases.drop(member)
        if reservation is not None:
            self._failover.settle(self.now(), reservation)
        return self.outbox.settle(self.running_loop(), cost, member, entry)

    def release_slot(self) -> None:
        """Give back a concurrency slot.

        Raises:
            RuntimeError: when no slot is held.
        """
        if self.in_flight <= 0:
            raise RuntimeError("release() called more times than acquire()")
        self.in_flight -= 1
        if self.max_concurrency is not None and self._waiters:
            self.poke()

    async def stop(self) -> None:
        """Cancel the pump and wait for it to end; renew no more leases."""
        self.leases.stop()
        pump = self._pump
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    def fail_waiters(self, exc: ThrottlerBackendError) -> None:
        """Fail every queued waiter with a copy of ``exc``."""
        while self._waiters:
            _fail(self._waiters.popleft().fut, exc)

    # -- the pump ----------------------------------------------------------------------

    async def _run_pump(self) -> None:
        """Serve the queue head to tail; the only task that asks Redis for admissions."""
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        waiters = self._waiters
        failover = self._failover
        pacer = self.pacer
        try:
            while True:
                while waiters and waiters[0].fut.done():
                    waiters.popleft()
                if not waiters:
                    return
                now = loop.time()
                paused = pacer.own_pause(now)
                if paused > 0:
                    await self._sleep(loop, paused)
                    continue
                batch = self._take_batch()
                if not batch:
                    await self._sleep(loop, None)  # the head waits for a slot
                    continue
                if failover.is_down(now):
                    kind = LOCAL if failover.on_error == "local" else ALLOW
                    self._resolve(batch, len(batch), kind, 0)
                    continue
                # Redis may have lost entries (restarted empty, flushed, failed over), and
                # does not know those the fallback admitted: every entry must fit this
                # process's own windows too.
                fitting = self._reserve(now, batch)
                if not fitting:
                    self._give_back(batch)
                    wait = failover.local_wait(now, batch[0].cost, pacer.poll_interval())
                    await self._sleep(loop, wait)
                    continue
                self._give_back(batch[fitting:])
                del batch[fitting:]
                # A local event from here on (a forget reaching Redis while this call
                # travels) may not be in the answer: it ends the sleep that follows.
                self._poked = False
                try:
                    admitted, now_us = await self._ask(batch)  # gives the batch back on failure
                except ThrottlerBackendError as exc:
                    if failover.on_error == "raise":
                        # Redis is known to be failing: every waiter queued now learns it
                        # from this call, not one batch (one command_timeout) at a time.
                        self.fail_waiters(exc)
                    else:
                        failover.fail(loop.time())
                    continue
                self._resolve(batch, admitted, REDIS, now_us)
                self._give_back(batch[admitted:])
                if admitted < len(batch):
                    await self._sleep(loop, pacer.delay(self.now()))
        except BaseException as exc:
            if self._pump is not me:
                raise  # a pump of a closed loop, closed by the garbage collector: forgotten
            if not isinstance(exc, asyncio.CancelledError):
                logger.exception("the Redis throttler %r failed", self._key)
            self.fail_waiters(ThrottlerBackendError(f"the Redis throttler failed: {exc!r}"))
            raise
        finally:
            if self._pump is me:
                self._pump = None

    async def _ask(self, batch: list[Waiter]) -> tuple[int, int]:
        """One admit round trip; returns how many of ``batch`` were admitted, and when.

        A call that fails (or is cancelled) gives the batch back and is called off: it may
        run in Redis yet, or have run and lost its answer.
        """
        loop = asyncio.get_running_loop()
        call = self._member()
        self._asking[call] = batch
        sent = loop.time()
        try:
            reply = await self._wire.admit(batch, call)
        except BaseException as exc:
            if self._asking.pop(call, None) is not None:
                self._give_back(batch)
                # Cancelled: sent by aclose()'s drain or with the next message (a loop
                # shutting down must get no new task).
                cancelled = isinstance(exc, asyncio.CancelledError)
                self.outbox.call_off(call, batch, None if cancelled else loop)
            raise
        self._asking.pop(call, None)
        self.outbox.nudge()  # Redis answers: what failed to reach it may go now
        # The server's "now" was about half a round trip after sending: aim from there.
        decided = (sent + loop.time()) / 2
        self._failover.answered()
        self.pacer.heard(reply, len(batch), decided)
        return reply.admitted, reply.now_us

    def _take_batch(self) -> list[Waiter]:
        """The first queued entries (up to 64) that have a slot; reserves their slots."""
        batch: list[Waiter] = []
        free = self.max_concurrency - self.in_flight if self.max_concurrency else _BATCH
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
                self.in_flight += 1
        return batch

    def _reserve(self, now: float, batch: list[Waiter]) -> int:
        """Reserve ``batch``'s entries in the shadow, in order, while they fit this
        process's own windows (whatever Redis remembers); returns how many did."""
        for index, waiter in enumerate(batch):
            waiter.reservation = self._failover.try_reserve(now, waiter.cost, waiter.mode == OPEN)
            if waiter.reservation is None:
                return index
        return len(batch)

    def _give_back(self, batch: Sequence[Waiter]) -> None:
        """Give back the slots and shadow reservations of entries not admitted."""
        for waiter in batch:
            if waiter.hold:
                self.in_flight -= 1
            if waiter.reservation is not None:
                self._failover.unreserve(waiter.reservation)
                waiter.reservation = None

    def _resolve(self, batch: list[Waiter], count: int, kind: int, now_us: int) -> None:
        """Hand the first ``count`` of ``batch`` their verdict and drop them from the queue."""
        waiters = self._waiters
        for waiter in batch[:count]:
            if kind == REDIS and waiter.mode != TAKE:
                self.open_cost += waiter.cost
                if waiter.mode == OPEN and self.loop is not None:
                    self.leases.add(self.loop, waiter.cost, waiter.member, now_us)
            _drop_through(waiters, waiter)
            if waiter.fut.done():
                self._undo(waiter, kind)  # timed out or cancelled during the round trip
                continue
            waiter.fut.set_result((kind, now_us))
            self._woken[waiter.fut] = (waiter, kind)

    def _undo(self, waiter: Waiter, kind: int) -> None:
        """Give back what an admitted waiter that will never resume took."""
        if waiter.hold:
            self.release_slot()
        if kind == REDIS:
            if waiter.mode != TAKE:
                self.open_cost -= waiter.cost
            self.leases.drop(waiter.member)
            if waiter.reservation is not None:
                self._failover.unreserve(waiter.reservation)
                waiter.reservation = None
            self.outbox.forget(waiter.cost, waiter.member, waiter.mode == OPEN, self.loop)

    async def _sleep(self, loop: asyncio.AbstractEventLoop, delay: float | None) -> None:
        """Sleep ``delay`` seconds (``None``: until poked); a local event ends it early.

        A poke that came while the pump was not asleep (during a round trip) is not lost:
        the next sleep ends at once.
        """
        if self._poked:
            self._poked = False
            return
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

    def _sent(self, settled: bool, forgot: bool) -> None:
        """The outbox sent a batch: wake the pump if it may free room for the head."""
        if forgot or (settled and self.pacer.settle_frees):
            self.poke()

    def poke(self) -> None:
        """Wake the pump if it sleeps: something local may let the head in sooner."""
        nap = self._nap
        if nap is not None and not nap.done():
            nap.set_result(None)
        else:
            self._poked = True

    def _member(self) -> str:
        return f"{self._token}:{next(self._counter)}"

    def _slot_free(self) -> bool:
        return self.max_concurrency is None or self.in_flight < self.max_concurrency


def _drop_through(waiters: deque[Waiter], waiter: Waiter) -> None:
    """Drop ``waiter`` from the head of the queue, with the done waiters before it."""
    while waiters and waiters[0] is not waiter:
        waiters.popleft()  # done before the batch was taken
    if waiters:
        waiters.popleft()


def _fail(fut: asyncio.Future[tuple[int, int]], exc: ThrottlerBackendError) -> None:
    """Fail ``fut`` (unless done) with a copy of ``exc`` keeping its cause."""
    if not fut.done():
        error = ThrottlerBackendError(str(exc))
        error.__cause__ = exc.__cause__
        fut.set_exception(error)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _expire(fut: asyncio.Future[tuple[int, int]], timeout: float) -> None:
    if not fut.done():
        fut.set_exception(ThrottlerTimeoutError(f"no entry was admitted within {timeout} s"))
