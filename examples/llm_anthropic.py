"""The anthropic SDK under its requests and tokens per minute, offline: no 429.

The script starts a small stand-in for Anthropic's Messages API on 127.0.0.1. Like the
real one it limits requests, input tokens and output tokens per minute with token buckets
that refill continuously, counts the output tokens a response *generates* (not
`max_tokens`), sends `anthropic-ratelimit-*` headers and answers 429 when a bucket is
short. One "minute" here lasts one second.

`anthropic.AsyncAnthropic` sends 40 messages at once through
`throttled_http.httpx2.ThrottledTransport(**anthropic_limits(...))`: each request is
charged its estimated input and `max_tokens` of output before it is sent, and credited
back what its `usage` says it did not generate. The stand-in refuses nothing, and the
output rate comes close to the output limit.

Run (needs `pip install 'throttled_http[httpx2]' anthropic aiohttp`)::

    python examples/llm_anthropic.py     # about 3 seconds
"""

from __future__ import annotations

import asyncio
import math
import random
import time

import anthropic
import httpx2
from aiohttp import web

from throttled_http.httpx2 import ThrottledTransport
from throttled_http.llm import anthropic_limits

RPM, ITPM, OTPM, MINUTE = 60, 20_000, 1_500, 1.0
CALLS = 40


class Bucket:
    """A token bucket: `limit` tokens, refilled at `limit / MINUTE` per second."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.level = float(limit)
        self.at = time.monotonic()

    def refill(self) -> float:
        now = time.monotonic()
        self.level = min(self.limit, self.level + (now - self.at) * self.limit / MINUTE)
        self.at = now
        return self.level


class StandIn:
    """The Messages API, as far as its rate limits go."""

    def __init__(self) -> None:
        self.buckets = {"requests": Bucket(RPM), "input": Bucket(ITPM), "output": Bucket(OTPM)}
        self.refused = 0
        self.generated = 0
        self.random = random.Random(7)

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        chars = sum(len(m["content"]) for m in body["messages"])
        input_tokens = math.ceil(chars / 4)
        needs = {"requests": 1, "input": input_tokens, "output": 1}
        if any(self.buckets[k].refill() < n for k, n in needs.items()):
            self.refused += 1
            error = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
            return web.json_response(error, status=429, headers={"retry-after": "1"})
        output_tokens = self.random.randint(body["max_tokens"] // 5, body["max_tokens"])
        self.buckets["requests"].level -= 1
        self.buckets["input"].level -= input_tokens
        self.buckets["output"].level -= output_tokens  # as generated: may go below 0
        self.generated += output_tokens
        await asyncio.sleep(0.05)  # the model at work
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "word " * output_tokens}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        return web.json_response(message)


async def main() -> None:
    stand_in = StandIn()
    app = web.Application()
    app.router.add_post("/v1/messages", stand_in.messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    limits = anthropic_limits(rpm=RPM, itpm=ITPM, otpm=OTPM, period=MINUTE)
    http = httpx2.AsyncClient(transport=ThrottledTransport(**limits))
    client = anthropic.AsyncAnthropic(
        api_key="offline", base_url=f"http://127.0.0.1:{port}", http_client=http, max_retries=0
    )
    rnd = random.Random(1)

    async def ask() -> int:
        prompt = "x" * 4 * rnd.randint(50, 500)
        message = await client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=rnd.randint(16, 256),
            messages=[{"role": "user", "content": prompt}],
        )
        return message.usage.output_tokens

    start = time.monotonic()
    outputs = await asyncio.gather(*(ask() for _ in range(CALLS)))
    elapsed = time.monotonic() - start
    await client.close()
    await runner.cleanup()

    # What the output bucket allowed in that time: its capacity plus its refill.
    allowed = OTPM + (elapsed * OTPM / MINUTE)
    print(f"{CALLS} messages in {elapsed:.2f} s, {stand_in.refused} refused with 429")
    print(
        f"output tokens: {sum(outputs)} generated, {allowed:.0f} allowed by the output "
        f"bucket in that time ({sum(outputs) / allowed:.0%})"
    )
    in_use = limits["throttler"].statistics().budgets_in_use
    print("still counted by the throttler:", {unit: round(n) for unit, n in in_use.items()})
    assert stand_in.refused == 0, "the transport should have kept every bucket from running dry"


if __name__ == "__main__":
    asyncio.run(main())
