"""Shared test helpers: generic, with no knowledge of any one module.

``max_in_window`` (also a fixture of the same name) is the yardstick of the whole suite:
the most entries any half-open window ``[t, t + period)`` holds, given their times.
"""

from __future__ import annotations

import asyncio
import bisect
import warnings
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator


def _let_looptime_07_reach_sub_microsecond_timers() -> None:
    """Work around looptime < 0.8 (the newest release installable on Python 3.10).

    Its fake clock moves in whole microseconds and rounds the step to the next timer, so a
    timer less than half a microsecond ahead (``0.1 + 0.2`` against ``0.3``) is never
    reached and the loop spins forever (looptime issue #35, fixed in 0.8). Make such a
    positive step one microsecond, as 0.8 does; nothing else changes.
    """
    try:
        from looptime._internal import loops
    except ImportError:  # pragma: no cover - looptime 0.8+ is laid out the same way
        return
    from importlib.metadata import version

    major, minor = (int(part) for part in version("looptime").split(".")[:2])
    if (major, minor) >= (0, 8):
        return
    name = "_LoopTimeEventLoop__time2int"
    original = getattr(loops.LoopTimeEventLoop, name)

    def time2int(self: object, time: float | None) -> int | None:
        result: int | None = original(self, time)
        if result == 0 and time is not None and time > 0:
            return 1
        return result

    setattr(loops.LoopTimeEventLoop, name, time2int)


_let_looptime_07_reach_sub_microsecond_timers()


@pytest.fixture(autouse=True)
def _current_event_loop() -> Iterator[None]:
    """Give each test a current (not running) loop, closed afterwards.

    pytest-asyncio 1.5 asks ``asyncio.get_event_loop()`` for the loop to restore after an
    async test; with none set, that call creates one that nobody closes, and under
    ``-W error`` its ResourceWarning fails a later test (pytest-asyncio issue #724).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
    loop = asyncio.new_event_loop()
    policy.set_event_loop(loop)
    try:
        yield
    finally:
        policy.set_event_loop(None)
        loop.close()


def max_in_window(times: Iterable[float], period: float, costs: Iterable[int] | None = None) -> int:
    """The largest total cost inside any half-open window ``[t, t + period)``.

    The worst window always starts at one of the times, so checking those is exhaustive.
    A time ``s`` and a later ``s + period`` never share a window: the same float sum the
    throttler uses decides it.

    Args:
        times: when each entry happened, in any order (seconds on one clock).
        period: the window's length in seconds.
        costs: the weight of each entry, parallel to ``times`` (default 1 each).
    """
    if costs is None:
        stamps = sorted(times)
        weights = [1] * len(stamps)
    else:
        pairs = sorted(zip(times, costs, strict=True))
        stamps = [t for t, _ in pairs]
        weights = [c for _, c in pairs]
    prefix = [0]
    for weight in weights:
        prefix.append(prefix[-1] + weight)
    best = 0
    for i, start in enumerate(stamps):
        end = start + period
        # stamps[j] < end  <=>  the entry is in [start, start + period)
        j = bisect.bisect_left(stamps, end, lo=i)
        best = max(best, prefix[j] - prefix[i])
    return best


@pytest.fixture(name="max_in_window")
def max_in_window_fixture() -> Callable[..., int]:
    """:func:`max_in_window`, for tests that prefer a fixture to an import."""
    return max_in_window
