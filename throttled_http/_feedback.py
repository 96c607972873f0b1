"""Act on what servers say: pause a host, follow its advertised quota, retry refused requests.

:class:`FeedbackPolicy` is the client-independent half of server feedback; the aiohttp and
httpx integrations call it for every response, right after the headers arrive::

    delay = policy.observe(throttler, key, response.status, response.headers)
    wait = policy.retry_delay(method, response.status, attempt, delay, key=key)
    if wait is not None:
        ...  # release the response, sleep `wait` seconds, send again through the throttler

It reads headers with the pure :func:`~throttled_http.parse_feedback` and acts only through
the throttler's public :meth:`~throttled_http.Throttler.pause` and
:meth:`~throttled_http.Throttler.set_rates`, which never break the window guarantee.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Protocol, final

from ._headers import THROTTLE_STATUSES, Feedback, HeadersLike, parse_feedback
from ._rates import Rate
from ._validate import int_in_range, non_negative_float, positive_float, positive_int

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._rates import RatesLike

__all__ = [
    "DEFAULT_RETRY_METHODS",
    "FeedbackPolicy",
    "FeedbackStatistics",
    "FeedbackTarget",
    "KeyFeedbackStatistics",
]

logger = logging.getLogger("throttled_http")

DEFAULT_RETRY_METHODS: Final = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
"""The idempotent methods (RFC 9110 §9.2.2, less TRACE) retried by default."""

_MIN_FACTOR: Final = 1.0 / 1024.0
_LRU_LIMITERS: Final = 1024  # tuning state kept for throttlers that cannot be weakly referenced


class FeedbackTarget(Protocol):
    """What :meth:`FeedbackPolicy.observe` needs of a throttler.

    :class:`~throttled_http.Throttler`, :class:`~throttled_http.SyncThrottler` and every
    :class:`~throttled_http.ThrottlerLike` have it.
    """

    @property
    def rates(self) -> tuple[Rate, ...]: ...

    @property
    def paused_for(self) -> float: ...

    def pause(self, seconds: float) -> None: ...

    def set_rates(self, *rates: RatesLike, burst: int | None = None) -> None: ...


@final
@dataclass(frozen=True, slots=True)
class KeyFeedbackStatistics:
    """What a :class:`FeedbackPolicy` did for one key (host).

    Attributes:
        pauses: pauses that started or extended this key's pause.
        paused_seconds: seconds of pause they added in all (overlaps counted once).
        retries: retries granted by :meth:`FeedbackPolicy.retry_delay` for this key.
        rate_cuts: multiplicative cuts after a 429 without a usable header (``adapt``).
        adoptions: changes of the rates in force to follow an advertised quota (``adapt``).
        last_reason: the header behind the latest pause (``"Retry-After"`` ...), or ``None``.
    """

    pauses: int = 0
    paused_seconds: float = 0.0
    retries: int = 0
    rate_cuts: int = 0
    adoptions: int = 0
    last_reason: str | None = None


@final
@dataclass(frozen=True, slots=True)
class FeedbackStatistics:
    """A snapshot of what a :class:`FeedbackPolicy` did, from :meth:`FeedbackPolicy.statistics`.

    The totals count every key since the policy was made; ``by_key`` holds the
    ``max_keys`` most recently active keys.

    Attributes:
        pauses: pauses that started or extended a key's pause.
        paused_seconds: seconds of pause they added in all.
        retries: retries granted.
        rate_cuts: multiplicative rate cuts (``adapt``).
        adoptions: rate changes following an advertised quota (``adapt``).
        by_key: per-key counters, read-only.
    """

    pauses: int
    paused_seconds: float
    retries: int
    rate_cuts: int
    adoptions: int
    by_key: Mapping[str, KeyFeedbackStatistics]


@final
class _Counters:
    __slots__ = ("adoptions", "last_reason", "paused_seconds", "pauses", "rate_cuts", "retries")

    def __init__(self) -> None:
        self.pauses = 0
        self.paused_seconds = 0.0
        self.retries = 0
        self.rate_cuts = 0
        self.adoptions = 0
        self.last_reason: str | None = None

    def freeze(self) -> KeyFeedbackStatistics:
        return KeyFeedbackStatistics(
            pauses=self.pauses,
            paused_seconds=self.paused_seconds,
            retries=self.retries,
            rate_cuts=self.rate_cuts,
            adoptions=self.adoptions,
            last_reason=self.last_reason,
        )


@final
class _Tuning:
    """The adaptive state of one throttler (``adapt=True``)."""

    __slots__ = (
        "advertised",
        "applied",
        "burst",
        "configured",
        "factor",
        "last_adopt",
        "last_cut",
        "quiet",
    )

    def __init__(self, configured: tuple[Rate, ...], burst: int | None, now: float) -> None:
        self.configured = configured  # the rates to recover to, never exceeded
        self.burst = burst
        self.factor = 1.0  # multiplier of every configured limit (AIMD)
        self.advertised: tuple[Rate, ...] = ()  # the server's latest usable quota
        self.applied = configured  # the rates we last put in force
        self.last_cut = -math.inf
        self.last_adopt = -math.inf
        self.quiet = now  # start of the current period without a 429

    def effective(self) -> tuple[Rate, ...]:
        """Configured rates scaled by the AIMD factor, plus every advertised quota that
        they do not already imply. Never looser than the configured rates."""
        factor = self.factor
        scaled = (
            self.configured
            if factor >= 1.0
            else tuple(Rate(max(1, int(r.limit * factor)), r.period) for r in self.configured)
        )
        # Rate(c, q) implies Rate(a, p) when q >= p and c <= a: any window of p seconds lies
        # inside one of q seconds, which holds at most c <= a entries.
        extra = tuple(
            a
            for a in self.advertised
            if not any(s.period >= a.period and s.limit <= a.limit for s in scaled)
        )
        return scaled + extra

    def burst_for(self, rates: tuple[Rate, ...]) -> int | None:
        if self.burst is None:
            return None
        slowest = max(rates, key=lambda r: (r.interval, -r.limit))
        return min(self.burst, slowest.limit)


@final
class FeedbackPolicy:
    """Pause, retune and retry as the server asks; bounded against hostile servers.

    Build one and pass it to a client (``feedback=FeedbackPolicy(retries=3)``); one policy
    serves any number of throttlers, keys and clients. A client given none uses
    ``FeedbackPolicy()``: pauses on ``Retry-After``, no adaptation, no retries.

    **Pauses.** :meth:`observe` pauses the throttler of the responding host (and only that
    one) for the time the server names: ``Retry-After`` on a 429, 503 or 403,
    ``X-RateLimit-Remaining: 0`` with its reset, or an IETF ``RateLimit`` member with
    ``r=0`` (see :func:`~throttled_http.parse_feedback`). The pause lasts at most
    ``max_retry_after`` seconds, starts when the headers are observed, never cuts a longer
    pause short, and leaves entries already admitted alone. The response itself is not
    changed.

    **Adaptation** (``adapt=True``). When the server advertises a quota
    (``RateLimit-Policy: "default";q=100;w=60`` or ``X-RateLimit-Limit: 100;w=60``) that
    the configured rates do not already imply, it is added to the throttler's rates with
    :meth:`~throttled_http.Throttler.set_rates`, so an entry needs room in both: the
    limit becomes stricter, never looser. A later advertisement replaces it. Windows
    longer than ``max_retry_after`` are not adopted (they could hold a request longer than
    the cap); their ``Remaining: 0`` still pauses. The adopted quota changes at most once
    per longest window in force, so a server that flips its advertisement on every
    response cannot make the throttler keep ever more retiring windows.

    When a host answers 429 with no usable header, every configured limit is multiplied by
    ``decrease`` (at least 1 entry per window remains); a second cut needs another 429 at
    least one longest configured ``period`` later, so the responses to requests already
    in flight count once. After each ``quiet_period`` seconds without a 429 the
    multiplier grows by ``increase`` until the configured rates are back (AIMD, as TCP
    congestion control). Recovery happens as responses are observed; nothing runs in
    the background. If someone else calls ``set_rates`` on the throttler, its new rates
    become the configured ones.

    **Retries.** :meth:`retry_delay` allows at most ``retries`` re-sends of a request
    refused with 429 or 503, for the methods in ``retry_methods`` and only when the body
    can be replayed: after the server's delay when it gave one, otherwise after an
    exponential backoff with jitter.

    **Observability.** Every pause that starts or extends a host's pause is logged on the
    ``"throttled_http"`` logger (WARNING after a 429/503, INFO otherwise) with the key,
    the header and the duration, and counted in :meth:`statistics`; the throttler's
    ``paused_for`` shows the time left.

    Args:
        max_retry_after: longest pause, in seconds (a finite number >= 0), and longest
            adopted window.
        ignore_server_times: ignore every time servers give: no pause, retries wait for
            the backoff only, and with ``adapt`` every 429 counts as one without a usable
            header.
        adapt: follow advertised quotas and cut the rate after a bare 429.
        retries: re-sends allowed per request, an int from 0 to 100.
        retry_methods: methods that may be re-sent (upper-cased); the default is the
            idempotent ones. Add ``"POST"`` only if your server deduplicates.
        backoff: seconds before the first retry when no header gives a time; doubled
            each attempt. A finite number > 0.
        max_backoff: longest backoff, in seconds, ``>= backoff``.
        decrease: multiplier applied by a cut, ``0 < decrease < 1``.
        increase: fraction of the configured limits restored per quiet period,
            ``0 < increase <= 1``.
        quiet_period: seconds without a 429 before each increase; ``None`` uses the
            throttler's longest configured ``period``.
        max_keys: keys whose counters :meth:`statistics` keeps (least recently active dropped).

    Raises:
        TypeError, ValueError: at construction, naming the argument and its allowed range.

    Thread-safe: one policy may serve the async and the threaded clients at once.

    Changed in 0.2: ``stats()`` is :meth:`statistics`; ``max_retry_after=None`` is
    spelled ``ignore_server_times=True``; the policy is the clients' only way to set
    ``max_retry_after``, ``adapt`` and ``retries``.
    """

    __slots__ = (
        "_backoff",
        "_by_key",
        "_cap",
        "_decrease",
        "_increase",
        "_lock",
        "_max_backoff",
        "_max_keys",
        "_max_retry_after",
        "_quiet_period",
        "_retries",
        "_retry_methods",
        "_strong",
        "_totals",
        "_weak",
        "adapt",
    )

    def __init__(
        self,
        *,
        max_retry_after: float = 300.0,
        ignore_server_times: bool = False,
        adapt: bool = False,
        retries: int = 0,
        retry_methods: Iterable[str] = DEFAULT_RETRY_METHODS,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        decrease: float = 0.5,
        increase: float = 0.1,
        quiet_period: float | None = None,
        max_keys: int = 10_000,
    ) -> None:
        if max_retry_after is None:
            raise TypeError(
                "max_retry_after must be a finite number of seconds >= 0, got None; to "
                "ignore the times servers give, pass ignore_server_times=True"
            )
        self._cap = non_negative_float("max_retry_after", max_retry_after)
        if not isinstance(ignore_server_times, bool):
            raise TypeError(
                f"ignore_server_times must be True or False, got {ignore_server_times!r}"
            )
        # None inside: no server time is read at all.
        self._max_retry_after = None if ignore_server_times else self._cap
        if not isinstance(adapt, bool):
            raise TypeError(f"adapt must be True or False, got {adapt!r}")
        self.adapt: Final = adapt
        self._retries = int_in_range("retries", retries, 0, 100)
        self._retry_methods = _methods(retry_methods)
        self._backoff = positive_float("backoff", backoff)
        self._max_backoff = positive_float("max_backoff", max_backoff)
        if self._max_backoff < self._backoff:
            raise ValueError(f"max_backoff must be >= backoff ({backoff!r} s), got {max_backoff!r}")
        self._decrease = _fraction("decrease", decrease, closed=False)
        self._increase = _fraction("increase", increase, closed=True)
        self._quiet_period = (
            None if quiet_period is None else positive_float("quiet_period", quiet_period)
        )
        self._max_keys = positive_int("max_keys", max_keys)
        self._lock = threading.Lock()
        self._totals = _Counters()
        self._by_key: OrderedDict[str, _Counters] = OrderedDict()
        self._weak: weakref.WeakKeyDictionary[FeedbackTarget, _Tuning] = weakref.WeakKeyDictionary()
        self._strong: OrderedDict[FeedbackTarget, _Tuning] = OrderedDict()

    # -- configuration ---------------------------------------------------------------

    @property
    def max_retry_after(self) -> float:
        """The longest pause, in seconds."""
        return self._cap

    @property
    def ignore_server_times(self) -> bool:
        """Whether every time servers give is ignored."""
        return self._max_retry_after is None

    @property
    def retries(self) -> int:
        """Re-sends allowed per request."""
        return self._retries

    @property
    def retry_methods(self) -> frozenset[str]:
        """Methods that may be re-sent, upper-case."""
        return self._retry_methods

    # -- the two calls the integrations make ----------------------------------------

    def observe(
        self,
        throttler: FeedbackTarget | None,
        key: str,
        status: int,
        headers: HeadersLike,
    ) -> float | None:
        """Apply one response's feedback to the throttler of the host that sent it.

        Call it as soon as the response headers arrive, for every response (a 200 may
        carry ``X-RateLimit-Remaining: 0``). It pauses ``throttler`` for the capped time the
        server asked for and, with ``adapt=True``, retunes it (see the class docs).

        Never raises: a failure of the throttler itself (a Redis backend down, say) is
        logged at WARNING and the delay is still returned.

        Args:
            throttler: the throttler that admitted the request, or ``None`` for a host with no
                limit (nothing is paused, the delay is still returned for retries).
            key: the throttler's key (``"https://api.example.com:443"``), for logs and stats.
            status: the response status code.
            headers: the response headers: a Mapping such as aiohttp's ``CIMultiDict`` or
                httpx's ``Headers``, or ``(name, value)`` pairs.

        Returns:
            The seconds the server asked to wait, capped at ``max_retry_after`` (``0.0``
            when its time has passed), or ``None`` when no header gives a time (or
            ``ignore_server_times`` is set). Pass it to :meth:`retry_delay`.
        """
        feedback = parse_feedback(
            status, headers, now=time.time(), max_retry_after=self._max_retry_after
        )
        if throttler is None:
            return feedback.delay
        try:
            with self._lock:
                if feedback.delay is not None and feedback.delay > 0:
                    self._pause(throttler, key, feedback, feedback.delay)
                if self.adapt:
                    self._tune(throttler, key, status, feedback)
        except Exception:
            logger.warning("%s: could not apply server feedback %r", key, feedback, exc_info=True)
        return feedback.delay

    def admitted(self, throttler: FeedbackTarget, key: str) -> None:
        """Tell the policy that ``throttler`` just admitted a request for ``key``.

        The integrations call it after each admission, before the request is sent, when
        ``adapt`` is on; a client of your own should too (see :meth:`observe`). It lets the
        policy hold back a host it has not heard from yet (slow start). It never raises.

        Args:
            throttler: the throttler that admitted the request.
            key: the throttler's key, as for :meth:`observe`.
        """

    def retry_delay(
        self,
        method: str,
        status: int,
        attempt: int,
        server_delay: float | None,
        *,
        replayable: bool = True,
        key: str | None = None,
    ) -> float | None:
        """Seconds to wait before re-sending a refused request, or ``None``: do not retry.

        A retry is allowed when all hold: ``status`` is 429 or 503; ``method`` is in
        ``retry_methods``; ``replayable`` (the body can be sent again: not a consumed
        stream); and ``attempt <= retries``. The wait is then ``server_delay`` when given
        (capped at ``max_retry_after``; ignored with ``ignore_server_times``), else an
        exponential backoff with "equal jitter" (:meth:`backoff_delay`):
        uniform in ``[b / 2, b]`` with ``b = min(max_backoff, backoff * 2 ** (attempt - 1))``.

        The re-sent request must go through the throttler again: it waits for the pause
        :meth:`observe` set, and for its turn.

        Args:
            method: the request method, any case.
            status: the response status code.
            attempt: the number of the retry about to happen, from 1.
            server_delay: what :meth:`observe` returned for the response.
            replayable: whether the request body can be sent again.
            key: the throttler's key, to count the retry in :meth:`statistics`.

        Raises:
            ValueError, TypeError: when ``attempt`` is not an int >= 1.
        """
        attempt = positive_int("attempt", attempt)
        if (
            attempt > self._retries
            or not replayable
            or status not in THROTTLE_STATUSES
            or method.upper() not in self._retry_methods
        ):
            return None
        if (
            self._max_retry_after is not None  # else ignore_server_times: backoff only
            and server_delay is not None
            and math.isfinite(server_delay)
            and server_delay >= 0
        ):
            cap = self._max_retry_after
            wait = server_delay if server_delay <= cap else cap
        else:
            wait = self.backoff_delay(attempt)
        with self._lock:
            self._totals.retries += 1
            if key is not None:
                self._counters(key).retries += 1
        return wait

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` when the server named no time.

        An exponential backoff with "equal jitter": uniform in ``[b / 2, b]`` with
        ``b = min(max_backoff, backoff * 2 ** (attempt - 1))``. For retries the policy does
        not decide itself, such as after a connection error.

        Raises:
            ValueError, TypeError: when ``attempt`` is not an int >= 1.
        """
        attempt = positive_int("attempt", attempt)
        ceiling = min(self._max_backoff, self._backoff * 2.0 ** min(attempt - 1, 64))
        return ceiling / 2 + random.random() * ceiling / 2  # jitter, not crypto

    # -- introspection ---------------------------------------------------------------

    def statistics(self) -> FeedbackStatistics:
        """A frozen snapshot of the counters, in all and per key."""
        with self._lock:
            totals = self._totals
            return FeedbackStatistics(
                pauses=totals.pauses,
                paused_seconds=totals.paused_seconds,
                retries=totals.retries,
                rate_cuts=totals.rate_cuts,
                adoptions=totals.adoptions,
                by_key=MappingProxyType({k: c.freeze() for k, c in self._by_key.items()}),
            )

    def __repr__(self) -> str:
        return (
            f"<FeedbackPolicy max_retry_after={self._cap!r} "
            f"ignore_server_times={self.ignore_server_times} adapt={self.adapt} "
            f"retries={self._retries}>"
        )

    # -- internals -------------------------------------------------------------------

    def _counters(self, key: str) -> _Counters:
        by_key = self._by_key
        counters = by_key.get(key)
        if counters is None:
            counters = by_key[key] = _Counters()
            if len(by_key) > self._max_keys:
                by_key.popitem(last=False)
        else:
            by_key.move_to_end(key)
        return counters

    def _pause(self, throttler: FeedbackTarget, key: str, feedback: Feedback, delay: float) -> None:
        before = throttler.paused_for
        throttler.pause(delay)
        added = delay - before
        if added <= 0:
            return  # an earlier, longer pause already covers it
        for counters in (self._totals, self._counters(key)):
            counters.pauses += 1
            counters.paused_seconds += added
            counters.last_reason = feedback.reason
        capped = ""
        if feedback.capped:
            capped = f"; the server asked for {feedback.requested:.0f} s, capped by max_retry_after"
        logger.log(
            logging.WARNING if feedback.throttled else logging.INFO,
            "%s: pausing for %.3f s (%s%s)",
            key,
            delay,
            feedback.reason,
            capped,
        )

    def _tuning(self, throttler: FeedbackTarget, now: float) -> _Tuning:
        rates = tuple(throttler.rates)
        try:
            state = self._weak.get(throttler)
            weak = True
        except TypeError:  # not weakly referenceable: a bounded, least-recently-used map
            state = self._strong.get(throttler)
            weak = False
        if state is None or state.applied != rates:
            # New to us, or retuned by someone else: its rates are the configured ones now.
            burst = getattr(throttler, "burst", None)
            state = _Tuning(rates, burst if isinstance(burst, int) else None, now)
            if weak:
                self._weak[throttler] = state
            else:
                self._strong[throttler] = state
                if len(self._strong) > _LRU_LIMITERS:
                    self._strong.popitem(last=False)
        elif not weak:
            self._strong.move_to_end(throttler)
        return state

    def _tune(self, throttler: FeedbackTarget, key: str, status: int, feedback: Feedback) -> None:
        now = _monotonic()
        state = self._tuning(throttler, now)
        longest = max(r.period for r in state.configured)
        cut = adopted = False
        if feedback.quota:
            bound = self._cap  # the longest adopted window, whether server times are read
            usable = tuple(r for r in feedback.quota if r.period <= bound)
            # One change per longest window in force: a server flipping its quota on every
            # response cannot pile up retiring windows in the throttler.
            settled = now - state.last_adopt >= max(r.period for r in state.applied)
            if usable and usable != state.advertised and settled:
                state.advertised = usable
                state.last_adopt = now
                adopted = True
        if status == 429:
            bare = feedback.delay is None
            if bare and now - state.last_cut >= longest:
                state.factor = max(_MIN_FACTOR, state.factor * self._decrease)
                state.last_cut = now
                cut = True
            state.quiet = now
        elif state.factor < 1.0:
            quiet = self._quiet_period if self._quiet_period is not None else longest
            steps = int((now - state.quiet) / quiet)
            if steps > 0:
                state.factor = min(1.0, state.factor + steps * self._increase)
                state.quiet += steps * quiet
        rates = state.effective()
        if rates == state.applied:
            return
        throttler.set_rates(*rates, burst=state.burst_for(rates))
        state.applied = tuple(throttler.rates)
        shown = ", ".join(str(r) for r in rates)
        if cut:
            for counters in (self._totals, self._counters(key)):
                counters.rate_cuts += 1
            logger.warning("%s: 429 without a usable header; rates cut to %s", key, shown)
        elif adopted:
            for counters in (self._totals, self._counters(key)):
                counters.adoptions += 1
            logger.info("%s: following the advertised quota; rates now %s", key, shown)
        else:
            logger.info("%s: quiet for a while; rates recovered to %s", key, shown)


def _monotonic() -> float:
    """The clock the throttlers use: the running loop's (virtual in tests), else monotonic."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def _methods(methods: object) -> frozenset[str]:
    if isinstance(methods, str) or not isinstance(methods, Iterable):
        raise TypeError(
            "retry_methods must be an iterable of method names such as ('GET', 'PUT'), "
            f"got {methods!r}"
        )
    result = []
    for method in methods:
        if not isinstance(method, str) or not method.strip():
            raise TypeError(f"retry_methods must hold method names such as 'GET', got {method!r}")
        result.append(method.strip().upper())
    return frozenset(result)


def _fraction(name: str, value: object, *, closed: bool) -> float:
    bound = "0 < {name} <= 1" if closed else "0 < {name} < 1"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number with {bound.format(name=name)}, got {value!r}")
    result = float(value)
    if not (0 < result < 1 or (closed and result == 1)):
        raise ValueError(f"{name} must be a number with {bound.format(name=name)}, got {value!r}")
    return result
