"""The LLM presets' pure parts: estimates, usage, request bodies, what the presets build."""

from __future__ import annotations

import json

import pytest

from throttled_http import FeedbackPolicy, Rate, SyncThrottler, Throttler
from throttled_http.llm import (
    DEFAULT_MAX_TOKENS,
    anthropic_limits,
    estimate_tokens,
    openai_limits,
    read_usage,
    request_json,
)


class _Request:
    def __init__(self, content: object) -> None:
        self.content = content


class _Payload:
    def __init__(self, value: bytes) -> None:
        self._value = value


class _AiohttpRequest:
    def __init__(self, body: object) -> None:
        self.body = body


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status


def body(**fields: object) -> _Request:
    return _Request(json.dumps(fields).encode())


def test_estimate_follows_openais_rule() -> None:
    chat = {"messages": [{"role": "user", "content": "x" * 41}], "max_tokens": 16}
    assert estimate_tokens(chat) == (11, 16)
    parts = {
        "system": [{"type": "text", "text": "y" * 8}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 8}]}],
        "max_completion_tokens": 5,
    }
    assert estimate_tokens(parts) == (4, 5)
    assert estimate_tokens({"prompt": "abcd", "n": 3, "max_tokens": 10}) == (1, 30)
    assert estimate_tokens({"input": "abcd"}) == (1, DEFAULT_MAX_TOKENS)
    assert estimate_tokens({"input": "abcd"}, default_max_tokens=0) == (1, 0)
    assert estimate_tokens({"prompt": "a b c"}, tokenizer=lambda t: len(t.split()))[0] == 3


def test_usage_is_read_from_a_body_or_a_streams_end() -> None:
    openai = b'{"id": "x", "usage": {"prompt_tokens": 12, "completion_tokens": 34}}'
    assert read_usage(openai) == {"prompt_tokens": 12, "completion_tokens": 34}
    stream = (
        b'event: message_start\ndata: {"message": {"usage": {"input_tokens": 25, '
        b'"cache_read_input_tokens": 7, "output_tokens": 1}}}\n\n'
        b'data: {"delta": {"text": "say \\"output_tokens\\": 0"}}\n\n'
        b'event: message_delta\ndata: {"usage": {"output_tokens": 15}}\n\n'
    )
    assert read_usage(stream) == {"input_tokens": 25, "output_tokens": 15}
    assert read_usage(b"") == {}
    assert read_usage(b'"output_tokens": ' + b"9" * 500) == {}  # absurd: ignored


def test_request_json_reads_every_clients_body_and_never_raises() -> None:
    assert request_json(body(model="m")) == {"model": "m"}
    assert request_json(_AiohttpRequest(_Payload(b'{"a": 1}'))) == {"a": 1}
    assert request_json(_AiohttpRequest(b'{"a": 2}')) == {"a": 2}
    assert request_json(_Request(b"[1, 2]")) is None
    assert request_json(_Request(b"not json")) is None
    assert request_json(_Request(b"[" * 100_000)) is None
    assert request_json(_Request(None)) is None
    assert request_json(object()) is None

    class _Streaming:
        @property
        def content(self) -> bytes:
            raise RuntimeError("a stream that was not read")

    assert request_json(_Streaming()) is None


def test_openai_limits_build_a_bucket_of_requests_and_tokens() -> None:
    limits = openai_limits(rpm=500, tpm=30_000)
    throttler = limits["throttler"]
    assert isinstance(throttler, Throttler)
    assert throttler.bucket
    assert throttler.rates == (Rate(500, 60.0),)
    assert throttler.budgets == {"tokens": (Rate(30_000, 60.0),)}
    assert isinstance(limits["feedback"], FeedbackPolicy)
    assert limits["reconcile"] is None
    cost = limits["cost"]
    request = body(messages=[{"role": "user", "content": "x" * 400}], max_tokens=100)
    assert cost(request) == {"tokens": 200}
    assert cost(_Request(b"")) == 1
    assert isinstance(openai_limits(rpm=1, tpm=10, sync=True)["throttler"], SyncThrottler)
    own = openai_limits(rpm=1, tpm=100, estimate=lambda b: 7)["cost"]
    assert own(request) == {"tokens": 7}
    small = openai_limits(rpm=1, tpm=100)["cost"]  # the default output fits the bucket
    assert small(body(prompt="x" * 40)) == {"tokens": 100}


def test_anthropic_limits_reconcile_the_output() -> None:
    limits = anthropic_limits(rpm=50, itpm=20_000, otpm=4_000, period=1.0)
    throttler = limits["throttler"]
    assert throttler.budgets == {
        "input_tokens": (Rate(20_000, 1.0),),
        "output_tokens": (Rate(4_000, 1.0),),
    }
    request = body(messages=[{"role": "user", "content": "x" * 40}], max_tokens=10_000)
    assert limits["cost"](request) == {"input_tokens": 10, "output_tokens": 4_000}
    reconcile = limits["reconcile"]
    assert reconcile is not None
    tail = b'{"usage": {"input_tokens": 12, "output_tokens": 3}}'
    assert reconcile(_Response(200), tail) == {"input_tokens": 12, "output_tokens": 3}
    assert reconcile(_Response(429), b"") == {"input_tokens": 0, "output_tokens": 0}
    assert reconcile(_Response(200), b"no usage") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rpm": 0, "tpm": 1}, "rpm"),
        ({"rpm": 1, "tpm": 0}, "tpm"),
        ({"rpm": 1, "tpm": 1, "period": 0}, "period"),
        ({"rpm": 1, "tpm": 1, "retries": 101}, "retries"),
        ({"rpm": 1, "tpm": 10, "default_max_tokens": -1}, "default_max_tokens"),
    ],
)
def test_presets_check_their_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        openai_limits(**kwargs)  # type: ignore[call-overload]


async def test_an_estimate_above_the_budget_fails_fast() -> None:
    limits = openai_limits(rpm=10, tpm=100)
    cost = limits["cost"](body(prompt="x" * 400, max_tokens=1))
    with pytest.raises(ValueError, match=r"cost\['tokens'\] must be at most"):
        await limits["throttler"].open_entry(cost)


def test_a_preset_for_the_wrong_kind_of_transport_says_so() -> None:
    from throttled_http.httpx import SyncThrottledTransport, ThrottledTransport

    with pytest.raises(TypeError, match="pass sync=True for a threaded transport"):
        SyncThrottledTransport(**openai_limits(rpm=1, tpm=10))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="built with sync=True"):
        ThrottledTransport(**openai_limits(rpm=1, tpm=10, sync=True))  # type: ignore[arg-type]
