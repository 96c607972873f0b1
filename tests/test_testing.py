"""Tests of throttled_http.testing: the RecordingServer and the aioresponses helper."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
from aiohttp import web

from throttled_http import Rate
from throttled_http.testing import Arrival, RecordingServer, aioresponses_compat


async def test_records_every_arrival_on_each_host() -> None:
    """Each host shares the port and every request is recorded with host, path and status."""
    async with RecordingServer() as server, aiohttp.ClientSession() as session:
        assert server.url("/a", host=1) == f"http://127.0.0.2:{server.port}/a"
        for host in (0, 1, "127.0.0.2"):
            async with session.get(server.url("/", host=host)) as response:
                assert await response.text() == "ok"
        async with session.post(server.url("/status/503")) as response:
            assert response.status == 503
    assert [(a.host, a.path, a.method, a.status) for a in server.arrivals] == [
        ("127.0.0.1", "/", "GET", 200),
        ("127.0.0.2", "/", "GET", 200),
        ("127.0.0.2", "/", "GET", 200),
        ("127.0.0.1", "/status/503", "POST", 503),
    ]
    assert len(server.arrivals_at(1)) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        server.arrivals[0].status = 1  # type: ignore[misc]


async def test_redirect_routes_and_status_headers() -> None:
    """Redirect chains, cross-host redirects and /status query headers behave as documented."""
    async with RecordingServer() as server, aiohttp.ClientSession() as session:
        async with session.get(server.url("/redirect/3")) as response:
            assert response.status == 200
            assert len(response.history) == 3
        async with session.get(server.url("/to/127.0.0.2/redirect/1")) as response:
            assert str(response.url) == server.url("/redirect/0", host=1)
        url = server.url("/status/429?retry_after=7&X-RateLimit-Remaining=0")
        async with session.get(url) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "7"
            assert response.headers["X-RateLimit-Remaining"] == "0"
    hops = [(a.host, a.path) for a in server.arrivals]
    assert hops[4:7] == [
        ("127.0.0.1", "/to/127.0.0.2/redirect/1"),
        ("127.0.0.2", "/redirect/1"),
        ("127.0.0.2", "/redirect/0"),
    ]
    assert server.rejected == {"127.0.0.1": 1}


async def test_server_limit_answers_429_with_retry_after() -> None:
    """Arrivals beyond the sliding-window limit of a host get 429 and Retry-After."""
    async with (
        RecordingServer(server_limit=Rate(2, 10)) as server,
        aiohttp.ClientSession() as session,
    ):
        statuses = []
        for host in (0, 0, 0, 1):
            async with session.get(server.url("/", host=host)) as response:
                statuses.append(response.status)
                if response.status == 429:
                    assert 1 <= int(response.headers["Retry-After"]) <= 10
    assert statuses == [200, 200, 429, 200]
    assert server.rejected == {"127.0.0.1": 1}


async def test_leaky_bucket_rejects_close_arrivals() -> None:
    """An arrival sooner than leaky_bucket seconds after the last accepted one gets 429."""
    async with (
        RecordingServer(leaky_bucket=0.2) as server,
        aiohttp.ClientSession() as session,
    ):
        first = await session.get(server.url("/"))
        second = await session.get(server.url("/"))
        await asyncio.sleep(0.25)
        third = await session.get(server.url("/"))
        assert [r.status for r in (first, second, third)] == [200, 429, 200]
        for response in (first, second, third):
            response.release()
    assert server.min_gap() < 0.2


async def test_max_in_window_and_in_flight() -> None:
    """max_in_window counts the busiest window and max_in_flight the most at once."""
    async with RecordingServer(latency=0.1) as server, aiohttp.ClientSession() as session:

        async def get(path: str) -> None:
            async with session.get(server.url(path)) as response:
                await response.read()

        await asyncio.gather(*(get("/") for _ in range(3)), get("/stream/3?interval=0.01"))
    assert server.max_in_flight["127.0.0.1"] == 4
    assert server.max_in_window(10.0) == 4
    assert server.max_in_window(1e-9) == 1
    assert all(isinstance(a, Arrival) for a in server.arrivals)


def test_arguments_are_checked() -> None:
    """Bad constructor arguments raise at once, naming the argument."""
    with pytest.raises(ValueError, match="latency"):
        RecordingServer(latency=-1)
    with pytest.raises(TypeError, match="hosts"):
        RecordingServer(hosts="127.0.0.1")
    with pytest.raises(ValueError, match="host must be one of"):
        RecordingServer().url("/", host="10.0.0.1")


async def test_aioresponses_compat_builds_responses() -> None:
    """aioresponses works with the installed aiohttp through aioresponses_compat."""
    with aioresponses_compat() as mocked:
        mocked.get("http://api.test/items", payload=[1, 2])
        async with aiohttp.ClientSession() as session, session.get("http://api.test/items") as r:
            assert await r.json() == [1, 2]


async def test_extra_routes_are_served_and_recorded() -> None:
    """Routes passed with routes= are served and their arrivals recorded with their status."""

    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=418, text="short and stout")

    async with (
        RecordingServer(routes=[web.get("/teapot", teapot)]) as server,
        aiohttp.ClientSession() as session,
        session.get(server.url("/teapot", host=1)) as response,
    ):
        assert response.status == 418
    assert [(a.host, a.path, a.status) for a in server.arrivals] == [("127.0.0.2", "/teapot", 418)]


async def test_drop_closes_the_first_connection_only() -> None:
    """/drop/{name} drops the first arrival's connection and answers later ones."""
    async with RecordingServer() as server, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.post(server.url("/drop/x"))  # POST is not resent by aiohttp
        async with session.post(server.url("/drop/x")) as response:
            assert response.status == 200
    assert [a.status for a in server.arrivals] == [0, 200]
