"""The core benchmark: throttled_http.Throttler against its peers, side by side, in one run.

Contenders: ``throttled_http.Throttler``, asyncio-throttle's ``Throttler``, aiolimiter's
``AsyncLimiter`` and, where it means something, a no-op ``async with`` baseline.

Figures (each repeated; the median of the repeats is printed):

1. **Max entries in any window** of ``period`` seconds while saturated (``--workers`` tasks
   entering as fast as allowed, real clock), against the limit. The worst run is shown.
2. **Utilization** at saturation: the time-averaged fill of the sliding window over the
   run, one ``period`` of warm-up excluded (1.0 = the limit fully used; above 1.0 = more
   than allowed got through).
3. **CPU while 10,000 tasks wait** on a full throttler: process CPU time / wall time.
4. **Uncontended ``async with`` cost** (the limit never binds), in ns per entry and as a
   ratio to the no-op, from interleaved repeats.
5. **Admission lateness** during saturation: when an entry resumed minus when its slot
   freed (the entry ``limit`` places earlier, plus ``period``); for aiolimiter's leaky
   bucket, minus when the bucket had drained enough for it.

Run::

    python benchmarks/bench_core.py            # about 60 s
    python benchmarks/bench_core.py --quick    # about 15 s

The method is described in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import gc
import math
import sys
import time
from typing import TYPE_CHECKING, Any

import aiolimiter
from _common import (
    NoopLimiter,
    Table,
    cpu_fraction,
    fmt_ms,
    fmt_ns,
    fmt_pct,
    fmt_ratio,
    max_in_window,
    median,
    ns_per_entry,
    parse,
    parser,
    percentile,
    print_header,
    saturate,
    utilization,
    write_json,
)
from asyncio_throttle.throttler import Throttler as AsyncioThrottler

from throttled_http import Throttler

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractAsyncContextManager

OURS = "throttled_http"
ASYNCIO_THROTTLE = "asyncio-throttle"
AIOLIMITER = "aiolimiter"
NOOP = "no-op"
EVENT = "baseline: await Event"
ENTRY = "throttled_http entry()"
PEERS = (OURS, ASYNCIO_THROTTLE, AIOLIMITER)


def make(name: str, limit: int, period: float) -> AbstractAsyncContextManager[Any]:
    """A fresh limiter of ``limit`` entries per ``period`` seconds, as each library spells it."""
    if name == OURS:
        return Throttler(limit, period)
    if name == ASYNCIO_THROTTLE:
        limiter: AbstractAsyncContextManager[Any] = AsyncioThrottler(
            rate_limit=limit, period=period
        )
        return limiter
    if name == AIOLIMITER:
        return aiolimiter.AsyncLimiter(limit, period)
    if name == NOOP:
        return NoopLimiter()
    raise ValueError(f"unknown contender {name!r}")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def rotated(items: Sequence[str], shift: int) -> list[str]:
    """``items`` rotated by ``shift``, so no contender always runs first."""
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


# -- lateness --------------------------------------------------------------------------


def window_lateness(times: Sequence[float], limit: int, period: float) -> list[float]:
    """Seconds from the moment each blocked entry's slot freed until the entry happened.

    For a sliding window of ``limit`` per ``period``, entry ``n`` (in time order) cannot
    happen before entry ``n - limit`` leaves the window, at ``times[n - limit] + period``.
    The first ``limit`` entries did not wait and are skipped. A negative value is an entry
    that came before its slot freed: a window over the limit.
    """
    data = sorted(times)
    return [data[n] - (data[n - limit] + period) for n in range(limit, len(data))]


def bucket_lateness(times: Sequence[float], limit: int, period: float) -> list[float]:
    """Like :func:`window_lateness`, for a leaky bucket of capacity ``limit``.

    The bucket drains ``limit / period`` per second; entry ``n`` fits once the level left
    by the entries before it has drained to ``limit - 1``. Replaying the recorded entries
    through that rule gives the moment each one could have entered.
    """
    data = sorted(times)
    rate = limit / period
    level = 0.0
    last = -math.inf
    late: list[float] = []
    for n, t in enumerate(data):
        need = level + 1 - limit
        free_at = last + need / rate if need > 0 else last
        if n >= limit:
            late.append(t - free_at)
        level = (max(0.0, level - (t - last) * rate) if n else 0.0) + 1
        last = t
    return late


# -- figures 1, 2 and 5: saturation ---------------------------------------------------


async def bench_saturation(
    *, limit: int, period: float, workers: int, seconds: float, repeats: int
) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in PEERS}
    for r in range(repeats):
        for name in rotated(PEERS, r):
            progress(f"saturation: {name}, run {r + 1}/{repeats} ({seconds:g} s)")
            rec = await saturate(make(name, limit, period), workers=workers, seconds=seconds)
            times = rec.times
            late = (bucket_lateness if name == AIOLIMITER else window_lateness)(
                times, limit, period
            )
            runs[name].append(
                {
                    "entries": len(times),
                    "max_in_window": max_in_window(times, period),
                    "utilization": utilization(
                        times, limit=limit, period=period, start=rec.start + period, stop=rec.stop
                    ),
                    "cpu": rec.cpu,
                    "late_p50": percentile(late, 50),
                    "late_p99": percentile(late, 99),
                    "late_max": max(late, default=math.nan),
                    "late_min": min(late, default=math.nan),
                }
            )
    result: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        result[name] = {
            "runs": rs,
            "max_in_window": max(r["max_in_window"] for r in rs),
            "runs_over_limit": sum(r["max_in_window"] > limit for r in rs),
            "utilization": median(r["utilization"] for r in rs),
            "entries": median(r["entries"] for r in rs),
            "cpu": median(r["cpu"] for r in rs),
            "late_p50": median(r["late_p50"] for r in rs),
            "late_p99": median(r["late_p99"] for r in rs),
            "late_max": max(r["late_max"] for r in rs),
            "late_min": min(r["late_min"] for r in rs),
        }
    return result


# -- figure 3: CPU while waiting -------------------------------------------------------


async def cpu_while_waiting(name: str, *, tasks: int, seconds: float) -> float:
    """CPU fraction while ``tasks`` tasks wait on a full limiter (1 per hour, used up)."""
    event = asyncio.Event()
    limiter = make(name, 1, 3600.0) if name != EVENT else NoopLimiter()
    await limiter.__aenter__()  # take the only entry: everyone else must wait

    async def waiter() -> None:
        if name == EVENT:
            await event.wait()
        else:
            async with limiter:
                pass

    pending = [asyncio.create_task(waiter()) for _ in range(tasks)]
    await asyncio.sleep(0.3)  # let every task start and block
    if any(t.done() for t in pending):
        raise RuntimeError(f"{name}: a task got through a full limiter")
    fraction = await cpu_fraction(seconds)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await limiter.__aexit__(None, None, None)
    return fraction


async def bench_cpu(*, tasks: int, seconds: float, repeats: int) -> dict[str, float]:
    names = (EVENT, *PEERS)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in rotated(names, r):
            progress(f"cpu: {name}, run {r + 1}/{repeats} ({tasks:,} tasks, {seconds:g} s)")
            runs[name].append(await cpu_while_waiting(name, tasks=tasks, seconds=seconds))
    return {name: median(v) for name, v in runs.items()}


# -- figure 4: uncontended cost --------------------------------------------------------


class _EntryLimiter:
    """``async with throttler.entry():`` (the latency-proof path) as a plain limiter."""

    __slots__ = ("_throttler",)

    def __init__(self, throttler: Throttler) -> None:
        self._throttler = throttler

    async def run(self, iterations: int) -> float:
        throttler = self._throttler
        t0 = time.perf_counter_ns()
        for _ in range(iterations):
            async with throttler.entry():
                pass
        return (time.perf_counter_ns() - t0) / iterations


async def bench_uncontended(*, iterations: int, repeats: int) -> dict[str, dict[str, float]]:
    # 10**9 entries per 10 ms never binds, and every stamp expires within the run, so the
    # steady state (append one stamp, drop one) is what gets timed.
    limit, period = 10**9, 0.01
    limiters: dict[str, AbstractAsyncContextManager[Any]] = {
        name: make(name, limit, period) for name in (NOOP, *PEERS)
    }
    entry = _EntryLimiter(Throttler(limit, period))
    names = (NOOP, *PEERS, ENTRY)
    ns: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    progress(f"uncontended: {repeats} interleaved repeats of {iterations:,} entries")
    for name in names:  # warm-up
        await timed(name, limiters, entry, iterations // 10)
    for r in range(repeats):
        this: dict[str, float] = {}
        for name in rotated(names, r):
            this[name] = await timed(name, limiters, entry, iterations)
        for name in names:
            ns[name].append(this[name])
            ratios[name].append(this[name] / this[NOOP])
    base = median(ns[NOOP])
    best_base = min(ns[NOOP])
    return {
        name: {
            "ns": median(ns[name]),
            "overhead_ns": median(ns[name]) - base,
            "ratio": median(ratios[name]),
            # The fastest repeat is the least disturbed by other processes (see timeit).
            "best_ns": min(ns[name]),
            "best_ratio": min(ns[name]) / best_base,
            "runs_ns": ns[name],  # type: ignore[dict-item]
        }
        for name in names
    }


async def timed(
    name: str,
    limiters: dict[str, AbstractAsyncContextManager[Any]],
    entry: _EntryLimiter,
    iterations: int,
) -> float:
    if name == ENTRY:
        return await _gc_paused(lambda: entry.run(iterations))
    return await ns_per_entry(limiters[name], iterations)


async def _gc_paused(run: Callable[[], Any]) -> float:
    gc.collect()
    gc.disable()
    try:
        result: float = await run()
        return result
    finally:
        gc.enable()


# -- report ----------------------------------------------------------------------------


def report_saturation(
    sat: dict[str, dict[str, Any]],
    *,
    limit: int,
    period: float,
    workers: int,
    seconds: float,
    repeats: int,
) -> None:
    t = Table("Limiter", f"Max in any {period:g} s window", "Over the limit", "Utilization", "CPU")
    for name in PEERS:
        s = sat[name]
        over = s["max_in_window"] - limit
        t.add_row(
            name,
            f"{s['max_in_window']} / {limit}",
            f"+{over} (in {s['runs_over_limit']}/{repeats} runs)" if over > 0 else "never",
            f"{s['utilization']:.4f}",
            fmt_pct(s["cpu"]),
        )
    t.print(
        f"1-2. Saturated: {workers} workers, limit {limit} per {period:g} s, "
        f"{seconds:g} s per run, {plural(repeats, 'run')} (worst max, median utilization)"
    )

    t = Table("Limiter", "Lateness p50", "Lateness p99", "Worst", "Earliest")
    for name in PEERS:
        s = sat[name]
        t.add_row(
            name,
            fmt_ms(s["late_p50"]),
            fmt_ms(s["late_p99"]),
            fmt_ms(s["late_max"]),
            fmt_ms(s["late_min"]),
        )
    t.print(
        "5. Admission lateness after a slot frees (same runs; median of per-run "
        "percentiles, worst and earliest of all)"
    )


def report_cpu(cpu: dict[str, float], *, tasks: int, repeats: int) -> None:
    t = Table("Limiter", "CPU (share of one core)")
    for name in (EVENT, *PEERS):
        t.add_row(name, fmt_pct(cpu[name], 2))
    t.print(f"3. CPU while {tasks:,} tasks wait on a full limiter (median of {repeats})")


def report_uncontended(unc: dict[str, dict[str, float]]) -> None:
    t = Table(
        "Limiter", "ns per entry", "Overhead vs no-op", "Ratio to no-op", "Best ns", "Best ratio"
    )
    for name in (NOOP, *PEERS, ENTRY):
        u = unc[name]
        t.add_row(
            name,
            fmt_ns(u["ns"]),
            fmt_ns(u["overhead_ns"]),
            fmt_ratio(u["ratio"]),
            fmt_ns(u["best_ns"]),
            fmt_ratio(u["best_ratio"]),
        )
    t.print(
        "4. Uncontended `async with` (limit never binds; median of interleaved repeats, "
        "ratios within each repeat; best = fastest repeat)"
    )


def targets(
    sat: dict[str, dict[str, Any]] | None,
    cpu: dict[str, float] | None,
    unc: dict[str, dict[str, float]] | None,
    *,
    limit: int,
    tasks: int,
) -> list[tuple[str, str, str, bool]]:
    """Check throttled_http against its targets, for the figures measured; print them."""
    checks: list[tuple[str, str, str, bool]] = []
    if sat is not None:
        ours = sat[OURS]
        checks += [
            (
                "zero window violations",
                f"max {ours['max_in_window']} / {limit}",
                "<= limit",
                ours["max_in_window"] <= limit,
            ),
            ("utilization", f"{ours['utilization']:.4f}", ">= 0.99", ours["utilization"] >= 0.99),
        ]
    if cpu is not None:
        checks.append(
            (f"CPU while {tasks:,} wait", fmt_pct(cpu[OURS], 2), "<= 2%", cpu[OURS] <= 0.02)
        )
    if unc is not None:
        peer = min(unc[ASYNCIO_THROTTLE]["ratio"], unc[AIOLIMITER]["ratio"])
        checks.append(
            (
                "uncontended cost",
                fmt_ratio(unc[OURS]["ratio"]),
                f"< {fmt_ratio(peer)} (best peer)",
                unc[OURS]["ratio"] < peer,
            )
        )
    if sat is not None:
        p99 = sat[OURS]["late_p99"]
        checks.append(("lateness p99", fmt_ms(p99), "<= 2 ms", p99 <= 0.002))
    t = Table("Target for throttled_http", "Measured", "Target", "Met")
    for what, measured, target, ok in checks:
        t.add_row(what, measured, target, "yes" if ok else "NO")
    t.print("Targets")
    return checks


FIGURES = ("saturation", "cpu", "uncontended")


async def run(args: Any) -> dict[str, Any]:
    only = set(args.only or FIGURES)
    seconds = args.seconds if args.seconds is not None else (1.5 if args.quick else 3.0)
    cpu_seconds = 1.0
    # Many short repeats: a burst of noise from another process spoils one, not the median.
    iterations = 10_000 if args.quick else 30_000
    unc_repeats = 5 * args.repeats
    sat = cpu = unc = None
    if "saturation" in only:
        sat = await bench_saturation(
            limit=args.limit,
            period=args.period,
            workers=args.workers,
            seconds=seconds,
            repeats=args.repeats,
        )
        report_saturation(
            sat,
            limit=args.limit,
            period=args.period,
            workers=args.workers,
            seconds=seconds,
            repeats=args.repeats,
        )
    if "cpu" in only:
        cpu = await bench_cpu(tasks=args.tasks, seconds=cpu_seconds, repeats=args.repeats)
        report_cpu(cpu, tasks=args.tasks, repeats=args.repeats)
    if "uncontended" in only:
        unc = await bench_uncontended(iterations=iterations, repeats=unc_repeats)
        report_uncontended(unc)
    checks = targets(sat, cpu, unc, limit=args.limit, tasks=args.tasks)
    return {
        "config": {
            "limit": args.limit,
            "period": args.period,
            "workers": args.workers,
            "seconds": seconds,
            "repeats": args.repeats,
            "tasks": args.tasks,
            "cpu_seconds": cpu_seconds,
            "uncontended_iterations": iterations,
            "uncontended_repeats": unc_repeats,
        },
        "saturation": sat,
        "cpu": cpu,
        "uncontended": unc,
        "targets": {what: {"measured": m, "met": ok} for what, m, _, ok in checks},
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0], repeats=3, quick_repeats=1)
    p.add_argument("--limit", type=int, default=100, help="entries per period (default 100)")
    p.add_argument("--period", type=float, default=0.5, help="window in seconds (default 0.5)")
    p.add_argument("--workers", type=int, default=200, help="saturating tasks (default 200)")
    p.add_argument(
        "--seconds", type=float, default=None, help="per saturated run (default 3, 1.5 quick)"
    )
    p.add_argument("--tasks", type=int, default=10_000, help="waiting tasks (default 10,000)")
    p.add_argument(
        "--only",
        action="append",
        choices=FIGURES,
        help="measure only these figures (repeatable): saturation = 1, 2 and 5, "
        "cpu = 3, uncontended = 4",
    )
    args = parse(p, argv)
    for name in ("limit", "workers", "tasks"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if not args.period > 0 or (args.seconds is not None and not args.seconds > args.period):
        p.error(
            f"--period must be > 0 and --seconds longer than it, got --period {args.period} "
            f"--seconds {args.seconds}"
        )
    env = print_header(
        "bench_core: throttled_http.Throttler vs asyncio-throttle vs aiolimiter",
        "throttled_http",
        "asyncio-throttle",
        "aiolimiter",
    )
    t0 = time.perf_counter()
    results = asyncio.run(run(args))
    print(f"total {time.perf_counter() - t0:.1f} s")
    write_json(args.json, {"environment": env, **results})


if __name__ == "__main__":
    main()
