"""The asyncio Throttler: window, FIFO, cancellation, concurrency, entries, retuning.

Everything time-dependent runs on looptime's virtual clock: sleeps cost no real time and
``loop.time()`` is exact, so the assertions check the guarantee, not a speed.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from typing import TYPE_CHECKING

import pytest
from conftest import max_in_window, run_virtual
from hypothesis import given, settings
from hypothesis import strategies as st

from throttled_http import (
    Entry,
    Rate,
    SyncThrottler,
    Throttler,
    ThrottlerStatistics,
    ThrottlerTimeoutError,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# Virtual time; a test that would wait forever fails after 1 s of idling instead.
pytestmark = pytest.mark.looptime(idle_timeout=1.0, idle_step=0.01)


def now() -> float:
    return asyncio.get_running_loop().time()


async def settle_down() -> None:
    """Let every ready callback run without moving virtual time."""
    for _ in range(5):
        await asyncio.sleep(0)


async def run_workers(
    throttler: Throttler, count: int, *, cost: int = 1, hold: float = 0.0
) -> list[float]:
    """``count`` tasks enter once each through ``async with``; return their entry times."""
    times: list[float] = []

    async def worker() -> None:
        async with throttler:
            times.append(now())
            if hold:
                await asyncio.sleep(hold)

    await asyncio.gather(*(worker() for _ in range(count)))
    return times


# -- the window -------------------------------------------------------------------------


async def test_async_with_admits_at_most_rate_limit_per_window() -> None:
    """20 tasks through 3 per second: no window of 1 s holds more than 3."""
    throttler = Throttler(3, 1.0)
    times = await run_workers(throttler, 20)
    assert max_in_window(times, 1.0) == 3
    assert sorted(times)[:4] == [0.0, 0.0, 0.0, 1.0]
    assert max(times) == 6.0


async def test_acquire_admits_at_most_rate_limit_per_window() -> None:
    """acquire() obeys the same sliding window as async with."""
    throttler = Throttler(4, 0.5)
    times: list[float] = []

    async def worker() -> None:
        await throttler.acquire()
        times.append(now())

    await asyncio.gather(*(worker() for _ in range(17)))
    assert max_in_window(times, 0.5) == 4
    assert max(times) == 2.0


async def test_window_slides_rather_than_resets() -> None:
    """Entries spread over a window free their places one by one, not all at once."""
    throttler = Throttler(2, 1.0)
    await throttler.acquire()
    await asyncio.sleep(0.4)
    await throttler.acquire()
    start = now()
    await throttler.acquire()
    assert now() - start == pytest.approx(0.6)
    await throttler.acquire()
    assert now() == pytest.approx(1.4)


async def test_properties_and_flush() -> None:
    """rate_limit, period, retry_interval are readable; flush() drops expired entries."""
    throttler = Throttler(5, 2.5, 0.2)
    assert (throttler.rate_limit, throttler.period, throttler.retry_interval) == (5, 2.5, 0.2)
    assert throttler.rates == (Rate(5, 2.5),)
    await throttler.acquire()
    await asyncio.sleep(3)
    throttler.flush()
    assert throttler.statistics().in_window == 0


async def test_retry_interval_has_no_effect() -> None:
    """A huge retry_interval does not delay anyone: nothing polls."""
    throttler = Throttler(1, 1.0, retry_interval=100.0)
    times = await run_workers(throttler, 3)
    assert times == [0.0, 1.0, 2.0]


# -- event-driven ------------------------------------------------------------------------


async def test_ten_thousand_waiters_share_one_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 queued tasks cost one timer handle, re-armed once per batch, never a poll."""
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    original_call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        armed.append(when)
        return original_call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    throttler = Throttler(100, 1.0)
    entered = 0

    async def worker() -> None:
        nonlocal entered
        async with throttler:
            entered += 1

    tasks = [asyncio.create_task(worker()) for _ in range(10_000)]
    await settle_down()
    assert entered == 100
    assert throttler.statistics().waiting == 9_900
    scheduled = loop._scheduled  # type: ignore[attr-defined]
    assert sum(1 for handle in scheduled if not handle.cancelled()) == 1
    await asyncio.gather(*tasks)
    assert entered == 10_000
    assert now() == 99.0
    # One timer per second of admissions (99 batches after the first), nothing more.
    assert len(armed) == 99
    assert throttler.statistics().waiting == 0


# -- FIFO --------------------------------------------------------------------------------


async def test_admitted_in_arrival_order() -> None:
    """Tasks are admitted strictly in the order they asked."""
    throttler = Throttler(3, 1.0)
    order: list[int] = []

    async def worker(i: int) -> None:
        await asyncio.sleep(i * 0.01)
        async with throttler:
            order.append(i)

    await asyncio.gather(*(worker(i) for i in range(30)))
    assert order == list(range(30))


async def test_late_acquire_exactly_when_a_slot_frees_does_not_overtake() -> None:
    """An acquire() arriving exactly as the window frees queues behind the waiter."""
    throttler = Throttler(1, 1.0)
    order: list[str] = []

    async def late() -> None:
        await asyncio.sleep(1.0)  # its timer was armed before the throttler's
        assert not throttler.try_acquire()
        await throttler.acquire()
        order.append("late")

    late_task = asyncio.create_task(late())
    await throttler.acquire()
    await throttler.acquire()  # waits until 1.0, racing the late task
    order.append("waiter")
    await late_task
    assert order == ["waiter", "late"]
    assert now() == 2.0


async def test_try_acquire_does_not_barge_while_others_wait() -> None:
    """try_acquire() refuses while anyone waits, even if the window has room."""
    throttler = Throttler(2, 1.0, max_concurrency=1)
    assert throttler.try_acquire()
    waiter = asyncio.create_task(throttler.acquire())
    await settle_down()
    assert not throttler.try_acquire()
    assert not throttler.has_capacity()
    throttler.release()
    await waiter
    throttler.release()


# -- cancellation ------------------------------------------------------------------------


async def test_cancel_while_waiting_takes_nothing() -> None:
    """A waiter cancelled in the queue takes no entry and the queue moves on at once."""
    throttler = Throttler(1, 1.0)
    await throttler.acquire()
    doomed = asyncio.create_task(throttler.acquire())
    times: list[float] = []

    async def next_in_line() -> None:
        await throttler.acquire()
        times.append(now())

    nxt = asyncio.create_task(next_in_line())
    await asyncio.sleep(0.5)
    doomed.cancel()
    await nxt
    assert doomed.cancelled()
    assert times == [1.0]
    assert throttler.statistics().in_window == 1


async def test_cancel_head_waiting_on_concurrency_does_not_stall() -> None:
    """Cancelling the head that waits for a slot lets the next take the freed slot."""
    throttler = Throttler(10, 1.0, max_concurrency=1)
    await throttler.acquire()
    head = asyncio.create_task(throttler.acquire())
    nxt = asyncio.create_task(throttler.acquire())
    await settle_down()
    head.cancel()
    await settle_down()
    throttler.release()
    await nxt
    assert throttler.statistics().in_flight == 1
    throttler.release()
    assert throttler.is_idle() is False  # entries still in the window
    await asyncio.sleep(1)
    assert throttler.is_idle()


async def test_cancel_after_wake_before_resume_passes_the_entry_on() -> None:
    """A waiter cancelled right after being woken takes no entry; the next one gets it."""
    throttler = Throttler(1, 1.0)
    throttler.pause(10)
    woken = asyncio.create_task(throttler.acquire())
    times: list[float] = []

    async def next_in_line() -> None:
        await throttler.acquire()
        times.append(now())

    nxt = asyncio.create_task(next_in_line())
    await settle_down()
    throttler.resume()  # admits `woken` synchronously...
    assert throttler.statistics().open == 1
    woken.cancel()  # ...which is cancelled before it ever resumes
    await nxt
    assert woken.cancelled()
    assert times == [0.0]
    stats = throttler.statistics()
    assert (stats.open, stats.in_window, stats.waiting) == (0, 1, 0)


async def test_cancel_after_release_handover_passes_the_slot_on() -> None:
    """A waiter handed a slot by release() and then cancelled gives the slot to the next."""
    throttler = Throttler(10, 1.0, max_concurrency=1)
    await throttler.acquire()
    handed = asyncio.create_task(throttler.acquire())
    nxt = asyncio.create_task(throttler.acquire())
    await settle_down()
    throttler.release()  # hands the slot to `handed`
    handed.cancel()
    await nxt
    assert handed.cancelled()
    stats = throttler.statistics()
    assert (stats.in_flight, stats.in_window, stats.open) == (1, 2, 0)
    throttler.release()


async def test_cancel_entry_after_wake_frees_slot() -> None:
    """open_entry() cancelled right after its wake holds no slot and no place."""
    throttler = Throttler(5, 1.0, max_concurrency=1)
    first = await throttler.open_entry()
    woken = asyncio.create_task(throttler.open_entry())
    await settle_down()
    first.close()  # wakes `woken`
    woken.cancel()
    second = await throttler.open_entry()
    stats = throttler.statistics()
    assert (stats.in_flight, stats.open, stats.in_window) == (1, 1, 2)
    second.close()
    assert woken.cancelled()


async def test_wait_for_around_acquire() -> None:
    """asyncio.wait_for around acquire() times out with nothing taken."""
    throttler = Throttler(1, 10.0)
    await throttler.acquire()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(throttler.acquire(), 0.5)
    assert now() == 0.5
    stats = throttler.statistics()
    assert (stats.waiting, stats.in_window, stats.open) == (0, 1, 0)
    await throttler.acquire()
    assert now() == 10.0


async def test_acquire_timeout_raises_with_nothing_taken() -> None:
    """acquire(timeout=) raises ThrottlerTimeoutError, a TimeoutError, holding nothing."""
    throttler = Throttler(1, 10.0, max_concurrency=5)
    await throttler.acquire()
    with pytest.raises(ThrottlerTimeoutError) as info:
        await throttler.acquire(timeout=2.0)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, asyncio.TimeoutError)
    assert now() == 2.0
    stats = throttler.statistics()
    assert (stats.waiting, stats.in_window, stats.in_flight) == (0, 1, 1)
    throttler.release()


async def test_acquire_timeout_of_the_head_lets_the_next_move() -> None:
    """A head that times out hands the queue to the next waiter, which enters on time."""
    throttler = Throttler(2, 1.0)
    await throttler.acquire()
    await throttler.acquire()

    async def big() -> None:
        await throttler.acquire(2, timeout=0.5)

    big_task = asyncio.create_task(big())
    small = asyncio.create_task(throttler.acquire())
    with pytest.raises(ThrottlerTimeoutError):
        await big_task
    await small
    assert now() == 1.0


async def test_acquire_timeout_long_enough_succeeds() -> None:
    """A timeout that outlasts the wait changes nothing."""
    throttler = Throttler(1, 1.0)
    await throttler.acquire(timeout=0)
    await throttler.acquire(timeout=5)
    assert now() == 1.0


@pytest.mark.parametrize("timeout", [-1.0, math.nan, math.inf], ids=repr)
async def test_acquire_rejects_bad_timeout(timeout: float) -> None:
    """A negative or non-finite timeout is a ValueError even when no wait is needed."""
    throttler = Throttler(1, 1.0)
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds >= 0"):
        await throttler.acquire(timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        await throttler.open_entry(timeout=timeout)
    assert throttler.is_idle()


# -- max_concurrency ---------------------------------------------------------------------


async def test_max_concurrency_caps_tasks_inside() -> None:
    """At most max_concurrency tasks are inside async with at once."""
    throttler = Throttler(100, 1.0, max_concurrency=3)
    inside = peak = 0

    async def worker(i: int) -> None:
        nonlocal inside, peak
        async with throttler:
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.1 * (i % 4 + 1))
            inside -= 1

    await asyncio.gather(*(worker(i) for i in range(20)))
    assert peak == 3
    assert throttler.statistics().in_flight == 0


async def test_leaving_by_exception_or_cancellation_frees_the_slot() -> None:
    """A block left by an exception or a cancellation gives its slot back."""
    throttler = Throttler(100, 1.0, max_concurrency=1)
    with pytest.raises(KeyError):
        async with throttler:
            raise KeyError("boom")

    async def stuck() -> None:
        async with throttler:
            await asyncio.sleep(100)

    task = asyncio.create_task(stuck())
    await asyncio.sleep(1)
    assert throttler.statistics().in_flight == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert throttler.statistics().in_flight == 0
    await asyncio.wait_for(throttler.acquire(), 0.1)
    throttler.release()


async def test_release_pairs_with_acquire() -> None:
    """acquire() takes a slot that release() gives back; one release too many is an error."""
    throttler = Throttler(10, 1.0, max_concurrency=2)
    await throttler.acquire()
    await throttler.acquire()
    blocked = asyncio.create_task(throttler.acquire())
    await asyncio.sleep(5)
    assert not blocked.done()
    throttler.release()
    await blocked
    throttler.release()
    throttler.release()
    with pytest.raises(RuntimeError, match="release"):
        throttler.release()


async def test_release_without_max_concurrency_is_a_no_op() -> None:
    """asyncio-throttle-style code that never releases, or releases freely, keeps working."""
    throttler = Throttler(2, 1.0)
    await throttler.acquire()
    throttler.release()
    throttler.release()
    assert throttler.statistics().in_flight == 0


# -- honest stamps -----------------------------------------------------------------------


async def test_entries_are_stamped_when_the_task_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop stall between wake and resume cannot squeeze extra entries into a window."""
    loop = asyncio.get_running_loop()
    skew = 0.0
    virtual = loop.time
    monkeypatch.setattr(loop, "time", lambda: virtual() + skew)
    throttler = Throttler(2, 1.0)
    times: list[float] = []

    async def worker(i: int) -> None:
        nonlocal skew
        async with throttler:
            times.append(loop.time())
            if i == 2:
                skew += 0.5  # a blocking callback holds the loop for 0.5 s

    await asyncio.gather(*(worker(i) for i in range(8)))
    # Worker 3 was woken at 1.0 with worker 2 but only ran at 1.5, after the stall.
    assert times[:4] == [0.0, 0.0, 1.0, 1.5]
    assert max_in_window(times, 1.0) == 2


@pytest.mark.realclock
@pytest.mark.looptime(False)
async def test_real_clock_with_a_blocking_stall() -> None:
    """On the real clock, with a task blocking the loop mid-batch, no window overflows."""
    throttler = Throttler(3, 0.1)
    times: list[float] = []

    async def worker(i: int) -> None:
        async with throttler:
            times.append(now())
            if i % 4 == 3:
                time.sleep(0.03)  # noqa: ASYNC251 - a blocking call stalls the woken batch

    await asyncio.gather(*(worker(i) for i in range(12)))
    assert max_in_window(times, 0.1) <= 3


# -- latency-proof entries ---------------------------------------------------------------


async def test_entry_counts_from_admission_until_settle_plus_period() -> None:
    """An entry holds its place while open and for period after it settles."""
    throttler = Throttler(1, 1.0)
    async with throttler.entry() as entry:
        assert isinstance(entry, Entry)
        assert (entry.settled, entry.closed) == (False, False)
        await asyncio.sleep(5)
        assert throttler.statistics().wait_time == math.inf
        entry.settle()
        assert (entry.settled, entry.closed) == (True, False)
        await asyncio.sleep(0.25)
    assert (entry.settled, entry.closed) == (True, True)
    await throttler.acquire()
    assert now() == 6.0


async def test_entry_closed_without_settle_is_stamped_at_close() -> None:
    """Leaving the block settles an unsettled entry at that moment."""
    throttler = Throttler(1, 2.0)
    async with throttler.entry():
        await asyncio.sleep(3)
    await throttler.acquire()
    assert now() == 5.0


async def test_open_entry_settle_and_close_are_idempotent() -> None:
    """settle() and close() may be called in any order, any number of times."""
    throttler = Throttler(2, 1.0, max_concurrency=1)
    entry = await throttler.open_entry(2)
    assert repr(entry) == "<Entry cost=2 open>"
    entry.settle()
    entry.settle()
    assert repr(entry) == "<Entry cost=2 settled>"
    assert throttler.statistics().in_flight == 1
    entry.close()
    entry.close()
    entry.settle()
    assert repr(entry) == "<Entry cost=2 closed>"
    stats = throttler.statistics()
    assert (stats.in_flight, stats.open, stats.in_window) == (0, 0, 2)


async def test_entries_hold_for_latency() -> None:
    """Requests whose effect lands any time before settle never overflow a window."""
    throttler = Throttler(3, 1.0)
    rng = random.Random(7)
    spans: list[tuple[float, float]] = []

    async def request() -> None:
        entry = await throttler.open_entry()
        start = now()
        await asyncio.sleep(rng.choice([0.0, 0.05, 0.7, 1.3]))
        entry.settle()
        spans.append((start, now()))
        await asyncio.sleep(0.1)
        entry.close()

    await asyncio.gather(*(request() for _ in range(30)))
    for pick in (0.0, 0.5, 1.0):
        assert max_in_window([a + pick * (s - a) for a, s in spans], 1.0) <= 3


async def test_entry_waits_for_open_entries_to_settle() -> None:
    """With the window full of open entries, the next waits for a settle, then period."""
    throttler = Throttler(2, 1.0)
    first = await throttler.open_entry()
    second = await throttler.open_entry()
    third = asyncio.create_task(throttler.open_entry())
    await asyncio.sleep(10)
    assert not third.done()
    first.settle()
    await asyncio.sleep(0.5)
    assert not third.done()
    entry = await third
    assert now() == 11.0
    for e in (first, second, entry):
        e.close()


# -- smooth mode -------------------------------------------------------------------------


async def test_burst_one_spaces_entries_evenly() -> None:
    """burst=1: consecutive entries are at least period / rate_limit apart."""
    throttler = Throttler(10, 1.0, burst=1)
    times = await run_workers(throttler, 25)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(0.1)
    assert max_in_window(times, 1.0) == 10


async def test_burst_allows_b_back_to_back_then_spaces() -> None:
    """burst=3: three at once, then one per interval, and windows still hold."""
    throttler = Throttler(10, 2.0, burst=3)
    times = await run_workers(throttler, 12)
    assert times[:3] == [0.0, 0.0, 0.0]
    # looptime's clock ticks in microseconds: 0.2 + float error lands on the next tick
    assert times[3:6] == pytest.approx([0.2, 0.4, 0.6], abs=1e-5)
    assert max_in_window(times, 2.0) <= 10


async def test_burst_with_slow_settling_entries() -> None:
    """In smooth mode the next entry is spaced from when an open entry settled."""
    throttler = Throttler(4, 1.0, burst=1)
    first = await throttler.open_entry()
    waiter = asyncio.create_task(throttler.acquire())
    await asyncio.sleep(3)
    assert not waiter.done()
    first.close()
    await waiter
    assert now() == 3.25


# -- weighted entries --------------------------------------------------------------------


async def test_costs_are_admitted_fifo_without_skipping() -> None:
    """A small cost behind a large one waits its turn even when it would fit."""
    throttler = Throttler(10, 1.0)
    order: list[tuple[str, float]] = []

    async def worker(name: str, cost: int, delay: float) -> None:
        await asyncio.sleep(delay)
        await throttler.acquire(cost)
        order.append((name, now()))

    await asyncio.gather(
        worker("a", 8, 0.0), worker("b", 5, 0.1), worker("c", 1, 0.2), worker("d", 4, 0.3)
    )
    assert order == [("a", 0.0), ("b", 1.0), ("c", 1.0), ("d", 1.0)]


async def test_large_cost_at_the_head_is_not_starved() -> None:
    """A full-window cost gets in while a stream of small costs keeps arriving."""
    throttler = Throttler(5, 1.0)
    stop = False
    big_at: list[float] = []

    async def small_stream() -> None:
        while not stop:
            await throttler.acquire()

    async def big() -> None:
        await asyncio.sleep(0.3)
        await throttler.acquire(5)
        big_at.append(now())

    streams = [asyncio.create_task(small_stream()) for _ in range(4)]
    await big()
    stop = True
    await asyncio.sleep(3)
    for task in streams:
        task.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    assert big_at
    assert big_at[0] <= 2.0


@pytest.mark.parametrize(
    ("cost", "error", "match"),
    [
        (6, ValueError, "cost must be at most the smallest limit"),
        (0, ValueError, "cost must be a positive integer, got 0"),
        (-1, ValueError, "cost must be a positive integer"),
        (True, TypeError, "cost must be a positive integer, got True"),
        (1.0, TypeError, "cost must be a positive integer"),
    ],
    ids=repr,
)
async def test_bad_cost(cost: object, error: type[Exception], match: str) -> None:
    """A cost that is not an int from 1 to rate_limit is refused at once."""
    throttler = Throttler(5, 1.0)
    with pytest.raises(error, match=match):
        await throttler.acquire(cost)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        throttler.try_acquire(cost)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        throttler.entry(cost)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        await throttler.open_entry(cost)  # type: ignore[arg-type]
    assert throttler.is_idle()


# -- try_acquire and introspection -------------------------------------------------------


async def test_try_acquire() -> None:
    """try_acquire takes a free entry and never waits."""
    throttler = Throttler(2, 1.0)
    assert throttler.try_acquire()
    assert throttler.try_acquire()
    assert not throttler.try_acquire()
    assert now() == 0.0
    await asyncio.sleep(1)
    assert throttler.try_acquire(2)


async def test_statistics_snapshot() -> None:
    """statistics() reports the live state as a frozen value."""
    throttler = Throttler(2, 1.0, max_concurrency=3, burst=2)
    stats = throttler.statistics()
    assert stats == ThrottlerStatistics(
        rates=(Rate(2, 1.0),),
        burst=2,
        max_concurrency=3,
        waiting=0,
        in_window=0,
        open=0,
        in_flight=0,
        wait_time=0.0,
        paused_for=0.0,
    )
    with pytest.raises(AttributeError):
        stats.waiting = 3  # type: ignore[misc]
    await throttler.acquire()
    entry = await throttler.open_entry()
    waiter = asyncio.create_task(throttler.acquire())
    await settle_down()
    stats = throttler.statistics()
    assert (stats.in_window, stats.open, stats.in_flight, stats.waiting) == (2, 1, 2, 1)
    assert stats.wait_time == 1.0  # the stamped entry leaves; the open one stays
    entry.close()
    await waiter
    throttler.release()
    throttler.release()
    throttler.pause(4)
    stats = throttler.statistics()
    assert stats.paused_for == 4.0
    assert stats.wait_time == 4.0


async def test_has_capacity_and_is_idle() -> None:
    """has_capacity answers for a cost; is_idle only once the window has emptied."""
    throttler = Throttler(3, 1.0)
    assert throttler.is_idle()
    await throttler.acquire(2)
    assert throttler.has_capacity()
    assert not throttler.has_capacity(2)
    assert not throttler.is_idle()
    await asyncio.sleep(1)
    assert throttler.has_capacity(3)
    assert throttler.is_idle()


async def test_repr_shows_live_state() -> None:
    """The repr names the rates, options and current counts."""
    throttler = Throttler(5, 60.0, max_concurrency=2, burst=1)
    await throttler.acquire()
    assert repr(throttler) == (
        "<Throttler 5/min burst=1 max_concurrency=2 in_window=1 open=0 in_flight=1 waiting=0>"
    )
    throttler.release()


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rate_limit": 0}, ValueError, "rate_limit must be a positive integer, got 0"),
        ({"rate_limit": -5}, ValueError, "rate_limit must be a positive integer, got -5"),
        ({"rate_limit": True}, TypeError, "rate_limit must be a positive integer, got True"),
        ({"rate_limit": 2.5}, TypeError, "rate_limit must be a positive integer, got 2.5"),
        ({"rate_limit": "10", "period": None}, ValueError, "cannot parse rate '10'"),
        ({"period": 0}, ValueError, r"period must be a finite number of seconds > 0, got 0"),
        ({"period": -1.0}, ValueError, "period must be a finite number of seconds > 0"),
        ({"period": math.inf}, ValueError, "period must be a finite number of seconds > 0"),
        ({"period": math.nan}, ValueError, "period must be a finite number of seconds > 0"),
        ({"period": "1"}, TypeError, "period must be a finite number of seconds > 0"),
        ({"period": False}, TypeError, "period must be a finite number"),
        ({"period": 10**400}, ValueError, "period must be a finite number of seconds > 0"),
        ({"retry_interval": 10**400}, ValueError, "retry_interval must be a finite number"),
        ({"retry_interval": -0.1}, ValueError, "retry_interval must be a finite number"),
        ({"max_concurrency": 0}, ValueError, "max_concurrency must be an integer from 1"),
        ({"max_concurrency": True}, TypeError, "max_concurrency must be an integer from 1"),
        ({"max_concurrency": 1.5}, TypeError, "max_concurrency must be an integer from 1"),
        ({"burst": 0}, ValueError, "burst must be an integer from 1 to 10, got 0"),
        ({"burst": 11}, ValueError, "burst must be an integer from 1 to 10, got 11"),
        ({"burst": False}, TypeError, "burst must be an integer from 1 to 10"),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else "",
)
def test_constructor_rejects_bad_input(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    """Construction fails with TypeError/ValueError naming the argument and its range."""
    arguments: dict[str, Any] = {"rate_limit": 10, "period": 1.0, **kwargs}
    with pytest.raises(error, match=match):
        Throttler(**arguments)


def test_options_are_keyword_only() -> None:
    """max_concurrency and burst cannot be passed by position."""
    with pytest.raises(TypeError):
        Throttler(10, 1.0, 0.01, 2)  # type: ignore[call-arg]


def test_pause_rejects_bad_seconds() -> None:
    """pause() refuses a negative or non-finite duration."""
    throttler = Throttler(10, 1.0)
    for seconds in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="seconds must be a finite number of seconds >= 0"):
            throttler.pause(seconds)


# -- loops -------------------------------------------------------------------------------

BUILT_AT_IMPORT = Throttler(1000, 1.0)


@pytest.mark.looptime(False)
def test_throttler_built_at_import_works_under_asyncio_run() -> None:
    """A module-level throttler serves one asyncio.run after another."""

    async def use() -> int:
        async with BUILT_AT_IMPORT:
            pass
        await BUILT_AT_IMPORT.acquire()
        return BUILT_AT_IMPORT.statistics().in_window

    first = asyncio.run(use())
    second = asyncio.run(use())
    assert second == first + 2


@pytest.mark.looptime(False)
def test_two_loops_while_busy_raise_runtime_error() -> None:
    """A throttler with a waiter on one loop refuses another loop instead of corrupting."""
    throttler = Throttler(1, 1000.0)
    first = asyncio.new_event_loop()
    second = asyncio.new_event_loop()
    try:
        first.run_until_complete(throttler.acquire())
        waiter = first.create_task(throttler.acquire())
        first.run_until_complete(asyncio.sleep(0))
        with pytest.raises(RuntimeError, match="another event loop"):
            second.run_until_complete(throttler.acquire())
        waiter.cancel()
        first.run_until_complete(asyncio.gather(waiter, return_exceptions=True))
    finally:
        first.close()
    try:
        # Once the first loop is done with it, another loop may take it over.
        assert not second.run_until_complete(_try(throttler))
    finally:
        second.close()


async def _try(throttler: Throttler) -> bool:
    return throttler.try_acquire()


@pytest.mark.looptime(False)
def test_waiters_of_a_closed_loop_do_not_block_the_next_loop() -> None:
    """Tasks stranded on a loop closed under them neither block nor break a new loop."""
    throttler = Throttler(1, 0.01)
    first = asyncio.new_event_loop()
    first.set_exception_handler(lambda loop, context: None)  # "Task was destroyed" noise
    first.run_until_complete(throttler.acquire())
    stranded = first.create_task(throttler.acquire(timeout=60))
    first.run_until_complete(asyncio.sleep(0))
    first.close()  # without cancelling the stranded task
    second = asyncio.new_event_loop()
    try:
        second.run_until_complete(asyncio.wait_for(throttler.acquire(), 5))
        assert throttler.statistics().waiting == 0
    finally:
        second.close()
    del stranded


@pytest.mark.looptime(False)
def test_woken_task_of_a_closed_loop_gives_its_entry_back() -> None:
    """A task admitted but never resumed before its loop closed holds nothing afterwards."""
    throttler = Throttler(1, 0.01, max_concurrency=1)
    first = asyncio.new_event_loop()
    first.set_exception_handler(lambda loop, context: None)  # "Task was destroyed" noise
    first.run_until_complete(asyncio.sleep(0))
    throttler.pause(100)
    woken = first.create_task(throttler.acquire())
    first.run_until_complete(asyncio.sleep(0))
    first.call_soon(throttler.resume)  # admits `woken`, which the loop never runs
    first.call_soon(first.stop)
    first.run_forever()
    first.close()
    assert throttler.statistics().open == 1
    second = asyncio.new_event_loop()
    try:
        second.run_until_complete(asyncio.wait_for(throttler.acquire(), 5))
        stats = throttler.statistics()
        assert (stats.open, stats.in_flight) == (0, 1)
        throttler.release()
    finally:
        second.close()
    del woken


# -- memory ------------------------------------------------------------------------------


async def test_memory_is_bounded_by_rate_limit() -> None:
    """After many entries the ledger keeps at most rate_limit stamps."""
    throttler = Throttler(10, 0.1)
    await run_workers(throttler, 3_000)
    window = throttler._ledger._windows[0]
    assert len(window.stamps) <= 10


# -- asyncio-throttle's scenario ---------------------------------------------------------


@pytest.mark.parametrize(("rate", "workers"), [(5, 5), (20, 35), (50, 100)], ids=str)
async def test_asyncio_throttle_scenario(rate: int, workers: int) -> None:
    """Workers looping over async with never exceed the rate in any window."""
    throttler = Throttler(rate, 1.0)
    times: list[float] = []

    async def worker() -> None:
        while now() < 5.0:
            async with throttler:
                times.append(now())
            await asyncio.sleep(0.001)

    await asyncio.gather(*(worker() for _ in range(workers)))
    assert max_in_window(times, 1.0) == rate
    assert sum(1 for t in times if t < 5.0) >= 5 * rate - 1


# -- several rates -----------------------------------------------------------------------


async def test_from_rates_every_limit_must_allow() -> None:
    """from_rates("2/s", "3/10s"): each window obeys its own limit."""
    throttler = Throttler.from_rates("2/s", "3/10s")
    assert throttler.rates == (Rate(2, 1.0), Rate(3, 10.0))
    assert (throttler.rate_limit, throttler.period) == (2, 1.0)
    times = await run_workers(throttler, 9)
    assert times == [0.0, 0.0, 1.0, 10.0, 10.0, 11.0, 20.0, 20.0, 21.0]
    assert max_in_window(times, 1.0) <= 2
    assert max_in_window(times, 10.0) <= 3


async def test_from_rates_waiting_burns_no_quota() -> None:
    """Waiters cancelled while one limit held them back took nothing from the other."""
    throttler = Throttler.from_rates("1/s; 3/min")
    await throttler.acquire()
    doomed = [asyncio.create_task(throttler.acquire()) for _ in range(4)]
    await asyncio.sleep(0.5)
    for task in doomed:
        task.cancel()
    await asyncio.gather(*doomed, return_exceptions=True)
    times = []
    for _ in range(3):
        await throttler.acquire()
        times.append(now())
    assert times == [1.0, 2.0, 60.0]


def test_from_rates_bad_input() -> None:
    """from_rates validates rates, burst and max_concurrency."""
    with pytest.raises(ValueError, match="cannot parse rate"):
        Throttler.from_rates("ten per second")
    with pytest.raises(ValueError, match="at least one rate"):
        Throttler.from_rates()
    with pytest.raises(ValueError, match="burst must be an integer from 1 to 1000"):
        Throttler.from_rates("10/s", "1000/h", burst=1001)
    with pytest.raises(ValueError, match="max_concurrency"):
        Throttler.from_rates("10/s", max_concurrency=0)
    with pytest.raises(ValueError, match="cost must be at most the smallest limit"):
        Throttler.from_rates("10/s; 5/min").try_acquire(6)


# -- pause, resume, set_rates ------------------------------------------------------------


async def test_pause_holds_waiters_and_resume_releases_them() -> None:
    """pause() admits nothing until it ends; a shorter pause never cuts it; resume() ends it."""
    throttler = Throttler(5, 1.0)
    throttler.pause(10)
    throttler.pause(2)
    assert throttler.paused_for == 10.0
    waiter = asyncio.create_task(throttler.acquire())
    await asyncio.sleep(4)
    assert not waiter.done()
    throttler.resume()
    await waiter
    assert now() == 4.0
    assert throttler.paused_for == 0.0


async def test_pause_during_waits_pushes_the_timer_back() -> None:
    """A pause set while tasks wait on the window delays them until it ends."""
    throttler = Throttler(1, 1.0)
    await throttler.acquire()
    waiter = asyncio.create_task(throttler.acquire())
    await asyncio.sleep(0.5)
    throttler.pause(3)
    await waiter
    assert now() == 3.5


async def test_pause_expires_by_itself() -> None:
    """A pause ends on time with no resume()."""
    throttler = Throttler(1, 1.0)
    throttler.pause(2.5)
    await throttler.acquire()
    assert now() == 2.5


async def test_set_rates_loosening_keeps_the_old_window_for_old_entries() -> None:
    """10/s -> 20/s: a window holding old entries still sees at most 10."""
    throttler = Throttler(10, 1.0)
    times: list[float] = []
    for _ in range(10):
        await throttler.acquire()
        times.append(now())
        await asyncio.sleep(0.05)
    throttler.set_rates("20/s")
    assert throttler.rates == (Rate(20, 1.0),)
    old = len(times)
    times += await run_workers(throttler, 60)
    for start in times:
        inside = [i for i, t in enumerate(times) if start <= t < start + 1.0]
        limit = 10 if any(i < old for i in inside) else 20
        assert len(inside) <= limit
    assert max_in_window(times[old:], 1.0) == 20


async def test_set_rates_tightening_takes_effect_at_once() -> None:
    """10/s -> 5/s after 4 entries: only one more in this second."""
    throttler = Throttler(10, 1.0)
    await run_workers(throttler, 4)
    throttler.set_rates(Rate(5, 1.0))
    assert throttler.try_acquire()
    assert not throttler.try_acquire()
    await throttler.acquire()
    assert now() == 1.0


async def test_set_rates_wakes_waiters_when_loosening() -> None:
    """Waiters queued on the old limit move as soon as the old window lets them."""
    throttler = Throttler(1, 10.0)
    await throttler.acquire()
    waiter = asyncio.create_task(throttler.acquire())
    await asyncio.sleep(1)
    throttler.set_rates("1/s")
    await waiter
    assert now() == 10.0  # the old 1/10s window still holds the first entry


async def test_set_rates_below_a_waiting_cost_fails_that_waiter() -> None:
    """A waiter whose cost no longer fits any window fails instead of blocking forever."""
    throttler = Throttler(10, 1.0)
    await throttler.acquire(10)
    big = asyncio.create_task(throttler.acquire(8))
    small = asyncio.create_task(throttler.acquire(2))
    await asyncio.sleep(0.5)
    throttler.set_rates("5/s")
    with pytest.raises(ValueError, match="cost"):
        await big
    await small
    assert now() == 1.0


async def test_set_rates_validates_burst() -> None:
    """set_rates checks the new burst against the new rates."""
    throttler = Throttler(10, 1.0, burst=5)
    with pytest.raises(ValueError, match="burst must be an integer from 1 to 3"):
        throttler.set_rates("3/s", burst=5)
    assert throttler.rates == (Rate(10, 1.0),)
    throttler.set_rates("3/s", burst=1)
    assert throttler.burst == 1


# -- properties, each example on its own virtual-time loop -------------------------------


@pytest.mark.looptime(False)
@settings(max_examples=40, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=8),
    period=st.sampled_from([0.1, 1.0, 2.0]),
    second=st.none() | st.tuples(st.integers(min_value=2, max_value=12), st.sampled_from([3.0])),
    plan=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.0, 0.05, 0.3]),  # arrival gap
            st.integers(min_value=1, max_value=3),  # cost
            st.none() | st.sampled_from([0.0, 0.01, 0.5, 3.0]),  # cancel after
            st.sampled_from(["acquire", "with", "entry"]),  # how it enters
        ),
        min_size=1,
        max_size=40,
    ),
    concurrency=st.none() | st.integers(min_value=1, max_value=4),
)
def test_property_strict_fifo_cancel_safe(
    rate: int,
    period: float,
    second: tuple[int, float] | None,
    plan: list[tuple[float, int, float | None, str]],
    concurrency: int | None,
) -> None:
    """Any mix of arrivals, costs, rates, entries, cancellations: windows hold, FIFO, no leak."""
    rates = [Rate(rate, period)] + ([Rate(*second)] if second else [])
    smallest = min(r.limit for r in rates)

    async def main() -> None:
        throttler = Throttler.from_rates(rates, max_concurrency=concurrency)
        entered: list[tuple[int, float, int]] = []  # (arrival index, admitted at, cost)
        settled: dict[int, float] = {}  # arrival index -> settled at, for entries
        tasks: list[asyncio.Task[None]] = []
        cancellers: list[asyncio.Handle] = []

        async def worker(i: int, cost: int, how: str) -> None:
            if how == "entry":
                async with throttler.entry(cost) as entry:
                    entered.append((i, now(), cost))
                    await asyncio.sleep(0.15)  # the request's latency
                    entry.settle()
                    settled[i] = now()
                    await asyncio.sleep(0.05)
                return
            if how == "with":
                async with throttler:
                    entered.append((i, now(), 1))
                    await asyncio.sleep(0.2)
                return
            await throttler.acquire(cost)
            entered.append((i, now(), cost))
            try:
                await asyncio.sleep(0.2)
            finally:
                throttler.release()

        loop = asyncio.get_running_loop()
        for i, (gap, cost, cancel_after, how) in enumerate(plan):
            await asyncio.sleep(gap)
            task = asyncio.create_task(worker(i, min(cost, smallest), how))
            tasks.append(task)
            if cancel_after is not None:
                cancellers.append(loop.call_later(cancel_after, task.cancel))
        await asyncio.gather(*tasks, return_exceptions=True)
        costs = [c for *_, c in entered]
        at_settle = [settled.get(i, t) for i, t, _ in entered]
        for r in rates:
            assert max_in_window([t for _, t, _ in entered], r.period, costs) <= r.limit
            assert max_in_window(at_settle, r.period, costs) <= r.limit
        # FIFO: no later arrival enters at an earlier time. (Two admitted at the same moment
        # may resume in either order: the one woken first may run after a later fast path.)
        by_arrival = [t for _, t, _ in sorted(entered)]
        assert by_arrival == sorted(by_arrival)
        assert all(task.cancelled() or task.exception() is None for task in tasks)
        stats = throttler.statistics()
        assert (stats.waiting, stats.open, stats.in_flight) == (0, 0, 0)
        survivors = [i for i, (_, _, cancel, _) in enumerate(plan) if cancel is None]
        assert set(survivors) <= {i for i, _, _ in entered}

    run_virtual(main)


@pytest.mark.looptime(False)
@settings(max_examples=25, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=10),
    period=st.sampled_from([0.5, 1.0, 3.0]),
    workers=st.integers(min_value=1, max_value=30),
    burst=st.none() | st.integers(min_value=1, max_value=10),
)
def test_property_saturated_utilization(
    rate: int, period: float, workers: int, burst: int | None
) -> None:
    """A saturated throttler admits rate_limit per period, no fewer, no more."""
    if burst is not None:
        burst = min(burst, rate)
    horizon = 4 * period

    async def main() -> None:
        throttler = Throttler(rate, period, burst=burst)
        times: list[float] = []

        async def worker() -> None:
            while now() < horizon:
                async with throttler:
                    times.append(now())

        await asyncio.gather(*(worker() for _ in range(workers)))
        made = sum(1 for t in times if t < horizon)
        assert max_in_window(times, period) <= rate
        slack = rate - (burst or rate)  # smooth mode starts with b, not rate, at once
        assert made >= 4 * rate - slack - 1

    run_virtual(main)


def test_a_loop_clock_replaced_on_the_instance_is_the_clock_used() -> None:
    """A simulated clock patched onto a stock loop drives every path, the fast one too."""
    fake = [0.0]  # far from time.monotonic(), so a stamp on the wrong clock shows

    async def scenario() -> None:
        throttler = Throttler(1, 1.0)
        async with throttler:
            pass
        assert not throttler.has_capacity()
        fake[0] += 1.0
        assert throttler.is_idle()
        async with throttler:
            pass
        assert not throttler.has_capacity()
        fake[0] += 1.0
        assert throttler.is_idle()

    loop = asyncio.SelectorEventLoop()
    loop.time = lambda: fake[0]  # type: ignore[method-assign]
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()


@pytest.mark.parametrize("make", [Throttler, SyncThrottler], ids=["async", "sync"])
def test_an_absurd_rate_limit_is_a_value_error_naming_it(make: Callable[..., object]) -> None:
    """A limit no float can divide (10**400) is refused at construction, not by overflow."""
    with pytest.raises(ValueError, match=r"rate_limit must be a positive integer up to 2\*\*62"):
        make(10**400, burst=1)


@pytest.mark.parametrize("make", [Throttler, SyncThrottler], ids=["async", "sync"])
def test_a_rate_string_is_taken_where_an_int_limit_is(make: Callable[..., Any]) -> None:
    """``Throttler("10/s")`` reads the rate as ``ThrottlerMap("10/s")`` does; with period= it
    is a TypeError, as the period would be unused."""
    assert make("10/s").rates == (Rate(10, 1.0),)
    assert make("10/s; 1000/h").rates == (Rate(10, 1.0), Rate(1000, 3600.0))
    assert make(Rate(5, 2.0)).period == 2.0
    assert make(3, 2.0).rates == (Rate(3, 2.0),)
    with pytest.raises(TypeError, match="period= would be unused"):
        make("10/s", 2.0)


# -- running totals ---------------------------------------------------------------------


async def test_statistics_count_every_kind_of_entry_once() -> None:
    """admitted counts each entry once, whatever its cost or the way it was taken."""
    throttler = Throttler(10, 1.0, max_concurrency=10)
    async with throttler:
        pass
    await throttler.acquire(cost=3)
    throttler.release()
    assert throttler.try_acquire()
    throttler.release()
    async with throttler.entry(cost=2):
        pass
    (await throttler.open_entry()).close()
    stats = throttler.statistics()
    assert (stats.admitted, stats.waited_seconds) == (5, 0.0)
    full = Throttler(1, 1.0)
    assert full.try_acquire()
    assert not full.try_acquire()  # refused: not admitted
    assert full.statistics().admitted == 1


async def test_statistics_sum_the_seconds_spent_queued() -> None:
    """waited_seconds adds up every waiter's time in the queue: 0 + 1 + 2 s at 1 per second."""
    throttler = Throttler(1, 1.0)
    await run_workers(throttler, 3)
    stats = throttler.statistics()
    assert stats.admitted == 3
    assert stats.waited_seconds == pytest.approx(3.0, abs=1e-3)
    (await throttler.open_entry()).close()  # waits 1 s on the slow path of open_entry
    stats = throttler.statistics()
    assert stats.admitted == 4
    assert stats.waited_seconds == pytest.approx(4.0, abs=1e-3)


async def test_a_waiter_that_times_out_waited_but_was_not_admitted() -> None:
    """A timed-out waiter adds its wait to waited_seconds and nothing to admitted."""
    throttler = Throttler(1, 10.0)
    await throttler.acquire()
    with pytest.raises(ThrottlerTimeoutError):
        await throttler.acquire(timeout=0.5)
    stats = throttler.statistics()
    assert stats.admitted == 1
    assert stats.waited_seconds == pytest.approx(0.5, abs=1e-3)


async def test_cancel_after_wake_is_not_counted_as_admitted() -> None:
    """A waiter woken and cancelled before it resumed never entered: admitted stays."""
    throttler = Throttler(10, 1.0, max_concurrency=1)
    await throttler.acquire()
    waiter = asyncio.create_task(throttler.acquire())
    await settle_down()
    throttler.release()  # hands the slot to the waiter...
    waiter.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert throttler.statistics().admitted == 1
    assert throttler.statistics().in_flight == 0
