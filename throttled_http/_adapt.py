"""The pace of one host under `adapt=True`: slow start, congestion events, recovery, probes.

`HostPace` is the state [`FeedbackPolicy`][throttled_http.FeedbackPolicy] keeps per throttler.
It never reads a clock (it is told `now`, on the throttler's clock) and never touches the
throttler except through the calls the policy makes with what it returns. The model:

* **The ceiling** is what the user configured plus every advertised quota adopted: the pace
  never exceeds it. The pace counts requests per *pacing window*, the shortest configured
  period `P`; below the ceiling it is put in force as one more rate, `Rate(n, P)`.
* **A congestion event** starts with a refusal (429 or 503) that is not part of the
  previous event. Refusals observed while the event's pause lasts, or less than `P`
  after it began, belong to it, so a burst of refusals counts once (TCP counts one loss
  per window). The event cuts the pace to `decrease` times the limit in force, and to
  at most what was getting through: the responses the server accepted in the `P`
  seconds before the refusal, plus those of requests still in flight that arrive while
  the host is paused (at most `P` more).
* **The hold.** Refused at `n` with `k` getting through, the host is known to allow
  about `min(k, n - 1)` per window: the *hold*. The pace climbs back by `increase` of
  the configured limit per `quiet_period` without a refusal, up to the hold (at least
  where the cut left it), and stays
  there. Only after `probe_after` seconds without a refusal does it try one request per
  window more (a probe); a refused probe doubles that wait (up to eight times), one that
  lasts two quiet periods forgets the hold, and the climb goes on to the ceiling.
* **The floor** is one request per `floor_window` seconds (`max_retry_after`, at least
  `P`). Below one request per `P` the pace is put in force as `Rate(1, P / pace)`.
* **Slow start.** A new host gets one request alone: the others wait until its response
  has been read (the host is paused meanwhile, for at most `min(P, 1 s)`), so a quota or
  a `remaining: 0` it carries is known before a whole window is spent learning it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final, final

from ._rates import Rate

__all__ = ["HostPace", "minimal_rates"]

_MAX_SUCCESSES: Final = 4096  # accepted responses remembered per pacing window
_MAX_PROBE_FACTOR: Final = 8.0  # a probe waits at most this many times probe_after
_SLOW_START_WAIT: Final = 1.0  # seconds a slow-starting host waits for a response at most


@final
class HostPace:
    """The adaptive state of one throttler (see the module docstring).

    Args:
        configured: the rates to recover to, never exceeded.
        burst: the configured smooth-mode burst, or `None`.
        now: the throttler clock's time.
        floor_window: the pace is never below one request per this many seconds.
        slow_start: whether the host starts slowly (it is new to the policy).
    """

    __slots__ = (
        "advertised",
        "applied",
        "burst",
        "ceiling",
        "configured",
        "drain_until",
        "event_level",
        "event_start",
        "event_until",
        "floor",
        "goodput",
        "hold",
        "last_adopt",
        "lifted",
        "lifted_at",
        "own_until",
        "pace",
        "period",
        "probe_at",
        "probe_wait",
        "quiet_since",
        "server_until",
        "slow_start",
        "successes",
        "unit",
    )

    def __init__(
        self,
        configured: tuple[Rate, ...],
        burst: int | None,
        now: float,
        *,
        floor_window: float,
        slow_start: bool,
    ) -> None:
        self.configured = configured
        self.burst = burst
        self.period = period = min(r.period for r in configured)  # the pacing window P
        self.floor = period / max(period, floor_window)  # requests per window, at least
        self.unit = _limit_over(configured, self.period)  # the configured limit per window
        self.advertised: tuple[Rate, ...] = ()
        self.applied = configured  # the rates last put in force
        self.ceiling = self.unit  # requests per window the rates in force allow at most
        self.pace = float(self.unit)
        self.hold: float | None = None
        self.lifted: float | None = None  # the hold a probe is trying to pass
        self.lifted_at = -math.inf
        self.probe_at = math.inf
        self.probe_wait = 0.0
        self.quiet_since = now
        self.last_adopt = -math.inf
        self.event_start = -math.inf
        self.event_until = -math.inf
        self.drain_until = -math.inf  # in-flight answers count as goodput until then
        self.event_level = 0.0
        self.goodput = 0
        self.successes: deque[float] = deque(maxlen=_MAX_SUCCESSES)
        self.server_until = -math.inf  # the end of the latest pause a server asked for
        self.own_until = -math.inf  # the end of a slow-start pause of ours
        self.slow_start = slow_start

    # -- what is in force --------------------------------------------------------------

    def level(self) -> float:
        """The requests per pacing window in force now: a whole number, or below 1."""
        pace = self.pace
        if pace >= self.ceiling:
            return float(self.ceiling)
        return pace if pace < 1.0 else float(int(pace))

    def pace_rate(self) -> Rate | None:
        """The pace as a rate when it holds the host below its ceiling, else `None`."""
        level = self.level()
        if level >= self.ceiling:
            return None
        if level >= 1.0:
            return Rate(int(level), self.period)
        # One request per a longer window, rounded up to the millisecond (stricter).
        return Rate(1, math.ceil(self.period / level * 1000.0) / 1000.0)

    def effective(self) -> tuple[Rate, ...]:
        """Configured rates, adopted quotas and the pace, none implied by another."""
        pace = self.pace_rate()
        return minimal_rates(self.configured + self.advertised + (() if pace is None else (pace,)))

    def burst_for(self, rates: tuple[Rate, ...]) -> int | None:
        """The configured burst, lowered to what `rates` allow."""
        if self.burst is None:
            return None
        slowest = max(rates, key=lambda r: (r.interval, -r.limit))
        return min(self.burst, slowest.limit)

    def adopt(self, quota: tuple[Rate, ...], now: float, longest: float) -> bool:
        """Follow a new advertised quota; whether it changed.

        Windows up to `longest` seconds, not implied by the configured rates, are followed.
        At most once per longest window in force, so a server that flips its advertisement on every
        response cannot pile up retiring windows. An advertisement the configured rates imply drops
        the quota followed so far."""
        windowed = tuple(r for r in quota if r.period <= longest)
        configured = self.configured
        usable = tuple(r for r in windowed if minimal_rates((*configured, r)) != configured)
        settled = now - self.last_adopt >= max(r.period for r in self.applied)
        if not windowed or usable == self.advertised or not settled:
            return False
        self.advertised = usable
        self.last_adopt = now
        self.ceiling = _limit_over(self.configured + usable, self.period)
        return True

    # -- slow start ----------------------------------------------------------------------

    def admitted(self, now: float) -> float | None:
        """A request was admitted: seconds to pause the host for, while slow starting."""
        if not self.slow_start or self.own_until != -math.inf:
            return None
        wait = min(self.period, _SLOW_START_WAIT)
        self.own_until = now + wait
        return wait

    def answered(self, now: float) -> float | None:
        """A response arrived: the end of our slow-start pause, to lift it, if still on."""
        self.slow_start = False
        until = self.own_until
        self.own_until = -math.inf
        return until if until > now else None

    # -- congestion events and recovery ------------------------------------------------

    def refusal(self, now: float, pause: float, decrease: float, probe_after: float) -> bool:
        """A refusal arrived (after its pause of `pause` seconds was set); whether it
        starts a congestion event, which cuts the pace."""
        self.quiet_since = now
        if now < self.event_until:
            return False  # a refusal of the same burst
        period = self.period
        level = self.level()
        self.goodput = self._recent_successes(now)
        self.event_level = level
        self.event_start = now
        self.event_until = max(now + period, now + pause)
        self.drain_until = now + min(period, pause)
        self.pace = self._cut(decrease)
        if self.lifted is not None and level > self.lifted:
            # A probe past the hold was refused: wait twice as long for the next one.
            self.probe_wait = min(self.probe_wait * 2.0, probe_after * _MAX_PROBE_FACTOR)
        else:
            self.probe_wait = probe_after
        self.lifted = None
        self.hold = self._hold()
        self.probe_at = now + self.probe_wait
        return True

    def success(self, now: float) -> None:
        """A response the server accepted (not a 429 or 503)."""
        self.successes.append(now)
        if self.event_start <= now < self.drain_until:
            self.goodput += 1  # a request in flight at the refusal got through

    def settle(self, now: float, decrease: float, step: float, quiet: float) -> None:
        """Bring the pace up to date: what the drained event taught, then recovery.

        `step` is the pace added per `quiet` seconds without a refusal.
        """
        if self.drain_until != -math.inf and now >= self.drain_until:
            # The event's answers are all in: cut again on the full count of what got
            # through (the first cut may have counted too few, or too many), and hold it.
            self.drain_until = -math.inf
            self.pace = self._cut(decrease)
            self.hold = self._hold()
        if now < self.event_until or self.pace >= self.ceiling:
            return
        steps = int((now - self.quiet_since) / quiet)
        if steps <= 0:
            return
        self.quiet_since += steps * quiet
        if self.lifted is not None and now - self.lifted_at >= 2.0 * quiet:
            self.lifted = None  # the probe held two quiet periods: the old hold is forgotten
        hold = self.hold
        if hold is not None and self.pace >= hold:
            self.quiet_since = now  # held: quiet time does not pile up into a jump
            if now >= self.probe_at:
                # A probe: one request per window more than the host was seen to allow.
                self.lifted, self.lifted_at, self.hold = hold, now, None
                self.pace = min(float(self.ceiling), float(int(hold) + 1))
            return
        top = float(self.ceiling) if hold is None else min(float(self.ceiling), hold)
        self.pace = min(top, self.pace + steps * step)

    def _cut(self, decrease: float) -> float:
        """The pace after the current event: `decrease` times the level refused at, and
        no more than what got through (when anything did)."""
        cut = decrease * self.event_level
        if self.goodput >= 1:
            cut = min(cut, float(self.goodput))
        return max(self.floor, cut)

    def _hold(self) -> float:
        """What the host is known to allow per window: what got through, below the level
        it refused at, and at least where the cut left the pace."""
        level = self.event_level
        if level <= 1.0:
            return self.pace
        return max(self.pace, min(float(self.goodput), level - 1.0))

    def _recent_successes(self, now: float) -> int:
        successes = self.successes
        start = now - self.period
        while successes and successes[0] <= start:
            successes.popleft()
        return len(successes)


def minimal_rates(rates: tuple[Rate, ...]) -> tuple[Rate, ...]:
    """`rates` without those another one implies, in order (the first of equals stays).

    `Rate(c, q)` implies `Rate(a, p)` when `q >= p` and `c <= a`: any window of
    `p` seconds lies inside one of `q` seconds, which holds at most `c <= a`.

    >>> minimal_rates((Rate(10, 1), Rate(100, 60), Rate(5, 1), Rate(5, 1)))
    (Rate(100/min), Rate(5/s))
    """
    kept: list[Rate] = []
    for index, rate in enumerate(rates):
        implied = any(
            other.period >= rate.period
            and other.limit <= rate.limit
            and (other != rate or position < index)
            for position, other in enumerate(rates)
            if position != index
        )
        if not implied:
            kept.append(rate)
    return tuple(kept)


def _limit_over(rates: tuple[Rate, ...], period: float) -> int:
    """The most requests `rates` allow in a window of `period` seconds, bounded by
    those of them at least that long (shorter windows would only allow more)."""
    bounding = [r.limit for r in rates if r.period >= period]
    return min(bounding) if bounding else min(r.limit for r in rates)
