"""A local fake of OpenAI's and Anthropic's rate-limited APIs, for the real SDKs to talk to.

`FakeProvider` is an aiohttp server on `127.0.0.1` (a free port) that answers
`POST /v1/chat/completions` as OpenAI does or `POST /v1/messages` as Anthropic does, with
the JSON and the server-sent events the `openai` and `anthropic` SDKs parse, and limits
requests and tokens the way the two providers document:

* **Token buckets.** Each limit is a bucket holding up to the per-minute limit, refilled
  continuously at `limit / period` per second and full at the start ("capacity
  continuously replenishes", in both providers' words). `period` is one scaled minute:
  60.0 behaves like the real service; tests and benchmarks use 1-2 seconds. A request is
  refused with a 429 when a bucket it needs does not hold enough; a refusal charges
  nothing (unless `count_refused`, below).
* **OpenAI** (`rpm`, `tpm`): one request from the RPM bucket, and from the TPM bucket its
  prompt estimate plus `max_completion_tokens` (or `max_tokens`), charged at admission,
  as OpenAI's cookbook (its parallel request processor) counts a request. The rate-limit
  guide words it as "the maximum of max_tokens and the estimated number of tokens based
  on the character count of your request"; the sum is the stricter reading, and what
  the brief of this fake asks. What the response then generates does not change the
  charge. OpenAI also says that
  unsuccessful requests count against the per-minute limit: `count_refused=True` takes
  one request from the RPM bucket for a request a token limit refused.
* **Anthropic** (`rpm`, `itpm`, `otpm`): one request, and the input tokens from the ITPM
  bucket, at admission. Output tokens (OTPM) are charged *as they are generated*: the
  actual output count, when the response is produced (streaming: chunk by chunk), which
  may take the bucket below zero; a request is refused when the OTPM bucket holds less
  than one token at its arrival. Anthropic's rate-limit page has also described OTPM as
  estimated from `max_tokens` at the start of a request and corrected to the actual count
  at its end; `reserve_output=True` does that (admission needs `max_tokens` in the bucket,
  takes it, and gives back the unused part when the response ends). The search corpus
  held only copies of that page, not a current statement either way, so both are here;
  the default charges output as generated.

Token counts are estimates, the same on both sides: a request's input is
`ceil(characters of every text content, the system prompt included / 4)`
(`count_input_tokens`). A response generates a deterministic pseudo-random number of
tokens between `output_fraction` of `max_tokens` (default 20 % to 100 %; seeded, so one
arrival order gives one sequence), as real models usually stop before the cap. Each
output token is a 4-character word, so the text's own estimate is the reported count.

**Headers**, on every response (200, 429 and 400 alike), computed when it is sent:

* OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the reset as a Go
  duration (`20ms`, `1s`, `6m0s`, `4m12.172s`) until the bucket is full; `x-request-id`.
* Anthropic: `anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-{limit,
  remaining,reset}`, the reset an RFC 3339 time (with milliseconds, RFC 3339 §5.6
  `time-secfrac`, since a scaled minute needs them; the real service sends whole
  seconds) when the bucket is full. The combined `tokens` dimension is the sum of the
  input and output buckets (limit, remaining) and the later reset, as a real response
  shows (`tokens-limit: 96000` beside `input-tokens-limit: 80000` and
  `output-tokens-limit: 16000`). Remaining counts are not rounded to thousands as the real
  ones are, so small scaled limits stay readable; `request-id`.
* On a 429: `retry-after` in whole seconds (at least 1) until the refusing limit would
  admit the request, and `retry-after-ms` too when `retry_after_ms=True`. Azure OpenAI
  sends that one and both SDKs read it first; no evidence was found that OpenAI or
  Anthropic send it, so it is off by default (with `period=1.0`, a whole-second
  `retry-after` is a whole scaled minute). Anthropic's 429 also has
  `x-should-retry: true`.

Error bodies: OpenAI `{"error": {"message", "type": "requests" | "tokens", "param": null,
"code": "rate_limit_exceeded"}}`; Anthropic `{"type": "error", "error": {"type":
"rate_limit_error", "message"}, "request_id"}`; a malformed request is a 400 in the same
shapes (`invalid_request_error`) and charges nothing.

**Running it.** `async with FakeProvider(...) as provider:` serves from the current event
loop; `with FakeProvider(...) as provider:` serves from a background thread with its own
loop, for the synchronous SDK clients (or `start_in_thread()` / `stop_thread()`).
`provider.url` is the SDK's `base_url`: `http://127.0.0.1:PORT/v1` for OpenAI (the SDK
appends `/chat/completions`), `http://127.0.0.1:PORT` for Anthropic (it appends
`/v1/messages`). `provider.statistics()` counts what was accepted and refused, by limit,
and logs every charge to a bucket, so a test can check that nothing went over a bucket
(`lowest_level`). Times are `time.monotonic()`, the clock of asyncio's default loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Self, final

from aiohttp import web

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "INPUT_TOKENS",
    "OUTPUT_TOKENS",
    "REQUESTS",
    "TOKENS",
    "Charge",
    "FakeProvider",
    "FakeStatistics",
    "Refusal",
    "TokenBucket",
    "count_input_tokens",
    "go_duration",
    "lowest_level",
]

ProviderName = Literal["openai", "anthropic"]

# The limits, named as throttled_http's Budget.dimension names them.
REQUESTS: Final = "requests"
TOKENS: Final = "tokens"
INPUT_TOKENS: Final = "input_tokens"
OUTPUT_TOKENS: Final = "output_tokens"

_CHUNKS: Final = 8  # content chunks of a streamed response, at most
_WORDS: Final = ("lor ", "ips ", "dol ", "sit ", "ame ", "con ", "sec ", "adi ")  # 1 token each
_DEFAULT_MAX_TOKENS: Final = 1024  # OpenAI's charge when a request names no max_tokens
_STOP_TIMEOUT: Final = 10.0  # seconds stop_thread() waits for the server thread


# -- the bucket ----------------------------------------------------------------------------


@final
class TokenBucket:
    """A bucket of `capacity` tokens, refilled continuously at `capacity / period` per second.

    It starts full and never holds more than `capacity`. `take` may drive it below zero
    (output tokens are charged after the fact); it then refills from there.
    """

    __slots__ = ("_level", "_stamp", "capacity", "rate")

    def __init__(self, capacity: int, period: float, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / period  # tokens per second
        self._level = float(capacity)
        self._stamp = now

    def level(self, now: float) -> float:
        """What the bucket holds at `now` (seconds, monotonic; may be negative)."""
        if now > self._stamp:
            self._level = min(float(self.capacity), self._level + (now - self._stamp) * self.rate)
            self._stamp = now
        return self._level

    def take(self, now: float, amount: float) -> None:
        """Remove `amount` (a negative amount gives back, up to `capacity`)."""
        self._level = min(float(self.capacity), self.level(now) - amount)

    def remaining(self, now: float) -> int:
        """Whole tokens left, never below 0: what the `remaining` headers say."""
        return max(0, math.floor(self.level(now)))

    def wait(self, now: float, amount: float) -> float:
        """Seconds until the bucket holds `amount` (its capacity, if `amount` is more)."""
        need = min(amount, float(self.capacity))
        return max(0.0, (need - self.level(now)) / self.rate)

    def until_full(self, now: float) -> float:
        """Seconds until the bucket is full again: what the `reset` headers say."""
        return max(0.0, (self.capacity - self.level(now)) / self.rate)

    def __repr__(self) -> str:
        return f"<TokenBucket {self._level:.3f}/{self.capacity} at {self.rate:g}/s>"


def lowest_level(
    charges: Iterable[Charge], kind: str, *, capacity: int, period: float, start: float
) -> float:
    """The lowest a full bucket of `capacity` (started at `start`) falls under `charges`.

    Replays the charges of limit `kind` in time order on a fresh
    `TokenBucket`: a result `>= 0` means that no stretch of time took more than the
    bucket allows, `capacity + (capacity / period) * length`. Output tokens may go below.
    """
    bucket = TokenBucket(capacity, period, start)
    low = float(capacity)
    for charge in sorted((c for c in charges if c.kind == kind), key=lambda c: c.time):
        bucket.take(charge.time, charge.tokens)
        low = min(low, bucket.level(charge.time))
    return low


# -- statistics ----------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Charge:
    """One amount taken from one bucket.

    Attributes:
        time: when, `time.monotonic()` seconds: the arrival for an admission charge,
            the moment of generation for output tokens.
        kind: the bucket: `"requests"`, `"tokens"`, `"input_tokens"` or `"output_tokens"`.
        tokens: how much (1 for a request); negative for unused output given back
            (`reserve_output`).
    """

    time: float
    kind: str
    tokens: int


@final
@dataclass(frozen=True, slots=True)
class Refusal:
    """One request refused with a 429.

    Attributes:
        time: its arrival, `time.monotonic()` seconds.
        kind: the limit that refused it (the first one short, in header order).
        requested: what the request needed of that limit.
    """

    time: float
    kind: str
    requested: int


@final
@dataclass(frozen=True, slots=True)
class FakeStatistics:
    """What the fake has seen since it started.

    Attributes:
        accepted: requests admitted (answered 200).
        refused: requests refused with a 429, by the limit that refused them (every limit
            of the provider is a key).
        bad: requests answered 400 (malformed; never charged).
        charges: every amount taken from a bucket, in the order taken.
        refusals: every 429, in order.
    """

    accepted: int
    refused: Mapping[str, int]
    bad: int
    charges: tuple[Charge, ...]
    refusals: tuple[Refusal, ...]

    @property
    def refused_total(self) -> int:
        """All 429s, whatever the limit."""
        return sum(self.refused.values())

    def charged(self, kind: str) -> int:
        """The net total taken from bucket `kind`."""
        return sum(c.tokens for c in self.charges if c.kind == kind)


# -- requests ------------------------------------------------------------------------------


class _BadRequest(Exception):
    """A request body the fake cannot serve; the message goes into the 400."""


@dataclass(frozen=True, slots=True)
class _Call:
    """What the fake reads of one request."""

    model: str
    input_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool


def _chars(content: object) -> int:
    """Characters of text in a message's content: a string, or a list of text parts."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                total += len(text) if isinstance(text, str) else _chars(part.get("content"))
        return total
    return 0


def count_input_tokens(messages: Sequence[Mapping[str, object]], system: object = None) -> int:
    """The fake's input tokens: `ceil(characters of all text content / 4)`.

    Counts each message's `content` (a string or a list of `{"type": "text", "text": ...}`
    parts) and Anthropic's `system` (a string or such a list).

    >>> count_input_tokens([{"role": "user", "content": "Hello"}])
    2
    >>> count_input_tokens([{"role": "user", "content": "abcd"}], system="efgh")
    2
    """
    chars = _chars(system) + sum(_chars(m.get("content")) for m in messages)
    return math.ceil(chars / 4)


def _parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise _BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


def _positive_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _BadRequest(f"{name} must be a positive integer, got {value!r}")
    return value


def _messages(body: Mapping[str, Any]) -> list[Mapping[str, object]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("messages must be a non-empty list")
    if not all(isinstance(m, Mapping) for m in messages):
        raise _BadRequest("each message must be an object")
    return messages


# -- formats -------------------------------------------------------------------------------


def go_duration(seconds: float) -> str:
    """`seconds` as Go's `time.Duration.String()` prints it, as OpenAI's resets are sent.

    Rounded up to the millisecond, so it never promises a refill too early.

    >>> go_duration(0.02), go_duration(1.0), go_duration(360.0), go_duration(252.1715)
    ('20ms', '1s', '6m0s', '4m12.172s')
    >>> go_duration(0.0), go_duration(3723.5)
    ('0s', '1h2m3.5s')
    """
    millis = math.ceil(round(seconds * 1000.0, 6))
    if millis <= 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _rfc3339(when: float) -> str:
    """A Unix time as RFC 3339 UTC with milliseconds, rounded up: `...T12:00:00.250Z`."""
    millis = math.ceil(when * 1000.0)
    moment = datetime.fromtimestamp(millis // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis % 1000:03d}Z"


def _words(count: int) -> list[str]:
    """`count` one-token words; joined they are the response text (no trailing space)."""
    words = [_WORDS[i % len(_WORDS)] for i in range(count)]
    if words:
        words[-1] = words[-1].rstrip()
    return words


def _pieces(words: list[str]) -> list[tuple[str, int]]:
    """The words in at most `_CHUNKS` pieces of near-equal size: (text, tokens)."""
    count = min(_CHUNKS, len(words))
    pieces = []
    for i in range(count):
        part = words[len(words) * i // count : len(words) * (i + 1) // count]
        pieces.append(("".join(part), len(part)))
    return pieces


def _sse(data: Mapping[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


# -- the wire formats ----------------------------------------------------------------------


class _Wire:
    """One provider's wire format: its endpoint, request, headers, JSON and events."""

    path: ClassVar[str]  # the endpoint, under the root
    prefix: ClassVar[str]  # of the SDK's base_url, after the root
    limits: ClassVar[tuple[str, ...]]  # the limit kinds, in header order

    def call(self, raw: bytes) -> _Call:
        """What the fake reads of a request body; `_BadRequest` if it cannot."""
        raise NotImplementedError

    def headers(self, buckets: Mapping[str, TokenBucket], now: float) -> dict[str, str]:
        """The rate-limit headers for the buckets at `now` (monotonic)."""
        raise NotImplementedError

    def body(self, call: _Call, output: int, ident: str) -> dict[str, Any]:
        """A whole response generating `output` tokens."""
        raise NotImplementedError

    def events(
        self, call: _Call, output: int, ident: str, pieces: list[tuple[str, int]]
    ) -> list[tuple[bytes, int]]:
        """A streamed response: each event with the output tokens it carries."""
        raise NotImplementedError

    def refusal(self, call: _Call, kind: str, limit: int, wait: float) -> dict[str, Any]:
        """The body of a 429 from limit `kind`, `wait` seconds from admitting the call."""
        raise NotImplementedError

    def invalid(self, message: str) -> dict[str, Any]:
        """The body of a 400."""
        raise NotImplementedError


@final
class _OpenAIWire(_Wire):
    """`POST /v1/chat/completions`: chat.completion JSON, data-only SSE chunks."""

    path = "/v1/chat/completions"
    prefix = "/v1"
    limits = (REQUESTS, TOKENS)
    _SHORT: Final = {REQUESTS: "RPM", TOKENS: "TPM"}

    def __init__(self, default_max_tokens: int) -> None:
        self._default_max_tokens = default_max_tokens

    def call(self, raw: bytes) -> _Call:
        body = _parse_body(raw)
        messages = _messages(body)
        if body.get("n", 1) != 1:
            raise _BadRequest("this fake serves n=1 only")
        most = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
        options = body.get("stream_options")
        return _Call(
            model=str(body.get("model", "gpt-fake")),
            input_tokens=count_input_tokens(messages),
            max_tokens=most or self._default_max_tokens,
            stream=body.get("stream") is True,
            include_usage=isinstance(options, Mapping) and options.get("include_usage") is True,
        )

    def headers(self, buckets: Mapping[str, TokenBucket], now: float) -> dict[str, str]:
        headers = {}
        for kind in self.limits:
            bucket = buckets[kind]
            headers[f"x-ratelimit-limit-{kind}"] = str(bucket.capacity)
            headers[f"x-ratelimit-remaining-{kind}"] = str(bucket.remaining(now))
            headers[f"x-ratelimit-reset-{kind}"] = go_duration(bucket.until_full(now))
        headers["x-request-id"] = f"req_{uuid.uuid4().hex}"
        return headers

    @staticmethod
    def _usage(call: _Call, output: int) -> dict[str, int]:
        total = call.input_tokens + output
        return {
            "prompt_tokens": call.input_tokens,
            "completion_tokens": output,
            "total_tokens": total,
        }

    @staticmethod
    def _finish(call: _Call, output: int) -> str:
        return "length" if output == call.max_tokens else "stop"

    def body(self, call: _Call, output: int, ident: str) -> dict[str, Any]:
        message = {"role": "assistant", "content": "".join(_words(output)), "refusal": None}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": self._finish(call, output),
        }
        return {
            "id": f"chatcmpl-{ident}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [choice],
            "usage": self._usage(call, output),
            "system_fingerprint": None,
        }

    def events(
        self, call: _Call, output: int, ident: str, pieces: list[tuple[str, int]]
    ) -> list[tuple[bytes, int]]:
        created = int(time.time())

        def chunk(delta: dict[str, str], finish: str | None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            data: dict[str, Any] = {
                "id": f"chatcmpl-{ident}",
                "object": "chat.completion.chunk",
                "created": created,
                "model": call.model,
                "system_fingerprint": None,
                "choices": [choice],
            }
            if call.include_usage:  # then every chunk has it, null until the last
                data["usage"] = None
            return data

        events = [(_sse(chunk({"role": "assistant", "content": ""}, None)), 0)]
        events += [(_sse(chunk({"content": text}, None)), tokens) for text, tokens in pieces]
        events.append((_sse(chunk({}, self._finish(call, output))), 0))
        if call.include_usage:
            last = chunk({}, None) | {"choices": [], "usage": self._usage(call, output)}
            events.append((_sse(last), 0))
        events.append((b"data: [DONE]\n\n", 0))
        return events

    def refusal(self, call: _Call, kind: str, limit: int, wait: float) -> dict[str, Any]:
        message = (
            f"Rate limit reached for {call.model} in organization org-fake on {kind} per min "
            f"({self._SHORT[kind]}): Limit {limit}. Please try again in {go_duration(wait)}."
        )
        error = {"message": message, "type": kind, "param": None, "code": "rate_limit_exceeded"}
        return {"error": error}

    def invalid(self, message: str) -> dict[str, Any]:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        return {"error": error}


@final
class _AnthropicWire(_Wire):
    """`POST /v1/messages`: message JSON, named SSE events."""

    path = "/v1/messages"
    prefix = ""
    limits = (REQUESTS, INPUT_TOKENS, OUTPUT_TOKENS)

    def call(self, raw: bytes) -> _Call:
        body = _parse_body(raw)
        messages = _messages(body)
        most = _positive_int(body, "max_tokens")
        if most is None:
            raise _BadRequest("max_tokens: Field required")
        return _Call(
            model=str(body.get("model", "claude-fake")),
            input_tokens=count_input_tokens(messages, body.get("system")),
            max_tokens=most,
            stream=body.get("stream") is True,
            include_usage=False,
        )

    def headers(self, buckets: Mapping[str, TokenBucket], now: float) -> dict[str, str]:
        wall = time.time()
        headers = {}
        rows = [(kind.replace("_", "-"), (buckets[kind],)) for kind in self.limits] + [
            ("tokens", (buckets[INPUT_TOKENS], buckets[OUTPUT_TOKENS]))
        ]
        for part, group in rows:  # "tokens" sums the input and output buckets
            name = f"anthropic-ratelimit-{part}"
            headers[f"{name}-limit"] = str(sum(b.capacity for b in group))
            headers[f"{name}-remaining"] = str(sum(b.remaining(now) for b in group))
            full = max(b.until_full(now) for b in group)
            headers[f"{name}-reset"] = _rfc3339(wall + full)
        headers["request-id"] = f"req_{uuid.uuid4().hex}"
        return headers

    @staticmethod
    def _stop(call: _Call, output: int) -> str:
        return "max_tokens" if output == call.max_tokens else "end_turn"

    def _message(self, call: _Call, ident: str) -> dict[str, Any]:
        return {
            "id": f"msg_{ident}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }

    def body(self, call: _Call, output: int, ident: str) -> dict[str, Any]:
        return self._message(call, ident) | {
            "content": [{"type": "text", "text": "".join(_words(output))}],
            "stop_reason": self._stop(call, output),
            "usage": {"input_tokens": call.input_tokens, "output_tokens": output},
        }

    def events(
        self, call: _Call, output: int, ident: str, pieces: list[tuple[str, int]]
    ) -> list[tuple[bytes, int]]:
        def event(kind: str, tokens: int = 0, **data: Any) -> tuple[bytes, int]:
            return _sse({"type": kind, **data}, kind), tokens

        usage = {"input_tokens": call.input_tokens, "output_tokens": 1}  # as the real start
        return [
            event("message_start", message=self._message(call, ident) | {"usage": usage}),
            event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
            event("ping"),
            *(
                event(
                    "content_block_delta",
                    tokens,
                    index=0,
                    delta={"type": "text_delta", "text": text},
                )
                for text, tokens in pieces
            ),
            event("content_block_stop", index=0),
            event(
                "message_delta",
                delta={"stop_reason": self._stop(call, output), "stop_sequence": None},
                usage={"output_tokens": output},
            ),
            event("message_stop"),
        ]

    def refusal(self, call: _Call, kind: str, limit: int, wait: float) -> dict[str, Any]:
        message = (
            f"This request would exceed the rate limit for your organization of {limit} "
            f"{kind.replace('_', ' ')} per minute. Please try again later."
        )
        return {"type": "error", "error": {"type": "rate_limit_error", "message": message}}

    def invalid(self, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


# -- the server ----------------------------------------------------------------------------


@final
class FakeProvider:
    """A rate-limited fake of OpenAI's chat completions or Anthropic's messages API.

    Args:
        provider: `"openai"` or `"anthropic"`: the endpoint, the JSON, the headers.
        rpm: requests per scaled minute (every provider).
        tpm: OpenAI's tokens per scaled minute (prompt estimate + `max_tokens`).
        itpm: Anthropic's input tokens per scaled minute.
        otpm: Anthropic's output tokens per scaled minute.
        period: seconds in one scaled minute (60.0 is the real thing).
        latency: seconds each response takes (for a stream, spread over its chunks).
        output_fraction: `(low, high)`, `0 < low <= high <= 1`: a response generates
            between `low * max_tokens` and `high * max_tokens` tokens (at least 1).
        seed: seeds the output lengths.
        default_max_tokens: OpenAI only: the `max_tokens` of a request that names none
            (1024 when not given). Anthropic requires `max_tokens`.
        retry_after_ms: also send `retry-after-ms` on a 429.
        count_refused: OpenAI only: a request refused by the token limit still takes a
            request from the RPM bucket.
        reserve_output: Anthropic only: reserve `max_tokens` of OTPM at admission and give
            back the unused part at the end, instead of charging output as generated.

    Raises:
        TypeError: a limit or option that the chosen provider would not use, or a
            missing limit.
        ValueError: a value out of range.
    """

    def __init__(
        self,
        provider: ProviderName = "openai",
        *,
        rpm: int,
        tpm: int | None = None,
        itpm: int | None = None,
        otpm: int | None = None,
        period: float = 60.0,
        latency: float = 0.0,
        output_fraction: tuple[float, float] = (0.2, 1.0),
        seed: int = 0,
        default_max_tokens: int | None = None,
        retry_after_ms: bool = False,
        count_refused: bool = False,
        reserve_output: bool = False,
    ) -> None:
        if provider == "openai":
            unused = {"itpm": itpm, "otpm": otpm, "reserve_output": reserve_output or None}
            limits = {REQUESTS: rpm, TOKENS: tpm}
        elif provider == "anthropic":
            unused = {
                "tpm": tpm,
                "default_max_tokens": default_max_tokens,
                "count_refused": count_refused or None,
            }
            limits = {REQUESTS: rpm, INPUT_TOKENS: itpm, OUTPUT_TOKENS: otpm}
        else:
            raise ValueError(f"provider must be 'openai' or 'anthropic', got {provider!r}")
        for name, value in unused.items():
            if value is not None:
                raise TypeError(f"{name} does not apply to provider={provider!r}")
        names = {REQUESTS: "rpm", TOKENS: "tpm", INPUT_TOKENS: "itpm", OUTPUT_TOKENS: "otpm"}
        self.limits: Final[dict[str, int]] = {}
        """Each limit's capacity (per scaled minute), by kind."""
        for kind, limit in limits.items():
            if limit is None:
                raise TypeError(f"provider={provider!r} needs {names[kind]}")
            if limit < 1:
                raise ValueError(f"{names[kind]} must be a positive integer, got {limit!r}")
            self.limits[kind] = limit
        if not 0 < period < math.inf:
            raise ValueError(f"period must be a positive number of seconds, got {period!r}")
        if not 0 <= latency < math.inf:
            raise ValueError(f"latency must be a number of seconds >= 0, got {latency!r}")
        low, high = output_fraction
        if not 0 < low <= high <= 1:
            raise ValueError(f"output_fraction must be 0 < low <= high <= 1, got {output_fraction}")
        most = _DEFAULT_MAX_TOKENS if default_max_tokens is None else default_max_tokens
        if most < 1:
            raise ValueError(f"default_max_tokens must be a positive integer, got {most!r}")

        self.provider: Final[ProviderName] = provider
        self.period: Final = float(period)
        self.latency: Final = float(latency)
        self._wire: _Wire = _OpenAIWire(most) if provider == "openai" else _AnthropicWire()
        self._fraction = (float(low), float(high))
        self._random = random.Random(seed)
        self._retry_after_ms = retry_after_ms
        self._count_refused = count_refused
        # How output tokens are charged: not at all (OpenAI), as generated, or reserved.
        self._output = "none" if provider == "openai" else "reserve" if reserve_output else "live"

        self._lock = threading.Lock()  # the state, read from other threads
        self._buckets: dict[str, TokenBucket] = {}
        self._accepted = 0
        self._bad = 0
        self._refused = dict.fromkeys(self.limits, 0)
        self._charges: list[Charge] = []
        self._refusals: list[Refusal] = []
        self.started_at = 0.0
        """When the buckets were filled (`time.monotonic()`): the start for `lowest_level`."""

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_stop: asyncio.Event | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens on (only while running)."""
        if self._port is None:
            raise RuntimeError("the fake provider is not running")
        return self._port

    @property
    def url(self) -> str:
        """The SDK's `base_url`: `http://127.0.0.1:PORT/v1` (OpenAI) or without `/v1`."""
        return f"http://127.0.0.1:{self.port}{self._wire.prefix}"

    async def start(self) -> None:
        """Fill the buckets and listen on a free port of 127.0.0.1, in the running loop."""
        if self._runner is not None:
            raise RuntimeError("the fake provider is already running")
        app = web.Application()
        app.router.add_post(self._wire.path, self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        now = time.monotonic()
        with self._lock:
            self.started_at = now
            self._buckets = {
                kind: TokenBucket(limit, self.period, now) for kind, limit in self.limits.items()
            }

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        runner, self._runner = self._runner, None
        self._port = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def start_in_thread(self) -> Self:
        """Serve from a new daemon thread with its own event loop; return once listening."""
        if self._thread is not None or self._runner is not None:
            raise RuntimeError("the fake provider is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            self._thread_loop = asyncio.get_running_loop()
            self._thread_stop = stop = asyncio.Event()
            ready.set()
            try:
                await stop.wait()
            finally:
                await self.aclose()

        self._thread = threading.Thread(
            target=asyncio.run, args=(serve(),), name="fake-provider", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        """Stop the server that `start_in_thread` started, and wait for its thread."""
        thread, loop, stop = self._thread, self._thread_loop, self._thread_stop
        self._thread = self._thread_loop = self._thread_stop = None
        if thread is None or loop is None or stop is None:
            return
        loop.call_soon_threadsafe(stop.set)
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the fake provider's thread did not stop in {_STOP_TIMEOUT} s")

    def __enter__(self) -> Self:
        return self.start_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()

    def statistics(self) -> FakeStatistics:
        """A snapshot of the counts and logs (safe from any thread)."""
        with self._lock:
            return FakeStatistics(
                accepted=self._accepted,
                refused=dict(self._refused),
                bad=self._bad,
                charges=tuple(self._charges),
                refusals=tuple(self._refusals),
            )

    def __repr__(self) -> str:
        where = f" at {self.url}" if self._port is not None else ""
        limits = ", ".join(f"{kind}={limit}" for kind, limit in self.limits.items())
        return f"<FakeProvider {self.provider}{where} {limits} per {self.period:g}s>"

    # -- accounting -----------------------------------------------------------------------

    def _charge(self, now: float, kind: str, tokens: int) -> None:
        """Take `tokens` from bucket `kind` and log it (the caller holds the lock)."""
        if tokens:
            self._buckets[kind].take(now, tokens)
            self._charges.append(Charge(now, kind, tokens))

    def _admit(self, now: float, call: _Call) -> tuple[str, float] | int:
        """Admit `call`: the output tokens it will generate; or refuse it: (limit, wait)."""
        if self._output == "none":
            estimate = call.input_tokens + call.max_tokens
            asks = [(REQUESTS, 1, 1), (TOKENS, estimate, estimate)]
        else:
            reserved = call.max_tokens if self._output == "reserve" else 0
            asks = [
                (REQUESTS, 1, 1),
                (INPUT_TOKENS, call.input_tokens, call.input_tokens),
                (OUTPUT_TOKENS, max(1, reserved), reserved),
            ]
        with self._lock:
            for kind, need, _ in asks:  # (limit, what it must hold, what admission takes)
                bucket = self._buckets[kind]
                if bucket.level(now) < need:
                    self._refused[kind] += 1
                    self._refusals.append(Refusal(now, kind, need))
                    if self._count_refused and kind != REQUESTS:
                        self._charge(now, REQUESTS, 1)
                    return kind, bucket.wait(now, need)
            for kind, _, take in asks:
                self._charge(now, kind, take)
            self._accepted += 1
            low, high = self._fraction
            drawn = round(call.max_tokens * self._random.uniform(low, high))
            return max(1, min(call.max_tokens, drawn))

    def _generated(self, tokens: int) -> None:
        """Charge `tokens` of output just generated, when output is charged live."""
        if self._output == "live":
            with self._lock:
                self._charge(time.monotonic(), OUTPUT_TOKENS, tokens)

    def _finished(self, call: _Call, produced: int) -> None:
        """Give back what a reservation did not use."""
        if self._output == "reserve":
            with self._lock:
                self._charge(time.monotonic(), OUTPUT_TOKENS, produced - call.max_tokens)

    def _headers(self) -> dict[str, str]:
        with self._lock:
            return self._wire.headers(self._buckets, time.monotonic())

    # -- responses ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            call = self._wire.call(await request.read())
        except _BadRequest as exc:
            with self._lock:
                self._bad += 1
            return web.json_response(
                self._wire.invalid(str(exc)), status=400, headers=self._headers()
            )
        admitted = self._admit(time.monotonic(), call)
        if isinstance(admitted, tuple):
            return self._too_many(call, *admitted)
        if call.stream:
            return await self._stream(request, call, admitted)
        if self.latency:
            await asyncio.sleep(self.latency)
        self._generated(admitted)
        self._finished(call, admitted)
        body = self._wire.body(call, admitted, uuid.uuid4().hex)
        return web.json_response(body, headers=self._headers())

    def _too_many(self, call: _Call, kind: str, wait: float) -> web.Response:
        headers = self._headers()
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        if self._retry_after_ms:
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000.0)))
        body = self._wire.refusal(call, kind, self.limits[kind], wait)
        if "request-id" in headers:  # Anthropic's
            headers["x-should-retry"] = "true"
            body["request_id"] = headers["request-id"]
        return web.json_response(body, status=429, headers=headers)

    async def _stream(self, request: web.Request, call: _Call, output: int) -> web.StreamResponse:
        headers = self._headers()
        headers["Content-Type"] = "text/event-stream; charset=utf-8"
        headers["Cache-Control"] = "no-cache"
        response = web.StreamResponse(headers=headers)
        pieces = _pieces(_words(output))
        pause = self.latency / len(pieces)
        produced = 0
        try:
            await response.prepare(request)
            for event, tokens in self._wire.events(call, output, uuid.uuid4().hex, pieces):
                if tokens:
                    if pause:
                        await asyncio.sleep(pause)
                    self._generated(tokens)
                    produced += tokens
                await response.write(event)
            await response.write_eof()
        except ConnectionError:  # the client went away: generation stops there
            pass
        finally:
            self._finished(call, produced)
        return response
