"""Rate values and the ``"10/s"`` notation."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throttled_http import InvalidRateError, Rate, parse_rates
from throttled_http._rates import resolve_rates


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("10/s", 10, 1.0),
        ("10/sec", 10, 1.0),
        ("10/second", 10, 1.0),
        ("10/seconds", 10, 1.0),
        ("100/min", 100, 60.0),
        ("100/minute", 100, 60.0),
        ("100/15min", 100, 900.0),
        ("5000/h", 5000, 3600.0),
        ("5000/hour", 5000, 3600.0),
        ("86400/d", 86400, 86400.0),
        ("86400/day", 86400, 86400.0),
        ("10 per second", 10, 1.0),
        ("10 per 5 minutes", 10, 300.0),
        ("3/2s", 3, 2.0),
        ("1/0.5s", 1, 0.5),
        ("50/100ms", 50, 0.1),
        ("  10 / s  ", 10, 1.0),
        ("\t7/S\n", 7, 1.0),
        ("10 PER Second", 10, 1.0),
    ],
    ids=repr,
)
def test_parse_accepted_forms(text: str, limit: int, period: float) -> None:
    """Every documented spelling parses to the expected limit and period."""
    rate = Rate.parse(text)
    assert rate == Rate(limit, period)
    assert rate.limit == limit
    assert math.isclose(rate.period, period)


def test_parse_fractional_limit_suggests_scaling() -> None:
    """A fractional limit is rejected with a suggestion to scale both sides."""
    with pytest.raises(InvalidRateError, match=r"whole number.*'3/2s'") as info:
        Rate.parse("1.5/s")
    assert isinstance(info.value, ValueError)
    assert "'1.5/s'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("2.5/min", "'5/2min'"),
        ("0.5 per second", "'1/2s'"),
        ("0.25/15min", "'1/h'"),
        (".5/h", "'1/2h'"),
        ("1e3/s", "'1000/s'"),
        ("1e-400/s", "for example '3/2s'"),
    ],
    ids=repr,
)
def test_parse_fractional_limit_suggestion_fits_the_input(text: str, suggestion: str) -> None:
    """The suggested whole-number form means the same rate as the fractional input."""
    with pytest.raises(InvalidRateError, match=re.escape(suggestion)):
        Rate.parse(text)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "fast", "10", "10/", "/s", "10/fortnight", "10/month", "-1/s", "ten/s", "10//s"],
    ids=repr,
)
def test_parse_rejects_garbage(text: str) -> None:
    """Garbage raises InvalidRateError (a ValueError) quoting the text and the forms."""
    with pytest.raises(InvalidRateError) as info:
        Rate.parse(text)
    message = str(info.value)
    assert repr(text) in message
    assert "per" in message
    assert "unit" in message


@pytest.mark.parametrize("text", ["0/s", "10/0s", "1/0.0s", "0.0/s", "0e5/s"], ids=repr)
def test_parse_rejects_zero(text: str) -> None:
    """A zero limit or a zero period is refused, quoting the text."""
    with pytest.raises(InvalidRateError, match=repr(text)):
        Rate.parse(text)


def test_parse_rejects_non_string() -> None:
    """Rate.parse refuses anything but a str with a TypeError."""
    with pytest.raises(TypeError, match="str"):
        Rate.parse(10)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/s; 1000/h", (Rate(10, 1), Rate(1000, 3600))),
        ("10/s,1000/h", (Rate(10, 1), Rate(1000, 3600))),
        ("10/s ; 100/min ; 5000/d", (Rate(10, 1), Rate(100, 60), Rate(5000, 86400))),
        ("10/s;", (Rate(10, 1),)),
    ],
    ids=repr,
)
def test_parse_many(text: str, expected: tuple[Rate, ...]) -> None:
    """Several rates split on ';' or ',' in one string."""
    assert Rate.parse_many(text) == expected
    assert parse_rates(text) == expected


def test_parse_many_rejects_empty() -> None:
    """A string with no rate at all is an error, not an empty tuple."""
    with pytest.raises(InvalidRateError):
        Rate.parse_many(" ; , ")


def test_parse_rates_flattens() -> None:
    """parse_rates accepts Rate values, strings and iterables of them, in order."""
    assert parse_rates("10/s; 1000/h", Rate(5, 1), ["2/min", Rate(1, 3)]) == (
        Rate(10, 1),
        Rate(1000, 3600),
        Rate(5, 1),
        Rate(2, 60),
        Rate(1, 3),
    )


def test_parse_rates_rejects_nothing_and_junk() -> None:
    """No rate at all is a ValueError; a non-rate is a TypeError."""
    with pytest.raises(ValueError, match="at least one rate"):
        parse_rates()
    with pytest.raises(TypeError, match="Rate or a str"):
        parse_rates(10)  # type: ignore[arg-type]


def test_resolve_rates() -> None:
    """The (rate_limit, period, *, rates) signature resolves to a tuple of rates."""
    assert resolve_rates(10, 2.0, None) == (Rate(10, 2),)
    assert resolve_rates("10/s; 1000/h", None, None) == (Rate(10, 1), Rate(1000, 3600))
    assert resolve_rates(Rate(3, 1), None, None) == (Rate(3, 1),)
    assert resolve_rates(None, None, "5/s") == (Rate(5, 1),)
    with pytest.raises(ValueError, match="rate_limit must be a positive integer, got 0"):
        resolve_rates(0, 1.0, None)
    with pytest.raises(ValueError, match="period must be a finite number of seconds > 0"):
        resolve_rates(1, -1.0, None)


def test_resolve_rates_defaults_to_ten_per_second() -> None:
    """Nothing given means 10 per 1.0 s; an int alone gets period 1.0, a period alone 10."""
    assert resolve_rates(None, None, None) == (Rate(10, 1.0),)
    assert resolve_rates(3, None, None) == (Rate(3, 1.0),)
    assert resolve_rates(None, 60.0, None) == (Rate(10, 60.0),)


@pytest.mark.parametrize(
    ("rate_limit", "period", "rates", "names"),
    [
        (10, None, "5/s", ("rates=", "rate_limit=")),
        (None, 1.0, "5/s", ("rates=", "period=")),
        (10, 1.0, "5/s", ("rates=", "rate_limit=")),
        ("5/s", 1.0, None, ("rate_limit='5/s'", "period=")),
        (Rate(5, 1), 1.0, None, ("rate_limit=Rate(5/s)", "period=")),
    ],
    ids=[
        "rates-and-rate_limit",
        "rates-and-period",
        "rates-and-both",
        "string-and-period",
        "Rate-and-period",
    ],
)
def test_resolve_rates_refuses_an_argument_left_unused(
    rate_limit: object, period: object, rates: str | None, names: tuple[str, str]
) -> None:
    """An argument the others would leave unused is a TypeError naming both."""
    with pytest.raises(TypeError) as caught:
        resolve_rates(rate_limit, period, rates)
    for name in names:
        assert name in str(caught.value)


def test_rate_value_semantics() -> None:
    """Rate is frozen, hashable, compares by value and has a readable repr."""
    rate = Rate(100, 900)
    assert repr(rate) == "Rate(100/15min)"
    assert str(rate) == "100/15min"
    assert rate == Rate(100, 900.0)
    assert hash(rate) == hash(Rate(100, 900.0))
    assert len({rate, Rate(100, 900), Rate(100, 60)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        rate.limit = 5  # type: ignore[misc]
    assert not hasattr(rate, "__dict__")
    assert rate.per_second == pytest.approx(100 / 900)
    assert rate.interval == 9.0


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (Rate(10, 1), "10/s"),
        (Rate(5000, 3600), "5000/h"),
        (Rate(86400, 86400), "86400/d"),
        (Rate(100, 60), "100/min"),
        (Rate(3, 2), "3/2s"),
        (Rate(1, 0.5), "1/0.5s"),
        (Rate(1, 7200), "1/2h"),
        (Rate(1, 90), "1/90s"),
    ],
    ids=str,
)
def test_str_is_shortest_notation(rate: Rate, text: str) -> None:
    """str() picks the largest unit that divides the period exactly."""
    assert str(rate) == text


@pytest.mark.parametrize(
    ("limit", "period", "error"),
    [
        (0, 1.0, ValueError),
        (-3, 1.0, ValueError),
        (True, 1.0, TypeError),
        (1.5, 1.0, TypeError),
        ("10", 1.0, TypeError),
        (1, 0.0, ValueError),
        (1, -1.0, ValueError),
        (1, math.inf, ValueError),
        (1, math.nan, ValueError),
        (1, "1", TypeError),
        (1, False, TypeError),
    ],
    ids=repr,
)
def test_rate_rejects_bad_values(limit: object, period: object, error: type[Exception]) -> None:
    """Rate validates at construction, naming the argument."""
    with pytest.raises(error, match=r"limit|period"):
        Rate(limit, period)  # type: ignore[arg-type]


rates = st.builds(
    Rate,
    st.integers(min_value=1, max_value=10**9),
    st.one_of(
        st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False),
        st.integers(min_value=1, max_value=10**6).map(float),
        st.sampled_from([1.0, 60.0, 3600.0, 86400.0, 900.0, 0.1, 0.001]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(rates)
def test_round_trip(rate: Rate) -> None:
    """Rate.parse(str(rate)) == rate for every rate, exactly."""
    assert Rate.parse(str(rate)) == rate
    assert Rate.parse(repr(rate)[5:-1]) == rate


@settings(max_examples=100, deadline=None)
@given(st.lists(rates, min_size=1, max_size=5), st.sampled_from(["; ", ",", " ;"]))
def test_round_trip_many(values: list[Rate], separator: str) -> None:
    """Several rates joined by a separator parse back in order."""
    text = separator.join(str(r) for r in values)
    assert Rate.parse_many(text) == tuple(values)


@pytest.mark.parametrize("text", ["\u0663/s", "10/\u0663s", "1\u00b2/s", "10\u2003/s"])
def test_non_ascii_digits_and_spaces_are_rejected(text: str) -> None:
    """Only ASCII digits and white space count: Arabic-Indic or superscript digits do not."""
    with pytest.raises(InvalidRateError, match="cannot parse rate"):
        Rate.parse(text)


def test_an_absurdly_long_rate_is_rejected_with_the_usual_message() -> None:
    """A 5,000-digit limit gets our message, not int()'s digit-limit error."""
    with pytest.raises(InvalidRateError, match="5002 characters") as info:
        Rate.parse("9" * 5000 + "/s")
    assert "expected" in str(info.value)
