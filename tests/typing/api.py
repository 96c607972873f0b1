"""Type-checked, never run: the core API as users write it (``mypy --strict`` must pass).

pytest does not collect this file (it is not named ``test_*``); mypy checks it with the rest
of ``tests``. A mistake in a public signature or a missing export shows up here first.
"""

from __future__ import annotations

import asyncio
import contextlib

from throttled_http import (
    Entry,
    EntryLike,
    InvalidRateError,
    Rate,
    SyncThrottler,
    SyncThrottlerLike,
    ThrottledHTTPError,
    Throttler,
    ThrottlerLike,
    ThrottlerStatistics,
    ThrottlerTimeoutError,
    __version__,
    parse_rates,
)

version: str = __version__

# -- construction ---------------------------------------------------------------------

plain = Throttler(10)
windowed = Throttler(rate_limit=100, period=60.0)
compatible = Throttler(5, 1.0, 0.05)  # asyncio-throttle's positional retry_interval
capped = Throttler(10, 1.0, max_concurrency=4)
smooth = Throttler(10, 1.0, burst=1)
quota = Throttler.from_rates("10/s", "1000/h")
mixed = Throttler.from_rates(Rate(10, 1.0), "5000/d", max_concurrency=8, burst=2)
listed = Throttler.from_rates(["10/s", Rate(100, 60)])

limit: int = plain.rate_limit
period: float = plain.period
interval: float = plain.retry_interval
rates: tuple[Rate, ...] = quota.rates
burst: int | None = smooth.burst
cap: int | None = capped.max_concurrency

# -- rates ----------------------------------------------------------------------------

rate: Rate = Rate.parse("100/15min")
several: tuple[Rate, ...] = Rate.parse_many("10/s; 1000/h")
flat: tuple[Rate, ...] = parse_rates("10/s", Rate(1, 2.0), ["3/min"])
per_second: float = rate.per_second
spacing: float = rate.interval
rate_text: str = str(rate)
rate_limit: int = rate.limit
rate_period: float = rate.period


async def entering() -> None:
    async with plain:
        pass

    await plain.acquire()
    await plain.acquire(3)
    await plain.acquire(timeout=2.5)
    await capped.acquire(cost=2, timeout=None)
    capped.release()

    took: bool = plain.try_acquire()
    took = plain.try_acquire(2)
    if took:
        capped.release()

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(plain.acquire(), 1.0)

    try:
        await plain.acquire(timeout=0.1)
    except ThrottlerTimeoutError as error:
        timeout_error: TimeoutError = error
        base: ThrottledHTTPError = error
        del timeout_error, base

    plain.flush()


async def entries() -> None:
    async with plain.entry() as entry:
        typed: Entry = entry
        entry.settle()
        settled: bool = entry.settled
        del typed, settled

    async with plain.entry(2, timeout=5.0):
        pass

    opened: Entry = await plain.open_entry()
    opened.settle()
    opened.close()
    closed: bool = opened.closed
    cost: int = opened.cost
    del closed, cost

    like: EntryLike = await plain.open_entry(1, timeout=1.0)
    like.close()


def feedback(throttler: Throttler) -> None:
    throttler.pause(30)
    throttler.pause(1.5)
    left: float = throttler.paused_for
    throttler.resume()
    throttler.set_rates("5/s")
    throttler.set_rates(Rate(5, 1.0), "100/min", burst=1)
    throttler.set_rates(["5/s", "100/min"])
    del left


def introspection(throttler: Throttler) -> None:
    stats: ThrottlerStatistics = throttler.statistics()
    waiting: int = stats.waiting
    in_window: int = stats.in_window
    open_cost: int = stats.open
    in_flight: int = stats.in_flight
    wait_time: float = stats.wait_time
    paused_for: float = stats.paused_for
    stat_rates: tuple[Rate, ...] = stats.rates
    stat_burst: int | None = stats.burst
    stat_cap: int | None = stats.max_concurrency
    capacity: bool = throttler.has_capacity()
    capacity = throttler.has_capacity(3)
    idle: bool = throttler.is_idle()
    text: str = repr(throttler)
    del waiting, in_window, open_cost, in_flight, wait_time, paused_for
    del stat_rates, stat_burst, stat_cap, capacity, idle, text


# -- the protocol integrations program against ----------------------------------------


async def through(throttler: ThrottlerLike) -> None:
    entry: EntryLike = await throttler.open_entry()
    entry.settle()
    entry.close()
    entry = await throttler.open_entry(2, timeout=1.0)
    entry.close()
    throttler.pause(1.0)
    left: float = throttler.paused_for
    throttler.set_rates("1/s")
    throttler.set_rates(Rate(1, 1.0), "10/min", burst=1)
    limits: tuple[Rate, ...] = throttler.rates
    burst_now: int | None = throttler.burst
    idle: bool = throttler.is_idle()
    del left, limits, burst_now, idle


def through_threads(throttler: SyncThrottlerLike) -> None:
    entry: EntryLike = throttler.open_entry()
    entry.settle()
    entry.close()
    entry = throttler.open_entry(2, timeout=1.0)
    entry.close()
    throttler.pause(1.0)
    left: float = throttler.paused_for
    throttler.set_rates("1/s", burst=None)
    limits: tuple[Rate, ...] = throttler.rates
    burst_now: int | None = throttler.burst
    idle: bool = throttler.is_idle()
    del left, limits, burst_now, idle


async def main() -> None:
    await through(plain)  # a Throttler is a ThrottlerLike
    through_threads(SyncThrottler(10, 1.0))  # a SyncThrottler is a SyncThrottlerLike
    through_threads(plain)  # type: ignore[arg-type]  # an asyncio Throttler is not
    await entering()
    await entries()
    feedback(quota)
    introspection(capped)


def parse_or_default(text: str) -> Rate:
    try:
        return Rate.parse(text)
    except InvalidRateError:
        return Rate(10, 1.0)
