"""Shared test helpers: generic, with no knowledge of any one module.

``max_in_window`` (also a fixture of the same name) is the yardstick of the whole suite:
the most entries any half-open window ``[t, t + period)`` holds, given their times.
The ``server`` and ``thread_server`` fixtures are real loopback servers that record every
arrival (``throttled_http.testing.RecordingServer``, which needs aiohttp: imported only by
the tests that ask for one), for asyncio and for threaded clients.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import warnings
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator

    from throttled_http.testing import RecordingServer


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


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    """A recording server on 127.0.0.1 and 127.0.0.2, on the test's loop."""
    from throttled_http.testing import RecordingServer

    async with RecordingServer() as srv:
        yield srv


@pytest.fixture
def thread_server() -> Iterator[RecordingServer]:
    """A recording server running on its own loop in a background thread (for sync clients)."""
    from throttled_http.testing import RecordingServer

    srv = RecordingServer(latency=0.01)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(srv.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield srv
    finally:
        asyncio.run_coroutine_threadsafe(srv.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def run_virtual(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main()`` on a fresh looptime loop starting at 0 (for hypothesis tests, which
    cannot take pytest's per-test loop)."""
    import looptime

    loop = looptime.new_event_loop(start=0.0, idle_timeout=1.0, idle_step=0.01)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
