"""Holding a response's entry open until the caller releases the response.

A request occupies its concurrency slot from admission until its response is released:
the body has been read to its end, the response was closed, reading it failed. A
`Hold` is that tie between one entry and one response; the client adapter calls
`Hold.release` when its client says the response is done. A response nobody
releases gives its slot back `release_timeout` seconds after its headers arrived, with a
warning: `Holds` (one event-loop timer for every open response of a client) and
`ThreadHolds` (one helper thread, for the blocking clients) do that timing.

Every hold of a client gets the same `release_timeout`, so insertion order is deadline
order: the timer only ever waits for the oldest deadline. No HTTP client is imported here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Final, final

from ._ledger import INF
from ._validate import positive_float

if TYPE_CHECKING:
    from ._protocols import EntryLike

__all__ = [
    "DEFAULT_RELEASE_TIMEOUT",
    "Hold",
    "Holds",
    "ThreadHolds",
    "check_release_timeout",
]

DEFAULT_RELEASE_TIMEOUT: Final = 300.0
"""Seconds after its headers arrived that an unreleased response gives its slot back."""

logger = logging.getLogger("throttled_http")


def check_release_timeout(value: object) -> float | None:
    """`release_timeout`: `None` (never) or a finite number of seconds > 0."""
    return None if value is None else positive_float("release_timeout", value)


@final
class Hold:
    """One response's entry, closed exactly once: on release, on expiry or on shutdown."""

    __slots__ = ("entry", "holds", "key")

    def __init__(self, entry: EntryLike, key: str, holds: Holds | ThreadHolds) -> None:
        self.entry = entry
        self.key = key
        self.holds = holds

    def release(self) -> None:
        """The response is done: give the slot back (idempotent)."""
        self.holds.discard(self)
        self.entry.close()

    def expire(self, release_timeout: float | None) -> None:
        """Nobody released the response in time: give the slot back, with a warning."""
        if not self.entry.closed:
            logger.warning(
                "a response from %s was not released within release_timeout=%s seconds; its "
                "concurrency slot was given back (release or close responses, for example "
                "with 'async with')",
                self.key,
                release_timeout,
            )
            self.entry.close()


@final
class Holds:
    """The open responses of an asyncio client, and one loop timer for the oldest deadline.

    With `release_timeout=None` holds are only kept, so `close_all` can give their
    slots back when the client closes.
    """

    __slots__ = ("_deadlines", "_loop", "_timer", "release_timeout")

    def __init__(self, release_timeout: float | None) -> None:
        self.release_timeout = release_timeout
        self._deadlines: dict[Hold, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def hold(self, entry: EntryLike, key: str) -> Hold:
        """Start holding `entry` for a response whose headers just arrived."""
        hold = Hold(entry, key, self)
        release_timeout = self.release_timeout
        if release_timeout is None:
            self._deadlines[hold] = INF
            return hold
        loop = asyncio.get_running_loop()
        self._deadlines[hold] = loop.time() + release_timeout
        if self._timer is None or self._loop is not loop:
            if self._timer is not None:
                self._timer.cancel()
            self._loop = loop
            self._timer = loop.call_at(next(iter(self._deadlines.values())), self._sweep)
        return hold

    def discard(self, hold: Hold) -> None:
        """Stop timing `hold` (it was released)."""
        self._deadlines.pop(hold, None)

    def close_all(self) -> None:
        """Give back the slot of every response still open (the client is closing)."""
        holds = list(self._deadlines)
        self._deadlines.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for hold in holds:
            hold.release()

    def __len__(self) -> int:
        return len(self._deadlines)

    def _sweep(self) -> None:
        self._timer = None
        loop = self._loop
        if loop is None:  # pragma: no cover - armed only with a loop
            return
        deadlines = self._deadlines
        now = loop.time()
        while deadlines:
            hold, deadline = next(iter(deadlines.items()))
            if deadline > now:
                self._timer = loop.call_at(deadline, self._sweep)
                return
            del deadlines[hold]
            hold.expire(self.release_timeout)


@final
class ThreadHolds:
    """The open responses of a threaded client, and one thread that ends overlong holds.

    The thread runs only while something is held with a deadline, sleeps until the oldest
    deadline, and exits when nothing is held.
    """

    __slots__ = ("_cond", "_deadlines", "_running", "release_timeout")

    def __init__(self, release_timeout: float | None) -> None:
        self.release_timeout = release_timeout
        self._cond = threading.Condition(threading.Lock())
        self._deadlines: dict[Hold, float] = {}
        self._running = False

    def hold(self, entry: EntryLike, key: str) -> Hold:
        """Start holding `entry` for a response whose headers just arrived."""
        hold = Hold(entry, key, self)
        release_timeout = self.release_timeout
        with self._cond:
            if release_timeout is None:  # kept only so that close_all() can give it back
                self._deadlines[hold] = INF
                return hold
            self._deadlines[hold] = time.monotonic() + release_timeout
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="release_timeout", daemon=True).start()
        return hold

    def discard(self, hold: Hold) -> None:
        """Stop timing `hold` (it was released)."""
        with self._cond:
            self._deadlines.pop(hold, None)

    def close_all(self) -> None:
        """Give back the slot of every response still open (the client is closing)."""
        with self._cond:
            holds = list(self._deadlines)
            self._deadlines.clear()
            self._cond.notify()
        for hold in holds:
            hold.release()

    def __len__(self) -> int:
        with self._cond:
            return len(self._deadlines)

    def _run(self) -> None:
        while True:
            with self._cond:
                deadlines = self._deadlines
                while True:
                    if not deadlines:
                        self._running = False
                        return
                    hold, deadline = next(iter(deadlines.items()))
                    now = time.monotonic()
                    if deadline <= now:
                        del deadlines[hold]
                        break
                    self._cond.wait(deadline - now)
            hold.expire(self.release_timeout)
