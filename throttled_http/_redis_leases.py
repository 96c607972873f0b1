"""Leases: how a live process keeps its open entries open in Redis, and a dead one cannot.

A latency-proof entry (``open_entry()``, ``entry()``) counts in every window from admission
until it is settled. Redis cannot tell a request still awaiting its headers from one whose
process crashed, so ``admit.lua`` scores an open entry at a *lease* deadline, admission
plus ``lease_timeout`` (5 s by default), not at admission plus ``open_timeout``; past its
deadline the entry counts as stamped there, and leaves the window a period later.

While its process lives, :class:`Leases` renews every one of its open entries every third
of a lease, all in one ``settle.lua`` call (sent by the outbox, with whatever settles are
queued): each is scored again at the server's now plus one lease, never past admission
plus ``open_timeout`` (the longest an entry may stay open), never earlier than it was. The
script moves only members still scored in the future, so a renewal never reopens an entry
already settled (or whose lease already ran out); and an entry leaves this record the
moment it is settled or forgotten here, before its settle is even sent.

**What it buys.** A crashed process (``SIGKILL``, a lost machine) stops renewing: its open
entries count as stamped at most one lease after its last renewal, and are out of every
window a period later, instead of holding the limit for ``open_timeout``.

**What it costs.** One call per third of a lease per throttler with open entries, and a
process that is alive but does not run (``SIGSTOP``, an event loop blocked longer than
two thirds of a lease, Redis unreachable from it for that long) loses its leases too: its
open entries then count as stamped when their lease ran out, and a settle that arrives
later stamps them again, at its own time. The limit at a remote server still holds for
every request that reached it before its lease ran out; a request that leaves the stalled
process later than that (and later than a period after the lapse) may find its window
holding one more entry than the limit, for each such request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    import asyncio

    from ._redis_outbox import Outbox
    from ._redis_wire import Wire

__all__ = ["Leases"]

_RENEW_EVERY: Final = 1 / 3  # of a lease


@final
class Leases:
    """This process's latency-proof entries open in Redis, and the timer that renews them.

    Args:
        wire: the throttler's connection (its lease and ``open_timeout``).
        outbox: sends the renewals, batched with the settles.
    """

    __slots__ = ("_open", "_outbox", "_timer", "_wire")

    def __init__(self, wire: Wire, outbox: Outbox) -> None:
        self._wire = wire
        self._outbox = outbox
        # member -> (cost, deadline in server µs, the same deadline on the loop's clock)
        self._open: dict[str, tuple[int, int, float]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._open)

    def add(self, loop: asyncio.AbstractEventLoop, cost: int, member: str, now_us: int) -> None:
        """Renew ``member``, admitted open at ``now_us`` (server µs), until it is dropped or
        ``open_timeout`` has passed."""
        hold = self._wire.open_timeout
        self._open[member] = (cost, now_us + round(hold * 1e6), loop.time() + hold)
        self._arm(loop)

    def drop(self, member: str) -> None:
        """Stop renewing ``member`` (settled or forgotten here)."""
        self._open.pop(member, None)

    def move(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """The old loop was closed with its timer: renew from ``loop`` now."""
        self._timer = None
        if loop is not None:
            self._arm(loop)

    def stop(self) -> None:
        """Renew no more (the throttler is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is None and self._open and not loop.is_closed():
            self._timer = loop.call_later(self._wire.lease * _RENEW_EVERY, self._renew, loop)

    def _renew(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        open_ = self._open
        for member in [m for m, (_, _, until) in open_.items() if until <= now]:
            del open_[member]  # open for open_timeout: Redis counts it stamped then
        if open_:
            self._outbox.renew(
                loop, [(cost, m, deadline) for m, (cost, deadline, _) in open_.items()]
            )
            self._arm(loop)
