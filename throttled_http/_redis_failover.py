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

**The shadow ledger.** The fallback must not start from an empty window: at failover it
would admit a whole limit on top of what this process was just admitted through Redis.
So every process keeps a :class:`~throttled_http._ledger.Ledger` of its own recent
entries, the *shadow*: every admission and settle it made through Redis, stamped on its
own clock when the reply arrived (a little later than the server did: counted longer,
never less). The fallback admits by that very ledger, so it starts from this process's
entries of the last period and keeps adding its own.

**Recovery.** Redis does not know the entries the fallback admitted. After Redis answers
again, every entry must therefore fit the local windows too, until the longest period has
passed (plus ``open_timeout`` if entries were still open): one process alone on its key
never exceeds the limit in any window across either switch.

**How the fallback shares the shadow.** The :class:`Failover` owns both the shadow and
the fallback, and touches neither's private state. The fallback is built by
``Throttler._over_ledger(shadow)``, a package-internal constructor path of the core
throttler that makes a throttler admitting by a ledger its caller provides, and hands
back a function to call after the caller settled an entry in that ledger itself (which
may let the fallback's queue move on). Everything else goes through the fallback's public
interface: ``acquire()``, ``open_entry()``, ``try_acquire()`` and ``set_rates()`` (which
retunes the shared shadow).

:class:`Failover`'s interface speaks in those terms: the shadow records (:meth:`take`,
:meth:`reserve`, :meth:`unreserve`, :meth:`settle`), the state of Redis (:meth:`fail`,
:meth:`answered`, :meth:`is_down`), the local windows (:meth:`local_windows_apply`,
:meth:`local_wait`, :meth:`fits_locally`) and the fallback's admissions.
"""

from __future__ import annotations

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
        "_down_until",
        "_fallback",
        "_key",
        "_local_until",
        "_open_timeout",
        "_recover_after",
        "_shadow",
        "_terms",
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
        self._fallback: Throttler | None = None
        self._wake: Callable[[], None] | None = None
        self._down_until = -math.inf  # Redis is bypassed until then; -inf: it answers
        self._local_until = -math.inf  # the local windows apply until then, after recovery

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

    def answered(self, now: float) -> None:
        """Redis answered at ``now``: use it again, keeping the local windows for a while."""
        if self._down_until == -math.inf:
            return
        self._down_until = -math.inf
        if self._fallback is not None:
            # Entries the fallback admitted count until the longest period after the last
            # one; one still open counts as stamped at most open_timeout from now.
            extra = self._open_timeout if self._shadow.open else 0.0
            longest = max(r.period for r in self._terms.every(now))
            self._local_until = now + longest + extra
        logger.warning("Redis answers again for %r", self._key)

    # -- the local windows ---------------------------------------------------------------

    def local_windows_apply(self, now: float) -> bool:
        """Whether entries must fit the local windows too: the fallback admitted entries
        that Redis does not know, and they may still share a window with a new one."""
        return self._fallback is not None and (
            self._down_until != -math.inf or now < self._local_until
        )

    def fits_locally(self, now: float, cost: int) -> bool:
        """Whether ``cost`` fits this process's own windows (the shadow) at ``now``."""
        return self._shadow.earliest(now, cost, False) <= now

    def local_wait(self, now: float, cost: int, poll: float) -> float:
        """Seconds before ``cost`` may fit the local windows; 0 when it fits now.

        ``poll`` is the wait when only a settle can make room (an open entry). The wait
        never runs past the moment the local windows stop applying.
        """
        at = self._shadow.earliest(now, cost, False)
        if at <= now:
            return 0.0
        wait = poll if at == INF else at - now
        if self._down_until == -math.inf:
            wait = min(wait, self._local_until - now)
        return wait

    # -- the shadow ledger -------------------------------------------------------------

    def take(self, now: float, cost: int) -> None:
        """Record an entry admitted through Redis and stamped at once."""
        self._shadow.take(now, cost, False)

    def reserve(self, cost: int) -> int:
        """Record an entry admitted open through Redis; returns its generation."""
        return self._shadow.reserve(cost, False)

    def unreserve(self, cost: int, generation: int) -> None:
        """Forget an open entry that never happened."""
        self._shadow.unreserve(cost, False, generation)

    def settle(self, now: float, cost: int, generation: int) -> None:
        """Stamp an open entry at ``now``; the fallback's queue may wait on it."""
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
        """Whether nothing is left that the fallback would need (with ``"local"``)."""
        return self.on_error != "local" or self._shadow.is_idle(now)

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
