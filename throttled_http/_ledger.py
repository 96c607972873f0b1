"""The bookkeeping behind every throttler: pure, synchronous, clock-agnostic.

A `Ledger` answers one question, "from what time may an entry of this cost be
admitted?", and records what happens to entries. It never reads a clock and never waits:
the async [`Throttler`][throttled_http.Throttler] drives it with `loop.time()`, the thread-safe
[`SyncThrottler`][throttled_http.SyncThrottler] with `time.monotonic()`. One set of rules, so
every front end keeps the same guarantees.

The mental model. An entry lives in two phases:

* **open** (reserved, not yet stamped): from admission until it is *settled*. An open entry
  counts in every window, forever, because nobody knows yet when it really happened. A
  woken task is open until it actually resumes; an HTTP request is open until its response
  headers arrive.
* **stamped**: settling records the time of settling as the entry's stamp. The stamp counts
  in a window of `period` seconds while `now < stamp + period`.

An entry of cost `c` is admitted at `now` only when, for every window,
`stamps_in_window + open + c <= limit`. So any half-open interval `[t, t + period)`
holds at most `limit` entries, whichever moment inside `[admission, settling]` an entry
truly took place at.

Smooth mode (`burst`) adds the generic cell rate algorithm on top: entries are spaced
`interval = period / limit` apart with at most `burst` back to back. Open entries
count as arriving now, and an entry's arrival time is its settling time, so a leaky-bucket
server sees no two entries closer than `interval` when `burst == 1`.

Retuning (`Ledger.set_rates`) never loosens a guarantee already given: the old
windows keep counting every entry until no entry admitted under them can share a window
with a new one, and only then retire. The new windows start with the recent stamps, so a
tighter limit counts the entries already made.

Budgets in other units (tokens) and bucket mode live in `throttled_http._budgets`: a
ledger given `budgets` consults them in `earliest` and records into them, and a cost may
then be a `Charge` (requests and units) instead of an int. In bucket mode the ledger keeps
no request windows: its budgets hold the requests' buckets.
"""

from __future__ import annotations

import math
from collections import deque
from itertools import repeat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._budgets import Budgets, Charge
    from ._rates import Rate

    Cost = int | Charge

__all__ = ["INF", "Ledger"]

INF = float("inf")
_NEG_INF = -INF  # one shared float: "-INF" in __init__ would make one per ledger


class _Window:
    """Stamps of one `limit` per `period` rule, oldest first.

    An entry of cost `c` is stored as `c` equal stamps, so `len(stamps)` is the
    cost in the window and memory stays `O(limit)`.
    """

    __slots__ = ("generation", "limit", "open_before", "period", "retire_at", "stamps")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.stamps: deque[float] = deque()
        # Only for a retiring window: the ledger generation it was replaced in, the cost
        # still open from before that, and the time after which no old entry is in reach.
        self.generation = -1
        self.open_before = 0
        self.retire_at = INF

    def purge(self, now: float) -> None:
        stamps = self.stamps
        period = self.period
        while stamps and stamps[0] + period <= now:
            stamps.popleft()


class Ledger:
    """Window, smoothing, open entries, concurrency and pause state of one throttler.

    Args:
        rates: the limits that must all allow an entry.
        burst: smooth mode; `None` means no spacing beyond the windows.
        max_concurrency: cap on held slots; `None` means none.
    """

    __slots__ = (
        "_budgets",
        "_burst",
        "_interval",
        "_max_concurrency",
        "_retiring",
        "_single",
        "_smallest",
        "_tat",
        "_windows",
        "admitted",
        "generation",
        "in_flight",
        "open",
        "paused_until",
        "rates",
        "waited",
    )

    def __init__(
        self,
        rates: Sequence[Rate],
        *,
        burst: int | None = None,
        max_concurrency: int | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self.rates: tuple[Rate, ...] = tuple(rates)
        self._budgets = budgets
        self._windows: tuple[_Window, ...] = (
            ()
            if budgets is not None and budgets.bucket
            else tuple(_Window(r.limit, r.period) for r in rates)
        )
        self._retiring: tuple[_Window, ...] = ()  # the shared empty tuple: no list per key
        self._burst = burst
        self._interval = max(r.interval for r in rates) if burst is not None else 0.0
        self._tat = _NEG_INF
        self._max_concurrency = max_concurrency
        self.open = 0  # cost reserved and not yet settled
        self.in_flight = 0  # slots held (entered and not yet released)
        self.paused_until = _NEG_INF
        self.generation = 0
        # Running totals: entries admitted (each once, whatever its cost) and seconds spent
        # queued. The front ends count reservations that became entries and time queued;
        # take() counts itself.
        self.admitted = 0
        self.waited = 0.0
        # The one window when it is the only rule (no smoothing, nothing retiring): the
        # async throttler checks it inline on its uncontended path.
        self._single: _Window | None = None
        self._smallest = 0
        self._refresh_single()

    # -- questions -------------------------------------------------------------------

    @property
    def burst(self) -> int | None:
        return self._burst

    @property
    def max_concurrency(self) -> int | None:
        return self._max_concurrency

    @property
    def budgets(self) -> Budgets | None:
        return self._budgets

    def earliest(self, now: float, cost: Cost, hold: bool = True) -> float:
        """The earliest time `>= now` at which `cost` may be admitted.

        Returns `now` itself when it may be admitted now, and `INF` when time alone
        will not do: an open entry must settle or a slot must be released first.
        """
        if hold and self._max_concurrency is not None and self.in_flight >= self._max_concurrency:
            return INF
        at = now if self.paused_until <= now else self.paused_until
        if self._budgets is not None:
            at = self._budgets.earliest(now, cost, self.open, at)
            if at == INF:
                return INF
        n = cost if isinstance(cost, int) else cost.requests
        held = self.open + n
        for window in self._windows:
            at = _window_earliest(window, now, held, at)
        if self._retiring:
            self._retire(now)
            for window in self._retiring:
                ready = _window_earliest(window, now, held, at)
                if ready > window.retire_at and window.open_before <= 0:
                    # The window stops counting at retire_at: waiting longer is pointless,
                    # and returning INF here would wait for an event that never comes.
                    ready = window.retire_at if window.retire_at > at else at
                at = ready
        if self._burst is not None:
            slack = held - (self._burst if self._burst > n else n)
            if slack > 0:
                return INF
            ready = self._tat + slack * self._interval
            if ready > at:
                at = ready
        return at

    def fits(self, cost: Cost) -> bool:
        """Whether `cost` can ever be admitted (it is not larger than every window)."""
        if self._budgets is not None and not self._budgets.fits(cost):
            return False
        return (cost if isinstance(cost, int) else cost.requests) <= self._smallest

    def in_window(self, now: float) -> int:
        """Cost counted in the first window now, open entries included."""
        if not self._windows:  # bucket mode: what the first bucket lacks of full
            assert self._budgets is not None
            return math.ceil(self._budgets.requests[0].used(now)) + self.open
        window = self._windows[0]
        window.purge(now)
        return len(window.stamps) + self.open

    def is_idle(self, now: float) -> bool:
        """Nothing in any window, nothing open or held, no pause and no spacing debt."""
        if self.open or self.in_flight or self.paused_until > now or self._tat > now:
            return False
        if self._budgets is not None and not self._budgets.is_idle(now):
            return False
        for window in self._windows:
            window.purge(now)
            if window.stamps:
                return False
        self._retire(now)
        return not self._retiring

    # -- transitions -----------------------------------------------------------------

    def try_take(self, now: float, cost: Cost, hold: bool) -> bool:
        """Admit and stamp `cost` at `now` if it fits now (`earliest` + `take`)."""
        if self.earliest(now, cost, hold) > now:
            return False
        self.take(now, cost, hold)
        return True

    def reserve(self, cost: Cost, hold: bool) -> int:
        """Admit `cost` as an open entry; returns the generation to settle it with."""
        if self._budgets is not None:
            self._budgets.reserve(cost)
        self.open += cost if isinstance(cost, int) else cost.requests
        if hold:
            self.in_flight += 1
        return self.generation

    def settle(self, now: float, cost: Cost, generation: int) -> None:
        """Stamp an open entry at `now`."""
        if self._budgets is not None:
            self._budgets.stamp(now, cost, settled=True)
        n = cost if isinstance(cost, int) else cost.requests
        self.open -= n
        self._stamp(now, n)
        if self._retiring:
            self._forget_old(now, n, generation, settled=True)

    def unreserve(self, cost: Cost, hold: bool, generation: int) -> None:
        """Give back an open entry that never happened (its waiter was cancelled)."""
        if self._budgets is not None:
            self._budgets.unreserve(cost)
        n = cost if isinstance(cost, int) else cost.requests
        self.open -= n
        if hold:
            self.in_flight -= 1
        if self._retiring:
            self._forget_old(0.0, n, generation, settled=False)

    def take(self, now: float, cost: Cost, hold: bool) -> None:
        """Admit and stamp at once (the uncontended path); counts the entry as admitted."""
        if hold:
            self.in_flight += 1
        self.admitted += 1
        if self._budgets is not None:
            self._budgets.stamp(now, cost, settled=False)
        self._stamp(now, cost if isinstance(cost, int) else cost.requests)

    def reconcile(self, now: float, charge: Charge, actual: Mapping[str, object]) -> None:
        """What an entry really cost in its units (see `Budgets.reconcile`)."""
        if self._budgets is None:
            raise ValueError("this throttler has no budgets in other units to reconcile")
        self._budgets.reconcile(now, charge, actual)

    def release(self) -> None:
        """Give back a concurrency slot."""
        if self.in_flight <= 0:
            raise RuntimeError("release() called more times than acquire()")
        self.in_flight -= 1

    def pause_until(self, until: float) -> bool:
        """Admit nothing before `until`; a shorter pause never cuts a longer one short.

        Returns whether the pause was extended.
        """
        if until > self.paused_until:
            self.paused_until = until
            return True
        return False

    def resume(self) -> None:
        """End any pause now."""
        self.paused_until = _NEG_INF

    def set_rates(self, now: float, rates: Sequence[Rate], burst: int | None) -> None:
        """Replace the limits; the old ones keep guarding entries admitted under them.

        The new windows start with the recent stamps the ledger remembers (as far back as
        its longest window reaches), so tightening takes effect at once. Every old window
        stays, counting old and new entries alike, until `period` after its last old entry
        settled (an entry still open keeps it indefinitely), unless a new window is at least
        as strict (as long and no larger), which makes it redundant.
        """
        if self._budgets is not None and self._budgets.bucket:
            if burst is not None:
                raise TypeError(
                    "a throttler in bucket mode takes no burst: a token bucket's burst is its "
                    "capacity, the limit itself"
                )
            self._budgets.retune_requests(now, rates)
            self.rates = tuple(rates)
            self.generation += 1
            self._refresh_single()
            return
        old = self._windows
        for window in old:
            window.purge(now)
        for window in self._retiring:
            window.purge(now)
        history = max((*old, *self._retiring), key=lambda w: w.period).stamps
        new: list[_Window] = []
        for rate in rates:
            window = _Window(rate.limit, rate.period)
            window.stamps.extend(s for s in history if s + rate.period > now)
            new.append(window)
        self.generation += 1
        retiring = [w for w in self._retiring if not _dominated(w, new)]
        for window in old:
            if (window.stamps or self.open) and not _dominated(window, new):
                window.generation = self.generation
                window.open_before = self.open
                window.retire_at = (window.stamps[-1] + window.period) if window.stamps else now
                retiring.append(window)
        self._retiring = tuple(retiring)
        self._windows = tuple(new)
        self.rates = tuple(rates)
        self._burst = burst
        self._interval = max(r.interval for r in rates) if burst is not None else 0.0
        self._refresh_single()

    # -- internals -------------------------------------------------------------------

    def _stamp(self, now: float, cost: int) -> None:
        for window in self._windows:
            if cost == 1:
                window.stamps.append(now)
            else:
                window.stamps.extend(repeat(now, cost))
        for window in self._retiring:
            window.stamps.extend(repeat(now, cost))
        if self._burst is not None:
            tat = self._tat if self._tat > now else now
            self._tat = tat + cost * self._interval

    def _forget_old(self, now: float, cost: int, generation: int, *, settled: bool) -> None:
        for window in self._retiring:
            if generation < window.generation and window.open_before > 0:
                window.open_before -= cost
                if settled and now + window.period > window.retire_at:
                    window.retire_at = now + window.period

    def _retire(self, now: float) -> None:
        self._retiring = tuple(w for w in self._retiring if w.open_before > 0 or w.retire_at > now)
        self._refresh_single()

    def _refresh_single(self) -> None:
        self._smallest = min(r.limit for r in self.rates)
        simple = (
            len(self._windows) == 1
            and not self._retiring
            and self._burst is None
            and self._budgets is None
        )
        self._single = self._windows[0] if simple else None


def _dominated(window: _Window, new: Sequence[_Window]) -> bool:
    """Whether a new window (seeded with the same stamps) is at least as strict."""
    return any(n.period >= window.period and n.limit <= window.limit for n in new)


def _window_earliest(window: _Window, now: float, held: int, at: float) -> float:
    """Fold one window's constraint into `at` (see `Ledger.earliest`)."""
    room = window.limit - held
    if room < 0:
        return INF
    stamps = window.stamps
    period = window.period
    while stamps and stamps[0] + period <= now:
        stamps.popleft()
    excess = len(stamps) - room
    if excess > 0:
        ready = stamps[excess - 1] + period
        if ready > at:
            return ready
    return at
