"""The hot path's core figures: entries, map lookups and per-key memory, against their targets.

Figures (in process, no HTTP; the HTTP side is in ``bench_http_peers.py`` and
``bench_stub.py``):

1. **Entries**, uncontended (a limit that never binds: 10^9 per 10 ms, so stamps expire
   during the run and the steady state is timed), ns per operation, garbage collector
   paused: a no-op ``async with`` (the floor); ``async with throttler:``;
   ``async with throttler.entry() as e: e.settle()`` (the latency-proof entry an HTTP
   request takes); and ``e = await throttler.open_entry(); e.settle(); e.close()`` (the
   form the integrations use). Each contender has its own ``Throttler``; they run
   interleaved, the order rotated every repeat; the ratio to ``async with throttler:`` is
   taken within each repeat, and its median reported (target: at most 1.6x).
2. **Map lookups** on a ``ThrottlerMap`` whose hosts are known: ``resolve(url)`` from a URL
   string, for one host and cycling over 1,000 hosts (target: at most 1 µs);
   ``throttler_for(url)``; and ``async with hosts.limit(url): pass`` (a lookup and an entry).
3. **Memory per host touched once**: a crawl of ``--hosts`` (default 100,000) distinct
   hosts, each ``async with hosts.limit(url)`` once, 1 request per second per host, in a
   ``ThrottlerMap(max_keys=10_000)``, on a simulated clock that meets a new host every
   1 ms (as ``bench_hostmap.py`` does, with the same helper, :func:`_common.crawl`);
   tracemalloc's retained memory after a full collection, divided by the hosts touched
   (target: at most 200 bytes), and, for reference, by the keys the map still holds.
4. **A million hosts under ``max_keys=10_000``**: the same crawl over ``--crawl-hosts``
   (default 1,000,000) hosts; retained memory (target: at most 16 MB).

Run::

    python benchmarks/bench_hotpath.py            # about 3 minutes, most of it the crawls
    python benchmarks/bench_hotpath.py --quick    # about 30 s (200,000 hosts in the crawl)
    python benchmarks/bench_hotpath.py --only entries --repeats 25
"""

from __future__ import annotations

import asyncio
import operator
import sys
import time
from typing import TYPE_CHECKING, Any

from _common import (
    NoopLimiter,
    Table,
    async_ns,
    crawl,
    fmt_ns,
    fmt_ratio,
    median,
    parse,
    parser,
    per_round,
    print_header,
    rotated,
    time_ns,
    write_json,
)

from throttled_http import Throttler, ThrottlerMap

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ENTRY_TARGET = 1.6
LOOKUP_TARGET_NS = 1_000
PER_KEY_TARGET = 200
CRAWL_TARGET = 16_000_000


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def url_of(i: int) -> str:
    return f"https://www.host{i}.example/page"


# -- 1. entries -------------------------------------------------------------------------

NOOP = "async with no-op"
PLAIN = "async with throttler:"
ENTRY = "async with throttler.entry() as e: e.settle()"
OPEN = "e = await open_entry(); e.settle(); e.close()"
ENTRIES = (NOOP, PLAIN, ENTRY, OPEN)


def entry_loops() -> dict[str, Callable[[int], Awaitable[None]]]:
    # 10**9 per 10 ms never binds, and stamps expire within the run: the steady state
    # (one stamp added, one dropped per entry) is what gets timed.
    def fresh() -> Throttler:
        return Throttler(10**9, 0.01)

    noop, plain, entered, opened = NoopLimiter(), fresh(), fresh(), fresh()

    async def run_noop(n: int) -> None:
        for _ in range(n):
            async with noop:
                pass

    async def run_plain(n: int) -> None:
        for _ in range(n):
            async with plain:
                pass

    async def run_entry(n: int) -> None:
        entry = entered.entry
        for _ in range(n):
            async with entry() as e:
                e.settle()

    async def run_open(n: int) -> None:
        open_entry = opened.open_entry
        for _ in range(n):
            e = await open_entry()
            e.settle()
            e.close()

    return {NOOP: run_noop, PLAIN: run_plain, ENTRY: run_entry, OPEN: run_open}


async def bench_entries(iterations: int, repeats: int) -> dict[str, dict[str, Any]]:
    loops = entry_loops()
    for run in loops.values():  # warm-up
        await run(iterations // 10)
    ns: dict[str, list[float]] = {name: [] for name in ENTRIES}
    progress(f"entries: {repeats} interleaved repeats of {iterations:,}")
    for r in range(repeats):
        for name in rotated(ENTRIES, r):
            ns[name].append(await async_ns(loops[name], iterations))
    return {
        name: {
            "ns": median(ns[name]),
            "best_ns": min(ns[name]),
            "ratio": median(per_round(ns[name], ns[PLAIN], operator.truediv)),
            "best_ratio": min(ns[name]) / min(ns[PLAIN]),
            "runs_ns": ns[name],
        }
        for name in ENTRIES
    }


# -- 2. lookups -------------------------------------------------------------------------

ONE = "resolve(url), one known host"
MANY = "resolve(url), 1,000 known hosts in turn"
FOR = "throttler_for(url), 1,000 known hosts"
LIMIT = "async with hosts.limit(url): pass, 1,000 known hosts"
LOOKUPS = (ONE, MANY, FOR, LIMIT)


async def bench_lookups(n: int, repeats: int) -> dict[str, dict[str, float]]:
    warm = [url_of(i) for i in range(1000)]
    hosts = ThrottlerMap(rate_limit=10**9, period=0.01, max_keys=10_000)
    for url in warm:
        hosts.resolve(url)
    one = warm[0]

    def resolve_one(n: int) -> None:
        resolve = hosts.resolve
        for _ in range(n):
            resolve(one)

    def resolve_many(n: int) -> None:
        resolve = hosts.resolve
        for i in range(n):
            resolve(warm[i % 1000])

    def throttler_for(n: int) -> None:
        lookup = hosts.throttler_for
        for i in range(n):
            lookup(warm[i % 1000])

    async def limit(n: int) -> None:
        limit = hosts.limit
        for i in range(n):
            async with limit(warm[i % 1000]):
                pass

    sync: dict[str, Callable[[int], None]] = {
        ONE: resolve_one,
        MANY: resolve_many,
        FOR: throttler_for,
    }
    samples: dict[str, list[float]] = {name: [] for name in LOOKUPS}
    progress(f"lookups: {repeats} interleaved repeats of {n:,}")
    for r in range(repeats):
        for name in rotated(LOOKUPS, r):
            if name == LIMIT:
                samples[name].append(await async_ns(limit, n))
            else:
                samples[name].append(time_ns(sync[name], n))
    return {
        name: {"ns": median(values), "best_ns": min(values), "runs_ns": values}  # type: ignore[dict-item]
        for name, values in samples.items()
    }


# -- 3 and 4. memory --------------------------------------------------------------------


def bench_memory(hosts: int, crawl_hosts: int, max_keys: int) -> dict[str, Any]:
    """Two crawls under ``max_keys``: ``hosts`` (per host touched) and ``crawl_hosts``."""
    result: dict[str, Any] = {}
    for name, count in (("per_host", hosts), ("bounded", crawl_hosts)):
        progress(f"memory: a crawl of {count:,} hosts under max_keys={max_keys:,}")
        kept, peak, m = crawl(
            lambda: ThrottlerMap(rate_limit=1, period=1.0, max_keys=max_keys),
            url_of,
            count,
            0.001,
        )
        stats = m.statistics(top=0)
        result[name] = {
            "hosts": count,
            "max_keys": max_keys,
            "keys": stats.keys,
            "evictions": stats.evictions,
            "retained": kept,
            "peak": peak,
        }
    return result


# -- report -----------------------------------------------------------------------------


def report(
    entries: dict[str, dict[str, Any]] | None,
    lookups: dict[str, dict[str, float]] | None,
    memory: dict[str, Any] | None,
    *,
    iterations: int,
    repeats: int,
) -> list[tuple[str, str, str, bool]]:
    checks: list[tuple[str, str, str, bool]] = []
    if entries is not None:
        t = Table(
            "Entry", "ns per entry", "Ratio to `async with throttler:`", "Best ns", "Best ratio"
        )
        for name in ENTRIES:
            e = entries[name]
            t.add_row(
                name,
                fmt_ns(e["ns"]),
                fmt_ratio(e["ratio"]),
                fmt_ns(e["best_ns"]),
                fmt_ratio(e["best_ratio"]),
            )
        t.print(
            f"1. Uncontended entries ({iterations:,} x {repeats} interleaved repeats; median, "
            "ratios within each repeat; best = fastest repeat)"
        )
        for name in (ENTRY, OPEN):
            ratio = entries[name]["ratio"]
            checks.append(
                (
                    name,
                    fmt_ratio(ratio),
                    f"<= {ENTRY_TARGET}x `async with throttler:`",
                    ratio <= ENTRY_TARGET,
                )
            )
    if lookups is not None:
        t = Table("Operation", "ns per op (median)", "Best")
        for name in LOOKUPS:
            t.add_row(name, fmt_ns(lookups[name]["ns"]), fmt_ns(lookups[name]["best_ns"]))
        t.print(
            f"2. ThrottlerMap lookups, hosts known ({iterations:,} x {repeats} interleaved repeats)"
        )
        for name in (ONE, MANY):
            ns = lookups[name]["ns"]
            checks.append(
                (name, fmt_ns(ns), f"<= {fmt_ns(LOOKUP_TARGET_NS)}", ns <= LOOKUP_TARGET_NS)
            )
    if memory is not None:
        t = Table(
            "Map",
            "Hosts touched",
            "Keys held",
            "Retained",
            "Peak",
            "Per host touched",
            "Per key held",
        )
        for m in memory.values():
            t.add_row(
                f"ThrottlerMap(max_keys={m['max_keys']:,})",
                f"{m['hosts']:,}",
                f"{m['keys']:,}",
                f"{m['retained'] / 1e6:.1f} MB",
                f"{m['peak'] / 1e6:.1f} MB",
                f"{m['retained'] / m['hosts']:.0f} B",
                f"{m['retained'] / m['keys']:,.0f} B",
            )
        t.print(
            "3-4. Retained memory (tracemalloc, after a full collection) after a crawl: each "
            "host touched once, 1 request per second per host, a new host every 1 ms"
        )
        ph, bd = memory["per_host"], memory["bounded"]
        per_host = ph["retained"] / ph["hosts"]
        checks.append(
            (
                f"memory per host touched once ({ph['hosts']:,} hosts)",
                f"{per_host:.0f} B",
                f"<= {PER_KEY_TARGET} B",
                per_host <= PER_KEY_TARGET,
            )
        )
        checks.append(
            (
                f"{bd['hosts']:,} hosts under max_keys={bd['max_keys']:,}",
                f"{bd['retained'] / 1e6:.1f} MB",
                f"<= {CRAWL_TARGET / 1e6:.0f} MB",
                bd["retained"] <= CRAWL_TARGET,
            )
        )
    t = Table("Target", "Measured", "Target", "Met")
    for what, measured, target, ok in checks:
        t.add_row(what, measured, target, "yes" if ok else "NO")
    t.print("Targets (issue 15; medians)")
    return checks


FIGURES = ("entries", "lookups", "memory")


async def timings(args: Any, only: set[str], iterations: int) -> tuple[Any, Any]:
    entries = lookups = None
    if "entries" in only:
        entries = await bench_entries(iterations, args.repeats)
    if "lookups" in only:
        lookups = await bench_lookups(iterations, args.repeats)
    return entries, lookups


def run(args: Any) -> dict[str, Any]:
    only = set(args.only or FIGURES)
    # Many short samples: a burst of noise from another process spans several repeats and
    # hits every contender in them alike, and the ratios are taken within each repeat.
    iterations = args.iterations or (5_000 if args.quick else 20_000)
    entries, lookups = asyncio.run(timings(args, only, iterations))
    memory = None
    if "memory" in only:  # each crawl runs its own event loop, on a simulated clock
        hosts = args.hosts or 100_000
        crawl_hosts = args.crawl_hosts or (200_000 if args.quick else 1_000_000)
        memory = bench_memory(hosts, crawl_hosts, args.max_keys)
    checks = report(entries, lookups, memory, iterations=iterations, repeats=args.repeats)
    return {
        "iterations": iterations,
        "repeats": args.repeats,
        "entries": entries,
        "lookups": lookups,
        "memory": memory,
        "targets": {what: {"measured": m, "target": t, "met": ok} for what, m, t, ok in checks},
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=25, quick_repeats=7)
    p.add_argument("--iterations", type=int, default=None, help="per sample (default 20,000)")
    p.add_argument("--hosts", type=int, default=None, help="for the per-key figure (100,000)")
    p.add_argument(
        "--crawl-hosts", type=int, default=None, help="for the bounded crawl (1,000,000)"
    )
    p.add_argument("--max-keys", type=int, default=10_000, help="of the bounded map")
    p.add_argument(
        "--only", action="append", choices=FIGURES, help="measure only these (repeatable)"
    )
    args = parse(p)
    env = print_header("bench_hotpath: entries, lookups, per-key memory", "throttled_http")
    t0 = time.perf_counter()
    results = run(args)
    print(f"total {time.perf_counter() - t0:.0f} s")
    write_json(args.json, {"environment": env, **results})


if __name__ == "__main__":
    main()
