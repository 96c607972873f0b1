"""Presets for LLM APIs: requests *and* tokens per minute, as the providers count them.

```python
import httpx, openai
from throttled_http.httpx import ThrottledTransport
from throttled_http.llm import openai_limits

client = openai.AsyncOpenAI(
    http_client=httpx.AsyncClient(
        transport=ThrottledTransport(**openai_limits(rpm=500, tpm=30_000))
    )
)
```

Each preset returns the keyword arguments every transport and session of this package
takes (`throttler`, `feedback`, `cost`, `reconcile`), built from the provider's published
numbers:

* a throttler in **bucket mode** with a budget per token unit: OpenAI and Anthropic both
  document token buckets that refill continuously, so the client's bucket is the
  provider's own, with no sliding window making a batch wait a whole minute;
* a **token estimate** per request, read from its JSON body: `ceil(characters / 4)` of
  the prompt (as OpenAI documents its own estimate) plus `max_tokens` (or
  `max_completion_tokens`, `max_output_tokens`) for the output; pass `tokenizer=` to
  count the prompt exactly;
* for Anthropic, the output **reconciled** from the response's `usage` (or a stream's
  last `message_delta`): Anthropic counts the output tokens generated, not `max_tokens`,
  so what was charged up front and not used is credited back at once;
* a [`FeedbackPolicy`][throttled_http.FeedbackPolicy] that reads the provider's headers
  and re-sends refused POSTs (`retry_refused`), waiting for the `retry-after` it gives.

No HTTP client is imported here: the presets serve `throttled_http.httpx`,
`throttled_http.httpx2` and `throttled_http.aiohttp` alike (with `sync=True`, their
threaded transports).
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, Literal, TypedDict, overload

from ._feedback import FeedbackPolicy
from ._rates import Rate
from ._sync import SyncThrottler
from ._throttler import Throttler
from ._validate import MAX_INT, int_in_range, positive_float, positive_int

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._budgets import CostLike

__all__ = [
    "Limits",
    "SyncLimits",
    "anthropic_limits",
    "estimate_tokens",
    "openai_limits",
    "read_usage",
    "request_json",
]

DEFAULT_MAX_TOKENS = 4096
"""Output tokens charged for a request that names no `max_tokens`."""

_MAX_BODY = 32 * 1024 * 1024  # a request body larger than this is not parsed for an estimate


class Limits(TypedDict):
    """What a preset returns: the keyword arguments of every asyncio transport and session."""

    throttler: Throttler
    feedback: FeedbackPolicy
    cost: Callable[[Any], CostLike]
    reconcile: Callable[[Any, bytes], Mapping[str, int] | None] | None


class SyncLimits(TypedDict):
    """What a preset returns with `sync=True`: the keyword arguments of a threaded transport."""

    throttler: SyncThrottler
    feedback: FeedbackPolicy
    cost: Callable[[Any], CostLike]
    reconcile: Callable[[Any, bytes], Mapping[str, int] | None] | None


# -- reading requests and responses ----------------------------------------------------


def request_json(request: object) -> Mapping[str, Any] | None:
    """The JSON object a client's request sends, or `None` (no body, not JSON, a stream).

    Reads `request.content` (httpx, httpx2) or `request.body` (aiohttp's
    `ClientRequest`, whose bytes payload it unwraps). Never raises.
    """
    body: object = None
    try:
        body = getattr(request, "content", None)
    except Exception:  # httpx: a streaming body that was not read
        body = None
    if not isinstance(body, (bytes, bytearray)):
        body = getattr(request, "body", None)
        body = getattr(body, "_value", body)  # aiohttp's BytesPayload
    if not isinstance(body, (bytes, bytearray, memoryview)) or not 0 < len(body) <= _MAX_BODY:
        return None
    try:
        parsed = json.loads(bytes(body))
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _texts(value: object, depth: int = 0) -> int:
    """Characters of the text a prompt carries (strings, parts' `text`, nested lists)."""
    if depth > 20:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_texts(item, depth + 1) for item in value)
    if isinstance(value, dict):
        total = 0
        for key in ("content", "text", "input", "prompt", "arguments"):
            if key in value:
                total += _texts(value[key], depth + 1)
        return total
    return 0


def _prompt_text(body: Mapping[str, Any]) -> str | int:
    """The prompt's text, or its length when it is spread over parts."""
    parts = [body.get(k) for k in ("system", "instructions", "messages", "prompt", "input")]
    if all(p is None or isinstance(p, str) for p in parts):
        return "".join(p for p in parts if p)
    return sum(_texts(p) for p in parts)


def estimate_tokens(
    body: Mapping[str, Any],
    *,
    tokenizer: Callable[[str], int] | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
) -> tuple[int, int]:
    """`(input, output)` tokens a request may consume, from its JSON body.

    Input: `ceil(characters / 4)` of the system prompt, messages, prompt or input (as
    OpenAI documents its estimate), or `tokenizer(text)` when given one and the prompt is
    plain text. Output: `max_tokens`, `max_completion_tokens` or `max_output_tokens`,
    else `default_max_tokens`; times `n` choices.

    Examples:
        >>> estimate_tokens({"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 16})
        (10, 16)
    """
    text = _prompt_text(body)
    if isinstance(text, str) and tokenizer is not None:
        input_tokens = tokenizer(text)
    else:
        chars = len(text) if isinstance(text, str) else text
        input_tokens = math.ceil(chars / 4)
    output = default_max_tokens
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            output = value
            break
    choices = body.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices > 1:
        output *= choices
    return input_tokens, output


_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
# A key not preceded by a backslash: a quoted key, not one inside a string of the output.
_USAGE_RE = re.compile(
    rb'(?<!\\)"(' + b"|".join(k.encode() for k in _USAGE_KEYS) + rb')"\s*:\s*(\d{1,12})(?!\d)'
)


def read_usage(tail: bytes) -> dict[str, int]:
    """The last `usage` counts found in the end of a response body (JSON or a stream).

    Returns the last value of each of `prompt_tokens`, `completion_tokens`,
    `input_tokens` and `output_tokens` present: a JSON body's `usage`, an OpenAI
    stream's last chunk (with `stream_options={"include_usage": True}`), an Anthropic
    stream's `message_delta`. Never raises; `{}` when none is there.
    """
    found: dict[str, int] = {}
    for match in _USAGE_RE.finditer(tail):
        found[match.group(1).decode()] = int(match.group(2))
    return found


def _names_max_tokens(body: Mapping[str, Any]) -> bool:
    return any(key in body for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"))


def _status(response: object) -> int | None:
    for name in ("status_code", "status"):  # httpx and httpx2, aiohttp
        value = getattr(response, name, None)
        if isinstance(value, int):
            return value
    return None


# -- the presets -------------------------------------------------------------------------


def _policy(retries: int) -> FeedbackPolicy:
    retries = int_in_range("retries", retries, 0, 100)
    if not retries:
        return FeedbackPolicy()
    return FeedbackPolicy(retries=retries, retry_refused=True)


def _limits(
    sync: bool,
    rpm: int,
    period: float,
    budgets: dict[str, Rate],
    retries: int,
    cost: Callable[[Any], CostLike],
    reconcile: Callable[[Any, bytes], Mapping[str, int] | None] | None,
) -> Limits | SyncLimits:
    feedback = _policy(retries)
    if sync:
        return SyncLimits(
            throttler=SyncThrottler(rpm, period, budgets=budgets, bucket=True),
            feedback=feedback,
            cost=cost,
            reconcile=reconcile,
        )
    return Limits(
        throttler=Throttler(rpm, period, budgets=budgets, bucket=True),
        feedback=feedback,
        cost=cost,
        reconcile=reconcile,
    )


@overload
def openai_limits(
    *,
    rpm: int,
    tpm: int,
    period: float = ...,
    estimate: Callable[[Mapping[str, Any]], int] | None = ...,
    tokenizer: Callable[[str], int] | None = ...,
    default_max_tokens: int = ...,
    retries: int = ...,
    sync: Literal[False] = ...,
) -> Limits: ...
@overload
def openai_limits(
    *,
    rpm: int,
    tpm: int,
    period: float = ...,
    estimate: Callable[[Mapping[str, Any]], int] | None = ...,
    tokenizer: Callable[[str], int] | None = ...,
    default_max_tokens: int = ...,
    retries: int = ...,
    sync: Literal[True],
) -> SyncLimits: ...


def openai_limits(
    *,
    rpm: int,
    tpm: int,
    period: float = 60.0,
    estimate: Callable[[Mapping[str, Any]], int] | None = None,
    tokenizer: Callable[[str], int] | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    retries: int = 3,
    sync: bool = False,
) -> Limits | SyncLimits:
    """OpenAI's requests and tokens per minute, for `ThrottledTransport(**openai_limits(...))`.

    OpenAI counts a request's tokens against the TPM when it arrives, as its prompt's
    estimate plus `max_tokens`, and does not give back what the answer left unused; so
    this preset charges exactly that, and reconciles nothing. Buckets of `rpm` requests
    and `tpm` tokens refill continuously over `period` seconds.

    Args:
        rpm: requests per minute of your tier (per `period`), an int >= 1.
        tpm: tokens per minute, an int >= 1; a request estimated above it fails at once
            with `ValueError` (OpenAI would refuse it), never waits forever.
        period: the minute, in seconds (shorter in tests).
        estimate: your own `fn(json_body) -> tokens` in place of the default estimate.
        tokenizer: counts the prompt's tokens (`len(encoding.encode(text))`).
        default_max_tokens: output charged when a request names no `max_tokens` (at
            most what the prompt leaves of the bucket).
        retries: re-sends of a refused request (429), after the time the server gives.
        sync: a `SyncThrottler`, for `SyncThrottledTransport` and threads.
    """
    rpm = positive_int("rpm", rpm)
    tpm = positive_int("tpm", tpm)
    period = positive_float("period", period)
    default_max_tokens = int_in_range("default_max_tokens", default_max_tokens, 0, MAX_INT)

    def cost(request: object) -> CostLike:
        body = request_json(request)
        if body is None:
            return 1
        if estimate is not None:
            tokens = estimate(body)
        else:
            prompt, output = estimate_tokens(
                body, tokenizer=tokenizer, default_max_tokens=default_max_tokens
            )
            if not _names_max_tokens(body):  # a default of ours never makes it unsendable
                output = min(output, max(tpm - prompt, 0))
            tokens = prompt + output
        return {"tokens": tokens}

    return _limits(sync, rpm, period, {"tokens": Rate(tpm, period)}, retries, cost, None)


@overload
def anthropic_limits(
    *,
    rpm: int,
    itpm: int,
    otpm: int,
    period: float = ...,
    estimate_input: Callable[[Mapping[str, Any]], int] | None = ...,
    tokenizer: Callable[[str], int] | None = ...,
    default_max_tokens: int = ...,
    retries: int = ...,
    sync: Literal[False] = ...,
) -> Limits: ...
@overload
def anthropic_limits(
    *,
    rpm: int,
    itpm: int,
    otpm: int,
    period: float = ...,
    estimate_input: Callable[[Mapping[str, Any]], int] | None = ...,
    tokenizer: Callable[[str], int] | None = ...,
    default_max_tokens: int = ...,
    retries: int = ...,
    sync: Literal[True],
) -> SyncLimits: ...
def anthropic_limits(
    *,
    rpm: int,
    itpm: int,
    otpm: int,
    period: float = 60.0,
    estimate_input: Callable[[Mapping[str, Any]], int] | None = None,
    tokenizer: Callable[[str], int] | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    retries: int = 3,
    sync: bool = False,
) -> Limits | SyncLimits:
    """Anthropic's requests, input and output tokens per minute, reconciled from `usage`.

    Input tokens are charged at admission (estimated, then corrected to the response's
    `usage.input_tokens`); output tokens are charged as `max_tokens` up front (so a
    request never starts that the output bucket could not pay for) and credited back to
    what `usage.output_tokens` says was generated, as soon as the body (or the stream)
    ends. A refused request (429) is credited all its tokens: the server counted none.

    Args:
        rpm: requests per minute, an int >= 1.
        itpm: input tokens per minute, an int >= 1.
        otpm: output tokens per minute, an int >= 1.
        period, tokenizer, default_max_tokens, retries, sync: as for
            [`openai_limits`][throttled_http.llm.openai_limits].
        estimate_input: your own `fn(json_body) -> input tokens`.
    """
    rpm = positive_int("rpm", rpm)
    itpm = positive_int("itpm", itpm)
    otpm = positive_int("otpm", otpm)
    period = positive_float("period", period)
    default_max_tokens = int_in_range("default_max_tokens", default_max_tokens, 0, MAX_INT)

    def cost(request: object) -> CostLike:
        body = request_json(request)
        if body is None:
            return 1
        estimated, output = estimate_tokens(
            body, tokenizer=tokenizer, default_max_tokens=default_max_tokens
        )
        if estimate_input is not None:
            estimated = estimate_input(body)
        # The output is charged at most a whole bucket: Anthropic counts what is generated,
        # so a max_tokens above the OTPM is allowed there. An input estimated above the
        # ITPM can never be sent: ValueError, at once.
        return {"input_tokens": estimated, "output_tokens": min(output, otpm)}

    def reconcile(response: object, tail: bytes) -> Mapping[str, int] | None:
        if _status(response) == 429:
            return {"input_tokens": 0, "output_tokens": 0}
        usage = read_usage(tail)
        actual: dict[str, int] = {
            k: usage[k] for k in ("input_tokens", "output_tokens") if k in usage
        }
        return actual or None

    budgets = {"input_tokens": Rate(itpm, period), "output_tokens": Rate(otpm, period)}
    return _limits(sync, rpm, period, budgets, retries, cost, reconcile)
