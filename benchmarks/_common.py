"""Shared helpers for the benchmark scripts in this directory.

Every ``bench_*.py`` script uses the same small toolbox, so their figures are measured and
printed the same way:

* command line: :func:`parser` (``--quick``, ``--repeats N``, ``--json PATH``), :func:`parse`
  and
  :func:`print_header` (Python, platform, cores, load average, library versions);
* statistics: :func:`median`, :func:`percentile`;
* window analysis of recorded entry times (seconds, one clock): :func:`max_in_window`,
  :func:`window_excess` and :func:`utilization`;
* driving a limiter: :class:`NoopLimiter` (the do-nothing baseline), :func:`saturate`
  (many workers entering as fast as allowed, on the real clock; returns a
  :class:`Saturation`), :func:`cpu_fraction`
  (process CPU time over wall time while the loop waits) and :func:`ns_per_entry`
  (uncontended ``async with`` cost);
* timing and interleaving: :func:`rotated` (the order of the contenders, rotated each
  round), :func:`per_round` (a figure of each round against a baseline's, such as a
  ratio), :func:`time_ns` and :func:`async_ns` (ns per
  operation of a loop, collector paused);
* memory: :func:`retained` (tracemalloc, after a full collection), :class:`VirtualClock`
  and :func:`crawl` (a simulated crawl of many hosts through a per-host map);
* HTTP: :func:`serve_ok` (a minimal aiohttp server answering ``ok``) and
  :func:`local_server` (that server in a separate process, as a context manager);
* output: :class:`Table` (a Markdown table that reads well in a terminal and pastes into
  ``docs/``), :func:`fmt_ns`, :func:`fmt_ms`, :func:`fmt_pct`, :func:`fmt_ratio` and
  :func:`write_json`.

Scripts import it as ``from _common import ...``: running ``python benchmarks/bench_x.py``
puts this directory on ``sys.path``.

The machine the figures come from is shared and noisy, so: repeat every measurement, report
the median of the repeats, and compare contenders through ratios measured within one run
(interleaved, so a burst of noise hits every contender alike).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import importlib
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

_T = TypeVar("_T")

__all__ = [
    "NoopLimiter",
    "Saturation",
    "Table",
    "VirtualClock",
    "async_ns",
    "cpu_fraction",
    "crawl",
    "fmt_ms",
    "fmt_ns",
    "fmt_pct",
    "fmt_ratio",
    "local_server",
    "max_in_window",
    "median",
    "ns_per_entry",
    "parse",
    "parser",
    "per_round",
    "percentile",
    "print_header",
    "retained",
    "rotated",
    "saturate",
    "serve_ok",
    "source_state",
    "time_ns",
    "utilization",
    "window_excess",
    "write_json",
]

# -- command line ----------------------------------------------------------------------


def parser(
    description: str, *, repeats: int | None = 3, quick_repeats: int | None = 1
) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark script shares.

    ``--quick`` (a short run for a smoke test), ``--repeats N`` (default ``repeats``, or
    ``quick_repeats`` with ``--quick``; read it as ``args.repeats``, already resolved) and
    ``--json PATH`` (also write the figures there). Add script-specific options to the
    returned parser, then call :func:`parse`. A default of ``None`` leaves
    ``args.repeats`` ``None`` when not given: the script picks one per measurement.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a short run (fewer, shorter repeats)")
    shown = "each measurement's own" if repeats is None else repeats
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"repeats per measurement; the median is reported (default {shown}, "
        f"{quick_repeats if quick_repeats is not None else shown} with --quick)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    p.set_defaults(_repeats=(repeats, quick_repeats))
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line of a :func:`parser`; resolves ``args.repeats``."""
    args = p.parse_args(argv)
    default, quick = args._repeats
    if args.repeats is None:
        args.repeats = quick if args.quick else default
    if args.repeats is not None and args.repeats < 1:
        p.error(f"--repeats must be a positive integer, got {args.repeats}")
    del args._repeats
    return args


def versions(*distributions: str) -> dict[str, str]:
    """Installed version of each distribution (``"missing"`` when not installed)."""
    found: dict[str, str] = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            # Importable without metadata (a source tree on sys.path): ask the module.
            try:
                module = importlib.import_module(name.replace("-", "_"))
            except ImportError:
                found[name] = "missing"
            else:
                found[name] = str(getattr(module, "__version__", "unknown")) + " (no metadata)"
    return found


def source_state() -> str:
    """The commit of this checkout, and how many package files differ from it.

    Others may be editing the package while a benchmark runs: the header says which code
    was measured. ``"unknown"`` outside a git checkout.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "throttled_http"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"git {head}" + (
        f" + {len(changed)} changed files in throttled_http/" if changed else ""
    )


def print_header(title: str, *distributions: str) -> dict[str, Any]:
    """Print what the figures depend on, and return it (for :func:`write_json`).

    Python version, platform, CPU count, the 1-minute load average when the OS has one (a
    high value means other processes competed for the cores), the versions of
    ``distributions``, and the commit measured (:func:`source_state`).
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "load_average_1min": round(load, 2),
        "versions": versions(*distributions),
        "source": source_state(),
    }
    libs = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    print(f"# {title}")
    print(
        f"{env['implementation']} {env['python']} on {env['platform']}, "
        f"{env['cpus']} CPUs, load average {load:.2f}; {libs}"
    )
    print(f"source: {env['source']}")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print()
    return env


def write_json(path: str | None, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` as indented JSON; does nothing when ``path`` is None."""
    if path is None:
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


# -- statistics ------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    """The median; ``nan`` for no values."""
    data = list(values)
    return statistics.median(data) if data else math.nan


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (``0 <= q <= 100``), linear between closest ranks.

    ``nan`` for no values.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


# -- windows ---------------------------------------------------------------------------


def max_in_window(times: Iterable[float], period: float) -> int:
    """The most entries in any half-open window ``[t, t + period)`` (times in seconds).

    A limiter honouring "at most ``limit`` per ``period``" keeps this ``<= limit``; the
    busiest window always starts at an entry, so checking those windows is exhaustive.
    """
    data = sorted(times)
    best = 0
    j = 0
    for i, start in enumerate(data):
        end = start + period
        while j < len(data) and data[j] < end:
            j += 1
        best = max(best, j - i)
    return best


def window_excess(times: Iterable[float], period: float, limit: int) -> int:
    """How many entries start a window ``[t, t + period)`` holding more than ``limit``.

    0 means no window was ever over the limit.
    """
    data = sorted(times)
    return sum(
        1 for i, start in enumerate(data) if bisect.bisect_left(data, start + period) - i > limit
    )


def utilization(
    times: Iterable[float], *, limit: int, period: float, start: float, stop: float
) -> float:
    """Mean use of the limit over ``[start, stop)``: 1.0 means always full.

    The time average of (entries in the sliding window ``(t - period, t]``) / ``limit`` for
    ``t`` in ``[start, stop)``. Each entry at ``s`` contributes the overlap of
    ``[s, s + period)`` with ``[start, stop)``, so the figure is exact, does not depend on
    where the batches of admissions fall, and equals the achieved rate over the allowed
    rate. A limiter that lets more through than allowed scores above 1.0.

    Start it one ``period`` after the run began, so the first, empty window is excluded.
    """
    if stop <= start:
        raise ValueError(f"stop must be after start, got start={start}, stop={stop}")
    covered = 0.0
    for s in times:
        lo = max(s, start)
        hi = min(s + period, stop)
        if hi > lo:
            covered += hi - lo
    return covered / (limit * (stop - start))


# -- driving limiters ------------------------------------------------------------------


class NoopLimiter:
    """An async context manager that does nothing: the cost floor of ``async with``."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Saturation:
    """What :func:`saturate` recorded.

    Attributes:
        times: ``time.monotonic()`` of every entry, in seconds, in the order recorded.
        start: monotonic time the workers were started.
        stop: monotonic time the workers were cancelled.
        cpu: process CPU time / wall time between ``start`` and ``stop`` (1.0 = one core).
    """

    times: list[float]
    start: float
    stop: float
    cpu: float


async def saturate(
    limiter: AbstractAsyncContextManager[Any], *, workers: int, seconds: float
) -> Saturation:
    """Keep ``limiter`` saturated for ``seconds`` and record when each entry happened.

    ``workers`` tasks loop on ``async with limiter:``, recording ``time.monotonic()`` as the
    first thing inside the block (the moment the work would start). After ``seconds`` every
    worker is cancelled, waiting or not. Use the loop's default clock (``loop.time()`` is
    ``time.monotonic()``), not virtual time.
    """
    times: list[float] = []
    append = times.append
    mono = time.monotonic

    async def worker() -> None:
        while True:
            async with limiter:
                append(mono())

    cpu0 = time.process_time()
    start = mono()
    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await asyncio.sleep(seconds)
    stop = mono()
    cpu = (time.process_time() - cpu0) / (stop - start)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return Saturation(times, start, stop, cpu)


async def cpu_fraction(seconds: float) -> float:
    """Process CPU time divided by wall time while this task sleeps ``seconds``.

    Whatever else runs in the process meanwhile (tasks waiting on a limiter, timers, the
    loop's own select) is what gets measured. 1.0 means a whole core was busy.
    """
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


async def ns_per_entry(limiter: AbstractAsyncContextManager[Any], iterations: int) -> float:
    """Mean nanoseconds of one ``async with limiter: pass`` (loop overhead included).

    The garbage collector is paused while timing (as ``timeit`` does) so a collection does
    not land on one contender only.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for _ in range(iterations):
            async with limiter:
                pass
        return (time.perf_counter_ns() - t0) / iterations
    finally:
        if was_enabled:
            gc.enable()


# -- interleaving and timing -----------------------------------------------------------


def rotated(items: Sequence[_T], shift: int) -> list[_T]:
    """``items`` rotated left by ``shift``, so no contender always runs first."""
    if not items:
        return []
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def per_round(
    values: Sequence[float], baseline: Sequence[float], op: Callable[[float, float], float]
) -> list[float]:
    """``op(value, baseline)`` round by round (e.g. ``operator.truediv`` for ratios)."""
    return [op(v, b) for v, b in zip(values, baseline, strict=True)]


def time_ns(fn: Callable[[int], object], n: int) -> float:
    """Mean nanoseconds of one operation of ``fn(n)``, which runs ``n`` of them.

    The garbage collector is paused while timing, as ``timeit`` does.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        fn(n)
        return (time.perf_counter_ns() - t0) / n
    finally:
        if was_enabled:
            gc.enable()


async def async_ns(fn: Callable[[int], Awaitable[object]], n: int) -> float:
    """Like :func:`time_ns`, for a coroutine function: ``await fn(n)`` runs ``n`` operations."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        await fn(n)
        return (time.perf_counter_ns() - t0) / n
    finally:
        if was_enabled:
            gc.enable()


# -- memory ----------------------------------------------------------------------------


def retained(build: Callable[[], _T], run: Callable[[_T], object]) -> tuple[int, int, _T]:
    """(retained bytes, peak bytes, the object) of ``run(build())`` under tracemalloc.

    Retained is the traced memory after the run and a full collection, minus before
    ``build()``: what the object keeps. Whatever ``run`` allocates and drops (URLs made on
    the fly) is not counted, except in the peak.
    """
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        obj = build()
        run(obj)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, peak - before, obj


class VirtualClock:
    """A loop clock the benchmark advances by hand (``loop.time = clock.time``)."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


def crawl(
    make_map: Callable[[], Any], url_of: Callable[[int], str], hosts: int, step: float
) -> tuple[int, int, Any]:
    """A simulated crawl: ``async with m.limit(url_of(i))`` for ``i`` in ``range(hosts)``.

    ``m = make_map()`` runs on a fresh event loop whose clock (a :class:`VirtualClock`)
    moves ``step`` seconds before each new host, so windows expire as in a real crawl
    without waiting for them. Returns (retained bytes, peak bytes, the map), as
    :func:`retained` measures them; the URLs are made on the fly and not kept.
    """
    loop = asyncio.new_event_loop()
    clock = VirtualClock()
    loop.time = clock.time  # type: ignore[method-assign]

    async def run(m: Any) -> None:
        for i in range(hosts):
            clock.now += step
            async with m.limit(url_of(i)):
                pass

    try:
        return retained(make_map, lambda m: loop.run_until_complete(run(m)))
    finally:
        loop.close()


# -- HTTP ------------------------------------------------------------------------------


def serve_ok(backlog: int = 1024) -> None:
    """Answer ``GET /`` with ``ok`` on a free port of 127.0.0.1; print the port; run forever.

    The server side of the HTTP benchmarks, meant for its own process (:func:`local_server`):
    client and server then do not share an event loop, and the client's
    ``time.process_time()`` counts the client only.
    """
    from aiohttp import web  # only the server process needs it

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock, backlog=backlog).start()
        print(sock.getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


@contextmanager
def local_server() -> Iterator[str]:
    """Run :func:`serve_ok` in a child process; yields its URL, stops it on exit."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {here!r}); import _common; _common.serve_ok()"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout is None:  # pragma: no cover - stdout=PIPE always sets it
            raise RuntimeError("no pipe to the server process")
        line = child.stdout.readline()
        if not line.strip():
            raise RuntimeError("the server process exited before printing its port")
        yield f"http://127.0.0.1:{int(line)}/"
    finally:
        child.terminate()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


# -- output ----------------------------------------------------------------------------


class Table:
    """A Markdown table, column widths aligned so it also reads well in a terminal.

    >>> t = Table("Name", "Value")
    >>> t.add_row("a", 1)
    >>> print(t.render())
    | Name | Value |
    |------|-------|
    | a    | 1     |
    """

    __slots__ = ("columns", "rows")

    def __init__(self, *columns: str) -> None:
        self.columns = columns
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells: object) -> None:
        """Append a row; cells are converted with ``str``."""
        if len(cells) != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} cells, got {len(cells)}")
        self.rows.append(tuple(str(c) for c in cells))

    def render(self) -> str:
        """The table as Markdown text (no trailing newline)."""
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(self.columns), rule, *(line(r) for r in self.rows)])

    def print(self, title: str | None = None) -> None:
        """Print the table, under a ``## title`` line when given, then a blank line."""
        if title:
            print(f"## {title}")
        print(self.render())
        print()


def fmt_ns(ns: float) -> str:
    """Nanoseconds as ``"1,234 ns"``."""
    return "n/a" if math.isnan(ns) else f"{ns:,.0f} ns"


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds with 3 decimals: ``"0.123 ms"``."""
    return "n/a" if math.isnan(seconds) else f"{seconds * 1e3:.3f} ms"


def fmt_pct(fraction: float, digits: int = 1) -> str:
    """A fraction as a percentage: ``fmt_pct(0.0123) == "1.2%"``."""
    return "n/a" if math.isnan(fraction) else f"{fraction * 100:.{digits}f}%"


def fmt_ratio(ratio: float) -> str:
    """A ratio as ``"1.23x"``."""
    return "n/a" if math.isnan(ratio) else f"{ratio:.2f}x"
