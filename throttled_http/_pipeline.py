"""The request pipeline: one request's journey through the package, for every client.

A request travels the same way whatever client sends it:

```text
resolve its key -> wait for a latency-proof entry -> hand over to the client
  -> settle the entry when the response headers arrive -> apply the server's feedback
  -> send again after a delay (back through the throttler), or
  -> hold the concurrency slot until the response is released
```

and gives back everything it took exactly once, on every exit: an error, a timeout, a
cancellation at any point. `Pipeline` owns that journey, written once, as a
generator (`Pipeline.steps`) that yields the I/O it needs (wait for an entry, send,
discard a refused response, sleep) and is told the outcome. Two small drivers perform the
I/O: `Pipeline.run` with `await` for the asyncio clients, `Pipeline.run_sync`
blocking for the threaded ones. Each client module is a thin adapter: an
`Exchange` that reads its client's requests and responses, and the calls that send.

**The hand-off.** aiohttp runs a session's first hop inside a middleware, after it has
started the request's `ClientTimeout`. So that queueing for the throttler does not eat
into that timeout, the session waits for the first hop's entry itself and *lends* it, as a
`Ticket`, to the middleware, which claims (`Ticket.claim`) it instead of
waiting again. A ticket nobody claims (a mock such as aioresponses replaced the client's
send, so no middleware ran) leaves the journey with the session's pipeline, which then
settles, applies feedback and holds the response itself.

**Costs and reconciliation.** A client may weigh its requests with a callable
(`cost=fn(request)`, returning an int or costs per unit such as `{"tokens": 420}`), and
state afterwards what a request really cost (`reconcile=fn(response, tail)`): the
adapter keeps the last `RECONCILE_TAIL_BYTES` of the body as the user consumes it (a
`BodyTail`), and when the body ends the callable reads the usage there (a JSON body's
`usage`, or a stream's last event), and the entry is reconciled.

No HTTP client is imported here.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, final

from ._exceptions import ThrottlerTimeoutError
from ._feedback import FeedbackPolicy
from ._headers import may_carry_feedback
from ._hostmap import BaseThrottlerMap, SyncThrottlerMap, ThrottlerMap
from ._protocols import SyncThrottlerLike, ThrottlerLike
from ._validate import non_negative_float

if TYPE_CHECKING:
    from collections.abc import Awaitable, Generator, Hashable

    from ._budgets import CostLike
    from ._headers import HeadersLike
    from ._holding import Holds, ThreadHolds
    from ._protocols import EntryLike
    from ._rates import Rate

__all__ = [
    "RECONCILE_TAIL_BYTES",
    "BodyTail",
    "Exchange",
    "Pipeline",
    "Ticket",
    "check_callable",
    "check_feedback",
    "check_throttle_timeout",
    "throttler_from_options",
]

_Req = TypeVar("_Req", contravariant=True)
_Resp = TypeVar("_Resp")
_R = TypeVar("_R")
_F = TypeVar("_F", bound=Callable[..., Any])

# What the journey asks its driver to do; the tuples carry the arguments.
_ADMIT: Final = 0  # (_ADMIT, throttler, cost): wait for an entry, answer it
_SEND: Final = 1  # (_SEND, ticket or None): send the request, answer the response
_DISCARD: Final = 2  # (_DISCARD, response): close a refused response
_SLEEP: Final = 3  # (_SLEEP, seconds): wait before sending again
_DONE: Final = 4  # (_DONE, response): the journey's end (it is never resumed)
_SEND_PLAIN: Final = (_SEND, None)

_Step = tuple[Any, ...]

RECONCILE_TAIL_BYTES: Final = 65536
"""How much of a response body's end is kept for a `reconcile` callable to read."""

CostFunction = Callable[[Any], "CostLike"]
ReconcileFunction = Callable[[Any, bytes], "Mapping[str, int] | None"]


@final
class BodyTail:
    """The last `RECONCILE_TAIL_BYTES` of a response body, reconciled when it ends.

    An adapter feeds each chunk the user reads and calls `done()` once the body is
    complete; `done()` asks the client's `reconcile` callable for the request's real
    costs and reconciles the entry with them (once; a body abandoned half-way is not
    reconciled: what was charged stands).
    """

    __slots__ = ("_chunks", "_entry", "_fn", "_response", "_size")

    def __init__(self, fn: ReconcileFunction, response: object, entry: EntryLike) -> None:
        self._fn: ReconcileFunction | None = fn
        self._response = response
        self._entry = entry
        self._chunks: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk or self._fn is None:
            return
        chunks = self._chunks
        chunks.append(chunk)
        self._size += len(chunk)
        if self._size > 2 * RECONCILE_TAIL_BYTES:  # trim now and then, not per chunk
            tail = b"".join(chunks)[-RECONCILE_TAIL_BYTES:]
            chunks[:] = [tail]
            self._size = len(tail)

    def done(self) -> None:
        fn = self._fn
        if fn is None:
            return
        self._fn = None
        tail = b"".join(self._chunks)[-RECONCILE_TAIL_BYTES:]
        self._chunks = []
        actual = fn(self._response, tail)
        if actual:
            reconcile = getattr(self._entry, "reconcile", None)
            if reconcile is None:
                raise TypeError(
                    f"reconcile= needs entries that can be reconciled; {self._entry!r} cannot "
                    "(a RedisThrottler charges requests only): pass an in-process Throttler"
                )
            reconcile(actual)


class Exchange(Protocol[_Req, _Resp]):
    """How a client adapter reads its client's requests and responses for the pipeline."""

    def status(self, response: _Resp) -> int:
        """The response's status code."""
        ...

    def headers(self, response: _Resp) -> HeadersLike:
        """The response headers, in a form `parse_feedback` reads."""
        ...

    def method(self, request: _Req) -> str:
        """The request method."""
        ...

    def replayable(self, request: _Req) -> bool:
        """Whether the request body can be sent again (not a consumed one-shot stream)."""
        ...

    def hold(self, response: _Resp, entry: EntryLike, key: str) -> _Resp:
        """Tie `entry` to the end of `response` and return what the caller gets.

        Close the entry at once when the body is complete already (in memory).
        """
        ...


@final
class Ticket:
    """A hop's entry waited for by an outer adapter, lent to the inner one that sends it.

    The internal interface between
    [`ThrottledClientSession`][throttled_http.aiohttp.ThrottledClientSession] (which waits
    before aiohttp starts its timeout) and its middleware (which aiohttp calls for the hop).
    The middleware calls `claim` once; from then on the entry is its own, and the session
    only returns the response.
    """

    __slots__ = ("claimed", "entry", "key", "pipeline", "throttler")

    def __init__(self, pipeline: Pipeline, key: str, throttler: object, entry: EntryLike) -> None:
        self.pipeline = pipeline
        self.key = key
        self.throttler = throttler
        self.entry = entry
        self.claimed = False

    def claim(self, pipeline: Pipeline, throttler: object) -> EntryLike | None:
        """The lent entry, if `pipeline` lent it and the hop goes to `throttler`.

        A hop that goes elsewhere than the lender computed (another middleware rewrote
        the URL) gives the entry back at once (it counts as used, which is safe) and gets
        `None`: the caller waits for the right entry. Either way the ticket is claimed.
        """
        if self.pipeline is not pipeline or self.claimed:
            return None
        self.claimed = True
        if self.throttler is throttler:
            return self.entry
        self.entry.close()
        return None


@final
class Pipeline:
    """One client's request journey: its throttler, its feedback policy, its open responses.

    Args:
        throttler: one throttler for every request, or a map of one per key.
        feedback: the server-feedback policy applied to every response (`None`: none).
        holds: the open responses of this client and their `release_timeout`.
        throttle_timeout: seconds a hop may wait for its entry at most (`None`: no limit).
        cost: the client's `fn(request)` giving a request's cost when the request names
            none (`None`: 1).
        reconcile: the client's `fn(response, tail)` giving what a request really cost,
            asked when its body ends (and, with an empty tail, for a refused attempt sent
            again); `None`: nothing is reconciled.
    """

    __slots__ = (
        "_map",
        "cost_of",
        "feedback",
        "holds",
        "reconcile",
        "throttle_timeout",
        "throttler",
    )

    def __init__(
        self,
        throttler: ThrottlerLike | SyncThrottlerLike | BaseThrottlerMap[Any],
        feedback: FeedbackPolicy | None,
        holds: Holds | ThreadHolds,
        throttle_timeout: float | None,
        cost: CostFunction | None = None,
        reconcile: ReconcileFunction | None = None,
    ) -> None:
        self.throttler: Any = throttler
        self._map = throttler if isinstance(throttler, BaseThrottlerMap) else None
        self.feedback = feedback
        self.holds = holds
        self.throttle_timeout = throttle_timeout
        self.cost_of = cost
        self.reconcile = reconcile

    def body_tail(self, response: object, entry: EntryLike) -> BodyTail | None:
        """What an adapter feeds the body to, when this client reconciles (else `None`)."""
        fn = self.reconcile
        return None if fn is None else BodyTail(fn, response, entry)

    # -- the journey, written once ---------------------------------------------------

    def steps(
        self,
        exchange: Exchange[_Req, _Resp],
        request: _Req,
        target: object,
        origin: Hashable | None,
        cost: CostLike | None,
        *,
        ticket: Ticket | None = None,
        lend: bool = False,
        sent: tuple[str, Any, EntryLike, _Resp] | None = None,
    ) -> Generator[_Step, Any, None]:
        """One request's journey; yields the I/O it needs, and last `(_DONE, response)`.

        Args:
            exchange: reads the client's request and responses.
            request: the request, passed back to `exchange`.
            target: what the throttler is chosen by (the URL, or a key's URL).
            origin: a hashable standing for the URL's scheme, host and port, so a map
                need not parse the URL again (`None`: parse it).
            cost: the request's weight (an int, or costs per unit); `None`: ask the
                client's `cost` callable, else 1.
            ticket: an entry lent by an outer adapter for the first hop (claimed here).
            lend: lend each entry to an inner adapter with the send (see `Ticket`).
            sent: the first attempt, already admitted and sent by the caller: its key,
                throttler, entry and response; the journey goes on from its headers.
        """
        policy = self.feedback
        hosts = self._map
        attempt = 0
        if cost is None:
            cost_of = self.cost_of
            cost = 1 if cost_of is None else cost_of(request)
        while True:
            if sent is not None:
                key, throttler, entry, response = sent
                sent = None
            else:
                # Resolved again for each attempt: a map may drop a throttler that went
                # idle while a retry slept; the entry must count in the one the map holds.
                if hosts is None:
                    key, throttler = "*", self.throttler
                else:
                    key, throttler = hosts.resolve(target, origin=origin)
                    if throttler is None:
                        yield (_DONE, (yield _SEND_PLAIN))
                claimed = None
                if ticket is not None:
                    claimed = ticket.claim(self, throttler)
                    ticket = None
                if claimed is not None:
                    entry = claimed
                else:
                    charge = cost if cost == 1 else self._charge(throttler, cost)
                    try:
                        entry = yield (_ADMIT, throttler, charge)
                    except ValueError:
                        # Adapted below this cost while it waited: charge the new limit.
                        if self._charge(throttler, charge) == charge:
                            raise
                        continue
                    except ThrottlerTimeoutError as exc:
                        raise self._timed_out(key) from exc
                    if hosts is not None and not hosts.is_current(key, throttler):
                        # Another thread evicted the (then idle) throttler as this one
                        # queued: an entry must count in the throttler the map holds.
                        entry.close()
                        continue
                    if policy is not None and policy.adapt:
                        policy.admitted(throttler, key)  # slow start: a host not heard yet
                lent = Ticket(self, key, throttler, entry) if lend else None
                try:
                    response = yield (_SEND, lent)
                except BaseException:
                    entry.close()
                    raise
                if lent is not None and lent.claimed:
                    # The inner adapter settled it, applied feedback and holds it.
                    yield (_DONE, response)
            entry.settle()
            wait = None
            if policy is not None:
                attempt += 1
                status = exchange.status(response)
                headers = exchange.headers(response)
                # Most responses carry nothing to act on: skip parsing them (unless
                # adapting, which reads advertised quotas on every response).
                if policy.adapt or may_carry_feedback(status, headers):
                    try:
                        wait = self._consult(
                            policy, exchange, request, status, headers, throttler, key, attempt
                        )
                    except BaseException:
                        try:
                            yield (_DISCARD, response)
                        finally:
                            entry.close()
                        raise
            if wait is None:
                yield (_DONE, exchange.hold(response, entry, key))
            try:
                yield (_DISCARD, response)
                if self.reconcile is not None:
                    # A refused attempt, sent again: what did it cost? (Its body is gone:
                    # the callable sees an empty tail, and the response's status.)
                    BodyTail(self.reconcile, response, entry).done()
            finally:
                entry.close()
            yield (_SLEEP, wait)

    # -- the drivers -----------------------------------------------------------------

    async def run(
        self,
        steps: Generator[_Step, Any, None],
        request: _R,
        send: Callable[[_R, Ticket | None], Awaitable[_Resp]],
        discard: Callable[[_Resp], Awaitable[None] | None],
    ) -> _Resp:
        """Drive `steps` with `await`: the journey of an asyncio client's request.

        Args:
            steps: from `steps`.
            request: passed to `send`.
            send: sends `request` once (given the lent `Ticket`, or `None`).
            discard: closes a refused response before it is sent again.
        """
        step = steps.send(None)
        value: Any
        while True:
            kind = step[0]
            if kind == _DONE:
                return step[1]  # type: ignore[no-any-return]
            try:
                if kind == _SEND:
                    value = await send(request, step[1])
                elif kind == _ADMIT:
                    value = await step[1].open_entry(step[2], timeout=self.throttle_timeout)
                elif kind == _DISCARD:
                    value = discard(step[1])
                    if value is not None:
                        value = await value
                else:
                    value = None
                    await asyncio.sleep(step[1])
            except BaseException as exc:
                step = steps.throw(exc)
            else:
                step = steps.send(value)

    def run_sync(
        self,
        steps: Generator[_Step, Any, None],
        request: _R,
        send: Callable[[_R, Ticket | None], _Resp],
        discard: Callable[[_Resp], object],
    ) -> _Resp:
        """Drive `steps` blocking the calling thread: a threaded client's request."""
        step = steps.send(None)
        value: Any
        while True:
            kind = step[0]
            if kind == _DONE:
                return step[1]  # type: ignore[no-any-return]
            try:
                if kind == _SEND:
                    value = send(request, step[1])
                elif kind == _ADMIT:
                    value = step[1].open_entry(step[2], timeout=self.throttle_timeout)
                elif kind == _DISCARD:
                    value = discard(step[1])
                else:
                    value = None
                    time.sleep(step[1])
            except BaseException as exc:
                step = steps.throw(exc)
            else:
                step = steps.send(value)

    # -- pieces of the journey, for adapters that cannot hand the whole of it over ----

    async def admit(
        self, target: object, origin: Hashable | None = None, cost: CostLike = 1
    ) -> tuple[str, Any, EntryLike] | None:
        """Wait for one hop's entry: its key, throttler and entry (`None`: no limit).

        For hook-based adapters (aiohttp's `TraceConfig`) that see a hop start and end
        but cannot run it; they settle, hold and close the entry themselves. `cost` is
        the hop's weight, as for `steps`.
        """
        key, throttler = self._resolve(target, origin)
        if throttler is None:
            return None
        charge = cost if cost == 1 else self._charge(throttler, cost)
        try:
            entry = await throttler.open_entry(charge, timeout=self.throttle_timeout)
        except ThrottlerTimeoutError as exc:
            raise self._timed_out(key) from exc
        policy = self.feedback
        if policy is not None and policy.adapt:
            policy.admitted(throttler, key)  # slow start: a host not heard yet
        return key, throttler, entry

    def _timed_out(self, key: str) -> ThrottlerTimeoutError:
        """The error for a hop that waited `throttle_timeout` for its turn in vain."""
        return ThrottlerTimeoutError(
            f"{key}: no turn within throttle_timeout={self.throttle_timeout} s; nothing "
            "was sent (raise throttle_timeout, or lower the load on this host)"
        )

    async def lend(
        self, target: object, origin: Hashable | None = None, cost: CostLike = 1
    ) -> Ticket | None:
        """Wait for a hop's entry of `cost` and lend it as a `Ticket` (`None`: no limit).

        The caller closes the entry if nobody claimed the ticket.
        """
        admitted = await self.admit(target, origin, cost)
        return None if admitted is None else Ticket(self, *admitted)

    def _resolve(self, target: object, origin: Hashable | None) -> tuple[str, Any]:
        hosts = self._map
        return ("*", self.throttler) if hosts is None else hosts.resolve(target, origin=origin)

    def _charge(self, throttler: Any, cost: CostLike) -> CostLike:
        """The cost to charge: with `adapt=True`, at most the smallest limit now in force.

        A server that advertises a quota smaller than a request's cost (or a 429 that cut
        the rate) must not make that request raise: it is charged as a whole window of the
        adopted limit instead, which the server's quota allows.
        """
        policy = self.feedback
        if not isinstance(cost, int) or cost == 1 or policy is None or not policy.adapt:
            return cost
        rates: tuple[Rate, ...] = throttler.rates
        smallest = min(rate.limit for rate in rates)
        return cost if cost <= smallest else smallest

    @staticmethod
    def _consult(
        policy: FeedbackPolicy,
        exchange: Exchange[_Req, _Resp],
        request: _Req,
        status: int,
        headers: HeadersLike,
        throttler: Any,
        key: str,
        attempt: int,
    ) -> float | None:
        """Apply the response's feedback; the seconds to wait before a retry, or `None`.

        Feedback is applied before the slot can free (a complete body releases it at
        once), so no queued hop slips through ahead of a `Retry-After` pause.
        """
        delay = policy.observe(throttler, key, status, headers)
        if status < 400:
            return None
        return policy.retry_delay(
            exchange.method(request),
            status,
            attempt,
            delay,
            replayable=exchange.replayable(request),
            key=key,
        )

    def __repr__(self) -> str:
        return f"<Pipeline {self.throttler!r} feedback={self.feedback!r}>"


# -- options shared by every integration's constructor ----------------------------------


def check_callable(name: str, value: _F | None) -> _F | None:
    """`value` if it is `None` or callable, else a `TypeError` naming the argument."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable or None, got {value!r}")
    return value


def check_throttle_timeout(value: object) -> float | None:
    """`throttle_timeout`: `None` (wait as long as it takes) or seconds >= 0."""
    return None if value is None else non_negative_float("throttle_timeout", value)


def check_feedback(value: object) -> FeedbackPolicy | None:
    """`feedback`: a [`FeedbackPolicy`][throttled_http.FeedbackPolicy], or `None`."""
    if value is None or isinstance(value, FeedbackPolicy):
        return value
    raise TypeError(
        f"feedback must be a FeedbackPolicy such as FeedbackPolicy(retries=3), got {value!r}"
    )


def throttler_from_options(
    throttler: object,
    rate_limit: object,
    period: object,
    *,
    sync: bool = False,
) -> Any:
    """What a client is throttled by: the shared `throttler=`, or a new per-host map.

    `rate_limit` and `period` are the design card's shorthand for a per-host map at
    that rate (10 per second when nothing is given). A shared throttler carries its own
    limits, so giving the shorthand beside it would leave it unused: a `TypeError`
    naming both.
    """
    if throttler is None:
        cls = SyncThrottlerMap if sync else ThrottlerMap
        return cls(rate_limit, period)  # type: ignore[arg-type]  # checked there
    for name, value in (("rate_limit", rate_limit), ("period", period)):
        if value is not None:
            raise TypeError(
                f"{name}= and throttler= were both given; the throttler carries its own "
                f"limits: drop {name}=, or build the map with it "
                f"(throttler={'SyncThrottlerMap' if sync else 'ThrottlerMap'}({name}=...))"
            )
    blocking = isinstance(throttler, SyncThrottlerMap) or (
        isinstance(throttler, SyncThrottlerLike)
        and not inspect.iscoroutinefunction(throttler.open_entry)
    )
    if sync and not blocking:
        hint = ""
        if isinstance(throttler, (ThrottlerMap, ThrottlerLike)):
            hint = (
                ": this one is for asyncio clients (from a preset such as openai_limits()? "
                "pass sync=True for a threaded transport)"
            )
        raise TypeError(
            f"throttler must be a SyncThrottler or a SyncThrottlerMap, got {throttler!r}{hint}"
        )
    if not sync and (blocking or not isinstance(throttler, (ThrottlerMap, ThrottlerLike))):
        hint = ""
        if blocking:
            hint = (
                ": this one is for threaded clients (from a preset built with sync=True? "
                "drop it for an asyncio transport)"
            )
        raise TypeError(
            "throttler must be a Throttler, a ThrottlerMap, a RedisThrottler or another "
            f"ThrottlerLike, got {throttler!r}{hint}"
        )
    return throttler
