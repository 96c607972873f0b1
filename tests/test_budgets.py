"""Budgets in several units, bucket mode and reconciliation (`throttled_http._budgets`).

Everything runs on looptime's virtual clock. The yardsticks: `max_in_window` per unit for
sliding windows, and `bucket_deficit` (a server's token bucket replayed over the times the
client's entries could have reached it) for bucket mode.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

import pytest
from conftest import max_in_window, run_virtual
from hypothesis import given, settings
from hypothesis import strategies as st

from throttled_http import Rate, SyncThrottler, Throttler

if TYPE_CHECKING:
    from collections.abc import Iterable

pytestmark = pytest.mark.looptime(idle_timeout=1.0, idle_step=0.01)


def now() -> float:
    return asyncio.get_running_loop().time()


def bucket_deficit(events: Iterable[tuple[float, int]], capacity: int, period: float) -> float:
    """The most a server's bucket (full at first) would go below empty; 0 if never."""
    rate = capacity / period
    level = float(capacity)
    last = None
    worst = 0.0
    for at, cost in sorted(events):
        if last is not None:
            level = min(capacity, level + (at - last) * rate)
        last = at
        level -= cost
        worst = min(worst, level)
    return -worst


# -- construction and costs --------------------------------------------------------------


def test_budgets_are_checked_at_construction() -> None:
    with pytest.raises(TypeError, match="budgets must be a mapping"):
        Throttler(10, budgets="1000/min")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identifier"):
        Throttler(10, budgets={"output tokens": "1/s"})
    with pytest.raises(ValueError, match="'requests' is the throttler's own unit"):
        Throttler(10, budgets={"requests": "1/s"})
    with pytest.raises(TypeError, match=r"budgets\['tokens'\]: give a rate with its period"):
        Throttler(10, budgets={"tokens": 30000})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"budgets\['tokens'\]"):
        Throttler(10, budgets={"tokens": "lots"})
    with pytest.raises(TypeError, match="bucket=True and burst="):
        Throttler(10, bucket=True, burst=2)
    with pytest.raises(TypeError, match="bucket must be True or False"):
        Throttler(10, bucket="yes")  # type: ignore[arg-type]


def test_the_repr_shows_bucket_mode_and_budgets() -> None:
    throttler = Throttler(60, 60.0, budgets={"tokens": "30000/min; 1000000/day"}, bucket=True)
    assert "60/min bucket tokens=30000/min; 1000000/d " in repr(throttler)


async def test_a_typo_in_a_unit_is_answered_with_the_likely_name() -> None:
    throttler = Throttler(10, budgets={"tokens": "100/s"})
    with pytest.raises(ValueError, match=r"'token' .*did you mean 'tokens'\?"):
        await throttler.acquire({"token": 1})
    entry = await throttler.open_entry({"tokens": 1})
    with pytest.raises(ValueError, match=r"\(its units: 'requests', 'tokens'\); did you mean"):
        entry.reconcile({"tokenz": 1})
    entry.close()


def test_the_configuration_reads_back() -> None:
    throttler = Throttler(60, 60.0, budgets={"tokens": "30000/min; 1000000/day"}, bucket=True)
    assert throttler.budgets == {"tokens": (Rate(30000, 60), Rate(1000000, 86400))}
    assert throttler.bucket
    assert Throttler(10).budgets == {}
    assert not Throttler(10).bucket
    made = Throttler.from_rates("60/min", budgets={"tokens": "1000/min"})
    assert made.budgets == {"tokens": (Rate(1000, 60),)}
    assert SyncThrottler(5, budgets={"tokens": "10/s"}, bucket=True).bucket


async def test_costs_per_unit_are_checked_before_any_wait() -> None:
    throttler = Throttler(10, budgets={"tokens": "1000/min"})
    with pytest.raises(
        ValueError, match=r"cost\['tokens'\] must be at most the smallest tokens limit \(1000\)"
    ):
        await throttler.acquire({"tokens": 1001})
    with pytest.raises(ValueError, match=r"no budget for: 'tokenz'.*'requests', 'tokens'"):
        await throttler.acquire({"tokenz": 1})
    with pytest.raises(TypeError, match=r"cost\['tokens'\] must be an int"):
        await throttler.acquire({"tokens": 1.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"cost\['tokens'\] must be between 0"):
        await throttler.acquire({"tokens": -1})
    with pytest.raises(ValueError, match=r"cost\['requests'\] must be between 1"):
        await throttler.acquire({"requests": 0, "tokens": 1})
    with pytest.raises(ValueError, match="smallest limit"):
        throttler.entry({"requests": 11})
    with pytest.raises(TypeError, match="needs a throttler with budgets"):
        await Throttler(10).acquire({"tokens": 5})
    assert throttler.statistics().waiting == 0


# -- admission -------------------------------------------------------------------------


async def test_tokens_bind_and_the_requests_wait_with_them() -> None:
    throttler = Throttler(100, 60.0, budgets={"tokens": "1000/min"})
    times = []
    for _ in range(5):
        await throttler.acquire({"tokens": 400})
        times.append(now())
    assert times == [0.0, 0.0, 60.0, 60.0, 120.0]
    assert throttler.statistics().budgets_in_use == {"tokens": 400.0}


async def test_a_waiter_holds_nothing_of_one_unit_while_it_waits_for_another() -> None:
    throttler = Throttler(3, 10.0, budgets={"tokens": "100/10s"})
    await throttler.acquire({"tokens": 90})
    waiter = asyncio.create_task(throttler.acquire({"tokens": 50}))
    await asyncio.sleep(1)
    stats = throttler.statistics()
    assert (stats.waiting, stats.in_window, stats.open) == (1, 1, 0)
    assert stats.budgets_in_use == {"tokens": 90.0}
    await waiter
    assert now() == 10.0


async def test_admission_is_fifo_across_units() -> None:
    throttler = Throttler(10, 10.0, budgets={"tokens": "100/10s"})
    await throttler.acquire({"tokens": 100})
    order: list[str] = []

    async def ask(name: str, cost: dict[str, int]) -> None:
        await throttler.acquire(cost)
        order.append(name)

    big = asyncio.create_task(ask("big", {"tokens": 100}))
    await asyncio.sleep(0)
    small = asyncio.create_task(ask("small", {"tokens": 0}))  # would fit now: must not barge
    await asyncio.gather(big, small)
    assert order == ["big", "small"]


async def test_an_int_cost_charges_requests_only() -> None:
    throttler = Throttler(2, 1.0, budgets={"tokens": "10/s"})
    await throttler.acquire()
    await throttler.acquire({"tokens": 10})
    assert throttler.statistics().in_window == 2
    assert throttler.statistics().budgets_in_use == {"tokens": 10.0}


async def test_a_cancelled_waiter_gives_back_every_unit() -> None:
    throttler = Throttler(5, 10.0, budgets={"tokens": "100/10s", "images": "2/10s"})
    await throttler.acquire({"tokens": 60})
    waiter = asyncio.create_task(throttler.acquire({"tokens": 60, "images": 2}))
    await asyncio.sleep(1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    stats = throttler.statistics()
    assert stats.budgets_in_use == {"tokens": 60.0, "images": 0.0}
    assert (stats.waiting, stats.open) == (0, 0)
    assert throttler.try_acquire({"tokens": 40, "images": 2})


async def test_open_entries_count_in_every_unit_until_settled() -> None:
    throttler = Throttler(10, 1.0, budgets={"tokens": "100/s"})
    entry = await throttler.open_entry({"tokens": 70})
    assert throttler.statistics().budgets_in_use == {"tokens": 70.0}
    assert not throttler.has_capacity({"tokens": 31})
    await asyncio.sleep(5)  # still open: counted, whatever the time
    assert not throttler.has_capacity({"tokens": 31})
    entry.settle()
    await asyncio.sleep(0.999)
    assert not throttler.has_capacity({"tokens": 31})
    await asyncio.sleep(0.002)
    assert throttler.has_capacity({"tokens": 100})
    entry.close()
    assert throttler.is_idle()


# -- bucket mode -------------------------------------------------------------------------


async def test_a_bucket_refills_continuously() -> None:
    throttler = Throttler(60, 60.0, bucket=True)  # one per second, 60 at once
    for _ in range(60):
        assert throttler.try_acquire()
    assert not throttler.try_acquire()
    times = []
    for _ in range(3):
        await throttler.acquire()
        times.append(round(now(), 6))
    assert times == [1.0, 2.0, 3.0]  # a sliding window would have waited a whole minute


async def test_a_bucket_counts_from_when_the_response_arrives() -> None:
    throttler = Throttler(1, 10.0, budgets={"tokens": "100/10s"}, bucket=True)
    entry = await throttler.open_entry({"tokens": 100})
    await asyncio.sleep(30)  # awaiting headers: the tokens are not refilling yet
    assert not throttler.has_capacity({"requests": 1})
    entry.settle()
    entry.close()
    started = now()
    await throttler.acquire({"tokens": 50})
    assert now() - started == pytest.approx(10.0)  # the request bucket: 1 per 10 s


async def test_set_rates_retunes_a_bucket_without_refilling_it() -> None:
    throttler = Throttler(10, 1.0, bucket=True)
    for _ in range(10):
        assert throttler.try_acquire()
    throttler.set_rates("20/s")
    assert throttler.rates == (Rate(20, 1.0),)
    assert not throttler.try_acquire()
    await asyncio.sleep(0.5)
    assert sum(throttler.try_acquire() for _ in range(20)) == 10


# -- reconciliation --------------------------------------------------------------------


async def test_a_credit_lets_the_next_entry_in_sooner() -> None:
    throttler = Throttler(10, 60.0, budgets={"output_tokens": "1000/min"})
    entry = await throttler.open_entry({"output_tokens": 1000})
    entry.settle()
    waiter = asyncio.create_task(throttler.acquire({"output_tokens": 500}))
    await asyncio.sleep(5)
    assert not waiter.done()
    entry.reconcile({"output_tokens": 200})
    await waiter
    assert now() == 5.0
    entry.reconcile({"output_tokens": 200})  # the same total again: nothing changes
    assert throttler.statistics().budgets_in_use == {"output_tokens": 700.0}
    entry.close()


async def test_a_debit_delays_the_next_entry() -> None:
    throttler = Throttler(10, 10.0, budgets={"tokens": "100/10s"})
    async with throttler.entry({"tokens": 10}) as entry:
        entry.settle()
        entry.reconcile({"tokens": 90})
    assert not throttler.has_capacity({"tokens": 20})
    assert throttler.has_capacity({"tokens": 10})


async def test_reconciling_an_open_entry_changes_its_reservation() -> None:
    throttler = Throttler(10, 10.0, budgets={"tokens": "100/10s"}, bucket=True)
    entry = await throttler.open_entry({"tokens": 80})
    entry.reconcile({"tokens": 30})
    assert throttler.statistics().budgets_in_use == {"tokens": 30.0}
    entry.close()
    assert throttler.statistics().budgets_in_use == {"tokens": 30.0}


async def test_a_bucket_credit_is_replayed_where_the_charge_was_made() -> None:
    # Charge 100 at t=0, then 50 at t=50 (refilled by then); crediting the first charge at
    # t=50 must not refill the bucket beyond what the second charge left: 100 - 50.
    throttler = Throttler(10, 100.0, budgets={"tokens": "100/100s"}, bucket=True)
    first = await throttler.open_entry({"tokens": 100})
    first.settle()
    await asyncio.sleep(50)
    await throttler.acquire({"tokens": 50})
    first.reconcile({"tokens": 0})
    assert throttler.statistics().budgets_in_use == {"tokens": pytest.approx(50.0)}
    first.close()


async def test_an_int_cost_entry_can_be_reconciled_into_a_unit() -> None:
    throttler = Throttler(10, 10.0, budgets={"tokens": "100/10s"})
    async with throttler.entry() as entry:
        entry.settle()
    entry.reconcile({"tokens": 60})
    assert throttler.statistics().budgets_in_use == {"tokens": 60.0}
    assert entry.costs == {"requests": 1, "tokens": 60}


async def test_reconcile_refuses_what_it_cannot_charge() -> None:
    throttler = Throttler(10, budgets={"tokens": "100/s"})
    entry = await throttler.open_entry({"tokens": 5})
    with pytest.raises(ValueError, match="no budget for: 'images'"):
        entry.reconcile({"images": 1})
    with pytest.raises(ValueError, match="request's count cannot be reconciled"):
        entry.reconcile({"requests": 2})
    with pytest.raises(ValueError, match=r"actual\['tokens'\] must be between 0"):
        entry.reconcile({"tokens": -5})
    with pytest.raises(RuntimeError, match="not admitted yet"):
        throttler.entry({"tokens": 1}).reconcile({"tokens": 1})
    plain = await Throttler(10).open_entry()
    with pytest.raises(ValueError, match="no budgets"):
        plain.reconcile({"tokens": 1})
    entry.close()
    plain.close()


def test_the_sync_throttler_has_budgets_and_reconciles() -> None:
    throttler = SyncThrottler(10, 0.2, budgets={"tokens": "100/0.2s"})
    first = throttler.open_entry({"tokens": 100})
    first.settle()
    admitted = threading.Event()

    def second() -> None:
        throttler.acquire({"tokens": 50})
        admitted.set()

    thread = threading.Thread(target=second)
    started = time.monotonic()
    thread.start()
    assert not admitted.wait(0.05)
    first.reconcile({"tokens": 10})
    assert admitted.wait(5)
    thread.join()
    assert time.monotonic() - started < 0.19  # admitted by the credit, not by the window
    first.close()
    assert throttler.statistics().budgets_in_use == {"tokens": 60.0}


# -- properties --------------------------------------------------------------------------

_PLAN = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.05, 0.3]),  # arrival gap
        st.integers(min_value=0, max_value=60),  # tokens
        st.integers(min_value=0, max_value=3),  # images
        st.none() | st.sampled_from([0.0, 0.01, 0.5, 3.0]),  # cancel after
        st.none() | st.integers(min_value=0, max_value=60),  # reconciled tokens
    ),
    min_size=1,
    max_size=30,
)


@pytest.mark.looptime(False)
@settings(max_examples=40, deadline=None)
@given(
    requests=st.integers(min_value=1, max_value=6),
    period=st.sampled_from([0.5, 1.0, 2.0]),
    bucket=st.booleans(),
    plan=_PLAN,
)
def test_property_every_unit_strict_fifo_cancel_safe(
    requests: int,
    period: float,
    bucket: bool,
    plan: list[tuple[float, int, int, float | None, int | None]],
) -> None:
    """Any mix of costs, cancellations and reconciliations: every unit holds, FIFO, no leak."""
    tokens_limit, images_limit = 100, 4

    async def main() -> None:
        throttler = Throttler(
            requests,
            period,
            budgets={"tokens": f"{tokens_limit}/{period}s", "images": f"{images_limit}/{period}s"},
            bucket=bucket,
        )
        # (arrival index, admitted at, settled at, final costs)
        entered: list[tuple[int, float, float, dict[str, int]]] = []
        tasks: list[asyncio.Task[None]] = []

        async def worker(i: int, cost: dict[str, int], actual: int | None) -> None:
            async with throttler.entry(cost) as entry:
                admitted_at = now()
                await asyncio.sleep(0.15)  # the request's latency
                entry.settle()
                settled_at = now()
                if actual is not None:
                    await asyncio.sleep(0.05)  # the body, then its usage
                    # A credit (a debit happened at the server already: no client can
                    # undo it; test_a_debit_delays_the_next_entry covers what follows).
                    entry.reconcile({"tokens": min(actual, cost["tokens"])})
                entered.append((i, admitted_at, settled_at, entry.costs))

        loop = asyncio.get_running_loop()
        for i, (gap, tokens, images, cancel_after, actual) in enumerate(plan):
            await asyncio.sleep(gap)
            task = asyncio.create_task(worker(i, {"tokens": tokens, "images": images}, actual))
            tasks.append(task)
            if cancel_after is not None:
                loop.call_later(cancel_after, task.cancel)
        await asyncio.gather(*tasks, return_exceptions=True)
        for unit, limit in (
            ("requests", requests),
            ("tokens", tokens_limit),
            ("images", images_limit),
        ):
            for settling in (False, True):  # counted at admission, or at settling
                events = [(e[2] if settling else e[1], e[3].get(unit, 0)) for e in entered]
                if bucket:
                    assert bucket_deficit(events, limit, period) <= 1e-6, unit
                else:
                    times = [t for t, _ in events]
                    assert max_in_window(times, period, [c for _, c in events]) <= limit, unit
        by_arrival = [admitted for _, admitted, _, _ in sorted(entered)]
        assert by_arrival == sorted(by_arrival)
        stats = throttler.statistics()
        assert (stats.waiting, stats.open, stats.in_flight) == (0, 0, 0)
        assert all(task.cancelled() or task.exception() is None for task in tasks)

    run_virtual(main)


@pytest.mark.looptime(False)
@settings(max_examples=20, deadline=None)
@given(
    limit=st.integers(min_value=5, max_value=50),
    period=st.sampled_from([1.0, 2.0]),
    cost=st.integers(min_value=1, max_value=5),
)
def test_property_a_saturated_bucket_admits_its_capacity_plus_its_refill(
    limit: int, period: float, cost: int
) -> None:
    """Bucket mode wastes nothing: over T seconds it admits limit + T * limit / period."""

    async def main() -> None:
        throttler = Throttler(1000, 1.0, budgets={"tokens": f"{limit}/{period}s"}, bucket=True)
        spent = 0
        horizon = 10 * period
        while True:
            await throttler.acquire({"tokens": cost})
            if now() > horizon:
                break
            spent += cost
        allowed = limit + horizon * limit / period
        assert allowed - cost <= spent <= allowed

    run_virtual(main)


# -- regressions -------------------------------------------------------------------------


async def test_set_rates_in_bucket_mode_loosens_nothing_already_used() -> None:
    throttler = Throttler.from_rates("10/s", "20/min", bucket=True)
    for _ in range(20):
        await throttler.acquire()
    started = now()
    throttler.set_rates("10/s", "20/min")  # the same rates: the 20/min bucket stays empty
    assert not throttler.try_acquire()
    await throttler.acquire()
    # 20 taken in the first second, when 1/3 had refilled: 2/3 more of one takes 2 s.
    assert now() - started == pytest.approx(2.0, abs=0.01)


async def test_set_rates_on_a_fresh_bucket_refills_at_the_new_rate() -> None:
    throttler = Throttler(10, 1.0, bucket=True)
    throttler.set_rates("100/s")
    await asyncio.wait_for(throttler.acquire(50), timeout=1.0)
    await asyncio.sleep(2.0)
    assert throttler.is_idle()


async def test_set_rates_in_bucket_mode_takes_no_burst() -> None:
    throttler = Throttler(10, 1.0, bucket=True)
    with pytest.raises(TypeError, match="bucket mode takes no burst"):
        throttler.set_rates("10/s", burst=2)


async def test_a_late_debit_survives_a_later_credit() -> None:
    throttler = Throttler(10, 100.0, budgets={"tokens": "100/100s"}, bucket=True)
    old = await throttler.open_entry({"tokens": 10})
    old.settle()
    await asyncio.sleep(150)  # its charge has aged out of the bucket's memory
    recent = await throttler.open_entry({"tokens": 10})
    recent.settle()
    old.reconcile({"tokens": 60})  # a debit of 50, charged now
    recent.reconcile({"tokens": 9})  # a credit of 1 must not undo it
    assert throttler.statistics().budgets_in_use == {"tokens": pytest.approx(59.0)}
    old.close()
    recent.close()


def test_a_sync_reconcile_racing_a_settle_counts_once() -> None:
    throttler = SyncThrottler(1000, 1.0, budgets={"tokens": "100000/s"})
    for _ in range(200):
        entry = throttler.open_entry()
        racer = threading.Thread(target=entry.settle)
        racer.start()
        entry.reconcile({"tokens": 7})
        racer.join()
        entry.close()
    assert throttler.statistics().open == 0
    assert throttler.statistics().budgets_in_use == {"tokens": pytest.approx(1400.0)}
