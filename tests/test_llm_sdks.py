"""The presets of throttled_http.llm, driven by the real openai and anthropic SDKs.

Each test sends a batch of concurrent calls through our transports to the fake provider
(tests/fake_provider.py) on a scaled minute of 1 s, with `max_retries=0` on the SDK: any
429 the provider sends is either absorbed by our feedback policy or reaches the SDK as a
failed call. Both are counted and must be zero, and the provider's bucket logs must never
go below empty. Rates and durations are the benchmark's business
(benchmarks/bench_llm.py): the clock here is real and the machine shared.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from fake_provider import OUTPUT_TOKENS, FakeProvider, lowest_level

import throttled_http.httpx
import throttled_http.httpx2
from throttled_http import Throttler
from throttled_http.llm import anthropic_limits, openai_limits

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anthropic.types import MessageParam
    from openai.types.chat import ChatCompletionMessageParam

PERIOD = 1.0  # seconds in one scaled minute
TIMEOUT = 15.0  # seconds: an SDK call that takes longer is a broken run
CALLS = 48  # concurrent calls per async batch
SYNC_CALLS = 48  # calls per threaded batch
WORKERS = 8  # threads of a threaded batch

RPM = 60
# OpenAI: a batch of 48 needs ~20k tokens (prompt + max_tokens) against a 12k bucket.
TPM = 12_000
# Anthropic: the output binds (~6.5k reserved, ~4k generated, against 2.5k).
ITPM, OTPM = 60_000, 2_500


@pytest.fixture(autouse=True)
def _no_sdk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide every SDK and proxy variable, so only the arguments given here apply."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("OPENAI_", "ANTHROPIC_")) or upper.endswith("_PROXY"):
            monkeypatch.delenv(name)


def workload(count: int, seed: int) -> list[tuple[str, int]]:
    """`count` (prompt, max_tokens): prompts of 50-500 tokens, max_tokens 16-256, seeded."""
    rng = random.Random(seed)
    # Each word is 4 characters: one token in the fake's estimate and in ours.
    jobs = [("tok " * rng.randint(50, 500), rng.randint(16, 256)) for _ in range(count)]
    # Every batch asks for more than a full bucket of the limit that should bind.
    assert sum(len(prompt) // 4 + most for prompt, most in jobs) > 1.5 * TPM
    assert sum(most for _, most in jobs) > 2 * OTPM
    return jobs


def chat(prompt: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": prompt}]


def messages(prompt: str) -> list[MessageParam]:
    return [{"role": "user", "content": prompt}]


def assert_clean(provider: FakeProvider, failures: list[BaseException]) -> None:
    """No 429 at the provider, no failed call, no bucket ever below empty."""
    stats = provider.statistics()
    assert failures == []
    assert stats.refused == dict.fromkeys(provider.limits, 0)
    for kind, capacity in provider.limits.items():
        low = lowest_level(
            stats.charges,
            kind,
            capacity=capacity,
            period=provider.period,
            start=provider.started_at,
        )
        assert low >= 0, (kind, low)


async def gather_failures(calls: list[Callable[[], Awaitable[object]]]) -> list[BaseException]:
    """Run `calls` concurrently; the exceptions they raised."""
    results = await asyncio.gather(*(call() for call in calls), return_exceptions=True)
    return [r for r in results if isinstance(r, BaseException)]


def threaded_failures(calls: list[Callable[[], object]]) -> list[BaseException]:
    """Run `calls` on a pool of threads; the exceptions they raised."""
    failures: list[BaseException] = []
    with ThreadPoolExecutor(WORKERS) as pool:
        for future in [pool.submit(call) for call in calls]:
            exc = future.exception()
            if exc is not None:
                failures.append(exc)
    return failures


def async_openai(provider: FakeProvider, http_client: Any) -> openai.AsyncOpenAI:
    """An async OpenAI client of `provider` over `http_client` (httpx or httpx2), no retries."""
    return openai.AsyncOpenAI(
        api_key="test",
        base_url=provider.url,
        max_retries=0,
        timeout=TIMEOUT,
        http_client=http_client,
    )


def async_anthropic(provider: FakeProvider, transport: Any) -> anthropic.AsyncAnthropic:
    """An async Anthropic client of `provider` over an httpx2 client, no retries."""
    return anthropic.AsyncAnthropic(
        api_key="test",
        base_url=provider.url,
        max_retries=0,
        timeout=TIMEOUT,
        http_client=httpx2.AsyncClient(transport=transport),
    )


# -- OpenAI ----------------------------------------------------------------------------


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
async def test_openai_async_batch_is_never_refused(library: str) -> None:
    """48 concurrent chat completions over twice the TPM: no 429, no failure, either client."""
    async with FakeProvider("openai", rpm=RPM, tpm=TPM, period=PERIOD) as provider:
        limits = openai_limits(rpm=RPM, tpm=TPM, period=PERIOD)
        http_client: httpx.AsyncClient | httpx2.AsyncClient
        if library == "httpx":
            http_client = httpx.AsyncClient(
                transport=throttled_http.httpx.ThrottledTransport(**limits)
            )
        else:
            http_client = httpx2.AsyncClient(
                transport=throttled_http.httpx2.ThrottledTransport(**limits)
            )
        async with async_openai(provider, http_client) as client:

            def call(prompt: str, max_tokens: int) -> Callable[[], Awaitable[object]]:
                return lambda: client.chat.completions.create(
                    model="gpt-test", messages=chat(prompt), max_tokens=max_tokens
                )

            failures = await gather_failures([call(*job) for job in workload(CALLS, seed=1)])
        assert provider.statistics().accepted == CALLS
        assert_clean(provider, failures)


def test_openai_sync_threads_are_never_refused() -> None:
    """48 calls of openai.OpenAI from 8 threads through one SyncThrottledTransport: no 429."""
    with FakeProvider("openai", rpm=RPM, tpm=TPM, period=PERIOD) as provider:
        limits = openai_limits(rpm=RPM, tpm=TPM, period=PERIOD, sync=True)
        transport = throttled_http.httpx.SyncThrottledTransport(**limits)
        with openai.OpenAI(
            api_key="test",
            base_url=provider.url,
            max_retries=0,
            timeout=TIMEOUT,
            http_client=httpx.Client(transport=transport),  # type: ignore[arg-type]
        ) as client:

            def call(prompt: str, max_tokens: int) -> Callable[[], object]:
                return lambda: client.chat.completions.create(
                    model="gpt-test", messages=chat(prompt), max_tokens=max_tokens
                )

            failures = threaded_failures([call(*job) for job in workload(SYNC_CALLS, seed=2)])
        assert provider.statistics().accepted == SYNC_CALLS
        assert_clean(provider, failures)


async def test_openai_streams_with_usage_are_never_refused() -> None:
    """48 concurrent streams read to their end, with the usage chunk: no 429, every slot back."""
    async with FakeProvider("openai", rpm=RPM, tpm=TPM, period=PERIOD) as provider:
        limits = openai_limits(rpm=RPM, tpm=TPM, period=PERIOD)
        throttler = limits["throttler"]
        assert isinstance(throttler, Throttler)
        transport = throttled_http.httpx2.ThrottledTransport(**limits)
        usages: list[int] = []
        async with async_openai(provider, httpx2.AsyncClient(transport=transport)) as client:

            async def call(prompt: str, max_tokens: int) -> None:
                stream = await client.chat.completions.create(
                    model="gpt-test",
                    messages=chat(prompt),
                    max_tokens=max_tokens,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async with stream:
                    async for chunk in stream:
                        if chunk.usage is not None:
                            usages.append(chunk.usage.completion_tokens)

            jobs = workload(CALLS, seed=3)
            failures = await gather_failures([partial(call, *job) for job in jobs])
            stats = throttler.statistics()
        assert len(usages) == CALLS
        assert (stats.open, stats.in_flight, stats.waiting) == (0, 0, 0)
        assert stats.admitted == CALLS
        assert_clean(provider, failures)


# -- Anthropic -------------------------------------------------------------------------


async def test_anthropic_async_batch_is_never_refused() -> None:
    """48 concurrent messages.create, the OTPM binding: no 429, no failure."""
    async with FakeProvider("anthropic", rpm=RPM, itpm=ITPM, otpm=OTPM, period=PERIOD) as provider:
        transport = throttled_http.httpx2.ThrottledTransport(
            **anthropic_limits(rpm=RPM, itpm=ITPM, otpm=OTPM, period=PERIOD)
        )
        async with async_anthropic(provider, transport) as client:

            def call(prompt: str, max_tokens: int) -> Callable[[], Awaitable[object]]:
                return lambda: client.messages.create(
                    model="claude-test", messages=messages(prompt), max_tokens=max_tokens
                )

            jobs = workload(CALLS, seed=4)
            failures = await gather_failures([call(*job) for job in jobs])
        stats = provider.statistics()
        assert stats.accepted == CALLS
        # The batch generated more than one bucket: the credits of unused output let it on.
        assert stats.charged(OUTPUT_TOKENS) > OTPM
        assert_clean(provider, failures)


def test_anthropic_sync_threads_are_never_refused() -> None:
    """48 calls of anthropic.Anthropic from 8 threads through httpx2's sync transport."""
    with FakeProvider("anthropic", rpm=RPM, itpm=ITPM, otpm=OTPM, period=PERIOD) as provider:
        limits = anthropic_limits(rpm=RPM, itpm=ITPM, otpm=OTPM, period=PERIOD, sync=True)
        transport = throttled_http.httpx2.SyncThrottledTransport(**limits)
        with anthropic.Anthropic(
            api_key="test",
            base_url=provider.url,
            max_retries=0,
            timeout=TIMEOUT,
            http_client=httpx2.Client(transport=transport),
        ) as client:

            def call(prompt: str, max_tokens: int) -> Callable[[], object]:
                return lambda: client.messages.create(
                    model="claude-test", messages=messages(prompt), max_tokens=max_tokens
                )

            failures = threaded_failures([call(*job) for job in workload(SYNC_CALLS, seed=5)])
        assert provider.statistics().accepted == SYNC_CALLS
        assert_clean(provider, failures)


@pytest.mark.parametrize("form", ["messages.stream", "stream=True"])
async def test_anthropic_streams_are_never_refused(form: str) -> None:
    """48 concurrent streams, the OTPM binding, read to their end: no 429, no failure."""
    async with FakeProvider("anthropic", rpm=RPM, itpm=ITPM, otpm=OTPM, period=PERIOD) as provider:
        transport = throttled_http.httpx2.ThrottledTransport(
            **anthropic_limits(rpm=RPM, itpm=ITPM, otpm=OTPM, period=PERIOD)
        )
        async with async_anthropic(provider, transport) as client:

            async def call(prompt: str, max_tokens: int) -> None:
                if form == "messages.stream":
                    async with client.messages.stream(
                        model="claude-test", messages=messages(prompt), max_tokens=max_tokens
                    ) as stream:
                        await stream.get_final_message()
                else:
                    events = await client.messages.create(
                        model="claude-test",
                        messages=messages(prompt),
                        max_tokens=max_tokens,
                        stream=True,
                    )
                    async with events:
                        async for _ in events:
                            pass

            jobs = workload(CALLS, seed=6)
            failures = await gather_failures([partial(call, *job) for job in jobs])
        assert provider.statistics().accepted == CALLS
        assert provider.statistics().charged(OUTPUT_TOKENS) > OTPM
        assert_clean(provider, failures)


@pytest.mark.parametrize("form", ["create", "messages.stream", "stream=True"])
async def test_anthropic_output_is_credited_back_to_what_was_generated(form: str) -> None:
    """Once the body ends, the output bucket holds the usage's count, not max_tokens."""
    max_tokens, otpm, period = 1_000, 100_000, 60.0  # refills ~2 tokens in 1 ms
    async with FakeProvider(
        "anthropic", rpm=60, itpm=100_000, otpm=otpm, period=period, output_fraction=(0.2, 0.5)
    ) as provider:
        limits = anthropic_limits(rpm=60, itpm=100_000, otpm=otpm, period=period)
        throttler = limits["throttler"]
        assert isinstance(throttler, Throttler)
        transport = throttled_http.httpx2.ThrottledTransport(**limits)
        async with async_anthropic(provider, transport) as client:
            request: Any = {"model": "claude-test", "messages": messages("tok " * 100)}
            if form == "create":
                message = await client.messages.create(max_tokens=max_tokens, **request)
                generated = message.usage.output_tokens
            elif form == "messages.stream":
                async with client.messages.stream(max_tokens=max_tokens, **request) as stream:
                    generated = (await stream.get_final_message()).usage.output_tokens
            else:
                events = await client.messages.create(max_tokens=max_tokens, stream=True, **request)
                generated = 0
                async with events:
                    async for event in events:
                        if event.type == "message_delta":
                            generated = event.usage.output_tokens
            done = time.monotonic()
            in_use = throttler.statistics().budgets_in_use
        assert provider.statistics().charged(OUTPUT_TOKENS) == generated
        assert generated <= max_tokens // 2
        refilled = (time.monotonic() - done + 1.0) * otpm / period  # a generous second
        assert generated - refilled <= in_use["output_tokens"] <= generated
        assert in_use["input_tokens"] <= 100
