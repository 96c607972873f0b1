"""throttled_http.otel: the running totals, exported through the OpenTelemetry metrics API.

Read back with the SDK's ``InMemoryMetricReader``; time is looptime's virtual clock, so the
seconds waited are exact.
"""

from __future__ import annotations

import asyncio
import gc
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, Sum

from throttled_http import (
    FeedbackPolicy,
    SyncThrottler,
    SyncThrottlerMap,
    Throttler,
    ThrottlerMap,
    __version__,
    otel,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

A = "https://a.example:443"
B = "https://b.example:443"
Points = dict[str, list[tuple[dict[str, Any], float]]]


@pytest.fixture
def reader() -> InMemoryMetricReader:
    """A reader that collects on demand."""
    return InMemoryMetricReader()


@pytest.fixture
def meter(reader: InMemoryMetricReader) -> Meter:
    """A meter of a provider of its own, read by ``reader``."""
    return MeterProvider(metric_readers=[reader]).get_meter("test")


def collect(reader: InMemoryMetricReader) -> Points:
    """Every instrument's data points, as (attributes, value) pairs."""
    points: Points = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [
                    (dict(point.attributes or {}), point.value)  # type: ignore[union-attr]
                    for point in metric.data.data_points
                ]
    return points


async def enter(throttler: Throttler, count: int) -> None:
    """``count`` tasks enter ``throttler`` at once, each through ``async with``."""

    async def one() -> None:
        async with throttler:
            pass

    await asyncio.gather(*(one() for _ in range(count)))


@pytest.mark.looptime
async def test_a_throttler_reports_entries_admitted_and_seconds_waited(
    meter: Meter, reader: InMemoryMetricReader
) -> None:
    """One series per throttler: three entries at 1/s admitted, having waited 0 + 1 + 2 s."""
    throttler = Throttler(1, 1.0)
    otel.instrument(throttler, meter=meter)
    await enter(throttler, 3)
    points = collect(reader)
    assert points[otel.ADMITTED] == [({}, 3)]
    [(attributes, waited)] = points[otel.WAIT_TIME]
    assert attributes == {}
    assert waited == pytest.approx(3.0, abs=1e-3)


@pytest.mark.looptime
async def test_a_map_reports_each_key(meter: Meter, reader: InMemoryMetricReader) -> None:
    """A map's figures carry the key: three entries for one host at 2/s, one for another."""
    hosts = ThrottlerMap(2, 1.0)
    otel.instrument(hosts, meter=meter)
    for _ in range(3):
        async with hosts.limit(f"{A}/x"):
            pass
    async with hosts.limit(f"{B}/y"):
        pass
    points = collect(reader)
    admitted = {attrs[otel.KEY_ATTRIBUTE]: value for attrs, value in points[otel.ADMITTED]}
    assert admitted == {A: 3, B: 1}
    waited = {attrs[otel.KEY_ATTRIBUTE]: value for attrs, value in points[otel.WAIT_TIME]}
    assert waited[A] == pytest.approx(1.0, abs=1e-3)
    assert waited[B] == 0


def test_a_policy_reports_refusals_retries_pauses_and_pace(
    meter: Meter, reader: InMemoryMetricReader
) -> None:
    """A policy's per-host counters, and the pace in force, each under the host's key."""
    policy = FeedbackPolicy(retries=2)
    throttler = SyncThrottler(10, 1.0)
    otel.instrument(feedback=policy, meter=meter)
    delay = policy.observe(throttler, A, 429, {"Retry-After": "2"})
    assert policy.retry_delay("GET", 429, 1, delay, key=A) == 2.0
    policy.observe(throttler, B, 200, {})
    points = collect(reader)
    key = {otel.KEY_ATTRIBUTE: A}
    assert (key, 1) in points[otel.REFUSED]
    assert (key, 1) in points[otel.RETRIED]
    assert (key, 1) in points[otel.PAUSES]
    assert (key, 2.0) in points[otel.PAUSE_TIME]
    assert (key, 0) in points[otel.RATE_CUTS]
    assert ({otel.KEY_ATTRIBUTE: B}, 0) in points[otel.REFUSED]
    assert (key, 10.0) in points[otel.PACE]  # no learned pace: the configured 10/s


def test_instruments_are_counters_and_a_gauge_with_their_units(
    meter: Meter, reader: InMemoryMetricReader
) -> None:
    """Totals are monotonic sums in seconds or counts; the pace is a gauge."""
    policy = FeedbackPolicy()
    throttler = SyncThrottler(10, 1.0)
    throttler.acquire()
    policy.observe(throttler, A, 429, {"Retry-After": "1"})
    otel.instrument(throttler, feedback=policy, meter=meter)
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    units = {name: metric.unit for name, metric in metrics.items()}
    assert units == {
        otel.ADMITTED: "{request}",
        otel.WAIT_TIME: "s",
        otel.REFUSED: "{request}",
        otel.RETRIED: "{request}",
        otel.PAUSES: "{pause}",
        otel.PAUSE_TIME: "s",
        otel.RATE_CUTS: "{cut}",
        otel.PACE: "{request}/s",
    }
    for name, metric in metrics.items():
        if name == otel.PACE:
            assert isinstance(metric.data, Gauge)
        else:
            assert isinstance(metric.data, Sum)
            assert metric.data.is_monotonic, name


def test_sync_throttlers_and_maps_report_too(meter: Meter, reader: InMemoryMetricReader) -> None:
    """The threaded twins report the same figures."""
    hosts = SyncThrottlerMap(5, 1.0)
    otel.instrument(hosts, meter=meter, attributes={"client": "threads"})
    for url in (f"{A}/1", f"{A}/2", f"{B}/3"):
        throttler = hosts.throttler_for(url)
        assert throttler is not None
        throttler.open_entry().close()
    admitted = collect(reader)[otel.ADMITTED]
    assert sorted(admitted, key=str) == sorted(
        [
            ({"client": "threads", otel.KEY_ATTRIBUTE: A}, 2),
            ({"client": "threads", otel.KEY_ATTRIBUTE: B}, 1),
        ],
        key=str,
    )


def test_several_instrumentations_report_side_by_side(
    meter: Meter, reader: InMemoryMetricReader
) -> None:
    """Two throttlers on one meter, told apart by their attributes; a second read is fresh."""
    one, two = SyncThrottler(10, 1.0), SyncThrottler(10, 1.0)
    otel.instrument(one, meter=meter, attributes={"client": "one"})
    otel.instrument(two, meter=meter, attributes={"client": "two"})
    one.acquire()
    assert sorted(collect(reader)[otel.ADMITTED], key=str) == [
        ({"client": "one"}, 1),
        ({"client": "two"}, 0),
    ]
    two.acquire()
    two.acquire()
    assert sorted(collect(reader)[otel.ADMITTED], key=str) == [
        ({"client": "one"}, 1),
        ({"client": "two"}, 2),
    ]


def test_a_dropped_throttler_stops_reporting(meter: Meter, reader: InMemoryMetricReader) -> None:
    """The throttler is held weakly: once the program drops it, its figures stop."""
    throttler = SyncThrottler(10, 1.0)
    handle = otel.instrument(throttler, meter=meter)
    assert collect(reader)[otel.ADMITTED] == [({}, 0)]
    del throttler
    gc.collect()
    assert handle.closed
    assert collect(reader).get(otel.ADMITTED, []) == []


def test_close_stops_reporting_and_lets_go(meter: Meter, reader: InMemoryMetricReader) -> None:
    """close() (or leaving ``with``) ends the report; it is idempotent."""
    policy = FeedbackPolicy()
    policy.observe(None, A, 429, {})
    with otel.instrument(feedback=policy, meter=meter) as handle:
        assert collect(reader)[otel.REFUSED] == [({otel.KEY_ATTRIBUTE: A}, 1)]
    assert handle.closed
    handle.close()
    assert collect(reader).get(otel.REFUSED, []) == []
    assert "closed" in repr(handle)


def test_the_default_meter_is_the_packages(monkeypatch: pytest.MonkeyPatch, meter: Meter) -> None:
    """Without meter=, the global provider's "throttled_http" meter at this version is used."""
    asked: list[tuple[object, ...]] = []

    def get_meter(*args: object) -> Meter:
        asked.append(args)
        return meter

    monkeypatch.setattr("opentelemetry.metrics.get_meter", get_meter)
    otel.instrument(SyncThrottler(1, 1.0)).close()
    assert asked == [("throttled_http", __version__)]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        pytest.param((), {}, "got neither", id="nothing"),
        pytest.param((object(),), {}, "statistics()", id="not-a-throttler"),
        pytest.param((), {"feedback": object()}, "FeedbackPolicy", id="not-a-policy"),
        pytest.param(
            (SyncThrottler(1, 1.0),), {"attributes": {"a": [1]}}, "attributes", id="attribute"
        ),
    ],
)
def test_what_it_cannot_observe_is_a_type_error(
    meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    """Each refusal names what was wrong."""
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        otel.instrument(*args, meter=meter, **kwargs)


def test_a_handle_comes_from_instrument_only() -> None:
    """Instrumentation is made by instrument(), never directly."""
    with pytest.raises(TypeError, match="instrument"):
        otel.Instrumentation()
