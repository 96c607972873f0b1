"""Fault tests of throttled_http.redis: outages, hangs, restarts, data loss, a cluster.

Each test starts a private ``redis-server`` on a free port (:class:`PrivateRedis`), which it
may stop (``SIGSTOP``), kill, restart or flush without touching the shared server at
127.0.0.1:6379 that ``tests/test_redis.py`` uses. Redis's clock cannot be driven by
virtual time, so these tests run on the real clock; they assert exact properties (what
Redis holds, which error a waiter got, how many entries a window holds) and bound
durations only with generous margins, so a loaded machine cannot fail them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest
import redis as redis_sync
import redis.asyncio as aioredis
from conftest import max_in_window
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from throttled_http import ThrottlerBackendError, ThrottlerTimeoutError
from throttled_http.redis import OnError, RedisThrottler

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.realclock

# A rate too loose to ever bind: it keeps every stamp in the sorted set for a minute.
KEEP = "1000000/60s"


# -- faults -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server of this test's own, which the test may kill and restart.

    ``executable`` is the server to run (``redis-server`` from PATH by default; the Valkey
    tests pass a ``valkey-server``, which takes the same options).
    """

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}"

    def start(self, *options: str) -> None:
        executable = self.executable or shutil.which("redis-server")
        assert executable is not None, "redis-server must be on PATH"
        self.proc = subprocess.Popen(
            [
                executable,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                *options,
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def client(self) -> aioredis.Redis:
        """A client that fails fast: no retries, short socket timeouts."""
        return aioredis.Redis.from_url(
            self.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5, socket_timeout=0.5
        )


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A private redis-server, started now and killed at the end."""
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


async def test_outage_raises_then_recovers(private_redis: PrivateRedis) -> None:
    """on_error="raise": a dead Redis raises ThrottlerBackendError; a restarted one works."""
    client = private_redis.client()
    throttler = RedisThrottler(100, redis=client, key="r", command_timeout=1.0)
    await throttler.acquire()
    private_redis.stop()
    with pytest.raises(ThrottlerBackendError, match=r"admit\.lua") as info:
        await asyncio.wait_for(throttler.acquire(), 5)
    assert info.value.__cause__ is not None
    private_redis.start()  # empty script cache: NOSCRIPT, then EVAL
    await asyncio.wait_for(throttler.acquire(), 5)
    assert throttler.redis_statistics().admitted == 2
    await throttler.aclose()
    await client.aclose()


async def test_outage_falls_back_to_local(private_redis: PrivateRedis) -> None:
    """on_error="local": during an outage a local throttler keeps the rate; Redis resumes."""
    client = private_redis.client()
    throttler = RedisThrottler(
        5, 0.2, redis=client, key="l", on_error="local", command_timeout=1.0, recover_after=0.3
    )
    await throttler.acquire()
    private_redis.stop()
    loop = asyncio.get_running_loop()
    times: list[float] = []
    for _ in range(10):
        await throttler.acquire(timeout=5)  # in this task: stamped just before the read
        times.append(loop.time())
    assert max_in_window(times, 0.2) <= 5
    assert throttler.redis_statistics().degraded or throttler.redis_statistics().backend_errors
    entry = await asyncio.wait_for(throttler.open_entry(), 5)  # a local entry meanwhile
    entry.close()
    assert throttler.statistics().in_flight == 0
    private_redis.start()
    await asyncio.sleep(0.35)
    before = throttler.redis_statistics().admitted
    await asyncio.wait_for(throttler.acquire(), 5)
    assert throttler.redis_statistics().admitted == before + 1
    assert not throttler.redis_statistics().degraded
    await throttler.aclose()
    await client.aclose()


async def test_failover_counts_entries_admitted_through_redis(
    private_redis: PrivateRedis,
) -> None:
    """At failover the local fallback counts this process's recent Redis admissions, so one
    window never holds twice the limit."""
    client = private_redis.client()
    throttler = RedisThrottler(
        5, 1.0, redis=client, key="f", on_error="local", command_timeout=0.5, recover_after=5
    )
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(5):
        await throttler.acquire()
        times.append(loop.time())
    assert throttler.redis_statistics().admitted == 5
    private_redis.stop()
    for _ in range(5):
        await asyncio.wait_for(throttler.acquire(), 5)
        times.append(loop.time())
    assert throttler.redis_statistics().degraded
    assert times[5] - times[0] >= 0.9  # the sixth waited for the first to leave the window
    assert max_in_window(times, 0.9) <= 5
    await throttler.aclose()
    await client.aclose()


async def test_recovery_keeps_counting_local_entries(private_redis: PrivateRedis) -> None:
    """After Redis comes back (empty), the entries the fallback admitted still count for
    one period: Redis does not know them."""
    client = private_redis.client()
    throttler = RedisThrottler(
        3, 1.0, redis=client, key="g", on_error="local", command_timeout=0.5, recover_after=0.2
    )
    private_redis.stop()
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(3):
        await asyncio.wait_for(throttler.acquire(), 5)
        times.append(loop.time())
    assert throttler.redis_statistics().admitted == 0
    private_redis.start()
    await asyncio.sleep(0.3)
    await asyncio.wait_for(throttler.acquire(), 5)
    times.append(loop.time())
    assert throttler.redis_statistics().admitted == 1  # Redis decided again...
    assert times[3] - times[0] >= 0.9  # ...but only once the local window had room
    await throttler.aclose()
    await client.aclose()


async def test_outage_allows_then_recovers(private_redis: PrivateRedis) -> None:
    """on_error="allow": an outage admits at once (open entries too); Redis resumes after."""
    client = private_redis.client()
    throttler = RedisThrottler(
        2, 10.0, redis=client, key="a", on_error="allow", command_timeout=1.0, recover_after=0.2
    )
    await throttler.acquire()
    private_redis.stop()
    await asyncio.wait_for(throttler.acquire(), 5)
    entry = await asyncio.wait_for(throttler.open_entry(), 5)
    entry.close()
    assert throttler.statistics().in_flight == 0
    private_redis.start()
    await asyncio.sleep(0.25)
    before = throttler.redis_statistics().admitted
    # Fresh Redis: at most the entry made before the outage counts (its stamp may be sent
    # again), so one more fits...
    await asyncio.wait_for(throttler.acquire(), 5)
    assert throttler.redis_statistics().admitted == before + 1
    with pytest.raises(ThrottlerTimeoutError):
        await throttler.acquire(timeout=0.2)  # ...and the limit is enforced again
    await throttler.aclose()
    await client.aclose()


async def test_try_acquire_while_degraded_asks_no_redis(private_redis: PrivateRedis) -> None:
    """While Redis is bypassed, try_acquire() makes no round trip: the local fallback
    decides (counting the entries made through Redis), "allow" admits, and a pause rules
    the entry out."""
    client = private_redis.client()
    options: dict[str, Any] = {"redis": client, "command_timeout": 0.5, "recover_after": 30}
    local = RedisThrottler(2, 5.0, key="y", on_error="local", **options)
    allow = RedisThrottler(1, 5.0, key="z", on_error="allow", **options)
    assert await local.try_acquire()  # through Redis
    private_redis.stop()
    assert await local.try_acquire()  # Redis failed: the fallback admits the second...
    assert local.redis_statistics().degraded
    trips = local.redis_statistics().round_trips
    assert not await local.try_acquire()  # ...but not a third: its window counts the first
    assert local.redis_statistics().round_trips == trips
    assert await allow.try_acquire()  # Redis failed: admitted
    assert await allow.try_acquire()  # bypassed: admitted, whatever the window
    allow.pause(60)
    assert not await allow.try_acquire()  # a pause holds even while degraded
    allow.resume()
    for throttler in (local, allow):
        await throttler.aclose()
    await client.aclose()


async def test_hung_redis_times_out(private_redis: PrivateRedis) -> None:
    """A Redis that stops answering (SIGSTOP) fails the call after command_timeout."""
    client = aioredis.Redis.from_url(private_redis.url, retry=Retry(NoBackoff(), 0))
    throttler = RedisThrottler(100, redis=client, key="z", command_timeout=0.3)
    await throttler.acquire()
    assert private_redis.proc is not None
    private_redis.proc.send_signal(19)  # SIGSTOP
    try:
        start = time.monotonic()
        with pytest.raises(ThrottlerBackendError, match=r"command_timeout=0\.3"):
            await asyncio.wait_for(throttler.acquire(), 10)
        assert time.monotonic() - start < 5  # 0.3 s, with a margin for a loaded machine
    finally:
        private_redis.proc.send_signal(18)  # SIGCONT
    await throttler.aclose()
    with contextlib.suppress(Exception):
        await client.aclose()


async def test_redis_cluster(tmp_path: Path) -> None:
    """On a (one-node) Redis Cluster every key of a throttler is in one slot and works."""
    server = PrivateRedis()
    config = tmp_path / "nodes.conf"
    bus = str(_free_port())  # the default bus port, port + 10000, may be taken or > 65535
    server.start(
        *("--cluster-enabled", "yes", "--cluster-port", bus),
        *("--cluster-config-file", str(config)),
    )
    try:
        admin = aioredis.Redis(port=server.port)
        command: Any = admin.execute_command
        await command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 15
        while b"cluster_state:ok" not in await command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the one-node cluster never came up"
            await asyncio.sleep(0.02)
        await admin.aclose()
        cluster = RedisCluster(host="127.0.0.1", port=server.port)
        throttler = RedisThrottler(
            rates=("3/0.2s", KEEP), redis=cluster, key="https://api.example.com:443"
        )
        await asyncio.gather(*(throttler.acquire() for _ in range(7)))
        await cluster.script_flush()
        entry = await throttler.open_entry()
        entry.close()
        throttler.pause(0.05)
        await throttler.aclose()
        rows = await cluster.zrange(throttler.redis_keys[0], 0, -1, withscores=True)
        times = [float(row[1]) / 1e6 for row in rows]
        assert len(times) == 8
        assert max_in_window(times, 0.2) <= 3
        await cluster.aclose()
    finally:
        server.stop()


@pytest.mark.parametrize("on_error", ["raise", "local", "allow"])
async def test_restart_mid_run(private_redis: PrivateRedis, on_error: OnError) -> None:
    """Ten busy tasks ride out a Redis kill and restart: none hangs, and Redis is used again."""
    client = private_redis.client()
    throttler = RedisThrottler(
        rates=("20/0.1s", KEEP),
        redis=client,
        key="mid",
        on_error=on_error,
        command_timeout=0.5,
        recover_after=0.1,
    )
    loop = asyncio.get_running_loop()
    end = math.inf  # 0.3 s after the restart, however long the restart takes
    errors = 0
    restarted_at = math.inf
    after_restart = 0

    async def worker() -> None:
        nonlocal errors, after_restart
        while loop.time() < end:
            try:
                await throttler.acquire()
            except ThrottlerBackendError:
                errors += 1
                await asyncio.sleep(0.01)
                continue
            if loop.time() > restarted_at:
                after_restart += 1

    tasks = asyncio.gather(*(worker() for _ in range(10)))
    await asyncio.sleep(0.15)
    private_redis.stop()
    await asyncio.sleep(0.25)
    private_redis.start()
    restarted_at = loop.time()
    end = restarted_at + 0.3
    await asyncio.wait_for(tasks, 5)
    assert after_restart > 0
    assert (errors > 0) == (on_error == "raise")
    # Redis decides again, once each connection the kill left dead in the pool has failed
    # (each such failure bypasses Redis for recover_after with "local" and "allow").
    admitted_before = throttler.redis_statistics().admitted
    deadline = time.monotonic() + 10
    while throttler.redis_statistics().admitted == admitted_before:
        assert time.monotonic() < deadline, "Redis was never used again"
        with contextlib.suppress(ThrottlerBackendError):
            await throttler.acquire()
    await throttler.aclose()
    await client.aclose()


# -- stalls, lost answers and data loss ---------------------------------------------------


@contextlib.contextmanager
def stalled(server: PrivateRedis) -> Iterator[None]:
    """Stop the server (SIGSTOP) for the block: it takes in every command, answers none,
    and runs them all once it continues (SIGCONT)."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.proc.send_signal(signal.SIGCONT)


async def open_members(client: aioredis.Redis, throttler: RedisThrottler) -> int:
    """How many members of the throttler's sorted set are open (scored after the server's
    now: admitted and never settled, counting in every window until ``open_timeout``)."""
    seconds, micros = await client.time()
    now = int(seconds) * 1_000_000 + int(micros)
    count: int = await client.zcount(throttler.redis_keys[0], f"({now}", "+inf")
    return count


async def until_no_open_member(client: aioredis.Redis, throttler: RedisThrottler) -> None:
    """Wait until no member is open; fail after 10 s (open_timeout is 60 s here)."""
    deadline = time.monotonic() + 10
    while await open_members(client, throttler):
        assert time.monotonic() < deadline, "members stay open until open_timeout"
        await asyncio.sleep(0.05)


async def until_stamped(client: aioredis.Redis, throttler: RedisThrottler, count: int) -> None:
    """Wait until the sorted set holds ``count`` members, none open (stamps are sent in the
    background); fail after 10 s."""
    deadline = time.monotonic() + 10
    while await client.zcard(throttler.redis_keys[0]) != count or await open_members(
        client, throttler
    ):
        assert time.monotonic() < deadline, "the stamps never reached Redis"
        await asyncio.sleep(0.01)


async def warm_up(client: aioredis.Redis) -> None:
    """Load the scripts and leave a connection in the pool, through a key of its own: a
    command sent during a stall then reaches the server, and runs when it continues."""
    throttler = RedisThrottler(1, redis=client, key="warm-up")
    async with throttler.entry():
        pass
    await throttler.aclose()


@pytest.mark.parametrize("on_error", ["raise", "local", "allow"])
async def test_admission_lost_in_a_stall_is_forgotten(
    private_redis: PrivateRedis, on_error: OnError
) -> None:
    """An admission whose answer a short stall lost (the call timed out, Redis ran it when
    it continued) is forgotten once Redis answers again: another process gets all 5 entries,
    where the 3 lost members used to stay open until open_timeout (60 s)."""
    client = aioredis.Redis.from_url(private_redis.url)
    await warm_up(client)
    options: dict[str, Any] = {"redis": client, "key": "api", "command_timeout": 0.3}
    first = RedisThrottler(5, 1.0, on_error=on_error, **options)
    with stalled(private_redis):
        results = await asyncio.gather(
            *(first.open_entry() for _ in range(3)), return_exceptions=True
        )
    for result in results:
        if on_error == "raise":
            assert isinstance(result, ThrottlerBackendError)
        else:
            assert not isinstance(result, BaseException)  # the fallback admitted it
            result.close()
    await until_no_open_member(client, first)
    second = RedisThrottler(5, 1.0, **options)
    assert [await second.try_acquire() for _ in range(5)] == [True] * 5
    for throttler in (first, second):
        await throttler.aclose()
    await client.aclose()


async def test_settle_lost_in_an_outage_is_sent_once_redis_answers(tmp_path: Path) -> None:
    """A settle that fails (Redis killed, then restarted with its data) is sent again once
    Redis answers, where the entry used to stay open there until open_timeout (60 s)."""
    server = PrivateRedis()
    server.start("--dir", str(tmp_path))
    try:
        client = server.client()
        throttler = RedisThrottler(1, 0.5, redis=client, key="s", command_timeout=0.5)
        entry = await throttler.open_entry()
        await client.save()  # the open entry survives the restart
        server.stop()
        entry.close()  # its settle fails: nobody listens
        deadline = time.monotonic() + 10
        while not throttler.redis_statistics().backend_errors:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        server.start("--dir", str(tmp_path))
        await until_no_open_member(client, throttler)
        other = RedisThrottler(1, 0.5, redis=client, key="s")
        await other.acquire(timeout=5)  # a period after the settle, not open_timeout
        for each in (throttler, other):
            await each.aclose()
        await client.aclose()
    finally:
        server.stop()


async def test_aclose_during_an_admission_leaves_nothing_open(
    private_redis: PrivateRedis,
) -> None:
    """aclose() while the pump waits for an admission that Redis then runs (a worker
    shutting down gracefully) forgets that admission: another process gets all 5 entries."""
    client = aioredis.Redis.from_url(private_redis.url)
    await warm_up(client)
    throttler = RedisThrottler(5, 1.0, redis=client, key="c", command_timeout=5)
    with stalled(private_redis):
        tasks = [asyncio.ensure_future(throttler.open_entry()) for _ in range(5)]
        deadline = time.monotonic() + 5
        while not throttler.redis_statistics().round_trips:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the admission is on the wire: Redis will run it
        closing = asyncio.ensure_future(throttler.aclose())
        await asyncio.sleep(0.1)
    await asyncio.wait_for(closing, 10)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, ThrottlerBackendError) for result in results)
    await until_no_open_member(client, throttler)
    other = RedisThrottler(5, 1.0, redis=client, key="c")
    assert [await other.try_acquire() for _ in range(5)] == [True] * 5
    await other.aclose()
    await client.aclose()


@pytest.mark.parametrize(
    ("waiters", "max_concurrency"),
    [
        pytest.param(200, None, id="200-waiters-in-batches-of-64"),
        pytest.param(20, 1, id="20-waiters-max_concurrency-1"),
    ],
)
async def test_hung_redis_fails_every_queued_waiter_at_once(
    private_redis: PrivateRedis, waiters: int, max_concurrency: int | None
) -> None:
    """on_error="raise": once one admission finds Redis hung, every queued waiter learns it
    from that one call (within one command_timeout), not one batch at a time."""
    client = aioredis.Redis.from_url(private_redis.url, retry=Retry(NoBackoff(), 0))
    await warm_up(client)
    throttler = RedisThrottler(
        100_000, redis=client, key="q", command_timeout=0.3, max_concurrency=max_concurrency
    )
    with stalled(private_redis):
        start = time.monotonic()
        results = await asyncio.wait_for(
            asyncio.gather(*(throttler.acquire() for _ in range(waiters)), return_exceptions=True),
            60,
        )
        elapsed = time.monotonic() - start
    errors = [r for r in results if isinstance(r, ThrottlerBackendError)]
    assert len(errors) == waiters
    assert len({id(error.__cause__) for error in errors}) == 1  # one failed call told all
    assert elapsed < 5  # one command_timeout (0.3 s), with a margin for a loaded machine
    await throttler.aclose()
    await client.aclose()


async def lose_data(server: PrivateRedis, client: aioredis.Redis, how: str) -> None:
    """Empty the server: restart it without persistence, or FLUSHALL."""
    if how == "restart":
        server.stop()
        server.start()
    else:
        await client.flushall()


@pytest.mark.parametrize(
    ("on_error", "how"),
    [
        pytest.param("raise", "restart", id="raise-restart"),
        pytest.param("local", "restart", id="local-restart"),
        pytest.param("allow", "restart", id="allow-restart"),
        pytest.param("raise", "flushall", id="raise-flushall"),
    ],
)
async def test_empty_redis_never_admits_past_the_shadow(
    private_redis: PrivateRedis, on_error: OnError, how: str
) -> None:
    """After Redis lost its data, this process still admits nothing past its own record of
    its recent entries (the shadow), through every entry point and in every on_error mode."""
    # Retries make the restart invisible: Redis answers, only empty.
    client = aioredis.Redis.from_url(private_redis.url, retry=Retry(NoBackoff(), 3))
    throttler = RedisThrottler(3, 60.0, redis=client, key="d", on_error=on_error)
    await throttler.acquire()
    entry = await throttler.open_entry()
    entry.close()
    assert await throttler.try_acquire()
    await until_stamped(client, throttler, 3)  # in Redis before it loses them
    await lose_data(private_redis, client, how)
    assert not await throttler.try_acquire()
    with pytest.raises(ThrottlerTimeoutError):
        await throttler.acquire(timeout=0.3)
    with pytest.raises(ThrottlerTimeoutError):
        await throttler.open_entry(timeout=0.3)
    stats = throttler.redis_statistics()
    assert (stats.admitted, stats.backend_errors) == (3, 0)  # Redis answered every call
    await throttler.aclose()
    await client.aclose()


async def test_two_bursts_around_a_restart_stay_within_the_limit(
    private_redis: PrivateRedis,
) -> None:
    """5 per 0.5 s, Redis restarted empty between two bursts of 5: the second waits for
    the first to leave this process's window (it used to enter at once: 10 in one window)."""
    client = aioredis.Redis.from_url(private_redis.url, retry=Retry(NoBackoff(), 3))
    throttler = RedisThrottler(5, 0.5, redis=client, key="b")
    loop = asyncio.get_running_loop()
    times: list[float] = []
    for _ in range(10):
        if len(times) == 5:
            await until_stamped(client, throttler, 5)
            await lose_data(private_redis, client, "restart")
        await throttler.acquire(timeout=5)  # in this task: stamped just before the read
        times.append(loop.time())
    # Each time is read just after its entry was stamped: allow that much (1 ms).
    assert max_in_window(times, 0.5 - 0.001) <= 5
    assert throttler.redis_statistics().admitted == 10
    await throttler.aclose()
    await client.aclose()


class LosesCancellations(aioredis.Redis):
    """A client that turns the cancellation of a call into a ConnectionError, as redis-py's
    own connect retries may (a cancellation arriving while they disconnect)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except asyncio.CancelledError:
            raise redis_sync.ConnectionError("connection lost while being cancelled") from None


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the loop ends with the client open
def test_loop_end_is_not_held_up_by_settles_being_retried(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """A loop that ends while a settle is being sent to a hung Redis ends at once (the
    settle is reported lost), even if the client turns the cancellation into an error: it
    is not taken for a failure to retry until open_timeout."""
    server = private_redis.proc
    assert server is not None

    async def worker() -> None:
        client = LosesCancellations.from_url(private_redis.url)
        throttler = RedisThrottler(1, redis=client, key="e", command_timeout=0.5, open_timeout=20)
        entry = await throttler.open_entry()
        server.send_signal(signal.SIGSTOP)
        entry.close()
        await asyncio.sleep(0.1)  # the settle is on its way: Redis will not answer

    start = time.monotonic()
    try:
        with caplog.at_level("WARNING", logger="throttled_http"):
            asyncio.run(worker())
    finally:
        server.send_signal(signal.SIGCONT)
    assert time.monotonic() - start < 10  # open_timeout (20 s) when taken for a failure
    assert "1 settle(s) of 'e' may not have reached Redis (the loop stopped first)" in caplog.text


# -- clients made from a URL --------------------------------------------------------------


async def _kill_clients(admin: aioredis.Redis) -> int:
    """``CLIENT KILL TYPE normal``: the server closes every client connection but
    ``admin``'s own. Returns how many it closed."""
    killed: int = await admin.client_kill_filter(_type="normal", skipme=True)
    return killed


async def test_url_client_reconnects_after_client_kill(private_redis: PrivateRedis) -> None:
    """A client made from a URL survives the server closing its connections between calls
    (``CLIENT KILL TYPE normal``): every later call reconnects and succeeds."""
    admin = aioredis.Redis(port=private_redis.port)
    throttler = RedisThrottler(100, 1.0, redis=private_redis.url, key="k")
    await throttler.acquire()
    for _ in range(3):
        assert await _kill_clients(admin) >= 1
        await asyncio.sleep(0.05)  # the server's close reaches the client first
        await asyncio.wait_for(throttler.acquire(), 5)
        assert await asyncio.wait_for(throttler.try_acquire(), 5)
        async with throttler.entry():
            pass
    statistics = throttler.redis_statistics()
    assert statistics.backend_errors == 0
    assert statistics.admitted == 10
    await throttler.aclose()
    await admin.aclose()


@pytest.mark.parametrize("on_error", ["raise", "local"])
async def test_url_client_rides_out_client_kills_mid_run(
    private_redis: PrivateRedis, on_error: OnError
) -> None:
    """Connections killed every 20 ms while 30 tasks acquire and hold entries cost no
    failed call and no fallback, and no window of the server's stamps holds more than
    the limit (each entry is in Redis once, even when an answer was lost and the call
    sent again)."""
    admin = aioredis.Redis(port=private_redis.port)
    throttler = RedisThrottler(
        rates=("5/0.25s", KEEP), redis=private_redis.url, key="m", on_error=on_error
    )

    async def worker(index: int) -> None:
        if index % 2:
            await throttler.acquire()
        else:
            async with throttler.entry():
                await asyncio.sleep(0.01)

    async def killer() -> None:
        while True:
            await _kill_clients(admin)
            await asyncio.sleep(0.02)

    kills = asyncio.create_task(killer())
    try:
        await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(30))), 60)
    finally:
        kills.cancel()
        await asyncio.gather(kills, return_exceptions=True)
    await throttler.aclose()
    statistics = throttler.redis_statistics()
    assert statistics.backend_errors == 0
    assert not statistics.degraded
    assert statistics.admitted == 30
    rows = await admin.zrange(throttler.redis_keys[0], 0, -1, withscores=True)
    times = [float(row[1]) / 1e6 for row in rows]
    assert len(times) == 30
    assert max_in_window(times, 0.25) <= 5
    await admin.aclose()
