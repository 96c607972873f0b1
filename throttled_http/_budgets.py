"""Budgets in units besides requests, and bucket mode: the bookkeeping, pure and synchronous.

A throttler built with `budgets={"tokens": "30000/min"}` admits an entry only when its
requests *and* every unit it is charged in have room, in one FIFO queue with one wait: a
waiter holds nothing in one unit while it waits for another. This module keeps the units'
books; the [`Ledger`][throttled_http._ledger.Ledger] consults it, so the queue, the
latency-proof entries and the cancellation rules are the same as for requests.

Two kinds of book, chosen per throttler:

* **sliding windows** (the default, as for requests): a unit's charges stamped in any
  window of `period` seconds add up to at most its limit, open charges counting in every
  window;
* **buckets** (`bucket=True`): a token bucket of capacity `limit` that refills
  continuously at `limit / period` per second, exactly as OpenAI, Anthropic, Envoy and most
  API gateways document theirs. In bucket mode the requests are a bucket too and no
  sliding window is kept on top.

In both, a charge is *reserved* at admission (it counts at once, so the queue behind it
sees it) and *stamped* when the entry settles (response headers arrived): for a bucket,
that is when the consumption starts to refill. The server took its tokens somewhere
between the two moments, so the client's bucket is never fuller than the server's.

**Reconciliation.** Once a response says what the request really cost (its `usage`), the
difference is credited or debited to the books it was charged to
(`Entry.reconcile`). A window's stamp simply changes its weight. A bucket keeps the
charges of its last `period` so that a credit is applied exactly where the charge was
made; a debit for an older charge is taken from the level now (which can only make the
client stricter), and a credit for one is dropped (its tokens have refilled anyway).
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeAlias, final

from ._rates import Rate, RatesLike, parse_rates
from ._validate import MAX_INT

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["REQUESTS", "Budgets", "Charge", "CostLike", "parse_budgets"]

INF = float("inf")
REQUESTS = "requests"
"""The name of the request unit in a cost mapping: `{"requests": 1, "tokens": 420}`."""

CostLike: TypeAlias = "int | Mapping[str, int]"
"""What a cost may be: an int (requests), or costs per unit (`{"tokens": 420}`)."""


@final
class _Record:
    """One stamped charge of one unit: its time and its (reconcilable) cost."""

    __slots__ = ("alive", "at", "cost")

    def __init__(self, at: float, cost: int) -> None:
        self.at = at
        self.cost = cost
        self.alive = True  # still in its book's memory


@final
class Charge:
    """What one entry costs in requests and in each unit, and where it was stamped.

    Made by [`Budgets.charge`][throttled_http._budgets.Budgets.charge], one per entry:
    reconciliation changes it in place.
    """

    __slots__ = ("records", "requests", "units")

    def __init__(self, requests: int, units: dict[str, int]) -> None:
        self.requests = requests
        self.units = units
        self.records: dict[str, tuple[_Record, ...]] | None = None  # once stamped

    def as_dict(self) -> dict[str, int]:
        return {REQUESTS: self.requests, **self.units}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"Charge({inner})"


class _Book:
    """One limit of one unit: a sliding window or a bucket."""

    __slots__ = ("limit", "period")

    limit: int
    period: float

    def earliest(self, now: float, need: int, at: float) -> float:
        """Fold this limit into `at`: when `need` (open + new) fits (INF: never by time)."""
        raise NotImplementedError

    def stamp(self, now: float, cost: int) -> _Record:
        raise NotImplementedError

    def adjust(self, now: float, record: _Record, delta: int) -> None:
        """The charge of `record` really was `delta` more (or less, if negative)."""
        raise NotImplementedError

    def used(self, now: float) -> float:
        """What is counted against the limit now, stamps only."""
        raise NotImplementedError


@final
class _Window(_Book):
    """At most `limit` in any window of `period` seconds, charges weighted."""

    __slots__ = ("records", "total")

    def __init__(self, rate: Rate) -> None:
        self.limit = rate.limit
        self.period = rate.period
        self.records: deque[_Record] = deque()
        self.total = 0  # the cost of the records in memory

    def _purge(self, now: float) -> None:
        records = self.records
        period = self.period
        while records and records[0].at + period <= now:
            gone = records.popleft()
            gone.alive = False
            self.total -= gone.cost

    def earliest(self, now: float, need: int, at: float) -> float:
        room = self.limit - need
        if room < 0:
            return INF
        self._purge(now)
        excess = self.total - room
        if excess <= 0:
            return at
        for record in self.records:  # oldest first: free them until the excess is gone
            excess -= record.cost
            if excess <= 0:
                ready = record.at + self.period
                return ready if ready > at else at
        return INF  # unreachable: the records hold more than the excess

    def stamp(self, now: float, cost: int) -> _Record:
        self._purge(now)
        record = _Record(now, cost)
        self.records.append(record)
        self.total += cost
        return record

    def adjust(self, now: float, record: _Record, delta: int) -> None:
        if record.alive:
            record.cost += delta
            self.total += delta

    def used(self, now: float) -> float:
        self._purge(now)
        return float(self.total)


@final
class _Bucket(_Book):
    """A token bucket: capacity `limit`, refilling at `limit / period` per second.

    The level is kept as of the last stamp (`level`, `level_at`). The stamps of the last
    `period` stay in memory after an *anchor* (the level just before the oldest of them),
    so a reconciled charge can be replayed where it was made.
    """

    __slots__ = ("anchor_at", "anchor_level", "level", "level_at", "rate", "records")

    def __init__(self, rate: Rate) -> None:
        self.limit = rate.limit
        self.period = rate.period
        self.rate = rate.limit / rate.period
        self.level = float(rate.limit)  # starts full
        self.level_at = -INF
        self.anchor_level = self.level
        self.anchor_at = -INF
        self.records: deque[_Record] = deque()

    def level_now(self, now: float) -> float:
        if self.level_at == -INF:
            return self.level
        level = self.level + (now - self.level_at) * self.rate
        return level if level < self.limit else float(self.limit)

    def earliest(self, now: float, need: int, at: float) -> float:
        if need > self.limit:
            return INF
        short = need - self.level_now(now)
        if short <= 0:
            return at
        ready = now + short / self.rate
        return ready if ready > at else at

    def stamp(self, now: float, cost: int) -> _Record:
        self.level = self.level_now(now) - cost
        self.level_at = now
        record = _Record(now, cost)
        records = self.records
        records.append(record)
        horizon = now - self.period
        while records[0].at < horizon:  # the newest one is never older than now
            old = records.popleft()
            old.alive = False
            self.anchor_level = _refill(self.anchor_level, self.anchor_at, old.at, self) - old.cost
            self.anchor_at = old.at
        return record

    def adjust(self, now: float, record: _Record, delta: int) -> None:
        if record.alive:
            record.cost += delta
            self._replay()
        elif delta > 0:
            # Too old to replay: a debit is charged now, as a stamp of its own (stricter
            # than replaying it, and kept by later replays); a credit is dropped (refilled
            # by now anyway).
            self.stamp(now, delta)

    def _replay(self) -> None:
        level, at = self.anchor_level, self.anchor_at
        for record in self.records:
            level = _refill(level, at, record.at, self) - record.cost
            at = record.at
        self.level, self.level_at = level, at

    def used(self, now: float) -> float:
        return self.limit - self.level_now(now)


def _refill(level: float, since: float, until: float, bucket: _Bucket) -> float:
    if since == -INF:
        return level
    level += (until - since) * bucket.rate
    return level if level < bucket.limit else float(bucket.limit)


def parse_budgets(budgets: object) -> dict[str, tuple[Rate, ...]]:
    """Validate `budgets=`: a mapping of unit names to rates (`{"tokens": "30000/min"}`)."""
    if not isinstance(budgets, Mapping):
        raise TypeError(
            "budgets must be a mapping of unit names to rates, such as "
            f"{{'tokens': '30000/min'}}, got {budgets!r}"
        )
    parsed: dict[str, tuple[Rate, ...]] = {}
    for name, rates in budgets.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"budgets: a unit's name must be an identifier such as 'tokens', got {name!r}"
            )
        if name == REQUESTS:
            raise ValueError(
                "budgets: 'requests' is the throttler's own unit; give its limits as "
                "rate_limit/period or rates, and other units here"
            )
        try:
            parsed[name] = parse_rates(_as_rates(rates))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"budgets[{name!r}]: {exc}") from None
    return parsed


def _as_rates(rates: object) -> RatesLike:
    if isinstance(rates, (str, Rate)) or (
        isinstance(rates, (list, tuple)) and all(isinstance(r, (str, Rate)) for r in rates)
    ):
        return rates  # a list of them: parse_rates checks each
    raise TypeError(
        f"give a rate with its period, such as '30000/min' or Rate(30000, 60), got {rates!r}"
    )


@final
class Budgets:
    """The books of every unit of one throttler, and in bucket mode of its requests too.

    Args:
        units: each unit's limits, from `parse_budgets`.
        bucket: keep buckets instead of sliding windows.
        requests: the request limits, kept here (as buckets) in bucket mode only.
    """

    __slots__ = ("books", "bucket", "open", "requests", "smallest")

    def __init__(
        self,
        units: Mapping[str, Sequence[Rate]],
        *,
        bucket: bool,
        requests: Sequence[Rate] = (),
    ) -> None:
        kind = _Bucket if bucket else _Window
        self.bucket = bucket
        self.books: dict[str, tuple[_Book, ...]] = {
            name: tuple(kind(r) for r in rates) for name, rates in units.items()
        }
        self.requests: tuple[_Book, ...] = tuple(_Bucket(r) for r in requests)
        self.open: dict[str, int] = dict.fromkeys(self.books, 0)
        self.smallest = {name: min(b.limit for b in books) for name, books in self.books.items()}

    def rates(self) -> dict[str, tuple[Rate, ...]]:
        return {
            name: tuple(Rate(b.limit, b.period) for b in books)
            for name, books in self.books.items()
        }

    # -- costs -----------------------------------------------------------------------

    def charge(self, cost: Mapping[str, object]) -> Charge:
        """A mapping cost validated: known units, ints in range, none beyond its limit."""
        requests = 1
        units: dict[str, int] = {}
        for name, value in cost.items():
            if name == REQUESTS:
                requests = _cost_int(f"cost[{REQUESTS!r}]", value, 1)
                continue
            if name not in self.books:
                raise ValueError(self._unknown("cost", name))
            amount = _cost_int(f"cost[{name!r}]", value, 0)
            if amount > self.smallest[name]:
                raise ValueError(
                    f"cost[{name!r}] must be at most the smallest {name} limit "
                    f"({self.smallest[name]}), got {amount}: such an entry could never be "
                    "admitted"
                )
            if amount:
                units[name] = amount
        return Charge(requests, units)

    # -- the ledger's questions and transitions --------------------------------------

    def earliest(self, now: float, cost: int | Charge, requests_open: int, at: float) -> float:
        """Fold every book into `at` for an entry of `cost`."""
        if self.requests:
            need = requests_open + (cost if isinstance(cost, int) else cost.requests)
            for book in self.requests:
                at = book.earliest(now, need, at)
        if not isinstance(cost, int):
            open_ = self.open
            for name, amount in cost.units.items():
                need = open_[name] + amount
                for book in self.books[name]:
                    at = book.earliest(now, need, at)
                    if at == INF:
                        return INF
        return at

    def fits(self, cost: int | Charge) -> bool:
        """Whether every unit's charge is within its smallest limit (the ledger checks the
        requests against the rates, whether windows or buckets)."""
        return isinstance(cost, int) or all(
            amount <= self.smallest[name] for name, amount in cost.units.items()
        )

    def reserve(self, cost: int | Charge) -> None:
        if not isinstance(cost, int):
            for name, amount in cost.units.items():
                self.open[name] += amount

    def unreserve(self, cost: int | Charge) -> None:
        if not isinstance(cost, int):
            for name, amount in cost.units.items():
                self.open[name] -= amount

    def stamp(self, now: float, cost: int | Charge, *, settled: bool) -> None:
        """Record `cost` at `now`; `settled`: it was reserved (open) until now."""
        requests = cost if isinstance(cost, int) else cost.requests
        for book in self.requests:
            book.stamp(now, requests)
        if isinstance(cost, int):
            return
        records: dict[str, tuple[_Record, ...]] = {}
        for name, amount in cost.units.items():
            if settled:
                self.open[name] -= amount
            records[name] = tuple(book.stamp(now, amount) for book in self.books[name])
        cost.records = records

    def reconcile(self, now: float, charge: Charge, actual: Mapping[str, object]) -> None:
        """Charge what the entry really cost in the units `actual` names."""
        checked = {
            name: _cost_int(f"actual[{name!r}]", value, 0)
            for name, value in actual.items()
            if self._known(name)
        }
        for name, amount in checked.items():
            delta = amount - charge.units.get(name, 0)
            if not delta:
                continue
            if charge.records is None:  # still open: change the reservation
                self.open[name] += delta
            else:
                records = charge.records.get(name)
                if records is None:  # charged nothing here when stamped: stamp the rest
                    charge.records[name] = tuple(
                        book.stamp(now, delta) for book in self.books[name]
                    )
                else:
                    for book, record in zip(self.books[name], records, strict=True):
                        book.adjust(now, record, delta)
            if amount:
                charge.units[name] = amount
            else:
                charge.units.pop(name, None)

    def _known(self, name: object) -> bool:
        if name in self.books:
            return True
        if name == REQUESTS:
            raise ValueError("actual costs are per unit: a request's count cannot be reconciled")
        raise ValueError(self._unknown("actual", str(name)))

    def _unknown(self, what: str, name: str) -> str:
        """The message for a unit this throttler has no budget for: a typo, or a new unit."""
        known = ", ".join(repr(n) for n in (REQUESTS, *self.books))
        close = difflib.get_close_matches(name, list(self.books), n=1)
        advice = (
            f"did you mean {close[0]!r}?"
            if close
            else f"add it with budgets={{{name!r}: '<limit>/<unit>'}}"
        )
        return (
            f"{what} names a unit this throttler has no budget for: {name!r} "
            f"(its units: {known}); {advice}"
        )

    def retune_requests(self, now: float, rates: Sequence[Rate]) -> None:
        """Bucket mode's `set_rates`: new capacities and refill rates, nothing loosened now.

        Each new bucket starts no fuller than an old bucket of the same period (or, with
        none, than every old one), and as short of full as the old one was: what was
        used stays used, so tightening takes effect at once. It then refills at its own
        rate.
        """
        old = [b for b in self.requests if isinstance(b, _Bucket)]
        new: list[_Book] = []
        for rate in rates:
            bucket = _Bucket(rate)
            alike = [b for b in old if b.period == rate.period] or old
            if alike:
                levels = [b.level_now(now) for b in alike]
                used = max(b.limit - level for b, level in zip(alike, levels, strict=True))
                level = min(float(rate.limit) - used, *levels)
                if level < rate.limit:
                    bucket.level = bucket.anchor_level = level
                    bucket.level_at = bucket.anchor_at = now
            new.append(bucket)
        self.requests = tuple(new)

    def is_idle(self, now: float) -> bool:
        if any(self.open.values()):
            return False
        return all(book.used(now) <= 0 for book in self._all_books())

    def used(self, now: float) -> dict[str, float]:
        """Per unit, what its first limit counts now (stamps and open reservations)."""
        return {name: books[0].used(now) + self.open[name] for name, books in self.books.items()}

    def _all_books(self) -> Iterator[_Book]:
        yield from self.requests
        for books in self.books.values():
            yield from books


def _cost_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if not low <= value <= MAX_INT:
        raise ValueError(f"{name} must be between {low} and {MAX_INT}, got {value!r}")
    return int(value)
