"""Header values, one grammar at a time: pure functions that return `None` on bad input.

The dialect readers (`throttled_http._dialects`) and
[`parse_feedback`][throttled_http.parse_feedback] build on these. None of them raises on any string;
every number they return is finite or `inf` (never NaN), and every time is a Unix time in seconds.

* `number`: a plain decimal (`"12"`, `"1.5"`, `"598.0"`), the form every
  count and delta-seconds takes.
* `parse_http_date`: an `HTTP-date` (RFC 9110 §5.6.7), all three forms.
* `parse_rfc3339`: an RFC 3339 / ISO 8601 date-time (`2026-12-01T20:05:00Z`), as
  Anthropic, Mastodon and Jira send their resets.
* `parse_duration`: a Go duration (`1s`, `6m0s`, `20ms`, `1h2m3s`), as
  OpenAI and Groq send theirs.
* `members`: a structured-field List (RFC 9651 §3.1), read tolerantly.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "MAX_MEMBERS",
    "is_plain",
    "members",
    "non_negative",
    "number",
    "parse_duration",
    "parse_http_date",
    "parse_rfc3339",
    "unquote",
]

MAX_MEMBERS: Final = 64  # list members read per structured field
_MAX_DATE_CHARS: Final = 64

_NUMBER_RE: Final = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_MONTHS: Final = {
    name: index
    for index, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
# IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" and rfc850-date "Sunday, 06-Nov-94 08:49:37 GMT".
_DATE_RE: Final = re.compile(
    r"(?:[a-z]+,[ \t]*)?([0-9]{1,2})[ -]([a-z]{3})[ -]([0-9]{2}|[0-9]{4})[ \t]+"
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:[ \t]*(?:gmt|utc))?",
    re.ASCII | re.IGNORECASE,
)
# asctime-date "Sun Nov  6 08:49:37 1994".
_ASCTIME_RE: Final = re.compile(
    r"[a-z]{3}[ \t]+([a-z]{3})[ \t]+([0-9]{1,2})[ \t]+([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"[ \t]+([0-9]{4})",
    re.ASCII | re.IGNORECASE,
)
# RFC 3339 §5.6 date-time, with ISO 8601's optional seconds and a missing offset read as UTC.
_RFC3339_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:[.,]([0-9]{1,12}))?)?[ \t]*(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?",
    re.ASCII,
)
# Go's time.ParseDuration: one or more "<decimal><unit>" with no sign here (a wait is >= 0).
_DURATION_RE: Final = re.compile(r"(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def number(text: str) -> float | None:
    """A plain decimal number (ASCII digits, optional sign and fraction), else `None`.

    >>> number(" 598.0 "), number("1e9"), number("٣٠")
    (598.0, None, None)
    """
    text = text.strip(" \t")
    if not _NUMBER_RE.fullmatch(text):
        return None
    return float(text)  # linear in the length; may be inf for 400 digits, never NaN


def is_plain(text: str) -> bool:
    """Whether a number has no sign, as `delay-seconds` must not (RFC 9110 §10.2.3)."""
    return text.strip(" \t")[:1] not in ("+", "-")


def non_negative(seconds: float) -> float:
    """`seconds`, or `0.0` when it is negative (or NaN)."""
    return seconds if seconds > 0 else 0.0


def parse_duration(text: str) -> float | None:
    """Seconds a Go duration names (`time.Duration.String()`), or `None` if malformed.

    OpenAI and Groq send their resets this way. A plain number is read as seconds, as some
    compatible servers send it; signs and exponents are malformed.

    >>> parse_duration("6m0s"), parse_duration("4m12.172s"), parse_duration("20ms")
    (360.0, 252.172, 0.02)
    >>> parse_duration("1h2m3s"), parse_duration("1.5"), parse_duration("-1s")
    (3723.0, 1.5, None)
    """
    text = text.strip(" \t")
    if len(text) > _MAX_DATE_CHARS or not text:
        return None
    plain = number(text)
    if plain is not None:
        return plain if plain >= 0 and is_plain(text) else None
    if not _DURATION_RE.fullmatch(text):
        return None
    total = 0.0
    for value, unit in _DURATION_PART_RE.findall(text):
        total += float(value) * _UNITS[unit]
    return total if math.isfinite(total) else None


def parse_rfc3339(text: str) -> float | None:
    """The Unix time an RFC 3339 date-time names, or `None` if malformed.

    Reads `2026-12-01T20:05:00Z`, `2026-12-01T20:05:00.123Z` and
    `2026-12-01T20:05:00+00:00` (RFC 3339 §5.6), and ISO 8601's shorter forms that
    servers send: no seconds (`2024-05-10T19:42Z`), a space for the `T`, no offset
    (read as UTC). A leap second reads as second 59.

    >>> parse_rfc3339("1970-01-01T00:02:00Z"), parse_rfc3339("1970-01-01T01:02:00+01:00")
    (120.0, 120.0)
    >>> parse_rfc3339("1970-01-01T00:00:00.250Z"), parse_rfc3339("tomorrow") is None
    (0.25, True)
    """
    text = text.strip(" \t")
    if len(text) > _MAX_DATE_CHARS:
        return None
    match = _RFC3339_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = match.groups()
    try:
        when = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            min(int(second or 0), 59),
            tzinfo=UTC,
        )
    except ValueError:  # month 13, 31 Feb, hour 25, year 0
        return None
    seconds = when.timestamp() + (float("0." + fraction) if fraction else 0.0)
    if sign is not None:
        hours, minutes = int(off_h), int(off_m)
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes).total_seconds()
        seconds -= offset if sign == "+" else -offset
    return seconds


def parse_http_date(value: str, *, now: float | None = None) -> float | None:
    """The Unix time an `HTTP-date` names (RFC 9110 §5.6.7), or `None` if malformed.

    Reads the three forms a recipient must accept: `IMF-fixdate`
    (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete `rfc850-date`
    (`Sunday, 06-Nov-94 08:49:37 GMT`) and `asctime-date` (`Sun Nov  6 08:49:37 1994`).
    A two-digit year more than 50 years after `now` is taken as the most recent past year
    with the same last two digits, as §5.6.7 requires. Case and the day name are not
    checked; a leap second reads as second 59.

    >>> parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
    784111777.0
    >>> parse_http_date("Sun Nov  6 08:49:37 1994")
    784111777.0
    >>> parse_http_date("yesterday") is None
    True
    """
    text = value.strip(" \t")
    if len(text) > _MAX_DATE_CHARS:
        return None
    match = _DATE_RE.fullmatch(text)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
        if len(year) == 2:
            year = str(_two_digit_year(int(year), now))
    else:
        match = _ASCTIME_RE.fullmatch(text)
        if match is None:
            return None
        month, day, hour, minute, second, year = match.groups()
    month_number = _MONTHS.get(month.lower())
    if month_number is None:
        return None
    try:
        when = datetime(
            int(year),
            month_number,
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),
            tzinfo=UTC,
        )
    except ValueError:  # 31 Feb, hour 25, year 0
        return None
    return when.timestamp()


def _two_digit_year(year: int, now: float | None) -> int:
    current = (
        datetime.now(UTC).year
        if now is None or not math.isfinite(now) or not -6e10 < now < 2.5e11
        else datetime.fromtimestamp(now, UTC).year
    )
    full = current - current % 100 + year
    if full > current + 50:
        full -= 100
    return full


def members(value: str) -> list[tuple[str, dict[str, str]]]:
    """Split a structured-field List (RFC 9651 §3.1), tolerantly.

    Members are separated by commas outside double quotes, parameters by semicolons; the
    item comes back unquoted, parameter names lower-cased, values unquoted. For counts and
    times (`r`, `q`, `t`, `w`) a repeated parameter keeps the strictest value.

    >>> members('"burst";q=100;w=60, "daily";q=1000;w=86400')
    [('burst', {'q': '100', 'w': '60'}), ('daily', {'q': '1000', 'w': '86400'})]
    """
    found: list[tuple[str, dict[str, str]]] = []
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
                continue
            elif char == '"':
                quoted = False
            current.append(char)
        elif char == '"':
            quoted = True
            current.append(char)
        elif char in ",;":
            parts.append("".join(current))
            current = []
            if char == ",":
                found.append(_member(parts))
                parts = []
                if len(found) >= MAX_MEMBERS:
                    return found
        else:
            current.append(char)
    parts.append("".join(current))
    found.append(_member(parts))
    return found


def _member(parts: list[str]) -> tuple[str, dict[str, str]]:
    item = unquote(parts[0])
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, _, text = part.partition("=")
        name = name.strip(" \t").lower()
        value = unquote(text)
        if name not in params or name not in _STRICTEST:
            params[name] = value  # RFC 9651 §4.2.3.2: a repeated parameter overwrites ...
            continue
        old, new = number(params[name]), number(value)
        if new is not None and (old is None or _STRICTEST[name](new, old)):
            params[name] = value  # ... but for counts and times the strictest one stays
    return item, params


_STRICTEST: Final[dict[str, Callable[[float, float], bool]]] = {
    "r": lambda new, old: new < old,  # fewest remaining
    "q": lambda new, old: new < old,  # smallest quota
    "t": lambda new, old: new > old,  # latest reset
    "w": lambda new, old: new > old,  # longest window
}


def unquote(text: str) -> str:
    """`text` without surrounding blanks and one pair of double quotes."""
    text = text.strip(" \t")
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text
