"""FeedbackPolicy against a real Throttler on virtual time: pauses, adaptation, retries."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import pytest

from throttled_http import FeedbackPolicy, Rate, Throttler
from throttled_http._holding import Holds
from throttled_http._pipeline import Pipeline

if TYPE_CHECKING:
    from throttled_http import EntryLike
    from throttled_http._rates import RatesLike


async def admitted_within(throttler: Throttler, seconds: float, attempts: int) -> int:
    """How many of ``attempts`` entries the throttler admits in the next ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    count = 0
    for _ in range(attempts):
        try:
            await throttler.acquire(timeout=max(0.0, deadline - loop.time()))
        except TimeoutError:
            break
        count += 1
    return count


async def entry_time(throttler: Throttler) -> float:
    """Seconds until an entry is admitted, from now."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with throttler:
        pass
    return loop.time() - start


# -- pauses ------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_retry_after_pauses_the_throttler() -> None:
    """A 429 with Retry-After: 5 holds the next entry for 5 s and returns 5."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy()
    assert policy.observe(throttler, "http://a:80", 429, {"Retry-After": "5"}) == 5.0
    assert throttler.statistics().paused_for == pytest.approx(5.0)
    assert await entry_time(throttler) == pytest.approx(5.0)


@pytest.mark.looptime
async def test_remaining_zero_pauses_before_any_refusal() -> None:
    """A 200 with X-RateLimit-Remaining: 0 pauses until its reset."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy()
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2"}
    assert policy.observe(throttler, "k", 200, headers) == 2.0
    assert await entry_time(throttler) == pytest.approx(2.0)


@pytest.mark.looptime
async def test_pause_is_capped() -> None:
    """Retry-After: 3600 with max_retry_after=10 pauses 10 s, not an hour."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(max_retry_after=10)
    assert policy.observe(throttler, "k", 429, {"Retry-After": "3600"}) == 10.0
    assert await entry_time(throttler) == pytest.approx(10.0)


@pytest.mark.looptime
async def test_other_keys_are_not_paused() -> None:
    """Only the responding host's throttler pauses."""
    slow, other = Throttler(10, 1.0), Throttler(10, 1.0)
    policy = FeedbackPolicy()
    policy.observe(slow, "http://slow:80", 503, {"Retry-After": "30"})
    assert await entry_time(other) == 0.0
    assert other.paused_for == 0.0
    assert slow.paused_for == pytest.approx(30.0)


@pytest.mark.looptime
async def test_ignore_server_times_disables_pauses() -> None:
    """ignore_server_times=True: no pause and no server delay."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(ignore_server_times=True)
    assert policy.observe(throttler, "k", 429, {"Retry-After": "5"}) is None
    assert throttler.paused_for == 0.0


def test_max_retry_after_none_is_refused_with_a_hint() -> None:
    """max_retry_after=None is a TypeError that names ignore_server_times."""
    with pytest.raises(TypeError, match=r"max_retry_after.*ignore_server_times=True"):
        FeedbackPolicy(max_retry_after=None)  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_unlimited_host_still_gets_the_delay() -> None:
    """With no limiter (an unlimited host) nothing is paused but the delay is returned."""
    policy = FeedbackPolicy()
    assert policy.observe(None, "k", 429, {"Retry-After": "7"}) == 7.0
    assert policy.statistics().pauses == 0


@pytest.mark.looptime
async def test_shorter_pause_neither_cuts_nor_counts() -> None:
    """A shorter pause after a longer one changes nothing; an extension adds seconds but
    is not a new pause; a pause after the last one ended is."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy()
    policy.observe(throttler, "k", 429, {"Retry-After": "20"})
    policy.observe(throttler, "k", 429, {"Retry-After": "5"})
    await asyncio.sleep(10)
    policy.observe(throttler, "k", 429, {"Retry-After": "15"})  # extends by 5 s
    stats = policy.statistics()
    assert stats.pauses == 1
    assert stats.refusals == 3
    assert stats.paused_seconds == pytest.approx(25.0)
    assert stats.by_key["k"].last_reason == "Retry-After"
    assert await entry_time(throttler) == pytest.approx(15.0)
    policy.observe(throttler, "k", 429, {"Retry-After": "1"})  # the pause had ended
    assert policy.statistics().pauses == 2


@pytest.mark.looptime
async def test_pause_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A pause is logged on the throttled_http logger with key, reason and duration."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(max_retry_after=60)
    with caplog.at_level(logging.INFO, logger="throttled_http"):
        for _ in range(5):  # a burst of refusals: one line
            policy.observe(throttler, "https://api.example:443", 429, {"Retry-After": "7200"})
    (record,) = caplog.records
    assert record.name == "throttled_http"
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "https://api.example:443" in message
    assert "60.000 s" in message
    assert "Retry-After" in message
    assert "7200 s" in message


@pytest.mark.looptime
async def test_a_failing_limiter_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    """A limiter whose pause() fails (a backend down) is logged; observe returns the delay."""

    class Broken:
        rates = (Rate(10, 1.0),)
        paused_for = 0.0

        def pause(self, seconds: float) -> None:
            raise ConnectionError("backend down")

        def set_rates(self, *rates: RatesLike, burst: int | None = None) -> None:
            raise ConnectionError("backend down")

    policy = FeedbackPolicy(adapt=True)
    with caplog.at_level(logging.WARNING, logger="throttled_http"):
        assert policy.observe(Broken(), "k", 429, {"Retry-After": "3"}) == 3.0
        assert policy.observe(Broken(), "k", 429, {}) is None
    assert len(caplog.records) == 2
    assert all("could not apply" in r.getMessage() for r in caplog.records)


# -- adaptation: advertised quotas -------------------------------------------------------


@pytest.mark.looptime
async def test_adapt_adopts_a_stricter_advertised_quota() -> None:
    """Configured 10/s, advertised 3/s: the throttler then admits 3 per second."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    policy.observe(throttler, "k", 200, {"RateLimit-Policy": '"default";q=3;w=1'})
    assert throttler.rates == (Rate(3, 1.0),)  # 3/s implies the configured 10/s
    assert await admitted_within(throttler, 0.99, 10) == 3
    assert policy.statistics().adoptions == 1
    policy.observe(throttler, "k", 200, {"RateLimit-Policy": '"minute";q=100;w=60'})
    assert throttler.rates == (Rate(3, 1.0),)  # changes at most once per window in force
    await asyncio.sleep(1.0)
    policy.observe(throttler, "k", 200, {"RateLimit-Policy": '"minute";q=100;w=60'})
    assert list(throttler.rates) == [Rate(10, 1.0), Rate(100, 60)]  # neither implies the other


@pytest.mark.looptime
async def test_adapt_never_loosens_the_configured_rate() -> None:
    """An advertised quota looser than the configured one changes nothing."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    policy.observe(throttler, "k", 200, {"RateLimit-Policy": '"default";q=1000;w=1'})
    policy.observe(throttler, "k", 200, {"X-RateLimit-Limit": "10;w=1"})
    assert throttler.rates == (Rate(10, 1.0),)
    assert await admitted_within(throttler, 0.99, 20) == 10
    assert policy.statistics().adoptions == 0


@pytest.mark.looptime
async def test_adapt_follows_a_changing_quota_but_stays_under_the_configured() -> None:
    """A later advertisement replaces the earlier one; configured 10/s always stays."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    policy.observe(throttler, "k", 200, {"RateLimit-Policy": '"d";q=2;w=1'})
    await asyncio.sleep(1.0)
    policy.observe(throttler, "k", 200, {"RateLimit-Policy": '"d";q=5;w=1'})
    assert throttler.rates == (Rate(5, 1.0),)
    await asyncio.sleep(1.0)
    policy.observe(throttler, "k", 200, {"RateLimit-Policy": '"d";q=50;w=1'})
    assert list(throttler.rates) == [Rate(10, 1.0)]


@pytest.mark.looptime
async def test_adapt_changes_at_most_once_per_window() -> None:
    """A server flipping its quota on every response retunes once per longest window."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    for n in range(100):
        quota = f'"d";q={3 + n % 2};w=1'
        policy.observe(throttler, "k", 200, {"RateLimit-Policy": quota})
        await asyncio.sleep(0.05)
    assert policy.statistics().adoptions == 5  # 5 s of flipping, one change per second
    assert all(rate.limit <= 10 for rate in throttler.rates)


@pytest.mark.looptime
async def test_adapt_skips_windows_longer_than_the_cap() -> None:
    """A daily quota could hold a request for a day: it is not adopted."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True, max_retry_after=300)
    policy.observe(throttler, "k", 200, {"RateLimit-Policy": '"daily";q=1;w=86400'})
    assert throttler.rates == (Rate(10, 1.0),)


@pytest.mark.looptime
async def test_without_adapt_rates_never_change() -> None:
    """adapt=False: neither advertised quotas nor bare 429s touch the rates."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy()
    policy.observe(throttler, "k", 200, {"RateLimit-Policy": '"d";q=2;w=1'})
    policy.observe(throttler, "k", 429, {})
    assert throttler.rates == (Rate(10, 1.0),)


# -- retries -----------------------------------------------------------------------------


def test_retry_rules() -> None:
    """Retry only refused (429/503), idempotent, replayable requests, at most `retries` times."""
    policy = FeedbackPolicy(retries=2)
    assert policy.retry_delay("GET", 429, 1, 3.0) == 3.0
    assert policy.retry_delay("get", 503, 2, 0.0) == 0.0
    assert policy.retry_delay("GET", 429, 3, 3.0) is None  # out of attempts
    assert policy.retry_delay("POST", 429, 1, 3.0) is None  # not idempotent
    assert policy.retry_delay("PATCH", 429, 1, 3.0) is None
    assert policy.retry_delay("GET", 500, 1, 3.0) is None  # not a refusal for load
    assert policy.retry_delay("GET", 200, 1, None) is None
    assert policy.retry_delay("PUT", 429, 1, 3.0, replayable=False) is None
    for method in ("HEAD", "OPTIONS", "PUT", "DELETE"):
        assert policy.retry_delay(method, 429, 1, 1.0) == 1.0


def test_retry_refused_retries_any_method_the_server_did_not_process() -> None:
    """retry_refused=True re-sends a POST refused with 429, or 503 naming a time; no other."""
    policy = FeedbackPolicy(retries=2, retry_refused=True)
    assert policy.retry_refused
    assert policy.retry_delay("POST", 429, 1, 1.5) == 1.5
    assert policy.retry_delay("PATCH", 429, 1, None) is not None  # 429: never processed
    assert policy.retry_delay("POST", 503, 1, 2.0) == 2.0  # 503 with Retry-After
    assert policy.retry_delay("POST", 503, 1, None) is None  # a bare 503 may have run it
    assert policy.retry_delay("GET", 503, 1, None) is not None  # idempotent: as before
    assert policy.retry_delay("POST", 429, 1, 1.0, replayable=False) is None
    assert policy.retry_delay("POST", 429, 3, 1.0) is None  # out of attempts
    assert policy.retry_delay("POST", 500, 1, 1.0) is None
    assert FeedbackPolicy(retries=2).retry_delay("POST", 429, 1, 1.0) is None  # opt-in


@pytest.mark.looptime
async def test_retry_refused_post_through_the_pipeline() -> None:
    """A POST refused with 429 is re-sent after its Retry-After, through the throttler."""
    loop = asyncio.get_running_loop()
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(retries=1, retry_refused=True)
    pipeline = Pipeline(throttler, policy, Holds(None), None)
    sent: list[float] = []
    replies = [(429, {"retry-after-ms": "1500"}), (200, {})]

    async def send(request: str, ticket: object) -> tuple[int, dict[str, str]]:
        sent.append(loop.time())
        return replies[len(sent) - 1]

    steps = pipeline.steps(FakeExchange(), "POST", "https://llm.example/v1/chat", None, 1)
    status, _ = await pipeline.run(steps, "POST", send, lambda response: None)
    assert status == 200
    assert sent == [0.0, pytest.approx(1.5)]
    assert policy.statistics().retries == 1


def test_retries_off_by_default() -> None:
    """retries=0: never retry."""
    assert FeedbackPolicy().retry_delay("GET", 429, 1, 1.0) is None


def test_post_retried_only_when_opted_in() -> None:
    """retry_methods opts other methods in."""
    policy = FeedbackPolicy(retries=1, retry_methods=("GET", "post"))
    assert policy.retry_delay("POST", 429, 1, 2.0) == 2.0
    assert policy.retry_delay("PUT", 429, 1, 2.0) is None


def test_retry_server_delay_is_capped() -> None:
    """A server delay above the cap is cut to it; a broken one falls back to the backoff."""
    policy = FeedbackPolicy(retries=1, max_retry_after=5, backoff=1.0)
    assert policy.retry_delay("GET", 429, 1, 50.0) == 5.0
    nan_wait = policy.retry_delay("GET", 429, 1, float("nan"))
    assert nan_wait is not None
    assert 0.5 <= nan_wait <= 1.0


def test_backoff_jitter_bounds() -> None:
    """Without a server delay, attempt n waits in [b/2, b], b = min(max, backoff * 2**(n-1))."""
    policy = FeedbackPolicy(retries=10, backoff=0.5, max_backoff=3.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (10, 3.0)]:
        waits = [policy.retry_delay("GET", 503, attempt, None) for _ in range(200)]
        assert all(w is not None and ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # jittered


def test_retries_are_counted_per_key() -> None:
    """Granted retries show in stats, per key when given."""
    policy = FeedbackPolicy(retries=3)
    policy.retry_delay("GET", 429, 1, 1.0, key="http://a:80")
    policy.retry_delay("GET", 429, 2, 1.0, key="http://a:80")
    policy.retry_delay("POST", 429, 1, 1.0, key="http://a:80")  # refused: not counted
    stats = policy.statistics()
    assert stats.retries == 2
    assert stats.by_key["http://a:80"].retries == 2


def test_stats_keep_a_bounded_number_of_keys() -> None:
    """by_key keeps the max_keys most recently active keys; totals keep everything."""
    policy = FeedbackPolicy(retries=1, max_keys=3)
    for n in range(10):
        policy.retry_delay("GET", 429, 1, 1.0, key=f"k{n}")
    stats = policy.statistics()
    assert stats.retries == 10
    assert sorted(stats.by_key) == ["k7", "k8", "k9"]


def test_backoff_delay_bounds() -> None:
    """backoff_delay(n) is uniform in [b/2, b] with b = min(max_backoff, backoff * 2**(n-1))."""
    policy = FeedbackPolicy(backoff=0.5, max_backoff=3.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (10, 3.0), (10_000, 3.0)]:
        waits = [policy.backoff_delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), attempt
        assert len(set(waits)) > 1  # jittered
        assert min(waits) < ceiling * 0.6  # spread over the whole range, not stuck at a bound
        assert max(waits) > ceiling * 0.9


def test_backoff_delay_needs_no_retries_and_counts_nothing() -> None:
    """backoff_delay answers with retries=0 (for retries the caller decides) and counts none."""
    policy = FeedbackPolicy(backoff=2.0, max_backoff=2.0)
    assert 1.0 <= policy.backoff_delay(1) <= 2.0
    assert policy.statistics().retries == 0


@pytest.mark.parametrize(
    ("attempt", "error"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_backoff_delay_attempt_counts_from_one(attempt: object, error: type[Exception]) -> None:
    """backoff_delay's attempt is an int >= 1, named in the error."""
    with pytest.raises(error, match="attempt must be a positive integer"):
        FeedbackPolicy().backoff_delay(attempt)  # type: ignore[arg-type]


def test_retry_without_a_server_time_waits_the_backoff() -> None:
    """retry_delay with no server delay draws from backoff_delay's range for that attempt."""
    policy = FeedbackPolicy(retries=3, backoff=1.0, max_backoff=60.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0)]:
        waits = [policy.retry_delay("GET", 429, attempt, None) for _ in range(100)]
        assert all(w is not None and ceiling / 2 <= w <= ceiling for w in waits)


# -- ignoring the times servers give -----------------------------------------------------


def test_ignore_server_times_properties() -> None:
    """max_retry_after is always a float; ignore_server_times says whether times are read."""
    assert FeedbackPolicy().max_retry_after == 300.0
    assert FeedbackPolicy().ignore_server_times is False
    ignoring = FeedbackPolicy(ignore_server_times=True)
    assert ignoring.ignore_server_times is True
    assert isinstance(ignoring.max_retry_after, float)
    assert FeedbackPolicy(max_retry_after=0).max_retry_after == 0.0


def test_ignore_server_times_must_be_a_bool() -> None:
    """ignore_server_times accepts only True or False, naming itself."""
    with pytest.raises(TypeError, match="ignore_server_times must be True or False, got 1"):
        FeedbackPolicy(ignore_server_times=1)  # type: ignore[arg-type]


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (429, {"Retry-After": "30"}),
        (503, {"Retry-After": "30"}),
        (200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"}),
        (200, {"RateLimit": '"default";r=0;t=30'}),
    ],
    ids=["429-retry-after", "503-retry-after", "remaining-zero", "ietf-ratelimit"],
)
async def test_ignore_server_times_never_pauses(status: int, headers: dict[str, str]) -> None:
    """With ignore_server_times=True no header pauses the throttler or gives a delay."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(ignore_server_times=True)
    assert policy.observe(throttler, "k", status, headers) is None
    assert throttler.paused_for == 0.0
    assert await entry_time(throttler) == 0.0
    assert policy.statistics().pauses == 0


def test_ignore_server_times_retries_wait_the_backoff_only() -> None:
    """With ignore_server_times=True a retry waits the backoff, even when handed a server time."""
    policy = FeedbackPolicy(ignore_server_times=True, retries=2, backoff=1.0, max_backoff=8.0)
    for server_delay in (None, 30.0, 0.0):
        for attempt, ceiling in [(1, 1.0), (2, 2.0)]:
            waits = [policy.retry_delay("GET", 429, attempt, server_delay) for _ in range(100)]
            assert all(w is not None and ceiling / 2 <= w <= ceiling for w in waits), (
                server_delay,
                attempt,
            )
    assert policy.retry_delay("GET", 429, 3, None) is None  # still at most `retries`


@pytest.mark.looptime
async def test_ignore_server_times_with_adapt_cuts_on_every_429() -> None:
    """With adapt, a 429 whose Retry-After is ignored still cuts the pace, unpaused."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(ignore_server_times=True, adapt=True)
    policy.observe(throttler, "k", 429, {"Retry-After": "30"})
    assert throttler.rates == (Rate(5, 1.0),)
    assert throttler.paused_for == 0.0
    assert policy.statistics().rate_cuts == 1


@pytest.mark.looptime
async def test_ignore_server_times_still_adopts_quotas() -> None:
    """Advertised quotas are not times to wait: with adapt they are still followed."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(ignore_server_times=True, adapt=True)
    policy.observe(throttler, "k", 200, {"RateLimit-Policy": '"default";q=3;w=1'})
    assert throttler.rates == (Rate(3, 1.0),)


@pytest.mark.looptime
async def test_ignore_server_times_through_the_pipeline() -> None:
    """A request refused with Retry-After: 30 is sent again after the backoff, not 30 s."""
    loop = asyncio.get_running_loop()
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy(ignore_server_times=True, retries=1, backoff=2.0, max_backoff=2.0)
    pipeline = Pipeline(throttler, policy, Holds(None), None)
    sent: list[float] = []
    replies = [(429, {"Retry-After": "30"}), (200, {})]

    async def send(request: str, ticket: object) -> tuple[int, dict[str, str]]:
        sent.append(loop.time())
        return replies[len(sent) - 1]

    steps = pipeline.steps(FakeExchange(), "GET", "https://a.example/", None, 1)
    status, _ = await pipeline.run(steps, "GET", send, lambda response: None)
    assert status == 200
    assert len(sent) == 2
    assert 1.0 <= sent[1] - sent[0] <= 2.0
    assert throttler.paused_for == 0.0
    assert throttler.statistics().open == 0


class FakeExchange:
    """The pipeline's view of a fake client: a response is ``(status, headers)``."""

    def status(self, response: tuple[int, dict[str, str]]) -> int:
        return response[0]

    def headers(self, response: tuple[int, dict[str, str]]) -> dict[str, str]:
        return response[1]

    def method(self, request: str) -> str:
        return request

    def replayable(self, request: str) -> bool:
        return True

    def hold(
        self, response: tuple[int, dict[str, str]], entry: EntryLike, key: str
    ) -> tuple[int, dict[str, str]]:
        entry.close()
        return response


# -- construction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_retry_after": -1}, ValueError, "max_retry_after must be a finite number"),
        ({"max_retry_after": float("inf")}, ValueError, "max_retry_after must be a finite"),
        ({"adapt": "yes"}, TypeError, "adapt must be True or False"),
        ({"retries": -1}, ValueError, "retries must be an integer from 0 to 100, got -1"),
        ({"retries": 1.5}, TypeError, "retries must be an integer"),
        ({"retry_methods": "GET"}, TypeError, "retry_methods must be an iterable"),
        ({"retry_methods": ["GET", 1]}, TypeError, "retry_methods must hold method names"),
        ({"backoff": 0}, ValueError, "backoff must be a finite number of seconds > 0"),
        ({"backoff": 10, "max_backoff": 5}, ValueError, "max_backoff must be >= backoff"),
        ({"decrease": 1}, ValueError, "decrease must be a number with 0 < decrease < 1"),
        ({"decrease": 2}, ValueError, r"^decrease must be a number with 0 < decrease < 1, got 2$"),
        ({"decrease": "0.5"}, TypeError, "decrease must be a number with 0 < decrease < 1"),
        ({"probe_after": 0}, ValueError, "probe_after must be a finite number of seconds > 0"),
        ({"retry_refused": "yes"}, TypeError, "retry_refused must be True or False, got 'yes'"),
        ({"retry_refused": True}, TypeError, r"retry_refused=True needs retries >= 1"),
        ({"increase": 0}, ValueError, "increase must be a number with 0 < increase <= 1"),
        ({"quiet_period": 0}, ValueError, "quiet_period must be a finite number"),
        ({"max_keys": 0}, ValueError, "max_keys must be a positive integer, got 0"),
    ],
)
def test_bad_options(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    """Bad options raise at construction, naming the argument and the allowed range."""
    with pytest.raises(error, match=message):
        FeedbackPolicy(**kwargs)  # type: ignore[arg-type]


def test_bad_attempt() -> None:
    """retry_delay's attempt counts from 1."""
    with pytest.raises(ValueError, match="attempt must be a positive integer, got 0"):
        FeedbackPolicy(retries=1).retry_delay("GET", 429, 0, None)


def test_repr_shows_the_options() -> None:
    """The repr shows the integration options."""
    policy = FeedbackPolicy(max_retry_after=30, adapt=True, retries=2)
    assert repr(policy) == (
        "<FeedbackPolicy max_retry_after=30.0 ignore_server_times=False adapt=True retries=2>"
    )


def test_works_with_the_thread_safe_throttler() -> None:
    """A SyncThrottler (used by the threaded httpx transport) is paused and tuned alike."""
    import threading

    from throttled_http import SyncThrottler

    throttler = SyncThrottler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    results: list[float | None] = []

    def worker() -> None:
        results.append(policy.observe(throttler, "k", 429, {"Retry-After": "30"}))
        policy.observe(throttler, "k", 429, {})

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert results == [30.0]
    assert 29.0 < throttler.paused_for <= 30.0
    assert throttler.rates == (Rate(5, 1.0),)


# -- observability -----------------------------------------------------------------------


def test_the_package_logger_has_a_null_handler() -> None:
    """An application that configures no logging gets no line on stderr from us."""
    handlers = logging.getLogger("throttled_http").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


@pytest.mark.looptime
async def test_refusals_warn_once_per_pause(caplog: pytest.LogCaptureFixture) -> None:
    """A burst of refusals gives one WARNING; the next pause's refusal another one."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy()
    with caplog.at_level(logging.DEBUG, logger="throttled_http"):
        for _ in range(5):
            policy.observe(throttler, "k", 429, {"Retry-After": "1"})
        await asyncio.sleep(0.5)
        policy.observe(throttler, "k", 429, {"Retry-After": "1"})  # still within the pause
        await asyncio.sleep(1.0)
        policy.observe(throttler, "k", 429, {"Retry-After": "1"})  # a new pause
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all(
        r.getMessage().startswith("k: refused with 429; pausing for 1.000 s") for r in warnings
    )
    assert len(caplog.records) == 2  # the extensions are counted, not logged


@pytest.mark.looptime
async def test_pauses_of_a_host_at_its_limit_log_one_info_line_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A host whose Remaining hits 0 on every response pauses each time; the log does not."""
    throttler = Throttler(10, 1.0)
    policy = FeedbackPolicy()
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}
    with caplog.at_level(logging.DEBUG, logger="throttled_http"):
        for _ in range(120):
            policy.observe(throttler, "k", 200, headers)
            await asyncio.sleep(1.0)
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 2  # at 0 s and at 60 s
    assert policy.statistics().pauses == 120


@pytest.mark.looptime
async def test_statistics_hold_running_totals_and_the_pace_per_host() -> None:
    """Refusals, pauses, paused seconds, rate cuts, and the rates and pace in force."""
    throttler = Throttler(10, 1.0)
    other = Throttler(10, 1.0)
    policy = FeedbackPolicy(adapt=True)
    for _ in range(3):
        policy.observe(throttler, "a", 200, {})
    policy.observe(throttler, "a", 429, {"Retry-After": "2"})
    policy.observe(throttler, "a", 429, {"Retry-After": "2"})
    policy.observe(other, "b", 200, {})
    stats = policy.statistics()
    assert stats.refusals == 2
    a = stats.by_key["a"]
    assert (a.refusals, a.pauses, a.paused_seconds, a.rate_cuts) == (2, 1, 2.0, 1)
    assert a.pace == Rate(3, 1.0)  # 3 got through in the second before the refusal
    assert a.rates == (Rate(3, 1.0),)
    b = stats.by_key["b"]
    assert (b.refusals, b.pace, b.rates) == (0, None, (Rate(10, 1.0),))
