"""The outbox: what a :class:`~throttled_http.redis.RedisThrottler` sends in the background.

``settle()`` and ``close()`` are synchronous (response callbacks call them), and so is
``pause()``; none of them can wait for Redis. They put their message in the
:class:`Outbox` instead, and one flusher task per event loop sends everything queued so
far in as few calls as it can:

* **settles**: stamp open entries at the server's time of settling;
* **forgets**: remove entries admitted in Redis that never happened (their waiter was
  cancelled, or its loop closed, before it resumed);
* **a pause**: the longest pause asked for since the last call, or a resume (``0``).

Settles and forgets travel in one ``settle.lua`` call, the pause in one ``pause.lua`` call.

**Tickets.** Each round of the flusher is a numbered batch. :meth:`Outbox.settle` returns
the number of the batch that will carry its settle; :meth:`Outbox.flushed` waits until the
flusher is done with that batch (sent, failed or dropped), which is how leaving
``async with entry()`` waits for its own settle, and :meth:`Outbox.drain` waits for
everything queued so far (``aclose()``).

**Losses.** A settle that cannot be sent keeps its entry open in Redis until
``open_timeout``: counted longer than needed, never less; it is logged. A settle still
queued when the loop stops (the flusher is cancelled, or never ran) is logged too, with
how many were lost: it blocks every process sharing the key until ``open_timeout``. An
``acquire()`` stamp is not worth a warning: its entry counts as open only until
``min(command_timeout, open_timeout)`` after admission. After the flusher has sent a
batch it calls ``on_sent``, because a settle may free room the local queue waits for.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, final

from ._exceptions import ThrottlerBackendError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._redis_wire import Wire

__all__ = ["Outbox"]

logger = logging.getLogger("throttled_http")

# A queued settle or forget: (cost, member, whether losing it keeps an entry open until
# open_timeout).
_Item = tuple[int, str, bool]


@final
class Outbox:
    """Settles, forgets and a pause queued for Redis, and the task that sends them.

    Args:
        wire: the connection to send them through.
        key: the throttler's key (named in log messages).
        on_sent: called after each batch is sent (settles may free room).
    """

    __slots__ = (
        "_flusher",
        "_forgets",
        "_in_batch",
        "_key",
        "_on_sent",
        "_pause",
        "_sent",
        "_sent_fut",
        "_settles",
        "_taken",
        "_wire",
    )

    def __init__(self, wire: Wire, *, key: str, on_sent: Callable[[], None]) -> None:
        self._wire = wire
        self._key = key
        self._on_sent = on_sent
        self._flusher: asyncio.Task[None] | None = None
        self._settles: list[_Item] = []
        self._forgets: list[_Item] = []
        self._pause: float | None = None  # ms to pause (0: resume), not yet sent
        # Batches the flusher has taken, and has finished with (sent, failed or dropped);
        # _sent_fut wakes whoever waits for _sent to grow. _in_batch: costly items in the
        # batch being sent.
        self._taken = 0
        self._sent = 0
        self._in_batch = 0
        self._sent_fut: asyncio.Future[None] | None = None

    # -- queueing --------------------------------------------------------------------

    def settle(self, loop: asyncio.AbstractEventLoop, cost: int, member: str, costly: bool) -> int:
        """Queue the settle of an open entry; returns the ticket of the batch carrying it.

        ``costly``: whether losing it would keep the entry open until ``open_timeout``.
        """
        self._settles.append((cost, member, costly))
        self.schedule(loop)
        return self._taken + 1

    def forget(
        self, cost: int, member: str, costly: bool, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        """Queue the removal of an entry that never happened (sent from ``loop``, if any)."""
        self._forgets.append((cost, member, costly))
        if loop is not None:
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
        return bool(self._settles or self._forgets or self._pause is not None)

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

    # -- waiting for it ----------------------------------------------------------------

    async def flushed(self, ticket: int) -> None:
        """Wait until the flusher is done with batch ``ticket`` (sent, failed or dropped)."""
        loop = asyncio.get_running_loop()
        while self._sent < ticket:
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
        """Wait until everything queued so far has been sent (or failed)."""
        await self.flushed(self._taken + 1 if self.pending else self._taken)

    def forget_loop(self) -> None:
        """Drop the flusher of a closed loop: its batch under way is lost (and logged);
        what is still queued is sent from the next loop that schedules a flush."""
        self._flusher = None
        self._sent_fut = None
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
        wire = self._wire
        try:
            while self.pending:
                settles, self._settles = self._settles, []
                forgets, self._forgets = self._forgets, []
                pause, self._pause = self._pause, None
                self._taken += 1
                self._in_batch = _costly(settles) + _costly(forgets)
                if settles or forgets:
                    try:
                        await wire.settle(settles, forgets)
                    except ThrottlerBackendError as exc:
                        # The entries stay open in Redis until open_timeout: counted longer
                        # than needed, never less.
                        logger.warning(
                            "could not settle entries of %r (%d left open in Redis until "
                            "open_timeout): %s",
                            self._key,
                            len(settles) + len(forgets),
                            exc,
                        )
                if pause is not None:
                    try:
                        await wire.pause(pause)
                    except ThrottlerBackendError as exc:
                        logger.warning("could not share a pause of %r: %s", self._key, exc)
                self._in_batch = 0
                self._mark_sent(self._taken)
                self._on_sent()
        finally:
            if self._flusher is me:
                self._flusher = None

    def _done(self, task: asyncio.Task[None]) -> None:
        """Runs even for a flusher cancelled before it started (at loop shutdown)."""
        if self._flusher is task:
            self._flusher = None
        if task.cancelled():
            dropped = self._in_batch + _costly(self._settles) + _costly(self._forgets)
            if dropped:
                logger.warning(
                    "%d settle(s) of %r may not have reached Redis (the loop stopped first): "
                    "those entries stay open there until open_timeout, blocking every "
                    "process. Leave 'async with entry()' or await aclose() before the loop "
                    "ends.",
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
