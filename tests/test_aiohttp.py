"""Tests of throttled_http.aiohttp against a real aiohttp server on 127.0.0.1 and 127.0.0.2.

The server records every arrival on its own clock, so the limits are checked where they
matter: no window of ``period`` at the server holds more than the limit.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

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
from throttled_http.aiohttp import (
    InvalidURL,
    ThrottledClientSession,
    ThrottleMiddleware,
    ThrottleTimeout,
    throttle_middleware,
    throttle_trace_config,
)
from throttled_http.testing import RecordingServer, aioresponses_compat, mock_aiohttp

mocked_aiohttp = pytest.fixture(mock_aiohttp)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

pytestmark = pytest.mark.realclock

PERIOD = 0.3


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    """A recording server on 127.0.0.1 and 127.0.0.2 for one test."""
    async with RecordingServer() as recording:
        yield recording


async def fetch(session: ThrottledClientSession | aiohttp.ClientSession, url: str) -> int:
    """GET ``url``, read the body, return the status."""
    async with session.get(url) as response:
        await response.read()
        return response.status


def in_flight(session: ThrottledClientSession, url: str) -> int:
    """Slots the session's throttler for ``url``'s host holds now."""
    hosts = session.throttler
    assert isinstance(hosts, ThrottlerMap)
    throttler = hosts.throttler_for(url)
    assert isinstance(throttler, Throttler)
    return throttler.statistics().in_flight


def stats_for(session: ThrottledClientSession, url: str) -> Throttler:
    """The in-memory throttler of ``url``'s host."""
    hosts = session.throttler
    assert isinstance(hosts, ThrottlerMap)
    throttler = hosts.throttler_for(url)
    assert isinstance(throttler, Throttler)
    return throttler


# -- the window guarantee ----------------------------------------------------------------


async def test_per_host_limit_holds_at_the_server_with_latency() -> None:
    """No window of period at the server exceeds each host's own limit, whatever the latency."""
    async with (
        RecordingServer(latency=0.05) as server,
        ThrottledClientSession(
            throttler=ThrottlerMap(3, PERIOD, overrides={"127.0.0.2": f"6/{PERIOD}s"})
        ) as session,
    ):
        urls = [server.url("/", host=i % 2) for i in range(24)]
        statuses = await asyncio.gather(*(fetch(session, url) for url in urls))
    assert statuses == [200] * 24
    assert server.max_in_window(PERIOD, host=0) == 3
    assert server.max_in_window(PERIOD, host=1) == 6
    # Side by side: the faster host finished its 12 well before the slower one.
    last = {a.host: a.time for a in server.arrivals}
    assert last["127.0.0.2"] < last["127.0.0.1"]


async def test_smooth_mode_draws_no_429_from_a_leaky_bucket() -> None:
    """burst=1 spaces arrivals so an nginx-style leaky bucket never answers 429."""
    interval = PERIOD / 3
    async with (
        RecordingServer(leaky_bucket=interval) as server,
        ThrottledClientSession(throttler=ThrottlerMap(3, PERIOD, burst=1)) as session,
    ):
        statuses = await asyncio.gather(*(fetch(session, server.url("/")) for _ in range(7)))
    assert statuses == [200] * 7
    assert server.rejected == {}
    assert server.min_gap() >= interval


async def test_without_smooth_mode_a_leaky_bucket_rejects(server: RecordingServer) -> None:
    """The control for the smooth-mode test: window-only bursts draw 429s."""
    server.leaky_bucket = PERIOD / 3
    async with ThrottledClientSession(rate_limit=3, period=PERIOD) as session:
        await asyncio.gather(*(fetch(session, server.url("/")) for _ in range(3)))
    assert server.rejected["127.0.0.1"] > 0


async def test_every_redirect_hop_is_throttled(server: RecordingServer) -> None:
    """A chain of 6 redirects (7 hops) at 3 per period spans at least two periods."""
    async with (
        ThrottledClientSession(rate_limit=3, period=PERIOD) as session,
        session.get(server.url("/redirect/6")) as response,
    ):
        assert response.status == 200
        assert len(response.history) == 6
    times = [a.time for a in server.arrivals]
    assert len(times) == 7
    assert server.max_in_window(PERIOD) == 3
    assert times[-1] - times[0] >= 2 * PERIOD


async def test_cross_host_redirect_is_charged_to_its_target(server: RecordingServer) -> None:
    """A redirect to another host takes an entry of that host, not of the first one."""
    async with ThrottledClientSession(rate_limit=1, period=60.0, throttle_timeout=0.05) as session:
        assert await fetch(session, server.url("/to/127.0.0.2/")) == 200
        first, second = (
            stats_for(session, server.url(host=0)),
            stats_for(session, server.url(host=1)),
        )
        assert first.statistics().in_window == 1
        assert second.statistics().in_window == 1
        with pytest.raises(ThrottlerTimeoutError):
            await fetch(session, server.url("/", host=1))  # its quota is spent


async def test_aiohttp_own_retry_is_charged(server: RecordingServer) -> None:
    """aiohttp's resend of an idempotent request on a dropped connection takes an entry."""
    async with ThrottledClientSession(rate_limit=5, period=60.0) as session:
        assert await fetch(session, server.url("/drop/a")) == 200
        assert [a.status for a in server.arrivals] == [0, 200]
        assert stats_for(session, server.url()).statistics().in_window == 2


async def test_two_sessions_share_one_quota(server: RecordingServer) -> None:
    """Sessions given the same ThrottlerMap stay under one limit together."""
    hosts = ThrottlerMap(2, PERIOD)
    async with (
        ThrottledClientSession(throttler=hosts) as one,
        ThrottledClientSession(throttler=hosts) as two,
    ):
        await asyncio.gather(
            *(fetch(session, server.url("/")) for session in (one, two) for _ in range(3))
        )
    assert len(server.arrivals) == 6
    assert server.max_in_window(PERIOD) == 2


# -- concurrency and slots ---------------------------------------------------------------


async def test_max_concurrency_holds_at_the_server(server: RecordingServer) -> None:
    """The server never has more than max_concurrency requests in flight per host."""
    async with ThrottledClientSession(
        throttler=ThrottlerMap(100, 1.0, max_concurrency=2)
    ) as session:
        urls = [server.url("/delay/0.05", host=i % 2) for i in range(12)]
        await asyncio.gather(*(fetch(session, url) for url in urls))
        assert in_flight(session, server.url(host=0)) == 0
    assert server.max_in_flight == {"127.0.0.1": 2, "127.0.0.2": 2}


@pytest.mark.parametrize(
    "finish",
    ["read", "release", "close", "context", "text", "broken_body"],
)
async def test_slot_is_given_back_once_however_the_response_ends(
    server: RecordingServer, finish: str
) -> None:
    """Reading, releasing, closing or a broken body gives the slot back exactly once."""
    async with ThrottledClientSession(
        throttler=ThrottlerMap(100, 1.0, max_concurrency=1)
    ) as session:
        path = "/stream/3?interval=0&abort=1" if finish == "broken_body" else "/stream/3"
        url = server.url(path)
        if finish == "context":
            async with session.get(url) as response:
                assert in_flight(session, url) == 1
        else:
            response = await session.get(url)
            assert in_flight(session, url) == 1
            if finish == "read":
                await response.read()
            elif finish == "text":
                assert (await response.text()).startswith("chunk 0")
            elif finish == "release":
                response.release()
            elif finish == "close":
                response.close()
            else:
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
                response.release()
        assert in_flight(session, url) == 0
        response.release()  # a second release changes nothing
        response.close()
        assert in_flight(session, url) == 0
        # The slot is really free: the next request gets it at once.
        assert await asyncio.wait_for(fetch(session, server.url("/")), 5) == 200


async def _cancel_after(delay: float, coro: Awaitable[object]) -> None:
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelled_while_waiting_for_the_throttler(server: RecordingServer) -> None:
    """A request cancelled in the throttler's queue takes no entry and no slot."""
    async with ThrottledClientSession(
        throttler=ThrottlerMap(100, 1.0, max_concurrency=1)
    ) as session:
        url = server.url("/")
        held = await session.get(server.url("/stream/1000?interval=0.05"))
        await _cancel_after(0.05, fetch(session, url))
        throttler = stats_for(session, url)
        assert throttler.statistics().waiting == 0
        assert throttler.statistics().in_flight == 1
        held.release()
        assert throttler.statistics().in_flight == 0
    assert len(server.arrivals) == 1


async def test_cancelled_while_waiting_for_headers(server: RecordingServer) -> None:
    """A request cancelled before its headers arrive gives its slot back."""
    async with ThrottledClientSession(
        throttler=ThrottlerMap(100, 1.0, max_concurrency=1)
    ) as session:
        await _cancel_after(0.1, fetch(session, server.url("/delay/5")))
        assert in_flight(session, server.url()) == 0
        assert stats_for(session, server.url()).statistics().open == 0
        assert await fetch(session, server.url("/")) == 200


async def test_cancelled_while_reading_the_body(server: RecordingServer) -> None:
    """A request cancelled in the middle of its body gives its slot back."""
    async with ThrottledClientSession(
        throttler=ThrottlerMap(100, 1.0, max_concurrency=1)
    ) as session:
        await _cancel_after(0.1, fetch(session, server.url("/stream/100?interval=0.02")))
        assert in_flight(session, server.url()) == 0
        assert await fetch(session, server.url("/")) == 200


async def test_unreleased_response_gives_its_slot_back_after_release_timeout(
    server: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A response nobody releases frees its slot release_timeout seconds later, with a warning."""
    async with ThrottledClientSession(
        throttler=ThrottlerMap(100, 1.0, max_concurrency=1), release_timeout=0.2
    ) as session:
        forgotten = await session.get(server.url("/stream/1000?interval=0.05"))
        assert in_flight(session, server.url()) == 1
        with caplog.at_level(logging.WARNING, logger="throttled_http"):
            assert await fetch(session, server.url("/")) == 200  # waits ~0.2 s, not forever
        assert "release_timeout=0.2" in caplog.text
        forgotten.release()
        assert in_flight(session, server.url()) == 0


async def test_each_unreleased_response_expires_at_its_own_deadline(
    server: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With one shared hold timer, responses opened at different times each free their slot
    release_timeout seconds after their own headers."""
    async with ThrottledClientSession(
        throttler=ThrottlerMap(100, 1.0, max_concurrency=3), release_timeout=1.0
    ) as session:
        slow = server.url("/stream/1000?interval=0.05")
        with caplog.at_level(logging.WARNING, logger="throttled_http"):
            first = await session.get(slow)
            await asyncio.sleep(0.5)
            second = await session.get(slow)
            assert in_flight(session, server.url()) == 2
            await asyncio.sleep(0.75)  # the first has expired, the second has 0.25 s left
            assert in_flight(session, server.url()) == 1
            await asyncio.sleep(0.5)
            assert in_flight(session, server.url()) == 0
        assert caplog.text.count("release_timeout=1.0") == 2
        first.release()
        second.release()
        assert in_flight(session, server.url()) == 0


# -- timeouts ----------------------------------------------------------------------------


async def test_waiting_for_the_first_hop_does_not_eat_client_timeout(
    server: RecordingServer,
) -> None:
    """ThrottledClientSession queues outside ClientTimeout.total: no request times out."""
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with ThrottledClientSession(rate_limit=1, period=0.15, timeout=timeout) as session:
        statuses = await asyncio.gather(*(fetch(session, server.url("/")) for _ in range(4)))
    assert statuses == [200] * 4
    times = [a.time for a in server.arrivals]
    assert times[-1] - times[0] > timeout.total  # type: ignore[operator]


async def test_middleware_wait_counts_against_client_timeout(server: RecordingServer) -> None:
    """With throttle_middleware the wait is inside aiohttp's total timeout, as documented."""
    middleware = throttle_middleware(Throttler(1, 60.0))
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(middlewares=[middleware], timeout=timeout) as session:
        assert await fetch(session, server.url("/")) == 200
        with pytest.raises(asyncio.TimeoutError):
            await fetch(session, server.url("/"))
    assert isinstance(middleware.throttler, Throttler)
    assert middleware.throttler.statistics().waiting == 0
    assert len(server.arrivals) == 1


async def test_throttle_timeout_bounds_the_wait(server: RecordingServer) -> None:
    """throttle_timeout gives up with ThrottlerTimeoutError and leaves nothing held."""
    async with ThrottledClientSession(rate_limit=1, period=60.0, throttle_timeout=0.05) as session:
        assert await fetch(session, server.url("/")) == 200
        with pytest.raises(ThrottlerTimeoutError):
            await fetch(session, server.url("/"))
        throttler = stats_for(session, server.url())
        assert throttler.statistics().waiting == 0
        assert throttler.statistics().open == 0
    assert len(server.arrivals) == 1


# -- server feedback ---------------------------------------------------------------------


async def test_429_with_retry_after_pauses_only_that_host(server: RecordingServer) -> None:
    """A 429 with Retry-After pauses its host's throttler; the other host goes on."""
    async with ThrottledClientSession(rate_limit=10, period=1.0, throttle_timeout=0.05) as session:
        assert await fetch(session, server.url("/status/429?retry_after=30")) == 429
        assert stats_for(session, server.url(host=0)).paused_for > 20
        assert stats_for(session, server.url(host=1)).paused_for == 0
        assert await asyncio.wait_for(fetch(session, server.url("/", host=1)), 5) == 200
        with pytest.raises(ThrottlerTimeoutError):
            await fetch(session, server.url("/"))


async def test_a_queued_hop_does_not_slip_through_before_the_pause(
    server: RecordingServer,
) -> None:
    """The pause applies before the refused response frees its slot for the next in line."""
    async with ThrottledClientSession(
        throttler=ThrottlerMap(100, 1.0, max_concurrency=1)
    ) as session:
        refused = asyncio.ensure_future(fetch(session, server.url("/status/429?retry_after=30")))
        queued = asyncio.ensure_future(fetch(session, server.url("/queued")))
        assert await refused == 429
        await asyncio.sleep(0.3)
        assert not queued.done()
        assert [a.path for a in server.arrivals] == ["/status/429"]
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued


async def test_a_200_saying_nothing_remains_pauses_the_host(server: RecordingServer) -> None:
    """X-RateLimit-Remaining: 0 with a reset, on a successful response, pauses its host."""
    async with ThrottledClientSession(rate_limit=10, period=1.0) as session:
        url = server.url("/status/200?X-RateLimit-Remaining=0&X-RateLimit-Reset=30")
        assert await fetch(session, url) == 200
        assert stats_for(session, server.url()).paused_for > 20
        assert await fetch(session, server.url("/status/200?X-RateLimit-Remaining=5", host=1))
        assert stats_for(session, server.url(host=1)).paused_for == 0


async def test_retries_deliver_200_after_the_servers_delay() -> None:
    """Refused requests are sent again through the throttler and end with 200."""
    async with (
        RecordingServer(server_limit="2/0.5s") as server,
        ThrottledClientSession(
            rate_limit=10, period=1.0, feedback=FeedbackPolicy(retries=3, max_retry_after=1.0)
        ) as session,
    ):
        urls = [server.url("/", host=i % 2) for i in range(6)]
        statuses = await asyncio.gather(*(fetch(session, url) for url in urls))
    assert statuses == [200] * 6
    assert server.rejected == {"127.0.0.1": 1, "127.0.0.2": 1}
    assert len(server.arrivals) == 8


# -- the middleware and the trace config -------------------------------------------------


async def test_middleware_innermost_sees_retries_of_outer_middlewares(
    server: RecordingServer,
) -> None:
    """An outer middleware that sends twice is charged twice by the innermost throttle."""

    async def resend(
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        first = await handler(request)
        first.release()
        return await handler(request)

    throttler = Throttler(10, 60.0)
    middleware = throttle_middleware(throttler)
    assert isinstance(middleware, ThrottleMiddleware)
    async with aiohttp.ClientSession(middlewares=[resend, middleware]) as session:
        assert await fetch(session, server.url("/redirect/1")) == 200
    assert len(server.arrivals) == 4
    assert throttler.statistics().in_window == 4


async def test_trace_config_throttles_first_hop_and_redirects(server: RecordingServer) -> None:
    """The TraceConfig route charges every redirect hop to the host it goes to."""
    hosts = ThrottlerMap(3, PERIOD)
    config = throttle_trace_config(hosts, release_timeout=5.0)
    async with aiohttp.ClientSession(trace_configs=[config]) as session:
        assert await fetch(session, server.url("/to/127.0.0.2/redirect/4")) == 200
        assert await fetch(session, server.url("/")) == 200
        assert hosts.throttler_for(server.url(host=1)).statistics().in_flight == 0  # type: ignore[union-attr]
    assert len(server.arrivals_at(1)) == 5
    assert server.max_in_window(PERIOD, host=1) == 3


async def test_trace_config_misses_aiohttp_own_retry(server: RecordingServer) -> None:
    """As documented, the TraceConfig route does not charge aiohttp's internal resend."""
    throttler = Throttler(5, 60.0)
    async with aiohttp.ClientSession(trace_configs=[throttle_trace_config(throttler)]) as s:
        assert await fetch(s, server.url("/drop/a")) == 200
    assert len(server.arrivals) == 2
    assert throttler.statistics().in_window == 1


# -- the session as a ClientSession ------------------------------------------------------


async def test_session_methods_pass_through(server: RecordingServer) -> None:
    """Every method and keyword behaves as on a ClientSession."""
    async with ThrottledClientSession(
        rate_limit=100, period=1.0, headers={"X-Test": "1"}
    ) as session:
        for method in ("get", "post", "put", "patch", "delete", "options"):
            async with getattr(session, method)(server.url("/"), params={"q": "1"}) as response:
                assert response.status == 200
        async with session.head(server.url("/redirect/1")) as response:
            assert response.status == 302  # HEAD does not follow redirects by default
        async with session.request("GET", server.url("/redirect/1")) as response:
            assert response.status == 200
        response = await session.get(server.url("/"))
        assert await response.text() == "ok"
        assert session.headers["X-Test"] == "1"
        response.release()
    assert session.closed
    assert [a.method for a in server.arrivals[:7]] == [
        "GET",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "HEAD",
    ]


async def test_ws_connect_handshake_is_charged_then_frees_its_slot(
    server: RecordingServer,
) -> None:
    """The websocket handshake takes an entry; the open websocket holds no slot."""
    async with (
        ThrottledClientSession(throttler=ThrottlerMap(100, 1.0, max_concurrency=1)) as session,
        session.ws_connect(server.url("/ws")) as ws,
    ):
        await ws.send_str("hello")
        assert await ws.receive_str() == "hello"
        throttler = stats_for(session, server.url())
        assert throttler.statistics().in_window == 1
        assert throttler.statistics().in_flight == 0
        assert await fetch(session, server.url("/")) == 200


async def test_wrapped_session_stays_open_and_keeps_its_middlewares(
    server: RecordingServer,
) -> None:
    """session= wraps a caller's session: its middlewares run and close() leaves it open."""
    seen: list[str] = []

    async def spy(
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        seen.append(request.url.path)
        return await handler(request)

    async with aiohttp.ClientSession(middlewares=[spy]) as inner:
        async with ThrottledClientSession(rate_limit=2, period=60.0, session=inner) as session:
            assert session.session is inner
            assert await fetch(session, server.url("/redirect/1")) == 200
            assert stats_for(session, server.url()).statistics().in_window == 2
        assert not inner.closed
    assert seen == ["/redirect/1", "/redirect/0"]


async def test_another_throttle_middleware_does_not_take_our_entry(
    server: RecordingServer,
) -> None:
    """A second throttle middleware passed per request charges its own throttler, and we ours."""
    other = Throttler(10, 60.0)
    async with ThrottledClientSession(rate_limit=10, period=60.0) as session:
        url = server.url("/")
        async with session.get(url, middlewares=[throttle_middleware(other)]) as response:
            assert response.status == 200
        assert other.statistics().in_window == 1
        assert stats_for(session, url).statistics().in_window == 1
        assert stats_for(session, url).statistics().open == 0


@pytest.mark.parametrize("module", ["throttled_http.aiohttp", "throttled_http.testing"])
def test_import_error_names_the_extra(module: str) -> None:
    """Without aiohttp, importing the integration says which extra to install."""
    code = f"import sys; sys.modules['aiohttp'] = None; import {module}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "pip install throttled_http[aiohttp]" in result.stderr


async def test_backend_makes_each_hosts_throttler(server: RecordingServer) -> None:
    """backend= is handed to the ThrottlerMap: it builds the throttler of every host."""
    created: list[str] = []

    class Recording:
        def create(
            self,
            key: str,
            rates: tuple[Rate, ...],
            *,
            burst: int | None,
            max_concurrency: int | None,
        ) -> Throttler:
            created.append(key)
            return Throttler.from_rates(*rates, burst=burst, max_concurrency=max_concurrency)

    async with ThrottledClientSession(
        throttler=ThrottlerMap(5, 1.0, backend=Recording())
    ) as session:
        assert await fetch(session, server.url("/to/127.0.0.2/")) == 200
    assert created == [f"http://127.0.0.1:{server.port}", f"http://127.0.0.2:{server.port}"]


async def test_a_forgotten_host_is_looked_up_again(server: RecordingServer) -> None:
    """After the map forgets an idle host, the session charges the map's new throttler."""
    hosts = ThrottlerMap(5, 0.05, max_keys=1)
    async with ThrottledClientSession(throttler=hosts) as session:
        first = server.url("/", host=0)
        assert await fetch(session, first) == 200
        old = hosts.throttler_for(first)
        await asyncio.sleep(0.1)  # idle: the next host may evict it
        assert await fetch(session, server.url("/", host=1)) == 200
        assert await fetch(session, first) == 200
        new = hosts.throttler_for(first)
        assert new is not old
        assert isinstance(new, Throttler)
        assert new.statistics().in_window == 1


async def test_relative_urls_are_charged_to_the_base_urls_host(server: RecordingServer) -> None:
    """The same relative URL string in two sessions with different base URLs is charged to
    each session's own host (each session remembers its own absolute URLs)."""
    hosts = ThrottlerMap(100, 60.0)
    first = ThrottledClientSession(throttler=hosts, base_url=server.url("/", host=0))
    second = ThrottledClientSession(throttler=hosts, base_url=server.url("/", host=1))
    async with first, second:
        for _ in range(3):
            assert await fetch(first, "/") == 200
        assert await fetch(second, "/") == 200
        throttlers = {
            url: hosts.throttler_for(url) for url in (server.url(host=0), server.url(host=1))
        }
    counts = {
        url: t.statistics().in_window for url, t in throttlers.items() if isinstance(t, Throttler)
    }
    assert counts == {server.url(host=0): 3, server.url(host=1): 1}
    assert [a.host for a in server.arrivals].count("127.0.0.2") == 1


def test_constructor_arguments_are_checked() -> None:
    """Conflicting or invalid arguments raise at construction, naming the argument."""
    with pytest.raises(TypeError, match="rate_limit= and throttler= were both given"):
        ThrottledClientSession(throttler=Throttler(1), rate_limit=1)
    with pytest.raises(ValueError, match="release_timeout"):
        throttle_middleware(Throttler(1), release_timeout=0)
    with pytest.raises(ValueError, match="throttle_timeout"):
        throttle_trace_config(Throttler(1), throttle_timeout=-1)
    with pytest.raises(TypeError, match="throttler must be"):
        throttle_middleware("10/s")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="close_session=True needs a session="):
        ThrottledClientSession(close_session=True)
    with pytest.raises(ValueError, match="rate_limit"):
        ThrottledClientSession(rate_limit=0)


async def test_wrapped_session_rejects_session_keywords() -> None:
    """Keywords for a ClientSession cannot be combined with session=."""
    async with aiohttp.ClientSession() as inner:
        with pytest.raises(TypeError, match="headers"):
            ThrottledClientSession(session=inner, headers={"a": "b"})


# -- mocks -------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_aioresponses_mocked_requests_are_throttled() -> None:
    """Under aioresponses no middleware runs, yet each mocked request waits its turn."""
    loop = asyncio.get_running_loop()
    with aioresponses_compat() as mocked:
        mocked.get("http://api.test/items", payload=[1], repeat=True)
        async with ThrottledClientSession(
            throttler=ThrottlerMap(2, 1.0, max_concurrency=1)
        ) as session:
            start = loop.time()
            for _ in range(5):
                async with session.get("http://api.test/items") as response:
                    assert await response.json() == [1]
            elapsed = loop.time() - start
            throttler = stats_for(session, "http://api.test/")
            assert throttler.statistics().in_flight == 0
    assert elapsed >= 2.0  # 5 requests at 2 per second: two full windows
    assert sum(len(calls) for calls in mocked.requests.values()) == 5


@pytest.mark.looptime
async def test_aioresponses_429_pauses_the_host() -> None:
    """A mocked 429 with Retry-After pauses the mocked host, as a real one would."""
    with aioresponses_compat() as mocked:
        mocked.get("http://api.test/", status=429, headers={"Retry-After": "7"})
        async with ThrottledClientSession(rate_limit=10, period=1.0) as session:
            assert await fetch(session, "http://api.test/") == 429
            assert stats_for(session, "http://api.test/").paused_for > 6


@pytest.mark.looptime
async def test_aioresponses_refused_request_is_retried(mocked_aiohttp: Any) -> None:
    """A mocked 429 is retried after its Retry-After, through the throttler, ending in 200."""
    loop = asyncio.get_running_loop()
    mocked_aiohttp.get("http://api.test/", status=429, headers={"Retry-After": "3"})
    mocked_aiohttp.get("http://api.test/", status=200, body="ok")
    async with ThrottledClientSession(
        rate_limit=10, period=1.0, feedback=FeedbackPolicy(retries=1)
    ) as session:
        start = loop.time()
        assert await fetch(session, "http://api.test/") == 200
        assert loop.time() - start >= 3
    assert sum(len(calls) for calls in mocked_aiohttp.requests.values()) == 2


async def test_aioresponses_passthrough_is_charged_once(server: RecordingServer) -> None:
    """A request aioresponses passes through to a real server takes one entry, not two."""
    with aioresponses_compat(passthrough=[server.url("/")]):
        async with ThrottledClientSession(rate_limit=10, period=60.0) as session:
            assert await fetch(session, server.url("/redirect/1")) == 200
            assert stats_for(session, server.url()).statistics().in_window == 2
    assert len(server.arrivals) == 2


async def test_no_task_is_left_behind(server: RecordingServer) -> None:
    """After the session closes, no task of ours is still running."""
    before = asyncio.all_tasks()
    async with ThrottledClientSession(
        throttler=ThrottlerMap(2, PERIOD, max_concurrency=1)
    ) as session:
        await asyncio.gather(*(fetch(session, server.url("/redirect/2")) for _ in range(2)))
    await asyncio.sleep(0)
    assert asyncio.all_tasks() <= before
    assert time.monotonic() > 0


# -- the 0.2 construction contracts ------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), [("rate_limit", 5), ("period", 1.0)])
async def test_the_shorthand_beside_a_throttler_is_a_type_error_naming_both(
    name: str, value: float
) -> None:
    """rate_limit= or period= beside throttler= is a TypeError naming both, for the session."""
    shorthand: dict[str, Any] = {name: value}
    pattern = f"{name}= and throttler= were both given"
    with pytest.raises(TypeError, match=pattern):
        ThrottledClientSession(throttler=ThrottlerMap(5, 1.0), **shorthand)
    with pytest.raises(TypeError, match=pattern):
        ThrottledClientSession(throttler=Throttler(5, 1.0), **shorthand)


async def test_a_blocking_throttler_is_refused() -> None:
    """The session refuses a SyncThrottler or SyncThrottlerMap, which would block its loop."""
    with pytest.raises(TypeError, match="throttler must be a Throttler, a ThrottlerMap"):
        ThrottledClientSession(throttler=SyncThrottler(5, 1.0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="throttler must be a Throttler, a ThrottlerMap"):
        ThrottledClientSession(throttler=SyncThrottlerMap(5, 1.0))  # type: ignore[arg-type]


@pytest.mark.looptime
@pytest.mark.parametrize(
    "shorthand",
    [{"rate_limit": 10}, {"rate_limit": 10, "period": 1.0}],
    ids=["rate_limit", "rate_limit-period"],
)
async def test_rate_limit_shorthand_throttles_each_host(
    shorthand: dict[str, Any], max_in_window: Callable[..., int]
) -> None:
    """ThrottledClientSession(rate_limit=10[, period=1.0]) limits each host to 10 per second."""
    loop = asyncio.get_running_loop()
    times: dict[str, list[float]] = {}

    def record(url: Any, **kwargs: Any) -> None:
        times.setdefault(url.host, []).append(loop.time())

    with aioresponses_compat() as mocked:
        mocked.get(re.compile(r"^http://[ab]\.test/$"), callback=record, repeat=True)
        async with ThrottledClientSession(**shorthand) as session:
            urls = [f"http://{host}/" for host in ("a.test", "b.test") for _ in range(11)]
            statuses = await asyncio.gather(*(fetch(session, url) for url in urls))
            hosts = session.throttler
    assert statuses == [200] * 22
    assert sorted(times) == ["a.test", "b.test"]
    for arrivals in times.values():
        assert len(arrivals) == 11
        assert max_in_window(arrivals, 1.0) <= 10
    # Side by side: one limit for both hosts would have pushed the last ones past t = 2.
    assert max(max(arrivals) for arrivals in times.values()) < 2.0
    assert isinstance(hosts, ThrottlerMap)
    assert hosts.rates == (Rate(10, 1.0),)
    assert len(hosts) == 2


@pytest.mark.parametrize(
    ("keyword", "hint"),
    [
        ("retries", "feedback=FeedbackPolicy(retries=...)"),
        ("adapt", "feedback=FeedbackPolicy(adapt=...)"),
        ("max_concurrency", "throttler=ThrottlerMap(..., max_concurrency=...)"),
        ("backend", "throttler=ThrottlerMap(..., backend=...)"),
        ("hold_timeout", "release_timeout="),
    ],
    ids=lambda value: str(value).split("(")[0],
)
async def test_a_keyword_moved_in_0_2_says_where_it_went(keyword: str, hint: str) -> None:
    """A 0.1 keyword is refused with the object it moved to, not passed on to aiohttp."""
    with pytest.raises(TypeError, match=re.escape(hint)):
        ThrottledClientSession(**{keyword: 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["a|b", "a<b", "a^b"])
async def test_a_redirect_to_a_host_no_key_accepts_is_aiohttps_own_error(host: str) -> None:
    """A redirect to a host the key parser refuses raises an aiohttp.ClientError, slot back."""

    async def hostile(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": f"http://{host}/"})

    hosts = ThrottlerMap(5, 1.0, max_concurrency=1)
    async with RecordingServer(routes=[web.get("/hostile", hostile)]) as server:
        for make in (
            lambda: ThrottledClientSession(throttler=hosts),
            lambda: aiohttp.ClientSession(middlewares=[throttle_middleware(hosts)]),
        ):
            async with make() as session:
                with pytest.raises(aiohttp.ClientError) as caught:
                    async with session.get(server.url("/hostile")):
                        pass
                error: BaseException = caught.value
                assert isinstance(error, InvalidURL)  # ours: both of the errors below
                assert isinstance(error, InvalidURLError)
                assert host in str(error)
        first = hosts.throttler_for(server.url("/"))
        assert isinstance(first, Throttler)
        assert first.statistics().in_flight == 0  # the first hop's slot came back


async def test_a_throttle_timeout_is_an_aiohttp_client_error_naming_host_and_timeout(
    server: RecordingServer,
) -> None:
    """A hop that waits throttle_timeout in vain raises an aiohttp.ClientError saying why."""
    hosts = ThrottlerMap(1, 60.0)
    async with ThrottledClientSession(throttler=hosts, throttle_timeout=0.05) as session:
        assert await fetch(session, server.url("/")) == 200
        with pytest.raises(aiohttp.ClientError) as caught:
            await fetch(session, server.url("/"))
    error: BaseException = caught.value
    assert isinstance(error, ThrottleTimeout)
    assert isinstance(error, ThrottlerTimeoutError)
    assert isinstance(error, TimeoutError)
    assert "127.0.0.1" in str(error)
    assert "throttle_timeout=0.05" in str(error)
    async with aiohttp.ClientSession(
        middlewares=[throttle_middleware(hosts, throttle_timeout=0.05)]
    ) as plain:
        with pytest.raises(ThrottleTimeout):
            await plain.get(server.url("/"))
