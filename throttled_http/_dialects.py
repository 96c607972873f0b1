"""The header dialects servers speak about their limits, each read into `Budget` values.

One reader per dialect; each takes the fields of one response (by lower-case name) and adds
what it understood to a `Reading`: the budgets it reports, the pauses they ask for,
the request counts left and the quotas whose window is known. Picking the dialect by the
header *names* settles what "reset" means:

* **fixed window** (GitHub, Twitter/X, Okta, GitLab, Reddit, Discord, Mastodon, Jira and
  every `X-RateLimit-*` we do not know better): the reset is when the window ends, and
  `remaining: 0` means wait until then;
* **token bucket** (OpenAI and Groq `x-ratelimit-*-requests`/`-tokens`, Anthropic
  `anthropic-ratelimit-*`, Shopify's leaky bucket): the reset is when the bucket is full
  again, and `remaining: 0` means wait for the next unit to drip back, about
  `reset / (limit - remaining)`.

A quota is reported as a [`Rate`][throttled_http.Rate] only when its window is known: an
IETF policy's `w`, a `Limit` with `;w=`, HubSpot's interval, Anthropic's and
GitLab's documented minute. OpenAI's dialect never says its window (Groq sends it with a
per-day request limit), so its limits are not quotas.

Every reader is total: no string makes it raise, and its numbers are finite or capped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from ._fields import members, non_negative, number, parse_duration, parse_rfc3339
from ._rates import Rate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["NAMES", "PAUSING_NAMES", "Budget", "Reading", "read_all"]

# A Reset value below this many seconds is a delta; at or above, a Unix epoch in seconds;
# at or above _EPOCH_MS, a Unix epoch in milliseconds.
_EPOCH_S: Final = 1e9  # 2001-09-09, and 31 years as a delta: far beyond any cap
_EPOCH_MS: Final = 1e11  # 5138 as seconds, 1973 as milliseconds
_BIG: Final = 2.0**62  # counts beyond this are read as this

_FAMILIES: Final = {
    "x-ratelimit-": "X-RateLimit-Reset",
    "x-rate-limit-": "X-Rate-Limit-Reset",
    "ratelimit-": "RateLimit-Reset",
}
_GITLAB_MARKERS: Final = ("ratelimit-name", "ratelimit-observed")
_GITLAB_WINDOW: Final = 60.0  # "RateLimit-Limit: the request quota for the client each minute"

_OPENAI: Final = (("requests", "requests"), ("tokens", "tokens"))
_ANTHROPIC: Final = (
    ("requests", "requests"),
    ("tokens", "tokens"),
    ("input_tokens", "input-tokens"),
    ("output_tokens", "output-tokens"),
)
_ANTHROPIC_WINDOW: Final = 60.0  # limits are per minute: RPM, ITPM, OTPM
_HUBSPOT: Final = (
    ("x-hubspot-ratelimit-max", "x-hubspot-ratelimit-remaining", None),
    ("x-hubspot-ratelimit-secondly", "x-hubspot-ratelimit-secondly-remaining", 1.0),
    ("x-hubspot-ratelimit-daily", "x-hubspot-ratelimit-daily-remaining", 86400.0),
)
_HUBSPOT_INTERVAL: Final = "x-hubspot-ratelimit-interval-milliseconds"
_SHOPIFY: Final = "x-shopify-shop-api-call-limit"
_SHOPIFY_LEAK: Final = 2.0  # calls per second a standard plan's bucket drains (Plus: 4)

NAMES: Final = frozenset(
    {"ratelimit", "ratelimit-policy", "x-ratelimit-reset-after", _HUBSPOT_INTERVAL, _SHOPIFY}
    | {prefix + part for prefix in _FAMILIES for part in ("limit", "remaining", "reset")}
    | set(_GITLAB_MARKERS)
    | {
        f"x-ratelimit-{part}-{dim}"
        for _, dim in _OPENAI
        for part in ("limit", "remaining", "reset")
    }
    | {
        f"anthropic-ratelimit-{dim}-{part}"
        for _, dim in _ANTHROPIC
        for part in ("limit", "remaining", "reset")
    }
    | {name for triple in _HUBSPOT for name in triple[:2]}
)
"""Every header name (lower case) a dialect reader looks at."""

PAUSING_NAMES: Final = frozenset(
    {prefix + "remaining" for prefix in _FAMILIES}
    | {"ratelimit", _SHOPIFY}
    | {f"x-ratelimit-remaining-{dim}" for _, dim in _OPENAI}
    | {f"anthropic-ratelimit-{dim}-remaining" for _, dim in _ANTHROPIC}
    | {triple[1] for triple in _HUBSPOT}
)
"""The fields that can ask for a pause on a response that is not a 403, 429 or 503: a
count of what remains (whose reset is then read) and the IETF `RateLimit` field."""


@final
@dataclass(frozen=True, slots=True)
class Budget:
    """One dimension of a server's limit, as one response reports it.

    Attributes:
        dimension: what is counted: `"requests"`, `"tokens"`, `"input_tokens"` or
            `"output_tokens"`.
        limit: the most the server allows, or `None` when not sent.
        remaining: what is left now (never below 0), or `None` when not sent.
        reset: seconds from now (uncapped, >= 0) until the window ends (`bucket` false)
            or the bucket is full again (`bucket` true); `None` when not sent.
        window: the window's length in seconds when the dialect says it, else `None`.
        bucket: `True` for a token (or leaky) bucket, where `reset` is the time to
            refill all of it; `False` for a fixed window, where `reset` is its end.
        source: the header that carried it (`"x-ratelimit-reset-requests"`,
            `"anthropic-ratelimit-tokens-reset"`, `"X-RateLimit-Reset"` ...).
    """

    dimension: str
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    window: float | None = None
    bucket: bool = False
    source: str = ""

    def wait(self, *, refused: bool = False) -> float | None:
        """Seconds a careful client waits before the next request, by this budget alone.

        Nothing while something remains, unless the server refused the request (a 429
        says nothing remains, whatever the count claims). Then: a fixed window waits for
        its reset (for a whole `window` when no reset is sent); a bucket waits for one
        unit to drip back, `reset / (limit - remaining)` (all of `reset` when the
        limit is unknown).

        Examples:
            >>> Budget("requests", limit=60, remaining=0, reset=1.0, bucket=True).wait()
            0.016666666666666666
            >>> Budget("requests", limit=5000, remaining=0, reset=1800.0).wait()
            1800.0
            >>> Budget("requests", limit=100, remaining=7, reset=30.0).wait() is None
            True
        """
        left = self.remaining
        if not refused and (left is None or left > 0):
            return None
        reset = self.reset
        if reset is None:
            # A rolling window that says how long but not when: wait all of it.
            exhausted = left is not None and left <= 0
            return self.window if exhausted and not self.bucket else None
        if not self.bucket or self.limit is None or left is None:
            return reset
        missing = self.limit - left
        return reset / missing if missing > 1 else reset


@final
class Reading:
    """What the readers understood of one response, before it becomes a `Feedback`."""

    __slots__ = ("budgets", "pauses", "quota", "remaining")

    def __init__(self) -> None:
        self.budgets: list[Budget] = []
        self.pauses: list[tuple[float, str]] = []  # (seconds, the header behind it)
        self.remaining: list[float] = []  # request counts left
        self.quota: list[Rate] = []  # quotas whose window is known

    def add(self, budget: Budget, refused: bool) -> None:
        """Record `budget`, its pause, and its count when it counts requests."""
        self.budgets.append(budget)
        if budget.dimension == "requests" and budget.remaining is not None:
            self.remaining.append(budget.remaining)
        wait = budget.wait(refused=refused)
        if wait is not None:
            self.pauses.append((wait, budget.source))

    def add_dimensions(self, budgets: list[Budget], refused: bool) -> None:
        """Record the dimensions of one dialect. On a refusal, a dimension with something
        left waits only when none of them is exhausted: the exhausted ones are the cause."""
        exhausted = any(b.remaining is not None and b.remaining <= 0 for b in budgets)
        for budget in budgets:
            self.add(budget, refused and not exhausted)


def read_all(
    fields: dict[str, list[str]], refused: bool, until: Callable[[float], float]
) -> Reading:
    """Every dialect of `fields` (values by lower-case name) read into one `Reading`.

    Args:
        fields: the response's fields, duplicates kept in order.
        refused: the status is 429: a refusal says nothing remains.
        until: seconds from now to an absolute Unix time (the later of two clocks).
    """
    reading = Reading()
    _read_families(fields, refused, until, reading)
    _read_structured(fields, reading)
    _read_openai(fields, refused, reading)
    _read_anthropic(fields, refused, until, reading)
    _read_hubspot(fields, reading)
    _read_shopify(fields, refused, reading)
    return reading


# -- fixed windows: X-RateLimit-*, X-Rate-Limit-*, RateLimit-* (drafts -00 to -06) --------


def _read_families(
    fields: dict[str, list[str]],
    refused: bool,
    until: Callable[[float], float],
    reading: Reading,
) -> None:
    """The de-facto families; a reset applies when nothing remains, or on a 429."""
    gitlab = any(name in fields for name in _GITLAB_MARKERS)
    for prefix, title in _FAMILIES.items():
        left = _numbers(fields.get(prefix + "remaining", ()))
        limits: list[float] = []
        for value in fields.get(prefix + "limit", ()):
            # "100" alone has no window; "100, 100;w=60" (drafts -00 to -03) does.
            for item, params in members(value):
                rate = _rate(item, params.get("w") or params.get("window"))
                if rate is not None:
                    reading.quota.append(rate)
                count = number(item)
                if count is not None:
                    limits.append(count)
        if gitlab and prefix == "ratelimit-":
            for count in limits:
                rate = _rate(str(count), str(_GITLAB_WINDOW))
                if rate is not None:
                    reading.quota.append(rate)
        resets = [
            seconds
            for value in fields.get(prefix + "reset", ())
            if (seconds := _reset(value, until)) is not None
        ]
        if prefix == "x-ratelimit-":
            after = _numbers(fields.get("x-ratelimit-reset-after", ()))
            resets.extend(non_negative(n) for n in after)
        if not (left or limits or resets):
            continue
        reading.add(
            Budget(
                "requests",
                limit=_count(min(limits)) if limits else None,
                remaining=_count(min(left)) if left else None,
                reset=max(resets) if resets else None,
                window=_GITLAB_WINDOW if gitlab and prefix == "ratelimit-" else None,
                source=title,
            ),
            refused,
        )


def _reset(text: str, until: Callable[[float], float]) -> float | None:
    """A reset: seconds, a Unix epoch in seconds or milliseconds, or an ISO 8601 time."""
    value = number(text)
    if value is None:
        when = parse_rfc3339(text)  # Mastodon, Jira: 2026-12-01T20:05:00.000Z
        return None if when is None else until(when)
    if value < _EPOCH_S:
        return non_negative(value)
    if value < _EPOCH_MS:
        return until(value)
    return until(value / 1000.0)


# -- the IETF structured fields (draft-ietf-httpapi-ratelimit-headers -07 to -10) --------


def _read_structured(fields: dict[str, list[str]], reading: Reading) -> None:
    """`RateLimit-Policy` quotas and `RateLimit` remaining counts (`r=0` pauses)."""
    windows: dict[str, float] = {}
    quotas: dict[str, int] = {}
    for value in fields.get("ratelimit-policy", ()):
        for item, params in members(value):
            unit = params.get("qu", "requests").strip('"')
            if unit != "requests":  # content-bytes or concurrent-requests: not a rate
                continue
            window = number(params.get("w", ""))
            if window is not None and window > 0 and math.isfinite(window):
                windows[item] = max(window, windows.get(item, 0.0))
            # -08 and later: "name";q=100;w=60. -06/-07: 100;w=60 (the item is the quota).
            rate = _rate(params["q"], params.get("w")) if "q" in params else None
            if rate is None and "q" not in params:
                rate = _rate(item, params.get("w"))
            if rate is not None:
                reading.quota.append(rate)
                quotas[item] = min(rate.limit, quotas.get(item, rate.limit))
    for value in fields.get("ratelimit", ()):
        found = members(value)
        legacy = {
            item.partition("=")[0].strip().lower(): item.partition("=")[2]
            for item, params in found
            if "=" in item and not params
        }
        if legacy:  # draft -07: RateLimit: limit=10, remaining=0, reset=7
            found = [("", {"r": legacy.get("remaining", ""), "t": legacy.get("reset", "")})]
        for item, params in found:
            left = number(params.get("r", ""))
            if left is None:
                continue
            reset = number(params.get("t", ""))
            if reset is not None and reset < 0:
                reset = None
            reading.add(
                Budget(
                    "requests",
                    limit=quotas.get(item),
                    remaining=_count(left),
                    reset=reset,
                    window=windows.get(item),
                    # r=0 without t waits for the window of the policy of the same name.
                    source="RateLimit" if reset is not None else "RateLimit-Policy window",
                ),
                False,
            )


# -- token buckets: OpenAI (and Groq, Azure OpenAI), Anthropic, Shopify -------------------


def _read_openai(fields: dict[str, list[str]], refused: bool, reading: Reading) -> None:
    """`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; resets are Go durations."""
    budgets = [
        _bucket(fields, dimension, f"x-ratelimit-{{}}-{suffix}", parse_duration, None)
        for dimension, suffix in _OPENAI
    ]
    # The dialect does not say its window (Groq sends it with a per-day request limit).
    reading.add_dimensions([b for b in budgets if b is not None], refused)


def _read_anthropic(
    fields: dict[str, list[str]],
    refused: bool,
    until: Callable[[float], float],
    reading: Reading,
) -> None:
    """`anthropic-ratelimit-{dim}-{limit,remaining,reset}`; resets are RFC 3339 times."""

    def reset(text: str) -> float | None:
        when = parse_rfc3339(text)
        return None if when is None else until(when)

    budgets = []
    for dimension, part in _ANTHROPIC:
        name = f"anthropic-ratelimit-{part}-{{}}"
        budget = _bucket(fields, dimension, name, reset, _ANTHROPIC_WINDOW)
        if budget is None:
            continue
        budgets.append(budget)
        if dimension == "requests" and budget.limit is not None:
            # A bucket of L refilled over a minute never admits more than a sliding
            # window of L per minute would: adopting Rate(L, 60) keeps within it.
            rate = _rate(str(budget.limit), str(_ANTHROPIC_WINDOW))
            if rate is not None:
                reading.quota.append(rate)
    reading.add_dimensions(budgets, refused)


def _read_shopify(fields: dict[str, list[str]], refused: bool, reading: Reading) -> None:
    """`X-Shopify-Shop-Api-Call-Limit: 32/40`: a leaky bucket of 40, 32 used."""
    for value in fields.get(_SHOPIFY, ()):
        used_text, slash, limit_text = value.partition("/")
        used, limit = number(used_text), number(limit_text)
        if not slash or used is None or limit is None or not 0 <= used <= limit < _BIG:
            continue
        reading.add(
            Budget(
                "requests",
                limit=int(limit),
                remaining=_count(limit - used),
                reset=used / _SHOPIFY_LEAK,  # drained at the standard plan's rate
                bucket=True,
                source="X-Shopify-Shop-Api-Call-Limit",
            ),
            refused,
        )


def _bucket(
    fields: dict[str, list[str]],
    dimension: str,
    name: str,
    read_reset: Callable[[str], float | None],
    window: float | None,
) -> Budget | None:
    """One bucket dimension (the strictest reading of duplicates), if it is there.

    `name` has a `{}` where `limit`, `remaining` and `reset` go.
    """
    limits = [n for n in _numbers(fields.get(name.format("limit"), ())) if n >= 1]
    left = _numbers(fields.get(name.format("remaining"), ()))
    source = name.format("reset")
    resets = [r for value in fields.get(source, ()) if (r := read_reset(value)) is not None]
    if not (limits or left or resets):
        return None
    return Budget(
        dimension,
        limit=_count(min(limits)) if limits else None,
        remaining=_count(min(left)) if left else None,
        reset=non_negative(max(resets)) if resets else None,
        window=window,
        bucket=True,
        source=source,
    )


# -- HubSpot: a rolling interval with no reset ---------------------------------------------


def _read_hubspot(fields: dict[str, list[str]], reading: Reading) -> None:
    """HubSpot's `Max` per `Interval-Milliseconds`, and its secondly and daily limits.

    No reset is sent: `remaining: 0` waits a whole interval, and a refusal with something
    left waits by its `Retry-After` only.
    """
    intervals = [n / 1000.0 for n in _numbers(fields.get(_HUBSPOT_INTERVAL, ())) if n > 0]
    interval = max(intervals) if intervals else None
    for limit_name, remaining_name, window in _HUBSPOT:
        window = interval if window is None else window
        limits = [n for n in _numbers(fields.get(limit_name, ())) if n >= 1]
        left = _numbers(fields.get(remaining_name, ()))
        if not (limits or left):
            continue
        limit = _count(min(limits)) if limits else None
        if limit is not None and window is not None:
            rate = _rate(str(limit), str(window))
            if rate is not None:
                reading.quota.append(rate)
        reading.add(
            Budget(
                "requests",
                limit=limit,
                remaining=_count(min(left)) if left else None,
                window=window,
                source=_HUBSPOT_TITLES[remaining_name],
            ),
            False,
        )


_HUBSPOT_TITLES: Final = {
    "x-hubspot-ratelimit-remaining": "X-HubSpot-RateLimit-Remaining",
    "x-hubspot-ratelimit-secondly-remaining": "X-HubSpot-RateLimit-Secondly-Remaining",
    "x-hubspot-ratelimit-daily-remaining": "X-HubSpot-RateLimit-Daily-Remaining",
}


# -- numbers -------------------------------------------------------------------------------


def _numbers(values: Iterable[str]) -> list[float]:
    return [n for n in map(number, values) if n is not None]


def _count(value: float) -> int:
    """A count as an int in `[0, 2**62]`."""
    return int(max(0.0, min(value, _BIG)))


def _rate(limit_text: str, window_text: str | None) -> Rate | None:
    """A Rate from a quota and a window in seconds, or `None` if either is unusable."""
    if window_text is None:
        return None
    limit = number(limit_text)
    window = number(window_text)
    if limit is None or window is None:
        return None
    if not (1 <= limit <= 2.0**53 and limit == int(limit)):
        return None
    if not (0 < window <= 2.0**53):
        return None
    return Rate(int(limit), window)
