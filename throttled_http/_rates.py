"""Rates: `Rate(limit, period)` values and the `"10/s"` notation.

The notation is the one the `limits` package uses, so existing configuration carries over:

```text
10/s   10/sec   10/second   100/min   100/15min   5000/h   5000/hour   86400/d
10 per second   10 per 5 minutes   3/2s   1/0.5s
```

A string may carry several limits separated by `;` or `,` (`"10/s; 1000/h"`): every
one of them must allow an entry before it is admitted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeAlias, final

from ._exceptions import InvalidRateError
from ._validate import positive_float, positive_int

__all__ = ["Rate", "RateLike", "RatesLike", "parse_rates"]

_UNITS: dict[str, float] = {}
for _names, _seconds in (
    (("ms", "msec", "millisecond", "milliseconds"), 0.001),
    (("s", "sec", "secs", "second", "seconds"), 1.0),
    (("m", "min", "mins", "minute", "minutes"), 60.0),
    (("h", "hr", "hrs", "hour", "hours"), 3600.0),
    (("d", "day", "days"), 86400.0),
):
    for _name in _names:
        _UNITS[_name] = _seconds

# Largest unit first: str() picks the largest unit that divides the period exactly.
_FORMAT_UNITS = (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0))

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RATE_RE = re.compile(
    rf"""^\s*
    (?P<limit>{_NUMBER})\s*
    (?:/|\s+per\s+|per\s+)\s*
    (?P<count>{_NUMBER})?\s*
    (?P<unit>[A-Za-z]+)
    \s*$""",
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)
_MAX_TEXT = 200  # characters; far beyond any real rate, well below int()'s digit limit

_FORMS = (
    "'<limit>/<unit>' or '<limit> per <unit>', optionally with a count before the unit "
    "('100/15min', '10 per 5 minutes'); <limit> is a whole number; units: "
    "ms, s/sec/second, min/minute, h/hour, d/day"
)


@final
@dataclass(frozen=True, slots=True)
class Rate:
    """At most `limit` entries in any window of `period` seconds.

    A frozen, hashable value. `str(rate)` gives the shortest notation that
    [`parse`][throttled_http.Rate.parse] reads back to an equal rate.

    Examples:
        >>> Rate(100, 900)
        Rate(100/15min)
        >>> str(Rate.parse("5000 per hour"))
        '5000/h'
        >>> Rate.parse("3/2s").per_second
        1.5

    Args:
        limit: entries allowed per window, an int >= 1.
        period: the window's length in seconds, a finite number > 0.

    Raises:
        TypeError, ValueError: on a limit or period out of range, naming the argument.
    """

    limit: int
    period: float

    def __post_init__(self) -> None:
        positive_int("limit", self.limit)
        object.__setattr__(self, "period", positive_float("period", self.period))

    @property
    def per_second(self) -> float:
        """The long-run rate in entries per second."""
        return self.limit / self.period

    @property
    def interval(self) -> float:
        """Seconds between entries when they are spaced evenly (`period / limit`)."""
        return self.period / self.limit

    def __str__(self) -> str:
        period = self.period
        for name, seconds in _FORMAT_UNITS:
            count = period / seconds
            if count >= 1 and count == int(count) and int(count) * seconds == period:
                whole = int(count)
                return f"{self.limit}/{name}" if whole == 1 else f"{self.limit}/{whole}{name}"
        return f"{self.limit}/{period!r}s"

    def __repr__(self) -> str:
        return f"Rate({self})"

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse one rate such as `"10/s"`, `"100/15min"` or `"10 per 5 minutes"`.

        Surrounding white space is allowed; the limit must be a whole number (write
        `"3/2s"`, not `"1.5/s"`).

        Examples:
            >>> Rate.parse(" 10 per 5 minutes ")
            Rate(10/5min)
            >>> Rate.parse("86400/d")
            Rate(86400/d)

        Raises:
            InvalidRateError: (a ValueError) quoting the text and the accepted forms.
        """
        if not isinstance(text, str):
            raise TypeError(f"a rate must be a str such as '10/s', got {text!r}")
        if len(text) > _MAX_TEXT:
            raise InvalidRateError(
                f"cannot parse rate {text[:40]!r}... ({len(text)} characters): expected {_FORMS}"
            )
        match = _RATE_RE.match(text)
        if match is None:
            raise InvalidRateError(f"cannot parse rate {text!r}: expected {_FORMS}")
        unit = match["unit"].lower()
        seconds = _UNITS.get(unit)
        if seconds is None:
            raise InvalidRateError(f"unknown unit {match['unit']!r} in rate {text!r}: {_FORMS}")
        limit_text = match["limit"]
        count = float(match["count"]) if match["count"] else 1.0
        if not limit_text.isdigit() and Fraction(limit_text) > 0:
            scaled = _scaled(limit_text, count, seconds)
            example = (
                f"{scaled!r} rather than {text.strip()!r}"
                if scaled is not None
                else "for example '3/2s' rather than '1.5/s'"
            )
            raise InvalidRateError(
                f"the limit in rate {text!r} must be a whole number; "
                f"scale both sides instead: {example}"
            )
        period = count * seconds
        if not (math.isfinite(period) and period > 0):
            raise InvalidRateError(f"the period in rate {text!r} must be finite and > 0")
        if not limit_text.isdigit() or int(limit_text) < 1:
            raise InvalidRateError(f"the limit in rate {text!r} must be at least 1")
        return cls(int(limit_text), period)

    @classmethod
    def parse_many(cls, text: str) -> tuple[Rate, ...]:
        """Parse one or more rates separated by `;` or `,`.

        Examples:
            >>> Rate.parse_many("10/s; 1000/h")
            (Rate(10/s), Rate(1000/h))
        """
        if not isinstance(text, str):
            raise TypeError(f"rates must be a str such as '10/s; 1000/h', got {text!r}")
        parts = [part for part in re.split(r"[;,]", text) if part.strip()]
        if not parts:
            raise InvalidRateError(f"no rate in {text!r}: expected {_FORMS}")
        return tuple(cls.parse(part) for part in parts)


def _scaled(limit_text: str, count: float, seconds: float) -> str | None:
    """The whole-number form of a fractional rate (`1.5/s` -> `3/2s`), if it has one."""
    ratio = Fraction(limit_text).limit_denominator(10**6)
    if ratio <= 0:
        return None
    try:
        return f"{ratio.numerator}/{str(Rate(1, count * seconds * ratio.denominator))[2:]}"
    except (ValueError, OverflowError):
        return None


RateLike: TypeAlias = "Rate | str"
"""A `Rate`, or a string `Rate.parse_many` reads."""

RatesLike: TypeAlias = "RateLike | Iterable[RateLike]"
"""One rate-like value, or several."""


def parse_rates(*specs: RatesLike) -> tuple[Rate, ...]:
    """Flatten rates given as [`Rate`][throttled_http.Rate] values, strings, or iterables of them.

    Examples:
        >>> parse_rates("10/s; 1000/h", Rate(5, 1))
        (Rate(10/s), Rate(1000/h), Rate(5/s))

    Raises:
        InvalidRateError: for an unparsable string; TypeError for anything else.
    """
    rates: list[Rate] = []
    for spec in specs:
        if isinstance(spec, Rate):
            rates.append(spec)
        elif isinstance(spec, str):
            rates.extend(Rate.parse_many(spec))
        elif isinstance(spec, Iterable):
            rates.extend(parse_rates(*spec))
        else:
            raise TypeError(f"a rate must be a Rate or a str such as '10/s', got {spec!r}")
    if not rates:
        raise ValueError("at least one rate is required, got none")
    return tuple(rates)


def resolve_rates(rate_limit: object, period: object, rates: RatesLike | None) -> tuple[Rate, ...]:
    """The rates of a `(rate_limit=None, period=None, *, rates=None)` signature.

    `rates`, or `rate_limit` as a [`Rate`][throttled_http.Rate] or a rate string, stand
    alone; an int `rate_limit` goes with `period` (default 1.0). Nothing given means 10 per
    second. An argument that the others would leave unused is a `TypeError` naming both.
    """
    if rates is not None:
        for name, value in (("rate_limit", rate_limit), ("period", period)):
            if value is not None:
                raise TypeError(
                    f"rates= and {name}= were both given; rates= replaces rate_limit and "
                    f"period: drop {name}="
                )
        return parse_rates(rates)
    if isinstance(rate_limit, (Rate, str)):
        if period is not None:
            raise TypeError(
                f"rate_limit={rate_limit!r} carries its own period, so period= would be "
                "unused: drop period=, or give rate_limit as an int"
            )
        return parse_rates(rate_limit)
    if rate_limit is None:
        rate_limit = 10
    if period is None:
        period = 1.0
    return (Rate(positive_int("rate_limit", rate_limit), positive_float("period", period)),)
