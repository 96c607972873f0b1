"""The outbox: what a :class:`~throttled_http.redis.RedisThrottler` sends in the background.

``settle()`` and ``close()`` are synchronous (response callbacks call them), and so is
``pause()``; none of them can wait for Redis. They put their message in the
:class:`Outbox` instead, and one flusher task per event loop sends everything queued so
far in as few calls as it can:

* **settles**: stamp open entries at the server's time of settling;
* **forgets**: remove entries admitted in Redis that never happened (their waiter was
  cancelled, or its loop closed, before it resumed; or the answer to their admission was
  lost, see below);
* **fences**: the ids of admit calls whose answer was lost, so that such a call, if Redis
  runs it late, admits nothing;
* **renewals**: the leases of this process's latency-proof entries still open, renewed
  every third of a lease (the local queue hands over the list; a newer one replaces it);
* **a pause**: the longest pause asked for since the last call, or a resume (``0``).

Settles, forgets, fences and renewals travel in one ``settle.lua`` call, which stamps
before it renews (a renewal never moves a stamp), the pause in one ``pause.lua`` call.

**Lost answers.** An admit call that fails (an error, or no answer within
``command_timeout``) may still have run, or may run later: Redis took it in, then stalled,
or the connection dropped with its answer. :meth:`Outbox.call_off` queues a fence for it
and a forget for every member it asked for; in whichever order Redis runs the two, nothing
stays admitted.

**Retries.** A settle, forget or fence that fails is queued again and sent once Redis
answers: the flusher waits 50 ms after the first failure, doubling up to 1 s (with
jitter), and at once when the local queue hears from Redis (:meth:`Outbox.nudge`). An
item is sent again only while it can still help: a settle of a latency-proof entry until
``open_timeout`` after it was queued (Redis then counts the entry as stamped at that
deadline anyway), an ``acquire()`` stamp until ``min(command_timeout, open_timeout)``
after it, and forgets and fences while the keys live. :meth:`Outbox.drain` (``aclose()``)
makes one last attempt and drops what still fails.

**Tickets.** Each round of the flusher is a numbered batch. :meth:`Outbox.settle` returns
the number of the batch that will carry its settle; :meth:`Outbox.flushed` waits until the
flusher is done with that batch (sent, failed or dropped), which is how leaving
``async with entry()`` waits for its own settle, and :meth:`Outbox.drain` waits for
everything queued so far (``aclose()``).

**Losses.** A settle that is never sent keeps its entry open in Redis until its lease
runs out (see :mod:`~throttled_http._redis_leases`; it is renewed no more once settled
here): counted longer than needed, never less. The first failure of a run of
failures is logged, and so is every settle given up on. A settle still queued when the loop
stops (the flusher is cancelled, or never ran) is logged too, with how many were lost: it
blocks every process sharing the key until ``open_timeout``. An ``acquire()`` stamp is not
worth a warning: its entry counts as open only until ``min(command_timeout,
open_timeout)`` after admission. After the flusher has sent a batch it calls
``on_sent(settled, forgot)`` (whether the batch held settles, forgets): a forget frees
room the local queue may wait for, and in smooth mode a settle may.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Final, Protocol, final

from ._exceptions import ThrottlerBackendError
from ._redis_wire import OPEN

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._redis_wire import Wire

__all__ = ["Outbox"]

logger = logging.getLogger("throttled_http")

_RETRY_FIRST: Final = 0.05  # seconds before the first retry after a failure
_RETRY_MAX: Final = 1.0  # the longest wait between two retries

# A queued settle or forget: (cost, member, whether losing it keeps an entry open until
# open_timeout, the loop time after which sending it cannot help any more).
_Item = tuple[int, str, bool, float]
# A queued fence: (admit call id, the loop time after which it cannot help any more).
_Fence = tuple[str, float]


class Asked(Protocol):
    """An entry an admit call asked for (a local queue's waiter)."""

    @property
    def cost(self) -> int: ...

    @property
    def member(self) -> str: ...

    @property
    def mode(self) -> str: ...


@final
class Outbox:
    """Settles, forgets, fences and a pause queued for Redis, and the task that sends them.

    Args:
        wire: the connection to send them through.
        key: the throttler's key (named in log messages).
        on_sent: called after each batch is sent, with whether it held settles and
            forgets (which may free room).
    """

    __slots__ = (
        "_closing",
        "_failures",
        "_fences",
        "_flusher",
        "_forgets",
        "_in_batch",
        "_key",
        "_nap",
        "_on_sent",
        "_pause",
        "_renewals",
        "_sent",
        "_sent_fut",
        "_settles",
        "_taken",
        "_wire",
    )

    def __init__(self, wire: Wire, *, key: str, on_sent: Callable[[bool, bool], None]) -> None:
        self._wire = wire
        self._key = key
        self._on_sent = on_sent
        self._flusher: asyncio.Task[None] | None = None
        self._settles: list[_Item] = []
        self._forgets: list[_Item] = []
        self._fences: list[_Fence] = []
        self._pause: float | None = None  # ms to pause (0: resume), not yet sent
        self._renewals: list[tuple[int, str, int]] | None = None  # leases to renew
        # Batches the flusher has taken, and has finished with (sent, failed or dropped);
        # _sent_fut wakes whoever waits for _sent to grow. _in_batch: costly items in the
        # batch being sent.
        self._taken = 0
        self._sent = 0
        self._in_batch = 0
        self._sent_fut: asyncio.Future[None] | None = None
        # Failed sends in a row (the flusher waits before the next), the wait's future, and
        # whether aclose() is draining (one last attempt, no retries).
        self._failures = 0
        self._nap: asyncio.Future[None] | None = None
        self._closing = False

    # -- queueing --------------------------------------------------------------------

    def settle(self, loop: asyncio.AbstractEventLoop, cost: int, member: str, costly: bool) -> int:
        """Queue the settle of an open entry; returns the ticket of the batch carrying it.

        ``costly``: whether losing it would keep the entry open until ``open_timeout``.
        """
        wire = self._wire
        useful = wire.open_timeout if costly else wire.resume_timeout
        self._settles.append((cost, member, costly, loop.time() + useful))
        self.schedule(loop)
        return self._taken + 1

    def forget(
        self, cost: int, member: str, costly: bool, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        """Queue the removal of an entry that never happened (sent from ``loop``, if any)."""
        self._forgets.append((cost, member, costly, self._horizon()))
        if loop is not None:
            self.schedule(loop)

    def call_off(
        self, call: str, asked: Iterable[Asked], loop: asyncio.AbstractEventLoop | None
    ) -> None:
        """Queue the fence of admit call ``call``, whose answer was lost, and the removal
        of every entry it ``asked`` for (sent from ``loop``, if any)."""
        until = self._horizon()
        self._fences.append((call, until))
        self._forgets += ((a.cost, a.member, a.mode == OPEN, until) for a in asked)
        if loop is not None:
            self.schedule(loop)

    def renew(self, loop: asyncio.AbstractEventLoop, leases: list[tuple[int, str, int]]) -> None:
        """Queue the renewal of ``leases``, each ``(cost, member, deadline in server µs)``,
        replacing any renewal not yet sent."""
        self._renewals = leases
        self.schedule(loop)

    def pause(self, ms: float) -> None:
        """Queue a shared pause of ``ms`` milliseconds; a shorter one never replaces it.

        The caller then calls :meth:`schedule`.
        """
        pending = self._pause
        if pending is None or pending < ms:
            self._pause = ms

    def resume(self) -> None:
        """Queue the end of the shared pause, replacing any pause not yet sent.

        The caller then calls :meth:`schedule`.
        """
        self._pause = 0.0

    @property
    def pending(self) -> bool:
        """Whether anything is queued and not yet taken by the flusher."""
        return bool(
            self._settles
            or self._forgets
            or self._fences
            or self._renewals
            or self._pause is not None
        )

    @property
    def busy(self) -> bool:
        """Whether a flusher task exists (it belongs to its loop)."""
        return self._flusher is not None

    def schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make sure a flusher runs on ``loop`` (unless it is closed)."""
        flusher = self._flusher
        if (
            flusher is None or flusher.done() or flusher.get_loop().is_closed()
        ) and not loop.is_closed():
            flusher = self._flusher = loop.create_task(self._run())
            flusher.add_done_callback(self._done)

    def nudge(self) -> None:
        """Redis answered: send what failed before now, without waiting out the backoff."""
        _wake(self._nap)

    # -- waiting for it ----------------------------------------------------------------

    async def flushed(self, ticket: int) -> None:
        """Wait until the flusher is done with batch ``ticket`` (sent, failed or dropped).

        Returns at once while sends fail (the flusher waits for Redis to answer again):
        the batch will go when it does.
        """
        loop = asyncio.get_running_loop()
        while self._sent < ticket and (not self._failures or self._closing):
            flusher = self._flusher
            if flusher is None or flusher.done():
                if not self.pending:
                    return  # nothing left that could reach that batch
                self.schedule(loop)
            elif flusher.get_loop() is not loop:
                return  # another loop's flusher: nothing this loop can wait on
            fut = self._sent_fut
            if fut is None or fut.get_loop() is not loop:
                fut = self._sent_fut = loop.create_future()
            # Shielded: a waiter cancelled here must not cancel the others' future.
            await asyncio.shield(fut)

    async def drain(self) -> None:
        """Make one last attempt at everything queued (no retries), and wait for it."""
        self._closing = True
        _wake(self._nap)
        await self.flushed(self._taken + 1 if self.pending else self._taken)

    def forget_loop(self) -> None:
        """Drop the flusher of a closed loop: its batch under way is lost (and logged);
        what is still queued is sent from the next loop that schedules a flush."""
        self._flusher = None
        self._sent_fut = None
        self._nap = None
        if self._in_batch:
            logger.warning(
                "%d settle(s) of %r may not have reached Redis (their loop was closed): "
                "those entries stay open there until open_timeout",
                self._in_batch,
                self._key,
            )
        self._in_batch = 0
        self._sent = self._taken

    # -- the flusher -----------------------------------------------------------------

    async def _run(self) -> None:
        me = asyncio.current_task()
        loop = asyncio.get_running_loop()
        wire = self._wire
        try:
            while self.pending:
                if self._failures and not self._closing:
                    await self._back_off(loop)
                settles, self._settles = self._settles, []
                forgets, self._forgets = self._forgets, []
                fences, self._fences = self._fences, []
                pause, self._pause = self._pause, None
                renewals, self._renewals = self._renewals or [], None
                self._taken += 1
                self._in_batch = _costly(settles) + _costly(forgets)
                if settles or forgets or fences or renewals:
                    try:
                        await wire.settle(
                            [(c, m) for c, m, _, _ in settles],
                            [(c, m) for c, m, _, _ in forgets],
                            [call for call, _ in fences],
                            renewals,
                        )
                    except ThrottlerBackendError as exc:
                        self._renew_again(renewals)
                        self._failed(loop.time(), settles, forgets, fences, exc)
                    else:
                        self._failures = 0
                if pause is not None:
                    try:
                        await wire.pause(pause)
                    except ThrottlerBackendError as exc:
                        logger.warning("could not share a pause of %r: %s", self._key, exc)
                self._in_batch = 0
                self._mark_sent(self._taken)
                self._on_sent(bool(settles), bool(forgets))
        finally:
            if self._flusher is me:
                self._flusher = None

    def _renew_again(self, renewals: list[tuple[int, str, int]]) -> None:
        """Queue a failed renewal again, unless a newer one came (or we are closing)."""
        if self._renewals is None and not self._closing:
            self._renewals = renewals

    def _failed(
        self,
        now: float,
        settles: list[_Item],
        forgets: list[_Item],
        fences: list[_Fence],
        exc: ThrottlerBackendError,
    ) -> None:
        """Queue again what may still help, ahead of what came since; log the rest."""
        closing = self._closing
        kept = [item for item in settles if item[3] > now and not closing]
        self._settles[:0] = kept
        self._forgets[:0] = [item for item in forgets if item[3] > now and not closing]
        self._fences[:0] = [fence for fence in fences if fence[1] > now and not closing]
        self._failures += 1
        dropped = _costly(settles) - _costly(kept)
        if self._failures == 1 and self.pending:
            logger.warning(
                "could not send %d settle(s) and forget(s) of %r to Redis; sending them "
                "again once it answers: %s",
                len(settles) + len(forgets),
                self._key,
                exc,
            )
        if dropped:
            logger.warning(
                "gave up sending %d settle(s) of %r (%s): those entries stay open in Redis "
                "until open_timeout: %s",
                dropped,
                self._key,
                "the throttler was closed" if closing else "open_timeout passed",
                exc,
            )

    async def _back_off(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait before sending again: 50 ms doubling to 1 s, with jitter; a nudge ends it."""
        delay = min(_RETRY_MAX, _RETRY_FIRST * 2 ** (self._failures - 1))
        fut: asyncio.Future[None] = loop.create_future()
        self._nap = fut
        handle = loop.call_later(delay * (0.5 + random.random() / 2), _wake, fut)
        try:
            await fut
        finally:
            handle.cancel()
            if self._nap is fut:
                self._nap = None

    def _horizon(self) -> float:
        """Until when a forget or fence queued now can help: while the keys live."""
        now = _now()
        return now + self._wire.key_ttl(now)

    def _done(self, task: asyncio.Task[None]) -> None:
        """Runs even for a flusher cancelled before it started (at loop shutdown)."""
        if self._flusher is task:
            self._flusher = None
        if task.cancelled():
            dropped = self._in_batch + _costly(self._settles) + _costly(self._forgets)
            if dropped:
                logger.warning(
                    "%d settle(s) of %r may not have reached Redis (the loop stopped first): "
                    "those entries stay open there until their lease runs out (at most "
                    "until open_timeout), blocking every process. Leave 'async with "
                    "entry()' or await aclose() before the loop ends.",
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


def _costly(items: list[_Item]) -> int:
    """How many queued settles or forgets would keep an entry open until open_timeout."""
    return sum(1 for item in items if item[2])


def _now() -> float:
    """The running loop's time, else the monotonic clock (every stock loop's)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def _wake(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)
