"""The exceptions throttled_http raises.

The tree:

```text
ThrottledHTTPError                  base of everything raised on purpose here
├── ThrottlerTimeoutError           acquire(timeout=...) gave up; nothing was taken
│                                   (also a builtin TimeoutError and asyncio.TimeoutError)
├── ThrottlerBackendError           a shared backend (Redis) failed; `__cause__` keeps why
├── InvalidRateError                a rate string could not be parsed (also a ValueError)
└── InvalidURLError                 a URL has no host to key a limit by (also a ValueError)
```

Argument validation raises plain `TypeError` / `ValueError` whose message names
the argument, the allowed range and the value received, e.g.
`rate_limit must be a positive integer, got 0`.
"""

from __future__ import annotations

__all__ = [
    "missing_extra",
    "InvalidRateError",
    "InvalidURLError",
    "ThrottledHTTPError",
    "ThrottlerBackendError",
    "ThrottlerTimeoutError",
]


class ThrottledHTTPError(Exception):
    """Base class of the errors this package raises on purpose."""


class ThrottlerTimeoutError(ThrottledHTTPError, TimeoutError):
    """`acquire(timeout=...)` ran out of time; the caller holds no entry and no slot.

    A builtin `TimeoutError`, which `asyncio.TimeoutError` is too.
    """


class ThrottlerBackendError(ThrottledHTTPError):
    """A shared backend (such as Redis) failed; the original error is `__cause__`."""


class InvalidRateError(ThrottledHTTPError, ValueError):
    """A rate string is not in one of the accepted forms (the message lists them)."""


class InvalidURLError(ThrottledHTTPError, ValueError):
    """A URL has no host, so no per-host limit can be chosen for it."""


def missing_extra(module: str, needs: str, extra: str) -> ImportError:
    """The error an integration module raises when its client library is not installed."""
    return ImportError(f"{module} needs {needs}: pip install throttled_http[{extra}]")
