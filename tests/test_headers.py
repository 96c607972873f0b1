"""The pure server-feedback parser: every header form, real-world examples, hostile input."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throttled_http import Budget, Feedback, Rate, parse_feedback
from throttled_http._dialects import NAMES as DIALECT_NAMES
from throttled_http._dialects import PAUSING_NAMES
from throttled_http._fields import parse_duration, parse_rfc3339
from throttled_http._headers import (
    _PAUSING_FRAGMENTS,
    _parse,
    may_carry_feedback,
    parse_http_date,
    parse_retry_after,
)

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z, a fixed "now" for absolute times


def http_date(when: float) -> str:
    """An IMF-fixdate for the Unix time ``when``."""
    return format_datetime(datetime.fromtimestamp(when, UTC), usegmt=True)


def iso(when: float, *, millis: bool = False, offset: bool = False) -> str:
    """An RFC 3339 time for the Unix time ``when``: ``...Z``, or ``...+00:00``."""
    text = datetime.fromtimestamp(when, UTC).isoformat(
        timespec="milliseconds" if millis else "seconds"
    )
    return text if offset else text.replace("+00:00", "Z")


# -- the table: (status, headers, expected delay, expected reason) --------------------------

CASES = [
    pytest.param(429, {"Retry-After": "120"}, 120.0, "Retry-After", id="retry-after-seconds"),
    pytest.param(503, {"Retry-After": "0"}, 0.0, "Retry-After", id="retry-after-zero-on-503"),
    pytest.param(429, {"Retry-After": " 7 "}, 7.0, "Retry-After", id="retry-after-whitespace"),
    pytest.param(429, {"Retry-After": "1.5"}, 1.5, "Retry-After", id="retry-after-fraction"),
    pytest.param(
        429, {"Retry-After": http_date(NOW + 90)}, 90.0, "Retry-After", id="retry-after-http-date"
    ),
    pytest.param(
        503,
        {"Retry-After": "Sunday, 15-Jun-25 15:08:10 GMT"},
        90.0,
        "Retry-After",
        id="retry-after-rfc850-date",
    ),
    pytest.param(
        429,
        {"Retry-After": "Sun Jun 15 15:08:10 2025"},
        90.0,
        "Retry-After",
        id="retry-after-asctime-date",
    ),
    pytest.param(
        429, {"Retry-After": http_date(NOW - 3600)}, 0.0, "Retry-After", id="retry-after-past-date"
    ),
    pytest.param(
        403,
        {"Retry-After": "60", "X-GitHub-Request-Id": "abc"},
        60.0,
        "Retry-After",
        id="github-secondary-limit-403",
    ),
    pytest.param(200, {"Retry-After": "60"}, None, None, id="retry-after-ignored-on-200"),
    pytest.param(301, {"Retry-After": "60"}, None, None, id="retry-after-ignored-on-redirect"),
    pytest.param(
        403,
        {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Used": "5000",
            "X-RateLimit-Reset": str(int(NOW) + 1800),
            "X-RateLimit-Resource": "core",
        },
        300.0,
        "X-RateLimit-Reset",
        id="github-primary-limit-403-epoch-capped",
    ),
    pytest.param(
        200,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 42)},
        42.0,
        "X-RateLimit-Reset",
        id="x-ratelimit-epoch-seconds",
    ),
    pytest.param(
        200,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW * 1000) + 2500)},
        2.5,
        "X-RateLimit-Reset",
        id="x-ratelimit-epoch-milliseconds",
    ),
    pytest.param(
        200,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"},
        30.0,
        "X-RateLimit-Reset",
        id="x-ratelimit-delta-seconds",
    ),
    pytest.param(
        429,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "3.25"},
        3.25,
        "X-RateLimit-Reset",
        id="discord-reset-after",
    ),
    pytest.param(
        200,
        {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": str(int(NOW) + 15)},
        15.0,
        "X-Rate-Limit-Reset",
        id="twitter-x-rate-limit",
    ),
    pytest.param(
        200,
        {"X-RateLimit-Remaining": "4", "X-RateLimit-Reset": "30"},
        None,
        None,
        id="x-ratelimit-remaining-left",
    ),
    pytest.param(
        200,
        {"RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "7"},
        7.0,
        "RateLimit-Reset",
        id="ietf-draft-06-separate-fields",
    ),
    pytest.param(
        200,
        {"RateLimit": "limit=10, remaining=0, reset=7"},
        7.0,
        "RateLimit",
        id="ietf-draft-07-dictionary",
    ),
    pytest.param(
        200,
        {"RateLimit-Policy": '"default";q=100;w=10', "RateLimit": '"default";r=0;t=30'},
        30.0,
        "RateLimit",
        id="ietf-draft-10-remaining-zero",
    ),
    pytest.param(
        200,
        {"RateLimit-Policy": '"default";q=100;w=10', "RateLimit": '"default";r=50;t=30'},
        None,
        None,
        id="ietf-draft-10-remaining-left",
    ),
    pytest.param(
        200,
        {"RateLimit-Policy": '"default";q=100;w=10', "RateLimit": '"default";r=0'},
        10.0,
        "RateLimit-Policy window",
        id="ietf-remaining-zero-without-t-waits-a-window",
    ),
    pytest.param(
        429,
        {
            "RateLimit-Policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
            "RateLimit": '"burst";r=20;t=30, "daily";r=0;t=250',
            "Retry-After": "100",
        },
        250.0,
        "RateLimit",
        id="ietf-two-policies-longest-pause-wins",
    ),
    pytest.param(
        429,
        {"X-RateLimit-Reset": str(int(NOW) + 20)},
        20.0,
        "X-RateLimit-Reset",
        id="429-reset-without-remaining",
    ),
    pytest.param(
        429,
        {"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "20"},
        20.0,
        "X-RateLimit-Reset",
        id="429-contradicts-remaining",
    ),
    pytest.param(200, {"X-RateLimit-Reset": "20"}, None, None, id="reset-without-remaining-on-200"),
    pytest.param(429, {}, None, None, id="bare-429"),
    pytest.param(200, {"Content-Type": "text/plain"}, None, None, id="no-feedback"),
]


@pytest.mark.parametrize(("status", "headers", "delay", "reason"), CASES)
def test_header_forms(
    status: int, headers: dict[str, str], delay: float | None, reason: str | None
) -> None:
    """Each real-world header form gives the expected capped pause and names its source."""
    feedback = parse_feedback(status, headers, now=NOW)
    if delay is None:
        assert feedback.delay is None
    else:
        assert feedback.delay == pytest.approx(delay, abs=1e-6)
    assert feedback.reason == reason
    assert feedback.throttled == (status in (429, 503))


# -- real providers: each header set as the provider documents it, and the careful pause ---

OPENAI_TOKENS = {
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-tokens": "6m0s",
}
PROVIDERS = [
    pytest.param(
        200,
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1s",
            **OPENAI_TOKENS,
        },
        1 / 60,
        "x-ratelimit-reset-requests",
        id="openai-200-requests-exhausted-waits-one-unit",
    ),
    pytest.param(
        429,
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1s",
            **OPENAI_TOKENS,
        },
        1 / 60,
        "x-ratelimit-reset-requests",
        id="openai-429-requests-exhausted",
    ),
    pytest.param(
        429,
        {
            "x-ratelimit-limit-requests": "5000",
            "x-ratelimit-remaining-requests": "4999",
            "x-ratelimit-reset-requests": "12ms",
            "x-ratelimit-limit-tokens": "40000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "4m12.172s",
        },
        252.172 / 40000,
        "x-ratelimit-reset-tokens",
        id="openai-429-tokens-exhausted-requests-left",
    ),
    pytest.param(
        429,
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "1",
            "x-ratelimit-reset-requests": "1h2m3s",
        },
        3723 / 59,
        "x-ratelimit-reset-requests",
        id="openai-429-nothing-exhausted-every-dimension-waits",
    ),
    pytest.param(429, {"retry-after-ms": "1500"}, 1.5, "retry-after-ms", id="retry-after-ms-alone"),
    pytest.param(
        429,
        {
            "retry-after-ms": "1500",
            "retry-after": "2",
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "20ms",
        },
        1.5,
        "retry-after-ms",
        id="openai-429-retry-after-ms-is-the-precise-one",
    ),
    pytest.param(
        429,
        {
            "retry-after-ms": "1500",
            "x-ms-retry-after-ms": "1500",
            "retry-after": "2",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-remaining-tokens": "0",
        },
        1.5,
        "retry-after-ms",
        id="azure-openai-429",
    ),
    pytest.param(
        429,
        {"retry-after-ms": "100", "retry-after": "60"},
        60.0,
        "Retry-After",
        id="retry-after-ms-contradicting-retry-after-takes-the-longer",
    ),
    pytest.param(
        200,
        {
            "x-ratelimit-limit-requests": "14400",
            "x-ratelimit-remaining-requests": "14399",
            "x-ratelimit-reset-requests": "6s",
            "x-ratelimit-limit-tokens": "18000",
            "x-ratelimit-remaining-tokens": "17990",
            "x-ratelimit-reset-tokens": "33ms",
        },
        None,
        None,
        id="groq-200-budget-left",
    ),
    pytest.param(
        429,
        {
            "retry-after": "2",
            "x-ratelimit-limit-requests": "14400",
            "x-ratelimit-remaining-requests": "14370",
            "x-ratelimit-reset-requests": "2m59.56s",
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "7.66s",
        },
        2.0,
        "Retry-After",
        id="groq-429-tokens",
    ),
    pytest.param(
        429,
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": iso(NOW + 1.2, millis=True),
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": iso(NOW + 30),
            "anthropic-ratelimit-output-tokens-limit": "8000",
            "anthropic-ratelimit-output-tokens-remaining": "8000",
            "anthropic-ratelimit-output-tokens-reset": iso(NOW),
        },
        1.2 / 50,
        "anthropic-ratelimit-requests-reset",
        id="anthropic-429-without-retry-after",
    ),
    pytest.param(
        200,
        {
            "anthropic-ratelimit-tokens-limit": "80000",
            "anthropic-ratelimit-tokens-remaining": "0",
            "anthropic-ratelimit-tokens-reset": iso(NOW + 60, offset=True),
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": iso(NOW + 1),
        },
        60 / 80000,
        "anthropic-ratelimit-tokens-reset",
        id="anthropic-200-tokens-exhausted-offset-form",
    ),
    pytest.param(
        429,
        {
            "retry-after": "15",
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": iso(NOW + 1),
        },
        15.0,
        "Retry-After",
        id="anthropic-429-with-retry-after",
    ),
    pytest.param(
        200,
        {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": iso(NOW + 200, millis=True),
        },
        200.0,
        "X-RateLimit-Reset",
        id="mastodon-iso-reset",
    ),
    pytest.param(
        429,
        {
            "Retry-After": "5",
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "2025-06-15T15:07Z",
            "RateLimit-Reason": "jira-burst-based",
        },
        20.0,
        "X-RateLimit-Reset",
        id="jira-429-iso-reset-without-seconds",
    ),
    pytest.param(
        429,
        {
            "X-HubSpot-RateLimit-Daily": "250000",
            "X-HubSpot-RateLimit-Daily-Remaining": "249000",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Remaining": "0",
            "X-HubSpot-RateLimit-Secondly": "10",
            "X-HubSpot-RateLimit-Secondly-Remaining": "3",
        },
        10.0,
        "X-HubSpot-RateLimit-Remaining",
        id="hubspot-interval-exhausted",
    ),
    pytest.param(
        200,
        {
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Remaining": "50",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        },
        None,
        None,
        id="hubspot-left",
    ),
    pytest.param(
        429,
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(int(NOW) + 120),
            "x-ratelimit-resource": "core",
        },
        120.0,
        "X-RateLimit-Reset",
        id="github-primary-429",
    ),
    pytest.param(
        429,
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4000",
            "x-ratelimit-reset": str(int(NOW) + 100),
        },
        100.0,
        "X-RateLimit-Reset",
        id="github-secondary-429-without-retry-after-waits-the-reset",
    ),
    pytest.param(
        403,
        {"retry-after": "60", "x-ratelimit-remaining": "4000"},
        60.0,
        "Retry-After",
        id="github-secondary-403",
    ),
    pytest.param(
        200,
        {"X-Ratelimit-Used": "600", "X-Ratelimit-Remaining": "0.0", "X-Ratelimit-Reset": "42"},
        42.0,
        "X-RateLimit-Reset",
        id="reddit-float-remaining",
    ),
    pytest.param(
        429,
        {
            "Retry-After": "2",
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{NOW + 1.234:.3f}",
            "X-RateLimit-Reset-After": "1.234",
            "X-RateLimit-Bucket": "abcd1234",
            "X-RateLimit-Scope": "user",
        },
        2.0,
        "Retry-After",
        id="discord-429",
    ),
    pytest.param(
        200,
        {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{NOW + 1.234:.3f}",
            "X-RateLimit-Reset-After": "1.234",
        },
        1.234,
        "X-RateLimit-Reset",
        id="discord-200-exhausted",
    ),
    pytest.param(
        200,
        {"X-Shopify-Shop-Api-Call-Limit": "40/40"},
        0.5,
        "X-Shopify-Shop-Api-Call-Limit",
        id="shopify-bucket-full-waits-one-leak",
    ),
    pytest.param(200, {"X-Shopify-Shop-Api-Call-Limit": "32/40"}, None, None, id="shopify-left"),
    pytest.param(
        429,
        {"Retry-After": "2.0", "X-Shopify-Shop-Api-Call-Limit": "40/40"},
        2.0,
        "Retry-After",
        id="shopify-429",
    ),
    pytest.param(
        429,
        {
            "Ratelimit": '"default";r=0;t=30',
            "Ratelimit-Policy": '"default";q=1200;w=300',
            "Retry-After": "30",
        },
        30.0,
        "RateLimit",
        id="cloudflare-ietf",
    ),
    pytest.param(
        429,
        {
            "RateLimit-Limit": "60",
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Observed": "67",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(int(NOW) + 30),
            "RateLimit-ResetTime": http_date(NOW + 30),
            "Retry-After": "30",
        },
        30.0,
        "RateLimit-Reset",
        id="gitlab-429",
    ),
    pytest.param(
        429,
        {
            "X-Rate-Limit-Limit": "600",
            "X-Rate-Limit-Remaining": "0",
            "X-Rate-Limit-Reset": str(int(NOW) + 45),
        },
        45.0,
        "X-Rate-Limit-Reset",
        id="okta-429",
    ),
    pytest.param(429, {"Retry-After": "30"}, 30.0, "Retry-After", id="slack-429"),
]


@pytest.mark.parametrize(("status", "headers", "delay", "reason"), PROVIDERS)
def test_provider_dialects(
    status: int, headers: dict[str, str], delay: float | None, reason: str | None
) -> None:
    """Each provider's documented headers give the pause a careful client takes, named."""
    feedback = parse_feedback(status, headers, now=NOW)
    if delay is None:
        assert feedback.delay is None
    else:
        assert feedback.delay == pytest.approx(delay, abs=1e-6)
    assert feedback.reason == reason
    assert feedback.throttled == (status in (429, 503))
    pairs = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    assert parse_feedback(status, pairs, now=NOW) == feedback  # byte pairs read alike
    if delay:
        assert may_carry_feedback(status, headers)


@pytest.mark.parametrize(
    ("headers", "quota"),
    [
        pytest.param(
            {
                "anthropic-ratelimit-requests-limit": "50",
                "anthropic-ratelimit-requests-remaining": "49",
                "anthropic-ratelimit-tokens-limit": "80000",
            },
            (Rate(50, 60),),
            id="anthropic-requests-per-minute",
        ),
        pytest.param(
            {
                "X-HubSpot-RateLimit-Max": "100",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Secondly": "10",
                "X-HubSpot-RateLimit-Daily": "250000",
            },
            (Rate(100, 10), Rate(10, 1), Rate(250000, 86400)),
            id="hubspot-interval-second-day",
        ),
        pytest.param(
            {"RateLimit-Limit": "60", "RateLimit-Name": "throttle_authenticated_api"},
            (Rate(60, 60),),
            id="gitlab-per-minute",
        ),
        pytest.param({"RateLimit-Limit": "60"}, (), id="ratelimit-limit-without-gitlab-markers"),
        pytest.param(
            {"x-ratelimit-limit-requests": "14400", "x-ratelimit-limit-tokens": "18000"},
            (),
            id="openai-groq-window-unknown-not-adopted",
        ),
        pytest.param({"X-Shopify-Shop-Api-Call-Limit": "1/40"}, (), id="shopify-plan-unknown"),
        pytest.param({"X-RateLimit-Limit": "300"}, (), id="mastodon-no-window"),
    ],
)
def test_dialect_quotas_need_a_known_window(
    headers: dict[str, str], quota: tuple[Rate, ...]
) -> None:
    """A limit becomes a quota only when its dialect says (or documents) its window."""
    assert parse_feedback(200, headers, now=NOW).quota == quota


def test_budgets_per_dimension_and_meaning_of_reset() -> None:
    """One Feedback reports each dimension: limit, remaining, reset, and which reset it is."""
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "10",
        "anthropic-ratelimit-requests-reset": iso(NOW + 12),
        "anthropic-ratelimit-tokens-limit": "80000",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": iso(NOW + 60),
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": iso(NOW + 60),
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "8000",
        "anthropic-ratelimit-output-tokens-reset": iso(NOW),
        "x-ratelimit-remaining": "7",
        "x-ratelimit-reset": "30",
    }
    feedback = parse_feedback(200, headers, now=NOW)
    by_dimension = {(b.dimension, b.bucket): b for b in feedback.budgets}
    assert by_dimension["requests", True] == Budget(
        "requests",
        limit=50,
        remaining=10,
        reset=pytest.approx(12.0),  # type: ignore[arg-type]
        window=60.0,
        bucket=True,
        source="anthropic-ratelimit-requests-reset",
    )
    assert by_dimension["tokens", True].remaining == 0
    assert by_dimension["input_tokens", True].limit == 40000
    assert by_dimension["output_tokens", True].reset == 0.0
    fixed = by_dimension["requests", False]
    assert (fixed.remaining, fixed.reset, fixed.source) == (7, 30.0, "X-RateLimit-Reset")
    assert feedback.remaining == 7  # the smallest request count, whatever the dialect
    # Two token dimensions exhausted: the longer one-token refill, of the smaller bucket.
    assert feedback.delay == pytest.approx(60 / 40000)
    assert feedback.reason == "anthropic-ratelimit-input-tokens-reset"


def test_budget_wait_by_meaning() -> None:
    """A fixed window waits for its reset; a bucket for one unit's refill."""
    fixed = Budget("requests", limit=100, remaining=0, reset=30.0)
    bucket = Budget("requests", limit=100, remaining=0, reset=30.0, bucket=True)
    assert fixed.wait() == 30.0
    assert bucket.wait() == pytest.approx(0.3)
    assert Budget("requests", remaining=0, reset=30.0, bucket=True).wait() == 30.0  # no limit
    assert Budget("requests", remaining=3, reset=30.0).wait() is None
    assert Budget("requests", remaining=3, reset=30.0).wait(refused=True) == 30.0
    assert Budget("requests", remaining=0, window=10.0).wait() == 10.0  # rolling, no reset
    assert Budget("requests", remaining=0).wait() is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("1.5s", 1.5),
        ("20ms", 0.02),
        ("6m0s", 360.0),
        ("4m12.172s", 252.172),
        ("1h2m3s", 3723.0),
        ("100us", 1e-4),
        ("250µs", 2.5e-4),
        ("0s", 0.0),
        ("7.66", 7.66),
        ("-1s", None),
        ("1d", None),
        ("s", None),
        ("1s2", None),
        ("", None),
        ("1e3s", None),
        ("9" * 70 + "s", None),
    ],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    """OpenAI's resets are Go durations; anything else is malformed."""
    result = parse_duration(text)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "when"),
    [
        ("2026-12-01T20:05:00Z", 1796155500.0),
        ("2026-12-01T20:05:00.123Z", 1796155500.123),
        ("2026-12-01T20:05:00+00:00", 1796155500.0),
        ("2026-12-01T21:05:00+01:00", 1796155500.0),
        ("2026-12-01T20:05Z", 1796155500.0),
        ("2026-12-01 20:05:00z", 1796155500.0),
        ("2026-12-01T20:05:00", 1796155500.0),
        ("2026-12-01T20:05:60Z", 1796155559.0),
        ("2026-02-30T20:05:00Z", None),
        ("2026-12-01T20:05:00+24:00", None),
        ("2026-12-01", None),
        ("tomorrow", None),
    ],
)
def test_rfc3339_times(text: str, when: float | None) -> None:
    """Anthropic's, Mastodon's and Jira's resets are RFC 3339 / ISO 8601 times."""
    result = parse_rfc3339(text)
    if when is None:
        assert result is None
    else:
        assert result == pytest.approx(when)


def test_every_pausing_name_holds_a_fragment_the_pre_check_searches() -> None:
    """may_carry_feedback's substring search on pairs covers every pausing name."""
    for name in PAUSING_NAMES:
        assert any(fragment in name for fragment in _PAUSING_FRAGMENTS), name
    assert PAUSING_NAMES <= DIALECT_NAMES


def test_github_403_reports_the_cap_and_the_request() -> None:
    """A GitHub reset half an hour away is cut to the cap, and the uncapped ask is kept."""
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 1800)}
    feedback = parse_feedback(403, headers, now=NOW)
    assert feedback.delay == 300.0
    assert feedback.requested == pytest.approx(1800.0)
    assert feedback.capped
    assert feedback.remaining == 0
    assert not feedback.throttled


def test_ietf_policy_quotas_become_rates() -> None:
    """The draft's RateLimit-Policy quotas come back as Rate values, request quotas only."""
    headers = {
        "RateLimit-Policy": (
            '"burst";q=100;w=60, "daily";q=1000;w=86400, "bytes";q=65536;qu="content-bytes";w=1'
        )
    }
    feedback = parse_feedback(200, headers, now=NOW)
    assert feedback.quota == (Rate(100, 60), Rate(1000, 86400))
    assert feedback.delay is None


@pytest.mark.parametrize(
    ("headers", "quota"),
    [
        pytest.param(
            {"RateLimit-Policy": "10;w=1, 50;w=60"}, (Rate(10, 1), Rate(50, 60)), id="d07"
        ),
        pytest.param({"RateLimit-Limit": "10, 10;w=1"}, (Rate(10, 1),), id="draft-03-limit"),
        pytest.param({"X-RateLimit-Limit": "60;window=60"}, (Rate(60, 60),), id="x-window"),
        pytest.param({"X-RateLimit-Limit": "5000"}, (), id="github-limit-without-window"),
        pytest.param({"RateLimit-Policy": '"p";q=0;w=1'}, (), id="zero-quota-ignored"),
        pytest.param({"RateLimit-Policy": '"p";q=1.5;w=1'}, (), id="fractional-quota-ignored"),
        pytest.param({"RateLimit-Policy": '"p";q=5;w=0'}, (), id="zero-window-ignored"),
        pytest.param({"RateLimit-Policy": '"p";q=5;w=-1'}, (), id="negative-window-ignored"),
        pytest.param({"RateLimit-Policy": '"p";q=5'}, (), id="no-window"),
    ],
)
def test_quota_forms(headers: dict[str, str], quota: tuple[Rate, ...]) -> None:
    """Quotas are read from every draft's form; unusable ones are dropped."""
    assert parse_feedback(200, headers, now=NOW).quota == quota


def test_remaining_is_the_smallest_advertised() -> None:
    """Remaining counts from several families resolve to the smallest."""
    headers = [
        ("X-RateLimit-Remaining", "40"),
        ("RateLimit", '"a";r=12;t=5, "b";r=7;t=9'),
        ("X-RateLimit-Remaining", "30"),
    ]
    assert parse_feedback(200, headers, now=NOW).remaining == 7


# -- inputs: mappings, pairs, bytes, case ------------------------------------------------


def test_pairs_bytes_and_case() -> None:
    """Iterables of (name, value) pairs work, with bytes and any case."""
    pairs: list[tuple[str | bytes, str | bytes]] = [(b"RETRY-AFTER", b"12"), ("x-unrelated", "1")]
    assert parse_feedback(429, pairs, now=NOW).delay == 12.0


def test_duplicate_retry_after_takes_the_longest() -> None:
    """Duplicated Retry-After values resolve to the most conservative (longest)."""
    pairs = [("Retry-After", "5"), ("Retry-After", "50"), ("Retry-After", "junk")]
    assert parse_feedback(429, pairs, now=NOW).delay == 50.0


def test_aiohttp_multidict_duplicates_are_read() -> None:
    """aiohttp's CIMultiDict: case-insensitive, duplicates all read."""
    from multidict import CIMultiDict, CIMultiDictProxy

    headers = CIMultiDictProxy(CIMultiDict([("retry-after", "3"), ("Retry-After", "9")]))
    assert parse_feedback(503, headers, now=NOW).delay == 9.0


def test_httpx_headers_duplicates_are_read() -> None:
    """httpx.Headers joins duplicates with commas on lookup; the parser reads each one."""
    import httpx

    headers = httpx.Headers([("Retry-After", http_date(NOW + 20)), ("Retry-After", "4")])
    feedback = parse_feedback(429, headers, now=NOW)
    assert feedback.delay == pytest.approx(20.0)


def test_server_date_guards_against_a_fast_client_clock() -> None:
    """An absolute reset is measured from the server's Date too; the later reading wins."""
    server_now = NOW - 10  # our clock runs 10 s ahead of the server's
    headers = {
        "Date": http_date(server_now),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(server_now) + 30),
    }
    assert parse_feedback(200, headers, now=NOW).delay == pytest.approx(30.0)


def test_cap_none_ignores_times_but_keeps_quotas() -> None:
    """max_retry_after=None: no delay at all, quotas still reported."""
    headers = {"Retry-After": "10", "RateLimit-Policy": '"d";q=5;w=1'}
    feedback = parse_feedback(429, headers, now=NOW, max_retry_after=None)
    assert feedback.delay is None
    assert feedback.reason is None
    assert feedback.quota == (Rate(5, 1),)


def test_bad_cap_is_a_programming_error() -> None:
    """A negative cap raises with the house wording."""
    with pytest.raises(ValueError, match="max_retry_after must be a finite number"):
        parse_feedback(429, {}, now=NOW, max_retry_after=-1)


# -- hostile input -----------------------------------------------------------------------

HOSTILE = [
    pytest.param("-5", None, id="negative"),
    pytest.param("+5", None, id="signed"),
    pytest.param("NaN", None, id="nan"),
    pytest.param("inf", None, id="inf"),
    pytest.param("1e9", None, id="exponent"),
    pytest.param("٣٠", None, id="arabic-indic-digits"),
    pytest.param("\uff13\uff10", None, id="fullwidth-digits"),
    pytest.param("30 seconds", None, id="words"),
    pytest.param("", None, id="empty"),
    pytest.param("\x00\xff\xfe", None, id="binary"),
    pytest.param("9" * 500, 300.0, id="enormous-digits"),
    pytest.param("99999999999999999999", 300.0, id="enormous"),
    pytest.param("Fri, 31 Dec 9999 23:59:59 GMT", 300.0, id="far-future-date"),
    pytest.param("Thu, 01 Jan 1970 00:00:00 GMT", 0.0, id="epoch-date"),
    pytest.param("Mon, 31 Feb 2030 00:00:00 GMT", None, id="impossible-date"),
    pytest.param("Mon, 01 Foo 2030 00:00:00 GMT", None, id="bad-month"),
    pytest.param("Mon, 01 Jan 2030 25:00:00 GMT", None, id="bad-hour"),
    pytest.param("1" * 5000, None, id="over-long-value-ignored"),
]


@pytest.mark.parametrize(("value", "delay"), HOSTILE)
def test_hostile_retry_after(value: str, delay: float | None) -> None:
    """Malformed Retry-After values are ignored; enormous ones are capped."""
    assert parse_feedback(429, {"Retry-After": value}, now=NOW).delay == delay


def test_malformed_value_never_shortens_a_valid_one() -> None:
    """A junk duplicate next to a valid value leaves the valid pause in place."""
    pairs = [("Retry-After", "-1000"), ("Retry-After", "40"), ("Retry-After", "nan")]
    assert parse_feedback(429, pairs, now=NOW).delay == 40.0


def test_negative_remaining_counts_as_none_left() -> None:
    """A negative remaining count is read as 0: pause until the reset."""
    headers = {"X-RateLimit-Remaining": "-3", "X-RateLimit-Reset": "12"}
    feedback = parse_feedback(200, headers, now=NOW)
    assert feedback.delay == 12.0
    assert feedback.remaining == 0


def test_contradictory_remaining_takes_the_strictest() -> None:
    """Remaining 5 and 0 for the same family: 0 wins and the reset applies."""
    pairs = [
        ("X-RateLimit-Remaining", "5"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", "8"),
        ("X-RateLimit-Reset", "3"),
    ]
    assert parse_feedback(200, pairs, now=NOW).delay == 8.0


def test_repeated_structured_parameters_take_the_strictest() -> None:
    """RateLimit: '"d";r=5;r=0;t=1;t=20' pauses for 20 s."""
    headers = {"RateLimit": '"d";r=5;r=0;t=1;t=20'}
    assert parse_feedback(200, headers, now=NOW).delay == 20.0


def test_unbalanced_quotes_and_garbage_structured_fields() -> None:
    """Broken structured fields give no pause and no quota, and do not raise."""
    for value in ['"unterminated;r=0;t=5', ";;;,,,", "=;=,=", '"a"\\', "r=0;t=5;" * 100]:
        feedback = parse_feedback(200, {"RateLimit": value, "RateLimit-Policy": value}, now=NOW)
        assert feedback.delay is None or 0 <= feedback.delay <= 300


def test_not_headers_at_all() -> None:
    """Anything that is not headers gives an empty decision instead of raising."""
    assert parse_feedback(429, None, now=NOW) == Feedback()  # type: ignore[arg-type]
    assert parse_feedback(429, [1, (2,), ("a", "b", "c")], now=NOW).delay is None  # type: ignore[list-item]
    assert parse_feedback(429, {"Retry-After": None}, now=NOW).delay is None  # type: ignore[arg-type]


# -- HTTP-date ---------------------------------------------------------------------------


def test_http_date_three_forms_agree() -> None:
    """RFC 9110 §5.6.7's example in its three forms names one instant."""
    forms = [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ]
    assert {parse_http_date(form, now=NOW) for form in forms} == {784111777.0}


def test_rfc850_two_digit_year_window() -> None:
    """A two-digit year over 50 years ahead is read as the past century's."""
    assert parse_http_date("Friday, 01-Jan-50 00:00:00 GMT", now=NOW) == pytest.approx(
        datetime(2050, 1, 1, tzinfo=UTC).timestamp()
    )
    assert parse_http_date("Friday, 01-Jan-80 00:00:00 GMT", now=NOW) == pytest.approx(
        datetime(1980, 1, 1, tzinfo=UTC).timestamp()
    )


def test_parse_retry_after_direct() -> None:
    """The public helper returns uncapped seconds or None."""
    assert parse_retry_after("3600", now=NOW) == 3600.0
    assert parse_retry_after(http_date(NOW + 5), now=NOW) == pytest.approx(5.0)
    assert parse_retry_after("soon", now=NOW) is None


# -- fuzzing -----------------------------------------------------------------------------

NAMES = st.sampled_from(
    [
        "Retry-After",
        "retry-after",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-RateLimit-Limit",
        "X-RateLimit-Reset-After",
        "RateLimit",
        "RateLimit-Policy",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "RateLimit-Limit",
        "Date",
        "Other",
        "retry-after-ms",
        *sorted(DIALECT_NAMES),
    ]
)
ATOMS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "1.5", "-0", "nan", "inf", "1e400", '"', ";", ",", "=", " "]),
    st.builds(http_date, st.floats(min_value=-1e10, max_value=2.5e11)),
    st.builds(iso, st.floats(min_value=-1e10, max_value=2.5e11)),
    st.sampled_from(["1s", "6m0s", "4m12.172s", "20ms", "1h2m3s", "40/40", "32/40", "0/0"]),
    st.text(max_size=20),
)
VALUES = st.one_of(
    ATOMS,
    st.lists(
        st.tuples(
            ATOMS,
            st.lists(
                st.tuples(st.sampled_from(["r", "t", "q", "w", "qu", "x"]), ATOMS), max_size=4
            ),
        ),
        max_size=4,
    ).map(lambda members: ", ".join(i + "".join(f";{k}={v}" for k, v in p) for i, p in members)),
    st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
)
HEADERS = st.lists(st.tuples(NAMES, VALUES), max_size=8)
STATUSES = st.sampled_from([200, 403, 429, 503, 500])
CAPS = st.one_of(st.none(), st.floats(min_value=0, max_value=1e6))
NOWS = st.floats(min_value=0, max_value=4e9)


@settings(max_examples=400, deadline=None)
@given(status=STATUSES, headers=HEADERS, now=NOWS, cap=CAPS)
def test_fuzz_never_raises_never_exceeds_the_cap(
    status: int, headers: list[tuple[str, str]], now: float, cap: float | None
) -> None:
    """Whatever the headers, the inner parser does not raise (no safety net involved), and
    the delay is None or a finite number in [0, cap]."""
    feedback = _parse(status, headers, now, cap)
    assert feedback == parse_feedback(status, headers, now=now, max_retry_after=cap)
    if feedback.delay is not None:
        assert cap is not None
        assert math.isfinite(feedback.delay)
        assert 0.0 <= feedback.delay <= cap
    if feedback.requested is not None:
        assert not math.isnan(feedback.requested)
        assert feedback.requested >= 0
    assert feedback.remaining is None or feedback.remaining >= 0
    for rate in feedback.quota:
        assert rate.limit >= 1
        assert 0 < rate.period < math.inf


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=40), now=NOWS)
def test_fuzz_http_date(value: str, now: float) -> None:
    """parse_http_date never raises and returns a finite time or None."""
    when = parse_http_date(value, now=now)
    assert when is None or math.isfinite(when)


# -- the cheap pre-check -----------------------------------------------------------------


class CaseInsensitive(Mapping[str, str]):
    """A minimal case-insensitive Mapping, as aiohttp's CIMultiDict and httpx's Headers are."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def __getitem__(self, name: str) -> str:
        for key, value in self._pairs:
            if key.lower() == name.lower():
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(key for key, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)


@pytest.mark.parametrize(("status", "headers", "delay", "reason"), CASES)
def test_every_table_pause_passes_the_pre_check(
    status: int, headers: object, delay: float | None, reason: str | None
) -> None:
    """Every response of the table that asks for a pause passes may_carry_feedback."""
    if delay is not None and delay > 0:
        assert may_carry_feedback(status, headers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        pytest.param(200, {"Content-Type": "text/html", "Date": "x"}, False, id="plain-200"),
        pytest.param(404, {}, False, id="404-bare"),
        pytest.param(500, [("Server", "x")], False, id="500-bare"),
        pytest.param(403, {}, True, id="403-always"),
        pytest.param(429, [], True, id="429-always"),
        pytest.param(503, {}, True, id="503-always"),
        pytest.param(200, {"X-RateLimit-Remaining": "5"}, True, id="dict-any-case"),
        pytest.param(200, [(b"x-rate-limit-remaining", b"0")], True, id="bytes-pair"),
        pytest.param(200, [(" RateLimit-Remaining\t", "0")], True, id="padded-name"),
        pytest.param(200, [("RATELIMIT", "r=0")], True, id="ietf-field"),
        pytest.param(200, [("RateLimit-Policy", "q=1;w=1")], True, id="policy-pairs-superset"),
        pytest.param(200, CaseInsensitive([("RateLimit-Policy", "q=1")]), False, id="policy-map"),
        pytest.param(200, CaseInsensitive([("X-Ratelimit-Remaining", "0")]), True, id="mapping"),
        pytest.param(200, CaseInsensitive([("Server", "x")]), False, id="mapping-none"),
        pytest.param(200, [("X", "1", "extra"), "junk", (1, 2)], True, id="odd-pairs"),
        pytest.param(200, [("Server", "x"), (b"Date", b"y")], True, id="mixed-types"),
        pytest.param(200, iter([("Server", "x")]), False, id="iterator"),
        pytest.param(200, [], False, id="no-headers"),
        pytest.param(200, None, True, id="not-iterable"),
    ],
)
def test_may_carry_feedback(status: int, headers: object, expected: bool) -> None:
    """The pre-check looks at the status and the names of the pausing fields only."""
    assert may_carry_feedback(status, headers) is expected  # type: ignore[arg-type]


def test_pre_check_reads_as_far_as_the_parser() -> None:
    """A pausing field beyond the first 1000 header lines is ignored by both."""
    headers = [("X-Filler", "1")] * 1000 + [("X-RateLimit-Remaining", "0")]
    headers.append(("X-RateLimit-Reset", "10"))
    assert not may_carry_feedback(200, headers)
    assert parse_feedback(200, headers, now=NOW).delay is None


@settings(max_examples=400, deadline=None)
@given(status=STATUSES, headers=HEADERS, now=NOWS, cap=CAPS, form=st.sampled_from(range(3)))
def test_fuzz_pre_check_never_misses_a_pause(
    status: int, headers: list[tuple[str, str]], now: float, cap: float | None, form: int
) -> None:
    """When may_carry_feedback says no, parse_feedback gives no delay, in every headers form."""
    given_headers: object = (
        headers,
        CaseInsensitive(headers),
        [(name.encode("latin-1"), value.encode("latin-1", "replace")) for name, value in headers],
    )[form]
    if not may_carry_feedback(status, given_headers):  # type: ignore[arg-type]
        feedback = parse_feedback(status, given_headers, now=now, max_retry_after=cap)  # type: ignore[arg-type]
        assert feedback.delay is None
