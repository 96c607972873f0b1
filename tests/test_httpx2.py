"""Tests for the httpx2 transports: the httpx transports' one implementation, bound to httpx2.

Against httpx2's own ``MockTransport`` on virtual time, and against a real loopback server
(``RecordingServer``, the ``server`` and ``thread_server`` fixtures of conftest). The last
section runs the same checks through both libraries.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from aiohttp import web

import throttled_http.httpx
import throttled_http.httpx2
from throttled_http import (
    FeedbackPolicy,
    InvalidURLError,
    SyncThrottler,
    SyncThrottlerMap,
    ThrottledHTTPError,
    Throttler,
    ThrottlerMap,
    ThrottlerTimeoutError,
)
from throttled_http.httpx2 import (
    BYPASS_EXTENSION,
    COST_EXTENSION,
    KEY_EXTENSION,
    InvalidURL,
    SyncThrottledTransport,
    ThrottledTransport,
    ThrottleTimeout,
)
from throttled_http.testing import RecordingServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from types import ModuleType

# -- helpers ---------------------------------------------------------------------------


def ok(request: httpx2.Request) -> httpx2.Response:
    """A MockTransport handler answering 200 with an in-memory body."""
    return httpx2.Response(200, text="ok")


class Body(httpx2.AsyncByteStream):
    """A streamed body of ``chunks`` chunks, 0.01 s apart; ``fail_at`` makes one raise."""

    def __init__(self, chunks: int = 3, fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(self.chunks):
            if i == self.fail_at:
                raise httpx2.ReadError("connection lost")
            await asyncio.sleep(0.01)
            yield b"x"

    async def aclose(self) -> None:
        self.closed = True


class SyncBody(httpx2.SyncByteStream):
    """A streamed body for the sync transport."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    def close(self) -> None:
        self.closed = True


def streaming(body: httpx2.AsyncByteStream) -> httpx2.MockTransport:
    """A mock transport whose responses stream ``body``."""

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, stream=body)

    return httpx2.MockTransport(handler)


def refuse_first(times: int, retry_after: str = "2") -> httpx2.MockTransport:
    """A mock server that answers 429 to the first ``times`` requests, then 200."""
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if len(seen) <= times:
            return httpx2.Response(429, headers={"Retry-After": retry_after})
        return httpx2.Response(200, text="ok")

    return httpx2.MockTransport(handler)


def hostile(request: httpx2.Request) -> httpx2.Response:
    """Redirects to a host no key accepts."""
    return httpx2.Response(302, headers={"Location": "http://a|b/"})


def in_flight(transport: ThrottledTransport | SyncThrottledTransport, url: str) -> int:
    """Slots held now by ``url``'s key."""
    hosts = transport.throttler
    assert isinstance(hosts, (ThrottlerMap, SyncThrottlerMap))
    limiter = hosts.throttler_for(url)
    assert isinstance(limiter, (Throttler, SyncThrottler))
    return limiter.statistics().in_flight


def libraries_in(error: BaseException) -> set[str]:
    """The top-level packages the classes of ``error`` come from."""
    return {cls.__module__.split(".")[0] for cls in type(error).__mro__}


# -- the limit, on virtual time ------------------------------------------------------------


@pytest.mark.looptime
async def test_each_host_sees_at_most_the_limit_in_any_window(
    max_in_window: Callable[..., int],
) -> None:
    """25 GETs to each of two hosts at 10 per second: at most 10 in any 1 s window, side by side."""
    loop = asyncio.get_running_loop()
    times: dict[str, list[float]] = {}

    def record(request: httpx2.Request) -> httpx2.Response:
        times.setdefault(request.url.host, []).append(loop.time())
        return httpx2.Response(200)

    transport = ThrottledTransport(httpx2.MockTransport(record), rate_limit=10, period=1.0)
    start = loop.time()
    async with httpx2.AsyncClient(transport=transport) as client:
        urls = [f"http://{host}/" for host in ("a.example", "b.example") for _ in range(25)]
        responses = await asyncio.gather(*(client.get(url) for url in urls))
    assert [r.status_code for r in responses] == [200] * 50
    for arrivals in times.values():
        assert len(arrivals) == 25
        assert max_in_window(arrivals, 1.0) == 10
        assert max(arrivals) - start < 2.5  # three windows per host, the hosts together


@pytest.mark.looptime
async def test_every_hop_at_a_real_server_waits_its_turn(server: RecordingServer) -> None:
    """A redirect chain of 3 hops to a real server, at 1 per 10 s, takes 20 s of loop time.

    The server runs on the test's loop, so its route notes the loop's (virtual) time of
    each arrival: consecutive hops reach it at least 10 s apart.
    """
    loop = asyncio.get_running_loop()
    transport = ThrottledTransport(rate_limit=1, period=10.0)
    async with httpx2.AsyncClient(transport=transport, follow_redirects=True) as client:
        start = loop.time()
        response = await client.get(server.url("/redirect/2"))
        elapsed = loop.time() - start
    assert response.status_code == 200
    assert len(response.history) == 2
    assert [a.path for a in server.arrivals] == ["/redirect/2", "/redirect/1", "/redirect/0"]
    assert 20 <= elapsed < 21


@pytest.mark.looptime
async def test_a_real_server_sees_the_limit_on_the_loop_clock(
    max_in_window: Callable[..., int],
) -> None:
    """A real server noting the loop's time of each arrival sees at most 2 per 5 s window."""
    loop = asyncio.get_running_loop()
    seen: list[float] = []

    async def note(request: web.Request) -> web.Response:
        seen.append(loop.time())
        return web.Response(text="ok")

    async with RecordingServer(routes=[web.get("/note", note)]) as srv:
        transport = ThrottledTransport(rate_limit=2, period=5.0)
        async with httpx2.AsyncClient(transport=transport) as client:
            responses = await asyncio.gather(*(client.get(srv.url("/note")) for _ in range(7)))
    assert [r.status_code for r in responses] == [200] * 7
    assert len(seen) == 7
    assert max_in_window(seen, 5.0) == 2


# -- every hop, at a real server ------------------------------------------------------------


async def test_every_redirect_hop_is_admitted(server: RecordingServer) -> None:
    """Each of the 4 hops of a redirect chain takes an entry of the shared throttler."""
    shared = Throttler(100, 60.0)
    transport = ThrottledTransport(throttler=shared)
    async with httpx2.AsyncClient(transport=transport, follow_redirects=True) as client:
        response = await client.get(server.url("/redirect/3"))
    assert response.status_code == 200
    assert len(response.history) == 3
    assert len(server.arrivals) == 4
    assert shared.statistics().in_window == 4


async def test_a_redirect_to_another_host_is_charged_to_that_host(
    server: RecordingServer,
) -> None:
    """A hop to 127.0.0.2 takes its entry from 127.0.0.2's throttler."""
    hosts = ThrottlerMap(5, 60.0)
    transport = ThrottledTransport(throttler=hosts)
    async with httpx2.AsyncClient(transport=transport, follow_redirects=True) as client:
        response = await client.get(server.url("/to/127.0.0.2/"))
    assert response.status_code == 200
    assert [a.host for a in server.arrivals] == ["127.0.0.1", "127.0.0.2"]
    for host in (0, 1):
        limiter = hosts.throttler_for(server.url("/", host=host))
        assert isinstance(limiter, Throttler)
        assert limiter.statistics().in_window == 1


async def test_the_slot_is_held_until_a_real_body_is_read(server: RecordingServer) -> None:
    """A streamed body from a real server holds its slot until it has been read."""
    transport = ThrottledTransport(throttler=ThrottlerMap(100, 1.0, max_concurrency=1))
    url = server.url("/stream/3?interval=0.01")
    async with (
        httpx2.AsyncClient(transport=transport) as client,
        client.stream("GET", url) as response,
    ):
        assert in_flight(transport, url) == 1
        assert await response.aread() == b"chunk 0\nchunk 1\nchunk 2\n"
        assert in_flight(transport, url) == 0
    assert server.max_in_flight["127.0.0.1"] == 1


async def test_429_from_a_real_server_pauses_only_that_host(server: RecordingServer) -> None:
    """A 429 with Retry-After pauses the host that sent it; the other host goes on."""
    transport = ThrottledTransport(rate_limit=10, period=1.0)
    async with httpx2.AsyncClient(transport=transport) as client:
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
    assert transport.feedback.statistics().pauses == 1


def test_sync_redirect_hops_are_each_admitted(thread_server: RecordingServer) -> None:
    """The sync transport takes one entry per hop of a redirect chain at a real server."""
    shared = SyncThrottler(100, 60.0)
    transport = SyncThrottledTransport(throttler=shared)
    with httpx2.Client(transport=transport, follow_redirects=True) as client:
        response = client.get(thread_server.url("/redirect/2"))
    assert response.status_code == 200
    assert len(thread_server.arrivals) == 3
    assert shared.statistics().in_window == 3


def test_sync_slot_is_held_until_a_real_body_is_read(thread_server: RecordingServer) -> None:
    """A sync streamed body from a real server holds its slot until it has been read."""
    transport = SyncThrottledTransport(throttler=SyncThrottlerMap(100, 1.0, max_concurrency=1))
    url = thread_server.url("/stream/2?interval=0.01")
    with httpx2.Client(transport=transport) as client, client.stream("GET", url) as response:
        assert in_flight(transport, url) == 1
        assert response.read() == b"chunk 0\nchunk 1\n"
        assert in_flight(transport, url) == 0


# -- slots and response lifetimes (MockTransport, virtual time) -----------------------------


@pytest.mark.looptime
async def test_in_memory_response_frees_the_slot_at_once() -> None:
    """A response whose body is already in memory gives its slot back immediately."""
    transport = ThrottledTransport(
        httpx2.MockTransport(ok), throttler=ThrottlerMap(10, 1.0, max_concurrency=1)
    )
    async with httpx2.AsyncClient(transport=transport) as client:
        response = await client.send(client.build_request("GET", "http://a.example/"), stream=True)
        assert in_flight(transport, "http://a.example/") == 0
        await response.aclose()


@pytest.mark.looptime
async def test_slot_held_until_the_stream_is_read_to_the_end() -> None:
    """A streamed body holds its slot until it is exhausted, and is closed after."""
    body = Body(3)
    transport = ThrottledTransport(
        streaming(body), throttler=ThrottlerMap(10, 1.0, max_concurrency=2)
    )
    async with (
        httpx2.AsyncClient(transport=transport) as client,
        client.stream("GET", "http://a.example/") as response,
    ):
        assert in_flight(transport, "http://a.example/") == 1
        assert [chunk async for chunk in response.aiter_raw()] == [b"x"] * 3
        assert in_flight(transport, "http://a.example/") == 0
    assert body.closed


@pytest.mark.looptime
async def test_slot_freed_once_on_aclose_without_reading() -> None:
    """Closing an unread streamed response twice gives its slot back once."""
    transport = ThrottledTransport(
        streaming(Body()), throttler=ThrottlerMap(10, 1.0, max_concurrency=1)
    )
    async with httpx2.AsyncClient(transport=transport) as client:
        response = await client.send(client.build_request("GET", "http://a.example/"), stream=True)
        assert in_flight(transport, "http://a.example/") == 1
        await response.aclose()
        await response.aclose()
        assert in_flight(transport, "http://a.example/") == 0


@pytest.mark.looptime
async def test_slot_freed_when_reading_the_body_fails() -> None:
    """An httpx2 error while streaming the body frees the slot."""
    transport = ThrottledTransport(
        streaming(Body(3, fail_at=1)), throttler=ThrottlerMap(10, 1.0, max_concurrency=1)
    )
    async with httpx2.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx2.ReadError):
            await client.get("http://a.example/")
        assert in_flight(transport, "http://a.example/") == 0


@pytest.mark.looptime
async def test_unclosed_response_gives_its_slot_back_after_release_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A response nobody closes frees its slot after release_timeout seconds, with a warning."""
    transport = ThrottledTransport(
        streaming(Body()), throttler=ThrottlerMap(10, 1.0, max_concurrency=1), release_timeout=30
    )
    async with httpx2.AsyncClient(transport=transport) as client:
        response = await client.send(client.build_request("GET", "http://a.example/"), stream=True)
        waiter = asyncio.ensure_future(client.get("http://a.example/"))
        await asyncio.sleep(29)
        assert not waiter.done()
        with caplog.at_level(logging.WARNING, logger="throttled_http"):
            await asyncio.sleep(2)
        assert waiter.done()
        assert "not released within release_timeout=30.0 seconds" in caplog.text
        await response.aclose()


@pytest.mark.looptime
async def test_slot_freed_when_the_client_closes() -> None:
    """Closing the client gives back the slots of responses left open."""
    transport = ThrottledTransport(
        streaming(Body()), throttler=ThrottlerMap(10, 1.0, max_concurrency=1)
    )
    client = httpx2.AsyncClient(transport=transport)
    response = await client.send(client.build_request("GET", "http://a.example/"), stream=True)
    assert in_flight(transport, "http://a.example/") == 1
    await client.aclose()
    assert in_flight(transport, "http://a.example/") == 0
    await response.aclose()


def test_sync_stream_slot_is_freed_exactly_once() -> None:
    """Reading, closing, and closing again give the sync slot back once."""
    body = SyncBody()
    inner = httpx2.MockTransport(lambda request: httpx2.Response(200, stream=body))
    transport = SyncThrottledTransport(
        inner, throttler=SyncThrottlerMap(10, 1.0, max_concurrency=1)
    )
    with httpx2.Client(transport=transport) as client:
        with client.stream("GET", "http://a.example/") as response:
            assert in_flight(transport, "http://a.example/") == 1
            assert response.read() == b"ab"
            assert in_flight(transport, "http://a.example/") == 0
        response.close()
    assert body.closed
    assert in_flight(transport, "http://a.example/") == 0


# -- per-request extensions -------------------------------------------------------------


@pytest.mark.looptime
async def test_cost_and_bypass_extensions() -> None:
    """throttled_http_cost=3 uses 3 of 4 entries; throttled_http_bypass takes none."""
    loop = asyncio.get_running_loop()
    shared = Throttler(4, 10.0)
    transport = ThrottledTransport(httpx2.MockTransport(ok), throttler=shared)
    async with httpx2.AsyncClient(transport=transport) as client:
        start = loop.time()
        await client.get("http://a.example/", extensions={BYPASS_EXTENSION: True})
        assert shared.statistics().in_window == 0
        await client.get("http://a.example/", extensions={COST_EXTENSION: 3})
        await client.get("http://a.example/")
        assert loop.time() - start < 1
        await client.get("http://a.example/")
        assert loop.time() - start >= 10


@pytest.mark.looptime
async def test_key_extension_charges_another_host() -> None:
    """throttled_http_key charges a request to another host's limit (its overrides apply)."""
    loop = asyncio.get_running_loop()
    hosts = ThrottlerMap(10, 1.0, overrides={"quota.example": "1/10s"})
    transport = ThrottledTransport(httpx2.MockTransport(ok), throttler=hosts)
    async with httpx2.AsyncClient(transport=transport) as client:
        start = loop.time()
        await client.get("http://a.example/", extensions={KEY_EXTENSION: "quota.example"})
        await client.get("http://b.example/", extensions={KEY_EXTENSION: "http://quota.example"})
        assert loop.time() - start >= 10
    assert "http://quota.example:80" in hosts
    assert "http://a.example:80" not in hosts


async def test_bad_extensions_are_rejected() -> None:
    """A cost that is not a positive int, or a key that is not a string, raises naming it."""
    transport = ThrottledTransport(httpx2.MockTransport(ok), rate_limit=4, period=1.0)
    async with httpx2.AsyncClient(transport=transport) as client:
        with pytest.raises(ValueError, match="throttled_http_cost must be a positive integer"):
            await client.get("http://a.example/", extensions={COST_EXTENSION: 0})
        with pytest.raises(TypeError, match="throttled_http_key must be a URL or a host name"):
            await client.get("http://a.example/", extensions={KEY_EXTENSION: 5})


def test_sync_extensions() -> None:
    """Bypass skips the sync throttler; cost weighs the request."""
    shared = SyncThrottler(3, 10.0)
    transport = SyncThrottledTransport(httpx2.MockTransport(ok), throttler=shared)
    with httpx2.Client(transport=transport) as client:
        client.get("http://a.example/", extensions={BYPASS_EXTENSION: True})
        assert shared.statistics().in_window == 0
        client.get("http://a.example/", extensions={COST_EXTENSION: 3})
        assert shared.statistics().in_window == 3
        assert not shared.has_capacity()


# -- server feedback ------------------------------------------------------------------------


@pytest.mark.looptime
async def test_retry_after_429_waits_the_server_delay_and_delivers_200() -> None:
    """retries=2 sends a refused GET again after Retry-After seconds, through the throttler."""
    loop = asyncio.get_running_loop()
    transport = ThrottledTransport(
        refuse_first(2), rate_limit=10, period=1.0, feedback=FeedbackPolicy(retries=2)
    )
    async with httpx2.AsyncClient(transport=transport) as client:
        start = loop.time()
        response = await client.get("http://a.example/")
        assert response.status_code == 200
        assert loop.time() - start >= 4
    assert transport.feedback.statistics().retries == 2


@pytest.mark.looptime
async def test_max_retry_after_caps_the_pause() -> None:
    """A server asking for an hour pauses the host for max_retry_after seconds only."""
    transport = ThrottledTransport(
        refuse_first(1, retry_after="3600"),
        rate_limit=10,
        period=1.0,
        feedback=FeedbackPolicy(max_retry_after=5.0),
    )
    async with httpx2.AsyncClient(transport=transport) as client:
        assert (await client.get("http://a.example/")).status_code == 429
    hosts = transport.throttler
    assert isinstance(hosts, ThrottlerMap)
    limiter = hosts.throttler_for("http://a.example/")
    assert limiter is not None
    assert 0 < limiter.paused_for <= 5.0


def test_sync_retry_after_then_200() -> None:
    """The sync transport retries a 429 after Retry-After, through its throttler."""
    shared = SyncThrottler(10, 1.0)
    transport = SyncThrottledTransport(
        refuse_first(1, retry_after="0"), throttler=shared, feedback=FeedbackPolicy(retries=1)
    )
    with httpx2.Client(transport=transport) as client:
        assert client.get("http://a.example/").status_code == 200
    assert shared.statistics().in_window == 2


# -- errors native to httpx2 ----------------------------------------------------------------


async def test_a_redirect_to_a_host_no_key_accepts_is_an_httpx2_request_error() -> None:
    """InvalidURL is an httpx2.RequestError and an InvalidURLError; nothing of httpx in it."""
    hosts = ThrottlerMap(5, 1.0, max_concurrency=1)
    transport = ThrottledTransport(httpx2.MockTransport(hostile), throttler=hosts)
    async with httpx2.AsyncClient(transport=transport, follow_redirects=True) as client:
        with pytest.raises(httpx2.RequestError) as caught:
            await client.get("http://ok.example/")
    error = caught.value
    assert isinstance(error, InvalidURL)
    assert isinstance(error, InvalidURLError)
    assert isinstance(error, ThrottledHTTPError)
    assert isinstance(error, ValueError)
    assert str(error.request.url) == "http://a|b/"
    assert "httpx" not in libraries_in(error)
    assert in_flight(transport, "http://ok.example/") == 0


async def test_a_throttle_timeout_is_an_httpx2_timeout_naming_host_and_timeout() -> None:
    """ThrottleTimeout is an httpx2.TimeoutException and a ThrottlerTimeoutError."""
    sent: list[httpx2.Request] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(200)

    transport = ThrottledTransport(
        httpx2.MockTransport(record), throttler=ThrottlerMap(1, 60.0), throttle_timeout=0.05
    )
    async with httpx2.AsyncClient(transport=transport) as client:
        await client.get("http://api.example/")
        with pytest.raises(httpx2.TimeoutException) as caught:
            await client.get("http://api.example/")
    error: BaseException = caught.value
    assert isinstance(error, ThrottleTimeout)
    assert isinstance(error, ThrottlerTimeoutError)
    assert isinstance(error, TimeoutError)
    assert "http://api.example:80" in str(error)
    assert "throttle_timeout=0.05" in str(error)
    assert "httpx" not in libraries_in(error)
    assert len(sent) == 1


def test_sync_errors_are_httpx2_errors() -> None:
    """The sync transport raises the same httpx2 errors."""
    sync = SyncThrottledTransport(httpx2.MockTransport(hostile), throttler=SyncThrottlerMap(5))
    with (
        httpx2.Client(transport=sync, follow_redirects=True) as client,
        pytest.raises(httpx2.RequestError) as invalid,
    ):
        client.get("http://ok.example/")
    assert isinstance(invalid.value, InvalidURL)
    timed = SyncThrottledTransport(
        httpx2.MockTransport(ok), throttler=SyncThrottlerMap(1, 60.0), throttle_timeout=0.05
    )
    with httpx2.Client(transport=timed) as client:
        client.get("http://api.example/")
        with pytest.raises(httpx2.TimeoutException) as caught:
            client.get("http://api.example/")
    assert isinstance(caught.value, ThrottleTimeout)


# -- construction ---------------------------------------------------------------------------


async def test_defaults_and_properties() -> None:
    """Default transports are httpx2's; throttler, feedback and transport are as given."""
    transport = ThrottledTransport()
    assert isinstance(transport.transport, httpx2.AsyncHTTPTransport)
    assert isinstance(transport.throttler, ThrottlerMap)
    assert isinstance(transport.feedback, FeedbackPolicy)
    await transport.aclose()
    sync = SyncThrottledTransport()
    assert isinstance(sync.transport, httpx2.HTTPTransport)
    assert isinstance(sync.throttler, SyncThrottlerMap)
    sync.close()
    inner = httpx2.MockTransport(ok)
    hosts = ThrottlerMap(5, 1.0)
    policy = FeedbackPolicy(retries=1)
    given = ThrottledTransport(inner, throttler=hosts, feedback=policy)
    assert (given.transport, given.throttler, given.feedback) == (inner, hosts, policy)
    assert repr(given).startswith("<ThrottledTransport <ThrottlerMap 5/s")
    assert repr(given).endswith("over MockTransport>")


def test_a_transport_of_another_library_is_refused() -> None:
    """An httpx transport under the httpx2 transport is a TypeError naming httpx2's class."""
    httpx = pytest.importorskip("httpx")
    with pytest.raises(TypeError, match=r"transport must be an httpx2\.AsyncBaseTransport"):
        ThrottledTransport(httpx.AsyncHTTPTransport())
    with pytest.raises(TypeError, match=r"transport must be an httpx2\.BaseTransport"):
        SyncThrottledTransport(httpx.HTTPTransport())
    with pytest.raises(TypeError, match=r"rate_limit=10"):
        ThrottledTransport(10)  # type: ignore[arg-type]


def test_import_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without httpx2 installed, importing the integration says which extra to install."""
    monkeypatch.setitem(sys.modules, "httpx2", None)
    monkeypatch.delitem(sys.modules, "throttled_http.httpx2")
    with pytest.raises(ImportError, match=r"pip install throttled_http\[httpx2\]"):
        importlib.import_module("throttled_http.httpx2")


ALIASED = """
import asyncio, sys
import httpx2
httpx2.alias_httpx()
import throttled_http.httpx as edge
assert edge.httpx is httpx2

async def main():
    transport = edge.ThrottledTransport(httpx2.MockTransport(lambda r: httpx2.Response(200)))
    async with httpx2.AsyncClient(transport=transport) as client:
        return (await client.get("http://a.example/")).status_code

print(asyncio.run(main()), issubclass(edge.ThrottleTimeout, httpx2.TimeoutException))
"""


def test_after_alias_httpx_the_httpx_module_serves_httpx2_clients() -> None:
    """After httpx2.alias_httpx(), throttled_http.httpx is bound to httpx2 too."""
    if not hasattr(httpx2, "alias_httpx"):
        pytest.skip("httpx2.alias_httpx() is newer than this httpx2")
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", ALIASED],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["200", "True"]


# -- both libraries, one implementation --------------------------------------------------

EDGES = [
    pytest.param("httpx", throttled_http.httpx, id="httpx"),
    pytest.param("httpx2", throttled_http.httpx2, id="httpx2"),
]


@pytest.mark.parametrize(("name", "edge"), EDGES)
def test_each_library_gets_its_own_classes(name: str, edge: ModuleType) -> None:
    """Each edge's errors are its library's; its classes report the edge's module."""
    lib = importlib.import_module(name)
    assert issubclass(edge.InvalidURL, lib.RequestError)
    assert issubclass(edge.InvalidURL, InvalidURLError)
    assert issubclass(edge.ThrottleTimeout, lib.TimeoutException)
    assert issubclass(edge.ThrottleTimeout, ThrottlerTimeoutError)
    assert issubclass(edge.ThrottledTransport, lib.AsyncBaseTransport)
    assert issubclass(edge.SyncThrottledTransport, lib.BaseTransport)
    # The other library's classes appear nowhere in the hierarchy. (Compared as objects:
    # openai renames the __module__ of the httpx2 classes it re-exports to "openai".)
    other = importlib.import_module("httpx2" if name == "httpx" else "httpx")
    theirs = {id(v) for v in vars(other).values() if isinstance(v, type)}
    for public in ("InvalidURL", "ThrottleTimeout", "ThrottledTransport", "SyncThrottledTransport"):
        cls = getattr(edge, public)
        assert f"{cls.__module__}.{cls.__qualname__}" == f"throttled_http.{name}.{public}"
        assert not [c for c in cls.__mro__ if id(c) in theirs and c is not object]


def test_the_two_edges_share_one_implementation() -> None:
    """The transports' code is one: each method is the same function in both modules."""
    for public, methods in (
        ("ThrottledTransport", ("handle_async_request", "aclose", "__init__", "__repr__")),
        ("SyncThrottledTransport", ("handle_request", "close", "__init__", "__repr__")),
    ):
        one = getattr(throttled_http.httpx, public)
        two = getattr(throttled_http.httpx2, public)
        assert one is not two
        for method in methods:
            assert getattr(one, method) is getattr(two, method), (public, method)
    assert throttled_http.httpx.COST_EXTENSION == throttled_http.httpx2.COST_EXTENSION


@pytest.mark.parametrize(("name", "edge"), EDGES)
async def test_one_journey_through_either_library(
    name: str, edge: ModuleType, server: RecordingServer
) -> None:
    """A redirect hop and a streamed body at a real server, through each library's client."""
    lib: Any = importlib.import_module(name)
    hosts = ThrottlerMap(100, 60.0, max_concurrency=1)
    transport = edge.ThrottledTransport(throttler=hosts)
    url = server.url("/stream/2?interval=0.01")
    async with lib.AsyncClient(transport=transport, follow_redirects=True) as client:
        assert (await client.get(server.url("/redirect/1"))).status_code == 200
        async with client.stream("GET", url) as response:
            assert in_flight(transport, url) == 1
            assert await response.aread() == b"chunk 0\nchunk 1\n"
            assert in_flight(transport, url) == 0
    limiter = hosts.throttler_for(url)
    assert isinstance(limiter, Throttler)
    assert limiter.statistics().in_window == 3


@pytest.mark.parametrize(
    ("name", "edge"),
    [
        pytest.param("httpx", throttled_http.httpx2, id="httpx-client"),
        pytest.param("httpx2", throttled_http.httpx, id="httpx2-client"),
    ],
)
async def test_a_client_of_the_other_library_is_told_which_transport_to_use(
    name: str, edge: ModuleType
) -> None:
    """A client over the other library's transport raises a TypeError naming the one to use
    (instead of the client's bare assertion about the response)."""
    lib: Any = importlib.import_module(name)
    expected = rf"for an {name} client use throttled_http\.{name}\.ThrottledTransport"
    async with lib.AsyncClient(transport=edge.ThrottledTransport(rate_limit=10)) as client:
        with pytest.raises(TypeError, match=expected):
            await client.get("http://a.example/")
    expected = rf"for an {name} client use throttled_http\.{name}\.SyncThrottledTransport"
    with (
        lib.Client(transport=edge.SyncThrottledTransport(rate_limit=10)) as sync,
        pytest.raises(TypeError, match=expected),
    ):
        sync.get("http://a.example/")
