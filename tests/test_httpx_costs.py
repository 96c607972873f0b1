"""Costs per unit and reconciliation through the httpx and httpx2 transports (one core).

Each test runs against both libraries, on their own `MockTransport`, on virtual time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import httpx2
import pytest

import throttled_http.httpx
import throttled_http.httpx2
from throttled_http import SyncThrottler, Throttler
from throttled_http.llm import anthropic_limits, read_usage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping
    from types import ModuleType

pytestmark = pytest.mark.looptime(idle_timeout=1.0, idle_step=0.01)

LIBRARIES = [
    pytest.param(httpx, throttled_http.httpx, id="httpx"),
    pytest.param(httpx2, throttled_http.httpx2, id="httpx2"),
]

USAGE = json.dumps({"usage": {"input_tokens": 12, "output_tokens": 30}}).encode()


def usage_of(response: object, tail: bytes) -> Mapping[str, int] | None:
    usage = read_usage(tail)
    return {"tokens": usage["output_tokens"]} if "output_tokens" in usage else None


def tokens_asked(request: Any) -> dict[str, int]:
    return {"tokens": int(request.headers.get("x-tokens", "100"))}


class _Chunks:
    """A streamed body, in two chunks (both libraries' stream protocols)."""

    def __init__(self, lib: ModuleType, body: bytes) -> None:
        self.body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.body[:10]
        yield self.body[10:]

    def __iter__(self) -> Iterator[bytes]:
        yield self.body[:10]
        yield self.body[10:]


def streamed(lib: ModuleType, body: bytes, *, sync: bool = False) -> Any:
    base = lib.SyncByteStream if sync else lib.AsyncByteStream
    kind = type("Chunks", (_Chunks, base), {})
    return kind(lib, body)


def app(lib: ModuleType, *, stream: bool = False, sync: bool = False) -> Callable[[Any], Any]:
    def handle(request: Any) -> Any:
        if stream:
            return lib.Response(200, stream=streamed(lib, USAGE, sync=sync))
        return lib.Response(200, content=USAGE)

    return handle


@pytest.mark.parametrize(("lib", "edge"), LIBRARIES)
async def test_the_cost_callable_charges_every_unit(lib: ModuleType, edge: ModuleType) -> None:
    throttler = Throttler(10, 60.0, budgets={"tokens": "250/min"})
    transport = edge.ThrottledTransport(
        lib.MockTransport(app(lib)), throttler=throttler, cost=tokens_asked
    )
    async with lib.AsyncClient(transport=transport) as client:
        await client.get("http://a.test/")
        await client.get("http://a.test/", headers={"x-tokens": "150"})
        assert throttler.statistics().budgets_in_use == {"tokens": 250.0}
        # An extension wins over the callable, and may be costs per unit too.
        await client.get("http://a.test/", extensions={"throttled_http_cost": {"tokens": 0}})
    assert throttler.statistics().budgets_in_use == {"tokens": 250.0}


@pytest.mark.parametrize(("lib", "edge"), LIBRARIES)
@pytest.mark.parametrize("stream", [False, True], ids=["in-memory", "streamed"])
async def test_reconcile_reads_the_usage_at_the_bodys_end(
    lib: ModuleType, edge: ModuleType, stream: bool
) -> None:
    throttler = Throttler(10, 60.0, budgets={"tokens": "1000/min"})
    transport = edge.ThrottledTransport(
        lib.MockTransport(app(lib, stream=stream)),
        throttler=throttler,
        cost=tokens_asked,
        reconcile=usage_of,
    )
    async with lib.AsyncClient(transport=transport) as client:
        async with client.stream("GET", "http://a.test/") as response:
            assert throttler.statistics().budgets_in_use == {
                "tokens": 30.0 if not stream else 100.0
            }
            await response.aread()
        assert throttler.statistics().budgets_in_use == {"tokens": 30.0}


@pytest.mark.parametrize(("lib", "edge"), LIBRARIES)
async def test_an_abandoned_stream_keeps_its_charge(lib: ModuleType, edge: ModuleType) -> None:
    throttler = Throttler(10, 60.0, budgets={"tokens": "1000/min"})
    transport = edge.ThrottledTransport(
        lib.MockTransport(app(lib, stream=True)),
        throttler=throttler,
        cost=tokens_asked,
        reconcile=usage_of,
    )
    async with (
        lib.AsyncClient(transport=transport) as client,
        client.stream("GET", "http://a.test/"),
    ):
        pass  # closed unread
    stats = throttler.statistics()
    assert stats.budgets_in_use == {"tokens": 100.0}
    assert (stats.open, stats.in_flight) == (0, 0)


@pytest.mark.parametrize(("lib", "edge"), LIBRARIES)
def test_the_sync_transport_reconciles(lib: ModuleType, edge: ModuleType) -> None:
    throttler = SyncThrottler(10, 60.0, budgets={"tokens": "1000/min"})
    transport = edge.SyncThrottledTransport(
        lib.MockTransport(app(lib, stream=True, sync=True)),
        throttler=throttler,
        cost=tokens_asked,
        reconcile=usage_of,
    )
    with lib.Client(transport=transport) as client:
        assert client.get("http://a.test/").status_code == 200
    assert throttler.statistics().budgets_in_use == {"tokens": 30.0}


@pytest.mark.parametrize(("lib", "edge"), LIBRARIES)
async def test_a_failing_reconcile_gives_the_slot_back(lib: ModuleType, edge: ModuleType) -> None:
    def broken(response: object, tail: bytes) -> Mapping[str, int]:
        return {"images": 1}  # a unit the throttler has no budget for

    throttler = Throttler(10, 60.0, max_concurrency=1, budgets={"tokens": "1000/min"})
    transport = edge.ThrottledTransport(
        lib.MockTransport(app(lib)), throttler=throttler, reconcile=broken
    )
    async with lib.AsyncClient(transport=transport) as client:
        for _ in range(3):
            with pytest.raises(ValueError, match="no budget for: 'images'"):
                await client.get("http://a.test/")
    assert throttler.statistics().in_flight == 0


@pytest.mark.parametrize(("lib", "edge"), LIBRARIES)
async def test_a_refused_attempt_sent_again_is_credited(lib: ModuleType, edge: ModuleType) -> None:
    answers = iter([429, 200])

    def handle(request: Any) -> Any:
        status = next(answers)
        if status == 429:
            return lib.Response(429, headers={"retry-after": "1"}, content=b"{}")
        return lib.Response(200, content=USAGE)

    limits = anthropic_limits(rpm=10, itpm=10_000, otpm=1_000, period=60.0)
    transport = edge.ThrottledTransport(lib.MockTransport(handle), **limits)
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 500}
    async with lib.AsyncClient(transport=transport) as client:
        response = await client.post("http://a.test/v1/messages", json=body)
    assert response.status_code == 200
    # The refused attempt was credited everything; the one that went through, its usage.
    used = limits["throttler"].statistics().budgets_in_use
    assert used == {"input_tokens": 12.0, "output_tokens": 30.0}


@pytest.mark.parametrize(("lib", "edge"), LIBRARIES)
def test_callables_are_checked_at_construction(lib: ModuleType, edge: ModuleType) -> None:
    with pytest.raises(TypeError, match="cost must be a callable or None"):
        edge.ThrottledTransport(cost=3)
    with pytest.raises(TypeError, match="reconcile must be a callable or None"):
        edge.SyncThrottledTransport(reconcile="usage")
