"""The pure server-feedback parser: every header form, real-world examples, hostile input."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throttled_http import Feedback, Rate, parse_feedback
from throttled_http._headers import _parse, may_carry_feedback, parse_http_date, parse_retry_after

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z, a fixed "now" for absolute times


def http_date(when: float) -> str:
    """An IMF-fixdate for the Unix time ``when``."""
    return format_datetime(datetime.fromtimestamp(when, UTC), usegmt=True)


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
    ]
)
ATOMS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "1.5", "-0", "nan", "inf", "1e400", '"', ";", ",", "=", " "]),
    st.builds(http_date, st.floats(min_value=-1e10, max_value=2.5e11)),
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
