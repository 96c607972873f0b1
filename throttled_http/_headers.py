"""Turn a response's status and headers into one decision: pure, total, never raises.

Servers say "slow down" in three ways, and :func:`parse_feedback` reads them all:

* ``Retry-After`` (RFC 9110 §10.2.3) on a 429, 503 (or a 403, as GitHub's secondary rate
  limits send it): ``delay-seconds`` or an ``HTTP-date`` (RFC 9110 §5.6.7).
* The de-facto ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset``
  family (also spelt ``X-Rate-Limit-*``, and ``RateLimit-*`` as in drafts -00 to -06 of
  draft-ietf-httpapi-ratelimit-headers), on any status. ``Remaining: 0`` asks for a pause
  until the reset, given in seconds or as a Unix epoch (GitHub sends the epoch).
* The IETF structured fields of draft-ietf-httpapi-ratelimit-headers (-08 to -10):
  ``RateLimit-Policy: "default";q=100;w=60`` advertises a quota of ``q`` requests per ``w``
  seconds; ``RateLimit: "default";r=0;t=30`` says nothing remains for ``t`` seconds. The
  draft -07 dictionary ``RateLimit: limit=10, remaining=0, reset=7`` is read too.

The result is a :class:`Feedback`: how long to pause (capped), why, and the quotas the
server advertises. What to *do* with it is :class:`~throttled_http.FeedbackPolicy`'s job.

**Hostile input.** Header values are untrusted. Malformed, negative, NaN-like, non-ASCII or
over-long values are ignored (they never shorten a pause another header asked for);
duplicated or contradictory headers resolve to the most conservative reading (the longest
pause, the smallest remaining count); dates in the past mean "no wait"; anything beyond
``max_retry_after`` is cut to it. The returned delay is always a finite number in
``[0, max_retry_after]`` or ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, TypeAlias, final

from ._rates import Rate
from ._validate import non_negative_float

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "THROTTLE_STATUSES",
    "Feedback",
    "HeadersLike",
    "may_carry_feedback",
    "parse_feedback",
    "parse_http_date",
    "parse_retry_after",
]

HeadersLike: TypeAlias = "Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]"
"""Response headers: a case-insensitive Mapping (aiohttp ``CIMultiDict``, httpx ``Headers``)
or an iterable of ``(name, value)`` pairs (``str`` or ``bytes``), duplicates allowed."""

THROTTLE_STATUSES: Final = frozenset({429, 503})
"""Statuses by which a server refuses a request for load: 429 Too Many Requests (RFC 6585
§4) and 503 Service Unavailable (RFC 9110 §15.6.4)."""

# Retry-After is also honoured on a 403: GitHub's secondary rate limits answer 403 with it.
_RETRY_AFTER_STATUSES: Final = frozenset({403, 429, 503})

# Bounds on the work one response can cause.
_MAX_FIELDS: Final = 1000  # header lines looked at
_MAX_VALUE_CHARS: Final = 4096  # longer values are ignored as malformed
_MAX_MEMBERS: Final = 64  # list members read per structured field
_MAX_QUOTAS: Final = 16  # advertised quotas reported

# A Reset value below this many seconds is a delta; at or above, a Unix epoch in seconds;
# at or above _EPOCH_MS, a Unix epoch in milliseconds.
_EPOCH_S: Final = 1e9  # 2001-09-09, and 31 years as a delta: far beyond any cap
_EPOCH_MS: Final = 1e11  # 5138 as seconds, 1973 as milliseconds

_FAMILIES: Final = ("x-ratelimit-", "x-rate-limit-", "ratelimit-")
_NAMES: Final = frozenset(
    {"retry-after", "date", "ratelimit", "ratelimit-policy", "x-ratelimit-reset-after"}
    | {prefix + part for prefix in _FAMILIES for part in ("limit", "remaining", "reset")}
)

# The fields that can ask for a pause on a response whose status is not in
# _RETRY_AFTER_STATUSES: a "Remaining" count of a family (whose Reset is then read) and the
# IETF RateLimit field (whose r=0 pauses). may_carry_feedback looks for these only.
_PAUSING_NAMES: Final = frozenset({prefix + "remaining" for prefix in _FAMILIES} | {"ratelimit"})
_PAUSING_LOOKUPS: Final = tuple(sorted(_PAUSING_NAMES))

_NUMBER_RE: Final = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
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


@final
@dataclass(frozen=True, slots=True)
class Feedback:
    """What one response says about the rate at which the server wants requests.

    Attributes:
        delay: seconds to admit nothing more to this server, in ``[0, max_retry_after]``;
            ``None`` when no header asks for a pause (or ``max_retry_after`` is ``None``).
            ``0.0`` when the time the server named has already passed.
        reason: the header behind ``delay`` (``"Retry-After"``, ``"X-RateLimit-Reset"``,
            ``"RateLimit"`` ...), or ``None``.
        requested: the uncapped seconds the server asked for (may be ``inf``), or ``None``.
        quota: the quotas the server advertises, strictest reading of each, as
            :class:`~throttled_http.Rate` values (``RateLimit-Policy`` or a ``Limit`` header
            with a ``w`` window); empty when none.
        remaining: the smallest remaining request count advertised, or ``None``.
        throttled: the status is 429 or 503: the server refused the request for load.
    """

    delay: float | None = None
    reason: str | None = None
    requested: float | None = None
    quota: tuple[Rate, ...] = ()
    remaining: int | None = None
    throttled: bool = False

    @property
    def capped(self) -> bool:
        """Whether the server asked for a longer pause than ``max_retry_after`` allows."""
        return self.requested is not None and self.delay is not None and self.requested > self.delay


_EMPTY: Final = Feedback()


def parse_feedback(
    status: int,
    headers: HeadersLike,
    *,
    now: float,
    max_retry_after: float | None = 300.0,
) -> Feedback:
    """Read a response's status and headers into a :class:`Feedback`; never raises on them.

    The pause (``delay``) is the longest of:

    * ``Retry-After`` on a 403, 429 or 503 (RFC 9110 §10.2.3): ``delay-seconds`` as given,
      an ``HTTP-date`` (RFC 9110 §5.6.7) minus ``now``;
    * the ``Reset`` of an ``X-RateLimit-*``, ``X-Rate-Limit-*`` or ``RateLimit-*`` family
      whose ``Remaining`` is 0 or less, on any status (GitHub answers 403 with
      ``X-RateLimit-Remaining: 0``), and on a 429 whatever ``Remaining`` says. A Reset
      below 10**9 is seconds from now, up to 10**11 a Unix epoch in seconds, beyond that
      a Unix epoch in milliseconds;
      ``X-RateLimit-Reset-After`` is always seconds;
    * for each member of the IETF ``RateLimit`` field (draft-ietf-httpapi-ratelimit-headers)
      with ``r`` of 0 or less: its ``t`` seconds, or without ``t`` the ``w`` window of the
      ``RateLimit-Policy`` of the same name.

    An absolute time is measured from ``now`` and, when the response has a valid ``Date``
    header, from that too: the later of the two readings wins, so a client clock running
    ahead of the server's cannot shorten a pause. The result is then capped at
    ``max_retry_after``.

    >>> fb = parse_feedback(429, {"Retry-After": "120"}, now=0.0)
    >>> fb.delay, fb.reason, fb.throttled
    (120.0, 'Retry-After', True)
    >>> fb = parse_feedback(200, [("RateLimit-Policy", '"default";q=100;w=60'),
    ...                           ("RateLimit", '"default";r=0;t=30')], now=0.0)
    >>> fb.delay, fb.quota
    (30.0, (Rate(100/min),))
    >>> parse_feedback(429, {"Retry-After": "soon"}, now=0.0).delay is None
    True

    Args:
        status: the HTTP status code.
        headers: a Mapping (case-insensitive lookups, as aiohttp's ``CIMultiDict`` and
            httpx's ``Headers`` do; their duplicates are read too) or an iterable of
            ``(name, value)`` pairs, ``str`` or ``bytes`` (bytes are read as Latin-1).
        now: the current Unix time in seconds (``time.time()``), to measure dates against.
        max_retry_after: the longest pause to return, in seconds (a finite number >= 0);
            ``None`` ignores every time the server gives (``delay`` is always ``None``)
            while still reporting quotas.

    Returns:
        The decision. Malformed values are ignored and contradictory ones resolved to
        the longest pause; any unexpected failure gives an empty :class:`Feedback` (no
        pause) rather than an exception.

    Raises:
        TypeError, ValueError: only for a bad ``max_retry_after`` (a programming error).
    """
    cap = (
        None if max_retry_after is None else non_negative_float("max_retry_after", max_retry_after)
    )
    try:
        return _parse(status, headers, now, cap)
    except Exception:  # a last line of defence: feedback must never break a request
        return _EMPTY


def may_carry_feedback(status: int, headers: HeadersLike) -> bool:
    """Whether :func:`parse_feedback` could ask for a pause on this response: a cheap test.

    ``False`` means that ``parse_feedback(status, headers, ...)`` returns no ``delay``
    whatever ``now`` and ``max_retry_after`` are, so a client that only acts on pauses
    may skip it. It is ``True`` for every 403, 429 and 503 (``Retry-After``, or a refusal
    whose ``Reset`` applies whatever ``Remaining`` says) and for any response carrying a
    ``Remaining`` count (``X-RateLimit-Remaining``, ``X-Rate-Limit-Remaining``,
    ``RateLimit-Remaining``) or an IETF ``RateLimit`` field; the values are not read.
    Advertised quotas (``RateLimit-Policy``, ``*-Limit``) are not looked for: a client
    that follows them must parse every response.

    >>> may_carry_feedback(200, {"Content-Type": "text/html"})
    False
    >>> may_carry_feedback(200, [(b"X-RateLimit-Remaining", b"0")])
    True
    >>> may_carry_feedback(429, {})
    True

    Args:
        status: the HTTP status code.
        headers: as for :func:`parse_feedback`. A Mapping other than a ``dict`` is asked
            for the lower-case names, so it must be case-insensitive (aiohttp's
            ``CIMultiDict`` and httpx's ``Headers`` are); the names of a ``dict`` or of
            ``(name, value)`` pairs (the first 1000, as :func:`parse_feedback` reads) are
            searched for ``ratelimit`` and ``rate-limit`` in any case, which may also say
            ``True`` for a field that asks for no pause (such as ``RateLimit-Policy``).

    Returns:
        Whether the response may carry a pause; ``True`` for input it cannot read (such
        as items that are not pairs). Never raises on the headers.
    """
    if status in _RETRY_AFTER_STATUSES:
        return True
    try:
        given: Any = headers  # untrusted: its items are checked by what they do in C
        kind = type(given)
        if kind is list or kind is tuple:
            names = dict(given[:_MAX_FIELDS]).keys()
        elif kind is dict:
            names = given.keys()
        elif isinstance(given, Mapping):
            for name in _PAUSING_LOOKUPS:  # noqa: SIM110 - a loop is 2x cheaper than any()
                if name in given:
                    return True
            return False
        else:
            names = dict(islice(given, _MAX_FIELDS)).keys()
        # Every pausing name holds "ratelimit" or "rate-limit": search all the names at
        # once, in C, rather than loop over the pairs in Python.
        if isinstance(next(iter(names), ""), str):
            text = "\n".join(names).lower()  # a name of another type raises TypeError
            return "ratelimit" in text or "rate-limit" in text
        blob = b"\n".join(names).lower()
        return b"ratelimit" in blob or b"rate-limit" in blob
    except Exception:  # odd input (not pairs, mixed types): let parse_feedback decide
        return True


def parse_retry_after(value: str, *, now: float) -> float | None:
    """Seconds to wait that a ``Retry-After`` value names, uncapped; ``None`` if malformed.

    RFC 9110 §10.2.3: ``Retry-After = HTTP-date / delay-seconds``. Seconds may carry a
    fraction (``"1.5"``, which some servers send); signs, exponents and non-ASCII digits are
    malformed. A date already past gives ``0.0``.

    >>> parse_retry_after("120", now=0.0)
    120.0
    >>> parse_retry_after("Thu, 01 Jan 1970 00:02:00 GMT", now=60.0)
    60.0
    >>> parse_retry_after("-5", now=0.0) is None
    True
    """
    return _retry_after(value, now, lambda when: _non_negative(when - now))


def parse_http_date(value: str, *, now: float | None = None) -> float | None:
    """The Unix time an ``HTTP-date`` names (RFC 9110 §5.6.7), or ``None`` if malformed.

    Reads the three forms a recipient must accept: ``IMF-fixdate``
    (``Sun, 06 Nov 1994 08:49:37 GMT``), the obsolete ``rfc850-date``
    (``Sunday, 06-Nov-94 08:49:37 GMT``) and ``asctime-date`` (``Sun Nov  6 08:49:37 1994``).
    A two-digit year more than 50 years after ``now`` is taken as the most recent past year
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
    if len(text) > 64:
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


# -- internals -----------------------------------------------------------------------


def _parse(status: int, headers: HeadersLike, now: float, cap: float | None) -> Feedback:
    fields = _collect(headers)
    throttled = status in THROTTLE_STATUSES
    if not fields or fields.keys() == {"date"}:
        return Feedback(throttled=True) if throttled else _EMPTY

    dates = fields.get("date")
    server: list[float | None] = []  # the server's clock, read on first need

    def until(when: float) -> float:
        """Seconds to an absolute time, the later reading of the two clocks."""
        if not server:
            server.append(parse_http_date(dates[0], now=now) if dates else None)
        delay = when - now
        server_now = server[0]
        if server_now is not None and when - server_now > delay:
            delay = when - server_now
        return _non_negative(delay)

    pauses: list[tuple[float, str]] = []
    remaining: list[float] = []
    quota: list[Rate] = []

    if status in _RETRY_AFTER_STATUSES:
        for value in fields.get("retry-after", ()):
            seconds = _retry_after(value, now, until)
            if seconds is not None:
                pauses.append((seconds, "Retry-After"))

    _read_families(fields, status == 429, until, pauses, remaining, quota)
    _read_structured(fields, pauses, remaining, quota)

    requested = None
    reason = None
    for seconds, source in pauses:
        if requested is None or seconds > requested:
            requested, reason = seconds, source
    delay = None
    if requested is not None and cap is not None:
        delay = requested if requested < cap else cap
    else:
        reason = None
    least = min(remaining) if remaining else None
    return Feedback(
        delay=delay,
        reason=reason,
        requested=requested if cap is not None else None,
        quota=_unique(quota),
        remaining=None if least is None else int(max(0.0, min(least, 2.0**62))),
        throttled=throttled,
    )


def _collect(headers: HeadersLike) -> dict[str, list[str]]:
    """The values of the fields we read, by lower-case name, duplicates kept in order."""
    pairs: Iterable[object]
    if isinstance(headers, Mapping):
        multi_items = getattr(headers, "multi_items", None)  # httpx.Headers joins duplicates
        pairs = multi_items() if callable(multi_items) else headers.items()
    else:
        pairs = headers
    fields: dict[str, list[str]] = {}
    for count, pair in enumerate(pairs):
        if count >= _MAX_FIELDS:
            break
        if not isinstance(pair, tuple) or len(pair) != 2:
            continue
        name = _text(pair[0]).strip(" \t").lower()
        if name in _NAMES:
            value = _text(pair[1])
            if len(value) <= _MAX_VALUE_CHARS:
                fields.setdefault(name, []).append(value)
    return fields


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _retry_after(value: str, now: float, until: Callable[[float], float]) -> float | None:
    seconds = _number(value)
    if seconds is not None:
        return seconds if seconds >= 0 and _is_plain(value) else None
    when = parse_http_date(value, now=now)
    return None if when is None else until(when)


def _read_families(
    fields: dict[str, list[str]],
    refused: bool,
    until: Callable[[float], float],
    pauses: list[tuple[float, str]],
    remaining: list[float],
    quota: list[Rate],
) -> None:
    """``X-RateLimit-*``, ``X-Rate-Limit-*`` and ``RateLimit-*`` (drafts -00 to -06).

    The reset applies when the remaining count is 0 or less, or on a 429 (``refused``):
    a refusal says nothing remains, whatever a missing or contradictory count claims.
    """
    for prefix in _FAMILIES:
        left = [n for n in map(_number, fields.get(prefix + "remaining", ())) if n is not None]
        if left:
            remaining.extend(left)
        for value in fields.get(prefix + "limit", ()):
            # "100" alone has no window; "100, 100;w=60" (drafts -00 to -03) does.
            for item, params in _members(value):
                rate = _rate(item, params.get("w") or params.get("window"))
                if rate is not None:
                    quota.append(rate)
        if not refused and (not left or min(left) > 0):
            continue
        name = prefix + "reset"
        resets = [_reset(n, until) for n in map(_number, fields.get(name, ())) if n is not None]
        if prefix == "x-ratelimit-":
            after = map(_number, fields.get("x-ratelimit-reset-after", ()))
            resets.extend(_non_negative(n) for n in after if n is not None)
        if resets:
            pauses.append((max(resets), _TITLES[name]))


_TITLES: Final = {
    "x-ratelimit-reset": "X-RateLimit-Reset",
    "x-rate-limit-reset": "X-Rate-Limit-Reset",
    "ratelimit-reset": "RateLimit-Reset",
}


def _reset(value: float, until: Callable[[float], float]) -> float:
    if value < _EPOCH_S:
        return _non_negative(value)
    if value < _EPOCH_MS:
        return until(value)
    return until(value / 1000.0)


def _read_structured(
    fields: dict[str, list[str]],
    pauses: list[tuple[float, str]],
    remaining: list[float],
    quota: list[Rate],
) -> None:
    """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers)."""
    windows: dict[str, float] = {}
    for value in fields.get("ratelimit-policy", ()):
        for item, params in _members(value):
            unit = params.get("qu", "requests").strip('"')
            if unit != "requests":  # content-bytes or concurrent-requests: not a rate
                continue
            window = _number(params.get("w", ""))
            if window is not None and window > 0 and math.isfinite(window):
                windows[item] = max(window, windows.get(item, 0.0))
            # -08 and later: "name";q=100;w=60. -06/-07: 100;w=60 (the item is the quota).
            rate = _rate(params["q"], params.get("w")) if "q" in params else None
            if rate is None and "q" not in params:
                rate = _rate(item, params.get("w"))
            if rate is not None:
                quota.append(rate)
    for value in fields.get("ratelimit", ()):
        members = _members(value)
        legacy = {
            item.partition("=")[0].strip().lower(): item.partition("=")[2]
            for item, params in members
            if "=" in item and not params
        }
        if legacy:  # draft -07: RateLimit: limit=10, remaining=0, reset=7
            members = [("", {"r": legacy.get("remaining", ""), "t": legacy.get("reset", "")})]
        for item, params in members:
            left = _number(params.get("r", ""))
            if left is None:
                continue
            remaining.append(left)
            if left > 0:
                continue
            reset = _number(params.get("t", ""))
            if reset is not None and reset >= 0:
                pauses.append((reset, "RateLimit"))
            elif item in windows:
                pauses.append((windows[item], "RateLimit-Policy window"))


def _members(value: str) -> list[tuple[str, dict[str, str]]]:
    """Split a structured-field List (RFC 9651 §3.1), tolerantly.

    Members are separated by commas outside double quotes, parameters by semicolons; the
    item comes back unquoted, parameter names lower-cased, values unquoted.
    """
    members: list[tuple[str, dict[str, str]]] = []
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
                members.append(_member(parts))
                parts = []
                if len(members) >= _MAX_MEMBERS:
                    return members
        else:
            current.append(char)
    parts.append("".join(current))
    members.append(_member(parts))
    return members


def _member(parts: list[str]) -> tuple[str, dict[str, str]]:
    item = _unquote(parts[0])
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, _, text = part.partition("=")
        name = name.strip(" \t").lower()
        value = _unquote(text)
        if name not in params or name not in _STRICTEST:
            params[name] = value  # RFC 9651 §4.2.3.2: a repeated parameter overwrites ...
            continue
        old, new = _number(params[name]), _number(value)
        if new is not None and (old is None or _STRICTEST[name](new, old)):
            params[name] = value  # ... but for counts and times the strictest one stays
    return item, params


_STRICTEST: Final[dict[str, Callable[[float, float], bool]]] = {
    "r": lambda new, old: new < old,  # fewest remaining
    "q": lambda new, old: new < old,  # smallest quota
    "t": lambda new, old: new > old,  # latest reset
    "w": lambda new, old: new > old,  # longest window
}


def _unquote(text: str) -> str:
    text = text.strip(" \t")
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def _rate(limit_text: str, window_text: str | None) -> Rate | None:
    """A Rate from a quota and a window in seconds, or ``None`` if either is unusable."""
    if window_text is None:
        return None
    limit = _number(limit_text)
    window = _number(window_text)
    if limit is None or window is None:
        return None
    if not (1 <= limit <= 2.0**53 and limit == int(limit)):
        return None
    if not (0 < window <= 2.0**53):
        return None
    return Rate(int(limit), window)


def _number(text: str) -> float | None:
    """A plain decimal number (ASCII digits, optional sign and fraction), else ``None``."""
    text = text.strip(" \t")
    if not _NUMBER_RE.fullmatch(text):
        return None
    return float(text)  # linear in the length; may be inf for 400 digits, never NaN


def _is_plain(text: str) -> bool:
    """delay-seconds has no sign (RFC 9110 §10.2.3)."""
    return text.strip(" \t")[:1] not in ("+", "-")


def _non_negative(seconds: float) -> float:
    return seconds if seconds > 0 else 0.0  # also maps NaN to 0.0


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


def _unique(rates: list[Rate]) -> tuple[Rate, ...]:
    seen: dict[Rate, None] = {}
    for rate in rates:
        seen.setdefault(rate, None)
        if len(seen) >= _MAX_QUOTAS:
            break
    return tuple(seen)
