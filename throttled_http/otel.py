"""OpenTelemetry metrics: the running totals of throttlers, maps and feedback policies.

```python
from throttled_http import FeedbackPolicy, ThrottlerMap
from throttled_http.aiohttp import ThrottledClientSession
from throttled_http.otel import instrument

hosts = ThrottlerMap("10/s")
policy = FeedbackPolicy(adapt=True, retries=3)
instrument(hosts, feedback=policy)  # the global MeterProvider's meter "throttled_http"
session = ThrottledClientSession(throttler=hosts, feedback=policy)
```

[`instrument`][throttled_http.otel.instrument] registers observable instruments that read
the objects' snapshots when a metric reader collects: nothing is measured on the request
path beyond the integer adds the throttlers make anyway, and nothing runs between
collections. The instruments, all in the `throttled_http` namespace (OpenTelemetry's
semantic conventions define none for a client-side rate limiter), with their units as the
conventions write them:

| instrument | kind | unit | what | from |
| --- | --- | --- | --- | --- |
| `throttled_http.admitted_requests` | counter | `{request}` | entries admitted | throttler, map |
| `throttled_http.wait.time` | counter | `s` | seconds spent queued for admission | throttler, map |
| `throttled_http.refused_requests` | counter | `{request}` | refused for load (429, 503) | policy |
| `throttled_http.retried_requests` | counter | `{request}` | retries granted | policy |
| `throttled_http.pauses` | counter | `{pause}` | pauses started | policy |
| `throttled_http.pause.time` | counter | `s` | seconds of pause added | policy |
| `throttled_http.rate_cuts` | counter | `{cut}` | congestion events that cut the pace | policy |
| `throttled_http.pace` | gauge | `{request}/s` | pace in force (learned, or configured) | policy |

A map's and a policy's figures carry the attribute `throttled_http.key`, the key of the
host (`"https://api.example.com:443"` with the default scope); a single throttler's carry
none. `attributes=` adds your own to every figure (to tell two clients apart, say).

Install with `pip install 'throttled_http[otel]'` (the OpenTelemetry API); export with the
SDK and an exporter of your choice.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Final, final

from ._exceptions import missing_extra

try:
    from opentelemetry import metrics
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra(__name__, "opentelemetry-api", "otel") from exc

from ._feedback import FeedbackPolicy
from ._front import ThrottlerStatistics
from ._hostmap import BaseThrottlerMap
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from ._hostbook import FeedbackStatistics, KeyFeedbackStatistics
    from ._hostmap import KeyStatistics, SyncThrottlerMap, ThrottlerMap
    from ._protocols import SyncThrottlerLike, ThrottlerLike

__all__ = [
    "ADMITTED",
    "KEY_ATTRIBUTE",
    "PACE",
    "PAUSES",
    "PAUSE_TIME",
    "RATE_CUTS",
    "REFUSED",
    "RETRIED",
    "WAIT_TIME",
    "Instrumentation",
    "instrument",
]

ADMITTED: Final = "throttled_http.admitted_requests"
"""Counter, `{request}`: entries admitted (`ThrottlerStatistics.admitted`)."""
WAIT_TIME: Final = "throttled_http.wait.time"
"""Counter, `s`: seconds spent queued (`ThrottlerStatistics.waited_seconds`)."""
REFUSED: Final = "throttled_http.refused_requests"
"""Counter, `{request}`: responses refused for load (`KeyFeedbackStatistics.refusals`)."""
RETRIED: Final = "throttled_http.retried_requests"
"""Counter, `{request}`: retries granted (`KeyFeedbackStatistics.retries`)."""
PAUSES: Final = "throttled_http.pauses"
"""Counter, `{pause}`: pauses started (`KeyFeedbackStatistics.pauses`)."""
PAUSE_TIME: Final = "throttled_http.pause.time"
"""Counter, `s`: seconds of pause added (`KeyFeedbackStatistics.paused_seconds`)."""
RATE_CUTS: Final = "throttled_http.rate_cuts"
"""Counter, `{cut}`: congestion events that cut the pace (`KeyFeedbackStatistics.rate_cuts`)."""
PACE: Final = "throttled_http.pace"
"""Gauge, `{request}/s`: the learned pace, else the shortest-window rate in force."""
KEY_ATTRIBUTE: Final = "throttled_http.key"
"""The attribute naming the key (host) of a map's or a policy's figures."""

_Attributes = dict[str, Any]
_Reading = tuple[float, _Attributes]


@final
class Instrumentation:
    """What [`instrument`][throttled_http.otel.instrument] returns: the objects it observes.

    It reports while they live and until [`close`][throttled_http.otel.Instrumentation.close];
    `with instrument(...):` closes it on exit. It holds the throttler or map weakly (its
    figures stop when the program drops it) and a `FeedbackPolicy`, which cannot be weakly
    referenced, until closed.
    """

    __slots__ = ("__weakref__", "_attributes", "_closed", "_feedback", "_registry", "_throttler")

    _registry: _Registry
    _throttler: Callable[[], object | None] | None
    _feedback: Callable[[], FeedbackPolicy | None] | None
    _attributes: _Attributes
    _closed: bool

    def __init__(self) -> None:
        raise TypeError("an Instrumentation is made by throttled_http.otel.instrument()")

    @classmethod
    def _start(
        cls,
        registry: _Registry,
        throttler: Callable[[], object | None] | None,
        feedback: Callable[[], FeedbackPolicy | None] | None,
        attributes: _Attributes,
    ) -> Instrumentation:
        self = cls.__new__(cls)
        self._registry = registry
        self._throttler = throttler
        self._feedback = feedback
        self._attributes = attributes
        self._closed = False
        registry.add(self)
        return self

    @property
    def closed(self) -> bool:
        """Whether it stopped reporting: closed, or every object it observed is gone."""
        if self._closed:
            return True
        observed = [get for get in (self._throttler, self._feedback) if get is not None]
        return all(get() is None for get in observed)

    def close(self) -> None:
        """Stop reporting these objects' figures, and let go of them; idempotent."""
        self._closed = True
        self._throttler = self._feedback = None
        self._registry.remove(self)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "reporting"
        return f"<Instrumentation {state}>"

    # -- what the registry's callbacks read, once per collection ------------------------

    def _throttler_readings(self) -> tuple[list[_Reading], list[_Reading]]:
        """(admitted, waited seconds) figures of the throttler or of each key of the map."""
        target = None if self._throttler is None else self._throttler()
        admitted: list[_Reading] = []
        waited: list[_Reading] = []
        if target is None:
            return admitted, waited
        if isinstance(target, BaseThrottlerMap):
            keys: Mapping[str, KeyStatistics] = target.key_statistics()
            for key, entry in keys.items():
                snapshot = entry.statistics
                if snapshot is not None:
                    attributes = {**self._attributes, KEY_ATTRIBUTE: key}
                    admitted.append((snapshot.admitted, attributes))
                    waited.append((snapshot.waited_seconds, attributes))
            return admitted, waited
        snapshot = getattr(target, "statistics", lambda: None)()
        if isinstance(snapshot, ThrottlerStatistics):
            admitted.append((snapshot.admitted, self._attributes))
            waited.append((snapshot.waited_seconds, self._attributes))
        return admitted, waited

    def _feedback_readings(self) -> Iterator[tuple[KeyFeedbackStatistics, _Attributes]]:
        """Each key's feedback counters, with the attributes to report them under."""
        policy = None if self._feedback is None else self._feedback()
        if policy is None:
            return
        statistics: FeedbackStatistics = policy.statistics()
        for key, counters in statistics.by_key.items():
            yield counters, {**self._attributes, KEY_ATTRIBUTE: key}


def instrument(
    throttler: ThrottlerLike | SyncThrottlerLike | ThrottlerMap | SyncThrottlerMap | None = None,
    *,
    feedback: FeedbackPolicy | None = None,
    meter: metrics.Meter | None = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Instrumentation:
    """Export the running totals of `throttler` and `feedback` through OpenTelemetry.

    Registers the package's observable instruments on `meter` (once per meter) and has
    them read these objects' snapshots at each collection: a
    [`ThrottlerMap`][throttled_http.ThrottlerMap]'s or a
    [`SyncThrottlerMap`][throttled_http.SyncThrottlerMap]'s per key (every key it holds,
    from `key_statistics()`), a throttler's as one series (from `statistics()`), a
    [`FeedbackPolicy`][throttled_http.FeedbackPolicy]'s per key (the keys its
    `statistics().by_key` holds). Call it once per object; several calls on one meter
    report side by side (give them `attributes` that tell them apart).

    A key the map forgot (idle, past its `max_keys`) or the policy dropped (past its own
    `max_keys`) is no longer reported; its last figures stay wherever the exporter sent
    them. A counter that restarts from 0 for a key seen again reads as a reset, which
    backends handle. Counting costs nothing on the request path beyond an integer add;
    a collection takes O(number of keys) time.

    Args:
        throttler: a map, or a throttler whose `statistics()` gives a
            [`ThrottlerStatistics`][throttled_http.ThrottlerStatistics]
            ([`Throttler`][throttled_http.Throttler],
            [`SyncThrottler`][throttled_http.SyncThrottler],
            [`RedisThrottler`][throttled_http.redis.RedisThrottler]). Held weakly.
        feedback: a policy whose refusals, retries, pauses and pace to report. Held until
            [`close`][throttled_http.otel.Instrumentation.close].
        meter: the meter to register on (default: the global `MeterProvider`'s
            `"throttled_http"` meter, at this package's version).
        attributes: added to every figure reported for these objects.

    Returns:
        The handle: [`close`][throttled_http.otel.Instrumentation.close] it to stop.

    Raises:
        TypeError: when neither `throttler` nor `feedback` is given, or for an object
            that is neither.
    """
    if throttler is None and feedback is None:
        raise TypeError("instrument() needs a throttler, a map or feedback=, got neither")
    if throttler is not None and not (
        isinstance(throttler, BaseThrottlerMap) or callable(getattr(throttler, "statistics", None))
    ):
        raise TypeError(
            "throttler must be a ThrottlerMap, a SyncThrottlerMap or a throttler with "
            f"statistics(), got {throttler!r}"
        )
    if feedback is not None and not isinstance(feedback, FeedbackPolicy):
        raise TypeError(f"feedback must be a FeedbackPolicy, got {feedback!r}")
    if meter is None:
        meter = metrics.get_meter("throttled_http", __version__)
    extra: _Attributes = {}
    for name, value in (attributes or {}).items():  # user input: checked at run time
        checked: object = name
        if not isinstance(checked, str) or not isinstance(value, (str, int, float, bool)):
            raise TypeError(
                f"attributes must map str to str, int, float or bool, got {name!r}: {value!r}"
            )
        extra[name] = value
    registry = _Registry.of(meter)
    return Instrumentation._start(registry, _held(throttler), _strong(feedback), extra)


def _held(obj: object | None) -> Callable[[], object | None] | None:
    """A weak reference to `obj` if it takes one, else a strong one."""
    if obj is None:
        return None
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def _strong(policy: FeedbackPolicy | None) -> Callable[[], FeedbackPolicy | None] | None:
    """A strong reference: a policy takes no weak one."""
    if policy is None:
        return None
    return lambda: policy


@final
class _Registry:
    """The instruments of one meter, reading every live instrumentation registered on it."""

    __slots__ = ("__weakref__", "_cache", "_handles", "_lock", "_served")

    _by_meter: Final[weakref.WeakKeyDictionary[Any, _Registry]] = weakref.WeakKeyDictionary()
    _strong_meters: Final[dict[int, tuple[Any, _Registry]]] = {}
    _meters_lock: Final = threading.Lock()

    def __init__(self, meter: metrics.Meter) -> None:
        self._handles: list[Instrumentation] = []
        self._lock = threading.Lock()
        self._served: set[str] = set()
        self._cache: list[tuple[Instrumentation, list[_Reading], list[_Reading], list[Any]]] = []
        counters = (
            (ADMITTED, "{request}", "Requests (entries) the throttler admitted."),
            (WAIT_TIME, "s", "Seconds spent queued for admission, by every waiter."),
            (REFUSED, "{request}", "Responses refused for load (429 or 503)."),
            (RETRIED, "{request}", "Retries of refused requests granted."),
            (PAUSES, "{pause}", "Pauses started at a server's request."),
            (PAUSE_TIME, "s", "Seconds of pause added."),
            (RATE_CUTS, "{cut}", "Congestion events that lowered the pace."),
        )
        for name, unit, description in counters:
            meter.create_observable_counter(
                name, callbacks=[self._callback(name)], unit=unit, description=description
            )
        meter.create_observable_gauge(
            PACE,
            callbacks=[self._callback(PACE)],
            unit="{request}/s",
            description="The pace in force: the learned pace, else the configured rate.",
        )

    @classmethod
    def of(cls, meter: metrics.Meter) -> _Registry:
        """The registry of `meter`, made (instruments and all) on first use."""
        with cls._meters_lock:
            try:
                registry = cls._by_meter.get(meter)
            except TypeError:  # a meter that takes no weak reference: kept for good
                held = cls._strong_meters.get(id(meter))
                registry = None if held is None else held[1]
                if registry is None:
                    registry = cls(meter)
                    cls._strong_meters[id(meter)] = (meter, registry)
                return registry
            if registry is None:
                registry = cls._by_meter[meter] = cls(meter)
            return registry

    def add(self, handle: Instrumentation) -> None:
        with self._lock:
            self._handles.append(handle)

    def remove(self, handle: Instrumentation) -> None:
        with self._lock:
            if handle in self._handles:
                self._handles.remove(handle)

    def _callback(self, name: str) -> Callable[[metrics.CallbackOptions], Iterable[Any]]:
        def observe(options: metrics.CallbackOptions) -> Iterable[Any]:
            return [metrics.Observation(value, attrs) for value, attrs in self._read(name)]

        return observe

    def _read(self, name: str) -> list[_Reading]:
        """The figures of one instrument, from snapshots taken once per collection."""
        with self._lock:
            if not self._served or name in self._served:
                self._refresh()  # a new collection: the instruments are being read again
            self._served.add(name)
            cache = self._cache
        readings: list[_Reading] = []
        for _handle, admitted, waited, feedback in cache:
            if name == ADMITTED:
                readings += admitted
            elif name == WAIT_TIME:
                readings += waited
            else:
                for counters, attrs in feedback:
                    value = _feedback_value(name, counters)
                    if value is not None:
                        readings.append((value, attrs))
        return readings

    def _refresh(self) -> None:
        """Snapshot every live instrumentation; forget those whose objects are gone."""
        self._served = set()
        self._handles = [h for h in self._handles if not h.closed]
        self._cache = [
            (handle, *handle._throttler_readings(), list(handle._feedback_readings()))
            for handle in self._handles
        ]


def _feedback_value(name: str, counters: KeyFeedbackStatistics) -> float | None:
    if name == REFUSED:
        return counters.refusals
    if name == RETRIED:
        return counters.retries
    if name == PAUSES:
        return counters.pauses
    if name == PAUSE_TIME:
        return counters.paused_seconds
    if name == RATE_CUTS:
        return counters.rate_cuts
    # PACE: the learned pace while it holds the host below its limits, else the rate in
    # force with the shortest window (the one the pace is measured in); None: no response
    # read yet, nothing to report.
    if counters.pace is not None:
        return counters.pace.per_second
    if counters.rates:
        return min(counters.rates, key=lambda rate: rate.period).per_second
    return None
