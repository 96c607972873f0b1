"""Adaptation (FeedbackPolicy(adapt=True)) on virtual time: events, cuts, hold, probes, floor.

The end-to-end behaviour against real servers is in ``test_convergence.py``; here the
policy is driven response by response, with a real :class:`~throttled_http.Throttler`, and
with a recording fake for the property tests.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import TYPE_CHECKING
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_feedback import FakeExchange

from throttled_http import FeedbackPolicy, Rate, Throttler, parse_feedback
from throttled_http._adapt import minimal_rates
from throttled_http._holding import Holds
from throttled_http._pipeline import Pipeline
from throttled_http._rates import parse_rates

if TYPE_CHECKING:
    from throttled_http._rates import RatesLike

KEY = "http://h.test:80"


def ok(policy: FeedbackPolicy, throttler: Throttler, count: int = 1) -> None:
    """``count`` responses the server accepted."""
    for _ in range(count):
        policy.observe(throttler, KEY, 200, {})


def implied(rate: Rate, rates: tuple[Rate, ...]) -> bool:
    """Whether some rate of ``rates`` is at least as strict as ``rate``."""
    return any(r.period >= rate.period and r.limit <= rate.limit for r in rates)


# -- every refusal is a signal -----------------------------------------------------------


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("status", "headers", "pause"),
    [
        pytest.param(429, {"Retry-After": "2"}, 2.0, id="429-retry-after"),
        pytest.param(429, {}, 1.0, id="429-bare-pauses-one-period"),
        pytest.param(503, {"Retry-After": "3"}, 3.0, id="503-retry-after"),
        pytest.param(503, {}, 1.0, id="503-bare"),
        pytest.param(429, {"retry-after-ms": "1500"}, 1.5, id="429-retry-after-ms"),
        pytest.param(
            429,
            {
                "x-ratelimit-limit-requests": "100",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "10s",
            },
            0.1,
            id="429-openai-bucket",
        ),
    ],
)
async def test_every_refusal_pauses_and_cuts(
    status: int, headers: dict[str, str], pause: float
) -> None:
    """A 429 or 503, whatever it carries, pauses the host and lowers its pace."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    ok(policy, throttler, 8)
    policy.observe(throttler, KEY, status, headers)
    assert throttler.paused_for == pytest.approx(pause)
    assert throttler.rates == (Rate(5, 1.0),)  # 10 x 0.5, and 8 were getting through
    assert policy.statistics().rate_cuts == 1


@pytest.mark.looptime
async def test_the_cut_is_at_most_what_got_through() -> None:
    """Refused at 10/s with 3 getting through: the pace is 3/s, not 5/s."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    ok(policy, throttler, 3)
    policy.observe(throttler, KEY, 429, {"Retry-After": "1"})
    assert throttler.rates == (Rate(3, 1.0),)
    assert policy.statistics().by_key[KEY].pace == Rate(3, 1.0)


@pytest.mark.looptime
async def test_answers_still_in_flight_count_once_the_pause_ends() -> None:
    """A refusal that arrives before the accepted answers of its burst: they count when
    they land during the pause, and the cut settles on them before more is sent."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    policy.observe(throttler, KEY, 429, {"Retry-After": "1"})  # nothing counted yet: 5/s
    assert throttler.rates == (Rate(5, 1.0),)
    ok(policy, throttler, 3)  # the rest of the burst, answered while paused
    await asyncio.sleep(1.0)
    policy.admitted(throttler, KEY)  # the first request after the pause
    assert throttler.rates == (Rate(3, 1.0),)


@pytest.mark.looptime
async def test_a_burst_of_refusals_is_one_congestion_event() -> None:
    """Twenty refusals answering one burst cut once; one after the pause cuts again."""
    throttler = Throttler(16, 1.0)
    policy = FeedbackPolicy(adapt=True)
    ok(policy, throttler, 12)
    for _ in range(20):
        policy.observe(throttler, KEY, 429, {"Retry-After": "1"})
    assert throttler.rates == (Rate(8, 1.0),)
    await asyncio.sleep(0.5)
    policy.observe(throttler, KEY, 429, {})  # still paused: the same event
    assert policy.statistics().rate_cuts == 1
    await asyncio.sleep(1.0)
    ok(policy, throttler, 2)
    policy.observe(throttler, KEY, 429, {})  # sent after the pause, at 8/s: a new event
    assert throttler.rates == (Rate(2, 1.0),)  # 8 x 0.5 = 4, but 2 got through
    stats = policy.statistics()
    assert (stats.rate_cuts, stats.refusals) == (2, 22)


@pytest.mark.looptime
async def test_the_pace_is_never_above_an_advertised_quota() -> None:
    """A refusal under an adopted 6/s quota cuts from 6/s, not from the configured 10/s."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    policy.observe(throttler, KEY, 200, {"RateLimit-Policy": '"d";q=6;w=1'})
    ok(policy, throttler, 6)
    policy.observe(throttler, KEY, 429, {})
    assert throttler.rates == (Rate(6, 1.0), Rate(3, 1.0)) or throttler.rates == (Rate(3, 1.0),)
    assert all(implied(rate, throttler.rates) for rate in (Rate(10, 1.0), Rate(6, 1.0)))


# -- recovery: the hold, probes, the floor -----------------------------------------------


@pytest.mark.looptime
async def test_recovery_climbs_to_what_got_through_and_holds_until_a_probe() -> None:
    """Cut to 2.5/s with 3 getting through: back to 3/s after quiet periods, held there
    until probe_after, then one request more; a refused probe doubles the wait."""
    throttler = Throttler(5, 1.0)
    policy = FeedbackPolicy(adapt=True, increase=0.1, probe_after=20.0)
    ok(policy, throttler, 3)
    policy.observe(throttler, KEY, 429, {"Retry-After": "1"})
    assert throttler.rates == (Rate(2, 1.0),)  # 5 x 0.5 = 2.5
    for _ in range(18):  # 18 quiet seconds: +0.5 per second, but held at 3
        await asyncio.sleep(1.0)
        ok(policy, throttler, 3)
    assert throttler.rates == (Rate(3, 1.0),)
    await asyncio.sleep(3.0)  # 21 s without a refusal: a probe, one request more
    ok(policy, throttler, 3)
    assert throttler.rates == (Rate(4, 1.0),)
    policy.observe(throttler, KEY, 429, {"Retry-After": "1"})  # the probe is refused
    assert throttler.rates == (Rate(2, 1.0),)
    for _ in range(39):  # the next probe waits 40 s
        await asyncio.sleep(1.0)
        ok(policy, throttler, 3)
    assert throttler.rates == (Rate(3, 1.0),)
    await asyncio.sleep(2.0)
    ok(policy, throttler, 3)
    assert throttler.rates == (Rate(4, 1.0),)
    assert policy.statistics().rate_cuts == 2


@pytest.mark.looptime
async def test_an_accepted_probe_climbs_back_to_the_configured_rate() -> None:
    """With the server's limit lifted, probes succeed and the pace returns to the ceiling."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True, increase=0.2, probe_after=5.0)
    ok(policy, throttler, 4)
    policy.observe(throttler, KEY, 429, {"Retry-After": "1"})
    assert throttler.rates == (Rate(4, 1.0),)  # min(10 x 0.5, 4)
    for _ in range(30):
        await asyncio.sleep(1.0)
        ok(policy, throttler)
    assert throttler.rates == (Rate(10, 1.0),)
    assert policy.statistics().by_key[KEY].pace is None
    await asyncio.sleep(1000.0)
    ok(policy, throttler)
    assert throttler.rates == (Rate(10, 1.0),)  # never above


@pytest.mark.looptime
async def test_the_floor_is_one_request_per_max_retry_after() -> None:
    """Refused again and again with nothing getting through, the pace halves below one
    request per period (a longer window) down to one per max_retry_after, not below."""
    throttler = Throttler(4, 1.0)
    policy = FeedbackPolicy(adapt=True, max_retry_after=8.0)
    seen = []
    for _ in range(10):
        policy.observe(throttler, KEY, 429, {})
        seen.append(throttler.rates)
        await asyncio.sleep(9.0)
    assert seen[:5] == [
        (Rate(2, 1.0),),
        (Rate(1, 1.0),),
        (Rate(1, 2.0),),
        (Rate(1, 4.0),),
        (Rate(1, 8.0),),
    ]
    assert all(rates == (Rate(1, 8.0),) for rates in seen[5:])


@pytest.mark.looptime
async def test_a_retuned_throttler_recovers_to_the_rates_the_user_set() -> None:
    """If the user calls set_rates, those rates become the ceiling."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True, probe_after=1.0)
    policy.observe(throttler, KEY, 429, {})
    throttler.set_rates("20/s")
    await asyncio.sleep(1.0)
    ok(policy, throttler, 20)
    policy.observe(throttler, KEY, 429, {})
    assert throttler.rates == (Rate(10, 1.0),)
    for _ in range(100):
        await asyncio.sleep(1.0)
        ok(policy, throttler)
    assert throttler.rates == (Rate(20, 1.0),)


@pytest.mark.looptime
async def test_a_cut_keeps_the_burst_valid() -> None:
    """A smooth-mode throttler keeps a burst no larger than the cut limit."""
    throttler = Throttler(10, 1.0, burst=8)
    policy = FeedbackPolicy(adapt=True, decrease=0.25)
    ok(policy, throttler, 10)
    policy.observe(throttler, KEY, 429, {})
    assert throttler.rates == (Rate(2, 1.0),)
    assert throttler.burst == 2


# -- slow start ------------------------------------------------------------------------------


async def send_all(
    pipeline: Pipeline, count: int, latency: float, headers: dict[str, str] | None = None
) -> list[float]:
    """Send ``count`` requests at once through ``pipeline``; the times they were sent."""
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def send(request: str, ticket: object) -> tuple[int, dict[str, str]]:
        sent.append(loop.time())
        await asyncio.sleep(latency)
        return 200, dict(headers or {})

    async def one() -> None:
        steps = pipeline.steps(FakeExchange(), "GET", "http://h.test/", None, 1)
        await pipeline.run(steps, "GET", send, lambda response: None)

    await asyncio.gather(*(one() for _ in range(count)))
    return sent


@pytest.mark.looptime
async def test_slow_start_sends_one_request_before_the_first_answer() -> None:
    """A new host gets one request; the rest wait for its answer, then the rates rule."""
    throttler = Throttler(10, 1.0)
    pipeline = Pipeline(throttler, FeedbackPolicy(adapt=True), Holds(None), None)
    sent = await send_all(pipeline, 10, latency=0.2)
    assert sent == [0.0] + [pytest.approx(0.2)] * 9
    again = await send_all(pipeline, 1, latency=0.2)  # no longer new: no wait
    assert again == [pytest.approx(1.2)]  # the next window: the first entry settled at 0.2


@pytest.mark.looptime
async def test_slow_start_learns_the_quota_before_the_burst() -> None:
    """The first answer's advertised quota is in force before the other requests go."""
    throttler = Throttler(10, 1.0)
    pipeline = Pipeline(throttler, FeedbackPolicy(adapt=True), Holds(None), None)
    sent = await send_all(pipeline, 7, 0.01, {"RateLimit-Policy": '"d";q=3;w=1'})
    assert max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent) <= 3


@pytest.mark.looptime
async def test_slow_start_waits_at_most_one_second() -> None:
    """A first answer that takes 5 s holds the others back for 1 s only."""
    throttler = Throttler(10, 1.0)
    pipeline = Pipeline(throttler, FeedbackPolicy(adapt=True), Holds(None), None)
    sent = await send_all(pipeline, 3, latency=5.0)
    assert sent == [0.0, pytest.approx(1.0), pytest.approx(1.0)]


@pytest.mark.looptime
async def test_a_refusal_during_slow_start_is_a_pause_of_its_own() -> None:
    """The server's pause replaces slow start's: counted, logged, kept for its length."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    policy.admitted(throttler, KEY)  # a new host: paused until its first answer
    assert throttler.paused_for == pytest.approx(1.0)
    policy.observe(throttler, KEY, 429, {"Retry-After": "2"})
    assert throttler.paused_for == pytest.approx(2.0)
    stats = policy.statistics()
    assert stats.pauses == 1
    assert stats.paused_seconds == pytest.approx(2.0)
    policy.admitted(throttler, KEY)
    ok(policy, throttler)  # a short answer lifts no pause but slow start's own
    assert throttler.paused_for == pytest.approx(2.0)


@pytest.mark.looptime
async def test_no_slow_start_without_adapt() -> None:
    """Without adapt the whole window goes at once."""
    throttler = Throttler(10, 1.0)
    pipeline = Pipeline(throttler, FeedbackPolicy(), Holds(None), None)
    assert await send_all(pipeline, 5, latency=0.2) == [0.0] * 5


# -- state ---------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_the_state_does_not_keep_throttlers_alive() -> None:
    """The per-throttler state is weak: a dropped throttler is freed."""
    policy = FeedbackPolicy(adapt=True)
    throttler = Throttler(10, 1.0)
    policy.admitted(throttler, KEY)
    policy.observe(throttler, KEY, 429, {})
    ref = weakref.ref(throttler)
    del throttler  # no cycle holds a Throttler: reference counting frees it at once
    assert ref() is None


class Recorder:
    """A FeedbackTarget that records what the policy does; it cannot be weakly referenced."""

    __slots__ = ("_rates", "burst", "clock", "pauses", "until")

    def __init__(self, clock: list[float], *rates: RatesLike) -> None:
        self._rates = parse_rates(*rates)
        self.burst: int | None = None
        self.clock = clock
        self.until = -math.inf
        self.pauses: list[float] = []

    @property
    def rates(self) -> tuple[Rate, ...]:
        return self._rates

    @property
    def paused_for(self) -> float:
        return max(0.0, self.until - self.clock[0])

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.until = max(self.until, self.clock[0] + seconds)

    def set_rates(self, *rates: RatesLike, burst: int | None = None) -> None:
        self._rates = parse_rates(*rates)
        self.burst = burst


def test_a_throttler_without_weakref_support_is_tuned_too() -> None:
    """A limiter that cannot be weakly referenced is tuned (a bounded strong map)."""
    clock = [0.0]
    limiter = Recorder(clock, "10/s")
    policy = FeedbackPolicy(adapt=True)
    with mock.patch("throttled_http._hostbook._monotonic", return_value=0.0):
        policy.observe(limiter, KEY, 429, {})
    assert limiter.rates == (Rate(5, 1.0),)
    assert limiter.pauses == [1.0]


def test_minimal_rates_drops_only_implied_rates() -> None:
    """A rate is dropped only when another (or an equal one before it) is as strict."""
    assert minimal_rates((Rate(10, 1), Rate(3, 1))) == (Rate(3, 1),)
    assert minimal_rates((Rate(10, 1), Rate(100, 60))) == (Rate(10, 1), Rate(100, 60))
    assert minimal_rates((Rate(5, 1), Rate(5, 1))) == (Rate(5, 1),)
    assert minimal_rates((Rate(1, 2), Rate(2, 1))) == (Rate(1, 2),)


# -- properties ------------------------------------------------------------------------------

RESPONSES = st.sampled_from(
    [
        (200, {}),
        (200, {}),
        (200, {}),
        (429, {}),
        (503, {}),
        (429, {"Retry-After": "1"}),
        (429, {"Retry-After": "100000"}),
        (503, {"Retry-After": "0"}),
        (429, {"retry-after-ms": "250"}),
        (200, {"RateLimit-Policy": '"d";q=4;w=1'}),
        (200, {"RateLimit-Policy": '"d";q=50;w=1'}),
        (200, {"RateLimit-Policy": '"m";q=30;w=60'}),
        (200, {"X-RateLimit-Limit": "2;w=1", "X-RateLimit-Remaining": "0"}),
        (429, {"x-ratelimit-limit-requests": "9", "x-ratelimit-remaining-requests": "0"}),
        (200, {"anthropic-ratelimit-requests-limit": "3"}),
        (200, {"RateLimit": '"d";r=0;t=99999'}),
    ]
)
STEPS = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=30.0), st.booleans(), RESPONSES),
    max_size=80,
)
CONFIGURED = st.sampled_from(["10/s", "5/s; 100/min", "3/2s", "1/s", "1000/h"])


@settings(max_examples=200, deadline=None)
@given(configured=CONFIGURED, steps=STEPS, cap=st.sampled_from([0.0, 5.0, 300.0]))
def test_no_response_raises_pauses_past_the_cap_or_raises_the_pace_above_the_limits(
    configured: str,
    steps: list[tuple[float, bool, tuple[int, dict[str, str]]]],
    cap: float,
) -> None:
    """Whatever the responses and their timing: observe and admitted never raise, every
    pause is within the cap, the rates in force are never looser than the configured ones
    or the quota last adopted, and the pace stays at or above its floor."""
    clock = [1000.0]
    limiter = Recorder(clock, configured)
    ceiling = parse_rates(configured)
    policy = FeedbackPolicy(adapt=True, max_retry_after=cap, probe_after=10.0)
    adopted: tuple[Rate, ...] = ()
    with mock.patch("throttled_http._hostbook._monotonic", side_effect=lambda: clock[0]):
        for wait, admit, (status, headers) in steps:
            clock[0] += wait
            if admit:
                policy.admitted(limiter, KEY)
            before = policy.statistics().adoptions
            policy.observe(limiter, KEY, status, headers)
            if policy.statistics().adoptions > before:
                quota = parse_feedback(status, headers, now=0.0).quota
                adopted = tuple(r for r in quota if r.period <= cap)
            rates = limiter.rates
            assert all(implied(rate, rates) for rate in ceiling)
            assert all(implied(rate, rates) for rate in adopted)
            assert all(rate.limit >= 1 for rate in rates)
            longest = max(cap, *(r.period for r in ceiling))
            assert all(rate.period <= longest + 1e-3 for rate in rates)
    assert all(0.0 < pause <= cap for pause in limiter.pauses)
