"""Type-checked, never run: the per-host, feedback and integration APIs as users write them.

Like ``api.py`` beside it, pytest does not collect this file; ``mypy --strict`` checks it.
"""

from __future__ import annotations

import aiohttp
import httpx
import httpx2

import throttled_http.httpx2
from throttled_http import (
    FeedbackPolicy,
    FeedbackStatistics,
    Rate,
    SyncThrottler,
    SyncThrottlerLike,
    SyncThrottlerMap,
    Throttler,
    ThrottlerLike,
    ThrottlerMap,
    ThrottlerMapStatistics,
    host_key,
)
from throttled_http.aiohttp import (
    ThrottledClientSession,
    throttle_middleware,
    throttle_trace_config,
)
from throttled_http.httpx import SyncThrottledTransport, ThrottledTransport
from throttled_http.redis import RedisBackend, RedisThrottler

hosts = ThrottlerMap(
    rate_limit=2,
    period=1.0,
    scope="domain",
    overrides={"api.github.com": "5000/h", "*.example.org": Rate(10, 1.0), "localhost": None},
    max_keys=10_000,
)
by_token = ThrottlerMap(5, 1.0, scope=lambda url: str(url).split("/")[2])
key: str = host_key("https://Example.com/a")
count: int = len(hosts)
snapshot: ThrottlerMapStatistics = hosts.statistics()
busiest: ThrottlerMapStatistics = hosts.statistics(top=3)
defaults = ThrottlerMap()  # 10 per 1.0 s
per_minute = ThrottlerMap(period=60.0, overrides={"api.github.com": 30, "localhost": None})
quota = ThrottlerMap("10/s; 1000/h", max_concurrency=4, burst=2)
listed = ThrottlerMap(rates=["10/s", Rate(1000, 3600.0)])
resolved: tuple[str, ThrottlerLike | None] = hosts.resolve("https://a.example/")
found: tuple[str, ThrottlerLike | None] = hosts.resolve(
    "https://a.example/", origin=("https", "a.example", 443)
)
current: bool = hosts.is_current(resolved[0], resolved[1])
one: ThrottlerLike | None = hosts.throttler_for("https://a.example/")

shared_hosts = SyncThrottlerMap(rate_limit=5, period=1.0, overrides={"localhost": None})
sync_resolved: tuple[str, SyncThrottlerLike | None] = shared_hosts.resolve("https://a.example/")
sync_current: bool = shared_hosts.is_current(*sync_resolved)
sync_one: SyncThrottlerLike | None = shared_hosts.throttler_for("https://a.example/")
sync_snapshot: ThrottlerMapStatistics = shared_hosts.statistics()
shared_hosts.pause("https://a.example/", 5.0)

policy = FeedbackPolicy(max_retry_after=60.0, adapt=True, retries=2)
deaf = FeedbackPolicy(ignore_server_times=True, retries=3)
ignoring: bool = deaf.ignore_server_times
longest: float = deaf.max_retry_after
backoff: float = policy.backoff_delay(2)
feedback_snapshot: FeedbackStatistics = policy.statistics()

threads = SyncThrottler(10, 1.0, max_concurrency=4)
with threads:
    pass
with httpx.Client(transport=SyncThrottledTransport(rate_limit=10)) as sync_client:
    sync_client.get("http://127.0.0.1:8080/")
with httpx.Client(
    transport=SyncThrottledTransport(
        httpx.HTTPTransport(), throttler=shared_hosts, feedback=deaf, release_timeout=None
    )
) as shared_client:
    shared_client.get("http://127.0.0.1:8080/")


async def clients() -> None:
    async with hosts.limit("https://www.bbc.co.uk/news"):
        pass

    async with (
        ThrottledClientSession(rate_limit=10) as session,
        session.get("http://127.0.0.1:8080/") as response,
    ):
        status: int = response.status
        await response.read()
    shared = Throttler(10, 1.0)
    async with ThrottledClientSession(
        throttler=shared, feedback=FeedbackPolicy(retries=3, adapt=True), release_timeout=60.0
    ) as retrying:
        used: ThrottlerLike | ThrottlerMap = retrying.throttler
        del used
    async with aiohttp.ClientSession(
        middlewares=[throttle_middleware(hosts, feedback=policy, release_timeout=None)],
        trace_configs=[throttle_trace_config(shared, throttle_timeout=5.0)],
    ):
        pass

    transport = ThrottledTransport(
        httpx.AsyncHTTPTransport(),
        throttler=ThrottlerMap(10, burst=1, max_concurrency=4),
        feedback=policy,
        throttle_timeout=30.0,
    )
    transport_throttler: ThrottlerLike | ThrottlerMap = transport.throttler
    del transport_throttler
    async with httpx.AsyncClient(transport=transport) as client:
        reply: httpx.Response = await client.get("http://127.0.0.1:8080/")
        status = reply.status_code
    fleet = RedisThrottler(100, 60.0, redis="redis://127.0.0.1:6379/0", key="github-api")
    async with fleet:
        pass
    await fleet.aclose()
    backend = RedisBackend("redis://127.0.0.1:6379/0", prefix="throttled_http:")
    async with ThrottledClientSession(throttler=ThrottlerMap(5, backend=backend)):
        pass
    await backend.aclose()
    print(status)


def refused() -> None:
    """What the 0.2 signatures refuse (an ignore that stops being needed fails ``--strict``)."""
    SyncThrottledTransport(throttler=hosts)  # type: ignore[arg-type]  # an asyncio map
    ThrottledTransport(throttler=shared_hosts)  # type: ignore[arg-type]  # a threads' map
    ThrottledClientSession(10)  # type: ignore[call-arg]  # keyword-only
    FeedbackPolicy(max_retry_after=None)  # type: ignore[arg-type]  # ignore_server_times=True


async def with_httpx2() -> None:
    """The httpx2 transports, typed in httpx2's classes."""
    transport = throttled_http.httpx2.ThrottledTransport(
        httpx2.MockTransport(lambda request: httpx2.Response(200)), throttler=hosts
    )
    inner: httpx2.AsyncBaseTransport = transport.transport
    async with httpx2.AsyncClient(transport=transport) as client:
        reply: httpx2.Response = await client.get("http://127.0.0.1:8080/")
    sync = throttled_http.httpx2.SyncThrottledTransport(throttler=shared_hosts)
    sync_inner: httpx2.BaseTransport = sync.transport
    with httpx2.Client(transport=sync) as sync_client:
        sync_reply: httpx2.Response = sync_client.get("http://127.0.0.1:8080/")
    timeout: type[httpx2.TimeoutException] = throttled_http.httpx2.ThrottleTimeout
    invalid: type[httpx2.RequestError] = throttled_http.httpx2.InvalidURL
    print(inner, reply, sync_inner, sync_reply, timeout, invalid)


def refused_across_libraries() -> None:
    """Each library's transports take that library's transports only."""
    throttled_http.httpx2.ThrottledTransport(httpx.AsyncHTTPTransport())  # type: ignore[arg-type]
    throttled_http.httpx2.SyncThrottledTransport(httpx.HTTPTransport())  # type: ignore[arg-type]
    ThrottledTransport(httpx2.AsyncHTTPTransport())  # type: ignore[arg-type]
    SyncThrottledTransport(httpx2.HTTPTransport())  # type: ignore[arg-type]
