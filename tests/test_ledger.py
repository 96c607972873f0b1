"""The pure ledger, driven by a fake clock: the rules every throttler front end shares."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import pytest
from conftest import max_in_window
from hypothesis import given, settings
from hypothesis import strategies as st

from throttled_http import Rate
from throttled_http._ledger import INF, Ledger


def test_stamp_leaves_window_exactly_at_stamp_plus_period() -> None:
    """An entry stamped at s frees its place at s + period, not a float tick earlier."""
    ledger = Ledger([Rate(1, 0.2)])
    ledger.take(0.1, 1, False)
    edge = 0.1 + 0.2  # 0.30000000000000004
    assert ledger.earliest(0.1, 1) == edge
    assert ledger.earliest(math.nextafter(edge, -INF), 1) == edge
    assert ledger.earliest(edge, 1) == edge


def test_earliest_is_the_stamp_that_makes_room() -> None:
    """With the window full, the earliest admission is when enough old stamps expire."""
    ledger = Ledger([Rate(3, 1.0)])
    for t in (0.0, 0.25, 0.5):
        ledger.take(t, 1, False)
    assert ledger.earliest(0.6, 1) == 1.0
    assert ledger.earliest(0.6, 2) == 1.25
    assert ledger.earliest(0.6, 3) == 1.5
    assert ledger.earliest(1.3, 1) == 1.3


def test_cost_counts_as_that_many_entries() -> None:
    """An entry of cost c takes c places in every window."""
    ledger = Ledger([Rate(5, 1.0)])
    ledger.take(0.0, 4, False)
    assert ledger.in_window(0.0) == 4
    assert ledger.earliest(0.0, 1) == 0.0
    assert ledger.earliest(0.0, 2) == 1.0
    assert not ledger.fits(6)
    assert ledger.fits(5)


def test_open_entry_counts_until_settled_and_period_after() -> None:
    """An open entry holds its place forever; settled at s it holds until s + period."""
    ledger = Ledger([Rate(1, 1.0)])
    generation = ledger.reserve(1, False)
    assert ledger.earliest(0.0, 1) == INF
    assert ledger.earliest(100.0, 1) == INF
    ledger.settle(100.0, 1, generation)
    assert ledger.earliest(100.0, 1) == 101.0
    assert ledger.in_window(100.5) == 1
    assert ledger.in_window(101.0) == 0


def test_unreserve_gives_everything_back() -> None:
    """An open entry that never happened leaves no trace."""
    ledger = Ledger([Rate(1, 1.0)], max_concurrency=1)
    generation = ledger.reserve(1, True)
    assert ledger.earliest(0.0, 1) == INF
    ledger.unreserve(1, True, generation)
    assert ledger.earliest(0.0, 1) == 0.0
    assert ledger.is_idle(0.0)


def test_max_concurrency_waits_for_release() -> None:
    """A full set of slots blocks until a release, regardless of time."""
    ledger = Ledger([Rate(100, 1.0)], max_concurrency=2)
    ledger.take(0.0, 1, True)
    ledger.take(0.0, 1, True)
    assert ledger.earliest(50.0, 1) == INF
    assert ledger.earliest(50.0, 1, hold=False) == 50.0
    ledger.release()
    assert ledger.earliest(50.0, 1) == 50.0
    ledger.release()
    with pytest.raises(RuntimeError, match="release"):
        ledger.release()


def test_pause_delays_and_never_shortens() -> None:
    """A pause delays admission; a shorter one never cuts it short; resume ends it."""
    ledger = Ledger([Rate(10, 1.0)])
    assert ledger.pause_until(5.0)
    assert not ledger.pause_until(3.0)
    assert ledger.earliest(1.0, 1) == 5.0
    assert not ledger.is_idle(1.0)
    ledger.resume()
    assert ledger.earliest(1.0, 1) == 1.0


def test_burst_one_spaces_evenly() -> None:
    """burst=1 admits one entry per interval, measured from the previous stamp."""
    ledger = Ledger([Rate(4, 1.0)], burst=1)
    ledger.take(0.0, 1, False)
    assert ledger.earliest(0.0, 1) == 0.25
    ledger.take(0.3, 1, False)
    assert ledger.earliest(0.3, 1) == pytest.approx(0.55)


def test_burst_allows_b_back_to_back() -> None:
    """burst=b admits b entries at once, then one per interval."""
    ledger = Ledger([Rate(10, 1.0)], burst=3)
    for _ in range(3):
        assert ledger.earliest(0.0, 1) == 0.0
        ledger.take(0.0, 1, False)
    assert ledger.earliest(0.0, 1) == pytest.approx(0.1)


def test_burst_counts_open_entries_as_arriving_now() -> None:
    """In smooth mode an open entry blocks the next until it settles (burst=1)."""
    ledger = Ledger([Rate(10, 1.0)], burst=1)
    generation = ledger.reserve(1, False)
    assert ledger.earliest(0.0, 1) == INF
    ledger.settle(2.0, 1, generation)
    assert ledger.earliest(2.0, 1) == pytest.approx(2.1)


def test_every_rate_must_allow() -> None:
    """With several rates, the strictest one at the moment decides."""
    ledger = Ledger([Rate(2, 1.0), Rate(3, 10.0)])
    ledger.take(0.0, 1, False)
    ledger.take(0.0, 1, False)
    assert ledger.earliest(0.0, 1) == 1.0
    ledger.take(1.0, 1, False)
    assert ledger.earliest(1.0, 1) == 10.0


def test_is_idle() -> None:
    """Idle means nothing in any window, nothing open or held, no pause, no spacing debt."""
    ledger = Ledger([Rate(1, 1.0), Rate(5, 10.0)], burst=1)
    assert ledger.is_idle(0.0)
    ledger.take(0.0, 1, False)
    assert not ledger.is_idle(5.0)
    assert ledger.is_idle(10.0)


def test_set_rates_loosening_keeps_old_window_for_old_entries() -> None:
    """Loosening 10/s to 20/s: a window holding old entries still admits at most 10."""
    ledger = Ledger([Rate(10, 1.0)])
    for i in range(10):
        ledger.take(i / 20, 1, False)  # 0.0 .. 0.45
    ledger.set_rates(0.5, [Rate(20, 1.0)], None)
    assert ledger.earliest(0.5, 1) == 1.0
    ledger.take(1.0, 1, False)
    assert ledger.earliest(1.0, 1) == 1.05
    # Once no old entry can share a window with a new one, the new limit alone applies.
    assert ledger.earliest(1.45, 10) == 1.45


def test_set_rates_retiring_window_waits_for_its_retirement() -> None:
    """A cost only the old, tighter window refuses is admitted when that window retires."""
    ledger = Ledger([Rate(5, 1.0)])
    for _ in range(5):
        ledger.take(0.0, 1, False)
    ledger.set_rates(0.0, [Rate(10, 1.0)], None)
    at = ledger.earliest(0.0, 8)
    assert at == 1.0
    assert ledger.earliest(at, 8) == at


def test_set_rates_retiring_window_with_open_entries() -> None:
    """An old entry still open keeps the old window in force until period after it settles."""
    ledger = Ledger([Rate(2, 1.0)])
    old = ledger.reserve(1, False)
    ledger.set_rates(0.0, [Rate(4, 1.0)], None)
    ledger.take(0.0, 1, False)
    assert ledger.earliest(0.0, 1) == 1.0  # the old 2/s window: 1 open + 1 stamped
    assert ledger.earliest(0.0, 2) == INF  # ... and no time alone makes room for 2
    ledger.settle(3.0, 1, old)
    assert ledger.earliest(3.0, 1) == 3.0
    ledger.take(3.0, 1, False)
    assert ledger.earliest(3.0, 1) == 4.0  # old window still counts both
    assert ledger.earliest(4.0, 3) == 4.0  # ... then retires


def test_set_rates_tightening_counts_recent_entries() -> None:
    """Tightening 10/s to 5/s takes effect at once, counting the entries already made."""
    ledger = Ledger([Rate(10, 1.0)])
    for i in range(4):
        ledger.take(i / 10, 1, False)  # 0.0 .. 0.3
    ledger.set_rates(0.4, [Rate(5, 1.0)], None)
    assert ledger.earliest(0.4, 1) == 0.4
    ledger.take(0.4, 1, False)
    assert ledger.earliest(0.4, 1) == 1.0


def test_set_rates_same_rates_keeps_nothing_retiring() -> None:
    """Setting the same rates again and again costs no extra memory or time."""
    ledger = Ledger([Rate(10, 1.0)])
    ledger.take(0.0, 3, False)
    for _ in range(100):
        ledger.set_rates(0.0, [Rate(10, 1.0)], None)
    assert not ledger._retiring
    assert ledger.earliest(0.0, 7) == 0.0
    assert ledger.earliest(0.0, 8) == 1.0
    assert ledger.is_idle(1.0)
    assert not ledger._retiring


# -- a fake-clock simulation of a FIFO throttler on the ledger -------------------------


@dataclass
class Sim:
    """Drive a ledger as a FIFO throttler would, on a fake clock."""

    ledger: Ledger
    now: float = 0.0
    admitted: list[float] = field(default_factory=list)
    settled: list[float] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)
    generations: list[int] = field(default_factory=list)
    pending: list[tuple[float, int, int, int]] = field(default_factory=list)

    def _settle_next(self) -> None:
        at, index, cost, generation = heapq.heappop(self.pending)
        self.now = max(self.now, at)
        self.ledger.settle(self.now, cost, generation)
        self.settled[index] = self.now

    def admit(self, cost: int, latency: float) -> None:
        """Wait (FIFO) until ``cost`` may enter, then open it for ``latency`` seconds."""
        while True:
            at = self.ledger.earliest(self.now, cost, hold=False)
            if self.pending and self.pending[0][0] <= at:
                self._settle_next()
                continue
            assert at != INF, "the ledger waits on nothing"
            self.now = at
            break
        index = len(self.admitted)
        self.admitted.append(self.now)
        self.costs.append(cost)
        self.settled.append(INF)
        generation = self.ledger.reserve(cost, False)
        self.generations.append(generation)
        if latency == 0:
            self.ledger.settle(self.now, cost, generation)
            self.settled[index] = self.now
        else:
            heapq.heappush(self.pending, (self.now + latency, index, cost, generation))

    def finish(self) -> None:
        while self.pending:
            self._settle_next()


rate_lists = st.lists(
    st.builds(
        Rate,
        st.integers(min_value=1, max_value=12),
        st.sampled_from([0.1, 0.25, 1.0, 1.5, 3.0]),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(
    rates=rate_lists,
    work=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=3),
            st.sampled_from([0.0, 0.0, 0.01, 0.3, 2.0]),
            st.floats(min_value=0.0, max_value=1.0),
        ),
        min_size=1,
        max_size=60,
    ),
    burst=st.none() | st.integers(min_value=1, max_value=4),
)
def test_property_strict_for_any_true_time(
    rates: list[Rate], work: list[tuple[int, float, float]], burst: int | None
) -> None:
    """Whenever in [admission, settle] each entry truly happened, no window overflows."""
    smallest = min(r.limit for r in rates)
    slowest = max(rates, key=lambda r: (r.interval, -r.limit))
    if burst is not None:
        burst = min(burst, slowest.limit)
    sim = Sim(Ledger(rates, burst=burst))
    fractions = []
    for cost, latency, fraction in work:
        sim.admit(min(cost, smallest), latency)
        fractions.append(fraction)
    sim.finish()
    true_times = [
        a + f * (s - a) for a, s, f in zip(sim.admitted, sim.settled, fractions, strict=True)
    ]
    for rate in rates:
        for times in (sim.admitted, sim.settled, true_times):
            assert max_in_window(times, rate.period, sim.costs) <= rate.limit
    assert sim.admitted == sorted(sim.admitted)  # FIFO: admission order is arrival order
    if burst is not None and max(sim.costs) <= burst:
        # Smooth mode: k units of cost, wherever in [admission, settle] they truly landed,
        # span at least (k - burst) intervals. (A cost above burst goes alone, at once.)
        units = sorted(t for t, c in zip(true_times, sim.costs, strict=True) for _ in range(c))
        for i in range(len(units)):
            for j in range(i + burst, len(units)):
                assert units[j] - units[i] >= (j - i + 1 - burst) * slowest.interval - 1e-9


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=20),
    period=st.sampled_from([0.1, 1.0, 2.5]),
    burst=st.none() | st.integers(min_value=1, max_value=20),
    periods=st.integers(min_value=1, max_value=5),
)
def test_property_utilization(limit: int, period: float, burst: int | None, periods: int) -> None:
    """A saturated ledger admits the full limit per period, in windows or in smooth mode."""
    if burst is not None:
        burst = min(burst, limit)
    sim = Sim(Ledger([Rate(limit, period)], burst=burst))
    horizon = periods * period
    while sim.now < horizon:
        sim.admit(1, 0.0)
    made = sum(1 for t in sim.admitted if t < horizon)
    assert made >= periods * limit - (limit - (burst or limit))
    assert made <= periods * limit


@settings(max_examples=100, deadline=None)
@given(
    interval_count=st.integers(min_value=1, max_value=10),
    burst=st.integers(min_value=1, max_value=5),
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.05, 0.5]), min_size=1, max_size=40),
)
def test_property_gcra_spacing(interval_count: int, burst: int, gaps: list[float]) -> None:
    """Smooth mode: any k consecutive entries span at least (k - burst) intervals."""
    burst = min(burst, interval_count)
    rate = Rate(interval_count, 1.0)
    sim = Sim(Ledger([rate], burst=burst))
    for gap in gaps:
        sim.now += gap
        sim.admit(1, 0.0)
    times = sim.settled
    tolerance = 1e-9
    for i in range(len(times)):
        for j in range(i + burst, len(times)):
            assert times[j] - times[i] >= (j - i + 1 - burst) * rate.interval - tolerance


@settings(max_examples=150, deadline=None)
@given(
    before=rate_lists,
    after=rate_lists,
    work=st.lists(
        st.tuples(st.integers(min_value=1, max_value=3), st.sampled_from([0.0, 0.0, 0.2])),
        min_size=2,
        max_size=50,
    ),
    switch=st.integers(min_value=0, max_value=49),
)
def test_property_set_rates_keeps_old_guarantee(
    before: list[Rate],
    after: list[Rate],
    work: list[tuple[int, float]],
    switch: int,
) -> None:
    """After set_rates, every window holding an old entry still obeys the old limits."""
    sim = Sim(Ledger(before))
    smallest = min(r.limit for r in before + after)
    switch = min(switch, len(work) - 1)
    for i, (cost, latency) in enumerate(work):
        if i == switch:
            sim.ledger.set_rates(sim.now, after, None)
        sim.admit(min(cost, smallest), latency)
    sim.finish()
    for rate in before:
        for times in (sim.admitted, sim.settled):
            # The worst window holding an old entry starts at some entry (slide it right).
            for start in times:
                inside = [i for i, t in enumerate(times) if start <= t < start + rate.period]
                if any(i < switch for i in inside):
                    assert sum(sim.costs[i] for i in inside) <= rate.limit
    new_times = sim.settled[switch:]
    for rate in after:
        assert max_in_window(new_times, rate.period, sim.costs[switch:]) <= rate.limit
    remembered = max(r.period for r in before)
    for rate in after:
        if rate.period > remembered:
            continue  # the ledger cannot count entries older than its longest window
        # Tightening takes effect at once: a window holding a new entry counts old ones too.
        for times in (sim.admitted, sim.settled):
            for start in times:
                inside = [i for i, t in enumerate(times) if start <= t < start + rate.period]
                if any(i >= switch for i in inside):
                    assert sum(sim.costs[i] for i in inside) <= rate.limit
