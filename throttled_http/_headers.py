"""Turn a response's status and headers into one decision: pure, total, never raises.

Servers say "slow down" in several dialects, and [`parse_feedback`][throttled_http.parse_feedback]
reads them all (the readers live in `throttled_http._dialects`, one per dialect):

* `Retry-After` (RFC 9110 §10.2.3) on a 429, 503 (or a 403, as GitHub's secondary rate
  limits send it): `delay-seconds` or an `HTTP-date` (RFC 9110 §5.6.7); and
  `retry-after-ms` (OpenAI, Azure OpenAI), the more precise one when both are sent.
* The de-facto `X-RateLimit-Limit` / `X-RateLimit-Remaining` / `X-RateLimit-Reset`
  family (also spelt `X-Rate-Limit-*`, and `RateLimit-*` as in drafts -00 to -06 of
  draft-ietf-httpapi-ratelimit-headers), on any status: a fixed window, where
  `Remaining: 0` asks for a pause until the reset (seconds, a Unix epoch, or an ISO
  8601 time as Mastodon and Jira send).
* The IETF structured fields of draft-ietf-httpapi-ratelimit-headers (-07 to -10):
  `RateLimit-Policy: "default";q=100;w=60` advertises a quota of `q` requests per `w`
  seconds; `RateLimit: "default";r=0;t=30` says nothing remains for `t` seconds.
* Token buckets, per dimension (requests, tokens, input and output tokens): OpenAI's
  `x-ratelimit-*-requests` / `-tokens` (Go durations), Anthropic's
  `anthropic-ratelimit-*` (RFC 3339 times), Shopify's call limit; where `remaining: 0`
  means wait for one unit to drip back, not for the whole reset.
* HubSpot's `X-HubSpot-RateLimit-*`, a rolling interval of known length.

The result is a [`Feedback`][throttled_http.Feedback]: how long to pause (capped), why, what each
dimension has left ([`Budget`][throttled_http.Budget]), and the quotas whose window is known. What
to *do* with it is [`FeedbackPolicy`][throttled_http.FeedbackPolicy]'s job.

**Hostile input.** Header values are untrusted. Malformed, negative, NaN-like, non-ASCII or
over-long values are ignored (they never shorten a pause another header asked for);
duplicated or contradictory headers resolve to the most conservative reading (the longest
pause, the smallest remaining count); dates in the past mean "no wait"; anything beyond
`max_retry_after` is cut to it. The returned delay is always a finite number in
`[0, max_retry_after]` or `None`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, TypeAlias, final

from ._dialects import NAMES, PAUSING_NAMES, Budget, read_all
from ._fields import is_plain, non_negative, number, parse_http_date
from ._validate import non_negative_float

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._rates import Rate

__all__ = [
    "THROTTLE_STATUSES",
    "Budget",
    "Feedback",
    "HeadersLike",
    "may_carry_feedback",
    "parse_feedback",
    "parse_http_date",
    "parse_retry_after",
]

HeadersLike: TypeAlias = "Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]"
"""Response headers: a case-insensitive Mapping (aiohttp `CIMultiDict`, httpx `Headers`)
or an iterable of `(name, value)` pairs (`str` or `bytes`), duplicates allowed."""

THROTTLE_STATUSES: Final = frozenset({429, 503})
"""Statuses by which a server refuses a request for load: 429 Too Many Requests (RFC 6585
§4) and 503 Service Unavailable (RFC 9110 §15.6.4)."""

# Retry-After is also honoured on a 403: GitHub's secondary rate limits answer 403 with it.
_RETRY_AFTER_STATUSES: Final = frozenset({403, 429, 503})
_RETRY_AFTER_MS: Final = ("retry-after-ms", "x-ms-retry-after-ms")

# Bounds on the work one response can cause.
_MAX_FIELDS: Final = 1000  # header lines looked at
_MAX_VALUE_CHARS: Final = 4096  # longer values are ignored as malformed
_MAX_QUOTAS: Final = 16  # advertised quotas reported
_MAX_BUDGETS: Final = 16  # budgets reported

_NAMES: Final = NAMES | {"retry-after", "date", *_RETRY_AFTER_MS}
# may_carry_feedback looks for these names only (see PAUSING_NAMES), in a Mapping ...
_PAUSING_LOOKUPS: Final = tuple(sorted(PAUSING_NAMES))
# ... and, in pairs, for these fragments, one of which each pausing name holds.
_PAUSING_FRAGMENTS: Final = ("ratelimit", "rate-limit", "call-limit")


@final
@dataclass(frozen=True, slots=True)
class Feedback:
    """What one response says about the rate at which the server wants requests.

    Attributes:
        delay: seconds to admit nothing more to this server, in `[0, max_retry_after]`;
            `None` when no header asks for a pause (or `max_retry_after` is `None`).
            `0.0` when the time the server named has already passed.
        reason: the header behind `delay` (`"Retry-After"`, `"X-RateLimit-Reset"`,
            `"RateLimit"`, `"x-ratelimit-reset-requests"` ...), or `None`.
        requested: the uncapped seconds the server asked for (may be `inf`), or `None`.
        quota: the quotas the server advertises whose window is known, strictest reading
            of each, as [`Rate`][throttled_http.Rate] values (`RateLimit-Policy`, a
            `Limit` header with a `w` window, HubSpot's interval, Anthropic's and
            GitLab's minute); empty when none.
        remaining: the smallest remaining request count advertised, or `None`.
        throttled: the status is 429 or 503: the server refused the request for load.
        budgets: what each dialect reports per dimension (requests, tokens, input and
            output tokens): limit, remaining, reset and its meaning; empty when none.

    Changed in 0.2: `budgets`; `quota` also holds the dialects' documented windows.
    """

    delay: float | None = None
    reason: str | None = None
    requested: float | None = None
    quota: tuple[Rate, ...] = ()
    remaining: int | None = None
    throttled: bool = False
    budgets: tuple[Budget, ...] = ()

    @property
    def capped(self) -> bool:
        """Whether the server asked for a longer pause than `max_retry_after` allows."""
        return self.requested is not None and self.delay is not None and self.requested > self.delay


_EMPTY: Final = Feedback()
_REFUSED: Final = Feedback(throttled=True)


def parse_feedback(
    status: int,
    headers: HeadersLike,
    *,
    now: float,
    max_retry_after: float | None = 300.0,
) -> Feedback:
    """Read a response's status and headers into a [`Feedback`][throttled_http.Feedback].

    It never raises on the status or the headers.

    The pause (`delay`) is the longest of:

    * `Retry-After` on a 403, 429 or 503 (RFC 9110 §10.2.3): `delay-seconds` as given,
      an `HTTP-date` (RFC 9110 §5.6.7) minus `now`. `retry-after-ms` (or
      `x-ms-retry-after-ms`) on the same statuses, in milliseconds: when both are sent
      and agree to within a second, the milliseconds win (they are the precise one);
      when they disagree, the longer;
    * for each fixed window (`X-RateLimit-*`, `X-Rate-Limit-*`, `RateLimit-*`)
      whose `Remaining` is 0 or less, on any status (GitHub answers 403 with
      `X-RateLimit-Remaining: 0`), and on a 429 whatever `Remaining` says: its
      `Reset`. A Reset below 10**9 is seconds from now, up to 10**11 a Unix epoch in
      seconds, beyond that a Unix epoch in milliseconds; an ISO 8601 time is read too;
      `X-RateLimit-Reset-After` is always seconds;
    * for each token bucket (OpenAI `x-ratelimit-*-requests` / `-tokens`, Anthropic
      `anthropic-ratelimit-*`, Shopify) with nothing remaining: one unit's refill,
      `reset / (limit - remaining)`; on a 429 where no dimension of the dialect is
      exhausted, every dimension's (the refusal says something is);
    * HubSpot: a whole `Interval-Milliseconds` (or second, or day) once its
      `Remaining` is 0;
    * for each member of the IETF `RateLimit` field (draft-ietf-httpapi-ratelimit-headers)
      with `r` of 0 or less: its `t` seconds, or without `t` the `w` window of the
      `RateLimit-Policy` of the same name.

    An absolute time is measured from `now` and, when the response has a valid `Date`
    header, from that too: the later of the two readings wins, so a client clock running
    ahead of the server's cannot shorten a pause. The result is then capped at
    `max_retry_after`.

    Examples:
        >>> fb = parse_feedback(429, {"Retry-After": "120"}, now=0.0)
        >>> fb.delay, fb.reason, fb.throttled
        (120.0, 'Retry-After', True)
        >>> fb = parse_feedback(200, [("RateLimit-Policy", '"default";q=100;w=60'),
        ...                           ("RateLimit", '"default";r=0;t=30')], now=0.0)
        >>> fb.delay, fb.quota
        (30.0, (Rate(100/min),))
        >>> fb = parse_feedback(429, {"x-ratelimit-limit-requests": "60",
        ...                           "x-ratelimit-remaining-requests": "0",
        ...                           "x-ratelimit-reset-requests": "6s"}, now=0.0)
        >>> fb.delay, fb.reason, fb.budgets[0].bucket
        (0.1, 'x-ratelimit-reset-requests', True)
        >>> parse_feedback(429, {"Retry-After": "soon"}, now=0.0).delay is None
        True

    Args:
        status: the HTTP status code.
        headers: a Mapping (case-insensitive lookups, as aiohttp's `CIMultiDict` and
            httpx's `Headers` do; their duplicates are read too) or an iterable of
            `(name, value)` pairs, `str` or `bytes` (bytes are read as Latin-1).
        now: the current Unix time in seconds (`time.time()`), to measure dates against.
        max_retry_after: the longest pause to return, in seconds (a finite number >= 0);
            `None` ignores every time the server gives (`delay` is always `None`)
            while still reporting quotas and budgets.

    Returns:
        The decision. Malformed values are ignored and contradictory ones resolved to
        the longest pause; any unexpected failure gives an empty
        [`Feedback`][throttled_http.Feedback] (no pause) rather than an exception.

    Raises:
        TypeError, ValueError: only for a bad `max_retry_after` (a programming error).
    """
    cap = (
        None if max_retry_after is None else non_negative_float("max_retry_after", max_retry_after)
    )
    try:
        return _parse(status, headers, now, cap)
    except Exception:  # a last line of defence: feedback must never break a request
        return _EMPTY


def may_carry_feedback(status: int, headers: HeadersLike) -> bool:
    """Whether [`parse_feedback`][throttled_http.parse_feedback] could ask for a pause (cheap).

    `False` means that `parse_feedback(status, headers, ...)` returns no `delay`
    whatever `now` and `max_retry_after` are, so a client that only acts on pauses
    may skip it. It is `True` for every 403, 429 and 503 (`Retry-After`, or a refusal
    whose `Reset` applies whatever `Remaining` says) and for any response carrying a
    count of what remains in any dialect (`X-RateLimit-Remaining`,
    `x-ratelimit-remaining-requests`, `anthropic-ratelimit-tokens-remaining`,
    `X-HubSpot-RateLimit-Remaining`, `X-Shopify-Shop-Api-Call-Limit` ...) or an IETF
    `RateLimit` field; the values are not read. Advertised quotas (`RateLimit-Policy`,
    `*-Limit`) are not looked for: a client that follows them must parse every response.

    Examples:
        >>> may_carry_feedback(200, {"Content-Type": "text/html"})
        False
        >>> may_carry_feedback(200, [(b"X-RateLimit-Remaining", b"0")])
        True
        >>> may_carry_feedback(429, {})
        True

    Args:
        status: the HTTP status code.
        headers: as for [`parse_feedback`][throttled_http.parse_feedback]. A Mapping other than a
            `dict` is asked for the lower-case names, so it must be case-insensitive (aiohttp's
            `CIMultiDict` and httpx's `Headers` are); the names of a `dict` or of
            `(name, value)` pairs (the first 1000, as
            [`parse_feedback`][throttled_http.parse_feedback] reads) are searched for `ratelimit`,
            `rate-limit` and `call-limit` in any case, which may also say `True` for a field that
            asks for no pause (such as `RateLimit-Policy`).

    Returns:
        Whether the response may carry a pause; `True` for input it cannot read (such
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
        # Every pausing name holds one of the fragments: search all the names at once,
        # in C, rather than loop over the pairs in Python.
        if isinstance(next(iter(names), ""), str):
            text = "\n".join(names).lower()  # a name of another type raises TypeError
            return "ratelimit" in text or "rate-limit" in text or "call-limit" in text
        blob = b"\n".join(names).lower()
        return b"ratelimit" in blob or b"rate-limit" in blob or b"call-limit" in blob
    except Exception:  # odd input (not pairs, mixed types): let parse_feedback decide
        return True


def parse_retry_after(value: str, *, now: float) -> float | None:
    """Seconds to wait that a `Retry-After` value names, uncapped; `None` if malformed.

    RFC 9110 §10.2.3: `Retry-After = HTTP-date / delay-seconds`. Seconds may carry a
    fraction (`"1.5"`, which some servers send); signs, exponents and non-ASCII digits are
    malformed. A date already past gives `0.0`.

    >>> parse_retry_after("120", now=0.0)
    120.0
    >>> parse_retry_after("Thu, 01 Jan 1970 00:02:00 GMT", now=60.0)
    60.0
    >>> parse_retry_after("-5", now=0.0) is None
    True
    """
    return _retry_after(value, now, lambda when: non_negative(when - now))


# -- internals -----------------------------------------------------------------------


def _parse(status: int, headers: HeadersLike, now: float, cap: float | None) -> Feedback:
    fields = _collect(headers)
    throttled = status in THROTTLE_STATUSES
    if not fields or fields.keys() == {"date"}:
        return _REFUSED if throttled else _EMPTY

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
        return non_negative(delay)

    reading = read_all(fields, status == 429, until)
    pauses = reading.pauses
    if status in _RETRY_AFTER_STATUSES:
        asked = _server_retry_after(fields, now, until)
        if asked is not None:
            pauses.append(asked)

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
    least = min(reading.remaining) if reading.remaining else None
    return Feedback(
        delay=delay,
        reason=reason,
        requested=requested if cap is not None else None,
        quota=_unique(reading.quota, _MAX_QUOTAS),
        remaining=None if least is None else int(max(0.0, min(least, 2.0**62))),
        throttled=throttled,
        budgets=_unique(reading.budgets, _MAX_BUDGETS),
    )


def _server_retry_after(
    fields: dict[str, list[str]], now: float, until: Callable[[float], float]
) -> tuple[float, str] | None:
    """The wait `Retry-After` and `retry-after-ms` name together, and which one it is."""
    seconds = [
        s
        for value in fields.get("retry-after", ())
        if (s := _retry_after(value, now, until)) is not None
    ]
    millis = [
        n / 1000.0
        for name in _RETRY_AFTER_MS
        for value in fields.get(name, ())
        if (n := number(value)) is not None and n >= 0 and is_plain(value)
    ]
    whole = max(seconds) if seconds else None
    precise = max(millis) if millis else None
    if precise is None:
        return None if whole is None else (whole, "Retry-After")
    if whole is None or abs(whole - precise) < 1.0 or precise > whole:
        return precise, "retry-after-ms"
    return whole, "Retry-After"  # they disagree: the longer one


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
    seconds = number(value)
    if seconds is not None:
        return seconds if seconds >= 0 and is_plain(value) else None
    when = parse_http_date(value, now=now)
    return None if when is None else until(when)


def _unique(values: list[Any], most: int) -> tuple[Any, ...]:
    seen: dict[Any, None] = {}
    for value in values:
        seen.setdefault(value, None)
        if len(seen) >= most:
            break
    return tuple(seen)
