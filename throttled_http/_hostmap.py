"""`ThrottlerMap`: one throttler per host (or domain, or any key), in bounded memory.

The mental model. Every request URL maps to a *key* (its `scheme://host:port` by
default) and every key to its own throttler, created on first use from the default rates
or from the `overrides` entry that matches the host. Throttlers of keys nobody has used
lately are forgotten, but only when forgetting cannot loosen a limit: a throttler is
dropped only while it is idle (nothing in any window, nothing open, nobody waiting,
nothing in flight, no pause), because a fresh throttler built for that key later behaves
exactly like the old one would have.
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Generic,
    Literal,
    Protocol,
    TypeAlias,
    TypeVar,
    final,
    runtime_checkable,
)

from ._front import ThrottlerStatistics
from ._keys import domain_key, is_standalone, parse_override_key, split_url
from ._protocols import SyncThrottlerLike, ThrottlerLike
from ._rates import Rate, RatesLike, parse_rates, resolve_rates
from ._sync import SyncThrottler
from ._throttler import Throttler
from ._validate import int_in_range, non_negative_float, positive_int

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ._protocols import EntryLike

__all__ = [
    "BaseThrottlerMap",
    "KeyStatistics",
    "SyncThrottlerMap",
    "ThrottlerBackend",
    "ThrottlerMap",
    "ThrottlerMapStatistics",
]

ThrottlerT = TypeVar("ThrottlerT", ThrottlerLike, SyncThrottlerLike)
ThrottlerT_co = TypeVar("ThrottlerT_co", covariant=True)

Scope: TypeAlias = "Literal['host', 'domain', 'global'] | Callable[[Any], str]"
"""How URLs map to keys: a scope name, or a callable `scope(url) -> str`."""

_SCOPES: Final = ("host", "domain", "global")
# Keys examined per insertion / per lookup while the map is over its cap. Each examined key
# is either evicted (idle) or moved to the young end (busy), so the cost stays O(1).
_SWEEP_ON_INSERT: Final = 4
_SWEEP_ON_HIT: Final = 2
# Origins whose key and rates are remembered (see ThrottlerMap.resolve); cleared when full.
_MAX_ORIGINS: Final = 1024

_Rule = tuple[str, "tuple[Rate, ...] | None"]  # (override key as written, rates or no limit)


@runtime_checkable
class ThrottlerBackend(Protocol[ThrottlerT_co]):
    """Makes the throttler of one key; a map calls it on a key's first use.

    The default builds an in-memory [`Throttler`][throttled_http.Throttler] (a
    [`SyncThrottler`][throttled_http.SyncThrottler] for
    [`SyncThrottlerMap`][throttled_http.SyncThrottlerMap]); a shared backend (such as
    `throttled_http.redis.RedisBackend`) returns a throttler whose state lives elsewhere.
    The map still drops only throttlers whose `is_idle()` is true. `ThrottlerT_co` in the
    signature is the type of throttler it makes: a
    [`ThrottlerLike`][throttled_http.ThrottlerLike] for a
    [`ThrottlerMap`][throttled_http.ThrottlerMap], a
    [`SyncThrottlerLike`][throttled_http.SyncThrottlerLike] for a
    [`SyncThrottlerMap`][throttled_http.SyncThrottlerMap].
    """

    def create(
        self,
        key: str,
        rates: tuple[Rate, ...],
        *,
        burst: int | None,
        max_concurrency: int | None,
    ) -> ThrottlerT_co:
        """Return a new throttler enforcing every one of `rates` for `key`."""
        ...


@final
class _LocalBackend(Generic[ThrottlerT_co]):
    """A default backend: one in-memory throttler per key, made by `make`.

    `make` takes the map's own rates tuple, so every key shares it.
    """

    __slots__ = ("_make",)

    def __init__(self, make: Callable[..., ThrottlerT_co]) -> None:
        self._make = make

    def create(self, key: str, rates: tuple[Rate, ...], **options: Any) -> ThrottlerT_co:
        return self._make(rates, **options)  # burst= and max_concurrency=


_IN_MEMORY: Final = (Throttler, SyncThrottler)
_MEMORY: Final = _LocalBackend(Throttler._from_parsed)  # ThrottlerMap's
_THREADS: Final = _LocalBackend(SyncThrottler._from_parsed)  # SyncThrottlerMap's


@final
@dataclass(frozen=True, slots=True)
class KeyStatistics:
    """The state of one key, in `ThrottlerMapStatistics.busiest` and `key_statistics()`.

    Attributes:
        key: the key (`"https://api.example.com:443"` with the default scope).
        rates: the limits in force for it.
        paused_for: seconds left of a pause (a server asked to slow down), 0 if none.
        statistics: the throttler's own snapshot (with its running totals `admitted` and
            `waited_seconds`) when its `statistics()` gives a
            [`ThrottlerStatistics`][throttled_http.ThrottlerStatistics], as a
            [`Throttler`][throttled_http.Throttler]'s does, else `None`.
    """

    key: str
    rates: tuple[Rate, ...]
    paused_for: float
    statistics: ThrottlerStatistics | None


@final
@dataclass(frozen=True, slots=True)
class ThrottlerMapStatistics:
    """A snapshot of a `ThrottlerMap`, from `ThrottlerMap.statistics`.

    Attributes:
        keys: throttlers held now (may exceed `max_keys` while that many are busy).
        max_keys: the cap on idle throttlers kept.
        busy: keys that are not idle (entries in a window, waiters, in flight or paused).
        paused: keys paused now.
        created: throttlers created since the map was made.
        evictions: idle throttlers forgotten to respect `max_keys`.
        busiest: at most `top` busy keys, paused keys first (longest pause first),
            then by waiting + in flight + in window.
        admitted: entries the map's throttlers admitted since it was made, a running
            total (the keys forgotten since included).
        waited_seconds: seconds spent queued in its throttlers, a running total (the
            keys forgotten since included).

    Changed in 0.2: `admitted` and `waited_seconds`.
    """

    keys: int
    max_keys: int
    busy: int
    paused: int
    created: int
    evictions: int
    busiest: tuple[KeyStatistics, ...]
    admitted: int = 0
    waited_seconds: float = 0.0


class BaseThrottlerMap(Generic[ThrottlerT]):
    """What `ThrottlerMap` and `SyncThrottlerMap` share: keys, overrides,
    bounded memory and statistics, over throttlers of type `ThrottlerT`."""

    __slots__ = (
        "__weakref__",
        "_backend",
        "_burst",
        "_created",
        "_evicted_admitted",
        "_evicted_waited",
        "_evictions",
        "_exact",
        "_limiters",
        "_lock",
        "_max_concurrency",
        "_max_keys",
        "_origins",
        "_patterns",
        "_rates",
        "_scope",
        "_scope_fn",
        "_scope_kind",
    )

    _default_backend: Any = _MEMORY

    def __init__(
        self,
        rate_limit: int | str | Rate | None = None,
        period: float | None = None,
        *,
        rates: RatesLike | None = None,
        max_concurrency: int | None = None,
        burst: int | None = None,
        scope: Scope = "host",
        overrides: Mapping[str, RatesLike | int | None] | None = None,
        max_keys: int = 10_000,
        backend: ThrottlerBackend[ThrottlerT] | None = None,
    ) -> None:
        self._rates = resolve_rates(rate_limit, period, rates)
        if max_concurrency is not None:
            max_concurrency = int_in_range("max_concurrency", max_concurrency, 1, 2**62)
        self._max_concurrency = max_concurrency
        self._burst = burst
        # Throttler validates burst against the rates exactly as every key will need it.
        Throttler.from_rates(*self._rates, burst=burst, max_concurrency=max_concurrency)
        self._scope_fn: Callable[[Any], str] | None = None
        if isinstance(scope, str) and scope in _SCOPES:
            self._scope_kind: str = scope
        elif callable(scope):
            self._scope_kind = "callable"
            self._scope_fn = scope
        else:
            raise ValueError(
                "scope must be 'host', 'domain', 'global' or a callable taking the URL and "
                f"returning a str, got {scope!r}"
            )
        self._scope = scope
        self._max_keys = positive_int("max_keys", max_keys)
        if backend is None:
            backend = self._default_backend
        elif not isinstance(backend, ThrottlerBackend):
            raise TypeError(
                "backend must have a create(key, rates, *, burst, max_concurrency) method, "
                f"got {backend!r}"
            )
        self._backend: ThrottlerBackend[ThrottlerT] = backend
        self._exact: dict[tuple[str, int | None], _Rule] = {}
        self._patterns: dict[tuple[str, int | None], _Rule] = {}
        if overrides is not None:
            self._add_overrides(overrides)
        self._limiters: OrderedDict[str, ThrottlerT] = OrderedDict()
        # origin -> (key, rates): both depend only on the URL's scheme, host and port for
        # the named scopes, and the configuration never changes, so entries never go stale.
        self._origins: dict[Hashable, tuple[str, tuple[Rate, ...] | None]] = {}
        self._created = 0
        self._evictions = 0
        # The running totals of the throttlers forgotten, so the map's own never go back.
        self._evicted_admitted = 0
        self._evicted_waited = 0.0
        self._lock = threading.Lock()  # taken by SyncThrottlerMap only

    def _add_overrides(self, overrides: Mapping[str, RatesLike | int | None]) -> None:
        if not isinstance(overrides, Mapping):
            raise TypeError(
                f"overrides must be a mapping of host name to rates or None, got {overrides!r}"
            )
        seen: dict[tuple[str, int | None, bool], str] = {}
        for name, spec in overrides.items():
            host, port, pattern = parse_override_key(name)
            if (host, port, pattern) in seen:
                raise ValueError(
                    f"overrides keys {seen[host, port, pattern]!r} and {name!r} name the "
                    "same hosts; keep one"
                )
            seen[host, port, pattern] = name
            rule_rates: tuple[Rate, ...] | None = None
            if spec is not None:
                try:
                    if isinstance(spec, int) and not isinstance(spec, bool):
                        # n per the map's own period, as rate_limit=n would be
                        rule_rates = (Rate(positive_int("the limit", spec), self._rates[0].period),)
                    else:
                        rule_rates = parse_rates(spec)  # type: ignore[arg-type]
                    Throttler.from_rates(
                        *rule_rates, burst=self._burst, max_concurrency=self._max_concurrency
                    )
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"overrides[{name!r}]: {exc}") from exc
            label = ("*." if pattern else "") + host + ("" if port is None else f":{port}")
            table = self._patterns if pattern else self._exact
            table[host, port] = (label, rule_rates)

    # -- configuration ---------------------------------------------------------------

    @property
    def rates(self) -> tuple[Rate, ...]:
        """The default rates, for keys no override matches."""
        return self._rates

    @property
    def scope(self) -> Scope:
        """How URLs map to keys, as given."""
        return self._scope

    @property
    def max_keys(self) -> int:
        """How many idle throttlers are kept at most."""
        return self._max_keys

    # -- lookups ---------------------------------------------------------------------

    def key_for(self, url: object) -> str:
        """The key `url`'s requests are limited under; creates nothing.

        Raises:
            InvalidURLError: (a ValueError) for a URL without a scheme or host.
        """
        return self._key_and_rates(url)[0]

    def resolve(
        self, url: object, *, origin: Hashable | None = None
    ) -> tuple[str, ThrottlerT | None]:
        """The key and the throttler for one request (created on first use).

        The throttler is `None` when an override says "no limit" for the host.

        `origin` lets a client skip parsing the URL again: any hashable value that
        determines the URL's scheme, host and port exactly, such as `(url.scheme,
        url.raw_host, url.port)` of a `yarl.URL` or an `httpx.URL`. The map remembers
        the key and rates of up to 1024 origins (forgetting them all when full): with a
        named `scope` they depend on nothing else. A callable `scope` always gets the
        URL, as it may look further. A URL string is its own origin: the text up to the
        path, so a lookup of a known host is a dictionary hit.

        Warning:
            Use the throttler right away (`await throttler.open_entry()`): a throttler held
            idle across an `await` may be evicted and replaced by a fresh one meanwhile,
            after which the two would limit the key independently. `limit` does this
            for you.

        Raises:
            InvalidURLError: (a ValueError) for a URL without a scheme or host.
        """
        if self._scope_fn is not None or (origin is None and url.__class__ is not str):
            # A callable scope always sees the URL; an object with no origin is parsed.
            key, rates = self._key_and_rates(url)
        else:
            if origin is None:
                # A URL string's text up to the first "/" after "//" holds its whole
                # scheme and authority: every URL sharing that text has the same key.
                text: str = url  # type: ignore[assignment]  # a str, checked above
                end = text.find("/", text.find("//") + 2)
                origin = text if end < 0 else text[:end]
            origins = self._origins
            known = origins.get(origin)
            if known is None:
                known = self._key_and_rates(url)
                if len(origins) >= _MAX_ORIGINS:
                    origins.clear()
                origins[origin] = known
            key, rates = known
        if rates is None:
            return key, None
        limiters = self._limiters
        limiter = limiters.get(key)
        if limiter is None:
            if len(limiters) >= self._max_keys:
                self._sweep(_SWEEP_ON_INSERT, self._max_keys - 1, None)
            limiter = self._backend.create(
                key, rates, burst=self._burst, max_concurrency=self._max_concurrency
            )
            limiters[key] = limiter
            self._created += 1
        else:
            limiters.move_to_end(key)
            if len(limiters) > self._max_keys:
                self._sweep(_SWEEP_ON_HIT, self._max_keys, key)
        return key, limiter

    def is_current(self, key: str, throttler: object) -> bool:
        """Whether `throttler` is still the one the map keeps under `key`.

        For callers that resolved a key, then waited without holding the map: a key may be
        evicted while idle, and an entry must count in the throttler the map holds. Asks
        nothing of `scope`, so a scope that answers differently each time (a rotating
        API token) cannot send the caller round again.
        """
        return throttler is not None and self._limiters.get(key) is throttler

    def throttler_for(self, url: object) -> ThrottlerT | None:
        """The throttler for `url` (created on first use), or `None` for no limit.

        See the warning in `resolve`.
        """
        return self.resolve(url)[1]

    def pause(self, url: object, seconds: float) -> None:
        """Admit nothing for `url`'s key for `seconds` (a server said "slow down").

        A shorter pause never cuts a longer one short; the key is not forgotten while
        paused. A no-op for a host an override leaves unlimited.
        """
        seconds = non_negative_float("seconds", seconds)
        limiter = self.resolve(url)[1]
        if limiter is not None:
            limiter.pause(seconds)

    # -- introspection ---------------------------------------------------------------

    def statistics(self, top: int = 10) -> ThrottlerMapStatistics:
        """A frozen snapshot with the `top` busiest keys (paused keys first).

        Takes O(number of keys) time; meant for monitoring, not for every request.
        """
        top = int_in_range("top", top, 0, 1_000_000)
        busy: list[tuple[tuple[bool, float, int], int, KeyStatistics]] = []
        paused = 0
        admitted = self._evicted_admitted
        waited = self._evicted_waited
        for index, (key, limiter) in enumerate(self._limiters.items()):
            key_admitted, key_waited = _totals_of(limiter)
            admitted += key_admitted
            waited += key_waited
            if limiter.is_idle():
                continue
            paused_for = limiter.paused_for
            if paused_for > 0:
                paused += 1
            snapshot = _statistics_of(limiter)
            load = 0
            if snapshot is not None:
                load = snapshot.waiting + snapshot.in_flight + snapshot.in_window
            entry = KeyStatistics(key, limiter.rates, paused_for, snapshot)
            busy.append(((paused_for > 0, paused_for, load), index, entry))
        best = heapq.nlargest(top, busy, key=lambda item: (item[0], -item[1]))
        return ThrottlerMapStatistics(
            keys=len(self._limiters),
            max_keys=self._max_keys,
            busy=len(busy),
            paused=paused,
            created=self._created,
            evictions=self._evictions,
            busiest=tuple(item[2] for item in best),
            admitted=admitted,
            waited_seconds=waited,
        )

    def key_statistics(self) -> Mapping[str, KeyStatistics]:
        """A frozen snapshot of every key held now, idle or busy, least recently used first.

        Where [`statistics`][throttled_http.ThrottlerMap.statistics] lists the busiest
        keys, this lists them all, with each key's running totals (`admitted`,
        `waited_seconds` in its `statistics`): what a metrics exporter reads. A key the
        map forgot (idle, past `max_keys`) is no longer listed; its totals stay in the
        map's own, from `statistics()`. Takes O(number of keys) time.
        """
        return MappingProxyType(
            {
                key: KeyStatistics(key, limiter.rates, limiter.paused_for, _statistics_of(limiter))
                for key, limiter in self._limiters.items()
            }
        )

    def __len__(self) -> int:
        return len(self._limiters)

    def __contains__(self, url: object) -> bool:
        """Whether a throttler is held now for `url`'s key (or for the key itself)."""
        if isinstance(url, str) and url in self._limiters:
            return True
        try:
            return self.key_for(url) in self._limiters
        except ValueError:
            return False

    def __repr__(self) -> str:
        rates = "; ".join(str(rate) for rate in self._rates)
        scope = (
            self._scope
            if isinstance(self._scope, str)
            else getattr(self._scope, "__qualname__", repr(self._scope))
        )
        overrides = len(self._exact) + len(self._patterns)
        return (
            f"<{type(self).__name__} {rates} scope={scope!r} keys={len(self._limiters)}/"
            f"{self._max_keys} overrides={overrides}>"
        )

    # -- internals -------------------------------------------------------------------

    def _key_and_rates(self, url: object) -> tuple[str, tuple[Rate, ...] | None]:
        scheme, host, port = split_url(url)
        rule = self._match(host, port) if (self._exact or self._patterns) else None
        kind = self._scope_kind
        if kind == "host":
            key = f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"
            return key, (self._rates if rule is None else rule[1])
        if kind == "domain":
            key = domain_key(host)
        elif kind == "global":
            key = "*"
        else:
            key = self._scope_fn(url) if self._scope_fn is not None else "*"
            if not isinstance(key, str):
                raise TypeError(f"scope({url!r}) must return a str, got {key!r}")
        if rule is None:
            return key, self._rates
        if kind == "domain" and rule[0] == host and is_standalone(host):
            return key, rule[1]  # an exact rule for an IP or a single label: nobody else's key
        return f"{key} [{rule[0]}]", rule[1]

    def _match(self, host: str, port: int | None) -> _Rule | None:
        exact = self._exact
        if exact:
            rule = exact.get((host, port)) or exact.get((host, None))
            if rule is not None:
                return rule
        patterns = self._patterns
        if patterns:
            suffix = host
            while True:
                dot = suffix.find(".")
                if dot < 0:
                    return None
                suffix = suffix[dot + 1 :]
                rule = patterns.get((suffix, port)) or patterns.get((suffix, None))
                if rule is not None:
                    return rule
        return None

    def _sweep(self, budget: int, target: int, keep: str | None) -> None:
        """Examine up to `budget` oldest keys while more than `target` are held."""
        limiters = self._limiters
        for _ in range(budget):
            if len(limiters) <= target:
                return
            key = next(iter(limiters))
            if key == keep:
                return
            limiter = limiters[key]
            if limiter.is_idle():
                del limiters[key]
                self._evictions += 1
                admitted, waited = _totals_of(limiter)
                self._evicted_admitted += admitted
                self._evicted_waited += waited
            else:
                limiters.move_to_end(key)


@final
class _Limit:
    """The context manager [`ThrottlerMap.limit`][throttled_http.ThrottlerMap.limit] returns."""

    __slots__ = ("_cost", "_entry", "_map", "_timeout", "_url")

    def __init__(self, hosts: ThrottlerMap, url: object, cost: int, timeout: float | None) -> None:
        self._map = hosts
        self._url = url
        self._cost = cost
        self._timeout = timeout
        self._entry: EntryLike | None = None

    async def __aenter__(self) -> EntryLike | None:
        limiter = self._map.resolve(self._url)[1]
        if limiter is None:
            return None
        self._entry = await limiter.open_entry(self._cost, timeout=self._timeout)
        return self._entry

    async def __aexit__(self, *exc_info: object) -> None:
        entry = self._entry
        if entry is not None:
            self._entry = None
            entry.close()


def _totals_of(limiter: object) -> tuple[int, float]:
    """A throttler's running totals: entries admitted and seconds waited."""
    if isinstance(limiter, _IN_MEMORY):
        ledger = limiter._ledger  # no snapshot to build for the common throttlers
        return ledger.admitted, ledger.waited
    snapshot = _statistics_of(limiter)
    return (0, 0.0) if snapshot is None else (snapshot.admitted, snapshot.waited_seconds)


def _statistics_of(limiter: object) -> ThrottlerStatistics | None:
    method = getattr(limiter, "statistics", None)
    if not callable(method):
        return None
    snapshot = method()
    return snapshot if isinstance(snapshot, ThrottlerStatistics) else None


@final
class ThrottlerMap(BaseThrottlerMap[ThrottlerLike]):
    """One throttler per host, created on demand, in bounded memory.

    Examples:
        >>> hosts = ThrottlerMap(10, 1.0, overrides={"api.github.com": "5000/h", "*.local": None})
        >>> hosts.key_for("https://API.github.com/repos")
        'https://api.github.com:443'

    Use it around any request:

    ```python
    async with hosts.limit(url):
        async with session.get(url) as response:
            ...
    ```

    **The guarantee.** For every key, every half-open window of `period` seconds holds at
    most `rate_limit` entries (each of its rates), counting an entry from admission until
    the `limit()` block exits (the response has arrived) and `period` after that. This
    holds across eviction: a key is forgotten only while its throttler is idle.

    **Keys** (`scope`):

    * `"host"`: `scheme://host:port`, normalized (lower case, IDNA, default port
      explicit, IPv6 in brackets, no userinfo, no trailing dot);
    * `"domain"`: the registrable domain per the Public Suffix List, so
      `www.bbc.co.uk` and `news.bbc.co.uk` share `bbc.co.uk` (any scheme and port);
      IP addresses, `localhost` and bare public suffixes key by themselves;
    * `"global"`: one throttler, key `"*"`, for everything;
    * a callable `scope(url) -> str`: any key you like (an API token, a path prefix).
      It receives the URL object as given.

    **Overrides** give some hosts other rates, or `None` for no limit at all. Keys are
    host names, optionally with a port: `"api.github.com"`, `"localhost:8080"`,
    `"*.example.org"` (subdomains of `example.org`, not `example.org` itself). An exact
    host beats the longest matching `*.` pattern, which beats the default; at equal
    length a rule with the request's port beats one for any port. Overrides choose the
    rates; the scope still chooses the key. With a scope other than `"host"` the hosts
    matching one override rule get their own throttler per scope key, keyed
    `"<scope key> [<override key>]"` so that no key ever runs under two sets of rates
    (an IP address or single-label host such as `localhost`, which is its own domain,
    keeps its plain key under an exact override).

    **Memory.** At most `max_keys` throttlers are kept when the others are idle: inserting
    a key past the cap examines a few of the least recently used keys, forgets the idle
    ones and moves busy ones to the young end, so every lookup is O(1) amortized. A key
    with an entry in its window, a waiter, a request in flight or a pause is never
    forgotten, since forgetting it would let a burst through: when more than `max_keys`
    keys are busy at once the map grows past the cap, and shrinks back as they go idle
    and later lookups sweep them out.

    Not thread-safe: use it from one event loop
    ([`SyncThrottlerMap`][throttled_http.SyncThrottlerMap] is the thread-safe twin, for the
    threaded clients).

    In the signatures below, `ThrottlerT` is the type of the map's throttlers: a
    [`ThrottlerLike`][throttled_http.ThrottlerLike] here.

    Args:
        rate_limit: default entries per window per key, an int >= 1 (default 10), or a
            rate string such as `"10/s"`.
        period: the default window, in seconds (finite, > 0; default 1.0), for an int
            `rate_limit` only.
        rates: default rates as `"10/s; 1000/h"`, [`Rate`][throttled_http.Rate] values
            or an iterable of them, instead of `rate_limit` and `period`.
        max_concurrency: cap on requests in flight per key (`None`: no cap).
        burst: smooth mode for every key, `1 <= burst <=` each key's slowest limit.
        scope: `"host"`, `"domain"`, `"global"` or a callable `scope(url) -> str`.
        overrides: a mapping of host name or `*.suffix` pattern to rates (as for
            `rates`; an int `n` means `n` per the period of the map's first rate,
            as `rate_limit=n` would) or `None` (no limit for those hosts).
        max_keys: idle throttlers kept at most, an int >= 1.
        backend: makes each key's throttler (default: an in-memory
            [`Throttler`][throttled_http.Throttler]).

    Raises:
        TypeError, ValueError: at construction, naming the argument (a `TypeError`
            names both when one would leave the other unused, as `rates` beside
            `rate_limit`); an invalid override names its key
            (`overrides['api.github.com']: ...`).

    Changed in 0.2: `stats()` is [`statistics`][throttled_http.ThrottlerMap.statistics],
    `holds()` is [`is_current`][throttled_http.ThrottlerMap.is_current];
    `rate_limit`/`period` beside `rates` is a `TypeError`.
    """

    __slots__ = ()

    def limit(
        self, url: object, cost: int = 1, *, timeout: float | None = None
    ) -> AbstractAsyncContextManager[EntryLike | None]:
        """An async context manager that admits one request to `url` under its key's limit.

        `async with hosts.limit(url) as entry:` waits for a latency-proof entry of
        `cost`; it counts in the key's windows from admission until the block exits (or
        `entry.settle()` is called, e.g. when response headers arrive) and for `period`
        after that. `entry` is `None` and nothing waits when an override says "no limit"
        for the host.

        Args:
            url: the request's URL (`str`, `yarl.URL`, `httpx.URL`...).
            cost: weight of the request, `1 <=` cost `<=` the key's smallest limit.
            timeout: seconds to wait at most, else
                [`ThrottlerTimeoutError`][throttled_http.ThrottlerTimeoutError] (`None`: no limit).

        Raises:
            InvalidURLError: on entering, for a URL without a scheme or host.
        """
        return _Limit(self, url, cost, timeout)


@final
class SyncThrottlerMap(BaseThrottlerMap[SyncThrottlerLike]):
    """The thread-safe twin of `ThrottlerMap`, over `SyncThrottler` instances.

    ```python
    hosts = SyncThrottlerMap(rate_limit=5, period=1.0)
    a = httpx.Client(transport=SyncThrottledTransport(throttler=hosts))
    b = httpx.Client(transport=SyncThrottledTransport(throttler=hosts))
    # a and b share each host's limit, from any thread
    ```

    The same keys, overrides, bounded memory and guarantee as
    [`ThrottlerMap`][throttled_http.ThrottlerMap] (one implementation), with a lock around
    every lookup, so any number of threads and clients may share it. Its default backend
    builds a [`SyncThrottler`][throttled_http.SyncThrottler] per key.

    In the signatures, `ThrottlerT` is the type of the map's throttlers: a
    [`SyncThrottlerLike`][throttled_http.SyncThrottlerLike] here.

    Args:
        rate_limit: as for [`ThrottlerMap`][throttled_http.ThrottlerMap].
        period: as for [`ThrottlerMap`][throttled_http.ThrottlerMap].
        rates: as for [`ThrottlerMap`][throttled_http.ThrottlerMap].
        max_concurrency: as for [`ThrottlerMap`][throttled_http.ThrottlerMap].
        burst: as for [`ThrottlerMap`][throttled_http.ThrottlerMap].
        scope: as for [`ThrottlerMap`][throttled_http.ThrottlerMap].
        overrides: as for [`ThrottlerMap`][throttled_http.ThrottlerMap].
        max_keys: as for [`ThrottlerMap`][throttled_http.ThrottlerMap].
        backend: makes each key's throttler (default: a
            [`SyncThrottler`][throttled_http.SyncThrottler]).
    """

    __slots__ = ()
    _default_backend: Any = _THREADS

    def resolve(
        self, url: object, *, origin: Hashable | None = None
    ) -> tuple[str, SyncThrottlerLike | None]:
        """As `ThrottlerMap.resolve`, under the map's lock."""
        with self._lock:
            return super().resolve(url, origin=origin)

    def is_current(self, key: str, throttler: object) -> bool:
        """As `ThrottlerMap.is_current`, under the map's lock."""
        with self._lock:
            return super().is_current(key, throttler)

    def pause(self, url: object, seconds: float) -> None:
        """As [`ThrottlerMap.pause`][throttled_http.ThrottlerMap.pause], under the map's lock.

        The lock is held until the pause is in force: a throttler is evicted only while
        idle, so another thread must not evict it between its lookup and its pause.
        """
        seconds = non_negative_float("seconds", seconds)
        with self._lock:
            throttler = BaseThrottlerMap.resolve(self, url)[1]
            if throttler is not None:
                throttler.pause(seconds)

    def statistics(self, top: int = 10) -> ThrottlerMapStatistics:
        """As `ThrottlerMap.statistics`, under the map's lock."""
        with self._lock:
            return super().statistics(top)

    def key_statistics(self) -> Mapping[str, KeyStatistics]:
        """As `ThrottlerMap.key_statistics`, under the map's lock."""
        with self._lock:
            return super().key_statistics()
