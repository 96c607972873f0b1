"""The asyncio `Throttler`: exact sliding window, FIFO, event-driven, cancellation-safe.

Waiters sleep on futures in one FIFO queue; a single timer, set for the moment the head of
the queue may enter, wakes them. Nothing polls. Admission reserves an *open* entry for the
woken task, and the entry is stamped when that task actually resumes, so a loop that runs
a woken batch late cannot squeeze more than `rate_limit` entries into a real window.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from itertools import repeat
from typing import TYPE_CHECKING, final

from ._exceptions import ThrottlerTimeoutError
from ._front import (
    _CLOSED,
    _OPEN,
    _PENDING,
    _SETTLED,
    ThrottlerStatistics,
    _check_burst,
    _cost_message,
    _EntryState,
    _LedgerFront,
    _requests,
)
from ._ledger import INF, Ledger
from ._rates import Rate, RatesLike, parse_rates, resolve_rates
from ._validate import non_negative_float

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._budgets import Charge, CostLike

    Cost = int | Charge

__all__ = ["Entry", "Throttler", "ThrottlerStatistics"]

_get_running_loop = asyncio.get_running_loop
_new_entry = object.__new__
_monotonic = time.monotonic
_BASE_TIME = asyncio.BaseEventLoop.time

_Waiter = tuple["asyncio.Future[int]", "int | Charge", bool]


class _AsyncQueue(_LedgerFront):
    """The waiting machinery of `Throttler`: one FIFO queue, one timer, the loop.

    Kept apart from the public API so that each stays readable. The hot paths
    (`_reserve_now`, and [`Entry`][throttled_http.Entry]'s `settle`/`close`) check the common
    case inline: a stock loop, one window, nobody waiting.
    """

    __slots__ = (
        "_clock",
        "_loop",
        "_monotonic",
        "_timer",
        "_timer_at",
        "_waiters",
        "_woken",
    )

    def _init_waiting(self) -> None:
        # Made on the first wait: most throttlers of a large ThrottlerMap never queue anyone.
        self._waiters: deque[_Waiter] | None = None
        # Admitted waiters that have not resumed yet: their reservations are open.
        # Made when a waiter is first admitted, as the queue is: most throttlers of a
        # large ThrottlerMap never queue anyone.
        self._woken: dict[asyncio.Future[int], _Waiter] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock = time.monotonic
        self._monotonic = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = INF

    def _reserve_now(self, cost: Cost) -> int | None:
        """Reserve an open entry of `cost` at once on the common path, else `None`.

        The common path: bound to a stock loop (whose clock is `time.monotonic()`), one
        window and nothing else to obey, room under the cap, no pause, nobody waiting. It
        makes the very comparisons of `Ledger.earliest` for that window; anything else
        is for `_open_slow`. Returns the reservation's generation.
        """
        ledger = self._ledger
        window = ledger._single
        if window is None or not self._monotonic or self._waiters:
            return None
        cap = ledger._max_concurrency
        if (cap is not None and ledger.in_flight >= cap) or ledger.paused_until > (
            now := _monotonic()
        ):
            return None
        stamps = window.stamps
        period = window.period
        while stamps and stamps[0] + period <= now:
            stamps.popleft()
        if len(stamps) + ledger.open + cost > window.limit:  # type: ignore[operator]
            return None
        ledger.open += cost  # type: ignore[operator]  # an int: no budgets on this path
        ledger.in_flight += 1
        ledger.admitted += 1
        return ledger.generation

    async def _open_slow(self, cost: Cost, timeout: float | None) -> int:
        """Wait for an open entry of `cost` (validated); its reservation's generation."""
        loop = _get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
        now = self._clock()
        ledger = self._ledger
        if not self._waiters and ledger.earliest(now, cost) <= now:
            ledger.admitted += 1
            return ledger.reserve(cost, True)
        deadline = None if timeout is None else now + timeout
        return await self._wait(loop, cost, True, deadline)

    def _now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            loop = self._loop
            return loop.time() if loop is not None and not loop.is_closed() else time.monotonic()

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        old = self._loop
        if (
            old is not None
            and not old.is_closed()
            and (self._waiters or self._timer is not None or self._ledger.open)
        ):
            raise RuntimeError(
                f"{self!r} is in use by another event loop; a throttler may move to a new "
                "loop only when it has no waiters and no open entries"
            )
        if old is not None and old.is_closed():
            # Tasks still queued on a closed loop can never run again: forget them, or
            # they would block the queue (and their futures could not even be resolved),
            # and give back what was reserved for those admitted but never resumed.
            self._waiters = None
            self._timer = None
            self._timer_at = INF
            for fut, (_, cost, hold) in (self._woken or {}).items():
                self._ledger.unreserve(cost, hold, fut.result())
            self._woken = None
        self._loop = loop
        # The stock loops read time.monotonic(): call it directly, saving a Python frame per
        # entry; any other loop (uvloop, looptime's virtual clock) keeps its own time().
        # Look at the bound method, not the class: a loop whose time() was replaced on the
        # instance (a simulated clock) must keep its own clock.
        self._monotonic = getattr(loop.time, "__func__", None) is _BASE_TIME
        self._clock = time.monotonic if self._monotonic else loop.time

    async def _wait(
        self,
        loop: asyncio.AbstractEventLoop,
        cost: Cost,
        hold: bool,
        deadline: float | None,
    ) -> int:
        """Queue, sleep until admitted, and return the reservation's generation.

        Counts the entry as admitted once this task has resumed with it, and the time it
        spent queued (admitted or not) in the ledger's `waited`.
        """
        queued_at = loop.time()
        fut: asyncio.Future[int] = loop.create_future()
        waiter = (fut, cost, hold)
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = deque()
        waiters.append(waiter)
        if len(waiters) == 1:
            self._wake()
        timer = None
        if deadline is not None and not fut.done():
            timer = loop.call_at(deadline, _expire, fut, deadline)
        try:
            generation = await fut
        except BaseException:
            if self._woken is not None and self._woken.pop(fut, None) is not None:
                # Admitted, then cancelled before resuming: the entry never happened.
                self._ledger.unreserve(cost, hold, fut.result())
                if waiters:
                    self._wake()
            elif waiters and waiters[0] is waiter:
                waiters.popleft()
                self._wake()
            raise
        finally:
            if self._woken is not None:
                self._woken.pop(fut, None)
            if timer is not None:
                timer.cancel()
            self._ledger.waited += loop.time() - queued_at
        self._ledger.admitted += 1
        return generation

    def _wake(self) -> None:
        """Admit every waiter at the head that fits now; set the timer for the next."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        now = loop.time()
        waiters = self._waiters
        ledger = self._ledger
        while waiters:
            head = waiters[0]
            fut, cost, hold = head
            if fut.done():
                waiters.popleft()
                continue
            at = ledger.earliest(now, cost, hold)
            if at <= now:
                waiters.popleft()
                fut.set_result(ledger.reserve(cost, hold))
                woken = self._woken
                if woken is None:
                    woken = self._woken = {}
                woken[fut] = head
                continue
            if at == INF and not ledger.fits(cost):
                # set_rates shrank a limit below this cost: it could never be admitted.
                waiters.popleft()
                fut.set_exception(ValueError(_cost_message(ledger.rates, _requests(cost))))
                continue
            if at != self._timer_at:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = None if at == INF else loop.call_at(at, self._on_timer)
                self._timer_at = at
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = INF

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = INF
        self._wake()

    def _after_settle(self) -> None:
        # Settling moves nothing in the windows, but it may open the way for smooth mode or
        # for an entry that waited on open entries; let the head look again.
        if self._waiters:
            self._wake()

    def _settle_entry(self, entry: Entry) -> None:
        loop = self._loop
        now = self._clock() if loop is not None and not loop.is_closed() else self._now()
        charge = entry._charge
        self._ledger.settle(now, entry.cost if charge is None else charge, entry._generation)
        self._after_settle()


class Throttler(_AsyncQueue):
    """Admit at most `rate_limit` entries in any window of `period` seconds.

    A drop-in for the `asyncio-throttle` package's `Throttler` that is exact, fair and
    cheap:

    ```python
    throttler = Throttler(rate_limit=10, period=1.0)
    async with throttler:
        await fetch()
    ```

    **The guarantee.** For every half-open interval `[t, t + period)` of the event loop's
    clock, the entries stamped in it cost at most `rate_limit` in all. An entry is stamped
    when the admitted task actually resumes (not when a timer decided to wake it), and an
    entry opened with [`entry`][throttled_http.Throttler.entry] counts from admission until
    it is settled and for `period` after that, so no window at the far end of a network sees
    more either.

    **Fairness.** Entries are admitted strictly in the order they asked (first come,
    first served), whatever their cost: nobody barges in while others wait, not even an
    `acquire()` that arrives just as a slot frees. A large cost at the head is never
    starved by small ones behind it.

    **No polling.** Waiters sleep on futures; one timer, set for the moment the head of the
    queue may enter, wakes them. 10,000 waiting tasks cost no CPU while they wait.

    **Cancellation.** A waiter cancelled (or timed out) at any point, before, during or right
    after being woken, takes no entry and no slot, and the queue behind it moves on.

    **Concurrency.** With `max_concurrency=n` at most `n` callers are inside
    `async with` at once; leaving the block in any way frees the slot.

    **Smooth mode.** `burst=b` spaces entries `period / rate_limit` seconds apart with
    at most `b` back to back (the generic cell rate algorithm), on top of the window
    guarantee. `burst=1` spaces every entry evenly: what a server enforcing a leaky bucket
    (nginx `limit_req` without `burst`) requires to never answer 429.

    **Loops.** No loop is captured at construction: a throttler built at import time works
    under `asyncio.run` later. While it has waiters, a pending timer or open entries it
    belongs to the loop that made them; using it from another loop meanwhile raises
    `RuntimeError` rather than corrupting state. Time is the loop's clock; every stock
    asyncio loop reads `time.monotonic()`, so an idle throttler moves freely between them.
    Do not share one throttler between a stock loop and a loop with a clock of its own (such
    as looptime's virtual time in tests): their stamps are not comparable. It is not
    thread-safe: use [`SyncThrottler`][throttled_http.SyncThrottler] for threads.

    Args:
        rate_limit: entries allowed per window, an int >= 1; or a rate such as
            `"10/s"` or `"10/s; 1000/h"` (then without `period`), as
            [`from_rates`][throttled_http.Throttler.from_rates] takes.
        period: the window's length in seconds, a finite number > 0 (default 1.0).
        retry_interval: accepted so code written for `asyncio-throttle` runs unchanged;
            it has no effect because nothing polls. Must be a finite number >= 0.
        max_concurrency: cap on entries inside `async with` at once (`None`: no cap).
        burst: smooth mode, `1 <= burst <= rate_limit` (`None`: windows only).
        budgets: limits in units besides requests, by name:
            `budgets={"tokens": "30000/min"}`. An entry's cost may then be a mapping,
            `{"tokens": 420}` (its `"requests"` default to 1), and it is admitted only
            when its requests and every unit it names have room, in the same FIFO queue
            with one wait. See [Budgets in several units](throttler.md#budgets-in-several-units).
        bucket: `True` makes every limit (requests and budgets) a token bucket of
            capacity `limit` refilling continuously at `limit / period` per second,
            with no sliding window on top: exactly the provider's bucket, for providers
            that document one (OpenAI, Anthropic, Envoy, API gateways). Not with `burst`.

    Raises:
        TypeError, ValueError: at construction, naming the argument and its allowed range.

    Memory is `O(rate_limit)`: one float per entry in the window.
    """

    __slots__ = ("__weakref__", "_retry_interval")

    def __init__(
        self,
        rate_limit: int | str | Rate,
        period: float | None = None,
        retry_interval: float = 0.01,
        *,
        max_concurrency: int | None = None,
        burst: int | None = None,
        budgets: Mapping[str, RatesLike] | None = None,
        bucket: bool = False,
    ) -> None:
        rates = resolve_rates(rate_limit, period, None)
        interval = non_negative_float("retry_interval", retry_interval)
        self._init(
            rates, max_concurrency=max_concurrency, burst=burst, budgets=budgets, bucket=bucket
        )
        self._retry_interval = interval

    @classmethod
    def _over_ledger(cls, ledger: Ledger) -> tuple[Throttler, Callable[[], None]]:
        """Package-internal: a throttler that admits by `ledger`, which its caller shares.

        For the Redis failover (`throttled_http._redis_failover`): its local fallback
        must start from, and keep counting into, the ledger of the entries the process
        made through Redis. The rates, burst and concurrency cap are the ledger's. The
        caller may settle entries in `ledger` itself; it must then call the returned
        function, which lets the head of the queue look again (as settling an entry of
        this throttler does).
        """
        self = cls.__new__(cls)
        self._ledger = ledger
        self._retry_interval = 0.01
        self._init_waiting()
        return self, self._after_settle

    # -- configuration ---------------------------------------------------------------

    @property
    def retry_interval(self) -> float:
        """Kept for `asyncio-throttle` compatibility; unused, since nothing polls."""
        return self._retry_interval

    # -- entering --------------------------------------------------------------------

    async def __aenter__(self) -> None:
        # The uncontended path, inlined because it is most of what users pay: once bound to a
        # stock loop (whose clock is time.monotonic(), shared by every stock loop) with one
        # window, no cap, no pause and nobody waiting, check that window's room directly,
        # with the very comparisons of Ledger.earliest.
        ledger = self._ledger
        window = ledger._single
        if (
            window is not None
            and self._monotonic
            and not self._waiters
            and ledger._max_concurrency is None
            and ledger.paused_until <= (now := _monotonic())
        ):
            stamps = window.stamps
            period = window.period
            while stamps and stamps[0] + period <= now:
                stamps.popleft()
            if len(stamps) + ledger.open < window.limit:
                stamps.append(now)
                ledger.in_flight += 1
                ledger.admitted += 1
                return
        loop = _get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
        if not self._waiters and ledger.try_take(self._clock(), 1, True):
            return
        generation = await self._wait(loop, 1, True, None)
        ledger.settle(loop.time(), 1, generation)
        self._after_settle()

    async def __aexit__(self, *exc_info: object) -> None:
        ledger = self._ledger
        if ledger.in_flight <= 0:
            raise RuntimeError("release() called more times than acquire()")
        ledger.in_flight -= 1
        if self._waiters and ledger.max_concurrency is not None:
            self._wake()

    async def acquire(self, cost: CostLike = 1, *, timeout: float | None = None) -> None:
        """Wait for an entry of `cost` and stamp it when this task resumes.

        With `max_concurrency` set, this also takes a slot: give it back with
        [`release`][throttled_http.Throttler.release] (`async with` does both for you).

        Args:
            cost: weight of the entry, `1 <= cost <= rate_limit`; with `budgets`, a
                mapping of costs per unit (`{"tokens": 420}`), each at most its limit.
            timeout: seconds to wait at most (`None`: no limit). On expiry nothing is
                taken and [`ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError] (a
                `TimeoutError`) is raised. `asyncio.timeout` and `wait_for` around
                `acquire` work as well.

        Raises:
            ValueError: when `cost` exceeds a limit (it could never be admitted), also while
                waiting, if [`set_rates`][throttled_http.Throttler.set_rates] shrinks a
                limit below `cost`.
            ThrottlerTimeoutError: when `timeout` expires first.
        """
        charge = self._check_cost(cost)
        if timeout is not None:
            timeout = non_negative_float("timeout", timeout)
        ledger = self._ledger
        hold = ledger.max_concurrency is not None
        loop = _get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
        now = self._clock()
        if not self._waiters and ledger.try_take(now, charge, hold):
            return
        deadline = None if timeout is None else now + timeout
        generation = await self._wait(loop, charge, hold, deadline)
        ledger.settle(loop.time(), charge, generation)
        self._after_settle()

    def try_acquire(self, cost: CostLike = 1) -> bool:
        """Take an entry now if one is free and nobody is waiting; never blocks.

        Returns:
            `True` when an entry was taken (and a slot, with `max_concurrency`: give it back
            with [`release`][throttled_http.Throttler.release]), `False` otherwise. Must be
            called from a running event loop.
        """
        charge = self._check_cost(cost)
        ledger = self._ledger
        loop = _get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
        return not self._waiters and ledger.try_take(
            self._clock(), charge, ledger.max_concurrency is not None
        )

    def release(self) -> None:
        """Give back the slot an `acquire` took when `max_concurrency` is set.

        A no-op without `max_concurrency`, so `asyncio-throttle`-style code that
        never releases keeps working.

        Raises:
            RuntimeError: when called more times than `acquire()`.
        """
        if self._ledger.max_concurrency is None:
            return
        self._ledger.release()
        if self._waiters:
            self._wake()

    def entry(self, cost: CostLike = 1, *, timeout: float | None = None) -> Entry:
        """A latency-proof entry, for work whose effect lands some time later.

        `async with throttler.entry() as e:` admits like `async with throttler:`, but
        the entry counts in the window from admission until `e.settle()` is called (or the
        block exits, whichever comes first) and for `period` after that moment. Settle an
        HTTP request when its response headers arrive: it can only have reached the server
        in between, so no window at the server holds more than `rate_limit`, whatever the
        latency. With `budgets`, `cost` may be a mapping of costs per unit, and
        [`Entry.reconcile`][throttled_http.Entry.reconcile] states what it really cost.
        """
        entry = _new_entry(Entry)
        if cost.__class__ is int and cost == 1:
            entry.cost = 1
            entry._charge = None
        else:
            entry._set_cost(self._check_cost(cost))
        if timeout is not None:
            timeout = non_negative_float("timeout", timeout)
        entry._throttler = self
        entry._state = _PENDING  # admitted by its __aenter__
        entry._timeout = timeout
        return entry

    async def open_entry(self, cost: CostLike = 1, *, timeout: float | None = None) -> Entry:
        """Wait for a latency-proof entry and return it open; the caller must close it.

        The low-level form of [`entry`][throttled_http.Throttler.entry] for integrations
        that settle and release from callbacks: call
        [`Entry.settle`][throttled_http.Entry.settle] when the effect happened and
        [`Entry.close`][throttled_http.Entry.close] when the slot may be reused (it settles
        first if needed).
        """
        charge: Cost = 1
        if cost.__class__ is not int or cost != 1:
            charge = self._check_cost(cost)
        if timeout is not None:
            timeout = non_negative_float("timeout", timeout)
        generation = self._reserve_now(charge)
        if generation is None:
            generation = await self._open_slow(charge, timeout)
        entry = _new_entry(Entry)
        if charge.__class__ is int:
            entry.cost = charge
            entry._charge = None
        else:
            entry._set_cost(charge)
        entry._throttler = self
        entry._generation = generation
        entry._state = _OPEN
        entry._timeout = None
        return entry

    def flush(self) -> None:
        """Drop entries whose window has passed (kept for `asyncio-throttle`).

        Expired entries are dropped lazily anyway; this only does it now.
        """
        self._ledger.in_window(self._now())

    # -- server feedback -------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """Admit nothing for `seconds` from now (a server said "slow down").

        A shorter pause never cuts a longer one short. Entries already admitted are not
        affected, and the window guarantee holds throughout.

        Raises:
            ValueError: when `seconds` is negative or not finite.
        """
        seconds = non_negative_float("seconds", seconds)
        if self._ledger.pause_until(self._now() + seconds) and self._waiters:
            self._wake()

    def resume(self) -> None:
        """End a pause now."""
        self._ledger.resume()
        if self._waiters:
            self._wake()

    @property
    def paused_for(self) -> float:
        """Seconds left of the current pause (0 when not paused)."""
        return max(0.0, self._ledger.paused_until - self._now())

    def set_rates(self, *rates: RatesLike, burst: int | None = None) -> None:
        """Retune the limits at runtime (to follow a quota the server advertises).

        The old limits keep guarding the entries admitted under them: every old window stays
        in force, counting old and new entries, until no entry admitted before the change
        can share a window with a new one. Loosening therefore takes effect one old
        `period` after the last old entry settled. Tightening takes effect at once: the
        new windows count the recent entries (as far back as the longest old window
        reached). A waiter whose cost exceeds a new limit fails with `ValueError`
        rather than wait forever.

        Args:
            rates: the new limits, as for [`from_rates`][throttled_http.Throttler.from_rates].
            burst: smooth mode for the new limits.
        """
        new = parse_rates(*rates)
        burst = _check_burst(burst, new)
        self._ledger.set_rates(self._now(), new, burst)
        if self._waiters:
            self._wake()

    # -- introspection ---------------------------------------------------------------

    def _free_now(self, charge: Cost) -> bool:
        now = self._now()
        return not self._waiters and self._ledger.earliest(now, charge) <= now

    def statistics(self) -> ThrottlerStatistics:
        """A frozen snapshot: the state now, and the running totals admitted and waited."""
        waiting = sum(1 for fut, _, _ in self._waiters or () if not fut.done())
        return self._snapshot(self._now(), waiting)

    def is_idle(self) -> bool:
        """Nothing in any window, nobody waiting, nothing open or in flight, no pause.

        An idle throttler can be forgotten and rebuilt without loosening any limit.
        """
        return not self._waiters and self._ledger.is_idle(self._now())


def _expire(fut: asyncio.Future[int], deadline: float) -> None:
    if not fut.done():
        fut.set_exception(
            ThrottlerTimeoutError(f"no entry was free before the deadline (loop time {deadline})")
        )


@final
class Entry(_EntryState):
    """An admitted latency-proof entry; see [`Throttler.entry`][throttled_http.Throttler.entry].

    `settle()` stamps it now (idempotent); `close()` settles it if needed and gives back its
    concurrency slot (idempotent). Both are synchronous, so response callbacks can call
    them. [`Throttler.entry`][throttled_http.Throttler.entry] returns one not yet admitted,
    which `async with` admits (once) and closes.
    """

    __slots__ = ("_generation", "_throttler", "_timeout")

    def __init__(self, throttler: Throttler, cost: Cost, generation: int) -> None:
        self._throttler = throttler
        self._set_cost(cost)
        self._generation = generation
        self._state = _OPEN
        self._timeout: float | None = None

    def settle(self) -> None:
        """Stamp the entry now: it counts in windows until `period` from now."""
        if self._state != _OPEN:
            return
        self._state = _SETTLED
        throttler = self._throttler
        ledger = throttler._ledger
        window = ledger._single
        if window is None or not throttler._monotonic:
            throttler._settle_entry(self)
            return
        # Ledger.settle for one window and nothing else to obey, inlined.
        cost = self.cost  # one window: no budgets, no charge
        ledger.open -= cost
        if cost == 1:
            window.stamps.append(_monotonic())
        else:
            window.stamps.extend(repeat(_monotonic(), cost))
        if throttler._waiters:
            throttler._wake()

    def close(self) -> None:
        """Settle (if still open) and give back the concurrency slot."""
        state = self._state
        if state == _CLOSED:
            return
        if state == _PENDING:  # never admitted: nothing to give back
            self._state = _CLOSED
            return
        if state == _OPEN:
            self.settle()
        self._state = _CLOSED
        throttler = self._throttler
        throttler._ledger.in_flight -= 1  # an entry always holds a slot
        if throttler._waiters:
            throttler._wake()

    def reconcile(self, actual: Mapping[str, int]) -> None:
        """State what the entry really cost in some of its units, once it is known.

        For example from a response's `usage`: `entry.reconcile({"output_tokens": 87})`
        after charging `max_tokens` up front. The difference is credited or debited to
        every window or bucket the entry was charged to, whether it is still open,
        settled or closed; waiters that now fit are admitted. Each call states the
        total, so calling it again with the same numbers changes nothing.

        Raises:
            ValueError: for a unit the throttler has no budget for, `"requests"`, or a
                negative amount; also when the throttler has no budgets at all.
            TypeError: for an amount that is not an int.
            RuntimeError: for an entry not admitted yet.
        """
        throttler = self._throttler
        charge = self._charge_for_reconcile()
        throttler._ledger.reconcile(throttler._now(), charge, actual)
        if throttler._waiters:
            throttler._wake()

    async def __aenter__(self) -> Entry:
        if self._state != _PENDING:
            raise RuntimeError(f"{self!r} was entered already; use Throttler.entry() again")
        throttler = self._throttler
        cost: Cost = self._charge or self.cost
        generation = throttler._reserve_now(cost)
        if generation is None:
            generation = await throttler._open_slow(cost, self._timeout)
        self._generation = generation
        self._state = _OPEN
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
