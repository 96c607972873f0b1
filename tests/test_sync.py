"""Tests for the thread-safe SyncThrottler (real threads, real clock, small periods)."""

from __future__ import annotations

import itertools
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from throttled_http import Rate, SyncThrottler, ThrottlerTimeoutError
from throttled_http._sync import SyncEntry  # noqa: TC001 - used at run time in a list


def max_in_window(times: list[float], period: float) -> int:
    """The most timestamps in any half-open window of ``period`` seconds."""
    times = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(times):
        while times[start] + period <= t:
            start += 1
        best = max(best, end - start + 1)
    return best


def acquire_then_record(
    throttler: SyncThrottler, record: list[int], value: int, cost: int = 1
) -> None:
    """Acquire, then append ``value`` to ``record``."""
    throttler.acquire(cost)
    record.append(value)


def wait_for(predicate: object, limit: float = 5.0) -> None:
    """Block until ``predicate()`` is true (test helper for thread hand-offs)."""
    deadline = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


def test_eight_threads_never_exceed_the_window() -> None:
    """Eight threads taking latency-proof entries never put more than the limit in a window."""
    throttler = SyncThrottler(5, 0.2)
    times: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(4):
            with throttler.entry() as entry:
                with lock:
                    times.append(time.monotonic())
                entry.settle()

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(work) for _ in range(8)]:
            future.result()
    assert len(times) == 32
    assert max_in_window(times, 0.2) <= 5
    assert throttler.statistics().in_flight == 0


def test_acquire_stamps_on_return() -> None:
    """Entries from acquire() are stamped as the thread returns, so windows hold."""
    throttler = SyncThrottler(3, 0.15)
    times: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(3):
            throttler.acquire()
            with lock:
                times.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Recording happens just after the stamp; allow no extra entry in a slightly smaller window.
    assert max_in_window(times, 0.14) <= 3


def test_threads_are_admitted_in_arrival_order() -> None:
    """Waiting threads enter strictly first come, first served."""
    throttler = SyncThrottler(1, 0.05)
    throttler.acquire()
    order: list[int] = []
    threads = []
    for i in range(6):
        thread = threading.Thread(target=acquire_then_record, args=(throttler, order, i))
        thread.start()
        wait_for(lambda n=i + 1: throttler.statistics().waiting == n)
        threads.append(thread)
    for thread in threads:
        thread.join()
    assert order == list(range(6))


def test_no_barging_while_someone_waits() -> None:
    """try_acquire() refuses while a thread is queued, even if it would fit."""
    throttler = SyncThrottler(2, 0.2)
    throttler.acquire(2)
    waiter = threading.Thread(target=throttler.acquire, args=(2,))
    waiter.start()
    wait_for(lambda: throttler.statistics().waiting == 1)
    assert not throttler.try_acquire()
    waiter.join()
    assert not throttler.try_acquire()


def test_large_cost_at_the_head_is_not_starved() -> None:
    """A cost-3 entry at the head goes before cost-1 entries queued behind it."""
    throttler = SyncThrottler(3, 0.1)
    throttler.acquire(2)
    order: list[int] = []
    big = threading.Thread(target=acquire_then_record, args=(throttler, order, 3, 3))
    big.start()
    wait_for(lambda: throttler.statistics().waiting == 1)
    small = threading.Thread(target=acquire_then_record, args=(throttler, order, 1))
    small.start()
    big.join()
    small.join()
    assert order == [3, 1]


def test_timeout_takes_nothing_and_the_queue_moves_on() -> None:
    """A waiter that times out holds nothing and does not block those behind it."""
    throttler = SyncThrottler(1, 0.3, max_concurrency=1)
    throttler.acquire()
    with pytest.raises(ThrottlerTimeoutError):
        throttler.acquire(timeout=0.02)
    stats = throttler.statistics()
    assert (stats.waiting, stats.in_flight) == (0, 1)
    throttler.release()
    throttler.acquire(timeout=1.0)
    assert throttler.statistics().in_flight == 1


def test_timeout_of_a_waiter_behind_the_head() -> None:
    """A queued (non-head) waiter that times out leaves the queue intact."""
    throttler = SyncThrottler(1, 0.2)
    throttler.acquire()
    head = threading.Thread(target=throttler.acquire)
    head.start()
    wait_for(lambda: throttler.statistics().waiting == 1)
    with pytest.raises(TimeoutError):
        throttler.acquire(timeout=0.01)
    assert throttler.statistics().waiting == 1
    head.join()
    assert throttler.statistics().waiting == 0


def test_timeout_zero_is_a_single_try() -> None:
    """timeout=0 admits at once when free and raises at once otherwise."""
    throttler = SyncThrottler(1, 10.0)
    throttler.acquire(timeout=0)
    start = time.monotonic()
    with pytest.raises(ThrottlerTimeoutError):
        throttler.acquire(timeout=0)
    assert time.monotonic() - start < 1.0


def test_max_concurrency_holds_across_threads() -> None:
    """No more than max_concurrency threads are inside ``with throttler`` at once."""
    throttler = SyncThrottler(1000, 1.0, max_concurrency=3)
    inside = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(5):
            with throttler:
                with lock:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.005)
                with lock:
                    inside -= 1

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(work) for _ in range(8)]:
            future.result()
    assert most == 3
    assert throttler.statistics().in_flight == 0


def test_entry_close_frees_the_slot_for_a_waiting_thread() -> None:
    """Closing an open entry (from any thread) admits the next waiter at once."""
    throttler = SyncThrottler(100, 1.0, max_concurrency=1)
    entry = throttler.open_entry()
    got: list[SyncEntry] = []
    waiter = threading.Thread(target=lambda: got.append(throttler.open_entry()))
    waiter.start()
    wait_for(lambda: throttler.statistics().waiting == 1)
    assert got == []
    entry.close()
    entry.close()  # idempotent
    waiter.join(2.0)
    assert len(got) == 1
    assert throttler.statistics().in_flight == 1
    got[0].close()
    assert throttler.statistics().in_flight == 0


def test_open_entry_counts_until_settled() -> None:
    """An open entry counts in the window indefinitely, then for period after settle()."""
    throttler = SyncThrottler(1, 0.1)
    entry = throttler.open_entry()
    time.sleep(0.15)
    assert not throttler.has_capacity()
    assert throttler.statistics().open == 1
    entry.settle()
    assert entry.settled
    assert repr(entry) == "<SyncEntry cost=1 settled>"
    assert not throttler.has_capacity()
    time.sleep(0.12)
    assert throttler.has_capacity()
    entry.close()
    assert repr(entry) == "<SyncEntry cost=1 closed>"


def test_waiting_threads_do_not_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight threads blocked for 0.3 s each wake about once: no fixed-interval polling."""
    waits = 0
    lock = threading.Lock()

    class CountingCondition(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            nonlocal waits
            with lock:
                waits += 1
            return super().wait(timeout)

    monkeypatch.setattr("throttled_http._sync.threading.Condition", CountingCondition)
    throttler = SyncThrottler(8, 0.3)
    throttler.acquire(8)
    cpu = time.process_time()
    threads = [threading.Thread(target=throttler.acquire) for _ in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: throttler.statistics().waiting == 8)
    for t in threads:
        t.join()
    assert time.process_time() - cpu < 0.2
    assert throttler.statistics().in_window == 8
    assert waits <= 2 * 8  # a 10 ms poll would wait about 30 times per thread


def test_smooth_mode_spaces_entries() -> None:
    """burst=1 spaces entries at least period / rate_limit apart."""
    throttler = SyncThrottler(10, 0.5, burst=1)
    times = []
    for _ in range(5):
        throttler.acquire()
        times.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.05 - 0.002


def test_pause_blocks_then_resume_admits() -> None:
    """pause() holds every entry back; resume() lets the waiter in at once."""
    throttler = SyncThrottler(10, 1.0)
    throttler.pause(30)
    assert 29 < throttler.paused_for <= 30
    assert not throttler.try_acquire()
    waiter = threading.Thread(target=throttler.acquire)
    waiter.start()
    wait_for(lambda: throttler.statistics().waiting == 1)
    throttler.resume()
    waiter.join(2.0)
    assert not waiter.is_alive()
    assert throttler.paused_for == 0


def test_set_rates_tightening_applies_at_once() -> None:
    """After set_rates to a tighter limit, entries already in the window count against it."""
    throttler = SyncThrottler(10, 1.0)
    for _ in range(3):
        throttler.acquire()
    throttler.set_rates("2/s")
    assert throttler.rates == (Rate(2, 1.0),)
    assert not throttler.try_acquire()


def test_set_rates_below_a_waiting_cost_fails_that_waiter() -> None:
    """A thread whose cost no longer fits any window fails; the one behind it goes on."""
    throttler = SyncThrottler(10, 0.2)
    throttler.acquire(10)
    outcome: dict[str, object] = {}

    def big() -> None:
        try:
            throttler.acquire(8, timeout=5)
            outcome["big"] = "admitted"
        except ValueError as exc:
            outcome["big"] = exc

    first = threading.Thread(target=big)
    first.start()
    while not throttler.statistics().waiting:
        time.sleep(0.001)
    second = threading.Thread(target=lambda: throttler.acquire(2, timeout=5))
    second.start()
    while throttler.statistics().waiting < 2:
        time.sleep(0.001)
    throttler.set_rates("5/0.2s")
    first.join(5)
    second.join(5)
    assert isinstance(outcome["big"], ValueError)
    assert "cost" in str(outcome["big"])
    assert not first.is_alive()
    assert not second.is_alive()
    assert throttler.statistics().waiting == 0


def test_from_rates_requires_every_rate() -> None:
    """from_rates() admits only what every limit allows."""
    throttler = SyncThrottler.from_rates("5/s", "2/10s")
    assert throttler.try_acquire()
    assert throttler.try_acquire()
    assert not throttler.try_acquire()


def test_is_idle_and_statistics() -> None:
    """A fresh throttler is idle; statistics report what is held."""
    throttler = SyncThrottler(2, 0.05, max_concurrency=2, burst=2)
    assert throttler.is_idle()
    with throttler:
        stats = throttler.statistics()
        assert (stats.in_window, stats.in_flight, stats.max_concurrency) == (1, 1, 2)
        assert not throttler.is_idle()
    time.sleep(0.06)
    assert throttler.is_idle()
    assert "SyncThrottler 2/0.05s burst=2 max_concurrency=2" in repr(throttler)
    assert (throttler.rate_limit, throttler.period, throttler.burst) == (2, 0.05, 2)


def test_release_without_max_concurrency_is_a_no_op() -> None:
    """release() is a no-op without max_concurrency; too many releases raise with it."""
    SyncThrottler(1).release()
    throttler = SyncThrottler(1, max_concurrency=1)
    with pytest.raises(RuntimeError, match="release"):
        throttler.release()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"rate_limit": 0}, "rate_limit must be a positive integer, got 0", id="rate0"),
        pytest.param({"rate_limit": 1, "period": 0}, "period must be a finite", id="period0"),
        pytest.param(
            {"rate_limit": 2, "burst": 3}, "burst must be an integer from 1 to 2", id="burst"
        ),
        pytest.param(
            {"rate_limit": 2, "max_concurrency": 0},
            "max_concurrency must be an integer from 1",
            id="concurrency",
        ),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    """Construction names the argument, its range and the value received."""
    with pytest.raises(ValueError, match=message):
        SyncThrottler(**kwargs)


def test_cost_larger_than_the_limit_is_rejected() -> None:
    """A cost that could never be admitted raises instead of waiting forever."""
    throttler = SyncThrottler(3)
    with pytest.raises(ValueError, match="cost must be at most the smallest limit"):
        throttler.acquire(4)
    with pytest.raises(ValueError, match="timeout must be"):
        throttler.acquire(timeout=-1)


def test_mixed_costs_timeouts_and_entries_under_contention() -> None:
    """Random costs, timeouts and latency-proof entries from 8 threads keep every promise."""
    throttler = SyncThrottler(6, 0.1, max_concurrency=4)
    stamps: list[tuple[float, int]] = []
    lock = threading.Lock()

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(8):
            cost = rng.randint(1, 3)
            try:
                entry = throttler.open_entry(cost, timeout=rng.choice([None, 0.0, 0.02]))
            except ThrottlerTimeoutError:
                continue
            with lock:
                stamps.append((time.monotonic(), cost))
            entry.settle()
            time.sleep(rng.random() * 0.01)
            entry.close()

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(work, seed) for seed in range(8)]:
            future.result()
    times = sorted(stamps)
    worst = 0
    for i, (start, _) in enumerate(times):
        worst = max(worst, sum(c for t, c in times[i:] if t < start + 0.1))
    assert worst <= 6
    stats = throttler.statistics()
    assert (stats.waiting, stats.open, stats.in_flight) == (0, 0, 0)


def test_statistics_count_entries_and_seconds_queued() -> None:
    """admitted counts each entry once; waited_seconds the time threads spent queued."""
    throttler = SyncThrottler(2, 0.2, max_concurrency=5)
    with throttler:
        pass
    throttler.open_entry(cost=2).close()  # the window is full for 0.2 s now
    assert not throttler.try_acquire()
    with throttler.entry():  # queued until the window has room
        pass
    stats = throttler.statistics()
    assert stats.admitted == 3
    assert 0.1 < stats.waited_seconds < 5.0
    with pytest.raises(ThrottlerTimeoutError):
        throttler.acquire(cost=2, timeout=0.05)
    after = throttler.statistics()
    assert after.admitted == 3
    assert after.waited_seconds >= stats.waited_seconds + 0.04
