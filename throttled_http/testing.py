"""Test helpers: a local HTTP server that records every arrival, and aioresponses support.

[`RecordingServer`][throttled_http.testing.RecordingServer] is a real aiohttp web server
listening on the same free port on several loopback addresses (`127.0.0.1`, `127.0.0.2`,
...: two "hosts" for per-host limits), recording the moment each request arrives. Tests and
demos check the promise of this package where it matters, at the server:

```python
async with RecordingServer() as server:
    async with ThrottledClientSession(rate_limit=3, period=0.5) as session:
        for _ in range(9):
            async with session.get(server.url("/")) as response:
                await response.read()
    assert server.max_in_window(0.5) <= 3
```

Routes (any method):

* `/`: 200 `ok`.
* `/redirect/{n}`: 302 to `/redirect/{n-1}`; `/redirect/0` answers 200.
* `/to/{host}/{tail}`: 302 to `/{tail}` on the same server at another address.
* `/delay/{seconds}`: waits `seconds` before sending the headers.
* `/stream/{chunks}`: a chunked body of `chunks` lines, one every `interval`
  seconds (query `interval=`, default 0.05).
  With `abort=1` the server drops the connection after the last line instead of ending
  the body (the client sees a broken body).
* `/status/{code}`: answers `code`; the query item `retry_after=` becomes a
  `Retry-After` header and every other query item a response header of that name.
* `/drop/{name}`: the first arrival for `name` has its connection closed with no answer
  (recorded with status 0); later ones answer 200. It provokes aiohttp's own resend of an
  idempotent request.
* `/ws`: a websocket that echoes text messages.

The server can play a rate-limited API: `server_limit=Rate(...)` answers 429 with a
`Retry-After` header (whole seconds, at least 1) to any arrival beyond the limit in a
sliding window per host (refused arrivals do not count in the window), and
`leaky_bucket=s` answers 429 to an arrival less than `s` seconds after the previous
accepted one on that host (nginx `limit_req` without burst).

[`aioresponses_compat`][throttled_http.testing.aioresponses_compat] (and the pytest fixture
[`mock_aiohttp`][throttled_http.testing.mock_aiohttp]) make `aioresponses` 0.7.9 work with
aiohttp 3.14 (its issue #289).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

from ._exceptions import missing_extra

try:
    from aiohttp import web
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra(__name__, "aiohttp", "aiohttp") from exc

from ._demo import max_in_window
from ._rates import Rate
from ._validate import non_negative_float, positive_float

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

__all__ = ["Arrival", "RecordingServer", "aioresponses_compat", "mock_aiohttp"]

_BIND_ATTEMPTS = 50


@final
@dataclass(frozen=True, slots=True)
class Arrival:
    """One request as the server saw it.

    Attributes:
        host: the local address it arrived on (`"127.0.0.2"`).
        path: the request path, without the query string.
        method: the request method, upper case.
        time: `time.monotonic()` (the event loop's clock on Linux) when the request
            arrived, before any `latency`.
        status: the status code the server answered (or is answering) with; 499 when the
            client went away before a status was chosen; 0 when `/drop` closed the
            connection without answering; 101 for a websocket.
    """

    host: str
    path: str
    method: str
    time: float
    status: int


@final
class _Visit:
    """The server's working state for one request being handled."""

    __slots__ = ("host", "left", "status", "time")

    def __init__(self, host: str, time: float) -> None:
        self.host = host
        self.time = time
        self.status: int | None = None
        self.left = False


@final
class RecordingServer:
    """An aiohttp web server on one free port of several loopback addresses.

    Use it as `async with RecordingServer() as server:` or call
    [`start`][throttled_http.testing.RecordingServer.start] and
    [`close`][throttled_http.testing.RecordingServer.close]. It runs on the event loop that
    starts it.

    Args:
        hosts: local addresses to listen on, all on the same port; 127.0.0.0/8 works
            on Linux without configuration.
        latency: seconds the server waits after a request arrives before it sends the
            response headers (on every route), a finite number >= 0.
        server_limit: a per-host sliding-window limit the server enforces with 429 and
            `Retry-After` (a [`Rate`][throttled_http.Rate] or a string such as
            `"5/s"`); `None`: no limit.
        leaky_bucket: minimum seconds between accepted arrivals on one host, enforced
            with 429; `None`: no minimum.
        routes: more routes to serve (`aiohttp.web.get("/page/{n}", handler)`...); their
            requests are recorded with the status the handler returns.

    Raises:
        TypeError, ValueError: at construction, naming the argument.
    """

    __slots__ = (
        "_app_runner",
        "_clock",
        "_dropped",
        "_in_flight",
        "_last_accepted",
        "_port",
        "_routes",
        "_visits",
        "_window",
        "arrivals",
        "hosts",
        "latency",
        "leaky_bucket",
        "max_in_flight",
        "rejected",
        "server_limit",
    )

    def __init__(
        self,
        hosts: Sequence[str] = ("127.0.0.1", "127.0.0.2"),
        *,
        latency: float = 0.0,
        server_limit: Rate | str | None = None,
        leaky_bucket: float | None = None,
        routes: Iterable[web.AbstractRouteDef] = (),
    ) -> None:
        if isinstance(hosts, str) or not hosts or not all(isinstance(h, str) for h in hosts):
            raise TypeError(f"hosts must be a non-empty tuple of addresses, got {hosts!r}")
        self.hosts: tuple[str, ...] = tuple(hosts)
        self.latency = non_negative_float("latency", latency)
        if isinstance(server_limit, str):
            server_limit = Rate.parse(server_limit)
        if server_limit is not None and not isinstance(server_limit, Rate):
            raise TypeError(f"server_limit must be a Rate, a str or None, got {server_limit!r}")
        self.server_limit: Rate | None = server_limit
        self.leaky_bucket = (
            None if leaky_bucket is None else positive_float("leaky_bucket", leaky_bucket)
        )
        self._routes = tuple(routes)
        self._clock: Callable[[], float] = time.monotonic
        self._app_runner: web.AppRunner | None = None
        self._port = 0
        self.arrivals: list[Arrival] = []
        """Every request, in the order its status was chosen (at arrival on built-in routes)."""
        self.max_in_flight: dict[str, int] = defaultdict(int)
        """The most requests each host was handling at once."""
        self.rejected: dict[str, int] = defaultdict(int)
        """429 responses sent, per host (limit enforcement and `/status/429`)."""
        self._in_flight: dict[str, int] = defaultdict(int)
        self._window: dict[str, deque[float]] = defaultdict(deque)
        self._last_accepted: dict[str, float] = {}
        self._visits: dict[int, _Visit] = {}
        self._dropped: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Bind one free port on every host and start serving.

        Raises:
            RuntimeError: when already started.
            OSError: when no port is free on all hosts after 50 tries.
        """
        if self._app_runner is not None:
            raise RuntimeError("RecordingServer is already started")
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/", self._root)
        app.router.add_route("*", "/redirect/{n}", self._redirect)
        app.router.add_route("*", "/to/{host}/{tail:.*}", self._to_host)
        app.router.add_route("*", "/delay/{seconds}", self._delay)
        app.router.add_route("*", "/stream/{chunks}", self._stream)
        app.router.add_route("*", "/status/{code}", self._status)
        app.router.add_route("*", "/drop/{name}", self._drop)
        app.router.add_route("GET", "/ws", self._websocket)
        app.router.add_routes(self._routes)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=0.5,
            handler_cancellation=True,
        )
        await runner.setup()
        socks = _bind_same_port(self.hosts)
        try:
            self._port = socks[0].getsockname()[1]
            for sock in socks:
                await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            for sock in socks:
                sock.close()
            raise
        self._app_runner = runner

    async def close(self) -> None:
        """Stop serving and close every connection; idempotent."""
        runner, self._app_runner = self._app_runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> RecordingServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- addresses and records -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port shared by every host (0 before `start`)."""
        return self._port

    def url(self, path: str = "/", host: int | str = 0) -> str:
        """The absolute URL of `path` on one host.

        Examples:
            >>> RecordingServer().url("/delay/1", host=1)  # before start(): port 0
            'http://127.0.0.2:0/delay/1'

        Args:
            path: the path (and query), with or without the leading `/`.
            host: an index into `hosts` or one of the addresses.
        """
        address = self.hosts[host] if isinstance(host, int) else host
        if address not in self.hosts:
            raise ValueError(f"host must be one of {self.hosts}, got {host!r}")
        if ":" in address:
            address = f"[{address}]"
        if not path.startswith("/"):
            path = "/" + path
        return f"http://{address}:{self._port}{path}"

    def arrivals_at(self, host: int | str | None = None) -> list[Arrival]:
        """The arrivals on one host (index or address), or on all when `None`."""
        if host is None:
            return list(self.arrivals)
        address = self.hosts[host] if isinstance(host, int) else host
        return [a for a in self.arrivals if a.host == address]

    def max_in_window(self, period: float, host: int | str | None = None) -> int:
        """The most arrivals in any half-open window `[t, t + period)` of the server clock.

        Every arrival counts, whatever its status.

        Args:
            period: the window's length in seconds.
            host: one host (index or address), or every host together when `None`.
        """
        period = positive_float("period", period)
        return max_in_window([a.time for a in self.arrivals_at(host)], period)

    def min_gap(self, host: int | str | None = None) -> float:
        """The shortest time in seconds between two consecutive arrivals (`inf` if < 2)."""
        times = sorted(a.time for a in self.arrivals_at(host))
        return min((b - a for a, b in itertools.pairwise(times)), default=float("inf"))

    def reset(self) -> None:
        """Forget every record and the enforced limits' state."""
        self.arrivals.clear()
        self.max_in_flight.clear()
        self.rejected.clear()
        self._window.clear()
        self._last_accepted.clear()
        self._dropped.clear()

    def __repr__(self) -> str:
        state = "serving" if self._app_runner is not None else "stopped"
        return (
            f"<RecordingServer {state} hosts={self.hosts} port={self._port} "
            f"arrivals={len(self.arrivals)}>"
        )

    # -- request handling ------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        now = self._clock()
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        host = sockname[0] if sockname else self.hosts[0]
        visit = _Visit(host, now)
        self._visits[id(request)] = visit
        self._in_flight[host] += 1
        self.max_in_flight[host] = max(self.max_in_flight[host], self._in_flight[host])
        try:
            retry_after = self._admit(host, now)
            if retry_after is not None:
                self._record(request, 429)
                return web.Response(
                    status=429, text="rate limited", headers={"Retry-After": str(retry_after)}
                )
            try:
                response = await handler(request)
                self._record(request, response.status)  # for routes added by the caller
                return response
            except web.HTTPException as exc:
                self._record(request, exc.status)
                raise
        except BaseException:
            self._record(request, 499)
            raise
        finally:
            self._leave(request)
            del self._visits[id(request)]

    def _admit(self, host: str, now: float) -> int | None:
        """Apply the enforced limits; the Retry-After in whole seconds, or None to accept."""
        limit = self.server_limit
        if limit is not None:
            window = self._window[host]
            while window and window[0] + limit.period <= now:
                window.popleft()
            if len(window) >= limit.limit:
                return max(1, int(-(-(window[0] + limit.period - now) // 1)))
        if self.leaky_bucket is not None:
            last = self._last_accepted.get(host)
            if last is not None and now - last < self.leaky_bucket:
                return max(1, int(-(-(last + self.leaky_bucket - now) // 1)))
            self._last_accepted[host] = now
        if limit is not None:
            self._window[host].append(now)
        return None

    def _record(self, request: web.Request, status: int) -> None:
        visit = self._visits[id(request)]
        if visit.status is not None:
            return
        visit.status = status
        self.arrivals.append(Arrival(visit.host, request.path, request.method, visit.time, status))
        if status == 429:
            self.rejected[visit.host] += 1

    def _leave(self, request: web.Request) -> None:
        """The request is no longer in flight (idempotent)."""
        visit = self._visits[id(request)]
        if not visit.left:
            visit.left = True
            self._in_flight[visit.host] -= 1

    async def _answer(self, request: web.Request, status: int, delay: float = 0.0) -> None:
        """Record the status, then wait `latency` (plus `delay`) before the headers."""
        self._record(request, status)
        wait = self.latency + delay
        if wait > 0:
            await asyncio.sleep(wait)

    async def _root(self, request: web.Request) -> web.StreamResponse:
        await self._answer(request, 200)
        return web.Response(text="ok")

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        n = _int_param(request, "n")
        if n <= 0:
            await self._answer(request, 200)
            return web.Response(text="ok")
        await self._answer(request, 302)
        return web.Response(status=302, headers={"Location": f"/redirect/{n - 1}"})

    async def _to_host(self, request: web.Request) -> web.StreamResponse:
        target = request.match_info["host"]
        if target not in self.hosts:
            raise web.HTTPNotFound(text=f"unknown host {target!r}")
        location = self.url("/" + request.match_info["tail"], host=target)
        if request.query_string:
            location += "?" + request.query_string
        await self._answer(request, 302)
        return web.Response(status=302, headers={"Location": location})

    async def _delay(self, request: web.Request) -> web.StreamResponse:
        try:
            seconds = non_negative_float("seconds", float(request.match_info["seconds"]))
        except ValueError:
            raise web.HTTPBadRequest(text="seconds must be a number >= 0") from None
        await self._answer(request, 200, seconds)
        return web.Response(text="ok")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        chunks = _int_param(request, "chunks")
        try:
            interval = non_negative_float("interval", float(request.query.get("interval", 0.05)))
        except ValueError:
            raise web.HTTPBadRequest(text="interval must be a number >= 0") from None
        await self._answer(request, 200)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(chunks):
            await response.write(f"chunk {i}\n".encode())
            await asyncio.sleep(interval)
        self._leave(request)  # the body is complete once write_eof sends the last chunk
        if request.query.get("abort") == "1" and request.transport is not None:
            request.transport.close()
            return response
        await response.write_eof()
        return response

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self._dropped:
            self._dropped.add(name)
            self._record(request, 0)
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # nothing more to do for a closed connection
        await self._answer(request, 200)
        return web.Response(text="ok")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        await self._answer(request, 101)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._leave(request)  # an open websocket is not a request in flight
        async for message in ws:
            if message.type == web.WSMsgType.TEXT:
                await ws.send_str(message.data)
        return ws

    async def _status(self, request: web.Request) -> web.StreamResponse:
        code = _int_param(request, "code")
        if not 200 <= code <= 599:
            raise web.HTTPBadRequest(text="code must be from 200 to 599")
        headers = {}
        for name, value in request.query.items():
            headers["Retry-After" if name == "retry_after" else name] = value
        await self._answer(request, code)
        if code in (204, 304):
            return web.Response(status=code, headers=headers)
        return web.Response(status=code, headers=headers, text=f"status {code}")


def _int_param(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None


def _bind_same_port(hosts: tuple[str, ...]) -> list[socket.socket]:
    """Listening-ready sockets bound to one port free on every host."""
    for _ in range(_BIND_ATTEMPTS):
        socks: list[socket.socket] = []
        try:
            port = 0
            for host in hosts:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                port = sock.getsockname()[1]
        except OSError:
            for sock in socks:
                sock.close()
            continue
        return socks
    raise OSError(f"no TCP port is free on all of {hosts} after {_BIND_ATTEMPTS} tries")


# -- aioresponses ------------------------------------------------------------------------


@final
class _SentWriter:
    """Stands for the stream writer of a request that was never written (a mock's)."""

    __slots__ = ()
    output_size = 0


@contextlib.contextmanager
def aioresponses_compat(**kwargs: Any) -> Iterator[Any]:
    """An `aioresponses` mock that works with aiohttp 3.14.

    `aioresponses` 0.7.9 builds its fake responses without the `stream_writer` that
    aiohttp 3.14's `ClientResponse` requires (aioresponses issue #289). This starts
    `aioresponses(**kwargs)` with that argument supplied, and stops it on exit:

    ```python
    with aioresponses_compat() as mocked:
        mocked.get("http://api.test/items", payload=[1, 2])
        async with ThrottledClientSession(rate_limit=2) as session:
            ...
    ```

    Mocked requests made through
    [`ThrottledClientSession`][throttled_http.aiohttp.ThrottledClientSession] still wait for
    the throttler (aioresponses replaces `ClientSession._request`, so aiohttp middlewares do
    not run; the session throttles outside it in that case).

    Raises:
        ImportError: when `aioresponses` is not installed.
    """
    try:
        from aioresponses import aioresponses
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "aioresponses_compat needs aioresponses: pip install aioresponses"
        ) from exc
    from unittest import mock

    from aiohttp import ClientResponse

    original_init = ClientResponse.__init__

    def init(self: ClientResponse, *args: Any, **kw: Any) -> None:
        # aiohttp reads only ``output_size`` from the writer of an already sent request.
        kw.setdefault("stream_writer", _SentWriter())
        original_init(self, *args, **kw)

    with mock.patch.object(ClientResponse, "__init__", init), aioresponses(**kwargs) as mocked:
        yield mocked


def mock_aiohttp() -> Iterator[Any]:
    """Pytest fixture body: `aioresponses_compat()` for one test.

    Register it in a `conftest.py`:

    ```python
    import pytest
    from throttled_http.testing import mock_aiohttp

    mock_aiohttp = pytest.fixture(mock_aiohttp)
    ```
    """
    with aioresponses_compat() as mocked:
        yield mocked
