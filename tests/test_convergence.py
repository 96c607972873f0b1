"""Adaptation end to end: both clients against real rate-limited servers on 127.0.0.x.

The servers (:mod:`throttled_http._servers`) run in the test's event loop on its clock,
and the loop's clock is virtual (looptime): a minute of traffic takes a fraction of a
second, and every time below is exact, so the tests may assert paces. Each server enforces
a limit the client does not know: a lower one answered with 429 (with and without
``Retry-After``), one that halves mid-run, and an OpenAI-style token bucket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from conftest import max_in_window

from throttled_http import FeedbackPolicy, Rate, ThrottlerMap
from throttled_http._servers import (
    LimitedServer,
    ServerArrival,
    SlidingWindow,
    TokenBucket,
    send_all,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from throttled_http._servers import ServerLimit

pytestmark = pytest.mark.looptime

CLIENTS = ("aiohttp", "httpx")
LIMITED = "127.0.0.2"
OPEN = "127.0.0.3"


async def run(
    client: str, rule: ServerLimit, ours: int, count: int
) -> tuple[list[ServerArrival], float, FeedbackPolicy]:
    """``count`` requests at ``ours`` per second to a server enforcing ``rule``: what the
    server saw (times from the start of the run), and the policy."""
    policy = FeedbackPolicy(adapt=True, retries=10)
    async with LimitedServer({LIMITED: rule}) as server:
        statuses = await send_all(
            client, [server.url(LIMITED)] * count, ThrottlerMap(ours, 1.0), policy
        )
        start = server.started
        arrivals = [ServerArrival(a.host, a.time - start, a.status) for a in server.arrivals]
    assert statuses == [200] * count  # every refused request was retried, and got through
    assert max_in_window([a.time for a in arrivals], 1.0) <= ours  # never above our limit
    return arrivals, max(a.time for a in arrivals), policy


def refused(arrivals: list[ServerArrival], keep: Callable[[float], bool]) -> int:
    """The refusals at the times ``keep`` accepts."""
    return sum(1 for a in arrivals if a.status == 429 and keep(a.time))


def accepted_rate(arrivals: list[ServerArrival], start: float, stop: float) -> float:
    """Accepted requests per second over ``[start, stop)``."""
    count = sum(1 for a in arrivals if a.status == 200 and start <= a.time < stop)
    return count / (stop - start)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("retry_after", [True, False], ids=["retry-after", "bare-429"])
async def test_an_unknown_lower_limit_is_found_and_kept(client: str, retry_after: bool) -> None:
    """Configured for 5/s against a server allowing 3/s (for 40 s): at most 3 refusals in
    the first 10 s, none after, and the pace settles at 0.7 to 1.0 of the server's limit."""
    arrivals, end, policy = await run(client, SlidingWindow(Rate(3, 1.0), retry_after), 5, 120)
    assert refused(arrivals, lambda t: t < 10.0) <= 3
    assert refused(arrivals, lambda t: t >= 10.0) == 0
    assert 0.7 * 3 <= accepted_rate(arrivals, 10.0, end) <= 3.0
    (stats,) = policy.statistics().by_key.values()
    assert stats.pace == Rate(3, 1.0)
    assert stats.rate_cuts <= 2


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_limit_that_halves_mid_run_is_followed(client: str) -> None:
    """At the server's old limit (10/s), halved one period in: at most 10 refusals in all,
    none in the last third, and the pace follows the new limit."""
    rule = SlidingWindow(Rate(10, 1.0), changes=[(1.0, Rate(5, 1.0))])
    arrivals, end, _ = await run(client, rule, 10, 120)
    assert refused(arrivals, lambda t: True) <= 10
    assert refused(arrivals, lambda t: t >= end * 2 / 3) == 0
    assert 0.7 * 5 <= accepted_rate(arrivals, end / 3, end) <= 5.0


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_token_bucket_with_openai_headers_is_followed(client: str) -> None:
    """A bucket of 10 refilled at 2/s, telling its budget the OpenAI way on every answer:
    the refusals stop within 10 s and the pace settles at the refill rate."""
    arrivals, end, policy = await run(client, TokenBucket(10, 2.0), 10, 80)
    assert refused(arrivals, lambda t: t >= 10.0) == 0
    assert refused(arrivals, lambda t: True) <= 10
    assert 0.7 * 2 <= accepted_rate(arrivals, 10.0, end) <= 2.0 + 10 / (end - 10.0)
    assert policy.statistics().pauses >= 1  # remaining 0 pauses for the next unit


@pytest.mark.parametrize("client", CLIENTS)
async def test_only_the_host_that_refuses_slows_down(client: str) -> None:
    """A host beside the limited one keeps its full configured pace."""
    policy = FeedbackPolicy(adapt=True, retries=10)
    async with LimitedServer(
        {LIMITED: SlidingWindow(Rate(2, 1.0))}, hosts=(LIMITED, OPEN)
    ) as server:
        urls = [server.url(LIMITED)] * 20 + [server.url(OPEN)] * 60
        statuses = await send_all(client, urls, ThrottlerMap(10, 1.0), policy)
        start = server.started
        fast = [a.time - start for a in server.at(OPEN)]
    assert statuses == [200] * 80
    assert all(a.status == 200 for a in server.at(OPEN))
    assert max(fast) < 6.0  # 60 requests at 10/s, one alone first: just over 5 s
    by_key = policy.statistics().by_key
    assert {k.split(":")[1][2:]: s.pace for k, s in by_key.items()} == {
        LIMITED: Rate(2, 1.0),
        OPEN: None,
    }
