"""The failover: what a :class:`~throttled_http.redis.RedisThrottler` does while Redis fails.

``on_error`` picks the behaviour when a Redis call fails (an error, or no answer within
``command_timeout``):

* ``"raise"``: the waiting call raises :class:`~throttled_http.ThrottlerBackendError`;
  every call tries Redis again, so the first one after Redis is back succeeds.
* ``"allow"``: entries are admitted at once.
* ``"local"``: an in-memory :class:`~throttled_http.Throttler` at the same rates (and
  burst) admits, in this process only.

With ``"allow"`` and ``"local"`` Redis is bypassed for ``recover_after`` seconds, then tried
again, and used again as soon as it answers (a warning is logged at each switch).

**The shadow ledger.** Every process keeps a :class:`~throttled_http._ledger.Ledger` of
its own recent entries, the *shadow*: each entry it admits through Redis is reserved there
(open) before the admit call goes out, and stamped on this process's clock when it is
settled (an ``acquire()`` entry when its task resumes, a latency-proof entry at
``settle()``, a ``try_acquire()`` entry when the reply arrives): a little later than the
server did, so counted longer, never less. A latency-proof entry left open past
``open_timeout`` is stamped when that is noticed, as Redis counts it stamped at that
deadline.

**The shadow gates every admission.** Redis may forget (a restart without persistence,
``FLUSHALL``, a failover to a lagging replica); this process does not. So in every
``on_error`` mode an entry is asked of Redis only if it also fits this process's own
windows: however empty Redis is, one process alone never exceeds the limit in any window.
The fleet as a whole may: the entries other processes made before the loss are gone, so
one window may hold up to the limit from before the loss plus the limit after it (twice
the limit, for one loss).

**The local fallback.** It must not start from an empty window either: at failover it
would admit a whole limit on top of what this process was just admitted through Redis. It
admits by the shadow itself, so it starts from this process's entries of the last period
and keeps adding its own; and since the gate above applies once Redis answers again, the
entries it admitted (unknown to Redis) keep counting for their period across the switch
back.

**How the fallback shares the shadow.** The :class:`Failover` owns both the shadow and
the fallback, and touches neither's private state. The fallback is built by
``Throttler._over_ledger(shadow)``, a package-internal constructor path of the core
throttler that makes a throttler admitting by a ledger its caller provides, and hands
back a function to call after the caller settled an entry in that ledger itself (which
may let the fallback's queue move on). Everything else goes through the fallback's public
interface: ``acquire()``, ``open_entry()``, ``try_acquire()`` and ``set_rates()`` (which
retunes the shared shadow).

:class:`Failover`'s interface speaks in those terms: the shadow's reservations
(:meth:`try_reserve`, :meth:`unreserve`, :meth:`settle`) and its wait
(:meth:`local_wait`), the state of Redis (:meth:`fail`, :meth:`answered`,
:meth:`is_down`) and the fallback's admissions.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import TYPE_CHECKING, Final, Literal, final

from ._ledger import INF, Ledger
from ._throttler import Throttler

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._protocols import EntryLike
    from ._rates import Rate
    from ._redis_wire import Terms

__all__ = ["ON_ERROR", "Failover", "OnError", "check_on_error"]

logger = logging.getLogger("throttled_http")

OnError = Literal["raise", "local", "allow"]

ON_ERROR: Final = ("raise", "local", "allow")


def check_on_error(on_error: object) -> OnError:
    """Return ``on_error`` if it is one of :data:`ON_ERROR`, else raise naming it."""
    if on_error == "raise":
        return "raise"
    if on_error == "local":
        return "local"
    if on_error == "allow":
        return "allow"
    raise ValueError(f"on_error must be one of 'raise', 'local', 'allow', got {on_error!r}")


@final
class Failover:
    """The shadow ledger, the local fallback and the state of Redis, for one throttler.

    Times are the event loop's clock, in seconds.

    Args (validated by the caller):
        terms: the throttler's limits (the shadow starts with them).
        key: the throttler's key (named in log messages).
        on_error: ``"raise"``, ``"local"`` or ``"allow"``.
        recover_after: seconds to bypass Redis after a failure.
        open_timeout: seconds an unsettled entry counts as open.
    """

    __slots__ = (
        "_deadlines",
        "_down_until",
        "_fallback",
        "_key",
        "_open_timeout",
        "_recover_after",
        "_reserved",
        "_shadow",
        "_terms",
        "_tickets",
        "_wake",
        "on_error",
    )

    def __init__(
        self,
        terms: Terms,
        *,
        key: str,
        on_error: OnError,
        recover_after: float,
        open_timeout: float,
    ) -> None:
        self._terms = terms
        self._key = key
        self.on_error: OnError = on_error
        self._recover_after = recover_after
        self._open_timeout = open_timeout
        # This process's own recent entries, stamped on the local clock.
        self._shadow = Ledger(terms.rates, burst=terms.burst)
        # Its reservations by ticket: (cost, ledger generation); and the deadlines of
        # the latency-proof ones, in admission order (open_timeout after it).
        self._tickets = itertools.count(1)
        self._reserved: dict[int, tuple[int, int]] = {}
        self._deadlines: dict[int, float] = {}
        self._fallback: Throttler | None = None
        self._wake: Callable[[], None] | None = None
        self._down_until = -math.inf  # Redis is bypassed until then; -inf: it answers

    # -- the state of Redis ------------------------------------------------------------

    def is_down(self, now: float) -> bool:
        """Whether Redis is bypassed at ``now`` (``on_error`` ``"local"`` or ``"allow"``)."""
        return self._down_until > now

    def fail(self, now: float) -> None:
        """Redis failed at ``now``: bypass it for ``recover_after`` seconds."""
        if self._down_until == -math.inf:
            logger.warning(
                "Redis failed for %r; %s for %.3g s before trying it again",
                self._key,
                "using an in-memory throttler" if self.on_error == "local" else "admitting",
                self._recover_after,
            )
        self._down_until = now + self._recover_after

    def answered(self) -> None:
        """Redis answered: use it again (the shadow goes on gating every entry)."""
        if self._down_until == -math.inf:
            return
        self._down_until = -math.inf
        logger.warning("Redis answers again for %r", self._key)

    # -- the shadow ledger -------------------------------------------------------------

    def try_reserve(self, now: float, cost: int, expires: bool) -> int | None:
        """Reserve ``cost`` in the shadow if it fits this process's own windows at ``now``.

        ``expires``: a latency-proof entry, stamped by the shadow itself if still open
        ``open_timeout`` from now. Returns the reservation's ticket, or ``None`` when it
        does not fit.
        """
        self._expire(now)
        shadow = self._shadow
        if shadow.earliest(now, cost, False) > now:
            return None
        ticket = next(self._tickets)
        self._reserved[ticket] = (cost, shadow.reserve(cost, False))
        if expires:
            self._deadlines[ticket] = now + self._open_timeout
        return ticket

    def local_wait(self, now: float, cost: int, poll: float) -> float:
        """Seconds before ``cost`` may fit the shadow's windows; 0 when it fits now.

        ``poll`` is the wait when only a settle can make room (an open entry).
        """
        self._expire(now)
        at = self._shadow.earliest(now, cost, False)
        if at <= now:
            return 0.0
        return poll if at == INF else at - now

    def unreserve(self, ticket: int) -> None:
        """Forget a reserved entry that never happened."""
        self._deadlines.pop(ticket, None)
        reserved = self._reserved.pop(ticket, None)
        if reserved is not None:
            cost, generation = reserved
            self._shadow.unreserve(cost, False, generation)

    def settle(self, now: float, ticket: int) -> None:
        """Stamp a reserved entry at ``now``; the fallback's queue may wait on it."""
        self._deadlines.pop(ticket, None)
        reserved = self._reserved.pop(ticket, None)
        if reserved is None:
            return  # stamped already, at its deadline
        cost, generation = reserved
        self._shadow.settle(now, cost, generation)
        if self._wake is not None:
            self._wake()

    def set_rates(self, now: float, rates: tuple[Rate, ...], burst: int | None) -> None:
        """Retune the shadow (through the fallback, which shares it, if there is one)."""
        if self._fallback is not None:
            self._fallback.set_rates(rates, burst=burst)
        else:
            self._shadow.set_rates(now, rates, burst)

    def is_idle(self, now: float) -> bool:
        """Whether the shadow remembers nothing: dropping it loosens nothing."""
        self._expire(now)
        return self._shadow.is_idle(now)

    def _expire(self, now: float) -> None:
        """Stamp the latency-proof entries still open past their deadline (at ``now``:
        later than Redis does, so counted longer, never less)."""
        deadlines = self._deadlines
        while deadlines:
            ticket = next(iter(deadlines))
            if deadlines[ticket] > now:
                return
            self.settle(now, ticket)

    # -- the local fallback ------------------------------------------------------------

    async def acquire(self, cost: int, timeout: float | None) -> None:
        """Wait for an entry of the local fallback."""
        await self._local().acquire(cost, timeout=timeout)

    async def open_entry(self, cost: int, timeout: float | None) -> EntryLike:
        """Wait for a latency-proof entry of the local fallback."""
        return await self._local().open_entry(cost, timeout=timeout)

    def try_acquire(self, cost: int) -> bool:
        """Take an entry of the local fallback if one is free now."""
        return self._local().try_acquire(cost)

    def _local(self) -> Throttler:
        if self._fallback is None:
            # Start from this process's own recent entries, not from an empty window: at
            # failover it already counts what this process was admitted through Redis.
            self._fallback, self._wake = Throttler._over_ledger(self._shadow)
        return self._fallback
