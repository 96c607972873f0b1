"""httpx2 integration: the httpx transports, for clients of httpx2.

```python
async with httpx2.AsyncClient(transport=ThrottledTransport(rate_limit=10)) as client:
    await client.get("https://api.example.com/items")

with httpx2.Client(transport=SyncThrottledTransport(rate_limit=10)) as client:
    client.get("https://api.example.com/items")
```

httpx2 is the maintained continuation of httpx, with the same API under another name:
its clients take only its own transports, and its users catch its own errors. This module
is `throttled_http.httpx` bound to httpx2: the same code, the
same options, the same guarantees (every hop admitted, the slot held until the body is
read or closed, the `throttled_http_*` request extensions, server feedback), with httpx2's
types in every signature and errors that are httpx2's:
[`InvalidURL`][throttled_http.httpx2.InvalidURL] is an `httpx2.RequestError` and
[`ThrottleTimeout`][throttled_http.httpx2.ThrottleTimeout] an `httpx2.TimeoutException`.
It does not import httpx, nor does `throttled_http.httpx` import httpx2.

After `httpx2.alias_httpx()` (which makes `import httpx` load httpx2), both modules serve
httpx2 clients.
"""

from __future__ import annotations

from typing import final

from ._exceptions import InvalidURLError, ThrottlerTimeoutError, missing_extra

try:
    import httpx2
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra(__name__, "httpx2", "httpx2") from exc

from ._httpx_core import BYPASS_EXTENSION as BYPASS_EXTENSION
from ._httpx_core import COST_EXTENSION as COST_EXTENSION
from ._httpx_core import KEY_EXTENSION as KEY_EXTENSION
from ._httpx_core import Library, SyncThrottledTransportCore, ThrottledTransportCore

__all__ = [
    "BYPASS_EXTENSION",
    "COST_EXTENSION",
    "KEY_EXTENSION",
    "InvalidURL",
    "ThrottleTimeout",
    "SyncThrottledTransport",
    "ThrottledTransport",
]


class InvalidURL(InvalidURLError, httpx2.RequestError):
    """A hop's URL has no host a limit can be keyed by: no request was sent for it.

    Both [`throttled_http.InvalidURLError`][throttled_http.InvalidURLError] and an
    `httpx2.RequestError` (an `httpx2.HTTPError`), so `except httpx2.HTTPError` catches it
    as it catches the errors httpx2 raises for a request it cannot send. Raised, for
    example, for a redirect to `http://a|b/`. Nothing was admitted for the hop.
    """

    def __init__(self, message: str, *, request: httpx2.Request) -> None:
        httpx2.RequestError.__init__(self, message, request=request)


class ThrottleTimeout(ThrottlerTimeoutError, httpx2.TimeoutException):
    """A hop waited `throttle_timeout` seconds for its turn in vain; nothing was sent.

    Both [`throttled_http.ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError] (a
    `TimeoutError`) and an `httpx2.TimeoutException` (an `httpx2.HTTPError`), as httpx2's
    own `PoolTimeout` is. The message names the host's key and the timeout.
    """

    def __init__(self, message: str, *, request: httpx2.Request) -> None:
        httpx2.TimeoutException.__init__(self, message, request=request)


# The one implementation (throttled_http._httpx_core), bound to httpx2.
_HTTPX2 = Library(httpx2, InvalidURL, ThrottleTimeout)


@final
class ThrottledTransport(
    ThrottledTransportCore[httpx2.Request, httpx2.Response, httpx2.AsyncBaseTransport],
    httpx2.AsyncBaseTransport,
):
    """An `httpx2.AsyncBaseTransport` that admits every request through a throttler.

    ```python
    async with httpx2.AsyncClient(transport=ThrottledTransport(rate_limit=10)) as client:
        ...
    ```

    [`throttled_http.httpx.ThrottledTransport`][throttled_http.httpx.ThrottledTransport]
    for httpx2 clients, with the same options and the same guarantee: per key (the host,
    by default), the server sees at most `rate_limit` requests in any window of `period`
    seconds, each hop (redirect, auth round, retry) admitted as a latency-proof entry.
    Wraps `transport` (default `httpx2.AsyncHTTPTransport()`; any httpx2 transport works,
    `httpx2.MockTransport` too) and forwards `aclose()` to it.

    Args:
        transport: the httpx2 transport that sends the requests.
        rate_limit: shorthand for `throttler=ThrottlerMap(rate_limit, period)` (default 10).
        period: the window of an int `rate_limit`, in seconds (default 1.0).
        throttler: a [`ThrottlerMap`][throttled_http.ThrottlerMap], a
            [`Throttler`][throttled_http.Throttler] or any
            [`ThrottlerLike`][throttled_http.ThrottlerLike]. Not with `rate_limit` or `period`.
        feedback: a [`FeedbackPolicy`][throttled_http.FeedbackPolicy] (default
            `FeedbackPolicy()`: pause on `Retry-After`, no retries).
        release_timeout: seconds after its headers arrived that a response nobody closes
            gives back its slot (default 300; `None`: until closed).
        throttle_timeout: seconds a hop may wait for its turn at most, then
            [`ThrottleTimeout`][throttled_http.httpx2.ThrottleTimeout] is raised and nothing
            is sent (`None`: wait as long as it takes).
        cost: a function of the request giving its cost, an int or costs per unit
            (`None`: 1; a `throttled_http_cost` extension takes precedence).
        reconcile: a function of the response and the end of its body giving what the
            request really cost, asked once the body has been read (`None`: none).

    Raises:
        TypeError, ValueError: at construction, naming the argument.
    """

    __slots__ = ()

    _library = _HTTPX2


@final
class SyncThrottledTransport(
    SyncThrottledTransportCore[httpx2.Request, httpx2.Response, httpx2.BaseTransport],
    httpx2.BaseTransport,
):
    """An `httpx2.BaseTransport` that admits every request through a thread-safe throttler.

    ```python
    with httpx2.Client(transport=SyncThrottledTransport(rate_limit=10)) as client:
        ...
    ```

    [`throttled_http.httpx.SyncThrottledTransport`][throttled_http.httpx.SyncThrottledTransport]
    for httpx2 clients: per key, at most `rate_limit` requests reach the server in any window
    of `period` seconds, across every thread that shares the client, the transport or its
    `throttler=`.

    Args:
        transport: the httpx2 transport that sends the requests (default
            `httpx2.HTTPTransport()`).
        rate_limit: shorthand for `throttler=SyncThrottlerMap(rate_limit, period)`.
        period: the window of an int `rate_limit`, in seconds (default 1.0).
        throttler: a [`SyncThrottlerMap`][throttled_http.SyncThrottlerMap] (a limit per host) or
            a [`SyncThrottler`][throttled_http.SyncThrottler] (one limit for all). Not with
            `rate_limit` or `period`.
        feedback: a [`FeedbackPolicy`][throttled_http.FeedbackPolicy] (default `FeedbackPolicy()`).
        release_timeout: as for [`ThrottledTransport`][throttled_http.httpx2.ThrottledTransport].
        throttle_timeout: seconds a request may wait for its turn at most, then
            [`ThrottleTimeout`][throttled_http.httpx2.ThrottleTimeout] is raised and nothing
            is sent.
        cost: as for [`ThrottledTransport`][throttled_http.httpx2.ThrottledTransport].
        reconcile: as for [`ThrottledTransport`][throttled_http.httpx2.ThrottledTransport].

    Raises:
        TypeError, ValueError: at construction, naming the argument.
    """

    __slots__ = ()

    _library = _HTTPX2
