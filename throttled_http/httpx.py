"""httpx integration: transports that make every request wait its turn.

```python
async with httpx.AsyncClient(transport=ThrottledTransport(rate_limit=10)) as client:
    await client.get("https://api.example.com/items")

with httpx.Client(transport=SyncThrottledTransport(rate_limit=10)) as client:
    client.get("https://api.example.com/items")
```

httpx calls its transport once per hop: every redirect and every authentication round
passes through here, and each is charged to the host it goes to.

**Options as objects.** A transport takes what throttles it as an object (`throttler=`
a [`ThrottlerMap`][throttled_http.ThrottlerMap], [`Throttler`][throttled_http.Throttler] or
`RedisThrottler`, shared with other clients if you like) and what to do with the server's
answers as another (`feedback=FeedbackPolicy(...)`). `rate_limit=`/`period=` are the
shorthand for a per-host map at that rate.

**The guarantee.** Each hop is a latency-proof entry of the throttler for its host: it
counts from the moment it is admitted until its response headers arrive (or it fails),
and for `period` seconds after that. A request can only reach the server in between,
so the server sees at most `rate_limit` requests in any window of `period` seconds,
whatever the latency, connection set-up or retries.

**Concurrency.** With `max_concurrency=n` on the map or throttler, each host has at most
`n` responses open. A slot is given back exactly once: when the response body has been
read to the end, when the response is closed (`aclose()`/`close()`, which
`async with client.stream()` and `client.get()` do for you), when reading the body
fails, or when the transport is closed. A response whose body is already in memory
(`httpx.MockTransport`, `respx`, a cache hit) gives its slot back at once. A response
that is never closed gives its slot back `release_timeout` seconds after its headers
arrived, with a warning on the `throttled_http` logger, so no slot is ever lost.

**Per-request control** through `request.extensions` (they survive redirects):

```python
client.get(url, extensions={"throttled_http_cost": 5})        # weigh this request 5
client.get(url, extensions={"throttled_http_key": "search"})  # charge another key
client.get(url, extensions={"throttled_http_bypass": True})   # do not throttle it
```

**Server feedback.** A `429`/`503` with `Retry-After` pauses that host's throttler
(at most `max_retry_after` seconds); `FeedbackPolicy(adapt=True)` follows the rate-limit
headers the server advertises; `FeedbackPolicy(retries=n)` sends a request again, through
the throttler, after the delay the server asked for (never a request whose body cannot be
replayed).

Both transports are thin adapters over the package's one request pipeline, so they keep
exactly the promises of the aiohttp integration.
"""

from __future__ import annotations

from typing import final

from ._exceptions import InvalidURLError, ThrottlerTimeoutError, missing_extra

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra(__name__, "httpx", "httpx") from exc

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


class InvalidURL(InvalidURLError, httpx.RequestError):
    """A hop's URL has no host a limit can be keyed by: no request was sent for it.

    Both [`throttled_http.InvalidURLError`][throttled_http.InvalidURLError] and an
    `httpx.RequestError` (an `httpx.HTTPError`), so `except httpx.HTTPError` catches it as
    it catches the errors httpx raises for a request it cannot send. Raised, for example,
    for a redirect to `http://a|b/`. Nothing was admitted for the hop.
    """

    def __init__(self, message: str, *, request: httpx.Request) -> None:
        httpx.RequestError.__init__(self, message, request=request)


class ThrottleTimeout(ThrottlerTimeoutError, httpx.TimeoutException):
    """A hop waited `throttle_timeout` seconds for its turn in vain; nothing was sent.

    Both [`throttled_http.ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError] (a
    `TimeoutError`) and an `httpx.TimeoutException` (an `httpx.HTTPError`), as httpx's own
    `PoolTimeout` is. The message names the host's key and the timeout.
    """

    def __init__(self, message: str, *, request: httpx.Request) -> None:
        httpx.TimeoutException.__init__(self, message, request=request)


# The one implementation (throttled_http._httpx_core), bound to httpx.
_HTTPX = Library(httpx, InvalidURL, ThrottleTimeout)


@final
class ThrottledTransport(
    ThrottledTransportCore[httpx.Request, httpx.Response, httpx.AsyncBaseTransport],
    httpx.AsyncBaseTransport,
):
    """An `httpx.AsyncBaseTransport` that admits every request through a throttler.

    ```python
    transport = ThrottledTransport(rate_limit=10, period=1.0)
    async with httpx.AsyncClient(transport=transport) as client:
        ...

    hosts = ThrottlerMap(rates="10/s; 1000/h", max_concurrency=4)
    transport = ThrottledTransport(inner, throttler=hosts, feedback=FeedbackPolicy(retries=3))
    ```

    Wraps `transport` (default `httpx.AsyncHTTPTransport()`; any transport works: a
    mounted one, a caching or retrying one, `httpx.MockTransport`) and forwards
    `aclose()` to it.

    **The guarantee.** Per key (the host, by default), the server sees at most
    `rate_limit` requests in any window of `period` seconds: each hop (redirect, auth
    round, retry) is admitted as a latency-proof entry that counts from admission until its
    response headers arrive (or it fails) and for `period` seconds after that. Two hosts
    proceed side by side. A map or throttler built with `burst=1` spaces requests
    `period / rate_limit` seconds apart at the server, so a leaky-bucket server (nginx
    `limit_req`) never answers 429.

    **Concurrency.** With `max_concurrency=n` on the throttler, each key has at most
    `n` responses open; a slot is given back exactly once, when the body is read to its
    end, the response is closed, reading it fails, or this transport is closed; at once
    for a response whose body is already in memory; and after `release_timeout` seconds
    for a response nobody closes (logged as a warning on the `throttled_http` logger).

    **Per request** (`request.extensions`): `throttled_http_cost` (an int >= 1),
    `throttled_http_key` (charge the request to another host's limit: a URL or a host
    name, which gets the request's scheme; ignored with a single shared throttler), and
    `throttled_http_bypass` (`True`: not throttled).

    **Server feedback.** After each response's headers, `feedback` pauses or retunes
    that key's throttler as the server asks, and decides whether to send the request again
    (see [`FeedbackPolicy`][throttled_http.FeedbackPolicy]). A retry closes the refused response,
    sleeps, and waits for a new entry like any request.

    Args:
        transport: the transport that sends the requests.
        rate_limit: shorthand for `throttler=ThrottlerMap(rate_limit, period)`: requests
            per window per host, an int >= 1 or a rate such as `"10/s"` (default 10).
        period: the window of an int `rate_limit`, in seconds (default 1.0).
        throttler: a [`ThrottlerMap`][throttled_http.ThrottlerMap] (a limit per host), a
            [`Throttler`][throttled_http.Throttler] or `RedisThrottler` (one limit for all),
            or any [`ThrottlerLike`][throttled_http.ThrottlerLike]; it carries its rates, burst,
            `max_concurrency`, scope, overrides and backend. Not with `rate_limit`
            or `period`.
        feedback: a [`FeedbackPolicy`][throttled_http.FeedbackPolicy] (default
            `FeedbackPolicy()`: pause on `Retry-After`, no retries).
        release_timeout: seconds after its headers arrived that a response nobody closes
            gives back its slot, a finite number > 0 (default 300); `None` keeps the
            slot until the response is closed or the transport is.
        throttle_timeout: seconds a hop may wait for its turn at most, then
            [`ThrottleTimeout`][throttled_http.httpx.ThrottleTimeout] (an
            `httpx.TimeoutException` and a `ThrottlerTimeoutError`) is raised and nothing
            is sent (`None`: wait as long as it takes).
        cost: a function of the request giving its cost: an int, or costs per unit
            (`{"tokens": 420}`) for a throttler with `budgets` (`None`: 1; a
            `throttled_http_cost` extension takes precedence). See
            [LLM APIs](llm.md) for presets.
        reconcile: a function of the response and the end of its body (its last 64 KiB,
            as bytes) giving what the request really cost per unit, or `None`; asked once
            the body has been read to its end, and the entry reconciled with it
            ([`Entry.reconcile`][throttled_http.Entry.reconcile]); also asked, with an
            empty tail, for a refused response that is sent again.

    Raises:
        TypeError, ValueError: at construction, naming the argument.

    Changed in 0.2: `transport` is the first parameter; the limit options moved to
    `throttler=` and the feedback options to `feedback=`; `hold_timeout` is
    `release_timeout`.
    """

    __slots__ = ()

    _library = _HTTPX


@final
class SyncThrottledTransport(
    SyncThrottledTransportCore[httpx.Request, httpx.Response, httpx.BaseTransport],
    httpx.BaseTransport,
):
    """An `httpx.BaseTransport` that admits every request through a thread-safe throttler.

    ```python
    transport = SyncThrottledTransport(rate_limit=10, period=1.0)
    with httpx.Client(transport=transport) as client:
        ...
    ```

    The threaded twin of [`ThrottledTransport`][throttled_http.httpx.ThrottledTransport],
    with the same options and the same guarantees: per key, at most `rate_limit` requests
    reach the server in any window of `period` seconds, whatever the latency, across every
    thread that shares the client, the transport, or its `throttler=` (a
    [`SyncThrottlerMap`][throttled_http.SyncThrottlerMap] shared by several clients keeps
    one limit per host for all of them). Threads wait in arrival order, each blocked on a
    condition until its exact turn: no polling.

    A response nobody closes gives its concurrency slot back `release_timeout` seconds
    after its headers arrived; one helper thread, running only while responses are open,
    does that.

    Args:
        transport: the transport that sends the requests (default `httpx.HTTPTransport()`).
        rate_limit: shorthand for `throttler=SyncThrottlerMap(rate_limit, period)`.
        period: the window of an int `rate_limit`, in seconds (default 1.0).
        throttler: a [`SyncThrottlerMap`][throttled_http.SyncThrottlerMap] (a limit per host) or a
            [`SyncThrottler`][throttled_http.SyncThrottler] (one limit for all). Not with
            `rate_limit` or `period`.
        feedback: a [`FeedbackPolicy`][throttled_http.FeedbackPolicy] (default `FeedbackPolicy()`).
        release_timeout: as for [`ThrottledTransport`][throttled_http.httpx.ThrottledTransport].
        throttle_timeout: seconds a request may wait for its turn at most, then
            [`ThrottleTimeout`][throttled_http.httpx.ThrottleTimeout] is raised and
            nothing is sent.
        cost: as for [`ThrottledTransport`][throttled_http.httpx.ThrottledTransport].
        reconcile: as for [`ThrottledTransport`][throttled_http.httpx.ThrottledTransport].

    Raises:
        TypeError, ValueError: at construction, naming the argument.

    Changed in 0.2: as [`ThrottledTransport`][throttled_http.httpx.ThrottledTransport];
    `throttler=` also takes a [`SyncThrottlerMap`][throttled_http.SyncThrottlerMap].
    """

    __slots__ = ()

    _library = _HTTPX
