"""What the asyncio `Throttler` and the thread-safe `SyncThrottler` share.

Both front ends drive one `Ledger`; this module holds what must not drift between them:
the construction checks (`budgets=`, `bucket=`, `burst=`), the configuration views, the
cost check, the statistics snapshot and the entries' states. The waiting machinery is each
front end's own (`throttled_http._throttler`, `throttled_http._sync`).
"""

from __future__ import annotations

from collections.abc import Mapping as Mapping_
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Self, final

from ._budgets import Budgets, Charge, parse_budgets
from ._ledger import Ledger
from ._rates import Rate, RatesLike, parse_rates
from ._validate import int_in_range, positive_int

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._budgets import CostLike

    Cost = int | Charge

__all__ = ["ThrottlerStatistics"]


_OPEN: Final = 0
_SETTLED: Final = 1
_CLOSED: Final = 2
_PENDING: Final = 3  # an entry() not yet entered


@final
@dataclass(frozen=True, slots=True)
class ThrottlerStatistics:
    """A snapshot of a throttler's state, from `Throttler.statistics`.

    Attributes:
        rates: the limits in force.
        burst: smooth-mode burst, or `None`.
        max_concurrency: the concurrency cap, or `None`.
        waiting: tasks queued for an entry.
        in_window: cost counted in the first rate's window now, open entries included
            (in bucket mode: what the first bucket lacks of full, rounded up).
        open: cost admitted and not yet settled (woken tasks, requests awaiting headers).
        in_flight: slots held: entered and not yet released.
        wait_time: seconds a new entry of cost 1 would wait now if nobody were queued
            ahead of it; `inf` when it waits for a release or a settle rather than for
            time; a lower bound while others are waiting.
        paused_for: seconds left of a pause set by
            [`Throttler.pause`][throttled_http.Throttler.pause] (0 if none).
        admitted: entries admitted since the throttler was made, a running total: each
            entry once, whatever its cost (`acquire()`, `async with`, `try_acquire()`
            that returned `True`, `entry()`, `open_entry()`). A waiter cancelled or timed
            out is not counted.
        waited_seconds: seconds spent queued, a running total over every waiter (admitted,
            timed out or cancelled). An entry admitted at once adds nothing, so
            `waited_seconds / admitted` is the mean wait per entry, counting those that
            did not wait at all.
        budgets_in_use: per unit of `budgets` (tokens, say), what its first limit counts
            now: charges stamped in its window (or missing from its bucket) plus those
            reserved and not yet settled. Empty without budgets.

    Changed in 0.2: `admitted`, `waited_seconds` and `budgets_in_use`.
    """

    rates: tuple[Rate, ...]
    burst: int | None
    max_concurrency: int | None
    waiting: int
    in_window: int
    open: int
    in_flight: int
    wait_time: float
    paused_for: float
    admitted: int = 0
    waited_seconds: float = 0.0
    budgets_in_use: Mapping[str, float] = field(default_factory=dict)


class _LedgerFront:
    """What `Throttler` and `SyncThrottler` share.

    Both drive one `Ledger`; this holds the construction
    checks, the configuration views, the cost check and the repr, so the two front ends
    cannot drift apart. Subclasses set up their own waiting machinery in
    `_init_waiting`.
    """

    __slots__ = ("_ledger",)

    def _init(
        self,
        rates: Sequence[Rate],
        *,
        max_concurrency: int | None,
        burst: int | None,
        budgets: object = None,
        bucket: object = False,
    ) -> None:
        if max_concurrency is not None:
            max_concurrency = int_in_range("max_concurrency", max_concurrency, 1, 2**62)
        burst = _check_burst(burst, rates)
        self._ledger = Ledger(
            rates,
            burst=burst,
            max_concurrency=max_concurrency,
            budgets=_make_budgets(budgets, bucket, rates, burst),
        )
        self._init_waiting()

    def _init_waiting(self) -> None:
        raise NotImplementedError

    @classmethod
    def from_rates(
        cls,
        *rates: RatesLike,
        max_concurrency: int | None = None,
        burst: int | None = None,
        budgets: Mapping[str, RatesLike] | None = None,
        bucket: bool = False,
    ) -> Self:
        """A throttler that admits an entry only when every one of `rates` allows it.

        Examples:
            >>> t = Throttler.from_rates("10/s", "1000/h")
            >>> t.rates
            (Rate(10/s), Rate(1000/h))

        While an entry waits for one limit it holds nothing in another (waiting burns no
        quota), and admission stays FIFO and cancellation-safe. `rate_limit` and
        `period` report the first rate. `burst` spaces entries at the slowest rate's
        interval and may be at most that rate's limit.

        Args:
            rates: [`Rate`][throttled_http.Rate] values or strings such as `"10/s; 1000/h"`.
            max_concurrency: as for the constructor.
            burst: smooth mode; at most the slowest rate's limit.
            budgets: as for the constructor.
            bucket: as for the constructor.
        """
        return cls._from_parsed(
            parse_rates(*rates),
            max_concurrency=max_concurrency,
            burst=burst,
            budgets=budgets,
            bucket=bucket,
        )

    @classmethod
    def _from_parsed(
        cls,
        rates: tuple[Rate, ...],
        *,
        max_concurrency: int | None = None,
        burst: int | None = None,
        budgets: object = None,
        bucket: object = False,
    ) -> Self:
        """`from_rates` for rates parsed already: a map's keys share one tuple."""
        self = cls.__new__(cls)
        self._init(
            rates, max_concurrency=max_concurrency, burst=burst, budgets=budgets, bucket=bucket
        )
        return self

    # -- configuration ---------------------------------------------------------------

    @property
    def rate_limit(self) -> int:
        """Entries allowed per window of the first rate."""
        return self._ledger.rates[0].limit

    @property
    def period(self) -> float:
        """The first rate's window, in seconds."""
        return self._ledger.rates[0].period

    @property
    def rates(self) -> tuple[Rate, ...]:
        """Every limit in force."""
        return self._ledger.rates

    @property
    def burst(self) -> int | None:
        """Smooth-mode burst, or `None`."""
        return self._ledger.burst

    @property
    def max_concurrency(self) -> int | None:
        """The concurrency cap, or `None`."""
        return self._ledger.max_concurrency

    @property
    def budgets(self) -> dict[str, tuple[Rate, ...]]:
        """The limits of each unit besides requests (`{}` without budgets)."""
        budgets = self._ledger.budgets
        return {} if budgets is None else budgets.rates()

    @property
    def bucket(self) -> bool:
        """Whether the limits are token buckets rather than sliding windows."""
        budgets = self._ledger.budgets
        return budgets is not None and budgets.bucket

    def statistics(self) -> ThrottlerStatistics:
        raise NotImplementedError

    def has_capacity(self, cost: CostLike = 1) -> bool:
        """Whether an entry of `cost` would be admitted now without waiting (`False` for
        one that could never be)."""
        try:
            charge = self._check_cost(cost)
        except ValueError:
            return False
        return self._free_now(charge)

    def _free_now(self, charge: Cost) -> bool:
        raise NotImplementedError

    def _snapshot(self, now: float, waiting: int) -> ThrottlerStatistics:
        ledger = self._ledger
        return ThrottlerStatistics(
            rates=ledger.rates,
            burst=ledger.burst,
            max_concurrency=ledger.max_concurrency,
            waiting=waiting,
            in_window=ledger.in_window(now),
            open=ledger.open,
            in_flight=ledger.in_flight,
            wait_time=ledger.earliest(now, 1) - now,
            paused_for=max(0.0, ledger.paused_until - now),
            admitted=ledger.admitted,
            waited_seconds=ledger.waited,
            budgets_in_use={} if ledger.budgets is None else ledger.budgets.used(now),
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        rates = ", ".join(str(r) for r in stats.rates)
        extra = ""
        if stats.burst is not None:
            extra += f" burst={stats.burst}"
        if stats.max_concurrency is not None:
            extra += f" max_concurrency={stats.max_concurrency}"
        budgets = self._ledger.budgets
        if budgets is not None:
            if budgets.bucket:
                extra += " bucket"
            for name, unit_rates in budgets.rates().items():
                extra += f" {name}={'; '.join(str(r) for r in unit_rates)}"
        return (
            f"<{type(self).__name__} {rates}{extra} in_window={stats.in_window} "
            f"open={stats.open} in_flight={stats.in_flight} waiting={stats.waiting}>"
        )

    def _check_cost(self, value: object) -> Cost:
        """`value` validated: an int, or (with budgets) a mapping made a `Charge`."""
        ledger = self._ledger
        budgets = ledger.budgets
        if isinstance(value, Mapping_):
            if budgets is None:
                raise TypeError(
                    "a cost in several units needs a throttler with budgets for them, such "
                    f"as Throttler(60, 60.0, budgets={{'tokens': '30000/min'}}); got {value!r}"
                )
            charge = budgets.charge(value)
            if not ledger.fits(charge.requests):
                raise ValueError(_cost_message(ledger.rates, charge.requests))
            return charge
        if value.__class__ is int and value == 1:
            return 1  # every limit is at least 1
        cost = positive_int("cost", value)
        if not ledger.fits(cost):
            raise ValueError(_cost_message(ledger.rates, cost))
        return cost


def _cost_message(rates: Sequence[Rate], cost: int) -> str:
    smallest = min(r.limit for r in rates)
    return (
        f"cost must be at most the smallest limit ({smallest}), got {cost}: "
        "such an entry could never be admitted"
    )


def _requests(cost: Cost) -> int:
    return cost if isinstance(cost, int) else cost.requests


def _make_budgets(
    budgets: object, bucket: object, rates: Sequence[Rate], burst: int | None
) -> Budgets | None:
    """The `budgets=` and `bucket=` arguments validated, as the ledger's `Budgets`."""
    if bucket is not True and bucket is not False:
        raise TypeError(f"bucket must be True or False, got {bucket!r}")
    if bucket and burst is not None:
        raise TypeError(
            "bucket=True and burst= cannot be combined: a token bucket's burst is its "
            "capacity, the limit itself"
        )
    if budgets is None and not bucket:
        return None
    units = {} if budgets is None else parse_budgets(budgets)
    return Budgets(units, bucket=bucket, requests=rates if bucket else ())


def _check_burst(burst: object, rates: Sequence[Rate]) -> int | None:
    if burst is None:
        return None
    slowest = max(rates, key=lambda r: (r.interval, -r.limit))
    return int_in_range("burst", burst, 1, slowest.limit)


class _EntryState:
    """The state every kind of entry shares: open, settled (stamped), closed (slot back).

    Subclasses decide how `settle()` and `close()` reach their throttler; these views
    and the repr are the same for all of them.
    """

    __slots__ = ("_charge", "_state", "cost")

    _state: int
    _charge: Charge | None  # what it is charged in units besides requests, if any
    cost: int
    """The entry's weight in requests (see [`costs`][throttled_http.Entry.costs] for
    every unit)."""

    @property
    def costs(self) -> dict[str, int]:
        """What the entry is charged, per unit: `{"requests": 1, "tokens": 420}`."""
        charge = self._charge
        return {"requests": self.cost} if charge is None else charge.as_dict()

    @property
    def settled(self) -> bool:
        """Whether the entry has been stamped."""
        return self._state == _SETTLED or self._state == _CLOSED

    @property
    def closed(self) -> bool:
        """Whether the entry's slot has been given back."""
        return self._state == _CLOSED

    def __repr__(self) -> str:
        state = ("open", "settled", "closed", "not entered")[self._state]
        costs = self.costs
        shown = costs if len(costs) > 1 else self.cost
        return f"<{type(self).__name__} cost={shown} {state}>"

    def _set_cost(self, cost: Cost) -> None:
        if isinstance(cost, int):
            self.cost = cost
            self._charge = None
        else:
            self.cost = cost.requests
            self._charge = cost

    def _charge_for_reconcile(self) -> Charge:
        """The entry's `Charge`, made from an int cost if need be (then charged nothing)."""
        if self._state == _PENDING:
            raise RuntimeError(f"{self!r} was not admitted yet: nothing to reconcile")
        charge = self._charge
        if charge is None:
            charge = Charge(self.cost, {})
            self._charge = charge
            if self._state != _OPEN:
                charge.records = {}  # stamped already: what reconciling adds is stamped now
        return charge
