"""The structural types the integrations program against.

Anything shaped like :class:`AsyncLimiter` can stand where a :class:`~throttled_http.Throttler`
does: the in-memory throttler and the Redis throttler both are. The HTTP integrations only
use :meth:`AsyncLimiter.open_entry` (a latency-proof entry, settled when response headers
arrive and closed when the response is released) plus the feedback methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from types import TracebackType

    from ._rates import Rate, RatesLike

__all__ = ["AsyncLimiter", "EntryLike"]


@runtime_checkable
class EntryLike(Protocol):
    """An admitted latency-proof entry (see :meth:`throttled_http.Throttler.entry`)."""

    @property
    def settled(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    def settle(self) -> None:
        """Stamp the entry now; idempotent."""

    def close(self) -> None:
        """Settle if needed and give back the concurrency slot; idempotent."""


@runtime_checkable
class AsyncLimiter(Protocol):
    """What an async throttler offers: the interface of :class:`~throttled_http.Throttler`."""

    @property
    def rates(self) -> tuple[Rate, ...]: ...

    @property
    def burst(self) -> int | None:
        """Smooth-mode burst, or ``None``."""

    async def __aenter__(self) -> None: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def acquire(self, cost: int = 1, *, timeout: float | None = None) -> None: ...

    def try_acquire(self, cost: int = 1) -> bool: ...

    def release(self) -> None: ...

    async def open_entry(self, cost: int = 1, *, timeout: float | None = None) -> EntryLike: ...

    def pause(self, seconds: float) -> None: ...

    def resume(self) -> None: ...

    @property
    def paused_for(self) -> float: ...

    def set_rates(self, *rates: RatesLike, burst: int | None = None) -> None: ...

    def is_idle(self) -> bool: ...
