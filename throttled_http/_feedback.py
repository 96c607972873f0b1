"""Act on what servers say: pause a host, find and keep its pace, retry refused requests.

[`FeedbackPolicy`][throttled_http.FeedbackPolicy] is the client-independent half of server feedback;
every integration calls it through the request pipeline:

```python
policy.admitted(throttler, key)  # after each admission, when adapting
delay = policy.observe(throttler, key, response.status, response.headers)
wait = policy.retry_delay(method, response.status, attempt, delay, key=key)
if wait is not None:
    ...  # release the response, sleep `wait` seconds, send again through the throttler
```

It reads headers with the pure [`parse_feedback`][throttled_http.parse_feedback], keeps the
adaptive state of each throttler in a `HostPace` (in a `HostBook`), and acts only through the
throttler's public [`pause`][throttled_http.Throttler.pause],
[`resume`][throttled_http.Throttler.resume] and [`set_rates`][throttled_http.Throttler.set_rates],
which never break the window guarantee.

The `"throttled_http"` logger gets a `logging.NullHandler`, so an application that
configures no logging prints nothing.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, final

from ._headers import THROTTLE_STATUSES, parse_feedback
from ._hostbook import (
    FeedbackStatistics,
    FeedbackTarget,
    HostBook,
    KeyFeedbackStatistics,
)
from ._validate import int_in_range, non_negative_float, positive_float, positive_int

if TYPE_CHECKING:
    from ._headers import HeadersLike

__all__ = [
    "DEFAULT_RETRY_METHODS",
    "FeedbackPolicy",
    "FeedbackStatistics",
    "FeedbackTarget",
    "KeyFeedbackStatistics",
]

logger = logging.getLogger("throttled_http")  # with a NullHandler (see _hostbook)

DEFAULT_RETRY_METHODS: Final = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
"""The idempotent methods (RFC 9110 §9.2.2, less TRACE) retried by default."""


@final
class FeedbackPolicy:
    """Pause, find the pace, and retry as the server asks; bounded against hostile servers.

    Build one and pass it to a client (`feedback=FeedbackPolicy(adapt=True)`); one policy
    serves any number of throttlers, keys and clients. A client given none uses
    `FeedbackPolicy()`: pauses on `Retry-After`, no adaptation, no retries.

    **Pauses.** [`observe`][throttled_http.FeedbackPolicy.observe] pauses the throttler of the
    responding host (and only that one) for the time the server names: `Retry-After` (or
    `retry-after-ms`) on a 429, 503 or 403, a count of what remains at 0 with its reset, in any
    dialect [`parse_feedback`][throttled_http.parse_feedback] reads. The pause lasts at most
    `max_retry_after` seconds, starts when the headers are observed, never cuts a longer
    pause short, and leaves entries already admitted alone. The response itself is not
    changed.

    **Adaptation** (`adapt=True`) finds and keeps the pace a host allows:

    * Every refusal (429 or 503, with or without a time, in any dialect) pauses the host
      (a refusal that names no time for one shortest configured period `P`) *and*
      starts a congestion event, unless it belongs to the current one (observed while
      that event's pause lasts or within `P` of its start: the answers to one burst
      count once). The event cuts the pace (requests per window of `P` seconds) to
      `decrease` times the limit in force, and to at most what was getting through
      (the responses the server accepted in the `P` seconds before the refusal, plus
      those still in flight that arrive while it is paused).
    * After each `quiet_period` seconds without a refusal the pace grows by
      `increase` of the configured limit (additive increase), up to the level the host
      was seen to allow (what got through, below where it refused). Past that level it
      tries one request per window more (a probe) only after `probe_after` seconds
      without a refusal; a refused probe doubles that wait (at most eight times
      `probe_after`), one that lasts two quiet periods lets the pace climb on to the
      ceiling.
    * The pace never exceeds the configured rates or an adopted quota (the ceiling), and
      never goes below one request per `P` seconds (the floor).
    * A quota the server advertises with a known window
      (`RateLimit-Policy: "default";q=100;w=60`, `X-RateLimit-Limit: 100;w=60`, HubSpot's interval,
      Anthropic's and GitLab's minute) that the rates in force do not already imply is
      added to the throttler's rates with [`set_rates`][throttled_http.Throttler.set_rates]:
      the limit becomes stricter, never looser. A limit without a window (OpenAI's
      `x-ratelimit-limit-requests`, which Groq sends per day) is not adopted. Windows
      longer than `max_retry_after` are not adopted; the quota changes at most once per
      longest window in force.
    * Slow start: a host new to the policy (with an in-memory throttler) gets one request
      alone; the others wait until its response has been read (the host is paused for at
      most `min(P, 1 s)` meanwhile), so what its headers say is known before a whole
      burst is spent.

    Recovery happens as responses are observed; nothing runs in the background. If
    someone else calls `set_rates` on the throttler, its new rates become the ceiling.

    **Retries.** [`retry_delay`][throttled_http.FeedbackPolicy.retry_delay] allows at most `retries`
    re-sends of a request refused with 429 or 503, for the methods in `retry_methods` and, with
    `retry_refused=True`, for any method when the server refused the request without
    processing it (a 429, or a 503 that names a time), and only when the body can be
    replayed: after the server's delay when it gave one, otherwise after an exponential
    backoff with jitter. A retry goes back through the throttler.

    **Observability.** On the `"throttled_http"` logger (which has a `NullHandler`):
    a refusal the client did not expect (not during a pause or congestion event it
    already saw) at WARNING, at most once per host per pause, naming the pause and the
    cut; a pause started for another reason, and each change of a host's rates, at INFO.
    A burst of refusals thus gives one line, not one per response.
    [`statistics`][throttled_http.FeedbackPolicy.statistics] holds running totals per host:
    refusals, pauses, paused seconds, rate cuts, the rates and the pace in force.

    Args:
        max_retry_after: longest pause, in seconds (a finite number >= 0), and longest
            adopted window.
        ignore_server_times: ignore every time servers give: no pause, retries wait for
            the backoff only, and with `adapt` a refusal cuts the pace without pausing.
        adapt: find the host's pace from refusals and advertised quotas (see above).
        retries: re-sends allowed per request, an int from 0 to 100.
        retry_methods: methods that may be re-sent after any 429 or 503 (upper-cased);
            the default is the idempotent ones.
        retry_refused: also re-send requests of any method that the server refused
            without processing them (429, or 503 with a time): what LLM APIs, all POST,
            want. Needs `retries >= 1`.
        backoff: seconds before the first retry when no header gives a time; doubled
            each attempt. A finite number > 0.
        max_backoff: longest backoff, in seconds, `>= backoff`.
        decrease: the pace's multiplier at a congestion event, `0 < decrease < 1`.
        increase: fraction of the configured limit added per quiet period,
            `0 < increase <= 1`.
        quiet_period: seconds without a refusal before each increase; `None` uses the
            throttler's longest configured `period`.
        probe_after: seconds without a refusal before the pace tries to pass the level the
            host was last seen to allow, a finite number > 0.
        max_keys: keys whose counters [`statistics`][throttled_http.FeedbackPolicy.statistics] keeps
            (least recently active dropped).

    Raises:
        TypeError, ValueError: at construction, naming the argument and its allowed range.

    Thread-safe: one policy may serve the async and the threaded clients at once.

    Changed in 0.2: `stats()` is [`statistics`][throttled_http.FeedbackPolicy.statistics];
    `max_retry_after=None` is spelled `ignore_server_times=True`; the policy is the clients' only
    way to set `max_retry_after`, `adapt` and `retries`; every refusal is a congestion signal,
    with slow start, a hold and probes; `retry_refused`, `probe_after`.
    """

    __slots__ = (
        "_backoff",
        "_book",
        "_cap",
        "_lock",
        "_max_backoff",
        "_max_retry_after",
        "_retries",
        "_retry_methods",
        "_retry_refused",
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
        retry_refused: bool = False,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        decrease: float = 0.5,
        increase: float = 0.1,
        quiet_period: float | None = None,
        probe_after: float = 300.0,
        max_keys: int = 10_000,
    ) -> None:
        if max_retry_after is None:
            raise TypeError(
                "max_retry_after must be a finite number of seconds >= 0, got None; to "
                "ignore the times servers give, pass ignore_server_times=True"
            )
        self._cap = non_negative_float("max_retry_after", max_retry_after)
        # None inside: no server time is read at all.
        self._max_retry_after = (
            None if _flag("ignore_server_times", ignore_server_times) else self._cap
        )
        self.adapt: Final = _flag("adapt", adapt)
        self._retries = int_in_range("retries", retries, 0, 100)
        self._retry_methods = _methods(retry_methods)
        self._retry_refused = _flag("retry_refused", retry_refused)
        if self._retry_refused and not self._retries:
            raise TypeError(
                "retry_refused=True needs retries >= 1 to have any effect, got retries=0: "
                "pass FeedbackPolicy(retries=3, retry_refused=True)"
            )
        self._backoff = positive_float("backoff", backoff)
        self._max_backoff = positive_float("max_backoff", max_backoff)
        if self._max_backoff < self._backoff:
            raise ValueError(f"max_backoff must be >= backoff ({backoff!r} s), got {max_backoff!r}")
        self._book = HostBook(
            adapt=self.adapt,
            cap=self._cap,
            server_times=self._max_retry_after is not None,
            decrease=_fraction("decrease", decrease, closed=False),
            increase=_fraction("increase", increase, closed=True),
            quiet_period=(
                None if quiet_period is None else positive_float("quiet_period", quiet_period)
            ),
            probe_after=positive_float("probe_after", probe_after),
            max_keys=positive_int("max_keys", max_keys),
        )
        self._lock = threading.Lock()

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
        """Methods that may be re-sent after any 429 or 503, upper-case."""
        return self._retry_methods

    @property
    def retry_refused(self) -> bool:
        """Whether requests of any method are re-sent when the server did not process them."""
        return self._retry_refused

    # -- the calls the integrations make ----------------------------------------------

    def admitted(self, throttler: FeedbackTarget, key: str) -> None:
        """Tell the policy that `throttler` just admitted a request for `key`.

        The integrations call it after each admission, before the request is sent, when
        `adapt` is on; a client of your own should too. A host new to the policy is
        held back until its first responses arrive (slow start), and a congestion event
        whose answers are all in takes effect before more is sent. Without `adapt` it
        does nothing. Never raises: a failure of the throttler is logged at WARNING.

        Args:
            throttler: the throttler that admitted the request.
            key: the throttler's key, as for [`observe`][throttled_http.FeedbackPolicy.observe].
        """
        if not self.adapt:
            return
        try:
            with self._lock:
                self._book.admitted(throttler, key)
        except Exception:
            logger.warning("%s: could not apply slow start", key, exc_info=True)

    def observe(
        self,
        throttler: FeedbackTarget | None,
        key: str,
        status: int,
        headers: HeadersLike,
    ) -> float | None:
        """Apply one response's feedback to the throttler of the host that sent it.

        Call it as soon as the response headers arrive, for every response (a 200 may
        carry `X-RateLimit-Remaining: 0`). It pauses `throttler` for the capped time the
        server asked for and, with `adapt=True`, retunes it (see the class docs).

        Never raises: a failure of the throttler itself (a Redis backend down, say) is
        logged at WARNING and the delay is still returned.

        Args:
            throttler: the throttler that admitted the request, or `None` for a host with no
                limit (nothing is paused, the delay is still returned for retries).
            key: the throttler's key (`"https://api.example.com:443"`), for logs and stats.
            status: the response status code.
            headers: the response headers: a Mapping such as aiohttp's `CIMultiDict` or
                httpx's `Headers`, or `(name, value)` pairs.

        Returns:
            The seconds the server asked to wait, capped at `max_retry_after` (`0.0`
            when its time has passed), or `None` when no header gives a time (or
            `ignore_server_times` is set). Pass it to
            [`retry_delay`][throttled_http.FeedbackPolicy.retry_delay].
        """
        feedback = parse_feedback(
            status, headers, now=time.time(), max_retry_after=self._max_retry_after
        )
        try:
            with self._lock:
                self._book.observe(throttler, key, status, feedback)
        except Exception:
            logger.warning("%s: could not apply server feedback %r", key, feedback, exc_info=True)
        return feedback.delay

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
        """Seconds to wait before re-sending a refused request, or `None`: do not retry.

        A retry is allowed when all hold: `status` is 429 or 503; `method` is in
        `retry_methods`, or `retry_refused` is set and the server did not process the
        request (a 429, or a 503 with `server_delay`); `replayable` (the body can be
        sent again: not a consumed stream); and `attempt <= retries`. The wait is then
        `server_delay` when given (capped at `max_retry_after`; ignored with
        `ignore_server_times`), else an exponential backoff with "equal jitter"
        ([`backoff_delay`][throttled_http.FeedbackPolicy.backoff_delay]): uniform in `[b / 2, b]`
        with `b = min(max_backoff, backoff * 2 ** (attempt - 1))`.

        The re-sent request must go through the throttler again: it waits for the pause
        [`observe`][throttled_http.FeedbackPolicy.observe] set, and for its turn.

        Args:
            method: the request method, any case.
            status: the response status code.
            attempt: the number of the retry about to happen, from 1.
            server_delay: what [`observe`][throttled_http.FeedbackPolicy.observe] returned for the
                response.
            replayable: whether the request body can be sent again.
            key: the throttler's key, to count the retry in
                [`statistics`][throttled_http.FeedbackPolicy.statistics].

        Raises:
            ValueError, TypeError: when `attempt` is not an int >= 1.
        """
        attempt = positive_int("attempt", attempt)
        if attempt > self._retries or not replayable or status not in THROTTLE_STATUSES:
            return None
        if method.upper() not in self._retry_methods and not (
            self._retry_refused and (status == 429 or server_delay is not None)
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
            self._book.count_retry(key)
        return wait

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` when the server named no time.

        An exponential backoff with "equal jitter": uniform in `[b / 2, b]` with
        `b = min(max_backoff, backoff * 2 ** (attempt - 1))`. For retries the policy does
        not decide itself, such as after a connection error.

        Raises:
            ValueError, TypeError: when `attempt` is not an int >= 1.
        """
        attempt = positive_int("attempt", attempt)
        ceiling = min(self._max_backoff, self._backoff * 2.0 ** min(attempt - 1, 64))
        return ceiling / 2 + random.random() * ceiling / 2  # jitter, not crypto

    # -- introspection ---------------------------------------------------------------

    def statistics(self) -> FeedbackStatistics:
        """A frozen snapshot of the counters, in all and per key."""
        with self._lock:
            return self._book.snapshot()

    def __repr__(self) -> str:
        return (
            f"<FeedbackPolicy max_retry_after={self._cap!r} "
            f"ignore_server_times={self.ignore_server_times} adapt={self.adapt} "
            f"retries={self._retries}>"
        )


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


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
