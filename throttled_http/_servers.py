"""Model rate-limited servers, for the feedback tests, the benchmark and the demo.

`LimitedServer` is a real aiohttp web server on one free port of several loopback
addresses, each address enforcing its own limit on its own clock (the running loop's, so
virtual time in tests drives it as it drives the client):

* `SlidingWindow`: at most `rate.limit` accepted requests in any window of
  `rate.period` seconds (refused ones do not count), answering 429 beyond it, with
  `Retry-After` (whole seconds, at least 1) or without; the limit may change at given
  times (a limit that halves mid-run).
* `TokenBucket`: a bucket of `capacity` requests refilled at `refill` per
  second, answering with OpenAI's headers (`x-ratelimit-limit-requests`,
  `-remaining-requests`, `-reset-requests` as a Go duration) on every response, and
  429 when it is empty.

Every arrival is recorded (`LimitedServer.arrivals`). `send_all` sends a batch
of requests at once through either client. Private: it needs aiohttp (and httpx for that
client) and is not part of the API.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, final

from aiohttp import web

from .testing import _bind_same_port

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ._feedback import FeedbackPolicy
    from ._hostmap import ThrottlerMap
    from ._rates import Rate

__all__ = ["LimitedServer", "ServerArrival", "SlidingWindow", "TokenBucket", "send_all"]


class ServerLimit(Protocol):
    """One address's rule: the status and headers for a request arriving at `now`."""

    def answer(self, now: float, since_start: float) -> tuple[int, dict[str, str]]: ...


@final
@dataclass(slots=True)
class SlidingWindow:
    """At most `rate.limit` accepted arrivals in any `rate.period` seconds.

    Attributes:
        rate: the limit from the start.
        retry_after: answer 429 with `Retry-After` (else a bare 429).
        changes: `(seconds after the server started, new rate)`, in order.
    """

    rate: Rate
    retry_after: bool = True
    changes: Sequence[tuple[float, Rate]] = ()
    _accepted: deque[float] = field(default_factory=deque)

    def current(self, since_start: float) -> Rate:
        """The rate in force `since_start` seconds after the server started."""
        rate = self.rate
        for when, changed in self.changes:
            if since_start >= when:
                rate = changed
        return rate

    def answer(self, now: float, since_start: float) -> tuple[int, dict[str, str]]:
        rate = self.current(since_start)
        window = self._accepted
        while window and window[0] + rate.period <= now:
            window.popleft()
        if len(window) >= rate.limit:
            if not self.retry_after:
                return 429, {}
            wait = window[len(window) - rate.limit] + rate.period - now
            return 429, {"Retry-After": str(max(1, math.ceil(wait)))}
        window.append(now)
        return 200, {}


@final
@dataclass(slots=True)
class TokenBucket:
    """A bucket of `capacity` requests refilled at `refill` per second, OpenAI-style.

    Attributes:
        capacity: the bucket's size, sent as `x-ratelimit-limit-requests`.
        refill: requests per second it regains.
    """

    capacity: int
    refill: float
    _tokens: float = -1.0
    _last: float = 0.0

    def answer(self, now: float, since_start: float) -> tuple[int, dict[str, str]]:
        if self._tokens < 0:
            self._tokens, self._last = float(self.capacity), now
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.refill)
        self._last = now
        status = 429
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            status = 200
        missing = self.capacity - self._tokens
        return status, {
            "x-ratelimit-limit-requests": str(self.capacity),
            "x-ratelimit-remaining-requests": str(int(self._tokens)),
            "x-ratelimit-reset-requests": f"{missing / self.refill:.3f}s",
        }


@final
@dataclass(frozen=True, slots=True)
class ServerArrival:
    """One request as the server saw it: the address, the time and the status."""

    host: str
    time: float
    status: int


@final
class LimitedServer:
    """A web server on one free port of several loopback addresses, one limit each.

    Args:
        limits: the rule of each address (`{"127.0.0.2": SlidingWindow(Rate(3, 1))}`);
            an address without a rule accepts everything.
        hosts: the addresses to listen on (the keys of `limits` by default).
        clock: the server's clock; the running loop's `time` by default.
        latency: seconds each answer waits after its status is chosen.
    """

    __slots__ = ("_clock", "_runner", "_start", "arrivals", "hosts", "latency", "limits", "port")

    def __init__(
        self,
        limits: Mapping[str, ServerLimit],
        *,
        hosts: Sequence[str] | None = None,
        clock: Callable[[], float] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.limits = dict(limits)
        self.latency = latency
        self.hosts = tuple(hosts if hosts is not None else self.limits)
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._start = 0.0
        self.port = 0
        self.arrivals: list[ServerArrival] = []

    def url(self, host: str, path: str = "/") -> str:
        """The URL of `path` on `host`."""
        return f"http://{host}:{self.port}{path}"

    def at(self, host: str) -> list[ServerArrival]:
        """The arrivals on `host`."""
        return [a for a in self.arrivals if a.host == host]

    @property
    def started(self) -> float:
        """When the server started, on its clock."""
        return self._start

    async def __aenter__(self) -> LimitedServer:
        clock = self._clock or asyncio.get_running_loop().time
        self._clock = clock
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        socks = _bind_same_port(self.hosts)
        self.port = socks[0].getsockname()[1]
        for sock in socks:
            await web.SockSite(runner, sock).start()
        self._runner = runner
        self._start = clock()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        clock = self._clock
        now = clock() if clock is not None else asyncio.get_running_loop().time()
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        host = sockname[0] if sockname else self.hosts[0]
        rule = self.limits.get(host)
        status, headers = (200, {}) if rule is None else rule.answer(now, now - self._start)
        self.arrivals.append(ServerArrival(host, now, status))
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        return web.Response(status=status, headers=headers, text="ok" if status == 200 else "no")


async def send_all(
    client: str, urls: Sequence[str], throttler: ThrottlerMap, feedback: FeedbackPolicy
) -> list[int]:
    """GET every URL at once through `client` (`"aiohttp"` or `"httpx"`); the statuses.

    `ThrottledClientSession` or `ThrottledTransport`, with `throttler` and
    `feedback`; every body is read.
    """
    if client == "aiohttp":
        from .aiohttp import ThrottledClientSession

        async with ThrottledClientSession(throttler=throttler, feedback=feedback) as session:

            async def one(url: str) -> int:
                async with session.get(url) as response:
                    await response.read()
                    return response.status

            return list(await asyncio.gather(*(one(url) for url in urls)))
    import httpx

    from .httpx import ThrottledTransport

    transport = ThrottledTransport(throttler=throttler, feedback=feedback)
    async with httpx.AsyncClient(transport=transport, timeout=120.0) as http:

        async def get(url: str) -> int:
            return (await http.get(url)).status_code

        return list(await asyncio.gather(*(get(url) for url in urls)))
