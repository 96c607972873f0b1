"""What both HTTP integrations share: holding responses open, and their options' checks.

A response holds its entry (and its ``max_concurrency`` slot) until the caller releases
it. One that is never released gives the slot back ``hold_timeout`` seconds after its
headers arrived; :class:`Holds` does the timing for every open response of a client with
a single loop timer. No HTTP client is imported here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar, final

from ._feedback import FeedbackPolicy
from ._hostmap import ThrottlerMap
from ._ledger import INF
from ._protocols import AsyncLimiter
from ._validate import non_negative_float, positive_float

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._hostmap import Scope, ThrottlerBackend
    from ._rates import Rate, RatesLike

__all__ = [
    "DEFAULT_HOLD_TIMEOUT",
    "Holds",
    "check_exclusive",
    "check_hold_timeout",
    "check_limiter",
    "check_throttle_timeout",
    "limiter_from_options",
    "make_policy",
]

DEFAULT_HOLD_TIMEOUT: Final = 300.0
"""Seconds after its headers arrived that an unreleased response gives its slot back."""


class _Expiring(Protocol):
    def expire(self, hold_timeout: float) -> None: ...


_H = TypeVar("_H", bound=_Expiring)


@final
class Holds(Generic[_H]):
    """Responses held open, oldest first, and one timer for the oldest deadline.

    Every hold gets the same ``hold_timeout``, so insertion order is deadline order: one
    timer, armed at the oldest deadline and moved on when it fires, expires each overlong
    hold exactly ``hold_timeout`` seconds after its headers arrived, without a timer per
    response. With ``hold_timeout=None`` holds are only kept, so :meth:`pop_all` can give
    their slots back when the client closes.
    """

    __slots__ = ("_deadlines", "_hold_timeout", "_loop", "_timer")

    def __init__(self, hold_timeout: float | None) -> None:
        self._hold_timeout = hold_timeout
        self._deadlines: dict[_H, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, hold: _H) -> None:
        """Start timing ``hold`` (call from the event loop)."""
        if self._hold_timeout is None:
            self._deadlines[hold] = INF
            return
        loop = asyncio.get_running_loop()
        self._deadlines[hold] = loop.time() + self._hold_timeout
        if self._timer is None or self._loop is not loop:
            if self._timer is not None:
                self._timer.cancel()
            self._loop = loop
            self._timer = loop.call_at(next(iter(self._deadlines.values())), self._sweep)

    def discard(self, hold: _H) -> None:
        """Stop timing ``hold`` (it was released)."""
        self._deadlines.pop(hold, None)

    def pop_all(self) -> list[_H]:
        """Every hold still open, forgotten and no longer timed (the client is closing)."""
        holds = list(self._deadlines)
        self._deadlines.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return holds

    def __len__(self) -> int:
        return len(self._deadlines)

    def _sweep(self) -> None:
        self._timer = None
        loop = self._loop
        hold_timeout = self._hold_timeout
        if loop is None or hold_timeout is None:  # pragma: no cover - armed only with both
            return
        deadlines = self._deadlines
        now = loop.time()
        while deadlines:
            hold, deadline = next(iter(deadlines.items()))
            if deadline > now:
                self._timer = loop.call_at(deadline, self._sweep)
                return
            del deadlines[hold]
            hold.expire(hold_timeout)


def check_hold_timeout(value: object) -> float | None:
    """``hold_timeout``: ``None`` (never) or a finite number of seconds > 0."""
    return None if value is None else positive_float("hold_timeout", value)


def check_throttle_timeout(value: object) -> float | None:
    """``throttle_timeout``: ``None`` (wait as long as it takes) or seconds >= 0."""
    return None if value is None else non_negative_float("throttle_timeout", value)


def make_policy(
    feedback: FeedbackPolicy | None, max_retry_after: float | None, adapt: bool, retries: int
) -> FeedbackPolicy:
    """The ``feedback=`` policy given, or one built from the shorthand keywords."""
    if feedback is None:
        return FeedbackPolicy(max_retry_after=max_retry_after, adapt=adapt, retries=retries)
    if not isinstance(feedback, FeedbackPolicy):
        raise TypeError(f"feedback must be a FeedbackPolicy, got {feedback!r}")
    return feedback


def check_exclusive(throttler: object, **options: object) -> None:
    """``throttler=`` carries its own limits: refuse limit options given beside it."""
    if throttler is None:
        return
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise ValueError(
            f"throttler= already carries its limits; do not pass {', '.join(given)} with it"
        )


def check_limiter(name: str, value: object) -> AsyncLimiter | ThrottlerMap:
    """``value`` if it is a throttler or a map, else a TypeError naming ``name``."""
    if isinstance(value, (ThrottlerMap, AsyncLimiter)):
        return value
    raise TypeError(
        f"{name} must be a Throttler, a ThrottlerMap or another AsyncLimiter, got {value!r}"
    )


def limiter_from_options(
    throttler: object,
    rate_limit: int | str | Rate,
    period: float,
    *,
    rates: RatesLike | None,
    max_concurrency: int | None,
    burst: int | None,
    scope: Scope,
    overrides: Mapping[str, RatesLike | None] | None,
    backend: ThrottlerBackend | None,
) -> AsyncLimiter | ThrottlerMap:
    """What an async client is throttled by: the shared ``throttler=``, or a new map.

    A shared throttler carries its own limits, so the limit options must not be given
    beside it; otherwise every option builds a per-key :class:`ThrottlerMap`.
    """
    check_exclusive(
        throttler,
        rates=rates,
        max_concurrency=max_concurrency,
        burst=burst,
        overrides=overrides,
        backend=backend,
        scope=None if scope == "host" else scope,
    )
    if throttler is not None:
        return check_limiter("throttler", throttler)
    return ThrottlerMap(
        rate_limit,
        period,
        rates=rates,
        max_concurrency=max_concurrency,
        burst=burst,
        scope=scope,
        overrides=overrides,
        backend=backend,
    )
