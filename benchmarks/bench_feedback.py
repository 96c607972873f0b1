"""Server feedback end to end: how fast adaptation finds a limit it was not told, and keeps it.

Each scenario sends a batch of requests at once through a real client (aiohttp's
`ThrottledClientSession` and httpx's `ThrottledTransport`, side by side) to a real
server on 127.0.0.x (`throttled_http._servers`) that enforces a limit the client does
not know, on the real clock. The figures are measured at the server, against issue #13's
targets:

* `lower`: configured 5/s, the server allows 3/s (a sliding window answering 429 with
  `Retry-After`; `lower-bare` answers a bare 429): at most 3 refusals in the first 10 s,
  none in any later 10 s, and a settled pace of 0.7 to 1.0 of the server's limit;
* `halving`: configured at the server's 10/s, which halves to 5/s one period into the
  run, 180 requests: at most 10 refusals in all and none in the last third;
* `bucket`: an OpenAI-style token bucket (10, refilled at 2/s, its budget in
  `x-ratelimit-*-requests` headers on every answer): no target, the settled pace is
  reported against the refill rate;
* `demo`: the `python -m throttled_http demo` workload, whose 127.0.0.3 host (ours
  10/s, the server's 5/s) adapts: at most 5 refusals.

The `lower` and `halving` scenarios also run with `adapt=False` for contrast (the
behaviour the issue measured). Every policy retries refused requests (`retries=10`).
All scenarios run at once, each on its own server; a run takes about `--seconds` (60 by
default, 30 with `--quick`). `--probe-after S` sets the policies' `probe_after` (300 s by
default, longer than a run): a shorter one shows what the probes for a raised limit cost a
settled host.

Run: `python benchmarks/bench_feedback.py` (`--quick`, `--seconds N`, `--probe-after S`,
`--json PATH`).
"""

from __future__ import annotations

import asyncio
import io
import math
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from _common import Table, parse, parser, print_header, write_json

from throttled_http import FeedbackPolicy, Rate, ThrottlerMap
from throttled_http._demo import collect
from throttled_http._servers import LimitedServer, SlidingWindow, TokenBucket, send_all

if TYPE_CHECKING:
    from throttled_http._servers import ServerLimit

CLIENTS = ("aiohttp", "httpx")
SPAN = 10.0  # seconds: the issue counts refusals per 10-s span


@dataclass
class Run:
    """What one client did in one scenario, measured at the server (times from its start)."""

    scenario: str
    client: str
    adapt: bool
    requests: int
    server_limit: float  # requests per second the server allows once settled
    accepted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    failed: int = 0
    pace: str = "-"

    @property
    def end(self) -> float:
        """The last arrival, in seconds from the start."""
        return max(self.accepted + self.refused, default=0.0)

    def refusals(self, start: float, stop: float = math.inf) -> int:
        """Refusals at times in `[start, stop)`."""
        return sum(1 for t in self.refused if start <= t < stop)

    def later_spans(self) -> list[int]:
        """Refusals in each 10-s span after the first one, up to the end."""
        spans = max(0, math.ceil((self.end - SPAN) / SPAN))
        return [self.refusals(SPAN * (i + 1), SPAN * (i + 2)) for i in range(spans)]

    def settled(self, start: float) -> float:
        """Accepted requests per second from `start` on, over the server's limit.

        Counted as `count / (last - first + 1 s)`, as the demo's rate/s: a client that
        fills every 1-s window of the server exactly scores 1.0, where `count / span`
        would overstate the edges. NaN when nothing was accepted after `start`.
        """
        times = [t for t in self.accepted if t >= start]
        if not times:
            return math.nan
        return len(times) / (max(times) - min(times) + 1.0) / self.server_limit


async def scenario(
    name: str,
    client: str,
    adapt: bool,
    rule: ServerLimit,
    *,
    host: str,
    ours: int,
    requests: int,
    server_limit: float,
    probe_after: float,
) -> Run:
    """Run one scenario for one client; what the server saw."""
    policy = FeedbackPolicy(adapt=adapt, retries=10, probe_after=probe_after)
    run = Run(name, client, adapt, requests, server_limit)
    async with LimitedServer({host: rule}) as server:
        urls = [server.url(host)] * requests
        statuses = await send_all(client, urls, ThrottlerMap(ours, 1.0), policy)
        for arrival in server.arrivals:
            t = arrival.time - server.started
            (run.refused if arrival.status == 429 else run.accepted).append(t)
    run.failed = sum(1 for status in statuses if status != 200)
    paces = [s.pace for s in policy.statistics().by_key.values()]
    run.pace = str(paces[0]) if paces and paces[0] is not None else "-"
    return run


async def demo_runs() -> list[Run]:
    """The demo's workload; one run per client for its adapting host."""
    collected = await collect(quick=False, plain=True, stream=io.StringIO())
    if collected is None:
        raise SystemExit("the demo could not run")
    runs = []
    for client, results in collected[0].items():
        for address, result in results.items():
            if not result.plan.adapt:
                continue
            server = result.plan.server
            if server is None:  # an adapting host has a server limit
                continue
            start = min(result.arrivals)
            run = Run("demo", client, True, result.plan.requests, server.limit / server.period)
            rejected = set(result.rejections)
            run.refused = [t - start for t in result.rejections]
            run.accepted = [t - start for t in result.arrivals if t not in rejected]
            run.failed = result.errors
            run.pace = str(result.pace) if result.pace is not None else "-"
            run.scenario = f"demo ({address})"
            runs.append(run)
    return runs


async def measure(seconds: float, probe_after: float) -> list[Run]:
    """Every scenario for every client, at once."""
    jobs = []
    for client in CLIENTS:
        for adapt in (True, False):
            jobs.append(
                scenario(
                    "lower",
                    client,
                    adapt,
                    SlidingWindow(Rate(3, 1.0)),
                    host="127.0.0.2",
                    ours=5,
                    requests=math.ceil(3 * seconds),
                    server_limit=3.0,
                    probe_after=probe_after,
                )
            )
            halved = SlidingWindow(Rate(10, 1.0), changes=[(1.0, Rate(5, 1.0))])
            jobs.append(
                scenario(
                    "halving",
                    client,
                    adapt,
                    halved,
                    host="127.0.0.3",
                    ours=10,
                    requests=180,
                    server_limit=5.0,
                    probe_after=probe_after,
                )
            )
        jobs.append(
            scenario(
                "lower-bare",
                client,
                True,
                SlidingWindow(Rate(3, 1.0), retry_after=False),
                host="127.0.0.4",
                ours=5,
                requests=math.ceil(3 * seconds),
                server_limit=3.0,
                probe_after=probe_after,
            )
        )
        jobs.append(
            scenario(
                "bucket",
                client,
                True,
                TokenBucket(10, 2.0),
                host="127.0.0.5",
                ours=10,
                requests=math.ceil(2 * seconds),
                server_limit=2.0,
                probe_after=probe_after,
            )
        )
    runs, demo = await asyncio.gather(asyncio.gather(*jobs), demo_runs())
    return [*runs, *demo]


def verdict(run: Run) -> tuple[str, str]:
    """The issue's target for `run` and whether it was met."""
    if not run.adapt:
        return "(contrast: adapt=False)", "-"
    if run.scenario.startswith("lower"):
        ok = (
            run.refusals(0.0, SPAN) <= 3
            and max(run.later_spans(), default=0) == 0
            and 0.7 <= run.settled(SPAN) <= 1.0
        )
        return "<=3 in first 10 s, 0 later, pace 0.7-1.0", "met" if ok else "NOT met"
    if run.scenario == "halving":
        ok = len(run.refused) <= 10 and run.refusals(run.end * 2 / 3) == 0
        return "<=10 in all, 0 in last third", "met" if ok else "NOT met"
    if run.scenario.startswith("demo"):
        return "<=5 refusals", "met" if len(run.refused) <= 5 else "NOT met"
    return "none", "-"


def main(argv: list[str] | None = None) -> int:
    """Measure, print the tables, and write the JSON when asked."""
    p = parser(__doc__.splitlines()[0], repeats=1, quick_repeats=1)
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="length of the lower-limit and bucket runs (default 60, 30 with --quick)",
    )
    p.add_argument(
        "--probe-after",
        type=float,
        default=300.0,
        help="the policies' probe_after, in seconds (default 300, the policy's own)",
    )
    args = parse(p, argv)
    seconds = args.seconds if args.seconds is not None else (30.0 if args.quick else 60.0)
    env = print_header("Server feedback: refusals and pace, end to end", "aiohttp", "httpx")
    all_runs: list[Run] = []
    for repeat in range(args.repeats):
        runs = asyncio.run(measure(seconds, args.probe_after))
        all_runs.extend(runs)
        table = Table(
            "scenario",
            "client",
            "adapt",
            "requests",
            "failed",
            "refusals",
            "first 10 s",
            "later 10-s spans",
            "last third",
            "settled pace / server",
            "pace found",
            "target",
            "verdict",
        )
        for run in runs:
            target, met = verdict(run)
            settle_from = run.end / 3 if run.scenario == "halving" else SPAN
            spans = run.later_spans()
            table.add_row(
                run.scenario,
                run.client,
                "yes" if run.adapt else "no",
                run.requests,
                run.failed,
                len(run.refused),
                run.refusals(0.0, SPAN),
                " ".join(map(str, spans)) if spans else "-",
                run.refusals(run.end * 2 / 3),
                "-" if math.isnan(settled := run.settled(settle_from)) else f"{settled:.2f}",
                run.pace,
                target,
                met,
            )
        table.print(
            f"run {repeat + 1} of {args.repeats} ({seconds:g} s runs, "
            f"probe_after={args.probe_after:g} s)"
        )
    print(
        "refusals: 429s the server answered (retries included); later 10-s spans: the "
        "429s of each 10-s span after the first; settled pace: requests the server accepted "
        "per second after the first 10 s (after the first third for halving), as "
        "count / (last - first + 1 s), over the limit it enforced then (a demo host's run "
        "is shorter than 10 s: -)."
    )
    write_json(
        args.json,
        {
            "environment": env,
            "seconds": seconds,
            "probe_after": args.probe_after,
            "runs": [asdict(r) for r in all_runs],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
