"""throttled_http: make every outbound HTTP request wait its turn.

The core (this namespace) imports no HTTP client. The integrations live in their own
modules, each shipped as an extra: ``throttled_http.aiohttp`` (``[aiohttp]``),
``throttled_http.httpx`` (``[httpx]``) and ``throttled_http.redis`` (``[redis]``).
"""

from __future__ import annotations

from ._exceptions import (
    InvalidRateError,
    InvalidURLError,
    ThrottledHTTPError,
    ThrottlerBackendError,
    ThrottlerTimeoutError,
)
from ._feedback import FeedbackPolicy, FeedbackStatistics, KeyFeedbackStatistics
from ._headers import Feedback, may_carry_feedback, parse_feedback
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
from ._throttler import Entry, Throttler, ThrottlerStatistics
from ._version import __version__

__all__ = [
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


# Show the public path in reprs and docs: throttled_http.Throttler, not ._throttler.
def _set_public_module() -> None:
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, type):
            obj.__module__ = __name__


_set_public_module()
