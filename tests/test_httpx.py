"""Tests for the httpx transports: limits at a real server, slots, extensions, feedback, respx."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import respx

from throttled_http import (
    FeedbackPolicy,
    InvalidURLError,
    Rate,
    SyncThrottler,
    SyncThrottlerMap,
    Throttler,
    ThrottlerMap,
    ThrottlerTimeoutError,
)
from throttled_http.httpx import (
    BYPASS_EXTENSION,
    COST_EXTENSION,
    KEY_EXTENSION,
    SyncThrottledTransport,
    ThrottledTransport,
    ThrottleTimeout,
)
from throttled_http.testing import RecordingServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Generator, Iterator

# -- helpers ---------------------------------------------------------------------------


def ok(request: httpx.Request) -> httpx.Response:
    """A MockTransport handler answering 200 with an in-memory body."""
    return httpx.Response(200, text="ok")


class SlowBody(httpx.AsyncByteStream):
    """A streamed body of ``chunks`` chunks; ``fail_at`` makes one chunk raise."""

    def __init__(self, chunks: int = 3, fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(self.chunks):
            if i == self.fail_at:
                raise httpx.ReadError("connection lost")
            await asyncio.sleep(0.01)
            yield b"x"

    async def aclose(self) -> None:
        self.closed = True


class SyncBody(httpx.SyncByteStream):
    """A streamed body for the sync transport."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    def close(self) -> None:
        self.closed = True


def streaming(body: httpx.AsyncByteStream) -> httpx.AsyncBaseTransport:
    """A mock transport whose responses stream ``body``."""

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=body)

    return httpx.MockTransport(handler)


def in_flight(transport: ThrottledTransport | SyncThrottledTransport, url: str) -> int:
    """Slots held now by ``url``'s key."""
    hosts = transport.throttler
    assert isinstance(hosts, (ThrottlerMap, SyncThrottlerMap))
    limiter = hosts.throttler_for(url)
    assert isinstance(limiter, (Throttler, SyncThrottler))
    return limiter.statistics().in_flight


class SlowStart(httpx.AsyncBaseTransport):
    """Delays sending by turns 0.15 s and 0 s, like connection set-up on some requests only."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        if self.count % 2:
            await asyncio.sleep(0.15)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- the limit at a real server -----------------------------------------------------


@pytest.mark.realclock
async def test_per_host_limit_holds_at_the_server_with_latency() -> None:
    """With 40 ms of server latency, each host sees at most 3 requests per 0.3 s window."""
    async with RecordingServer(latency=0.04) as srv:
        transport = ThrottledTransport(rate_limit=3, period=0.3)
        async with httpx.AsyncClient(transport=transport) as client:
            start = time.monotonic()
            urls = [srv.url("/", host=i % 2) for i in range(18)]
            responses = await asyncio.gather(*(client.get(u) for u in urls))
            elapsed = time.monotonic() - start
        assert [r.status_code for r in responses] == [200] * 18
        assert srv.max_in_window(0.3, host=0) <= 3
        assert srv.max_in_window(0.3, host=1) <= 3
        assert len(srv.arrivals_at(0)) == len(srv.arrivals_at(1)) == 9
        # The two hosts proceed side by side: 9 each need 3 windows, not 6.
        assert elapsed < 1.5


@pytest.mark.realclock
async def test_limit_holds_whatever_the_connection_set_up_time(server: RecordingServer) -> None:
    """Requests delayed 0.15 s before sending cannot pile up with later ones at the server."""
    transport = ThrottledTransport(SlowStart(), rate_limit=3, period=0.3)
    async with httpx.AsyncClient(transport=transport) as client:
        responses = await asyncio.gather(*(client.get(server.url("/")) for _ in range(12)))
    assert [r.status_code for r in responses] == [200] * 12
    assert server.max_in_window(0.3) <= 3


@pytest.mark.realclock
async def test_smooth_mode_draws_no_429_from_a_leaky_bucket(server: RecordingServer) -> None:
    """burst=1 spaces requests so a leaky-bucket server (nginx limit_req) never refuses one."""
    server.leaky_bucket = 0.045  # the client spaces them 0.05 s apart
    transport = ThrottledTransport(throttler=ThrottlerMap(10, 0.5, burst=1))
    async with httpx.AsyncClient(transport=transport) as client:
        responses = await asyncio.gather(*(client.get(server.url("/")) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    assert server.rejected.get("127.0.0.1", 0) == 0


@pytest.mark.realclock
async def test_every_redirect_hop_is_throttled(server: RecordingServer) -> None:
    """A redirect chain of 4 hops counts 4 requests against the host's limit."""
    transport = ThrottledTransport(rate_limit=2, period=0.2)
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
        responses = await asyncio.gather(
            client.get(server.url("/redirect/3")), client.get(server.url("/redirect/3"))
        )
    assert [len(r.history) for r in responses] == [3, 3]
    assert len(server.arrivals) == 8
    assert server.max_in_window(0.2, host=0) <= 2


@pytest.mark.realclock
async def test_a_redirect_to_another_host_is_charged_to_that_host(
    server: RecordingServer,
) -> None:
    """A hop to 127.0.0.2 waits in 127.0.0.2's throttler, not in the first host's."""
    transport = ThrottledTransport(rate_limit=1, period=2.0)
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
        start = time.monotonic()
        response = await client.get(server.url("/to/127.0.0.2/"))
        elapsed = time.monotonic() - start
    assert response.status_code == 200
    assert [a.host for a in server.arrivals] == ["127.0.0.1", "127.0.0.2"]
    assert elapsed < 1.5  # with one shared limit of 1 per 2 s the second hop would wait 2 s
    hosts = transport.throttler
    assert isinstance(hosts, ThrottlerMap)
    assert len(hosts) == 2


@pytest.mark.realclock
async def test_max_concurrency_holds_at_the_server(server: RecordingServer) -> None:
    """With max_concurrency=2 the server never handles more than 2 requests per host at once."""
    transport = ThrottledTransport(throttler=ThrottlerMap(100, 1.0, max_concurrency=2))
    async with httpx.AsyncClient(transport=transport) as client:

        async def fetch(host: int) -> int:
            async with client.stream("GET", server.url("/stream/3?interval=0.02", host)) as r:
                await r.aread()
                return r.status_code

        statuses = await asyncio.gather(*(fetch(i % 2) for i in range(10)))
    assert statuses == [200] * 10
    assert server.max_in_flight["127.0.0.1"] <= 2
    assert server.max_in_flight["127.0.0.2"] <= 2
    assert in_flight(transport, server.url("/")) == 0


@pytest.mark.realclock
async def test_429_pauses_only_that_host(server: RecordingServer) -> None:
    """A 429 with Retry-After pauses the host that sent it; the other host goes on."""
    transport = ThrottledTransport(rate_limit=10, period=1.0)
    async with httpx.AsyncClient(transport=transport) as client:
        refused = await client.get(server.url("/status/429?retry_after=30", host=0))
        assert refused.status_code == 429
        assert (await client.get(server.url("/", host=1))).status_code == 200
        hosts = transport.throttler
        assert isinstance(hosts, ThrottlerMap)
        first = hosts.throttler_for(server.url("/", host=0))
        second = hosts.throttler_for(server.url("/", host=1))
        assert first is not None
        assert second is not None
        assert 29 < first.paused_for <= 30
        assert second.paused_for == 0


@pytest.mark.realclock
async def test_retries_deliver_200_from_a_rate_limited_server() -> None:
    """A server allowing 2 per second answers 429 to the rest; retries bring every 200 home."""
    async with RecordingServer(server_limit=Rate(2, 1.0)) as srv:
        transport = ThrottledTransport(
            rate_limit=10, period=1.0, feedback=FeedbackPolicy(retries=3)
        )
        async with httpx.AsyncClient(transport=transport) as client:
            responses = await asyncio.gather(*(client.get(srv.url("/")) for _ in range(3)))
    assert [r.status_code for r in responses] == [200] * 3
    assert srv.rejected["127.0.0.1"] >= 1


# -- slots and response lifetimes (mock transports, virtual time) ---------------------


@pytest.mark.looptime
async def test_in_memory_response_frees_the_slot_at_once() -> None:
    """A response whose body is already in memory gives its slot back immediately."""
    transport = ThrottledTransport(
        httpx.MockTransport(ok), throttler=ThrottlerMap(10, 1.0, max_concurrency=1)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        request = client.build_request("GET", "http://a.example/")
        response = await client.send(request, stream=True)
        assert in_flight(transport, "http://a.example/") == 0
        await response.aclose()


@pytest.mark.looptime
async def test_slot_held_until_the_stream_is_read_to_the_end() -> None:
    """A streamed response holds its slot until its body is exhausted."""
    body = SlowBody(3)
    transport = ThrottledTransport(
        streaming(body), throttler=ThrottlerMap(10, 1.0, max_concurrency=2)
    )
    async with (
        httpx.AsyncClient(transport=transport) as client,
        client.stream("GET", "http://a.example/") as response,
    ):
        assert in_flight(transport, "http://a.example/") == 1
        chunks = [chunk async for chunk in response.aiter_raw()]
        assert chunks == [b"x"] * 3
        assert in_flight(transport, "http://a.example/") == 0
    assert body.closed


@pytest.mark.looptime
async def test_slot_freed_on_aclose_without_reading() -> None:
    """Closing an unread streamed response frees its slot, once."""
    transport = ThrottledTransport(
        streaming(SlowBody()), throttler=ThrottlerMap(10, 1.0, max_concurrency=1)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        request = client.build_request("GET", "http://a.example/")
        response = await client.send(request, stream=True)
        assert in_flight(transport, "http://a.example/") == 1
        await response.aclose()
        await response.aclose()
        assert in_flight(transport, "http://a.example/") == 0


@pytest.mark.looptime
async def test_slot_freed_when_reading_the_body_fails() -> None:
    """An error while streaming the body frees the slot."""
    transport = ThrottledTransport(
        streaming(SlowBody(3, fail_at=1)), throttler=ThrottlerMap(10, 1.0, max_concurrency=1)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ReadError):
            await client.get("http://a.example/")
        assert in_flight(transport, "http://a.example/") == 0


@pytest.mark.looptime
async def test_slot_freed_when_the_client_closes() -> None:
    """Closing the client gives back the slots of responses left open, and closes the inner."""
    body = SlowBody()
    inner = streaming(body)
    transport = ThrottledTransport(inner, throttler=ThrottlerMap(10, 1.0, max_concurrency=1))
    client = httpx.AsyncClient(transport=transport)
    request = client.build_request("GET", "http://a.example/")
    response = await client.send(request, stream=True)
    assert in_flight(transport, "http://a.example/") == 1
    await client.aclose()
    assert in_flight(transport, "http://a.example/") == 0
    await response.aclose()  # still safe: the slot is not given back twice
    assert in_flight(transport, "http://a.example/") == 0


@pytest.mark.looptime
async def test_unclosed_response_gives_its_slot_back_after_release_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A response nobody closes frees its slot after release_timeout seconds, with a warning."""
    transport = ThrottledTransport(
        streaming(SlowBody()),
        throttler=ThrottlerMap(10, 1.0, max_concurrency=1),
        release_timeout=30,
    )
    async with httpx.AsyncClient(transport=transport) as client:
        request = client.build_request("GET", "http://a.example/")
        response = await client.send(request, stream=True)
        waiter = asyncio.ensure_future(client.get("http://a.example/"))
        await asyncio.sleep(29)
        assert not waiter.done()
        with caplog.at_level(logging.WARNING, logger="throttled_http"):
            await asyncio.sleep(2)
        assert waiter.done()
        assert "not released within release_timeout=30.0 seconds" in caplog.text
        await response.aclose()
        assert in_flight(transport, "http://a.example/") == 0


@pytest.mark.looptime
async def test_cancel_while_waiting_for_a_turn_holds_nothing() -> None:
    """A request cancelled while queued in the throttler takes no entry and no slot."""
    transport = ThrottledTransport(httpx.MockTransport(ok), rate_limit=1, period=10.0)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://a.example/")
        task = asyncio.ensure_future(client.get("http://a.example/"))
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hosts = transport.throttler
        assert isinstance(hosts, ThrottlerMap)
        limiter = hosts.throttler_for("http://a.example/")
        assert isinstance(limiter, Throttler)
        stats = limiter.statistics()
        assert (stats.waiting, stats.open, stats.in_flight, stats.in_window) == (0, 0, 0, 1)


@pytest.mark.looptime
async def test_cancel_while_the_request_is_in_flight_frees_the_slot() -> None:
    """A request cancelled before its headers arrive gives back its slot and settles."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        return httpx.Response(200)

    transport = ThrottledTransport(
        httpx.MockTransport(slow), throttler=ThrottlerMap(5, 1.0, max_concurrency=1)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        task = asyncio.ensure_future(client.get("http://a.example/"))
        await asyncio.sleep(1)
        assert in_flight(transport, "http://a.example/") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert in_flight(transport, "http://a.example/") == 0


@pytest.mark.looptime
async def test_cancel_while_reading_the_body_frees_the_slot() -> None:
    """A task cancelled while it streams the body gives the slot back."""
    transport = ThrottledTransport(
        streaming(SlowBody(chunks=1000)), throttler=ThrottlerMap(10, 1.0, max_concurrency=1)
    )
    async with httpx.AsyncClient(transport=transport) as client:

        async def read() -> None:
            async with client.stream("GET", "http://a.example/") as response:
                async for _ in response.aiter_bytes():
                    pass

        task = asyncio.ensure_future(read())
        await asyncio.sleep(0.5)
        assert in_flight(transport, "http://a.example/") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert in_flight(transport, "http://a.example/") == 0


class TwoRounds(httpx.Auth):
    """An auth flow that needs a second round trip, as digest auth does."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = "Token secret"
            yield request


@pytest.mark.looptime
async def test_every_auth_round_is_throttled() -> None:
    """Each authentication round trip waits its turn like any request."""
    loop = asyncio.get_running_loop()

    def challenge(request: httpx.Request) -> httpx.Response:
        if "Authorization" not in request.headers:
            return httpx.Response(401)
        return httpx.Response(200)

    transport = ThrottledTransport(httpx.MockTransport(challenge), rate_limit=1, period=10.0)
    async with httpx.AsyncClient(transport=transport, auth=TwoRounds()) as client:
        start = loop.time()
        response = await client.get("http://a.example/")
        assert response.status_code == 200
        assert loop.time() - start >= 10


@pytest.mark.looptime
async def test_throttle_timeout_gives_up_and_sends_nothing() -> None:
    """throttle_timeout bounds the wait for a turn; the request is not sent."""
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    transport = ThrottledTransport(
        httpx.MockTransport(record), rate_limit=1, period=60.0, throttle_timeout=5.0
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://a.example/")
        with pytest.raises(ThrottlerTimeoutError):
            await client.get("http://a.example/")
    assert len(sent) == 1


@pytest.mark.looptime
async def test_release_timeout_none_keeps_the_slot_until_close() -> None:
    """With release_timeout=None an unclosed response keeps its slot until it is closed."""
    transport = ThrottledTransport(
        streaming(SlowBody()),
        throttler=ThrottlerMap(10, 1.0, max_concurrency=1),
        release_timeout=None,
    )
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.send(client.build_request("GET", "http://a.example/"), stream=True)
        await asyncio.sleep(3600)
        assert in_flight(transport, "http://a.example/") == 1
        await response.aclose()
        assert in_flight(transport, "http://a.example/") == 0


@pytest.mark.looptime
async def test_transport_error_before_headers_frees_the_slot() -> None:
    """A connection error settles the entry and frees its slot."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    transport = ThrottledTransport(
        httpx.MockTransport(refuse), throttler=ThrottlerMap(5, 1.0, max_concurrency=1)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://a.example/")
        assert in_flight(transport, "http://a.example/") == 0


# -- per-request extensions -------------------------------------------------------------


@pytest.mark.looptime
async def test_cost_extension_weighs_the_request() -> None:
    """throttled_http_cost=3 uses 3 of the window's 4 entries."""
    loop = asyncio.get_running_loop()
    transport = ThrottledTransport(httpx.MockTransport(ok), rate_limit=4, period=10.0)
    async with httpx.AsyncClient(transport=transport) as client:
        start = loop.time()
        await client.get("http://a.example/", extensions={COST_EXTENSION: 3})
        await client.get("http://a.example/")
        assert loop.time() - start < 1
        await client.get("http://a.example/")
        assert loop.time() - start >= 10


@pytest.mark.looptime
async def test_bad_cost_extension_is_rejected() -> None:
    """A cost that is not a positive int raises, naming the extension."""
    transport = ThrottledTransport(httpx.MockTransport(ok), rate_limit=4, period=1.0)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(ValueError, match="throttled_http_cost must be a positive integer"):
            await client.get("http://a.example/", extensions={COST_EXTENSION: 0})


@pytest.mark.looptime
async def test_key_extension_charges_another_host() -> None:
    """throttled_http_key charges a request to another host's limit (its overrides apply)."""
    loop = asyncio.get_running_loop()
    transport = ThrottledTransport(
        httpx.MockTransport(ok),
        throttler=ThrottlerMap(10, 1.0, overrides={"quota.example": "1/10s"}),
    )
    async with httpx.AsyncClient(transport=transport) as client:
        start = loop.time()
        await client.get("http://a.example/", extensions={KEY_EXTENSION: "quota.example"})
        await client.get("http://b.example/", extensions={KEY_EXTENSION: "http://quota.example"})
        assert loop.time() - start >= 10
    hosts = transport.throttler
    assert isinstance(hosts, ThrottlerMap)
    assert "http://quota.example:80" in hosts
    assert "http://a.example:80" not in hosts


@pytest.mark.looptime
async def test_bypass_extension_skips_the_throttler() -> None:
    """throttled_http_bypass sends at once, taking no entry."""
    loop = asyncio.get_running_loop()
    transport = ThrottledTransport(httpx.MockTransport(ok), rate_limit=1, period=10.0)
    async with httpx.AsyncClient(transport=transport) as client:
        start = loop.time()
        for _ in range(3):
            await client.get("http://a.example/", extensions={BYPASS_EXTENSION: True})
        assert loop.time() - start < 1
        assert len(transport.throttler) == 0  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_host_with_no_limit_override_is_not_throttled() -> None:
    """An override of None leaves that host unlimited."""
    loop = asyncio.get_running_loop()
    transport = ThrottledTransport(
        httpx.MockTransport(ok), throttler=ThrottlerMap(1, 10.0, overrides={"free.example": None})
    )
    async with httpx.AsyncClient(transport=transport) as client:
        start = loop.time()
        for _ in range(3):
            await client.get("http://free.example/")
        assert loop.time() - start < 1


# -- feedback -----------------------------------------------------------------------------


def refuse_first(times: int, retry_after: str = "2") -> httpx.MockTransport:
    """A mock server that answers 429 to the first ``times`` requests, then 200."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= times:
            return httpx.Response(429, headers={"Retry-After": retry_after})
        return httpx.Response(200, text="ok")

    return httpx.MockTransport(handler)


@pytest.mark.looptime
async def test_retry_after_429_waits_the_server_delay_and_delivers_200() -> None:
    """retries=2 sends a refused GET again after Retry-After seconds, through the throttler."""
    loop = asyncio.get_running_loop()
    transport = ThrottledTransport(
        refuse_first(2), rate_limit=10, period=1.0, feedback=FeedbackPolicy(retries=2)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        start = loop.time()
        response = await client.get("http://a.example/")
        assert response.status_code == 200
        assert loop.time() - start >= 4
        assert in_flight(transport, "http://a.example/") == 0


@pytest.mark.looptime
async def test_retries_stop_after_the_allowed_number() -> None:
    """With retries=1, the second 429 is returned to the caller."""
    transport = ThrottledTransport(
        refuse_first(5), rate_limit=10, period=1.0, feedback=FeedbackPolicy(retries=1)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("http://a.example/")
        assert response.status_code == 429


@pytest.mark.looptime
async def test_a_one_shot_body_is_never_retried() -> None:
    """A request whose body is a one-shot stream is not sent again."""

    async def body() -> AsyncIterator[bytes]:
        yield b"data"

    class Streaming(httpx.AsyncBaseTransport):
        """Consumes the request body as a network transport does, without buffering it."""

        sent = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            assert isinstance(request.stream, httpx.AsyncByteStream)
            async for _ in request.stream:
                pass
            self.sent += 1
            return httpx.Response(429, headers={"Retry-After": "1"})

    inner = Streaming()
    transport = ThrottledTransport(
        inner, rate_limit=10, period=1.0, feedback=FeedbackPolicy(retries=3)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.put("http://a.example/", content=body())
        assert response.status_code == 429
    assert inner.sent == 1


@pytest.mark.looptime
async def test_max_retry_after_caps_the_pause() -> None:
    """A server asking for an hour pauses the host for max_retry_after seconds only."""
    transport = ThrottledTransport(
        refuse_first(1, retry_after="3600"),
        rate_limit=10,
        period=1.0,
        feedback=FeedbackPolicy(max_retry_after=5.0),
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://a.example/")
        hosts = transport.throttler
        assert isinstance(hosts, ThrottlerMap)
        limiter = hosts.throttler_for("http://a.example/")
        assert limiter is not None
        assert 0 < limiter.paused_for <= 5.0


# -- respx ------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_works_under_respx_default_mocking() -> None:
    """respx's default mocking (patching httpcore) still goes through the throttler."""
    loop = asyncio.get_running_loop()
    with respx.mock:
        route = respx.get("https://api.example.com/items").respond(200, json=[1])
        transport = ThrottledTransport(rate_limit=2, period=5.0)
        async with httpx.AsyncClient(transport=transport) as client:
            start = loop.time()
            responses = await asyncio.gather(
                *(client.get("https://api.example.com/items") for _ in range(5))
            )
            elapsed = loop.time() - start
    assert [r.json() for r in responses] == [[1]] * 5
    assert route.call_count == 5
    assert 10 <= elapsed < 11


@pytest.mark.looptime
async def test_works_over_a_respx_router_transport() -> None:
    """httpx.MockTransport(router.handler), respx's transport style, is throttled too."""
    loop = asyncio.get_running_loop()
    router = respx.Router(assert_all_called=False)
    router.get("https://api.example.com/").respond(204)
    transport = ThrottledTransport(httpx.MockTransport(router.handler), rate_limit=1, period=2.0)
    async with httpx.AsyncClient(transport=transport) as client:
        start = loop.time()
        for _ in range(3):
            assert (await client.get("https://api.example.com/")).status_code == 204
        assert loop.time() - start >= 4


# -- sharing and construction -------------------------------------------------------------


@pytest.mark.looptime
async def test_shared_throttler_limits_two_clients_together() -> None:
    """Two clients built on one Throttler share its budget."""
    loop = asyncio.get_running_loop()
    shared = Throttler(2, 10.0)
    a = ThrottledTransport(httpx.MockTransport(ok), throttler=shared)
    b = ThrottledTransport(httpx.MockTransport(ok), throttler=shared)
    async with httpx.AsyncClient(transport=a) as one, httpx.AsyncClient(transport=b) as two:
        start = loop.time()
        await one.get("http://a.example/")
        await two.get("http://b.example/")
        await one.get("http://c.example/")
        assert loop.time() - start >= 10


async def test_aclose_is_forwarded() -> None:
    """Closing the transport closes the wrapped one."""
    closed = []

    class Inner(httpx.AsyncBaseTransport):
        async def aclose(self) -> None:
            closed.append(True)

    async with ThrottledTransport(Inner()):
        pass
    assert closed == [True]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param(
            {"throttler": Throttler(1), "rate_limit": 1},
            TypeError,
            "rate_limit= and throttler= were both given",
            id="both",
        ),
        pytest.param({"throttler": object()}, TypeError, "throttler must be", id="throttler"),
        pytest.param({"transport": object()}, TypeError, "transport must be", id="transport"),
        pytest.param({"release_timeout": 0}, ValueError, "release_timeout must be", id="release"),
        pytest.param({"rate_limit": 0}, ValueError, "rate_limit must be a positive", id="rate"),
        pytest.param({"feedback": 1}, TypeError, "feedback must be", id="feedback"),
    ],
)
def test_bad_arguments_are_rejected(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Construction names the argument and what it accepts."""
    with pytest.raises(error, match=message):
        ThrottledTransport(**kwargs)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        SyncThrottledTransport(**kwargs)  # type: ignore[arg-type]


def test_bad_feedback_options_are_rejected() -> None:
    """The feedback options, now on FeedbackPolicy, are checked at construction by name."""
    with pytest.raises(ValueError, match="retries must be"):
        FeedbackPolicy(retries=-1)


def test_import_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without httpx installed, importing the integration says which extra to install."""
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.delitem(sys.modules, "throttled_http.httpx")
    with pytest.raises(ImportError, match=r"pip install throttled_http\[httpx\]"):
        importlib.import_module("throttled_http.httpx")


# -- the sync transport ---------------------------------------------------------------------


@pytest.mark.realclock
def test_eight_threads_sharing_a_client_never_exceed_the_limit(
    thread_server: RecordingServer,
) -> None:
    """8 threads sharing one httpx.Client put at most 4 requests per 0.25 s on each host."""
    transport = SyncThrottledTransport(rate_limit=4, period=0.25)
    with httpx.Client(transport=transport) as client:

        def work(n: int) -> list[int]:
            return [
                client.get(thread_server.url("/", host=(n + i) % 2)).status_code for i in range(4)
            ]

        with ThreadPoolExecutor(8) as pool:
            statuses = [s for batch in pool.map(work, range(8)) for s in batch]
    assert statuses == [200] * 32
    assert thread_server.max_in_window(0.25, host=0) <= 4
    assert thread_server.max_in_window(0.25, host=1) <= 4


@pytest.mark.realclock
def test_sync_max_concurrency_holds_at_the_server(thread_server: RecordingServer) -> None:
    """The sync transport's max_concurrency holds at the server across threads."""
    transport = SyncThrottledTransport(throttler=SyncThrottlerMap(1000, 1.0, max_concurrency=2))
    with httpx.Client(transport=transport) as client:

        def work(_: int) -> int:
            with client.stream("GET", thread_server.url("/stream/2?interval=0.02")) as response:
                response.read()
                return response.status_code

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(work, range(6))) == [200] * 6
    assert thread_server.max_in_flight["127.0.0.1"] <= 2


@pytest.mark.realclock
def test_sync_redirect_hops_are_each_throttled(thread_server: RecordingServer) -> None:
    """The sync transport charges each redirect hop: 3 hops at 1 per 0.15 s are spaced."""
    transport = SyncThrottledTransport(rate_limit=1, period=0.15)
    with httpx.Client(transport=transport, follow_redirects=True) as client:
        response = client.get(thread_server.url("/redirect/2"))
    assert response.status_code == 200
    assert len(thread_server.arrivals) == 3
    assert thread_server.max_in_window(0.15) == 1


def test_sync_stream_slot_is_freed_exactly_once() -> None:
    """Reading, closing, and closing again give the sync slot back once."""
    body = SyncBody()
    inner = httpx.MockTransport(lambda request: httpx.Response(200, stream=body))
    transport = SyncThrottledTransport(
        inner, throttler=SyncThrottlerMap(10, 1.0, max_concurrency=1)
    )
    with httpx.Client(transport=transport) as client:
        with client.stream("GET", "http://a.example/") as response:
            assert in_flight(transport, "http://a.example/") == 1
            assert response.read() == b"ab"
            assert in_flight(transport, "http://a.example/") == 0
        response.close()
    assert body.closed
    assert in_flight(transport, "http://a.example/") == 0


def test_sync_unclosed_response_gives_its_slot_back_after_release_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sync response nobody closes frees its slot after release_timeout seconds."""
    inner = httpx.MockTransport(lambda request: httpx.Response(200, stream=SyncBody()))
    transport = SyncThrottledTransport(
        inner, throttler=SyncThrottlerMap(10, 1.0, max_concurrency=1), release_timeout=0.1
    )
    with (
        caplog.at_level(logging.WARNING, logger="throttled_http"),
        httpx.Client(transport=transport) as client,
    ):
        request = client.build_request("GET", "http://a.example/")
        client.send(request, stream=True)
        start = time.monotonic()
        assert client.get("http://a.example/").status_code == 200  # waits for the slot
        assert time.monotonic() - start >= 0.09
    assert "not released within release_timeout=0.1 seconds" in caplog.text


def test_sync_throttle_timeout() -> None:
    """The sync transport gives up after throttle_timeout seconds, sending nothing."""
    transport = SyncThrottledTransport(
        httpx.MockTransport(ok), rate_limit=1, period=60.0, throttle_timeout=0.05
    )
    with httpx.Client(transport=transport) as client:
        client.get("http://a.example/")
        with pytest.raises(ThrottlerTimeoutError):
            client.get("http://a.example/")


@pytest.mark.parametrize("release_timeout", [300.0, None], ids=["release300", "releaseNone"])
def test_sync_client_close_frees_open_slots(release_timeout: float | None) -> None:
    """Closing the sync client gives back slots of responses left open."""
    inner = httpx.MockTransport(lambda request: httpx.Response(200, stream=SyncBody()))
    transport = SyncThrottledTransport(
        inner,
        throttler=SyncThrottlerMap(10, 1.0, max_concurrency=1),
        release_timeout=release_timeout,
    )
    client = httpx.Client(transport=transport)
    client.send(client.build_request("GET", "http://a.example/"), stream=True)
    assert in_flight(transport, "http://a.example/") == 1
    client.close()
    assert in_flight(transport, "http://a.example/") == 0


def test_sync_shared_throttler_and_retries() -> None:
    """A shared SyncThrottler limits every request; a 429 is retried after Retry-After."""
    shared = SyncThrottler(10, 1.0)
    transport = SyncThrottledTransport(
        refuse_first(1, retry_after="0"), throttler=shared, feedback=FeedbackPolicy(retries=1)
    )
    with httpx.Client(transport=transport) as client:
        assert client.get("http://a.example/").status_code == 200
    assert shared.statistics().in_window == 2
    assert transport.throttler is shared


def test_sync_extensions() -> None:
    """Bypass skips the sync throttler; cost weighs the request."""
    shared = SyncThrottler(3, 10.0)
    transport = SyncThrottledTransport(httpx.MockTransport(ok), throttler=shared)
    with httpx.Client(transport=transport) as client:
        client.get("http://a.example/", extensions={BYPASS_EXTENSION: True})
        assert shared.statistics().in_window == 0
        client.get("http://a.example/", extensions={COST_EXTENSION: 3})
        assert shared.statistics().in_window == 3
        assert not shared.has_capacity()


def test_sync_works_under_respx() -> None:
    """respx's default mocking works with the sync transport."""
    with respx.mock:
        respx.get("https://api.example.com/").respond(200, text="hi")
        with httpx.Client(transport=SyncThrottledTransport(rate_limit=5, period=1.0)) as client:
            assert client.get("https://api.example.com/").text == "hi"


# -- the documentation ------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "httpx.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)


_RUN_SNIPPETS = """
import sys
for index, code in enumerate(sys.argv[1:]):
    exec(compile(code, f"docs/httpx.md snippet {index}", "exec"), {"__name__": "__main__"})
"""


@pytest.mark.realclock
def test_docs_snippets_run() -> None:
    """Every Python block in docs/httpx.md is a complete script that runs offline."""
    assert len(SNIPPETS) >= 5
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _RUN_SNIPPETS, *SNIPPETS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.looptime
async def test_each_unclosed_response_expires_at_its_own_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With one shared hold timer, responses opened at different times each give their slot
    back release_timeout seconds after their own headers, and a closed one is not warned about."""
    transport = ThrottledTransport(
        streaming(SlowBody()),
        throttler=ThrottlerMap(10, 1.0, max_concurrency=3),
        release_timeout=30,
    )
    async with httpx.AsyncClient(transport=transport) as client:
        request = client.build_request("GET", "http://a.example/")
        first = await client.send(request, stream=True)
        await asyncio.sleep(10)
        second = await client.send(request, stream=True)
        await asyncio.sleep(5)
        third = await client.send(request, stream=True)
        await third.aclose()
        assert in_flight(transport, "http://a.example/") == 2
        with caplog.at_level(logging.WARNING, logger="throttled_http"):
            await asyncio.sleep(15.5)  # t = 30.5: only the first has expired
            assert in_flight(transport, "http://a.example/") == 1
            await asyncio.sleep(9)  # t = 39.5
            assert in_flight(transport, "http://a.example/") == 1
            await asyncio.sleep(1)  # t = 40.5
            assert in_flight(transport, "http://a.example/") == 0
        assert caplog.text.count("not released within release_timeout") == 2
        await first.aclose()
        await second.aclose()
        assert in_flight(transport, "http://a.example/") == 0


def test_sync_scope_that_answers_differently_each_time_does_not_loop() -> None:
    """A rotating-token scope is asked once per request; the request is sent at once."""
    tokens = itertools.cycle(["token-a", "token-b"])
    calls: list[object] = []

    def by_token(url: object) -> str:
        calls.append(url)
        return next(tokens)

    transport = SyncThrottledTransport(
        httpx.MockTransport(lambda r: httpx.Response(200)),
        throttler=SyncThrottlerMap(100, 1.0, scope=by_token),
    )
    with httpx.Client(transport=transport) as client:
        assert client.get("http://127.0.0.1/").status_code == 200
        assert client.get("http://127.0.0.1/").status_code == 200
    assert len(calls) == 2


def _tiny_quota(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"RateLimit-Policy": '"x";q=1;w=0.001'}, text="ok")


async def test_adapt_to_a_quota_below_the_cost_charges_the_whole_limit() -> None:
    """With adapt=True a server's tiny quota never makes a weighted request raise."""
    transport = ThrottledTransport(
        httpx.MockTransport(_tiny_quota),
        rate_limit=10,
        period=1.0,
        feedback=FeedbackPolicy(adapt=True),
    )
    heavy = {"throttled_http_cost": 5}
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get("http://127.0.0.1/a", extensions=heavy)).status_code == 200
        assert (await client.get("http://127.0.0.1/b", extensions=heavy)).status_code == 200


async def test_without_adapt_a_cost_above_the_limit_is_still_an_error() -> None:
    """The clamp is for server-lowered limits only: a caller's own mistake still raises."""
    transport = ThrottledTransport(httpx.MockTransport(ok), rate_limit=3, period=1.0)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(ValueError, match="cost"):
            await client.get("http://127.0.0.1/", extensions={"throttled_http_cost": 5})


def test_sync_adapt_to_a_quota_below_the_cost_charges_the_whole_limit() -> None:
    """The thread-safe transport charges a server-lowered limit the same way."""
    transport = SyncThrottledTransport(
        httpx.MockTransport(_tiny_quota),
        rate_limit=10,
        period=1.0,
        feedback=FeedbackPolicy(adapt=True),
    )
    with httpx.Client(transport=transport) as client:
        for path in ("/a", "/b"):
            response = client.get("http://127.0.0.1" + path, extensions={"throttled_http_cost": 5})
            assert response.status_code == 200


# -- the 0.2 construction contracts ---------------------------------------------------------


def test_a_positional_rate_is_refused_with_the_keyword_to_use() -> None:
    """A rate given where the transport goes is a TypeError suggesting rate_limit=."""
    with pytest.raises(TypeError, match=re.escape("rate_limit=10")):
        ThrottledTransport(10)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("rate_limit=10")):
        SyncThrottledTransport(10)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("rate_limit='10/s'")):
        ThrottledTransport("10/s")  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "value"), [("rate_limit", 5), ("period", 1.0)])
def test_the_shorthand_beside_a_throttler_is_a_type_error_naming_both(
    name: str, value: float
) -> None:
    """rate_limit= or period= beside throttler= is a TypeError naming both, on both transports."""
    shorthand: dict[str, Any] = {name: value}
    pattern = f"{name}= and throttler= were both given"
    inner = httpx.MockTransport(ok)
    hint = re.escape(f"(throttler=ThrottlerMap({name}=...))")
    sync_hint = re.escape(f"(throttler=SyncThrottlerMap({name}=...))")
    with pytest.raises(TypeError, match=pattern) as raised:
        ThrottledTransport(inner, throttler=ThrottlerMap(5, 1.0), **shorthand)
    assert re.search(hint, str(raised.value))
    with pytest.raises(TypeError, match=pattern):
        ThrottledTransport(inner, throttler=Throttler(5, 1.0), **shorthand)
    with pytest.raises(TypeError, match=pattern) as raised:
        SyncThrottledTransport(inner, throttler=SyncThrottlerMap(5, 1.0), **shorthand)
    assert re.search(sync_hint, str(raised.value))  # the map the threaded transport takes
    with pytest.raises(TypeError, match=pattern):
        SyncThrottledTransport(inner, throttler=SyncThrottler(5, 1.0), **shorthand)


def test_a_transport_refuses_a_throttler_of_the_other_kind() -> None:
    """The threaded transport refuses asyncio throttlers and the asyncio one blocking ones."""
    inner = httpx.MockTransport(ok)
    sync_only = "throttler must be a SyncThrottler or a SyncThrottlerMap"
    with pytest.raises(TypeError, match=sync_only):
        SyncThrottledTransport(inner, throttler=Throttler(5, 1.0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=sync_only):
        SyncThrottledTransport(inner, throttler=ThrottlerMap(5, 1.0))  # type: ignore[arg-type]
    async_only = "throttler must be a Throttler, a ThrottlerMap"
    with pytest.raises(TypeError, match=async_only):
        ThrottledTransport(inner, throttler=SyncThrottler(5, 1.0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=async_only):
        ThrottledTransport(inner, throttler=SyncThrottlerMap(5, 1.0))  # type: ignore[arg-type]


@pytest.mark.realclock
def test_two_sync_transports_sharing_a_map_keep_one_limit_per_host(
    thread_server: RecordingServer,
) -> None:
    """Two SyncThrottledTransports on one SyncThrottlerMap, used from 8 threads, never put
    more than 3 requests in any 0.25 s window on either host."""
    hosts = SyncThrottlerMap(3, 0.25)
    first = SyncThrottledTransport(throttler=hosts)
    second = SyncThrottledTransport(throttler=hosts)
    assert first.throttler is hosts
    assert second.throttler is hosts
    with httpx.Client(transport=first) as one, httpx.Client(transport=second) as two:

        def work(n: int) -> list[int]:
            client = one if n % 2 else two
            return [
                client.get(thread_server.url("/", host=(n + i) % 2)).status_code for i in range(3)
            ]

        with ThreadPoolExecutor(8) as pool:
            statuses = [s for batch in pool.map(work, range(8)) for s in batch]
    assert statuses == [200] * 24
    assert len(thread_server.arrivals_at(0)) == len(thread_server.arrivals_at(1)) == 12
    assert thread_server.max_in_window(0.25, host=0) <= 3
    assert thread_server.max_in_window(0.25, host=1) <= 3
    assert hosts.statistics().created == 2  # one throttler per host, for both transports


async def _eleven_to_each_of_two_hosts(
    client: httpx.AsyncClient, times: dict[str, list[float]], max_in_window: Callable[..., int]
) -> None:
    """Send 11 GETs to each of two hosts at once; each host sees at most 10 per second."""
    urls = [f"http://{host}/" for host in ("a.example", "b.example") for _ in range(11)]
    responses = await asyncio.gather(*(client.get(url) for url in urls))
    assert [r.status_code for r in responses] == [200] * 22
    assert sorted(times) == ["a.example", "b.example"]
    for arrivals in times.values():
        assert len(arrivals) == 11
        assert max_in_window(arrivals, 1.0) <= 10
    # Side by side: one limit for both hosts would have pushed the last ones past t = 2.
    assert max(max(arrivals) for arrivals in times.values()) < 2.0


def _recording(times: dict[str, list[float]]) -> Callable[[httpx.Request], httpx.Response]:
    """A mock handler noting each request's host and loop time."""
    loop = asyncio.get_running_loop()

    def handler(request: httpx.Request) -> httpx.Response:
        times.setdefault(request.url.host, []).append(loop.time())
        return httpx.Response(200)

    return handler


def _check_default_map(transport: ThrottledTransport) -> None:
    hosts = transport.throttler
    assert isinstance(hosts, ThrottlerMap)
    assert hosts.rates == (Rate(10, 1.0),)
    assert len(hosts) == 2


@pytest.mark.looptime
async def test_rate_limit_shorthand_throttles_each_host(
    max_in_window: Callable[..., int],
) -> None:
    """ThrottledTransport(rate_limit=10) over the default transport limits each host apart."""
    times: dict[str, list[float]] = {}
    with respx.mock:
        respx.route(method="GET").mock(side_effect=_recording(times))
        transport = ThrottledTransport(rate_limit=10)
        assert isinstance(transport.transport, httpx.AsyncHTTPTransport)
        async with httpx.AsyncClient(transport=transport) as client:
            await _eleven_to_each_of_two_hosts(client, times, max_in_window)
    _check_default_map(transport)


@pytest.mark.looptime
async def test_rate_limit_shorthand_with_a_transport_keyword_throttles_each_host(
    max_in_window: Callable[..., int],
) -> None:
    """ThrottledTransport(transport=inner, rate_limit=10) limits each host apart."""
    times: dict[str, list[float]] = {}
    inner = httpx.MockTransport(_recording(times))
    transport = ThrottledTransport(transport=inner, rate_limit=10)
    assert transport.transport is inner
    async with httpx.AsyncClient(transport=transport) as client:
        await _eleven_to_each_of_two_hosts(client, times, max_in_window)
    _check_default_map(transport)


@pytest.mark.parametrize("host", ["a|b", "a\\b"], ids=["pipe", "backslash"])
async def test_a_redirect_to_a_host_no_key_accepts_is_an_httpx_error(host: str) -> None:
    """A redirect to a host the key parser refuses raises an httpx.HTTPError, slot back."""

    def hostile(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": f"http://{host}/"})

    hosts = ThrottlerMap(5, 1.0, max_concurrency=1)
    transport = ThrottledTransport(httpx.MockTransport(hostile), throttler=hosts)
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
        with pytest.raises(httpx.HTTPError) as caught:
            await client.get("http://ok.example/")
    assert isinstance(caught.value, InvalidURLError)
    first = hosts.throttler_for("http://ok.example/")
    assert isinstance(first, Throttler)
    assert first.statistics().in_flight == 0


@pytest.mark.parametrize("host", ["a|b", "a\\b"], ids=["pipe", "backslash"])
def test_a_redirect_to_a_host_no_key_accepts_is_an_httpx_error_sync(host: str) -> None:
    """The threaded transport raises an httpx.HTTPError too, for the same redirect."""

    def hostile(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": f"http://{host}/"})

    sync = SyncThrottledTransport(httpx.MockTransport(hostile), throttler=SyncThrottlerMap(5))
    with (
        httpx.Client(transport=sync, follow_redirects=True) as client,
        pytest.raises(httpx.HTTPError) as caught,
    ):
        client.get("http://ok.example/")
    assert isinstance(caught.value, InvalidURLError)


async def test_a_throttle_timeout_is_an_httpx_timeout_naming_host_and_timeout() -> None:
    """A hop that waits throttle_timeout in vain raises an httpx.TimeoutException saying why."""
    transport = ThrottledTransport(
        httpx.MockTransport(ok), throttler=ThrottlerMap(1, 60.0), throttle_timeout=0.05
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://api.example/")
        with pytest.raises(httpx.TimeoutException) as caught:
            await client.get("http://api.example/")
    error: BaseException = caught.value
    assert isinstance(error, ThrottleTimeout)
    assert isinstance(error, ThrottlerTimeoutError)
    assert "http://api.example:80" in str(error)
    assert "throttle_timeout=0.05" in str(error)


def test_a_throttle_timeout_is_an_httpx_timeout_sync() -> None:
    """The threaded transport's throttle timeout is an httpx.TimeoutException too."""
    sync = SyncThrottledTransport(
        httpx.MockTransport(ok), throttler=SyncThrottlerMap(1, 60.0), throttle_timeout=0.05
    )
    with httpx.Client(transport=sync) as client:
        client.get("http://api.example/")
        with pytest.raises(httpx.TimeoutException) as caught:
            client.get("http://api.example/")
    assert isinstance(caught.value, ThrottleTimeout)
