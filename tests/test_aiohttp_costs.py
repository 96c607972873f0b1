"""Per-request control and client-wide cost and reconcile callables of throttled_http.aiohttp.

Against a real aiohttp server on 127.0.0.1 and 127.0.0.2 (counts only, no timing), and
through aioresponses on looptime's virtual clock where waiting is what is checked.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from throttled_http import Throttler, ThrottlerMap, ThrottlerTimeoutError
from throttled_http.aiohttp import (
    RequestLike,
    ThrottledClientSession,
    ThrottleMiddleware,
    request_options,
    throttle_middleware,
    throttle_trace_config,
)
from throttled_http.llm import anthropic_limits
from throttled_http.testing import RecordingServer, aioresponses_compat, mock_aiohttp

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

pytestmark = pytest.mark.realclock

mocked_aiohttp = pytest.fixture(mock_aiohttp)


async def usage(request: web.Request) -> web.StreamResponse:
    """A JSON body ending in its `usage`; `?chunks=n` sends it in n chunks, a little apart."""
    tokens = int(request.match_info["tokens"])
    body = json.dumps({"text": "x" * 3000, "usage": {"tokens": tokens}}).encode()
    chunks = int(request.query.get("chunks", "1"))
    if chunks == 1:
        return web.Response(body=body, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    size = -(-len(body) // chunks)
    for start in range(0, len(body), size):
        await response.write(body[start : start + size])
        await asyncio.sleep(0.01)
    await response.write_eof()
    return response


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    """A recording server with the `/usage/{tokens}` route, for one test."""
    async with RecordingServer(routes=[web.get("/usage/{tokens}", usage)]) as recording:
        yield recording


async def fetch(
    session: ThrottledClientSession | aiohttp.ClientSession, url: str, **kwargs: Any
) -> int:
    """GET ``url`` with ``kwargs``, read the body, return the status."""
    async with session.get(url, **kwargs) as response:
        await response.read()
        return response.status


def used(throttler: Throttler) -> int:
    """Requests counted in the throttler's window now."""
    return throttler.statistics().in_window


def tokens_in_use(throttler: Throttler) -> float:
    """Tokens the throttler counts now."""
    return throttler.statistics().budgets_in_use["tokens"]


class Usage:
    """A reconcile callable reading `usage.tokens` from a JSON tail; it records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bytes]] = []

    def __call__(self, response: aiohttp.ClientResponse, tail: bytes) -> Mapping[str, int] | None:
        self.calls.append((response.status, tail))
        try:
            return {"tokens": json.loads(tail)["usage"]["tokens"]}
        except ValueError:
            return None  # an empty body, or not JSON

    @property
    def reconciled(self) -> list[bytes]:
        """The tails that were not empty."""
        return [tail for _, tail in self.calls if tail]


# -- per-request keywords on the session -------------------------------------------------


@pytest.mark.parametrize(
    "method", ["get", "post", "put", "patch", "delete", "head", "options", "request"]
)
async def test_every_method_takes_a_cost_and_hides_it_from_aiohttp(
    server: RecordingServer, method: str
) -> None:
    """throttled_http_cost= weighs the request and never reaches aiohttp's own keywords."""
    throttler = Throttler(100, 60.0)
    async with ThrottledClientSession(throttler=throttler) as session:
        url = server.url("/")
        args = ("GET", url) if method == "request" else (url,)
        async with getattr(session, method)(*args, throttled_http_cost=3) as response:
            assert response.status == 200
    assert used(throttler) == 3


async def test_every_redirect_hop_is_charged_the_calls_cost(server: RecordingServer) -> None:
    """A cost applies to each hop of the call: 3 hops at cost 3 count 9."""
    throttler = Throttler(100, 60.0)
    async with ThrottledClientSession(throttler=throttler) as session:
        assert await fetch(session, server.url("/redirect/2"), throttled_http_cost=3) == 200
    assert used(throttler) == 9
    assert len(server.arrivals) == 3


async def test_a_key_charges_another_limit_on_every_hop(server: RecordingServer) -> None:
    """throttled_http_key= charges the key's limit, for a cross-host redirect too."""
    hosts = ThrottlerMap(2, 60.0)
    async with ThrottledClientSession(throttler=hosts, throttle_timeout=0.05) as session:
        url = server.url("/to/127.0.0.2/")
        assert await fetch(session, url, throttled_http_key="search.example") == 200
        keyed = hosts.throttler_for("http://search.example/")
        assert isinstance(keyed, Throttler)
        assert used(keyed) == 2
        assert len(hosts) == 1  # neither host of the two hops was charged
        assert await fetch(session, server.url("/")) == 200  # the host's own quota is whole
        with pytest.raises(ThrottlerTimeoutError):
            await fetch(session, server.url("/"), throttled_http_key="http://search.example")


async def test_bypass_is_not_throttled(server: RecordingServer) -> None:
    """throttled_http_bypass=True sends at once, however spent the quota is."""
    throttler = Throttler(1, 60.0)
    async with ThrottledClientSession(throttler=throttler, throttle_timeout=0.05) as session:
        assert await fetch(session, server.url("/")) == 200
        for _ in range(3):
            assert await fetch(session, server.url("/redirect/1"), throttled_http_bypass=True)
        with pytest.raises(ThrottlerTimeoutError):
            await fetch(session, server.url("/"))
    assert used(throttler) == 1
    assert len(server.arrivals) == 7


async def test_a_cost_per_unit_is_charged_and_checked_by_the_throttler(
    server: RecordingServer,
) -> None:
    """A mapping cost is charged in its unit; a throttler without that budget refuses it."""
    throttler = Throttler(10, 60.0, budgets={"tokens": "1000/min"})
    async with ThrottledClientSession(throttler=throttler) as session:
        url = server.url("/")
        assert await fetch(session, url, throttled_http_cost={"tokens": 420}) == 200
        assert tokens_in_use(throttler) == 420
        assert used(throttler) == 1
    async with ThrottledClientSession(throttler=Throttler(10, 60.0)) as plain:
        with pytest.raises(TypeError, match="needs a throttler with budgets"):
            await fetch(plain, url, throttled_http_cost={"tokens": 5})
    assert len(server.arrivals) == 1


async def test_the_websocket_handshake_takes_the_options(server: RecordingServer) -> None:
    """ws_connect charges its cost, or nothing with bypass."""
    throttler = Throttler(100, 60.0)
    async with ThrottledClientSession(throttler=throttler) as session:
        async with session.ws_connect(server.url("/ws"), throttled_http_cost=4) as ws:
            await ws.send_str("hi")
            assert await ws.receive_str() == "hi"
        async with session.ws_connect(server.url("/ws"), throttled_http_bypass=True):
            pass
    assert used(throttler) == 4


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"throttled_http_key": ""}, "throttled_http_key must be a URL or a host name"),
        ({"throttled_http_key": 5}, "throttled_http_key must be a URL or a host name"),
        ({"throttled_http_bypass": "yes"}, "throttled_http_bypass must be True or False"),
        (
            {"throttled_http_bypass": True, "throttled_http_cost": 2},
            "throttled_http_cost= would go unused",
        ),
        (
            {"throttled_http_bypass": True, "throttled_http_key": "a.example"},
            "throttled_http_key= would go unused",
        ),
    ],
    ids=["empty-key", "int-key", "str-bypass", "bypass-cost", "bypass-key"],
)
async def test_bad_per_request_options_are_a_type_error_naming_them(
    keywords: dict[str, Any], message: str
) -> None:
    """A wrong per-request option raises at the call, naming it; nothing is sent."""
    async with ThrottledClientSession(rate_limit=1) as session:
        with pytest.raises(TypeError, match=message):
            _ = session.get("http://127.0.0.1:9/", **keywords)
        with pytest.raises(TypeError, match=message.replace("throttled_http_", "")):
            request_options(**{k.replace("throttled_http_", ""): v for k, v in keywords.items()})


# -- the middleware route: request_options -----------------------------------------------


async def test_request_options_reach_the_middleware_of_a_plain_session(
    server: RecordingServer,
) -> None:
    """A plain ClientSession's middleware reads cost, key and bypass from request_options."""
    hosts = ThrottlerMap(100, 60.0)
    async with aiohttp.ClientSession(middlewares=[throttle_middleware(hosts)]) as session:
        with request_options(cost=2):
            assert await fetch(session, server.url("/redirect/1")) == 200
        own = hosts.throttler_for(server.url())
        assert isinstance(own, Throttler)
        assert used(own) == 4
        with request_options(bypass=True):
            assert await fetch(session, server.url("/")) == 200
        with request_options(cost=3), request_options(key="search.example"):
            assert await fetch(session, server.url("/")) == 200  # both: keyed, cost 3
        keyed = hosts.throttler_for("http://search.example/")
        assert isinstance(keyed, Throttler)
        assert used(keyed) == 3
        with request_options(bypass=True), request_options(cost=5):
            assert await fetch(session, server.url("/")) == 200  # an inner cost throttles
        assert used(own) == 9
        assert await fetch(session, server.url("/")) == 200  # outside any block: 1
        assert used(own) == 10
    assert len(server.arrivals) == 6


async def test_request_options_reach_the_trace_config(server: RecordingServer) -> None:
    """The TraceConfig route reads cost, key and bypass for the first hop and redirects."""
    hosts = ThrottlerMap(100, 60.0)
    config = throttle_trace_config(hosts)
    async with aiohttp.ClientSession(trace_configs=[config]) as session:
        with request_options(cost=3):
            assert await fetch(session, server.url("/redirect/1")) == 200
        with request_options(bypass=True):
            assert await fetch(session, server.url("/")) == 200
        with request_options(key="search.example"):
            assert await fetch(session, server.url("/redirect/1")) == 200
    own = hosts.throttler_for(server.url())
    keyed = hosts.throttler_for("http://search.example/")
    assert isinstance(own, Throttler)
    assert isinstance(keyed, Throttler)
    assert (used(own), used(keyed)) == (6, 2)


async def test_request_options_follow_tasks_started_in_the_block(server: RecordingServer) -> None:
    """Tasks gathered inside the block copy its options; a task started before does not."""
    throttler = Throttler(100, 60.0)
    gate = asyncio.Event()

    async def later() -> int:
        await gate.wait()
        return await fetch(session, server.url("/"))

    async with aiohttp.ClientSession(middlewares=[throttle_middleware(throttler)]) as session:
        before = asyncio.ensure_future(later())
        with request_options(cost=5):
            statuses = await asyncio.gather(*(fetch(session, server.url("/")) for _ in range(2)))
            gate.set()
            assert await before == 200
    assert statuses == [200, 200]
    assert used(throttler) == 11


async def test_the_session_honours_request_options_and_its_keywords_win(
    server: RecordingServer,
) -> None:
    """ThrottledClientSession reads request_options too; a call's keyword overrides it."""
    throttler = Throttler(100, 60.0)
    async with ThrottledClientSession(throttler=throttler) as session:
        with request_options(cost=4):
            assert await fetch(session, server.url("/redirect/1")) == 200
            assert used(throttler) == 8
            assert await fetch(session, server.url("/"), throttled_http_cost=1) == 200
            assert used(throttler) == 9
            assert await fetch(session, server.url("/"), throttled_http_bypass=True) == 200
        assert used(throttler) == 9


# -- the cost callable -------------------------------------------------------------------


async def test_the_cost_callable_sees_the_first_hop_as_aiohttp_will_send_it(
    server: RecordingServer,
) -> None:
    """The session weighs its first hop from a stand-in, later hops from the ClientRequest."""
    seen: list[tuple[bool, str, URL, str | None, str | None, bytes]] = []

    def weigh(request: RequestLike) -> int:
        body = request.body
        raw = body if isinstance(body, bytes) else body.decode().encode()
        seen.append(
            (
                isinstance(request, aiohttp.ClientRequest),
                request.method,
                request.url,
                request.headers.get("X-Tier"),
                request.headers.get("X-Call"),
                raw,
            )
        )
        return 2

    throttler = Throttler(100, 60.0)
    async with ThrottledClientSession(
        throttler=throttler, cost=weigh, headers={"X-Tier": "gold"}
    ) as session:
        url = server.url("/redirect/1")
        async with session.post(
            url, params={"q": "1"}, json={"a": 1}, headers={"X-Call": "yes"}
        ) as response:
            assert response.status == 200
        assert used(throttler) == 4
        assert await fetch(session, server.url("/"), throttled_http_cost=1) == 200  # not asked
    first, second = seen
    assert first == (False, "POST", URL(url + "?q=1"), "gold", "yes", b'{"a": 1}')
    assert second[:2] == (True, "GET")  # the 302 made it a GET without the body
    assert second[2].path == "/redirect/0"
    assert used(throttler) == 5


async def test_one_cost_callable_serves_the_middleware_and_the_session(
    server: RecordingServer,
) -> None:
    """The middleware passes each hop's ClientRequest to the same function."""
    kinds: list[str] = []

    def weigh(request: RequestLike) -> int:
        kinds.append(type(request).__name__)
        return 3 if request.url.path.startswith("/redirect") else 1

    throttler = Throttler(100, 60.0)
    middleware = throttle_middleware(throttler, cost=weigh)
    async with aiohttp.ClientSession(middlewares=[middleware]) as session:
        assert await fetch(session, server.url("/redirect/1")) == 200
        assert await fetch(session, server.url("/")) == 200
        with request_options(cost=7):
            assert await fetch(session, server.url("/")) == 200  # named: not asked
    assert kinds == ["ClientRequest"] * 3
    assert used(throttler) == 3 + 3 + 1 + 7


async def test_the_cost_callable_weighs_mocked_requests(mocked_aiohttp: Any) -> None:
    """Under aioresponses the session asks the cost callable once per call."""
    mocked_aiohttp.post("http://api.test/v1", payload={"ok": True}, repeat=True)
    throttler = Throttler(100, 60.0, budgets={"tokens": "1000/min"})
    async with (
        ThrottledClientSession(
            throttler=throttler, cost=lambda request: {"tokens": len(request.body.decode())}
        ) as session,
        session.post("http://api.test/v1", json={"prompt": "abc"}) as response,
    ):
        assert await response.json() == {"ok": True}
    assert tokens_in_use(throttler) == len('{"prompt": "abc"}')


# -- reconcile ---------------------------------------------------------------------------


async def _finish(response: aiohttp.ClientResponse, how: str) -> None:
    """Read the body to its end one way or another."""
    if how == "json":
        assert (await response.json())["usage"] == {"tokens": 37}
    elif how == "read":
        assert b'"usage"' in await response.read()
    elif how == "text":
        assert '"usage"' in await response.text()
    elif how == "iter_chunked":
        parts = [chunk async for chunk in response.content.iter_chunked(512)]
        assert len(parts) > 1
    elif how == "iter_any":
        assert b"".join([chunk async for chunk in response.content.iter_any()]).endswith(b"}}")
    else:
        assert [data async for data, _ in response.content.iter_chunks()]


@pytest.mark.parametrize("how", ["json", "read", "text", "iter_chunked", "iter_any", "chunks"])
@pytest.mark.parametrize("chunks", [1, 4], ids=["whole", "chunked"])
async def test_reconcile_reads_usage_once_the_body_is_read(
    server: RecordingServer, how: str, chunks: int
) -> None:
    """However the body is read to its end, reconcile sees its tail once and corrects."""
    throttler = Throttler(10, 60.0, budgets={"tokens": "1000/min"})
    reconcile = Usage()
    async with ThrottledClientSession(throttler=throttler, reconcile=reconcile) as session:
        url = server.url(f"/usage/37?chunks={chunks}")
        async with session.get(url, throttled_http_cost={"tokens": 80}) as response:
            assert tokens_in_use(throttler) == 80
            await _finish(response, how)
            assert tokens_in_use(throttler) == 37
            await response.read()  # reading again changes nothing
        assert len(reconcile.calls) == 1
        assert json.loads(reconcile.calls[0][1])["usage"] == {"tokens": 37}
        assert tokens_in_use(throttler) == 37


async def test_a_body_abandoned_half_way_is_not_reconciled(server: RecordingServer) -> None:
    """Releasing a response before its body ends leaves what was charged."""
    throttler = Throttler(10, 60.0, budgets={"tokens": "1000/min"})
    reconcile = Usage()
    async with ThrottledClientSession(throttler=throttler, reconcile=reconcile) as session:
        for leave in ("release", "close"):
            response = await session.get(
                server.url("/usage/37?chunks=8"), throttled_http_cost={"tokens": 80}
            )
            assert await response.content.read(100)
            getattr(response, leave)()
            with pytest.raises(aiohttp.ClientConnectionError):
                await response.content.read()
    assert reconcile.calls == []
    assert tokens_in_use(throttler) == 160


async def test_reconcile_through_the_middleware_and_for_empty_bodies(
    server: RecordingServer,
) -> None:
    """The middleware reconciles too; an empty body (a 302 hop, a HEAD) ends at once."""
    throttler = Throttler(10, 60.0, budgets={"tokens": "1000/min"})
    reconcile = Usage()
    middleware = throttle_middleware(throttler, reconcile=reconcile)
    async with aiohttp.ClientSession(middlewares=[middleware]) as session:
        with request_options(cost={"tokens": 80}):
            async with session.get(server.url("/usage/37?chunks=3")) as response:
                lines = [line async for line in response.content]
                assert lines[-1].endswith(b"}}")
        assert tokens_in_use(throttler) == 37
        async with session.head(server.url("/")) as response:
            assert response.status == 200
        assert await fetch(session, server.url("/redirect/1")) == 200
    assert [status for status, _ in reconcile.calls] == [200, 200, 302, 200]
    assert len(reconcile.reconciled) == 2  # the JSON one and the "ok" of /redirect/0


async def test_reconcile_of_a_mocked_json_body() -> None:
    """Under aioresponses the session's own journey reconciles the mocked body."""
    throttler = Throttler(10, 60.0, budgets={"tokens": "1000/min"})
    reconcile = Usage()
    with aioresponses_compat() as mocked:
        mocked.post("http://llm.test/", payload={"usage": {"tokens": 12}})
        async with (
            ThrottledClientSession(throttler=throttler, reconcile=reconcile) as session,
            session.post(
                "http://llm.test/", json={}, throttled_http_cost={"tokens": 500}
            ) as response,
        ):
            assert tokens_in_use(throttler) == 500
            assert (await response.json())["usage"] == {"tokens": 12}
    assert tokens_in_use(throttler) == 12
    assert len(reconcile.calls) == 1


async def test_without_reconcile_the_body_is_aiohttps_own(server: RecordingServer) -> None:
    """With no reconcile callable, response.content is aiohttp's StreamReader untouched."""
    async with (
        ThrottledClientSession(rate_limit=10) as session,
        session.get(server.url("/")) as response,
    ):
        assert type(response.content) is aiohttp.StreamReader


async def test_an_error_in_reconcile_reaches_the_reader(server: RecordingServer) -> None:
    """A reconcile callable that raises makes the read that ended the body raise."""

    def broken(response: aiohttp.ClientResponse, tail: bytes) -> Mapping[str, int] | None:
        raise LookupError("no usage")

    throttler = Throttler(10, 60.0, budgets={"tokens": "1000/min"})
    async with (
        ThrottledClientSession(throttler=throttler, reconcile=broken) as session,
        session.get(server.url("/usage/3?chunks=2")) as response,
    ):
        with pytest.raises(LookupError, match="no usage"):
            await response.json()


@pytest.mark.looptime
async def test_the_anthropic_preset_reconciles_an_aiohttp_response() -> None:
    """throttled_http.llm's cost and reconcile serve the session: output credited back."""
    limits = anthropic_limits(rpm=50, itpm=10_000, otpm=2_000)
    throttler = limits["throttler"]
    assert isinstance(throttler, Throttler)
    reply = {"content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 9,
             "output_tokens": 7}}  # fmt: skip
    with aioresponses_compat() as mocked:
        mocked.post("https://api.anthropic.test/v1/messages", payload=reply)
        async with ThrottledClientSession(
            throttler=throttler, cost=limits["cost"], reconcile=limits["reconcile"]
        ) as session:
            body = {"max_tokens": 500, "messages": [{"role": "user", "content": "x" * 40}]}
            async with session.post(
                "https://api.anthropic.test/v1/messages", json=body
            ) as response:
                in_use = throttler.statistics().budgets_in_use
                assert in_use == pytest.approx({"input_tokens": 10, "output_tokens": 500})
                await response.json()
    # No virtual time passed: the buckets have not refilled, so these are the charges.
    in_use = throttler.statistics().budgets_in_use
    assert in_use == pytest.approx({"input_tokens": 9, "output_tokens": 7})


# -- construction ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cost", "reconcile"])
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: ThrottledClientSession(**kw),
        lambda **kw: throttle_middleware(Throttler(1), **kw),
        lambda **kw: ThrottleMiddleware(Throttler(1), **kw),
    ],
    ids=["session", "throttle_middleware", "ThrottleMiddleware"],
)
async def test_a_callable_that_is_not_one_is_a_type_error_naming_it(
    make: Callable[..., object], name: str
) -> None:
    """cost=3 or reconcile="usage" is refused at construction, with the argument's name."""
    with pytest.raises(TypeError, match=rf"^{name} must be a callable or None, got 3"):
        make(**{name: 3})


# -- virtual time ------------------------------------------------------------------------


@pytest.mark.looptime
async def test_a_tokens_budget_spaces_mocked_requests(max_in_window: Callable[..., int]) -> None:
    """60-token requests on a 100-tokens-per-second budget go one per second, on looptime."""
    loop = asyncio.get_running_loop()
    times: list[float] = []

    def record(url: Any, **kwargs: Any) -> None:
        times.append(loop.time())

    throttler = Throttler(100, 1.0, budgets={"tokens": "100/s"})
    with aioresponses_compat() as mocked:
        mocked.get("http://llm.test/", callback=record, repeat=True)
        async with ThrottledClientSession(throttler=throttler) as session:
            start = loop.time()
            statuses = await asyncio.gather(
                *(
                    fetch(session, "http://llm.test/", throttled_http_cost={"tokens": 60})
                    for _ in range(4)
                )
            )
    assert statuses == [200] * 4
    offsets = [t - start for t in times]
    assert max_in_window(offsets, 1.0, [60] * 4) <= 100
    assert offsets[-1] >= 3.0 - 1e-6
    assert offsets[-1] < 3.5
