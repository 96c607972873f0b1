"""The memory of a `FeedbackPolicy`: what it counts and adapts, per host.

`HostBook` holds the running totals (per key and in all), the adaptive state of
each throttler (a `HostPace`, held weakly, or in a bounded
map for throttlers that cannot be weakly referenced), and does what one response or one
admission asks of its host's throttler: pause it, retune it, lift a slow start, and say
so in the log once. The policy owns one, behind its lock; nothing here is thread-safe
by itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Protocol, final

from ._adapt import HostPace
from ._headers import THROTTLE_STATUSES
from ._sync import SyncThrottler
from ._throttler import Throttler

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._headers import Feedback
    from ._rates import Rate, RatesLike

__all__ = ["FeedbackStatistics", "FeedbackTarget", "HostBook", "KeyFeedbackStatistics"]

logger = logging.getLogger("throttled_http")
logger.addHandler(logging.NullHandler())

_LRU_LIMITERS: Final = 1024  # tuning state kept for throttlers that cannot be weakly referenced
_QUIET_LOG: Final = 1.0  # seconds: at most one refusal warning per host per pause, or second
_QUIET_PAUSES: Final = 60.0  # seconds: at most one INFO line per host for other pauses
_LOCAL: Final = (Throttler, SyncThrottler)  # throttlers whose pause is this process's own


class FeedbackTarget(Protocol):
    """What [`FeedbackPolicy.observe`][throttled_http.FeedbackPolicy.observe] needs of a throttler.

    [`Throttler`][throttled_http.Throttler], [`SyncThrottler`][throttled_http.SyncThrottler] and
    every [`ThrottlerLike`][throttled_http.ThrottlerLike] have it.
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
    """What a policy did for one key (host): running totals, and the pace.

    One entry of [`FeedbackStatistics.by_key`][throttled_http.FeedbackStatistics].

    Attributes:
        refusals: responses refused for load (429 or 503).
        pauses: pauses started (an extension of a pause in force is not a new one).
        paused_seconds: seconds of pause added in all (overlaps counted once).
        retries: retries granted by
            [`FeedbackPolicy.retry_delay`][throttled_http.FeedbackPolicy.retry_delay] for this key.
        rate_cuts: congestion events that lowered the pace (`adapt`).
        adoptions: advertised quotas adopted, each replacing the one followed (`adapt`).
        last_reason: the header behind the latest pause (`"Retry-After"` ...), or `None`.
        rates: the rates in force after the latest response the policy read (empty before).
        pace: the learned pace, as a rate, while it holds the host below its configured
            and advertised limits (`adapt`); `None` at the ceiling.

    Changed in 0.2: `refusals`, `rates` and `pace`; `pauses` counts pauses started.
    """

    pauses: int = 0
    paused_seconds: float = 0.0
    retries: int = 0
    rate_cuts: int = 0
    adoptions: int = 0
    last_reason: str | None = None
    refusals: int = 0
    rates: tuple[Rate, ...] = ()
    pace: Rate | None = None


@final
@dataclass(frozen=True, slots=True)
class FeedbackStatistics:
    """A snapshot of what a policy did, in all and per key.

    From [`FeedbackPolicy.statistics`][throttled_http.FeedbackPolicy.statistics].

    The totals count every key since the policy was made; `by_key` holds the
    `max_keys` most recently active keys.

    Attributes:
        pauses: pauses started.
        paused_seconds: seconds of pause they added in all.
        retries: retries granted.
        rate_cuts: congestion events that lowered a pace (`adapt`).
        adoptions: advertised quotas adopted (`adapt`).
        by_key: per-key counters, read-only.
        refusals: responses refused for load (429 or 503).
    """

    pauses: int
    paused_seconds: float
    retries: int
    rate_cuts: int
    adoptions: int
    by_key: Mapping[str, KeyFeedbackStatistics]
    refusals: int = 0


@final
class _Counters:
    __slots__ = (
        "adoptions",
        "last_reason",
        "pace",
        "pause_logged",
        "paused_seconds",
        "pauses",
        "rate_cuts",
        "rates",
        "refusals",
        "retries",
        "warned_until",
    )

    def __init__(self) -> None:
        self.pauses = 0
        self.paused_seconds = 0.0
        self.retries = 0
        self.rate_cuts = 0
        self.adoptions = 0
        self.refusals = 0
        self.last_reason: str | None = None
        self.rates: tuple[Rate, ...] = ()
        self.pace: Rate | None = None
        self.warned_until = -math.inf
        self.pause_logged = -math.inf

    def freeze(self) -> KeyFeedbackStatistics:
        return KeyFeedbackStatistics(
            pauses=self.pauses,
            paused_seconds=self.paused_seconds,
            retries=self.retries,
            rate_cuts=self.rate_cuts,
            adoptions=self.adoptions,
            last_reason=self.last_reason,
            refusals=self.refusals,
            rates=self.rates,
            pace=self.pace,
        )


@final
class _Notes:
    """What one response made the policy do, for its log line."""

    __slots__ = ("change", "pause")

    def __init__(self) -> None:
        self.pause: str | None = None  # "for 1.000 s (Retry-After)" when a pause started
        self.change: str | None = None  # "pace cut to 2/s (...)" when the rates changed


@final
class HostBook:
    """The counters and the adaptive state of every host a policy has seen.

    Args:
        adapt: whether to keep a pace per throttler.
        cap: the longest pause and adopted window, in seconds.
        server_times: whether the times servers give are read (`ignore_server_times`
            off).
        decrease, increase, quiet_period, probe_after: the adaptation's parameters, as
            [`FeedbackPolicy`][throttled_http.FeedbackPolicy] takes them.
        max_keys: keys whose counters are kept.
    """

    __slots__ = (
        "_by_key",
        "_cap",
        "_decrease",
        "_increase",
        "_max_keys",
        "_probe_after",
        "_quiet_period",
        "_server_times",
        "_strong",
        "_totals",
        "_weak",
        "adapt",
    )

    def __init__(
        self,
        *,
        adapt: bool,
        cap: float,
        server_times: bool,
        decrease: float,
        increase: float,
        quiet_period: float | None,
        probe_after: float,
        max_keys: int,
    ) -> None:
        self.adapt = adapt
        self._cap = cap
        self._server_times = server_times
        self._decrease = decrease
        self._increase = increase
        self._quiet_period = quiet_period
        self._probe_after = probe_after
        self._max_keys = max_keys
        self._totals = _Counters()
        self._by_key: OrderedDict[str, _Counters] = OrderedDict()
        self._weak: weakref.WeakKeyDictionary[FeedbackTarget, HostPace] = (
            weakref.WeakKeyDictionary()
        )
        self._strong: OrderedDict[FeedbackTarget, HostPace] = OrderedDict()

    # -- what the policy asks --------------------------------------------------------

    def observe(
        self, throttler: FeedbackTarget | None, key: str, status: int, feedback: Feedback
    ) -> None:
        """Count one response, and apply it to `throttler` (when the host has one)."""
        refused = status in THROTTLE_STATUSES
        counters = self.counters(key)
        if refused:
            self._totals.refusals += 1
            counters.refusals += 1
        if throttler is not None:
            self.apply(throttler, key, counters, refused, status, feedback)

    def admitted(self, throttler: FeedbackTarget, key: str) -> None:
        """A request was admitted: settle the host's pace, and slow-start a new host."""
        now = _monotonic()
        state = self.state(throttler, now, new_host=True)
        notes = _Notes()
        self._settle(throttler, key, state, now, notes)
        wait = state.admitted(now)
        if wait is not None:
            throttler.pause(wait)
        if notes.change is not None:
            logger.info("%s: %s", key, notes.change)

    def count_retry(self, key: str | None) -> None:
        """Count a retry granted, for `key` too when given."""
        self._totals.retries += 1
        if key is not None:
            self.counters(key).retries += 1

    def snapshot(self) -> FeedbackStatistics:
        """The counters, frozen."""
        totals = self._totals
        return FeedbackStatistics(
            pauses=totals.pauses,
            paused_seconds=totals.paused_seconds,
            retries=totals.retries,
            rate_cuts=totals.rate_cuts,
            adoptions=totals.adoptions,
            by_key=MappingProxyType({k: c.freeze() for k, c in self._by_key.items()}),
            refusals=totals.refusals,
        )

    # -- one response ------------------------------------------------------------------

    def apply(
        self,
        throttler: FeedbackTarget,
        key: str,
        counters: _Counters,
        refused: bool,
        status: int,
        feedback: Feedback,
    ) -> None:
        """Pause and retune `throttler` for one response; log what it did, once.

        Runs after the response was counted, under the policy's lock.
        """
        now = _monotonic()
        notes = _Notes()
        state = self.state(throttler, now, new_host=False) if self.adapt else None
        own = None if state is None else state.answered(now)
        delay = feedback.delay
        if delay is None and refused and state is not None and self._server_times:
            delay = min(state.period, self._cap)  # a refusal that names no time
        if delay is not None and delay > 0:
            self._pause(
                throttler, key, counters, feedback, delay, notes, slow_starting=own is not None
            )
            if state is not None:
                state.server_until = max(state.server_until, now + delay)
        if state is not None:
            self._tune(throttler, key, state, now, refused, feedback, delay or 0.0, notes)
            counters.pace = state.pace_rate()
            if own is not None:  # last: the requests it lets go see the rates just set
                _lift_slow_start(throttler, state, now, own)
        counters.rates = tuple(throttler.rates)
        if refused and now >= counters.warned_until:
            counters.warned_until = now + max(delay or 0.0, _QUIET_LOG)
            logger.warning(
                "%s: refused with %d%s%s",
                key,
                status,
                "" if notes.pause is None else f"; pausing {notes.pause}",
                "" if notes.change is None else f"; {notes.change}",
            )
            return
        if notes.pause is not None:
            # A host that pauses on every response (a bucket at its limit): one INFO
            # line a minute, the rest at DEBUG.
            level = logging.INFO if now - counters.pause_logged >= _QUIET_PAUSES else logging.DEBUG
            if level == logging.INFO:
                counters.pause_logged = now
            logger.log(level, "%s: pausing %s", key, notes.pause)
        if notes.change is not None:
            logger.info("%s: %s", key, notes.change)

    def _pause(
        self,
        throttler: FeedbackTarget,
        key: str,
        counters: _Counters,
        feedback: Feedback,
        delay: float,
        notes: _Notes,
        *,
        slow_starting: bool,
    ) -> None:
        # A slow start's own pause, about to be lifted, is not a pause the server asked for.
        before = 0.0 if slow_starting else throttler.paused_for
        throttler.pause(delay)
        added = delay - before
        if added <= 0:
            return  # an earlier, longer pause already covers it
        reason = feedback.reason or "a refusal that names no time"
        for tally in (self._totals, counters):
            tally.paused_seconds += added
            tally.last_reason = reason
            if before <= 0:
                tally.pauses += 1
        if before > 0:
            return  # an extension: counted, not logged
        capped = ""
        if feedback.capped and feedback.requested is not None:
            capped = f"; the server asked for {feedback.requested:.0f} s, capped by max_retry_after"
        notes.pause = f"for {delay:.3f} s ({reason}{capped})"

    def _tune(
        self,
        throttler: FeedbackTarget,
        key: str,
        state: HostPace,
        now: float,
        refused: bool,
        feedback: Feedback,
        pause: float,
        notes: _Notes,
    ) -> None:
        adopted = False
        if feedback.quota:
            # The longest adopted window is max_retry_after, whether server times are read.
            adopted = state.adopt(feedback.quota, now, self._cap)
            if adopted:
                for tally in (self._totals, self.counters(key)):
                    tally.adoptions += 1
        cut = False
        if refused:
            cut = state.refusal(now, pause, self._decrease, self._probe_after)
        else:
            state.success(now)
        self._settle(throttler, key, state, now, notes, cut=cut, adopted=adopted)

    def _settle(
        self,
        throttler: FeedbackTarget,
        key: str,
        state: HostPace,
        now: float,
        notes: _Notes,
        *,
        cut: bool = False,
        adopted: bool = False,
    ) -> None:
        """Bring `state` up to date and put its rates in force if they changed."""
        longest = max(r.period for r in state.configured)
        quiet = self._quiet_period if self._quiet_period is not None else longest
        state.settle(now, self._decrease, self._increase * state.unit, quiet)
        rates = state.effective()
        if rates == state.applied:
            return
        throttler.set_rates(*rates, burst=state.burst_for(rates))
        state.applied = tuple(throttler.rates)
        shown = ", ".join(str(r) for r in rates)
        counters = self.counters(key)
        if cut:
            for tally in (self._totals, counters):
                tally.rate_cuts += 1
            notes.change = (
                f"pace cut to {shown} ({state.goodput} got through in the last {state.period:g} s)"
            )
        elif adopted:
            notes.change = f"following the advertised quota; rates now {shown}"
        else:
            notes.change = f"pace now {shown}"
        counters.pace = state.pace_rate()
        counters.rates = state.applied

    def counters(self, key: str) -> _Counters:
        by_key = self._by_key
        counters = by_key.get(key)
        if counters is None:
            counters = by_key[key] = _Counters()
            if len(by_key) > self._max_keys:
                by_key.popitem(last=False)
        else:
            by_key.move_to_end(key)
        return counters

    def state(self, throttler: FeedbackTarget, now: float, *, new_host: bool) -> HostPace:
        """The adaptive state of `throttler`, made on first sight (slow start from
        [`admitted`][throttled_http.FeedbackPolicy.admitted], for an in-memory throttler)."""
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
            state = HostPace(
                rates,
                burst if isinstance(burst, int) else None,
                now,
                floor_window=self._cap,
                slow_start=new_host and state is None and isinstance(throttler, _LOCAL),
            )
            if weak:
                self._weak[throttler] = state
            else:
                self._strong[throttler] = state
                if len(self._strong) > _LRU_LIMITERS:
                    self._strong.popitem(last=False)
        elif not weak:
            self._strong.move_to_end(throttler)
        return state


def _lift_slow_start(throttler: FeedbackTarget, state: HostPace, now: float, own: float) -> None:
    """End our slow-start pause (ending at `own`) unless a longer one is in force, and
    keep the part of a server's pause still to come."""
    resume = getattr(throttler, "resume", None)
    if resume is None or throttler.paused_for > own - now + 1e-3:
        return
    resume()
    if state.server_until > now:
        throttler.pause(state.server_until - now)


def _monotonic() -> float:
    """The clock the throttlers use: the running loop's (virtual in tests), else monotonic."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
