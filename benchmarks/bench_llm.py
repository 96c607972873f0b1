"""The LLM presets end to end: the real SDKs, a batch of calls, the fake provider's buckets.

Each run sends one batch of chat calls through the real `openai` or `anthropic` SDK to a
fresh `FakeProvider` (tests/fake_provider.py: token buckets refilling continuously over a
scaled minute, the providers' headers, a whole-second `retry-after` on a 429) on
loopback, from `--tasks` concurrent tasks pulling the calls from one queue. Prompts of
50-500 tokens and `max_tokens` of 16-256 are drawn from a seeded random generator, the same
for every variant. The SDK keeps its default `max_retries=2`: a call that fails after them
is a failed call.

Workloads and variants, side by side in each repeat (their order rotated):

* `openai` (60 RPM, 12k TPM): the SDK alone; an RPM-only `ThrottledTransport(rate_limit=
  rpm, period=period)`; `openai_limits(...)`;
* `anthropic` (60 RPM, 40k ITPM, 2k OTPM, so that the output binds), over httpx2: the SDK
  alone; `anthropic_limits(...)`; the same with `reconcile=None` (output charged as
  `max_tokens` and never credited back).

Per variant: 429s at the provider, failed calls, the batch's wall time, the **ideal**
time the provider's buckets allow for what it charged (per limit of capacity `C` refilling
at `r`, a batch charged `T` needs at least `max(0, (T - C) / r)`; the largest over the
limits), `ideal / actual` (target >= 0.85) and, for Anthropic, the output tokens generated
beyond the first full bucket per second as a fraction of OTPM's refill rate (target >=
0.85). Medians of `--repeats` (3; 1 with `--quick`, which also halves the batch).

Run: `python benchmarks/bench_llm.py` (`--quick`, `--repeats N`, `--calls N`,
`--tasks N`, `--period S`, `--json PATH`).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2
import openai
from _common import Table, fmt_pct, median, parse, parser, print_header, rotated, write_json

import throttled_http.httpx2
from throttled_http.llm import anthropic_limits, openai_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fake_provider import OUTPUT_TOKENS, FakeProvider

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

RPM, TPM = 60, 12_000
ITPM, OTPM = 40_000, 2_000
TARGET = 0.85

Job = tuple[str, int]  # (prompt, max_tokens)


@dataclass
class Run:
    """One variant's batch, as the provider saw it."""

    workload: str
    variant: str
    calls: int
    refused: int
    failed: int
    seconds: float  # wall time of the batch
    first_arrival: float  # seconds from the start to the provider's first admission
    ideal: float  # seconds the provider's buckets allow for what they were charged
    charged: dict[str, int]  # per limit, what the provider took
    output_fraction: float  # Anthropic: output beyond the first bucket per s / OTPM's rate

    @property
    def efficiency(self) -> float:
        return self.ideal / self.seconds if self.seconds > 0 else float("nan")


def workload(count: int, seed: int) -> list[Job]:
    """`count` calls: prompts of 50-500 tokens (4-character words), max_tokens 16-256."""
    rng = random.Random(seed)
    return [("tok " * rng.randint(50, 500), rng.randint(16, 256)) for _ in range(count)]


def ideal_seconds(provider: FakeProvider, charged: dict[str, int]) -> float:
    """The least time a batch charged `charged` takes through the provider's full buckets."""
    rate = {kind: limit / provider.period for kind, limit in provider.limits.items()}
    return max(
        max(0.0, (charged[kind] - limit) / rate[kind]) for kind, limit in provider.limits.items()
    )


async def drive(
    jobs: list[Job], tasks: int, call: Callable[[str, int], Awaitable[object]]
) -> tuple[int, float]:
    """Run `jobs` from `tasks` workers; (failed calls, wall seconds)."""
    queue = list(reversed(jobs))
    failed = 0

    async def worker() -> None:
        nonlocal failed
        while queue:
            prompt, max_tokens = queue.pop()
            try:
                await call(prompt, max_tokens)
            except (openai.APIError, anthropic.APIError):
                failed += 1

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return failed, time.monotonic() - start


def openai_client(provider: FakeProvider, variant: str, period: float) -> openai.AsyncOpenAI:
    http_client: httpx2.AsyncClient | None = None
    if variant == "RPM-only transport":
        transport = throttled_http.httpx2.ThrottledTransport(rate_limit=RPM, period=period)
        http_client = httpx2.AsyncClient(transport=transport)
    elif variant == "openai_limits":
        limits: dict[str, Any] = dict(openai_limits(rpm=RPM, tpm=TPM, period=period))
        http_client = httpx2.AsyncClient(
            transport=throttled_http.httpx2.ThrottledTransport(**limits)
        )
    return openai.AsyncOpenAI(
        api_key="bench", base_url=provider.url, max_retries=2, http_client=http_client
    )


def anthropic_client(
    provider: FakeProvider, variant: str, period: float
) -> anthropic.AsyncAnthropic:
    http_client: httpx2.AsyncClient | None = None
    if variant != "SDK alone":
        limits: dict[str, Any] = dict(
            anthropic_limits(rpm=RPM, itpm=ITPM, otpm=OTPM, period=period)
        )
        if variant == "reconcile=None":
            limits["reconcile"] = None
        http_client = httpx2.AsyncClient(
            transport=throttled_http.httpx2.ThrottledTransport(**limits)
        )
    return anthropic.AsyncAnthropic(
        api_key="bench", base_url=provider.url, max_retries=2, http_client=http_client
    )


async def run_openai(variant: str, jobs: list[Job], tasks: int, period: float) -> Run:
    async with FakeProvider("openai", rpm=RPM, tpm=TPM, period=period) as provider:
        async with openai_client(provider, variant, period) as client:

            async def call(prompt: str, max_tokens: int) -> object:
                return await client.chat.completions.create(
                    model="gpt-bench",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=max_tokens,
                )

            failed, seconds = await drive(jobs, tasks, call)
        return measured(provider, "openai", variant, len(jobs), failed, seconds)


async def run_anthropic(variant: str, jobs: list[Job], tasks: int, period: float) -> Run:
    async with FakeProvider("anthropic", rpm=RPM, itpm=ITPM, otpm=OTPM, period=period) as provider:
        async with anthropic_client(provider, variant, period) as client:

            async def call(prompt: str, max_tokens: int) -> object:
                return await client.messages.create(
                    model="claude-bench",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=max_tokens,
                )

            failed, seconds = await drive(jobs, tasks, call)
        return measured(provider, "anthropic", variant, len(jobs), failed, seconds)


def measured(
    provider: FakeProvider, name: str, variant: str, calls: int, failed: int, seconds: float
) -> Run:
    stats = provider.statistics()
    charged = {kind: stats.charged(kind) for kind in provider.limits}
    first = min((c.time for c in stats.charges), default=provider.started_at)
    fraction = float("nan")
    if OUTPUT_TOKENS in charged:
        rate = OTPM / provider.period
        fraction = (charged[OUTPUT_TOKENS] - OTPM) / seconds / rate
    return Run(
        workload=name,
        variant=variant,
        calls=calls,
        refused=stats.refused_total,
        failed=failed,
        seconds=seconds,
        first_arrival=first - provider.started_at,
        ideal=ideal_seconds(provider, charged),
        charged=charged,
        output_fraction=fraction,
    )


VARIANTS: dict[str, tuple[tuple[str, ...], Callable[..., Awaitable[Run]]]] = {
    "openai": (("SDK alone", "RPM-only transport", "openai_limits"), run_openai),
    "anthropic": (("SDK alone", "anthropic_limits", "reconcile=None"), run_anthropic),
}


def report(runs: list[Run], repeats: int) -> None:
    for name, (variants, _) in VARIANTS.items():
        table = Table(
            "variant",
            "429s",
            "failed",
            "batch s",
            "ideal s",
            "ideal/actual",
            *(("output rate / OTPM",) if name == "anthropic" else ()),
            "target met",
        )
        for variant in variants:
            mine = [r for r in runs if r.workload == name and r.variant == variant]
            efficiency = median(r.efficiency for r in mine)
            cells: list[object] = [
                variant,
                f"{median(r.refused for r in mine):g}",
                f"{median(r.failed for r in mine):g}",
                f"{median(r.seconds for r in mine):.2f}",
                f"{median(r.ideal for r in mine):.2f}",
                fmt_pct(efficiency, 0),
            ]
            met = efficiency >= TARGET
            if name == "anthropic":
                fraction = median(r.output_fraction for r in mine)
                cells.append(fmt_pct(fraction, 0))
                met = met and fraction >= TARGET
            ok = met and all(r.refused == 0 and r.failed == 0 for r in mine)
            table.add_row(*cells, "yes" if ok else "NO")
        table.print(f"{name}: medians of {repeats} (429s at the provider; SDK max_retries=2)")


async def main() -> None:
    p = parser(__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--calls", type=int, default=None, help="calls per batch (120; 60 --quick)")
    p.add_argument("--tasks", type=int, default=60, help="concurrent tasks (60)")
    p.add_argument("--period", type=float, default=1.0, help="one scaled minute, s (1.0)")
    args = parse(p)
    calls = args.calls or (60 if args.quick else 120)
    env = print_header(
        f"LLM presets: {calls} calls from {args.tasks} tasks, a minute of {args.period:g} s",
        "openai",
        "anthropic",
        "httpx2",
    )
    runs: list[Run] = []
    for repeat in range(args.repeats):
        jobs = workload(calls, seed=repeat)
        for name, (variants, run) in VARIANTS.items():
            for variant in rotated(variants, repeat):
                result = await run(variant, jobs, args.tasks, args.period)
                runs.append(result)
                print(
                    f"  {name:9} {variant:20} {result.seconds:6.2f} s "
                    f"(ideal {result.ideal:.2f}, first arrival {result.first_arrival:.3f}), "
                    f"429s {result.refused}, failed {result.failed}",
                    file=sys.stderr,
                )
    report(runs, args.repeats)
    write_json(args.json, {"environment": env, "runs": [asdict(r) for r in runs]})


if __name__ == "__main__":
    asyncio.run(main())
