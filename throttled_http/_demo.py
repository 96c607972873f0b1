"""`python -m throttled_http demo`: a self-checking tour on local servers.

The demo starts loopback HTTP servers (`throttled_http.testing.RecordingServer`) on three
hosts, one of which enforces its own limit and answers 429 with `Retry-After`, and sends one
workload through aiohttp (`ThrottledClientSession`) and httpx (`ThrottledTransport`) at the
same time, each client against its own servers, with a per-host limit and an override. It
then checks its claims from what the *servers* recorded:

* no host saw more arrivals in any window of `period` seconds than the limit we configured
  for it;
* a host whose server limit is at least ours answered no 429;
* the host whose server allows less than our rate, sent with `FeedbackPolicy(adapt=True)`,
  found the server's pace: its 429s stopped (none in the second half of its run).

It exits 1 if any claim failed. The console helpers here (`Board` and
`print_table`) are shared with `fetch`: rich when installed, plain text otherwise.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import importlib
import os
import sys
import textwrap
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, final

from ._feedback import FeedbackPolicy
from ._rates import Rate

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from matplotlib.figure import Figure

    from ._hostmap import ThrottlerMap
    from .testing import RecordingServer

__all__ = ["Board", "collect", "max_in_window", "print_table", "run_demo", "timeline"]


# -- console output --------------------------------------------------------------------


def has_rich() -> bool:
    """Whether the optional `rich` package is importable."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


@final
class Board:
    """Live progress: one bar per task, with rich when available, plain lines otherwise.

    Plain mode prints one status line at most every `interval` seconds and once at the
    end, so logs and pipes stay readable; on a console narrower than the line, it goes on
    over indented lines, never breaking one bar's status.

    Args:
        plain: force plain text even when rich is installed.
        stream: where plain lines go.
        interval: seconds between plain status lines.
    """

    __slots__ = (
        "_done",
        "_last",
        "_order",
        "_printed",
        "_progress",
        "_stream",
        "_tasks",
        "_totals",
        "interval",
    )

    def __init__(self, *, plain: bool = False, stream: TextIO | None = None, interval: float = 1.0):
        self._stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self._order: list[str] = []
        self._done: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        self._tasks: dict[str, Any] = {}
        self._last = 0.0
        self._printed: tuple[int, ...] = ()
        self._progress: Any = None
        if not plain and has_rich():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(file=self._stream),
                transient=False,
            )

    def add(self, key: str, total: int, label: str | None = None) -> None:
        """Add a bar `key` counting up to `total`."""
        self._order.append(key)
        self._done[key] = 0
        self._totals[key] = total
        if self._progress is not None:
            self._tasks[key] = self._progress.add_task(label or key, total=total, note="")

    def advance(self, key: str, step: int = 1, *, note: str | None = None) -> None:
        """Move bar `key` forward by `step`; `note` replaces its trailing text."""
        self._done[key] += step
        if self._progress is not None:
            fields: dict[str, Any] = {} if note is None else {"note": note}
            self._progress.update(self._tasks[key], advance=step, **fields)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._print_status()

    def note(self, key: str, text: str) -> None:
        """Set the trailing text of bar `key` (shown with rich only)."""
        if self._progress is not None:
            self._progress.update(self._tasks[key], note=text)

    def _print_status(self) -> None:
        state = tuple(self._done[key] for key in self._order)
        if state == self._printed:
            return
        self._printed = state
        parts = [f"{key} {self._done[key]}/{self._totals[key]}" for key in self._order]
        width = console_width(self._stream)
        lines = ["progress:"]
        for i, part in enumerate(parts):
            part += "," if i < len(parts) - 1 else ""
            if width is not None and len(lines[-1]) + 1 + len(part) > width:
                lines.append(" ")  # a continued status line starts indented
            lines[-1] += " " + part
        print("\n".join(lines), file=self._stream, flush=True)

    def __enter__(self) -> Board:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self._order:
            self._print_status()


def console_width(stream: TextIO) -> int | None:
    """The columns `stream` has room for: `COLUMNS` when set, else the terminal's width.

    `None` when neither says (a pipe or a file): any width will do.
    """
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if stream.isatty():
        with contextlib.suppress(OSError, ValueError):
            return os.get_terminal_size(stream.fileno()).columns
    return None


def table_width(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """How wide `print_table` lays out these cells: each column as wide as its widest cell,
    two spaces apart.
    """
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    return sum(widths) + 2 * (len(widths) - 1)


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    plain: bool = False,
    stream: TextIO | None = None,
    whole: int = 0,
) -> None:
    """Print a table: a rich table when available, aligned plain text otherwise.

    Both lay the cells out as `table_width` measures them, the first two columns
    left-aligned and the others right-aligned. On a console narrower than the table,
    rich wraps the cells, except those of the first `whole` columns, which it never
    shortens, and plain lines run on: a caller with many columns picks the ones that
    fit first (see `_report`).
    """
    stream = stream if stream is not None else sys.stdout
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    if not plain and has_rich():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(
            title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0)
        )
        for i, name in enumerate(columns):
            table.add_column(
                name,
                justify="left" if i < 2 else "right",
                no_wrap=i < whole,
                min_width=widths[i] if i < whole else None,
            )
        for row in rows:
            table.add_row(*row)
        width = console_width(stream) or max(table_width(columns, rows), len(title))
        Console(file=stream, width=width).print(table)
        return
    print(title, file=stream)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=False))
        ).rstrip()

    print(line(columns), file=stream)
    print("  ".join("-" * w for w in widths), file=stream)
    for row in rows:
        print(line(row), file=stream)
    stream.flush()


# -- measurements ----------------------------------------------------------------------


def max_in_window(times: Sequence[float], period: float) -> int:
    """Most of `times` inside any half-open window `[t, t + period)`.

    >>> max_in_window([0.0, 0.5, 0.99, 1.0, 1.5], 1.0)
    3
    """
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] + period <= t:
            start += 1
        best = max(best, end - start + 1)
    return best


def sustained_rate(times: Sequence[float], period: float) -> float:
    """Arrivals per second, counted as `len(times) / (span + period)`.

    A limiter that admits `limit` entries at once and then one window's worth per
    `period` scores exactly `limit / period` on this measure, where the naive
    `(n - 1) / span` would overstate a bursty start.
    """
    if not times:
        return 0.0
    return len(times) / (max(times) - min(times) + period)


@final
class _PauseMeter:
    """Total seconds a limiter spent paused (the union of its pauses), from polling."""

    __slots__ = ("_until", "total")

    def __init__(self) -> None:
        self._until = 0.0
        self.total = 0.0

    def observe(self, now: float, paused_for: float) -> None:
        if paused_for <= 0:
            return
        end = now + paused_for
        if end > self._until:
            self.total += end - max(self._until, now)
            self._until = end


# -- the demo workload -----------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class _HostPlan:
    """One host of the demo: how many requests, our limit and the server's."""

    address: str
    requests: int
    ours: Rate
    server: Rate | None
    override: bool

    @property
    def adapt(self) -> bool:
        """Whether the server allows less than our rate: this host adapts to it."""
        return self.server is not None and not ours_fits_under(self.ours, self.server)


@final
@dataclass(slots=True)
class _HostResult:
    """What one client did to one host, measured at the server."""

    plan: _HostPlan
    arrivals: list[float] = field(default_factory=list)
    rejections: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    rejected: int = 0
    last_error: str = ""
    paused: float = 0.0
    pace: Rate | None = None


def ours_fits_under(ours: Rate, server: Rate) -> bool:
    """Whether a client kept to `ours` can never exceed `server`.

    True when our limit is at most the server's and our period at least as long: any
    window of the server's period lies inside one of ours, so it holds at most our limit.

    >>> ours_fits_under(Rate(4, 1.0), Rate(5, 1.0))
    True
    >>> ours_fits_under(Rate(10, 1.0), Rate(5, 1.0))
    False
    """
    return ours.period >= server.period and ours.limit <= server.limit


DEFAULT_RATE = Rate(10, 1.0)
SERVER_RATE = Rate(5, 1.0)
OVERRIDE_RATE = Rate(4, 1.0)
# A request answered 429 waits out the Retry-After and queues again behind the others, so
# on the host we deliberately overload it may be turned away several times in a row.
DEMO_RETRIES = 10


def _plans(quick: bool) -> tuple[_HostPlan, ...]:
    scale = 1 if quick else 5
    return (
        _HostPlan("127.0.0.1", 20 * scale, DEFAULT_RATE, None, override=False),
        _HostPlan("127.0.0.2", 8 * scale, OVERRIDE_RATE, SERVER_RATE, override=True),
        _HostPlan("127.0.0.3", 10 * scale, DEFAULT_RATE, SERVER_RATE, override=False),
    )


def _missing(module: str, name: str | None = None) -> str | None:
    """Why `module` (and its attribute `name`) cannot be used, or `None`."""
    try:
        imported = importlib.import_module(module)
    except ImportError as exc:
        return f"{module} unavailable ({exc})"
    if name is not None and not hasattr(imported, name):
        return f"{module} has no {name}"
    return None


async def _drive(
    client: str,
    plans: Sequence[_HostPlan],
    urls: dict[str, str],
    send: Callable[[_HostPlan, str], Awaitable[int]],
    tmap: ThrottlerMap,
    board: Board,
    results: dict[str, _HostResult],
    rejected: Callable[[str], int],
) -> None:
    """Send every request of `plans` through `send` at once and tally the answers.

    While they run, each host's bar shows the 429s its server answered so far and the
    seconds its throttler has been paused by Retry-After.
    """
    meters = {plan.address: _PauseMeter() for plan in plans}
    loop = asyncio.get_running_loop()

    async def one(plan: _HostPlan, index: int) -> None:
        result = results[plan.address]
        try:
            status = await send(plan, f"{urls[plan.address]}?demo={index}")
        except Exception as exc:  # reported in the table, never raised
            result.last_error = f"{type(exc).__name__}: {exc}"
            result.errors += 1
            status = 0
        else:
            if 200 <= status < 300:
                result.ok += 1
            else:
                result.errors += 1
                result.last_error = f"HTTP {status}"
        board.advance(f"{client} {plan.address}")

    async def watch() -> None:
        while True:
            now = loop.time()
            for plan in plans:
                limiter = tmap.throttler_for(urls[plan.address])
                if limiter is not None:
                    meters[plan.address].observe(now, limiter.paused_for)
                board.note(
                    f"{client} {plan.address}",
                    f"429s {rejected(plan.address)}  paused {meters[plan.address].total:.1f} s",
                )
            await asyncio.sleep(0.05)

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.gather(*(one(plan, i) for plan in plans for i in range(plan.requests)))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    for plan in plans:
        results[plan.address].paused = meters[plan.address].total


def run_demo(*, quick: bool = False, plot: str | None = None, plain: bool = False) -> int:
    """Run the demo; return 0 when every claim held, 1 otherwise, 2 on bad options."""
    if plot is not None and _missing("matplotlib.figure") is not None:
        print(
            "error: --plot needs matplotlib: pip install 'throttled_http[plot]'",
            file=sys.stderr,
        )
        return 2
    if _missing("throttled_http.testing", "RecordingServer") is not None:
        print(
            "error: the demo needs aiohttp for its servers: pip install 'throttled_http[demo]'",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_demo(quick=quick, plot=plot, plain=plain))


async def _demo(*, quick: bool, plot: str | None, plain: bool) -> int:
    collected = await collect(quick=quick, plain=plain)
    if collected is None:
        return 1
    return _report(*collected, plot, plain)


async def collect(
    *, quick: bool, plain: bool, stream: TextIO | None = None
) -> tuple[dict[str, dict[str, _HostResult]], float] | None:
    """Run the demo's workload; what each client did to each host, and the seconds taken.

    `None` (after printing why) when no client can run or a server cannot listen.
    `stream` receives the plan and the progress (standard output by default). For the
    benchmark (`benchmarks/bench_feedback.py`) as much as for the demo.
    """
    from ._hostmap import ThrottlerMap
    from .testing import RecordingServer

    out = stream if stream is not None else sys.stdout
    plans = _plans(quick)
    clients: list[tuple[str, str | None]] = [
        ("aiohttp", _missing("throttled_http.aiohttp", "ThrottledClientSession")),
        ("httpx", _missing("throttled_http.httpx", "ThrottledTransport")),
    ]
    print("throttled_http demo: one workload through aiohttp and httpx, to 3 hosts", file=out)
    for p in plans:
        print(
            f"  {p.address}  ours {p.ours}{' (an override)' if p.override else ''}, "
            f"server {p.server or 'unlimited'}{': adapting' if p.adapt else ''}",
            file=out,
        )
    for name, reason in clients:
        if reason is not None:
            print(f"skipping {name}: {reason}", file=out)
    runnable = [name for name, reason in clients if reason is None]
    if not runnable:
        print("error: neither HTTP integration is available", file=sys.stderr)
        return None

    free = tuple(p.address for p in plans if p.server is None)
    limited = tuple(p.address for p in plans if p.server is not None)
    all_results: dict[str, dict[str, _HostResult]] = {}
    started = time.monotonic()
    servers: list[tuple[str, RecordingServer]] = []
    try:
        board = Board(plain=plain, stream=out)
        jobs = []
        for name in runnable:
            open_server = RecordingServer(hosts=free)
            strict_server = RecordingServer(hosts=limited, server_limit=SERVER_RATE)
            for server in (open_server, strict_server):
                try:
                    await server.start()
                except OSError as exc:
                    print(
                        f"error: cannot listen on {', '.join(server.hosts)}: {exc} (on "
                        "macOS, add loopback aliases first: sudo ifconfig lo0 alias "
                        "127.0.0.2 up; and the same for 127.0.0.3)",
                        file=sys.stderr,
                    )
                    return None
                servers.append((name, server))
            urls = {a: open_server.url("/", host=a) for a in free}
            urls.update({a: strict_server.url("/", host=a) for a in limited})
            tmap = ThrottlerMap(
                DEFAULT_RATE.limit,
                DEFAULT_RATE.period,
                overrides={p.address: str(p.ours) for p in plans if p.override},
            )
            results = {p.address: _HostResult(p) for p in plans}
            all_results[name] = results
            for p in plans:
                board.add(f"{name} {p.address}", p.requests)
            rejected = _rejected_counter(open_server, strict_server)
            jobs.append((name, urls, rejected, tmap, results))
        with board:
            await asyncio.gather(
                *(
                    _run_client(name, plans, urls, rejected, tmap, board, results)
                    for name, urls, rejected, tmap, results in jobs
                )
            )
    finally:
        for _, server in servers:
            await server.close()
    elapsed = time.monotonic() - started

    for name, server in servers:
        for arrival in server.arrivals:
            result = all_results[name].get(arrival.host)
            if result is not None:
                result.arrivals.append(arrival.time)
                if arrival.status == 429:
                    result.rejections.append(arrival.time)
        for host, count in server.rejected.items():
            result = all_results[name].get(host)
            if result is not None:
                result.rejected += count
    return all_results, elapsed


def _rejected_counter(*servers: RecordingServer) -> Callable[[str], int]:
    """A function giving the 429s answered so far on one address, over `servers`."""

    def rejected(address: str) -> int:
        return sum(server.rejected.get(address, 0) for server in servers)

    return rejected


async def _run_client(
    name: str,
    plans: Sequence[_HostPlan],
    urls: dict[str, str],
    rejected: Callable[[str], int],
    tmap: ThrottlerMap,
    board: Board,
    results: dict[str, _HostResult],
) -> None:
    # One policy for the hosts that allow our rate, an adapting one for the host that
    # does not; both clients share the map, so each host keeps one throttler.
    policies = (
        FeedbackPolicy(retries=DEMO_RETRIES),
        FeedbackPolicy(adapt=True, retries=DEMO_RETRIES),
    )
    if name == "aiohttp":
        from .aiohttp import ThrottledClientSession

        async with (
            ThrottledClientSession(throttler=tmap, feedback=policies[0]) as plain,
            ThrottledClientSession(throttler=tmap, feedback=policies[1]) as adaptive,
        ):

            async def send(plan: _HostPlan, url: str) -> int:
                session = adaptive if plan.adapt else plain
                async with session.get(url) as response:
                    await response.read()
                    return int(response.status)

            await _drive(name, plans, urls, send, tmap, board, results, rejected)
    else:
        import httpx

        from .httpx import ThrottledTransport

        async with (
            httpx.AsyncClient(
                transport=ThrottledTransport(throttler=tmap, feedback=policies[0])
            ) as plain_client,
            httpx.AsyncClient(
                transport=ThrottledTransport(throttler=tmap, feedback=policies[1])
            ) as adaptive_client,
        ):

            async def send(plan: _HostPlan, url: str) -> int:
                client = adaptive_client if plan.adapt else plain_client
                response = await client.get(url)
                return int(response.status_code)

            await _drive(name, plans, urls, send, tmap, board, results, rejected)
    paces = policies[1].statistics().by_key
    for plan in plans:
        if plan.adapt:
            key, _ = tmap.resolve(urls[plan.address])
            found = paces.get(key)
            results[plan.address].pace = None if found is None else found.pace


def timeline(times: Sequence[float], start: float, stop: float, parts: int = 5) -> str:
    """How many of `times` fall in each of `parts` equal spans of `[start, stop]`.

    >>> timeline([0.1, 0.2, 3.0], 0.0, 5.0)
    '2 0 0 1 0'
    """
    counts = [0] * parts
    width = (stop - start) / parts if stop > start else 1.0
    for t in times:
        counts[min(parts - 1, max(0, int((t - start) / width)))] += 1
    return " ".join(str(c) for c in counts)


# The result table's columns, each with what the legend says of it. When the console is
# too narrow for them all, the ones in _DROP_ORDER are left out in that order, until the
# table fits: first what the others imply (rate/s from the arrivals, 2xx from sent and
# 429s), then the details behind a verdict the check column already gives.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client", ""),
    ("host", ""),
    ("sent", "arrivals at the server, retries included"),
    ("2xx", "successful answers"),
    ("limit", "ours (* an override)"),
    ("server", "what the server enforces with 429"),
    ("max/window", "the most arrivals the server saw in any window of our period, over our limit"),
    ("rate/s", "arrivals / (span + period)"),
    ("429s", "answers 'too many requests'"),
    ("over time", "the 429s in five equal spans of the host's run"),
    ("paused", "seconds the host's throttler was paused (Retry-After, slow start)"),
    (
        "adapt",
        "the pace FeedbackPolicy(adapt=True) found for the host whose server allows less "
        "than our rate (-: not adapting)",
    ),
    ("check", ""),
)
_DROP_ORDER = ("rate/s", "2xx", "over time", "server", "adapt", "limit")


def _fit(names: Sequence[str], rows: Sequence[Sequence[str]], width: int | None) -> list[int]:
    """The indices of the columns to show so that the table fits in `width`.

    Every column when `width` is `None` or the whole table fits; otherwise the columns
    of `_DROP_ORDER` go, in that order, until it fits or none is left to drop.
    """
    kept = list(range(len(names)))
    for name in _DROP_ORDER:
        cells = [[row[i] for i in kept] for row in rows]
        if width is None or table_width([names[i] for i in kept], cells) <= width:
            break
        kept.remove(names.index(name))
    return kept


def _report(
    all_results: dict[str, dict[str, _HostResult]],
    elapsed: float,
    plot: str | None,
    plain: bool,
) -> int:
    rows = []
    failures = []
    for client, results in all_results.items():
        for address, r in results.items():
            plan = r.plan
            worst = max_in_window(r.arrivals, plan.ours.period)
            held = worst <= plan.ours.limit
            polite = not (
                plan.server is not None and ours_fits_under(plan.ours, plan.server) and r.rejected
            )
            if not held:
                failures.append(
                    f"{client} {address}: {worst} arrivals in one {plan.ours.period:g} s "
                    f"window, limit {plan.ours.limit}"
                )
            if r.errors:
                failures.append(
                    f"{client} {address}: {r.errors} of {plan.requests} requests failed "
                    f"(last: {r.last_error})"
                )
            if not polite:
                failures.append(
                    f"{client} {address}: {r.rejected} x 429 although our limit {plan.ours} "
                    f"is within the server's {plan.server}"
                )
            begin, end = (min(r.arrivals), max(r.arrivals)) if r.arrivals else (0.0, 0.0)
            late = [t for t in r.rejections if t > (begin + end) / 2]
            converged = not (plan.adapt and late)
            if not converged:
                failures.append(
                    f"{client} {address}: adapting, yet {len(late)} x 429 in the second half "
                    "of its run"
                )
            rows.append(
                (
                    client,
                    address,
                    str(len(r.arrivals)),
                    str(r.ok),
                    f"{plan.ours}{' *' if plan.override else ''}",
                    str(plan.server or "none"),
                    f"{worst}/{plan.ours.limit}",
                    f"{sustained_rate(r.arrivals, plan.ours.period):.2f}",
                    str(r.rejected),
                    timeline(r.rejections, begin, end) if r.rejections else "-",
                    f"{r.paused:.1f}",
                    (str(r.pace) if r.pace is not None else "found") if plan.adapt else "-",
                    "ok" if held and polite and converged and not r.errors else "FAILED",
                )
            )
    width = console_width(sys.stdout)
    names = [name for name, _ in _COLUMNS]
    kept = _fit(names, rows, width)
    print_table(
        f"throttled_http demo: {elapsed:.1f} s",
        [names[i] for i in kept],
        [[row[i] for i in kept] for row in rows],
        plain=plain,
        whole=2,  # client and host: what tells the rows apart
    )
    shown = [_COLUMNS[i] for i in kept]
    legend = "; ".join(f"{name}: {text}" for name, text in shown if text) + "."
    left_out = [name for name in names if name not in {name for name, _ in shown}]
    if left_out:
        legend += (
            f" Left out to fit {width} columns: {', '.join(left_out)} (the whole table "
            f"takes {table_width(names, rows)})."
        )
    print(textwrap.fill(legend, min(width or 80, 80), break_on_hyphens=False))
    if plot is not None:
        _plot(all_results, plot)
        print(f"timeline written to {plot}")
    if failures:
        for failure in failures:
            print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print("every configured limit held at the server.")
    return 0


# Each host's look in the plot, the same in every panel: a colour, a line style and a
# marker of its own (none of them the red of the 429 crosses or the grey of the bound).
_HOST_STYLES: tuple[tuple[str, str, str], ...] = (
    ("tab:blue", "-", "o"),
    ("tab:orange", "--", "s"),
    ("tab:green", "-.", "^"),
    ("tab:purple", ":", "D"),
)


def _figure(all_results: dict[str, dict[str, _HostResult]]) -> Figure:
    """Cumulative arrivals at the server: a panel per host (a row) and client (a column).

    Each host has a panel of its own, so hosts whose arrivals coincide (two with the
    same limit, say) never hide each other, and its own colour, line style and marker,
    the same in every panel and legend. The wide grey band under it is the most our
    limit allows by time `t`, counting from the host's first arrival:
    `limit * (floor((t - first) / period) + 1)`, drawn up to its last arrival. Red
    crosses mark the arrivals the server answered with 429.
    """
    from matplotlib.figure import Figure

    clients = list(all_results)
    hosts = list(dict.fromkeys(a for results in all_results.values() for a in results))
    fig = Figure(figsize=(6 * len(clients), 0.6 + 2.6 * len(hosts)), layout="constrained")
    axes = fig.subplots(len(hosts), len(clients), squeeze=False, sharex=True, sharey="row")
    origin = min(
        (t for results in all_results.values() for r in results.values() for t in r.arrivals),
        default=0.0,
    )
    for column, client in enumerate(clients):
        for row, address in enumerate(hosts):
            ax = axes[row][column]
            color, linestyle, marker = _HOST_STYLES[row % len(_HOST_STYLES)]
            result = all_results[client].get(address)
            if column == 0:
                ax.set_ylabel("requests arrived")
            if row == len(hosts) - 1:
                ax.set_xlabel("seconds since the first request")
            if result is None or not result.arrivals:
                ax.set_title(f"{client}: {address}, no arrivals", fontsize="medium")
                continue
            plan = result.plan
            ax.set_title(
                f"{client}: {address} (ours {plan.ours}, server {plan.server or 'none'})",
                fontsize="medium",
            )
            times = sorted(t - origin for t in result.arrivals)
            counts = list(range(1, len(times) + 1))
            ax.step(
                times,
                counts,
                where="post",
                color=color,
                linestyle=linestyle,
                marker=marker,
                markersize=3,
                label=f"{address}: arrivals",
            )
            first, last = times[0], times[-1]
            steps = int((last - first) / plan.ours.period) + 1
            ax.step(
                [first + k * plan.ours.period for k in range(steps)] + [last],
                [plan.ours.limit * (k + 1) for k in range(steps)] + [plan.ours.limit * steps],
                where="post",
                color="grey",
                alpha=0.35,
                linewidth=5,
                zorder=1,  # under the arrivals, which follow it when the windows fill
                label=f"most our {plan.ours} allows",
            )
            rejected = sorted(t - origin for t in result.rejections)
            if rejected:
                ax.plot(
                    rejected,
                    [bisect.bisect_right(times, t) for t in rejected],
                    "x",
                    color="tab:red",
                    markersize=5,
                    label="answered 429",
                )
            ax.legend(fontsize="small", loc="upper left")
    return fig


def _plot(all_results: dict[str, dict[str, _HostResult]], path: str) -> None:
    """Write `_figure` to `path` (PNG, or any format matplotlib knows by the extension)."""
    _figure(all_results).savefig(path, dpi=100)
