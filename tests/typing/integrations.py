"""Type-checked, never run: the per-host, feedback and integration APIs as users write them.

Like ``api.py`` beside it, pytest does not collect this file; ``mypy --strict`` checks it.
"""

from __future__ import annotations

import aiohttp
import httpx

from throttled_http import (
    FeedbackPolicy,
    Rate,
    SyncThrottler,
    Throttler,
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
snapshot: ThrottlerMapStatistics = hosts.stats()

policy = FeedbackPolicy(max_retry_after=60.0, adapt=True, retries=2)

threads = SyncThrottler(10, 1.0, max_concurrency=4)
with threads:
    pass
with httpx.Client(transport=SyncThrottledTransport(rate_limit=10)) as sync_client:
    sync_client.get("http://127.0.0.1:8080/")


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
    async with ThrottledClientSession(throttler=shared, retries=3, adapt=True):
        pass
    async with aiohttp.ClientSession(
        middlewares=[throttle_middleware(hosts)],
        trace_configs=[throttle_trace_config(shared)],
    ):
        pass

    transport = ThrottledTransport(rate_limit=10, burst=1, max_concurrency=4)
    async with httpx.AsyncClient(transport=transport) as client:
        reply: httpx.Response = await client.get("http://127.0.0.1:8080/")
        status = reply.status_code
    fleet = RedisThrottler(100, 60.0, redis="redis://127.0.0.1:6379/0", key="github-api")
    async with fleet:
        pass
    await fleet.aclose()
    backend = RedisBackend("redis://127.0.0.1:6379/0", prefix="throttled_http:")
    async with ThrottledClientSession(rate_limit=5, backend=backend):
        pass
    await backend.aclose()
    print(status)
