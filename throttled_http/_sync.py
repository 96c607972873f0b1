"""The thread-safe `SyncThrottler`: the asyncio throttler's rules for threads.

It drives the same pure `Ledger` as
[`Throttler`][throttled_http.Throttler], with `time.monotonic()` as the clock and one
`threading.Lock`. Waiting threads queue in arrival order, each on its own
`threading.Condition` over that lock. Only the thread at the head of the queue ever looks
at the clock: it sleeps exactly until the moment the ledger says it may enter (or until
something changes: a release, a settle, a pause, a retune) and, once admitted, wakes the
next one. Nothing polls at a fixed interval.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Final, final

from ._exceptions import ThrottlerTimeoutError
from ._front import (
    ThrottlerStatistics,
    _check_burst,
    _cost_message,
    _EntryState,
    _LedgerFront,
    _requests,
)
from ._ledger import INF
from ._rates import Rate, RatesLike, parse_rates, resolve_rates
from ._validate import non_negative_float

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextlib import AbstractContextManager

    from ._budgets import Charge, CostLike

    Cost = int | Charge

__all__ = ["SyncEntry", "SyncThrottler"]

_OPEN: Final = 0
_SETTLED: Final = 1
_CLOSED: Final = 2


@final
class _Waiter:
    __slots__ = ("cond", "cost", "hold")

    def __init__(self, lock: threading.Lock, cost: Cost, hold: bool) -> None:
        self.cond = threading.Condition(lock)
        self.cost = cost
        self.hold = hold


class SyncThrottler(_LedgerFront):
    """Admit at most `rate_limit` entries in any window of `period` seconds, across threads.

    The synchronous twin of [`Throttler`][throttled_http.Throttler], for scripts, thread pools
    and `httpx.Client`:

    ```python
    throttler = SyncThrottler(rate_limit=10, period=1.0)
    with throttler:
        fetch()
    ```

    **The guarantee.** For every half-open interval `[t, t + period)` of `time.monotonic()`,
    the entries stamped in it cost at most `rate_limit` in all. An entry taken with
    [`acquire`][throttled_http.SyncThrottler.acquire] is stamped when the admitted thread
    returns from it; an entry opened with [`entry`][throttled_http.SyncThrottler.entry] or
    [`open_entry`][throttled_http.SyncThrottler.open_entry] counts from admission until it
    is settled and for `period` seconds after that, so a server at the far end of a network
    sees no more than `rate_limit` in any window of `period` seconds either.

    **Fairness.** Threads are admitted strictly in the order they asked (first come, first
    served), whatever their cost: a thread that arrives while others wait queues behind
    them even if a slot is free, and a large cost at the head is never starved.

    **No busy-waiting.** Each waiting thread blocks on its own condition. Only the head of
    the queue has a timeout, set to the exact moment it may enter; the others sleep until
    they reach the head, so waiting threads cost no CPU.

    **Timeouts and interrupts.** A thread that gives up (`timeout`) or is interrupted
    while waiting takes no entry and no slot, and the queue behind it moves on.

    **Concurrency.** With `max_concurrency=n` at most `n` threads are inside
    `with throttler:` (or hold an open entry) at once.

    **Smooth mode.** `burst=b` spaces entries `period / rate_limit` seconds apart with at
    most `b` back to back; `burst=1` satisfies a server enforcing a leaky bucket.

    The rules are those of [`Throttler`][throttled_http.Throttler] (one shared ledger
    implementation), so both keep exactly the same promises.

    Args:
        rate_limit: entries allowed per window, an int >= 1; or a rate such as
            `"10/s"` (then without `period`).
        period: the window's length in seconds, a finite number > 0 (default 1.0).
        max_concurrency: cap on slots held at once (`None`: no cap).
        burst: smooth mode, `1 <= burst <= rate_limit` (`None`: windows only).

    Raises:
        TypeError, ValueError: at construction, naming the argument and its allowed range.
    """

    __slots__ = ("__weakref__", "_lock", "_waiters")

    def __init__(
        self,
        rate_limit: int | str | Rate,
        period: float | None = None,
        *,
        max_concurrency: int | None = None,
        burst: int | None = None,
        budgets: Mapping[str, RatesLike] | None = None,
        bucket: bool = False,
    ) -> None:
        self._init(
            resolve_rates(rate_limit, period, None),
            max_concurrency=max_concurrency,
            burst=burst,
            budgets=budgets,
            bucket=bucket,
        )

    def _init_waiting(self) -> None:
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()

    def __enter__(self) -> None:
        self._admit(1, True, None, stamp=True)

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._ledger.release()
            self._notify_head()

    def acquire(self, cost: CostLike = 1, *, timeout: float | None = None) -> None:
        """Block until an entry of `cost` is admitted; it is stamped on return.

        With `max_concurrency` set this also takes a slot: give it back with
        [`release`][throttled_http.SyncThrottler.release] (`with throttler:` does both).

        Args:
            cost: weight of the entry, `1 <= cost <=` the smallest limit.
            timeout: seconds to wait at most (`None`: no limit). On expiry nothing is
                taken.

        Raises:
            ValueError: when `cost` exceeds a limit (it could never be admitted).
            ThrottlerTimeoutError: (a `TimeoutError`) when `timeout` expires first.
        """
        charge = self._check_cost(cost)
        self._admit(charge, self._ledger.max_concurrency is not None, timeout, stamp=True)

    def try_acquire(self, cost: CostLike = 1) -> bool:
        """Take an entry now if one is free and nobody is waiting; never blocks.

        Returns:
            `True` when an entry was taken (and a slot, with `max_concurrency`: give it
            back with [`release`][throttled_http.SyncThrottler.release]), `False` otherwise.
        """
        charge = self._check_cost(cost)
        hold = self._ledger.max_concurrency is not None
        with self._lock:
            now = time.monotonic()
            if not self._waiters and self._ledger.earliest(now, charge, hold) <= now:
                self._ledger.take(now, charge, hold)
                return True
            return False

    def release(self) -> None:
        """Give back the slot `acquire` took when `max_concurrency` is set.

        A no-op without `max_concurrency`.

        Raises:
            RuntimeError: when called more times than `acquire()`.
        """
        if self._ledger.max_concurrency is None:
            return
        with self._lock:
            self._ledger.release()
            self._notify_head()

    def open_entry(self, cost: CostLike = 1, *, timeout: float | None = None) -> SyncEntry:
        """Block until admitted and return a latency-proof entry, open; close it later.

        The entry counts in every window from admission until `SyncEntry.settle`
        (call it when the response headers arrive) and for `period` seconds after, and it
        holds a concurrency slot until `SyncEntry.close` (which settles first if
        needed). Both are idempotent.

        Raises:
            ValueError: when `cost` exceeds a limit.
            ThrottlerTimeoutError: when `timeout` (seconds) expires first.
        """
        charge = self._check_cost(cost)
        generation = self._admit(charge, True, timeout, stamp=False)
        return SyncEntry(self, charge, generation)

    def entry(
        self, cost: CostLike = 1, *, timeout: float | None = None
    ) -> AbstractContextManager[SyncEntry]:
        """`with throttler.entry() as e:`: `open_entry`, closed when the block exits."""
        self._check_cost(cost)
        return _SyncEntryContext(self, cost, timeout)

    # -- server feedback -------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """Admit nothing for `seconds` from now; a shorter pause never cuts a longer one.

        Raises:
            ValueError: when `seconds` is negative or not finite.
        """
        seconds = non_negative_float("seconds", seconds)
        with self._lock:
            if self._ledger.pause_until(time.monotonic() + seconds):
                self._notify_head()

    def resume(self) -> None:
        """End a pause now."""
        with self._lock:
            self._ledger.resume()
            self._notify_head()

    @property
    def paused_for(self) -> float:
        """Seconds left of the current pause (0 when not paused)."""
        with self._lock:
            return max(0.0, self._ledger.paused_until - time.monotonic())

    def set_rates(self, *rates: RatesLike, burst: int | None = None) -> None:
        """Retune the limits; the old ones keep guarding entries admitted under them.

        Tightening takes effect at once; loosening one old `period` after the last old entry
        settled (see
        [`throttled_http.Throttler.set_rates`][throttled_http.Throttler.set_rates]).
        """
        new = parse_rates(*rates)
        burst = _check_burst(burst, new)
        with self._lock:
            self._ledger.set_rates(time.monotonic(), new, burst)
            self._notify_head()

    # -- introspection ---------------------------------------------------------------

    def _free_now(self, charge: Cost) -> bool:
        with self._lock:
            now = time.monotonic()
            return not self._waiters and self._ledger.earliest(now, charge) <= now

    def statistics(self) -> ThrottlerStatistics:
        """A frozen snapshot: the state now, and the running totals admitted and waited."""
        with self._lock:
            return self._snapshot(time.monotonic(), len(self._waiters))

    def is_idle(self) -> bool:
        """Nothing in any window, nobody waiting, nothing open or in flight, no pause."""
        with self._lock:
            return not self._waiters and self._ledger.is_idle(time.monotonic())

    # -- internals -------------------------------------------------------------------

    def _admit(self, cost: Cost, hold: bool, timeout: float | None, *, stamp: bool) -> int:
        """Queue, block until admitted, then stamp (`stamp`) or reserve the entry.

        Returns the ledger generation a reserved entry must be settled with.
        """
        wait_at_most = INF if timeout is None else non_negative_float("timeout", timeout)
        ledger = self._ledger
        waiters = self._waiters
        with self._lock:
            now = time.monotonic()
            if not waiters and ledger.earliest(now, cost, hold) <= now:
                return self._enter(now, cost, hold, stamp)
            deadline = now + wait_at_most
            queued_at = now
            waiter = _Waiter(self._lock, cost, hold)
            waiters.append(waiter)
            try:
                while True:
                    if waiters[0] is waiter:
                        at = ledger.earliest(now, cost, hold)
                        if at <= now:
                            waiters.popleft()
                            generation = self._enter(now, cost, hold, stamp)
                            self._notify_head()
                            return generation
                        if at == INF and not ledger.fits(cost):
                            # set_rates shrank a limit below this cost while it waited.
                            raise ValueError(_cost_message(ledger.rates, _requests(cost)))
                    else:
                        at = INF
                    if now >= deadline:
                        raise ThrottlerTimeoutError(
                            f"no entry was free within {timeout} seconds; nothing was taken"
                        )
                    until = at if at < deadline else deadline
                    waiter.cond.wait(None if until == INF else until - now)
                    now = time.monotonic()
            except BaseException:
                if waiters and waiters[0] is waiter:
                    waiters.popleft()
                    self._notify_head()
                elif waiter in waiters:
                    waiters.remove(waiter)  # still queued behind others
                raise
            finally:
                ledger.waited += time.monotonic() - queued_at

    def _enter(self, now: float, cost: Cost, hold: bool, stamp: bool) -> int:
        if stamp:
            self._ledger.take(now, cost, hold)  # counts the entry as admitted
            return self._ledger.generation
        self._ledger.admitted += 1
        return self._ledger.reserve(cost, hold)

    def _notify_head(self) -> None:
        """Let the head of the queue look at the ledger again (call under the lock)."""
        if self._waiters:
            self._waiters[0].cond.notify()

    def _close_entry(self) -> None:
        with self._lock:
            self._ledger.release()
            self._notify_head()


@final
class SyncEntry(_EntryState):
    """An admitted latency-proof entry of a [`SyncThrottler`][throttled_http.SyncThrottler].

    `settle()` stamps it now; `close()` settles it if needed and gives back its slot.
    Both are idempotent and thread-safe, so any thread may call them.
    """

    __slots__ = ("_generation", "_guard", "_throttler")

    def __init__(self, throttler: SyncThrottler, cost: Cost, generation: int) -> None:
        self._throttler = throttler
        self._set_cost(cost)
        self._generation = generation
        self._state = _OPEN
        self._guard = threading.Lock()

    def settle(self) -> None:
        """Stamp the entry now: it counts in windows until `period` seconds from now."""
        throttler = self._throttler
        # Under the throttler's lock, so that a reconcile() never sees the entry settled
        # before the ledger does.
        with throttler._lock:
            with self._guard:
                if self._state != _OPEN:
                    return
                self._state = _SETTLED
            charge = self._charge
            cost = self.cost if charge is None else charge
            throttler._ledger.settle(time.monotonic(), cost, self._generation)
            throttler._notify_head()

    def reconcile(self, actual: Mapping[str, int]) -> None:
        """State what the entry really cost in some of its units; see
        [`Entry.reconcile`][throttled_http.Entry.reconcile]."""
        throttler = self._throttler
        with throttler._lock:
            with self._guard:
                charge = self._charge_for_reconcile()
            throttler._ledger.reconcile(time.monotonic(), charge, actual)
            throttler._notify_head()

    def close(self) -> None:
        """Settle (if still open) and give back the concurrency slot."""
        self.settle()
        with self._guard:
            if self._state == _CLOSED:
                return
            self._state = _CLOSED
        self._throttler._close_entry()


@final
class _SyncEntryContext:
    __slots__ = ("_cost", "_entry", "_throttler", "_timeout")

    def __init__(self, throttler: SyncThrottler, cost: CostLike, timeout: float | None) -> None:
        self._throttler = throttler
        self._cost = cost
        self._timeout = timeout
        self._entry: SyncEntry | None = None

    def __enter__(self) -> SyncEntry:
        self._entry = self._throttler.open_entry(self._cost, timeout=self._timeout)
        return self._entry

    def __exit__(self, *exc_info: object) -> None:
        if self._entry is not None:
            self._entry.close()
