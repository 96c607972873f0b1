"""Server feedback, offline: a local server says "slow down" and the client listens.

The server answers the first request with ``429 Too Many Requests`` and ``Retry-After: 1``,
and every later one with ``200`` plus an IETF quota of 4 requests per second
(``RateLimit-Policy: "default";q=4;w=1``). The client is configured for 20 per second.

With a plain aiohttp ``ClientSession``, a :class:`~throttled_http.Throttler` and a
:class:`~throttled_http.FeedbackPolicy` (what the integrations do for you), it:

1. pauses the host for the 1 s the server asked, and lowers its pace (``adapt=True``: a
   refusal is a congestion signal), then re-sends the refused request;
2. adopts the advertised 4/s quota, stricter than its own 20/s.

It tells the policy of each admission (``policy.admitted``), as the integrations do, so a
new host gets one request before its first answer (slow start).

Run it: ``python examples/server_feedback.py`` (about 3 seconds).
"""

from __future__ import annotations

import asyncio
import logging
import sys

import aiohttp
from aiohttp import web

from throttled_http import FeedbackPolicy, Throttler, host_key

REQUESTS = 10


async def start_server() -> tuple[web.AppRunner, str]:
    """A loopback server: one 429 with Retry-After, then 200s advertising 4 per second."""
    refused = False

    async def handler(request: web.Request) -> web.Response:
        nonlocal refused
        if not refused:
            refused = True
            return web.Response(status=429, text="slow down", headers={"Retry-After": "1"})
        return web.Response(text="ok", headers={"RateLimit-Policy": '"default";q=4;w=1'})

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/"


async def fetch(
    session: aiohttp.ClientSession,
    throttler: Throttler,
    policy: FeedbackPolicy,
    url: str,
    number: int,
    start: float,
) -> None:
    """One GET through the throttler, with the server's feedback applied and retries."""
    loop = asyncio.get_running_loop()
    key = host_key(url)
    attempt = 0
    while True:
        async with throttler.entry() as entry:
            policy.admitted(throttler, key)  # before sending: slow start for a new host
            async with session.get(url) as response:
                entry.settle()  # response headers arrived: stamp the entry now
                sent = loop.time() - start
                delay = policy.observe(throttler, key, response.status, response.headers)
                attempt += 1
                wait = policy.retry_delay("GET", response.status, attempt, delay, key=key)
                print(f"request {number:2} attempt {attempt}: {response.status} at {sent:5.2f} s")
        if wait is None:
            return
        await asyncio.sleep(wait)


async def main() -> None:
    """Send REQUESTS requests at once and show when each one went out."""
    logging.basicConfig(stream=sys.stdout, format="  log %(levelname)s: %(message)s")
    logging.getLogger("throttled_http").setLevel(logging.INFO)
    runner, url = await start_server()
    throttler = Throttler(20, 1.0)  # our own limit: 20 per second
    policy = FeedbackPolicy(max_retry_after=30, adapt=True, retries=2)
    start = asyncio.get_running_loop().time()
    try:
        async with aiohttp.ClientSession() as session:
            # One request first, so the refusal lands before the rest are admitted.
            await fetch(session, throttler, policy, url, 1, start)
            await asyncio.gather(
                *(fetch(session, throttler, policy, url, n, start) for n in range(2, REQUESTS + 1))
            )
    finally:
        await runner.cleanup()
    elapsed = asyncio.get_running_loop().time() - start
    stats = policy.statistics()
    print(f"rates now: {', '.join(str(r) for r in throttler.rates)}")
    print(
        f"{REQUESTS} requests in {elapsed:.2f} s; refusals: {stats.refusals}, pauses: "
        f"{stats.pauses} ({stats.paused_seconds:.1f} s), retries: {stats.retries}, "
        f"rate cuts: {stats.rate_cuts}, quota adoptions: {stats.adoptions}"
    )
    if stats.retries != 1 or stats.adoptions != 1:
        raise SystemExit(f"unexpected feedback statistics: {stats}")


if __name__ == "__main__":
    asyncio.run(main())
