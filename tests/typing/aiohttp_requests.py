"""Type-checked, never run: aiohttp per-request options and cost/reconcile callables.

Like ``api.py`` beside it, pytest does not collect this file; ``mypy --strict`` checks it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import aiohttp

from throttled_http import Throttler
from throttled_http.aiohttp import (
    RequestLike,
    ThrottledClientSession,
    ThrottleMiddleware,
    request_options,
    throttle_middleware,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

tokens = Throttler(60, 60.0, budgets={"tokens": "30000/min"})


def weigh(request: RequestLike) -> int | Mapping[str, int]:
    """One function for the session and the middleware: it reads only `RequestLike`."""
    if request.method == "GET" and request.url.path.startswith("/search"):
        return 5
    size = len(request.body) if isinstance(request.body, bytes) else request.body.size or 0
    return {"tokens": size // 4 + int(request.headers.get("X-Max-Tokens", "256"))}


def weigh_hop(request: aiohttp.ClientRequest) -> int:
    """A middleware-only function may take the full `ClientRequest`."""
    return 2 if request.chunked else 1


def usage(response: aiohttp.ClientResponse, tail: bytes) -> Mapping[str, int] | None:
    if response.status != 200 or not tail:
        return None
    counts: dict[str, int] = json.loads(tail)["usage"]
    return counts


async def requests() -> None:
    async with ThrottledClientSession(throttler=tokens, cost=weigh, reconcile=usage) as session:
        async with session.get("http://127.0.0.1:8080/", throttled_http_cost=3) as response:
            status: int = response.status
            del status
        await session.post("http://127.0.0.1:8080/v1", json={}, throttled_http_cost={"tokens": 420})
        await session.put("http://127.0.0.1:8080/", throttled_http_key="api.example.com")
        await session.patch("http://127.0.0.1:8080/", throttled_http_bypass=True)
        await session.delete("http://127.0.0.1:8080/", throttled_http_cost=None)
        await session.head("http://127.0.0.1:8080/", throttled_http_key="https://a.example")
        await session.options("http://127.0.0.1:8080/", throttled_http_cost=2)
        await session.request("GET", "http://127.0.0.1:8080/", throttled_http_cost=2)
        async with session.ws_connect("http://127.0.0.1:8080/ws", throttled_http_cost=2) as ws:
            await ws.send_str("hi")

    throttle: ThrottleMiddleware = throttle_middleware(tokens, cost=weigh, reconcile=usage)
    by_hop = throttle_middleware(tokens, cost=weigh_hop)
    async with aiohttp.ClientSession(middlewares=[throttle, by_hop]) as plain:
        with request_options(cost={"tokens": 420}):
            await plain.get("http://127.0.0.1:8080/")
        with request_options(key="api.example.com"), request_options(bypass=True):
            await plain.get("http://127.0.0.1:8080/")


def refused() -> None:
    """What the signatures refuse (an ignore that stops being needed fails ``--strict``)."""
    session = ThrottledClientSession()
    session.get("/", throttled_http_cost="3")  # type: ignore[arg-type,unused-awaitable]
    session.get("/", throttled_http_key=3)  # type: ignore[arg-type,unused-awaitable]
    session.get("/", throttled_http_bypass="yes")  # type: ignore[arg-type,unused-awaitable]
    ThrottledClientSession(cost=weigh_hop)  # type: ignore[arg-type]  # gets a stand-in too
    ThrottledClientSession(reconcile=lambda response: None)  # type: ignore[arg-type,misc]
    request_options(cost="3")  # type: ignore[arg-type]
