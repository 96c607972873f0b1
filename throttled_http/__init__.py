"""throttled_http: make every outbound HTTP request wait its turn.

The core (this namespace) imports no HTTP client. The integrations live in their own
modules, each shipped as an extra: `throttled_http.aiohttp` (`[aiohttp]`),
`throttled_http.httpx` (`[httpx]`), `throttled_http.httpx2` (`[httpx2]`) and
`throttled_http.redis` (`[redis]`).
Their main classes can also be imported from here (`from throttled_http import
ThrottledClientSession`): the integration module is imported on first use only, and a
missing extra says which one to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._exceptions import (
    InvalidRateError,
    InvalidURLError,
    ThrottledHTTPError,
    ThrottlerBackendError,
    ThrottlerTimeoutError,
)
from ._feedback import FeedbackPolicy, FeedbackStatistics, KeyFeedbackStatistics
from ._front import ThrottlerStatistics
from ._headers import Budget, Feedback, may_carry_feedback, parse_feedback
from ._hostmap import (
    KeyStatistics,
    SyncThrottlerMap,
    ThrottlerBackend,
    ThrottlerMap,
    ThrottlerMapStatistics,
)
from ._keys import host_key
from ._protocols import EntryLike, SyncThrottlerLike, ThrottlerLike
from ._rates import Rate, parse_rates
from ._sync import SyncThrottler
from ._throttler import Entry, Throttler
from ._version import __version__

if TYPE_CHECKING:  # the lazily imported names below, for type checkers
    from .aiohttp import ThrottledClientSession as ThrottledClientSession
    from .httpx import SyncThrottledTransport as SyncThrottledTransport
    from .httpx import ThrottledTransport as ThrottledTransport
    from .redis import RedisBackend as RedisBackend
    from .redis import RedisThrottler as RedisThrottler

__all__ = [
    "Budget",
    "Entry",
    "EntryLike",
    "Feedback",
    "FeedbackPolicy",
    "FeedbackStatistics",
    "InvalidRateError",
    "InvalidURLError",
    "KeyFeedbackStatistics",
    "KeyStatistics",
    "Rate",
    "SyncThrottler",
    "SyncThrottlerLike",
    "SyncThrottlerMap",
    "ThrottledHTTPError",
    "Throttler",
    "ThrottlerBackend",
    "ThrottlerBackendError",
    "ThrottlerLike",
    "ThrottlerMap",
    "ThrottlerMapStatistics",
    "ThrottlerStatistics",
    "ThrottlerTimeoutError",
    "__version__",
    "host_key",
    "may_carry_feedback",
    "parse_feedback",
    "parse_rates",
]


# Imported on first use, so that importing throttled_http imports no HTTP client.
_LAZY = {
    "ThrottledClientSession": "throttled_http.aiohttp",
    "ThrottledTransport": "throttled_http.httpx",
    "SyncThrottledTransport": "throttled_http.httpx",
    "RedisThrottler": "throttled_http.redis",
    "RedisBackend": "throttled_http.redis",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'throttled_http' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*__all__, *_LAZY})


# Show the public path in reprs and docs: throttled_http.Throttler, not ._throttler.
def _set_public_module() -> None:
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, type):
            obj.__module__ = __name__


_set_public_module()
