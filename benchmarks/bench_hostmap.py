"""The per-host map benchmark: memory for a million hosts, and the cost of one lookup.

Contenders: ``throttled_http.ThrottlerMap`` and pyrate-limiter 4.x per-key buckets (a
``BucketFactory`` whose ``get()`` keeps one ``InMemoryBucket`` per item name, the pattern
pyrate-limiter documents for per-key limits; it has no eviction, so every bucket stays).

Figures:

1. **Retained memory after a crawl of ``--hosts`` distinct hosts** (default 1,000,000),
   each touched once with ``async with hosts.limit(url)``, ``max_keys=10_000``, 1 request
   per second per host. The crawl meets a new host every ``--step`` seconds of a simulated
   clock (default 1 ms: 1,000 new hosts per second, so about 1,000 keys are busy at any
   time). Retained = ``tracemalloc`` traced memory after the run and a full collection,
   minus before the map was built (the URLs are generated on the fly and not kept).
   pyrate-limiter's buckets are measured the same way over ``--pyrate-hosts`` hosts
   (default 100,000; it keeps every bucket, so its memory is linear and shown per key).
2. **ns per operation** on the real clock, tracemalloc off, median of ``--repeats``:
   ``resolve(url)`` and ``throttler_for(url)`` on 1,000 warm hosts (a hit),
   ``throttler_for(url)`` on a new host each time with the map full (insert plus
   eviction), ``key_for(url)`` alone, and one admitted request on a warm host,
   ``async with hosts.limit(url)``, side by side with pyrate-limiter's
   ``try_acquire(host, blocking=False)`` (the host taken from the URL with
   ``urllib.parse`` so both do the same URL work).

Run::

    python benchmarks/bench_hostmap.py            # about 1 to 2 minutes
    python benchmarks/bench_hostmap.py --quick    # 100,000 hosts, about 15 s
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from _common import (
    Table,
    async_ns,
    crawl,
    fmt_ns,
    median,
    parse,
    parser,
    print_header,
    retained,
    time_ns,
    write_json,
)
from pyrate_limiter import BucketFactory, Duration, InMemoryBucket, Limiter, RateItem
from pyrate_limiter import Rate as PyrateRate

from throttled_http import ThrottlerMap

if TYPE_CHECKING:
    from pyrate_limiter import AbstractBucket


class PerKeyBuckets(BucketFactory):
    """pyrate-limiter per-key buckets: one InMemoryBucket per item name, kept forever."""

    def __init__(self, rates: list[PyrateRate]) -> None:
        self.rates = rates
        self.buckets: dict[str, AbstractBucket] = {}
        self.clock = InMemoryBucket(rates)  # only for its clock

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        return RateItem(name, self.clock.now(), weight=weight)  # type: ignore[no-untyped-call]

    def get(self, item: RateItem) -> AbstractBucket:
        bucket = self.buckets.get(item.name)
        if bucket is None:
            # Built directly: pyrate's create() would also register each bucket with its
            # background leaker thread, which costs more memory still.
            bucket = self.buckets[item.name] = InMemoryBucket(self.rates)
        return bucket


def host_of(url: str) -> str:
    """The host of a URL with urllib.parse: the URL work pyrate-limiter's callers do."""
    return urlsplit(url).hostname or ""


def url_of(i: int) -> str:
    return f"https://www.host{i}.example/page"


def crawl_throttled(
    hosts_count: int, max_keys: int, step: float
) -> tuple[int, int, dict[str, int]]:
    kept, peak, hosts = crawl(
        lambda: ThrottlerMap(1, 1.0, max_keys=max_keys), url_of, hosts_count, step
    )
    snapshot = hosts.statistics(top=0)
    facts = {
        "keys": snapshot.keys,
        "evictions": snapshot.evictions,
        "created": snapshot.created,
    }
    return kept, peak, facts


def crawl_pyrate(hosts_count: int) -> tuple[int, int, int]:
    def run(limiter: Limiter) -> None:
        for i in range(hosts_count):
            limiter.try_acquire(host_of(url_of(i)), blocking=False)

    kept, peak, limiter = retained(
        lambda: Limiter(PerKeyBuckets([PyrateRate(1, Duration.SECOND)])), run
    )
    return kept, peak, len(limiter.bucket_factory.buckets)


async def lookup_figures(n: int, repeats: int) -> dict[str, tuple[float, float | None]]:
    warm = [url_of(i) for i in range(1000)]
    hosts = ThrottlerMap(1_000_000_000, 1.0, max_keys=10_000)
    for url in warm:
        hosts.throttler_for(url)
    full = ThrottlerMap(1, 1.0, max_keys=1_000)
    for i in range(1_000):
        full.throttler_for(url_of(i))
    pyrate = Limiter(PerKeyBuckets([PyrateRate(1_000_000_000, Duration.SECOND)]))
    counter = [10_000_000]

    def hit(n: int) -> None:
        lookup = hosts.throttler_for
        for i in range(n):
            lookup(warm[i % 1000])

    def miss(n: int) -> None:
        lookup = full.throttler_for
        start = counter[0]
        counter[0] += n
        for i in range(start, start + n):
            lookup(url_of(i))

    def key_only(n: int) -> None:
        key_for = hosts.key_for
        for i in range(n):
            key_for(warm[i % 1000])

    names = [host_of(url) for url in warm]

    def pyrate_names(n: int) -> None:
        acquire = pyrate.try_acquire
        for i in range(n):
            acquire(names[i % 1000], blocking=False)

    def pyrate_acquire(n: int) -> None:
        acquire = pyrate.try_acquire
        for i in range(n):
            acquire(host_of(warm[i % 1000]), blocking=False)

    async def limit_async(n: int) -> None:
        limit = hosts.limit
        for i in range(n):
            async with limit(warm[i % 1000]):
                pass

    def resolve(n: int) -> None:
        resolve = hosts.resolve
        for i in range(n):
            resolve(warm[i % 1000])

    samples: dict[str, list[float]] = {
        "resolve": [],
        "hit": [],
        "miss": [],
        "key": [],
        "limit": [],
        "pyrate": [],
        "pyrate_names": [],
    }
    pyrate_acquire(1000)  # warm every name
    for _ in range(repeats):  # interleaved so noise hits every contender alike
        samples["resolve"].append(time_ns(resolve, n))
        samples["hit"].append(time_ns(hit, n))
        samples["miss"].append(time_ns(miss, n))
        samples["key"].append(time_ns(key_only, n))
        samples["limit"].append(await async_ns(limit_async, n))
        samples["pyrate"].append(time_ns(pyrate_acquire, n))
        samples["pyrate_names"].append(time_ns(pyrate_names, n))
    return {name: (median(values), None) for name, values in samples.items()}


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=5, quick_repeats=2)
    p.add_argument("--hosts", type=int, default=None, help="distinct hosts (default 1,000,000)")
    p.add_argument("--pyrate-hosts", type=int, default=None, help="default 100,000")
    p.add_argument("--max-keys", type=int, default=10_000)
    p.add_argument("--step", type=float, default=0.001, help="seconds between new hosts")
    p.add_argument("--lookups", type=int, default=None, help="operations per timing sample")
    args = parse(p)
    hosts_count = args.hosts or (100_000 if args.quick else 1_000_000)
    pyrate_count = args.pyrate_hosts or (20_000 if args.quick else 100_000)
    lookups = args.lookups or (20_000 if args.quick else 100_000)
    env = print_header("ThrottlerMap: memory and lookup cost", "throttled_http", "pyrate-limiter")

    kept, peak, facts = crawl_throttled(hosts_count, args.max_keys, args.step)
    p_kept, p_peak, p_keys = crawl_pyrate(pyrate_count)
    table = Table("Contender", "Hosts touched", "Keys held", "Retained", "Peak", "Per host seen")
    table.add_row(
        f"throttled_http ThrottlerMap(max_keys={args.max_keys:,})",
        f"{hosts_count:,}",
        f"{facts['keys']:,}",
        f"{kept / 1e6:.1f} MB",
        f"{peak / 1e6:.1f} MB",
        f"{kept / hosts_count:.1f} B",
    )
    table.add_row(
        "pyrate-limiter per-key InMemoryBucket",
        f"{pyrate_count:,}",
        f"{p_keys:,}",
        f"{p_kept / 1e6:.1f} MB",
        f"{p_peak / 1e6:.1f} MB",
        f"{p_kept / pyrate_count:.0f} B (x {hosts_count:,} = "
        f"{p_kept / pyrate_count * hosts_count / 1e6:,.0f} MB)",
    )
    table.print(
        f"Retained memory after touching each host once ({1 / args.step:,.0f} new hosts/s, "
        "1 request/s per host, tracemalloc)"
    )
    print(f"ThrottlerMap evictions: {facts['evictions']:,}, created: {facts['created']:,}\n")

    figures = asyncio.run(lookup_figures(lookups, args.repeats))
    ops = Table("Operation", "ns per op (median)")
    ops.add_row("ThrottlerMap.resolve(url), warm host", fmt_ns(figures["resolve"][0]))
    ops.add_row("ThrottlerMap.throttler_for(url), warm host", fmt_ns(figures["hit"][0]))
    ops.add_row("ThrottlerMap.throttler_for(url), new host, map full", fmt_ns(figures["miss"][0]))
    ops.add_row("ThrottlerMap.key_for(url)", fmt_ns(figures["key"][0]))
    ops.add_row("async with ThrottlerMap.limit(url): pass, warm host", fmt_ns(figures["limit"][0]))
    ops.add_row(
        "pyrate-limiter try_acquire(urlsplit(url).hostname), warm key", fmt_ns(figures["pyrate"][0])
    )
    ops.add_row(
        "pyrate-limiter try_acquire(host), host known, warm key",
        fmt_ns(figures["pyrate_names"][0]),
    )
    ops.print(f"Cost per operation ({lookups:,} operations x {args.repeats} repeats)")

    write_json(
        args.json,
        {
            "env": env,
            "hosts": hosts_count,
            "max_keys": args.max_keys,
            "retained_bytes": kept,
            "peak_bytes": peak,
            "map": facts,
            "pyrate_hosts": pyrate_count,
            "pyrate_retained_bytes": p_kept,
            "ns": {name: value for name, (value, _) in figures.items()},
        },
    )


if __name__ == "__main__":
    main()
