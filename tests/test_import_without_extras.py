"""The core imports no HTTP client, no Redis client, no OpenTelemetry: extras stay optional."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import throttled_http
import throttled_http._holding
import throttled_http._pipeline
import throttled_http._httpx_core
from throttled_http import Throttler, Rate, parse_rates
clients = ("aiohttp", "httpx", "httpx2", "redis", "sniffio", "anyio", "httpcore", "httpcore2")
loaded = sorted(name for name in (*clients, "opentelemetry") if name in sys.modules)
loaded += sorted(name for name in sys.modules if name.startswith("throttled_http._redis"))
print(",".join(loaded))
"""


def test_core_import_loads_no_client_library() -> None:
    """Importing the core, its pipeline and the httpx transports' shared code loads no client."""
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
    assert result.stderr == ""


BLOCKED = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"aiohttp", "httpx", "httpx2", "redis", "opentelemetry"}:
            raise ImportError(f"blocked {name}")
        return None

sys.meta_path.insert(0, Block())
import throttled_http
import asyncio

async def main():
    throttler = throttled_http.Throttler(2, 1.0)
    async with throttler:
        pass
    return throttler.statistics().in_window

assert asyncio.run(main()) == 1
for extra in ("aiohttp", "httpx", "httpx2", "redis", "otel"):
    try:
        __import__(f"throttled_http.{extra}")
    except ImportError as error:
        print(extra, "->", error)
    else:
        print(extra, "-> imported")
"""


def test_core_works_without_extras_and_integrations_name_theirs() -> None:
    """With the client libraries missing, the core runs and each integration names its extra."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED], capture_output=True, text=True, check=True, timeout=60
    )
    lines = dict(line.split(" -> ", 1) for line in result.stdout.splitlines())
    assert set(lines) == {"aiohttp", "httpx", "httpx2", "redis", "otel"}
    for extra, message in lines.items():
        assert message != "imported", f"throttled_http.{extra} imported without {extra}"
        assert f"throttled_http[{extra}]" in message, message


ONE_LIBRARY = """
import sys
import throttled_http.{edge}
print(",".join(sorted(name for name in ("httpx", "httpx2", "httpcore", "httpcore2")
                      if name in sys.modules)))
"""


def test_each_httpx_integration_imports_its_own_library_only() -> None:
    """throttled_http.httpx2 loads httpx2 and not httpx; throttled_http.httpx the reverse."""
    for edge, other in (("httpx", ("httpx2", "httpcore2")), ("httpx2", ("httpx", "httpcore"))):
        result = subprocess.run(
            [sys.executable, "-c", ONE_LIBRARY.format(edge=edge)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        loaded = set(result.stdout.strip().split(","))
        assert edge in loaded
        assert not loaded & set(other), (edge, loaded)
        assert result.stderr == ""


LAZY = """
import sys
import throttled_http
assert "aiohttp" not in sys.modules and "httpx" not in sys.modules
from throttled_http import ThrottledClientSession, ThrottledTransport, SyncThrottledTransport
from throttled_http.aiohttp import ThrottledClientSession as Session
from throttled_http.httpx import ThrottledTransport as Transport
assert ThrottledClientSession is Session and ThrottledTransport is Transport
assert "ThrottledTransport" in dir(throttled_http)
print("ok")
"""

NO_HTTPX = """
import sys
sys.modules["httpx"] = None  # as if the [httpx] extra were not installed
try:
    from throttled_http import ThrottledTransport
except ImportError as exc:
    print(exc)
"""


def test_the_integrations_main_classes_import_lazily_from_the_package() -> None:
    """``from throttled_http import ThrottledTransport`` works and loads httpx only then."""
    result = subprocess.run(
        [sys.executable, "-c", LAZY], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "ok"


def test_a_lazy_name_without_its_extra_names_the_extra() -> None:
    """Without httpx, the lazy import raises an ImportError saying which extra to install."""
    result = subprocess.run(
        [sys.executable, "-c", NO_HTTPX], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install throttled_http[httpx]" in result.stdout
