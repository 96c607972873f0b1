"""The structural types the integrations, the maps and the feedback policy program against.

Anything shaped like [`ThrottlerLike`][throttled_http.ThrottlerLike] can stand where a
[`Throttler`][throttled_http.Throttler] does: the in-memory throttler and the Redis
throttler both are; [`SyncThrottlerLike`][throttled_http.SyncThrottlerLike] is its blocking
twin ([`SyncThrottler`][throttled_http.SyncThrottler]). They hold only what the package
calls: a latency-proof entry (settled when response headers arrive, closed when the response
is released), the server-feedback controls, and the idleness test a
[`ThrottlerMap`][throttled_http.ThrottlerMap] evicts by. The protocols describe throttlers
you pass in; they are not classes to instantiate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._rates import Rate, RatesLike

__all__ = ["EntryLike", "SyncThrottlerLike", "ThrottlerLike"]


@runtime_checkable
class EntryLike(Protocol):
    """An admitted latency-proof entry (see `throttled_http.Throttler.entry`)."""

    @property
    def settled(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    def settle(self) -> None:
        """Stamp the entry now; idempotent."""

    def close(self) -> None:
        """Settle if needed and give back the concurrency slot; idempotent."""


@runtime_checkable
class _FeedbackControls(Protocol):
    """What both kinds of throttler share: their rates and the server-feedback controls."""

    @property
    def rates(self) -> tuple[Rate, ...]:
        """The limits in force."""

    @property
    def burst(self) -> int | None:
        """Smooth-mode burst, or `None`."""

    def pause(self, seconds: float) -> None:
        """Admit nothing for `seconds`; a shorter pause never cuts a longer one short."""

    @property
    def paused_for(self) -> float:
        """Seconds left of the current pause, 0 if none."""

    def set_rates(self, *rates: RatesLike, burst: int | None = None) -> None:
        """Put other limits in force without loosening any window already counted."""

    def is_idle(self) -> bool:
        """Whether forgetting this throttler now could not loosen any limit."""


@runtime_checkable
class ThrottlerLike(_FeedbackControls, Protocol):
    """An asyncio throttler, as the integrations and `ThrottlerMap` use it.

    [`Throttler`][throttled_http.Throttler] and `throttled_http.redis.RedisThrottler` are.
    """

    async def open_entry(self, cost: int = 1, *, timeout: float | None = None) -> EntryLike:
        """Wait for a latency-proof entry of `cost` (at most `timeout` seconds)."""
        ...


@runtime_checkable
class SyncThrottlerLike(_FeedbackControls, Protocol):
    """A thread-safe, blocking throttler ([`SyncThrottler`][throttled_http.SyncThrottler])."""

    def open_entry(self, cost: int = 1, *, timeout: float | None = None) -> EntryLike:
        """Block until a latency-proof entry of `cost` is admitted (at most `timeout` s)."""
        ...
