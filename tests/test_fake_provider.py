"""The fake LLM provider, checked with the real openai and anthropic SDKs and our parsers.

No throttling here: every SDK client has `max_retries=0`, so each call is one request and
the fake's counts are exact. Limits that must refuse use a 60 s scaled minute (nothing
refills during a test); the tests on the 1 s minute assert only what holds at any speed.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import TYPE_CHECKING

import aiohttp
import anthropic
import openai
import pytest
from anthropic.types import MessageParam, RawMessageDeltaEvent
from conftest import max_in_window
from fake_provider import (
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    REQUESTS,
    TOKENS,
    FakeProvider,
    count_input_tokens,
    go_duration,
    lowest_level,
)

from throttled_http import Budget, Feedback, Rate, parse_feedback
from throttled_http._fields import parse_duration, parse_rfc3339

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

TEXT = "Say something about token buckets, please."  # 42 characters: 11 tokens
CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": TEXT}]
MESSAGES: list[MessageParam] = [{"role": "user", "content": TEXT}]
TIMEOUT = 10.0  # seconds: an SDK call that takes longer is a broken fake


@pytest.fixture(autouse=True)
def _no_sdk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide every SDK and proxy variable, so only the arguments given here apply."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("OPENAI_", "ANTHROPIC_")) or upper.endswith("_PROXY"):
            monkeypatch.delenv(name)


def openai_client(provider: FakeProvider) -> openai.AsyncOpenAI:
    """An async OpenAI client of `provider`, without retries."""
    return openai.AsyncOpenAI(api_key="test", base_url=provider.url, max_retries=0, timeout=TIMEOUT)


def anthropic_client(provider: FakeProvider) -> anthropic.AsyncAnthropic:
    """An async Anthropic client of `provider`, without retries."""
    return anthropic.AsyncAnthropic(
        api_key="test", base_url=provider.url, max_retries=0, timeout=TIMEOUT
    )


def budgets(feedback: Feedback) -> dict[str, Budget]:
    """The feedback's budgets by dimension."""
    return {budget.dimension: budget for budget in feedback.budgets}


# -- OpenAI --------------------------------------------------------------------------------


async def test_openai_create_parses_content_and_usage() -> None:
    """chat.completions.create parses the content, the finish reason and the usage."""
    async with FakeProvider(rpm=100, tpm=100_000) as provider, openai_client(provider) as client:
        completion = await client.chat.completions.create(
            model="gpt-test", messages=CHAT, max_tokens=50
        )
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == count_input_tokens(CHAT) == 11
    assert 10 <= usage.completion_tokens <= 50  # output_fraction (0.2, 1.0) of max_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    content = choice.message.content
    assert content is not None
    assert math.ceil(len(content) / 4) == usage.completion_tokens
    assert choice.finish_reason == ("length" if usage.completion_tokens == 50 else "stop")
    stats = provider.statistics()
    assert (stats.accepted, stats.refused_total, stats.bad) == (1, 0, 0)
    assert stats.charged(TOKENS) == 11 + 50  # the prompt estimate plus max_tokens


async def test_openai_stream_with_usage() -> None:
    """A stream with include_usage ends with a chunk of usage and no choices."""
    async with FakeProvider(rpm=100, tpm=100_000) as provider, openai_client(provider) as client:
        stream = await client.chat.completions.create(
            model="gpt-test",
            messages=CHAT,
            max_completion_tokens=40,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.usage is None for c in chunks[:-1]] == [True] * (len(chunks) - 1)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == 11
    assert last.usage.completion_tokens == math.ceil(len(text) / 4)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in {"stop", "length"}
    assert finishes[:-1] == [None] * (len(finishes) - 1)


async def test_openai_stream_without_usage() -> None:
    """Without include_usage no chunk has usage, and the stream ends at [DONE]."""
    async with FakeProvider(rpm=100, tpm=100_000) as provider, openai_client(provider) as client:
        stream = await client.chat.completions.create(
            model="gpt-test", messages=CHAT, max_tokens=16, stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert all(c.usage is None for c in chunks)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}


async def test_openai_burst_beyond_rpm_is_refused() -> None:
    """A burst beyond RPM gets RateLimitError of type "requests", with every header."""
    async with FakeProvider(rpm=3, tpm=100_000) as provider, openai_client(provider) as client:
        for _ in range(3):
            await client.chat.completions.create(model="gpt-test", messages=CHAT, max_tokens=5)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=CHAT, max_tokens=5)
    error = caught.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    headers = error.response.headers
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(headers["x-ratelimit-remaining-tokens"]) >= 100_000 - 3 * 16  # refills fast
    reset = parse_duration(headers["x-ratelimit-reset-requests"])
    assert reset is not None
    assert 59.0 < reset <= 60.0  # one request drips back in 20 s; all three in 60 s
    assert int(headers["retry-after"]) == 20  # until one request is back, rounded up
    assert "retry-after-ms" not in headers
    stats = provider.statistics()
    assert stats.accepted == 3
    assert stats.refused == {REQUESTS: 1, TOKENS: 0}
    assert [r.kind for r in stats.refusals] == [REQUESTS]


async def test_openai_token_limit_counts_max_tokens() -> None:
    """TPM is charged prompt estimate + max_tokens at admission, whatever is generated."""
    async with (
        FakeProvider(rpm=100, tpm=100, output_fraction=(0.2, 0.2), retry_after_ms=True) as provider,
        openai_client(provider) as client,
    ):
        first = await client.chat.completions.create(model="gpt-test", messages=CHAT, max_tokens=60)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=CHAT, max_tokens=60)
    assert first.usage is not None
    assert first.usage.completion_tokens == 12  # 20 % of 60 generated ...
    assert provider.statistics().charged(TOKENS) == 71  # ... but 11 + 60 charged
    error = caught.value
    assert error.type == "tokens"
    headers = error.response.headers
    assert 29 <= int(headers["x-ratelimit-remaining-tokens"]) <= 30  # 100 - 71, refilling
    assert 24_000 <= int(headers["retry-after-ms"]) <= 42 * 600  # 42 more at 100/min
    assert provider.statistics().refused == {REQUESTS: 0, TOKENS: 1}


async def test_openai_count_refused_takes_a_request() -> None:
    """With count_refused, a request refused by TPM still spends one request."""
    async with (
        FakeProvider(rpm=5, tpm=20, count_refused=True) as provider,
        openai_client(provider) as client,
    ):
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=CHAT, max_tokens=60)
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "4"
    assert provider.statistics().charged(REQUESTS) == 1


async def test_openai_malformed_request_is_a_400() -> None:
    """A request without messages is a BadRequestError, with headers, charging nothing."""
    async with FakeProvider(rpm=5, tpm=1000) as provider, openai_client(provider) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=[], max_tokens=5)
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "5"
    stats = provider.statistics()
    assert (stats.accepted, stats.refused_total, stats.bad, stats.charges) == (0, 0, 1, ())


# -- Anthropic -----------------------------------------------------------------------------


async def test_anthropic_create_parses() -> None:
    """messages.create parses the content, the stop reason and the usage."""
    async with (
        FakeProvider("anthropic", rpm=100, itpm=10_000, otpm=10_000) as provider,
        anthropic_client(provider) as client,
    ):
        message = await client.messages.create(
            model="claude-test", max_tokens=50, system="Be brief.", messages=MESSAGES
        )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-test"
    assert message.id.startswith("msg_")
    block = message.content[0]
    assert block.type == "text"
    assert message.usage.input_tokens == count_input_tokens(MESSAGES, "Be brief.") == 13
    assert 10 <= message.usage.output_tokens <= 50
    assert math.ceil(len(block.text) / 4) == message.usage.output_tokens
    capped = message.usage.output_tokens == 50
    assert message.stop_reason == ("max_tokens" if capped else "end_turn")
    stats = provider.statistics()
    assert stats.charged(INPUT_TOKENS) == 13
    assert stats.charged(OUTPUT_TOKENS) == message.usage.output_tokens  # actual, not max


async def test_anthropic_stream() -> None:
    """messages.stream yields the text, and its final message carries the output tokens."""
    async with (
        FakeProvider("anthropic", rpm=100, itpm=10_000, otpm=10_000) as provider,
        anthropic_client(provider) as client,
        client.messages.stream(model="claude-test", max_tokens=64, messages=MESSAGES) as stream,
    ):
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1
    assert final.content[0].type == "text"
    assert final.content[0].text == "".join(pieces)
    assert final.usage.input_tokens == 11
    assert final.usage.output_tokens == math.ceil(len("".join(pieces)) / 4)
    assert final.stop_reason in {"end_turn", "max_tokens"}
    output = [c for c in provider.statistics().charges if c.kind == OUTPUT_TOKENS]
    assert len(output) == len(pieces)  # charged chunk by chunk, as generated
    assert sum(c.tokens for c in output) == final.usage.output_tokens


async def test_anthropic_raw_stream_events() -> None:
    """A raw stream has Anthropic's event sequence, with usage on message_delta."""
    async with (
        FakeProvider("anthropic", rpm=100, itpm=10_000, otpm=10_000) as provider,
        anthropic_client(provider) as client,
    ):
        stream = await client.messages.create(
            model="claude-test", max_tokens=8, messages=MESSAGES, stream=True
        )
        events = [event async for event in stream]
    kinds = [event.type for event in events]
    deltas = kinds.count("content_block_delta")
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    ending = events[-2]
    assert isinstance(ending, RawMessageDeltaEvent)
    assert 2 <= ending.usage.output_tokens <= 8


async def test_anthropic_burst_beyond_rpm_is_refused() -> None:
    """A burst beyond RPM gets RateLimitError with the rate_limit_error body and headers."""
    async with (
        FakeProvider("anthropic", rpm=2, itpm=10_000, otpm=10_000) as provider,
        anthropic_client(provider) as client,
    ):
        for _ in range(2):
            await client.messages.create(model="claude-test", max_tokens=5, messages=MESSAGES)
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(model="claude-test", max_tokens=5, messages=MESSAGES)
    error = caught.value
    assert error.status_code == 429
    assert isinstance(error.body, dict)
    assert error.body["type"] == "error"
    assert error.body["error"]["type"] == "rate_limit_error"
    headers = error.response.headers
    assert headers["anthropic-ratelimit-requests-limit"] == "2"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    for part in ("requests", "input-tokens", "output-tokens", "tokens"):
        for field in ("limit", "remaining", "reset"):
            assert f"anthropic-ratelimit-{part}-{field}" in headers
    assert parse_rfc3339(headers["anthropic-ratelimit-requests-reset"]) is not None
    assert int(headers["retry-after"]) == 30
    assert headers["x-should-retry"] == "true"
    assert provider.statistics().refused == {REQUESTS: 1, INPUT_TOKENS: 0, OUTPUT_TOKENS: 0}


async def test_anthropic_output_goes_negative_then_refuses() -> None:
    """Output is charged as generated, past the bucket; the next request is then refused."""
    async with (
        FakeProvider(
            "anthropic", rpm=100, itpm=10_000, otpm=10, output_fraction=(1.0, 1.0)
        ) as provider,
        anthropic_client(provider) as client,
    ):
        message = await client.messages.create(
            model="claude-test", max_tokens=50, messages=MESSAGES
        )
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(model="claude-test", max_tokens=5, messages=MESSAGES)
    assert message.usage.output_tokens == 50
    assert message.stop_reason == "max_tokens"
    headers = caught.value.response.headers
    assert headers["anthropic-ratelimit-output-tokens-remaining"] == "0"
    stats = provider.statistics()
    assert stats.refused[OUTPUT_TOKENS] == 1
    low = lowest_level(
        stats.charges, OUTPUT_TOKENS, capacity=10, period=60.0, start=provider.started_at
    )
    assert low == pytest.approx(-40.0, abs=0.1)


async def test_anthropic_reserve_output() -> None:
    """With reserve_output, max_tokens is taken at admission and the rest given back."""
    async with (
        FakeProvider(
            "anthropic",
            rpm=100,
            itpm=10_000,
            otpm=100,
            output_fraction=(0.5, 0.5),
            reserve_output=True,
        ) as provider,
        anthropic_client(provider) as client,
    ):
        message = await client.messages.create(
            model="claude-test", max_tokens=80, messages=MESSAGES
        )
        with pytest.raises(anthropic.RateLimitError):
            await client.messages.create(model="claude-test", max_tokens=80, messages=MESSAGES)
    assert message.usage.output_tokens == 40
    output = [c.tokens for c in provider.statistics().charges if c.kind == OUTPUT_TOKENS]
    assert output == [80, -40]


async def test_stream_closed_early_charges_only_what_was_generated() -> None:
    """A client that stops reading mid-stream is charged only the output generated."""
    async with (
        FakeProvider(
            "anthropic",
            rpm=100,
            itpm=10_000,
            otpm=10_000,
            latency=2.0,  # 0.25 s between the 8 chunks: the close lands mid-stream
            output_fraction=(1.0, 1.0),
            reserve_output=True,
        ) as provider,
        anthropic_client(provider) as client,
    ):
        async with client.messages.stream(
            model="claude-test", max_tokens=64, messages=MESSAGES
        ) as stream:
            async for _ in stream.text_stream:
                break

        async def settled() -> list[int]:
            while True:
                output = [
                    c.tokens for c in provider.statistics().charges if c.kind == OUTPUT_TOKENS
                ]
                if len(output) == 2:
                    return output
                await asyncio.sleep(0.01)

        reserved, returned = await asyncio.wait_for(settled(), TIMEOUT)
    assert reserved == 64
    assert -64 < returned < 0  # some of the reservation went unused


async def test_anthropic_malformed_request_is_a_400() -> None:
    """A request without max_tokens is an invalid_request_error, charging nothing."""
    async with (
        FakeProvider("anthropic", rpm=5, itpm=100, otpm=100) as provider,
        aiohttp.ClientSession() as session,
        session.post(f"{provider.url}/v1/messages", json={"messages": MESSAGES}) as response,
    ):
        body = await response.json()
        assert response.status == 400
        assert response.headers["anthropic-ratelimit-requests-remaining"] == "5"
    assert body["error"]["type"] == "invalid_request_error"
    assert provider.statistics().bad == 1


# -- the buckets on a 1 s scaled minute ----------------------------------------------------


async def test_concurrent_burst_never_goes_over_the_buckets() -> None:
    """However fast the requests come, what is admitted fits the bucket at every moment."""
    rpm, tpm, period = 10, 400, 0.5
    async with (
        FakeProvider(rpm=rpm, tpm=tpm, period=period) as provider,
        openai_client(provider) as client,
    ):

        async def one() -> bool:
            try:
                await client.chat.completions.create(model="gpt-test", messages=CHAT, max_tokens=20)
            except openai.RateLimitError:
                return False
            return True

        outcomes: list[bool] = []
        deadline = time.monotonic() + 1.5 * period
        while time.monotonic() < deadline:
            outcomes += await asyncio.gather(*(one() for _ in range(8)))
    stats = provider.statistics()
    assert stats.accepted == outcomes.count(True) >= rpm
    assert stats.refused_total == outcomes.count(False) > 0
    for kind, limit in ((REQUESTS, rpm), (TOKENS, tpm)):
        start = provider.started_at
        low = lowest_level(stats.charges, kind, capacity=limit, period=period, start=start)
        assert low >= -1e-6
        charges = [c for c in stats.charges if c.kind == kind]
        times = [c.time for c in charges]
        # A full bucket plus one period's refill: the most any window of `period` holds.
        assert max_in_window(times, period, [c.tokens for c in charges]) <= 2 * limit


async def test_output_lengths_are_seeded() -> None:
    """The same seed and arrival order give the same output lengths; another seed differs."""

    async def lengths(seed: int) -> list[int]:
        async with (
            FakeProvider(rpm=100, tpm=100_000, seed=seed) as provider,
            openai_client(provider) as client,
        ):
            found = []
            for _ in range(6):
                done = await client.chat.completions.create(
                    model="gpt-test", messages=CHAT, max_tokens=100
                )
                assert done.usage is not None
                found.append(done.usage.completion_tokens)
            return found

    first, again, other = await lengths(7), await lengths(7), await lengths(8)
    assert first == again
    assert first != other
    assert all(20 <= n <= 100 for n in first + other)


async def test_streaming_latency_is_spread_over_the_chunks() -> None:
    """A stream takes at least `latency`, and its chunks do not all arrive at once."""
    async with (
        FakeProvider(rpm=100, tpm=100_000, latency=0.2) as provider,
        openai_client(provider) as client,
    ):
        began = time.monotonic()
        stream = await client.chat.completions.create(
            model="gpt-test", messages=CHAT, max_tokens=64, stream=True
        )
        arrivals = [time.monotonic() async for _ in stream]
    assert arrivals[-1] - began >= 0.2 * 0.9  # asyncio.sleep never wakes early
    assert arrivals[-1] - arrivals[0] > 0.05


# -- the sync clients, against a server in a thread ----------------------------------------


def test_sync_openai_against_thread() -> None:
    """openai.OpenAI talks to a fake served from a background thread, 429 included."""
    with (
        FakeProvider(rpm=2, tpm=100_000) as provider,
        openai.OpenAI(
            api_key="test", base_url=provider.url, max_retries=0, timeout=TIMEOUT
        ) as client,
    ):
        done = client.chat.completions.create(model="gpt-test", messages=CHAT, max_tokens=9)
        chunks = list(
            client.chat.completions.create(
                model="gpt-test", messages=CHAT, max_tokens=9, stream=True
            )
        )
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-test", messages=CHAT, max_tokens=9)
    assert done.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}
    assert provider.statistics().refused[REQUESTS] == 1
    with pytest.raises(RuntimeError, match="not running"):
        _ = provider.url


def test_sync_anthropic_against_thread() -> None:
    """anthropic.Anthropic talks to a fake served from a background thread."""
    with (
        FakeProvider("anthropic", rpm=2, itpm=1000, otpm=1000) as provider,
        anthropic.Anthropic(
            api_key="test", base_url=provider.url, max_retries=0, timeout=TIMEOUT
        ) as client,
    ):
        message = client.messages.create(model="claude-test", max_tokens=9, messages=MESSAGES)
        with client.messages.stream(model="claude-test", max_tokens=9, messages=MESSAGES) as s:
            text = "".join(s.text_stream)
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model="claude-test", max_tokens=9, messages=MESSAGES)
    assert message.content[0].type == "text"
    assert text
    assert provider.statistics().accepted == 2


# -- our own parsers on the fake's headers -------------------------------------------------


async def test_parse_feedback_reads_openai_headers() -> None:
    """parse_feedback reads OpenAI's limits, remaining counts and resets, and the 429."""
    async with (
        FakeProvider(rpm=4, tpm=1000, retry_after_ms=True) as provider,
        openai_client(provider) as client,
    ):
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-test", messages=CHAT, max_tokens=39
        )
        for _ in range(3):
            await client.chat.completions.create(model="gpt-test", messages=CHAT, max_tokens=39)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=CHAT, max_tokens=39)
    fine = parse_feedback(raw.status_code, raw.headers, now=time.time())
    read = budgets(fine)
    assert read[REQUESTS].limit == 4
    assert read[REQUESTS].remaining == 3
    assert read[TOKENS].limit == 1000
    assert read[TOKENS].remaining == 950
    assert all(b.bucket and b.window is None for b in read.values())
    assert read[REQUESTS].reset == pytest.approx(15.0, abs=0.1)  # one request of 4/min
    assert read[TOKENS].reset == pytest.approx(3.0, abs=0.1)  # 50 tokens of 1000/min
    assert (fine.delay, fine.remaining, fine.quota) == (None, 3, ())

    refused = parse_feedback(429, caught.value.response.headers, now=time.time())
    assert refused.throttled
    assert budgets(refused)[REQUESTS].remaining == 0
    assert 800 <= (budgets(refused)[TOKENS].remaining or 0) <= 850  # 1000 - 4 * 50, refilling
    assert refused.reason in {"retry-after-ms", "x-ratelimit-reset-requests"}
    assert refused.delay == pytest.approx(15.0, abs=0.2)  # until one request is back


async def test_parse_feedback_reads_anthropic_headers() -> None:
    """parse_feedback reads all four Anthropic dimensions and the documented minute."""
    async with (
        FakeProvider(
            "anthropic", rpm=6, itpm=600, otpm=120, output_fraction=(0.5, 0.5)
        ) as provider,
        anthropic_client(provider) as client,
    ):
        raw = await client.messages.with_raw_response.create(
            model="claude-test", max_tokens=60, messages=MESSAGES
        )
    message = await raw.parse()
    assert message.usage.output_tokens == 30
    feedback = parse_feedback(raw.status_code, raw.headers, now=time.time())
    read = budgets(feedback)
    expected = {
        REQUESTS: (6, 5, 10.0),
        INPUT_TOKENS: (600, 589, 1.1),
        OUTPUT_TOKENS: (120, 90, 15.0),
        TOKENS: (720, 679, 15.0),
    }
    for kind, (limit, remaining, reset) in expected.items():
        budget = read[kind]
        assert (budget.limit, budget.remaining, budget.window, budget.bucket) == (
            limit,
            remaining,
            60.0,
            True,
        )
        assert budget.reset is not None
        # The Date header has whole seconds and the parser trusts the later clock.
        assert reset - 0.2 <= budget.reset <= reset + 1.1
    assert feedback.quota == (Rate(6, 60.0),)
    assert feedback.delay is None


# -- the module's own pieces ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0.0, "0s", id="zero"),
        pytest.param(0.0201, "21ms", id="millis-rounded-up"),
        pytest.param(1.0, "1s", id="second"),
        pytest.param(17.5, "17.5s", id="fraction"),
        pytest.param(360.0, "6m0s", id="minutes"),
        pytest.param(252.172, "4m12.172s", id="minutes-fraction"),
        pytest.param(3723.0, "1h2m3s", id="hours"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    """Durations print as Go does, and our parser reads them back, never shorter."""
    assert go_duration(seconds) == text
    back = parse_duration(text)
    assert back is not None
    assert back >= seconds - 1e-9


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"rpm": 5}, TypeError, id="openai-without-tpm"),
        pytest.param({"rpm": 5, "tpm": 9, "itpm": 9}, TypeError, id="openai-with-itpm"),
        pytest.param({"rpm": 5, "tpm": 9, "reserve_output": True}, TypeError, id="openai-reserve"),
        pytest.param({"rpm": 0, "tpm": 9}, ValueError, id="zero-rpm"),
        pytest.param({"rpm": 5, "tpm": 9, "period": 0.0}, ValueError, id="zero-period"),
        pytest.param(
            {"rpm": 5, "tpm": 9, "output_fraction": (0.5, 0.2)}, ValueError, id="fraction-order"
        ),
    ],
)
def test_openai_arguments_are_validated(kwargs: dict[str, object], error: type[Exception]) -> None:
    """A missing, unused or out-of-range argument is refused at construction."""
    with pytest.raises(error):
        FakeProvider(**kwargs)  # type: ignore[arg-type]


def test_anthropic_arguments_are_validated() -> None:
    """Anthropic needs itpm and otpm, and refuses OpenAI's tpm and options."""
    with pytest.raises(TypeError, match="needs otpm"):
        FakeProvider("anthropic", rpm=5, itpm=9)
    with pytest.raises(TypeError, match="tpm does not apply"):
        FakeProvider("anthropic", rpm=5, itpm=9, otpm=9, tpm=9)
    with pytest.raises(TypeError, match="count_refused"):
        FakeProvider("anthropic", rpm=5, itpm=9, otpm=9, count_refused=True)
