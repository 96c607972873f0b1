"""ThrottlerMap: scopes, overrides, limits per key, bounded memory that never loosens a limit."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

import httpx
import looptime
import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import throttled_http._sync
from throttled_http import (
    InvalidRateError,
    InvalidURLError,
    Rate,
    SyncThrottler,
    SyncThrottlerLike,
    SyncThrottlerMap,
    Throttler,
    ThrottlerBackend,
    ThrottlerLike,
    ThrottlerMap,
    ThrottlerMapStatistics,
    ThrottlerStatistics,
)
from throttled_http._holding import Holds
from throttled_http._pipeline import Pipeline

if TYPE_CHECKING:
    from collections.abc import Sequence


@pytest.fixture(autouse=True, scope="module")
def _no_implicit_event_loop() -> None:
    """Stop pytest-asyncio leaking an implicit loop when a sync test runs before an async one.

    On Python 3.11 its ``asyncio.get_event_loop()`` call creates a loop that nobody closes;
    the ResourceWarning then surfaces in whichever later test triggers garbage collection.
    """
    asyncio.set_event_loop(None)


def rates_of(hosts: ThrottlerMap, url: str) -> tuple[Rate, ...]:
    """The rates of ``url``'s throttler, which must exist."""
    limiter = hosts.throttler_for(url)
    assert limiter is not None
    return limiter.rates


def occupancy_max(intervals: Sequence[tuple[float, float]], period: float) -> int:
    """The most entries any window ``[t, t + period)`` may have seen.

    An entry counts in a window when its interval ``[admitted, settled]`` meets the
    window: the server may have received the request at any moment in between.
    """
    starts = sorted({a for a, _ in intervals} | {s for _, s in intervals})
    return max(
        (sum(1 for a, s in intervals if a < t + period and s >= t) for t in starts), default=0
    )


# -- scopes ---------------------------------------------------------------------------


def test_host_scope_keys_by_normalized_host() -> None:
    """Two spellings of one server share a throttler; another port gets its own."""
    hosts = ThrottlerMap(5, 1.0)
    first = hosts.throttler_for("https://Example.com/a")
    assert first is hosts.throttler_for("https://user@example.com.:443/b")
    assert first is not hosts.throttler_for("https://example.com:8443/")
    assert first is not hosts.throttler_for("http://example.com/")
    assert len(hosts) == 3
    assert hosts.key_for(yarl.URL("https://Example.com/x")) == "https://example.com:443"
    assert hosts.key_for(httpx.URL("https://Example.com/x")) == "https://example.com:443"


def test_domain_scope_shares_registrable_domain() -> None:
    """scope='domain' keys by PSL registrable domain; IPs and localhost key by themselves."""
    hosts = ThrottlerMap(5, 1.0, scope="domain")
    assert hosts.key_for("https://www.bbc.co.uk/") == "bbc.co.uk"
    assert hosts.throttler_for("https://www.bbc.co.uk/") is hosts.throttler_for(
        "http://news.bbc.co.uk:8080/"
    )
    assert hosts.key_for("http://127.0.0.1:8080/") == "127.0.0.1"
    assert hosts.key_for("http://127.0.0.2:8080/") == "127.0.0.2"
    assert hosts.key_for("http://localhost/") == "localhost"
    assert hosts.key_for("http://[::1]/") == "[::1]"


def test_global_scope_is_one_throttler() -> None:
    """scope='global' gives every URL the key '*' and the same throttler."""
    hosts = ThrottlerMap(5, 1.0, scope="global")
    assert hosts.key_for("https://a.example/") == "*"
    assert hosts.throttler_for("https://a.example/") is hosts.throttler_for("http://b.example/")
    assert len(hosts) == 1


def test_callable_scope_keys_by_anything() -> None:
    """A callable scope receives the URL as given and returns the key."""
    seen: list[object] = []

    def by_first_segment(url: object) -> str:
        seen.append(url)
        return str(url).split("/")[3]

    hosts = ThrottlerMap(5, 1.0, scope=by_first_segment)
    url = yarl.URL("https://api.example.com/v1/users")
    assert hosts.key_for(url) == "v1"
    assert seen == [url]
    assert hosts.throttler_for("https://a.example/v2/x") is hosts.throttler_for(
        "https://b.example/v2/y"
    )


def test_callable_scope_must_return_str() -> None:
    """A scope callable returning a non-str raises TypeError naming what it returned."""
    hosts = ThrottlerMap(5, 1.0, scope=lambda url: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="must return a str, got 42"):
        hosts.key_for("https://a.example/")


def test_url_without_host_raises() -> None:
    """A URL without a host raises InvalidURLError (a ValueError) from every lookup."""
    hosts = ThrottlerMap(5, 1.0)
    for call in (hosts.key_for, hosts.throttler_for, hosts.resolve):
        with pytest.raises(InvalidURLError, match="no host"):
            call("/relative/path")
    assert "/relative/path" not in hosts
    assert len(hosts) == 0


# -- overrides ------------------------------------------------------------------------

OVERRIDES = {
    "api.example.com": "1/s",
    "*.example.com": "2/s",
    "*.eu.example.com": "3/s",
    "*.eu.example.com:8443": "4/s",
    "localhost:8080": "5/s",
    "static.example.com": None,
    "*.cdn.example.net": None,
}


@pytest.mark.parametrize(
    ("url", "rates"),
    [
        ("https://api.example.com/", "1/s"),
        ("https://www.example.com/", "2/s"),
        ("https://deep.www.example.com/", "2/s"),
        ("https://example.com/", "10/s"),
        ("https://x.eu.example.com/", "3/s"),
        ("https://x.eu.example.com:8443/", "4/s"),
        ("https://eu.example.com/", "2/s"),
        ("http://localhost:8080/", "5/s"),
        ("http://localhost:8081/", "10/s"),
        ("https://static.example.com/", None),
        ("https://img.cdn.example.net/", None),
        ("https://cdn.example.net/", "10/s"),
        ("https://other.example.org/", "10/s"),
    ],
    ids=[
        "exact",
        "pattern",
        "pattern-deep",
        "pattern-excludes-bare-domain",
        "longest-pattern",
        "port-pattern",
        "shorter-pattern",
        "exact-port",
        "other-port-default",
        "exact-unlimited",
        "pattern-unlimited",
        "bare-domain-of-unlimited-pattern",
        "default",
    ],
)
def test_override_precedence(url: str, rates: str | None) -> None:
    """Exact host beats the longest *.suffix pattern, which beats the default."""
    hosts = ThrottlerMap(10, 1.0, overrides=OVERRIDES)
    limiter = hosts.throttler_for(url)
    if rates is None:
        assert limiter is None
    else:
        assert limiter is not None
        assert limiter.rates == (Rate.parse(rates),)


def test_exact_with_port_beats_exact_without() -> None:
    """An override for host:port beats one for the host on any port."""
    hosts = ThrottlerMap(10, 1.0, overrides={"localhost": "1/s", "localhost:8080": "2/s"})
    assert rates_of(hosts, "http://localhost:8080/") == (Rate(2, 1),)
    assert rates_of(hosts, "http://localhost:9000/") == (Rate(1, 1),)


def test_override_rate_forms() -> None:
    """Override rates may be a string of several rates, a Rate, or an iterable of them."""
    hosts = ThrottlerMap(
        10,
        1.0,
        overrides={
            "a.example": "10/s; 1000/h",
            "b.example": Rate(3, 2),
            "c.example": ["1/s", Rate(5, 60)],
        },
    )
    assert rates_of(hosts, "http://a.example/") == (Rate(10, 1), Rate(1000, 3600))
    assert rates_of(hosts, "http://b.example/") == (Rate(3, 2),)
    assert rates_of(hosts, "http://c.example/") == (Rate(1, 1), Rate(5, 60))


def test_overrides_with_domain_scope_get_their_own_key() -> None:
    """With scope='domain', an overridden host never shares a key with default-rate hosts."""
    hosts = ThrottlerMap(10, 1.0, scope="domain", overrides={"api.github.com": "5000/h"})
    assert hosts.key_for("https://github.com/") == "github.com"
    assert hosts.key_for("https://gist.github.com/") == "github.com"
    assert hosts.key_for("https://api.github.com/") == "github.com [api.github.com]"
    assert rates_of(hosts, "https://api.github.com/") == (Rate(5000, 3600),)
    assert rates_of(hosts, "https://github.com/") == (Rate(10, 1),)


def test_domain_scope_override_for_an_ip_keeps_the_plain_key() -> None:
    """An IP or a single-label host is its own domain, so an exact override keeps its key."""
    hosts = ThrottlerMap(
        10, 1.0, scope="domain", overrides={"127.0.0.2": "2/s", "localhost:8080": "3/s"}
    )
    assert hosts.key_for("http://127.0.0.2:8080/") == "127.0.0.2"
    assert rates_of(hosts, "http://127.0.0.2/") == (Rate(2, 1),)
    assert hosts.key_for("http://localhost:8080/") == "localhost [localhost:8080]"
    assert hosts.key_for("http://localhost:9090/") == "localhost"


def test_unlimited_override_still_has_a_key() -> None:
    """key_for works for an unlimited host, and resolve gives its key with no limiter."""
    hosts = ThrottlerMap(10, 1.0, overrides={"*.local": None})
    assert hosts.key_for("http://printer.local/") == "http://printer.local:80"
    assert hosts.resolve("http://printer.local/") == ("http://printer.local:80", None)
    assert len(hosts) == 0


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rate_limit": 0}, ValueError, "rate_limit must be a positive integer, got 0"),
        ({"period": 0}, ValueError, "period must be a finite number of seconds > 0, got 0"),
        ({"rates": "ten per second"}, InvalidRateError, "cannot parse rate 'ten per second'"),
        ({"max_keys": 0}, ValueError, "max_keys must be a positive integer, got 0"),
        ({"max_keys": 1.5}, TypeError, "max_keys must be a positive integer, got 1.5"),
        ({"max_concurrency": 0}, ValueError, "max_concurrency must be an integer from 1"),
        ({"burst": 11}, ValueError, "burst must be an integer from 1 to 10, got 11"),
        ({"scope": "hosts"}, ValueError, "scope must be 'host', 'domain', 'global' or a callable"),
        ({"backend": object()}, TypeError, r"backend must have a create\(key, rates"),
        ({"overrides": ["a.example"]}, TypeError, "overrides must be a mapping"),
        (
            {"overrides": {"api.example.com": "ten/s"}},
            InvalidRateError,
            r"overrides\['api.example.com'\]: cannot parse rate 'ten/s'",
        ),
        (
            {"overrides": {"api.example.com": 5.0}},
            TypeError,
            r"overrides\['api.example.com'\]: a rate must be a Rate or a str",
        ),
        (
            {"overrides": {"api.example.com": True}},
            TypeError,
            r"overrides\['api.example.com'\]: a rate must be a Rate or a str",
        ),
        (
            {"overrides": {"api.example.com": 0}},
            ValueError,
            r"overrides\['api.example.com'\]: the limit must be a positive integer, got 0",
        ),
        (
            {"overrides": {"slow.example.com": "1/s"}, "burst": 2},
            ValueError,
            r"overrides\['slow.example.com'\]: burst must be an integer from 1 to 1, got 2",
        ),
        (
            {"overrides": {"https://api.example.com": "1/s"}},
            ValueError,
            "overrides key 'https://api.example.com' must be a host name",
        ),
        (
            {"overrides": {"Example.com": "1/s", "example.com.": "2/s"}},
            ValueError,
            "overrides keys 'Example.com' and 'example.com.' name the same hosts",
        ),
    ],
    ids=[
        "rate_limit",
        "period",
        "rates",
        "max_keys",
        "max_keys-type",
        "max_concurrency",
        "burst",
        "scope",
        "backend",
        "overrides-type",
        "override-rate-text",
        "override-rate-type",
        "override-rate-bool",
        "override-int-zero",
        "override-burst",
        "override-key",
        "override-duplicate",
    ],
)
def test_construction_errors_name_the_argument(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Bad arguments fail at construction, naming the argument or the override key."""
    with pytest.raises(error, match=message):
        ThrottlerMap(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [ThrottlerMap, SyncThrottlerMap])
@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"rates": "5/s", "rate_limit": 5}, ("rates=", "rate_limit=")),
        ({"rates": "5/s", "period": 1.0}, ("rates=", "period=")),
        ({"rates": "5/s", "rate_limit": 5, "period": 1.0}, ("rates=", "rate_limit=")),
        ({"rate_limit": "5/s", "period": 1.0}, ("rate_limit='5/s'", "period=")),
        ({"rate_limit": Rate(5, 1), "period": 2.0}, ("rate_limit=Rate(5/s)", "period=")),
    ],
    ids=["rates-rate_limit", "rates-period", "rates-both", "string-period", "Rate-period"],
)
def test_an_argument_left_unused_is_a_type_error_naming_both(
    cls: type[ThrottlerMap | SyncThrottlerMap], kwargs: dict[str, object], names: tuple[str, str]
) -> None:
    """rates= beside rate_limit= or period=, or period= beside a rate string, is refused."""
    with pytest.raises(TypeError) as caught:
        cls(**kwargs)  # type: ignore[arg-type]
    for name in names:
        assert name in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "rates"),
    [
        ({}, (Rate(10, 1.0),)),
        ({"rate_limit": 3}, (Rate(3, 1.0),)),
        ({"period": 60.0}, (Rate(10, 60.0),)),
        ({"rate_limit": "5/min"}, (Rate(5, 60.0),)),
        ({"rate_limit": Rate(2, 3.0)}, (Rate(2, 3.0),)),
        ({"rates": "10/s; 1000/h"}, (Rate(10, 1.0), Rate(1000, 3600.0))),
    ],
    ids=["nothing", "int", "period", "string", "Rate", "rates"],
)
def test_default_rates(kwargs: dict[str, object], rates: tuple[Rate, ...]) -> None:
    """rate_limit and period default to None, meaning 10 per 1.0 s, each filled in alone."""
    hosts = ThrottlerMap(**kwargs)  # type: ignore[arg-type]
    assert hosts.rates == rates
    assert rates_of(hosts, "http://a.example/") == rates


@pytest.mark.parametrize(
    ("kwargs", "rate"),
    [
        ({}, Rate(3, 1.0)),
        ({"rate_limit": 10, "period": 60.0}, Rate(3, 60.0)),
        ({"period": 2.5}, Rate(3, 2.5)),
        ({"rate_limit": "100/h"}, Rate(3, 3600.0)),
    ],
    ids=["default-period", "int-period", "period-only", "rate-string"],
)
def test_int_override_is_n_per_the_maps_period(kwargs: dict[str, object], rate: Rate) -> None:
    """An int override n means n per the map's period, as rate_limit=n would."""
    hosts = ThrottlerMap(**kwargs, overrides={"api.example.com": 3})  # type: ignore[arg-type]
    assert rates_of(hosts, "https://api.example.com/") == (rate,)
    assert rates_of(hosts, "https://www.example.com/") == hosts.rates


def test_int_override_beside_other_forms() -> None:
    """Int overrides mix with strings, Rates and None in one mapping, and respect burst."""
    hosts = ThrottlerMap(
        10,
        60.0,
        overrides={"a.example": 4, "b.example": "1/s", "c.example": Rate(5, 1), "d.example": None},
    )
    assert rates_of(hosts, "http://a.example/") == (Rate(4, 60.0),)
    assert rates_of(hosts, "http://b.example/") == (Rate(1, 1.0),)
    assert rates_of(hosts, "http://c.example/") == (Rate(5, 1.0),)
    assert hosts.throttler_for("http://d.example/") is None
    smooth = ThrottlerMap(10, 1.0, burst=2, overrides={"a.example": 2})
    limiter = smooth.throttler_for("http://a.example/")
    assert limiter is not None
    assert (limiter.rates, limiter.burst) == ((Rate(2, 1.0),), 2)
    with pytest.raises(ValueError, match=r"overrides\['a.example'\]: burst must be an integer"):
        ThrottlerMap(10, 1.0, burst=2, overrides={"a.example": 1})


@pytest.mark.looptime
async def test_int_override_limits_its_host() -> None:
    """A host overridden with 2 (per the map's 1 s) admits two entries per second."""
    loop = asyncio.get_running_loop()
    hosts = ThrottlerMap(10, 1.0, overrides={"slow.example": 2})
    times: list[float] = []
    for _ in range(6):
        async with hosts.limit("http://slow.example/"):
            times.append(loop.time())
    assert times == pytest.approx([0.0, 0.0, 1.0, 1.0, 2.0, 2.0], abs=1e-6)


def test_pause_validates_seconds() -> None:
    """pause() rejects a negative number of seconds, naming the argument."""
    with pytest.raises(ValueError, match="seconds must be a finite number of seconds >= 0"):
        ThrottlerMap().pause("https://a.example/", -1)


# -- limiting -------------------------------------------------------------------------


@pytest.mark.looptime
async def test_limit_enforces_each_key_separately() -> None:
    """Each host gets its own window: two hosts each see at most their limit per period."""
    loop = asyncio.get_running_loop()
    hosts = ThrottlerMap(2, 1.0, overrides={"slow.example": "1/s"})
    times: dict[str, list[tuple[float, float]]] = {}

    async def fetch(url: str) -> None:
        async with hosts.limit(url) as entry:
            admitted = loop.time()
            assert entry is not None
            await asyncio.sleep(0.3)  # the request is in flight
        times.setdefault(hosts.key_for(url), []).append((admitted, loop.time()))

    start = loop.time()
    urls = ["http://a.example/"] * 6 + ["http://b.example/"] * 6 + ["http://slow.example/"] * 3
    await asyncio.gather(*(fetch(u) for u in urls))
    assert occupancy_max(times["http://a.example:80"], 1.0) == 2
    assert occupancy_max(times["http://b.example:80"], 1.0) == 2
    assert occupancy_max(times["http://slow.example:80"], 1.0) == 1
    # a.example and b.example run in parallel, so six each take about three periods.
    assert loop.time() - start < 4.0


@pytest.mark.looptime
async def test_limit_unlimited_host_never_waits() -> None:
    """An override of None makes limit() a no-op that yields None."""
    loop = asyncio.get_running_loop()
    hosts = ThrottlerMap(1, 60.0, overrides={"fast.example": None})
    start = loop.time()
    for _ in range(100):
        async with hosts.limit("http://fast.example/") as entry:
            assert entry is None
    assert loop.time() == start
    assert len(hosts) == 0


@pytest.mark.looptime
async def test_limit_settle_early_and_timeout() -> None:
    """limit() yields the entry (settle it on headers) and honours timeout."""
    hosts = ThrottlerMap(1, 10.0)
    async with hosts.limit("http://a.example/") as entry:
        assert entry is not None
        entry.settle()
        assert entry.settled
    with pytest.raises(TimeoutError):
        async with hosts.limit("http://a.example/", timeout=1.0):
            pass  # pragma: no cover - never admitted


@pytest.mark.looptime
async def test_cancel_while_waiting_in_limit() -> None:
    """A task cancelled while waiting in limit() takes nothing; the next one gets in."""
    hosts = ThrottlerMap(1, 10.0, max_concurrency=1)
    url = "http://a.example/"
    entered: list[str] = []

    async def fetch(name: str) -> None:
        async with hosts.limit(url):
            entered.append(name)
            await asyncio.sleep(1.0)

    first = asyncio.create_task(fetch("first"))
    await asyncio.sleep(0.1)
    cancelled = asyncio.create_task(fetch("cancelled"))
    third = asyncio.create_task(fetch("third"))
    await asyncio.sleep(0.1)
    cancelled.cancel()
    await asyncio.gather(first, third, return_exceptions=True)
    assert cancelled.cancelled()
    assert entered == ["first", "third"]
    limiter = hosts.throttler_for(url)
    assert isinstance(limiter, Throttler)
    stats = limiter.statistics()
    assert (stats.waiting, stats.open, stats.in_flight) == (0, 0, 0)


@pytest.mark.looptime
async def test_max_concurrency_per_key() -> None:
    """max_concurrency caps requests in flight per key, not across keys."""
    hosts = ThrottlerMap(100, 1.0, max_concurrency=2)
    inside: dict[str, int] = {}
    peak: dict[str, int] = {}

    async def fetch(url: str) -> None:
        async with hosts.limit(url):
            inside[url] = inside.get(url, 0) + 1
            peak[url] = max(peak.get(url, 0), inside[url])
            await asyncio.sleep(0.1)
            inside[url] -= 1

    await asyncio.gather(*(fetch(f"http://h{i % 2}.example/") for i in range(10)))
    assert peak == {"http://h0.example/": 2, "http://h1.example/": 2}


@pytest.mark.looptime
async def test_pause_is_per_key_and_visible_in_statistics() -> None:
    """pause(url) stops only that key, and statistics() lists it first with its paused_for."""
    loop = asyncio.get_running_loop()
    hosts = ThrottlerMap(10, 1.0, overrides={"free.example": None})
    hosts.pause("http://busy.example/", 30.0)
    hosts.pause("http://free.example/", 30.0)  # unlimited: nothing to pause
    async with hosts.limit("http://other.example/"):
        pass
    stats = hosts.statistics()
    assert isinstance(stats, ThrottlerMapStatistics)
    assert (stats.keys, stats.busy, stats.paused, stats.created) == (2, 2, 1, 2)
    assert stats.busiest[0].key == "http://busy.example:80"
    assert stats.busiest[0].paused_for == pytest.approx(30.0)
    assert stats.busiest[1].key == "http://other.example:80"
    assert stats.busiest[1].statistics is not None
    assert stats.busiest[1].statistics.in_window == 1
    start = loop.time()
    async with hosts.limit("http://busy.example/"):
        assert loop.time() - start == pytest.approx(30.0)
    assert hosts.statistics(top=0).busiest == ()


@pytest.mark.looptime
async def test_statistics_busiest_is_bounded() -> None:
    """statistics(top=n) lists at most n keys however many are busy, busiest first."""
    hosts = ThrottlerMap(10, 1.0)
    for i in range(50):
        for _ in range(1 + i % 5):
            async with hosts.limit(f"http://h{i}.example/"):
                pass
    stats = hosts.statistics(top=3)
    assert stats.busy == 50
    assert len(stats.busiest) == 3
    assert all(k.statistics is not None and k.statistics.in_window == 5 for k in stats.busiest)


# -- bounded memory -------------------------------------------------------------------


def test_idle_keys_evicted_least_recently_used_first() -> None:
    """Past max_keys the least recently used idle key goes; recent ones stay."""
    hosts = ThrottlerMap(5, 1.0, max_keys=2)
    hosts.throttler_for("http://a.example/")
    hosts.throttler_for("http://b.example/")
    hosts.throttler_for("http://a.example/")  # a is now the most recent
    hosts.throttler_for("http://c.example/")
    assert "http://a.example/" in hosts
    assert "http://b.example/" not in hosts
    assert "http://c.example:80" in hosts
    assert len(hosts) == 2
    stats = hosts.statistics()
    assert (stats.created, stats.evictions, stats.max_keys) == (3, 1, 2)


@pytest.mark.looptime
async def test_grows_past_cap_while_busy_then_shrinks() -> None:
    """Busy keys are never evicted: the map grows past max_keys, then shrinks when idle."""
    hosts = ThrottlerMap(1, 10.0, max_keys=3)
    first = hosts.throttler_for("http://h0.example/")
    for i in range(20):
        async with hosts.limit(f"http://h{i}.example/"):
            pass
    assert len(hosts) == 20
    assert hosts.statistics().evictions == 0
    assert hosts.throttler_for("http://h0.example/") is first  # still remembered
    await asyncio.sleep(10.0)  # every window has passed: all idle now
    for i in range(100, 110):
        hosts.throttler_for(f"http://h{i}.example/")
    assert len(hosts) == 3
    assert hosts.statistics().evictions == 27


class CountingThrottler(Throttler):
    """A Throttler that counts is_idle() calls, to see how much work a lookup does."""

    calls = 0

    def is_idle(self) -> bool:
        CountingThrottler.calls += 1
        return super().is_idle()


class CountingBackend:
    """A backend that records create() calls and builds counting throttlers."""

    def __init__(self) -> None:
        self.created: list[tuple[str, tuple[Rate, ...], int | None, int | None]] = []

    def create(
        self, key: str, rates: tuple[Rate, ...], *, burst: int | None, max_concurrency: int | None
    ) -> ThrottlerLike:
        self.created.append((key, rates, burst, max_concurrency))
        return CountingThrottler.from_rates(*rates, burst=burst, max_concurrency=max_concurrency)


@pytest.mark.looptime
async def test_lookup_work_is_bounded_when_all_keys_busy() -> None:
    """With thousands of busy keys over the cap, one lookup examines only a few keys."""
    backend = CountingBackend()
    hosts = ThrottlerMap(1, 60.0, max_keys=10, backend=backend)
    for i in range(2000):
        async with hosts.limit(f"http://h{i}.example/"):
            pass
    assert len(hosts) == 2000
    CountingThrottler.calls = 0
    hosts.throttler_for("http://new.example/")
    hosts.throttler_for("http://h5.example/")
    assert 0 < CountingThrottler.calls <= 6


def test_backend_receives_key_rates_and_options() -> None:
    """The backend's create() gets the key, the resolved rates, burst and max_concurrency."""
    backend = CountingBackend()
    assert isinstance(backend, ThrottlerBackend)
    hosts = ThrottlerMap(
        rates="10/s; 100/min",
        burst=2,
        max_concurrency=3,
        overrides={"api.example.com": "5/s"},
        backend=backend,
    )
    hosts.throttler_for("https://www.example.com/")
    hosts.throttler_for("https://api.example.com/")
    assert backend.created == [
        ("https://www.example.com:443", (Rate(10, 1), Rate(100, 60)), 2, 3),
        ("https://api.example.com:443", (Rate(5, 1),), 2, 3),
    ]


async def test_pipeline_resolves_by_map_or_takes_a_plain_throttler() -> None:
    """A pipeline over a map admits under the URL's key; over one throttler, '*' and itself."""
    throttler = Throttler(5, 1.0)
    admitted = await Pipeline(throttler, None, Holds(None), None).admit("https://a.example/")
    assert admitted is not None
    assert admitted[:2] == ("*", throttler)
    admitted[2].close()
    hosts = ThrottlerMap(5, 1.0, overrides={"*.local": None})
    pipeline = Pipeline(hosts, None, Holds(None), None)
    admitted = await pipeline.admit("https://a.example/")
    assert admitted is not None
    key, limiter, entry = admitted
    assert key == "https://a.example:443"
    assert limiter is hosts.throttler_for("https://a.example/")
    entry.close()
    url = httpx.URL("https://API.example.com/x")
    admitted = await pipeline.admit(url, (url.scheme, url.raw_host, url.port))
    assert admitted is not None
    assert admitted[:2] == hosts.resolve(url)
    admitted[2].close()
    assert await pipeline.admit("http://printer.local/") is None  # no limit: nothing to admit


def test_resolve_gives_the_key_and_the_held_throttler() -> None:
    """resolve(url) gives the URL's key and the one throttler the map holds for it."""
    hosts = ThrottlerMap(5, 1.0)
    key, limiter = hosts.resolve("https://a.example/")
    assert key == "https://a.example:443"
    assert limiter is not None
    assert limiter is hosts.throttler_for("https://A.example:443/other")
    assert hosts.resolve("https://a.example/") == (key, limiter)
    assert len(hosts) == 1


def test_repr_and_properties() -> None:
    """The repr shows rates, scope, key count and overrides; properties expose the config."""
    hosts = ThrottlerMap(rates="10/s; 1000/h", max_keys=50, overrides={"a.example": None})
    hosts.throttler_for("https://b.example/")
    assert repr(hosts) == "<ThrottlerMap 10/s; 1000/h scope='host' keys=1/50 overrides=1>"
    assert hosts.rates == (Rate(10, 1), Rate(1000, 3600))
    assert hosts.max_keys == 50
    assert hosts.scope == "host"


# -- the property: eviction never breaks a limit --------------------------------------

REQUEST = st.tuples(
    st.integers(min_value=0, max_value=7),  # host index
    st.integers(min_value=0, max_value=40),  # start, in tenths of a second
    st.integers(min_value=0, max_value=12),  # time in flight, in tenths of a second
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=st.lists(REQUEST, min_size=1, max_size=40),
    max_keys=st.integers(min_value=1, max_value=3),
    limit=st.integers(min_value=1, max_value=3),
    scope=st.sampled_from(["host", "domain"]),
)
def test_eviction_never_breaks_a_limit(
    requests: list[tuple[int, int, int]], max_keys: int, limit: int, scope: str
) -> None:
    """Many keys through a tiny max_keys on virtual time: every key's windows still hold."""
    period = 1.0
    hosts = ThrottlerMap(limit, period, max_keys=max_keys, scope=scope)  # type: ignore[arg-type]
    intervals: dict[str, list[tuple[float, float]]] = {}

    async def fetch(host: int, start: int, hold: int) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(start / 10)
        url = f"http://www.h{host}.example/"
        async with hosts.limit(url):
            admitted = loop.time()
            await asyncio.sleep(hold / 10)
        intervals.setdefault(hosts.key_for(url), []).append((admitted, loop.time()))
        hosts.throttler_for(f"http://www.other{start}.example/")  # churn: idle keys to evict

    async def main() -> None:
        await asyncio.gather(*(fetch(*r) for r in requests))

    loop = looptime.new_event_loop(start=0)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert sum(len(v) for v in intervals.values()) == len(requests)
    for key, seen in intervals.items():
        assert occupancy_max(seen, period) <= limit, key


def test_resolve_with_origin_gives_the_same_key_and_throttler() -> None:
    """An origin only saves parsing: key and throttler are those of the URL alone."""
    hosts = ThrottlerMap(10, 1.0, overrides={"api.example.com": "2/s", "*.local": None})
    for text in ("HTTPS://API.Example.com/a", "http://x.local/", "http://[::1]:8080/p"):
        for url in (yarl.URL(text), httpx.URL(text)):
            origin = (url.scheme, url.raw_host, url.port)
            assert hosts.resolve(url, origin=origin) == hosts.resolve(url)
            assert hosts.resolve(url, origin=origin) == hosts.resolve(text)
            assert hosts.resolve(url, origin=origin)[1] is hosts.throttler_for(url)


def test_origin_cache_survives_eviction_and_stays_bounded() -> None:
    """A remembered origin still finds the throttler the map holds now, and at most 1024
    origins are remembered."""
    hosts = ThrottlerMap(10, 1.0, max_keys=1)
    first = hosts.resolve("http://a.example/", origin="a")[1]
    hosts.resolve("http://b.example/", origin="b")  # evicts idle a
    again = hosts.resolve("http://a.example/", origin="a")[1]
    assert again is not None
    assert again is not first
    assert again is hosts.throttler_for("http://a.example/")
    for n in range(3000):
        hosts.resolve(f"http://h{n}.example/", origin=n)
    assert len(hosts._origins) <= 1024


def test_callable_scope_ignores_the_origin() -> None:
    """A callable scope sees every URL, even one whose origin the map has seen."""
    hosts = ThrottlerMap(10, 1.0, scope=lambda url: str(url).rsplit("/", 1)[-1])
    assert hosts.resolve("http://a.example/x", origin="o")[0] == "x"
    assert hosts.resolve("http://a.example/y", origin="o")[0] == "y"


async def test_is_current_tells_whether_the_map_still_keeps_a_throttler() -> None:
    """is_current(key, throttler) is true for the kept throttler and false once replaced."""
    hosts = ThrottlerMap(10, 1.0, max_keys=1)
    key, limiter = hosts.resolve("http://a.example/")
    assert limiter is not None
    assert hosts.is_current(key, limiter)
    assert not hosts.is_current("http://b.example:80", limiter)
    assert not hosts.is_current(key, Throttler(10, 1.0))
    assert not hosts.is_current(key, None)
    hosts.resolve("http://b.example/")  # evicts idle a
    assert not hosts.is_current(key, limiter)
    again = hosts.throttler_for("http://a.example/")
    assert again is not limiter
    assert hosts.is_current(key, again)


# -- SyncThrottlerMap: the thread-safe twin ---------------------------------------------


class FakeClock:
    """A hand-moved ``time`` for the SyncThrottler module: virtual time for threads."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def sync_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """SyncThrottlers on virtual time: their module reads the fake clock."""
    clock = FakeClock()
    monkeypatch.setattr(throttled_http._sync, "time", clock)
    return clock


def sync_rates_of(hosts: SyncThrottlerMap, url: str) -> tuple[Rate, ...]:
    """The rates of ``url``'s throttler, which must exist."""
    throttler = hosts.throttler_for(url)
    assert throttler is not None
    return throttler.rates


def test_sync_map_builds_sync_throttlers_with_the_maps_options() -> None:
    """The default backend builds a SyncThrottler per key, with burst, cap and overrides."""
    hosts = SyncThrottlerMap(
        10, 1.0, burst=2, max_concurrency=3, overrides={"api.example.com": "5/s", "*.local": None}
    )
    throttler = hosts.throttler_for("https://www.example.com/")
    assert isinstance(throttler, SyncThrottler)
    assert isinstance(throttler, SyncThrottlerLike)
    assert (throttler.rates, throttler.burst, throttler.max_concurrency) == ((Rate(10, 1),), 2, 3)
    assert sync_rates_of(hosts, "https://api.example.com/") == (Rate(5, 1),)
    assert isinstance(hosts.throttler_for("https://api.example.com/"), SyncThrottler)
    assert hosts.resolve("http://printer.local/") == ("http://printer.local:80", None)
    assert len(hosts) == 2


def test_sync_map_keys_scopes_and_overrides_as_the_async_map() -> None:
    """Both maps give every URL the same key and rates: one implementation."""
    for scope in ("host", "domain", "global"):
        options: dict[str, object] = {"scope": scope, "overrides": OVERRIDES}
        sync_hosts = SyncThrottlerMap(10, 1.0, **options)  # type: ignore[arg-type]
        async_hosts = ThrottlerMap(10, 1.0, **options)  # type: ignore[arg-type]
        for url in ("https://api.example.com/", "https://x.eu.example.com:8443/", "http://a.b/"):
            assert sync_hosts.key_for(url) == async_hosts.key_for(url)
            sync_throttler = sync_hosts.throttler_for(url)
            async_throttler = async_hosts.throttler_for(url)
            assert sync_throttler is not None
            assert async_throttler is not None
            assert sync_throttler.rates == async_throttler.rates
        assert sync_hosts.throttler_for("https://static.example.com/") is None


def test_sync_map_custom_backend() -> None:
    """A backend given to SyncThrottlerMap makes its throttlers, with the key and options."""
    made: list[tuple[str, tuple[Rate, ...], int | None, int | None]] = []

    class Backend:
        def create(
            self,
            key: str,
            rates: tuple[Rate, ...],
            *,
            burst: int | None,
            max_concurrency: int | None,
        ) -> SyncThrottlerLike:
            made.append((key, rates, burst, max_concurrency))
            return SyncThrottler.from_rates(*rates, burst=burst, max_concurrency=max_concurrency)

    hosts = SyncThrottlerMap(rates="10/s; 100/min", burst=1, backend=Backend())
    hosts.throttler_for("https://a.example/")
    assert made == [("https://a.example:443", (Rate(10, 1), Rate(100, 60)), 1, None)]


class SlowBackend:
    """Builds SyncThrottlers slowly, so that an unlocked map would race to build two."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self._lock = threading.Lock()

    def create(
        self, key: str, rates: tuple[Rate, ...], *, burst: int | None, max_concurrency: int | None
    ) -> SyncThrottlerLike:
        time.sleep(0.001)  # widens the window between the lookup and the insertion
        with self._lock:
            self.created.append(key)
        return SyncThrottler.from_rates(*rates, burst=burst, max_concurrency=max_concurrency)


def test_sync_map_resolves_one_throttler_per_key_across_threads() -> None:
    """Many threads resolving the same and different hosts at once get one throttler per key."""
    backend = SlowBackend()
    hosts = SyncThrottlerMap(10, 1.0, backend=backend)
    threads = 16
    barrier = threading.Barrier(threads)
    seen: list[list[tuple[str, SyncThrottlerLike | None]]] = [[] for _ in range(threads)]

    def work(index: int) -> None:
        barrier.wait()
        for round_ in range(20):
            seen[index].append(hosts.resolve("https://shared.example/"))
            seen[index].append(hosts.resolve(f"https://h{(index + round_) % 4}.example/"))
            seen[index].append(hosts.resolve(f"https://own{index}.example/"))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    by_key: dict[str, set[int]] = {}
    for results in seen:
        for key, throttler in results:
            assert throttler is not None
            by_key.setdefault(key, set()).add(id(throttler))
    assert len(by_key) == 1 + 4 + threads
    assert all(len(ids) == 1 for ids in by_key.values()), by_key
    assert sorted(backend.created) == sorted(by_key)  # each key built exactly once
    statistics = hosts.statistics()
    assert (statistics.keys, statistics.created, statistics.evictions) == (len(by_key),) * 2 + (0,)
    for key, (throttler_id,) in by_key.items():
        assert id(hosts.resolve(key.replace(":443", "/"))[1]) == throttler_id


def test_sync_map_is_current() -> None:
    """is_current(key, throttler) holds for the kept throttler, and not once it was evicted."""
    hosts = SyncThrottlerMap(10, 1.0, max_keys=1)
    key, throttler = hosts.resolve("http://a.example/")
    assert throttler is not None
    assert hosts.is_current(key, throttler)
    assert not hosts.is_current("http://b.example:80", throttler)
    assert not hosts.is_current(key, SyncThrottler(10, 1.0))
    hosts.resolve("http://b.example/")  # evicts idle a
    assert not hosts.is_current(key, throttler)
    again = hosts.throttler_for("http://a.example/")
    assert again is not throttler
    assert hosts.is_current(key, again)


def test_sync_map_statistics(sync_clock: FakeClock) -> None:
    """statistics() counts and ranks a SyncThrottlerMap's keys, paused keys first."""
    hosts = SyncThrottlerMap(10, 1.0, overrides={"free.example": None})
    hosts.pause("http://busy.example/", 30.0)
    hosts.pause("http://free.example/", 30.0)  # unlimited: nothing to pause
    throttler = hosts.throttler_for("http://other.example/")
    assert throttler is not None
    entry = throttler.open_entry()
    hosts.throttler_for("http://idle.example/")
    statistics = hosts.statistics()
    assert isinstance(statistics, ThrottlerMapStatistics)
    assert (statistics.keys, statistics.busy, statistics.paused, statistics.created) == (3, 2, 1, 3)
    assert statistics.busiest[0].key == "http://busy.example:80"
    assert statistics.busiest[0].paused_for == 30.0
    assert statistics.busiest[1].key == "http://other.example:80"
    snapshot = statistics.busiest[1].statistics
    assert isinstance(snapshot, ThrottlerStatistics)
    assert (snapshot.open, snapshot.in_flight, snapshot.in_window) == (1, 1, 1)
    assert hosts.statistics(top=1).busiest == statistics.busiest[:1]
    entry.close()
    sync_clock.advance(1.0)
    assert [k.key for k in hosts.statistics().busiest] == ["http://busy.example:80"]
    sync_clock.advance(29.0)
    assert hosts.statistics().busy == 0


def test_sync_map_grows_past_cap_while_busy_then_shrinks(sync_clock: FakeClock) -> None:
    """Busy keys are never evicted: the map grows past max_keys, then shrinks when idle."""
    hosts = SyncThrottlerMap(1, 10.0, max_keys=3)
    first = hosts.throttler_for("http://h0.example/")
    for i in range(20):
        throttler = hosts.throttler_for(f"http://h{i}.example/")
        assert throttler is not None
        throttler.open_entry().close()
    assert len(hosts) == 20
    assert hosts.statistics().evictions == 0
    assert hosts.throttler_for("http://h0.example/") is first  # still remembered
    sync_clock.advance(10.0)  # every window has passed: all idle now
    for i in range(100, 110):
        hosts.throttler_for(f"http://h{i}.example/")
    assert len(hosts) == 3
    assert hosts.statistics().evictions == 27


def test_sync_map_keeps_open_and_paused_keys(sync_clock: FakeClock) -> None:
    """An unsettled entry or a pause keeps a key however long; it goes once idle."""
    hosts = SyncThrottlerMap(5, 1.0, max_keys=1)
    key, throttler = hosts.resolve("http://open.example/")
    assert throttler is not None
    entry = throttler.open_entry()
    hosts.pause("http://paused.example/", 60.0)
    sync_clock.advance(50.0)
    for i in range(10):
        hosts.throttler_for(f"http://churn{i}.example/")
    assert hosts.is_current(key, throttler)
    assert "http://paused.example/" in hosts
    entry.close()  # settles now: in the window for one more period
    sync_clock.advance(0.5)
    hosts.throttler_for("http://churn-a.example/")
    assert hosts.is_current(key, throttler)
    sync_clock.advance(10.0)  # the window and the pause are over
    for i in range(10):
        hosts.throttler_for(f"http://later{i}.example/")
    assert not hosts.is_current(key, throttler)
    assert "http://paused.example/" not in hosts
    assert len(hosts) == 1


class EvictingOnPause(SyncThrottler):
    """A SyncThrottler whose pause() first lets another thread churn the map (max_keys=1)."""

    hosts: SyncThrottlerMap | None = None

    def pause(self, seconds: float) -> None:
        hosts = EvictingOnPause.hosts
        assert hosts is not None
        other = threading.Thread(target=hosts.resolve, args=("http://other.example/",))
        other.start()
        other.join(timeout=0.2)  # finishes at once unless the map is locked meanwhile
        super().pause(seconds)
        EvictingOnPause.others.append(other)

    others: list[threading.Thread] = []  # noqa: RUF012 - shared by the test, one at a time


def test_sync_map_pause_is_not_lost_to_a_concurrent_eviction() -> None:
    """pause(url) lands on the throttler the map keeps, though another thread evicts idle keys."""

    class Backend:
        def create(
            self,
            key: str,
            rates: tuple[Rate, ...],
            *,
            burst: int | None,
            max_concurrency: int | None,
        ) -> SyncThrottlerLike:
            return EvictingOnPause.from_rates(*rates, burst=burst, max_concurrency=max_concurrency)

    hosts = SyncThrottlerMap(10, 1.0, max_keys=1, backend=Backend())
    EvictingOnPause.hosts = hosts
    EvictingOnPause.others.clear()
    try:
        hosts.pause("http://a.example/", 30.0)
        for other in EvictingOnPause.others:
            other.join()
        throttler = hosts.throttler_for("http://a.example/")
        assert throttler is not None
        assert throttler.paused_for > 29.0
    finally:
        EvictingOnPause.hosts = None


def test_sync_map_repr() -> None:
    """The repr names SyncThrottlerMap and shows rates, scope, key count and overrides."""
    hosts = SyncThrottlerMap(rates="10/s; 1000/h", max_keys=50, overrides={"a.example": None})
    hosts.throttler_for("https://b.example/")
    assert repr(hosts) == "<SyncThrottlerMap 10/s; 1000/h scope='host' keys=1/50 overrides=1>"


# -- running totals ---------------------------------------------------------------------


@pytest.mark.looptime
async def test_map_totals_count_every_key_and_survive_eviction() -> None:
    """The map's admitted and waited_seconds sum its keys, the forgotten ones included."""
    hosts = ThrottlerMap(1, 1.0, max_keys=1)
    for _ in range(2):
        async with hosts.limit("https://a.example/"):
            pass  # the second waited 1 s
    assert hosts.statistics().admitted == 2
    await asyncio.sleep(2.0)  # a.example goes idle
    async with hosts.limit("https://b.example/"):
        pass  # past max_keys: a.example is forgotten
    stats = hosts.statistics()
    assert (stats.evictions, stats.keys) == (1, 1)
    assert stats.admitted == 3
    assert stats.waited_seconds == pytest.approx(1.0, abs=1e-3)


@pytest.mark.looptime
async def test_key_statistics_lists_idle_keys_too() -> None:
    """key_statistics() gives every key held, busy or idle, with its throttler's totals."""
    hosts = ThrottlerMap(5, 1.0)
    async with hosts.limit("https://a.example/"):
        pass
    async with hosts.limit("https://b.example/"):
        pass
    await asyncio.sleep(2.0)
    assert hosts.statistics().busiest == ()
    keys = hosts.key_statistics()
    assert list(keys) == ["https://a.example:443", "https://b.example:443"]
    snapshot = keys["https://a.example:443"].statistics
    assert snapshot is not None
    assert snapshot.admitted == 1


def test_sync_map_totals_and_key_statistics() -> None:
    """The thread-safe map reports the same totals, under its lock."""
    hosts = SyncThrottlerMap(5, 1.0)
    for url in ("https://a.example/1", "https://a.example/2", "https://b.example/"):
        throttler = hosts.throttler_for(url)
        assert throttler is not None
        throttler.open_entry().close()
    assert hosts.statistics().admitted == 3
    assert set(hosts.key_statistics()) == {"https://a.example:443", "https://b.example:443"}
