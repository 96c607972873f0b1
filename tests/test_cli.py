"""End to end: ``python -m throttled_http`` (version, demo, fetch) against local servers.

The command runs in a subprocess, as a user runs it; the servers it talks to run in the
test's own event loop, so they record what the command really sent. These tests use the
real clock, with generous margins.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from throttled_http import Rate, __version__
from throttled_http.__main__ import _parser
from throttled_http._demo import (
    _figure,
    _HostPlan,
    _HostResult,
    _plans,
    _report,
    max_in_window,
    sustained_rate,
)
from throttled_http._fetch import (
    LOG_NAME,
    USER_AGENT,
    UsageError,
    key_of,
    load_done,
    load_gone,
    parse_options,
    parse_urls,
    safe_name,
)
from throttled_http.testing import RecordingServer

pytestmark = pytest.mark.realclock

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0  # seconds any one command may take, far above what it needs


@dataclass(frozen=True, slots=True)
class Run:
    """What one command did."""

    code: int
    out: str
    err: str


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="error", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    return env


async def cli(*args: str, stdin: bytes | None = None, code: str | None = None) -> Run:
    """Run ``python -m throttled_http ARGS`` (or ``python -c CODE ARGS``) to completion."""
    command = ["-c", code, *args] if code is not None else ["-m", "throttled_http", *args]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), TIMEOUT)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def read_log(folder: Path) -> list[dict[str, object]]:
    """The JSON-lines log of a fetch into ``folder``; every line must parse."""
    lines = (folder / LOG_NAME).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# -- --version ---------------------------------------------------------------------------


async def test_version() -> None:
    """``--version`` prints the single-sourced version and exits 0."""
    run = await cli("--version")
    assert run.code == 0
    assert run.out.strip() == f"throttled_http {__version__}"


async def test_no_command_prints_help() -> None:
    """With no subcommand the help is printed and the exit code is 2."""
    run = await cli()
    assert run.code == 2
    assert "demo" in run.out
    assert "fetch" in run.out


# -- demo --------------------------------------------------------------------------------

_WITHOUT_RICH = (
    "import sys\n"
    "sys.modules['rich'] = None  # as if rich were not installed\n"
    "from throttled_http.__main__ import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


async def test_demo_quick_without_rich(tmp_path: Path) -> None:
    """The quick demo runs without rich, verifies every limit at the servers, exits 0.

    ``--plot`` writes a PNG when matplotlib is installed and is refused (exit 2, before
    any work) when it is not.
    """
    png = tmp_path / "timeline.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        run = await cli("demo", "--quick", "--plot", str(png), code=_WITHOUT_RICH)
        assert run.code == 2
        assert "needs matplotlib" in run.err
        run = await cli("demo", "--quick", code=_WITHOUT_RICH)
    else:
        run = await cli("demo", "--quick", "--plot", str(png), code=_WITHOUT_RICH)
        assert png.read_bytes().startswith(b"\x89PNG")
    assert run.code == 0, run.out + run.err
    assert "Traceback" not in run.err
    assert "every configured limit held at the server" in run.out
    for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        assert host in run.out
    assert "━" not in run.out  # plain text: no rich bars


def _demo_results() -> dict[str, dict[str, _HostResult]]:
    """What the quick demo's two clients could have done to its three hosts: all held."""
    results: dict[str, dict[str, _HostResult]] = {}
    for client in ("aiohttp", "httpx"):
        results[client] = {}
        for plan in _plans(quick=True):
            per = plan.ours.limit
            times = [i // per + 0.01 * (i % per) for i in range(plan.requests)]
            early = times[:5] if plan.adapt else []
            results[client][plan.address] = _HostResult(
                plan,
                arrivals=times,
                rejections=early,
                ok=plan.requests,
                rejected=len(early),
                paused=1.0 if early else 0.0,
                pace=Rate(5, 1.0) if plan.adapt else None,
            )
    return results


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "rich"])
@pytest.mark.parametrize("width", [80, 120])
def test_demo_table_fits_the_console(
    width: int, plain: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """At 80 columns as at 120, no line is wider than the console and every row names its
    client and its whole host; only a narrow console leaves columns out, and says so.
    """
    if not plain:
        pytest.importorskip("rich")
    monkeypatch.setenv("COLUMNS", str(width))
    assert _report(_demo_results(), 1.2, None, plain) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= width
    rows = [line.split()[:2] for line in lines if line.startswith(("aiohttp ", "httpx "))]
    expected = [
        [c, h] for c in ("aiohttp", "httpx") for h in ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    ]
    assert rows == expected
    header = next(line.split() for line in lines if line.startswith("client "))
    assert {"limit", "max/window", "429s", "paused", "check"} <= set(header)
    assert ("rate/s" in header) == (width == 120)
    assert ("Left out to fit" in " ".join(lines)) == (width == 80)


def test_demo_plot_keeps_hosts_apart() -> None:
    """Each host's arrivals get a panel of their own and a colour, line style and marker
    that no other host has, the same for both clients, with a legend in every panel.
    """
    pytest.importorskip("matplotlib")
    figure = _figure(_demo_results())
    styles: dict[str, set[tuple[object, ...]]] = {}
    for ax in figure.axes:
        labels = {str(line.get_label()): line for line in ax.get_lines()}
        arrivals = [label for label in labels if label.endswith(": arrivals")]
        assert len(arrivals) == 1
        line = labels[arrivals[0]]
        host = arrivals[0].removesuffix(": arrivals")
        style = (line.get_color(), line.get_linestyle(), line.get_marker())
        styles.setdefault(host, set()).add(style)
        assert ax.get_legend() is not None
    assert sorted(styles) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert all(len(seen) == 1 for seen in styles.values())  # alike across clients
    colors, linestyles, markers = zip(*(next(iter(seen)) for seen in styles.values()), strict=True)
    assert len(set(colors)) == len(set(linestyles)) == len(set(markers)) == 3


def _requirement_names(extra: str, extras: dict[str, list[str]]) -> set[str]:
    """The distributions `pip install 'throttled_http[EXTRA]'` brings, extras followed."""
    names: set[str] = set()
    for requirement in extras[extra]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        if name == "throttled_http":
            inner = requirement[requirement.index("[") + 1 : requirement.index("]")]
            for other in inner.split(","):
                names |= _requirement_names(other.strip(), extras)
        else:
            names.add(name)
    return names


def _demo_help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """``demo --help``, its whitespace collapsed."""
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        _parser().parse_args(["demo", "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_demo_plot_extra_is_enough(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The extra that ``--plot`` names installs the demo's needs as well as matplotlib."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = project["project"]["optional-dependencies"]
    plot = _requirement_names("plot", extras)
    assert plot >= _requirement_names("demo", extras) | {"matplotlib"}
    assert {"aiohttp", "httpx", "rich"} <= plot
    assert "pip install 'throttled_http[plot]'" in _demo_help(monkeypatch, capsys)


def test_demo_duration_is_stated_alike(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``demo --help`` gives the demo's durations; docs/cli.md and the README say the same."""
    found = re.search(
        r"about ([\d.]+) s instead of about ([\d.]+) s", _demo_help(monkeypatch, capsys)
    )
    assert found is not None
    quick, full = found.groups()
    docs = " ".join((ROOT / "docs" / "cli.md").read_text(encoding="utf-8").split())
    assert f"about {full} s (`--quick`: about {quick} s)" in docs
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"about {full} s" in readme


# -- fetch: input checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "options", "message"),
    [
        pytest.param(["http://127.0.0.1:1/"], ["--rate", "fast"], "--rate", id="bad-rate"),
        pytest.param(["http://127.0.0.1:1/"], ["--rate", "1.5/s"], "--rate", id="float-rate"),
        pytest.param(["ftp://127.0.0.1/x"], [], "line 1", id="not-http"),
        pytest.param(["http://127.0.0.1:1/", "http://"], [], "line 2", id="no-host"),
        pytest.param(["http://127.0.0.1:99999/"], [], "line 1", id="bad-port"),
        pytest.param(["", "# only a comment"], [], "no URL", id="empty"),
        pytest.param(["http://127.0.0.1:1/"], ["--concurrency", "0"], "--concurrency", id="conc"),
        pytest.param(
            ["http://127.0.0.1:1/"],
            ["--concurrency", "99999999999999999999"],
            "--concurrency must be an integer from 1 to 2**62",
            id="conc-huge",
        ),
        pytest.param(
            ["http://127.0.0.1:1/", "http://a\x00b.example/"],
            [],
            "line 2: a host no limit can be kept for",
            id="nul-host",
        ),
        pytest.param(
            ["http://a<b.example/", "http://127.0.0.1:1/"],
            [],
            "line 1: a host no limit can be kept for",
            id="angle-host",
        ),
        pytest.param(["http://127.0.0.1:1/"], ["--timeout", "nan"], "--timeout", id="timeout"),
        pytest.param(["http://127.0.0.1:1/"], ["--header", "NoColon"], "--header", id="header"),
        pytest.param(["http://127.0.0.1:1/"], ["--header", "Bad Name: x"], "--header", id="name"),
        pytest.param(["http://127.0.0.1:1/"], ["--host-rate", "a.test"], "HOST=RATE", id="hr"),
        pytest.param(["http://127.0.0.1:1/"], ["--host-rate", "a.test=fast"], "a.test", id="hr2"),
        pytest.param(["http://127.0.0.1:1/"], ["--host-rate", "=1/s"], "HOST=RATE", id="hr3"),
        pytest.param(["http://127.0.0.1:1/"], ["--host-rate", "a b=1/s"], "--host-rate", id="hr4"),
    ],
)
async def test_fetch_bad_input(
    tmp_path: Path, lines: list[str], options: list[str], message: str
) -> None:
    """Bad input gets a one-line message naming the problem and exit code 2."""
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = await cli("fetch", str(urls), "--out", str(tmp_path / "out"), *options)
    assert run.code == 2
    assert "Traceback" not in run.err
    assert message in run.err
    assert len(run.err.strip().splitlines()) == 1


async def test_fetch_unreadable_file(tmp_path: Path) -> None:
    """A missing URL file is reported by name, exit code 2, no traceback."""
    run = await cli("fetch", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o"))
    assert run.code == 2
    assert run.err.startswith("error: cannot read")
    assert "missing.txt" in run.err
    assert "Traceback" not in run.err


async def test_fetch_bad_argument_type(tmp_path: Path) -> None:
    """A non-numeric option is refused by the parser with its usage line and exit 2."""
    run = await cli("fetch", "-", "--concurrency", "many")
    assert run.code == 2
    assert "--concurrency" in run.err
    assert "Traceback" not in run.err


def test_parse_urls_dedupes_and_skips_comments() -> None:
    """Blank lines and comments are skipped and a repeated URL is fetched once."""
    assert parse_urls(["# c", "http://a.test/1", "", "http://a.test/1", "https://b.test"]) == [
        "http://a.test/1",
        "https://b.test",
    ]


def test_parse_urls_names_every_bad_line() -> None:
    """The error names the lines that are not http(s) URLs with a host."""
    with pytest.raises(UsageError, match=r"line 1: .*line 3: "):
        parse_urls(["mailto:x@y", "http://ok.test", "http:///nohost"])


@pytest.mark.parametrize(
    "url",
    [
        "http://h.test/../../etc/passwd",
        "http://h.test/%2e%2e%2f%2e%2e%2fsecret",
        "http://h.test/a/..",
        "http://h.test/.hidden",
        "http://h.test/C:%5Cwindows%5Cwin.ini",
        "http://h.test/" + "x" * 500,
        "http://h.test/",
    ],
)
def test_safe_name_stays_in_folder(tmp_path: Path, url: str) -> None:
    """A file name from any URL is one plain component inside the output folder."""
    name = safe_name(url)
    assert "/" not in name
    assert "\\" not in name
    assert not name.startswith(".")
    assert len(name) <= 80
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


def test_safe_name_keeps_distinct_urls_apart() -> None:
    """Two URLs with the same last segment get different names."""
    assert safe_name("http://a.test/x/index.html") != safe_name("http://a.test/y/index.html")


def test_load_done_ignores_torn_and_failed_lines(tmp_path: Path) -> None:
    """Only complete lines with a 2xx status count as done."""
    log = tmp_path / LOG_NAME
    log.write_text(
        '{"url": "http://a.test/1", "status": 200}\n'
        '{"url": "http://a.test/2", "status": 503}\n'
        '{"url": "http://a.test/3", "status": null}\n'
        "[1, 2]\n"
        '{"url": "http://a.test/4", "sta',
        encoding="utf-8",
    )
    assert load_done(log) == {"http://a.test/1"}
    assert load_done(tmp_path / "missing.jsonl") == set()


def test_load_gone_reads_the_last_record_of_each_url(tmp_path: Path) -> None:
    """A URL is gone when its last record says 404 or 410; a later 200 brings it back."""
    log = tmp_path / LOG_NAME
    log.write_text(
        '{"url": "http://a.test/1", "status": 404, "permanent": true}\n'
        '{"url": "http://a.test/2", "status": 410, "permanent": true}\n'
        '{"url": "http://a.test/2", "status": 200}\n'
        '{"url": "http://a.test/3", "status": 500}\n',
        encoding="utf-8",
    )
    assert load_gone(log) == {"http://a.test/1"}
    assert load_gone(tmp_path / "missing.jsonl") == set()


def test_keys_for_progress() -> None:
    """Progress bars group URLs by host, or by registered domain with ``--per domain``."""
    assert key_of("https://News.BBC.co.uk/a", "host") == "news.bbc.co.uk"
    assert key_of("https://news.bbc.co.uk/a", "domain") == "bbc.co.uk"
    assert key_of("http://127.0.0.2:8080/", "domain") == "127.0.0.2"


# -- fetch: end to end -------------------------------------------------------------------


async def test_fetch_downloads_each_url_once_and_resumes(tmp_path: Path) -> None:
    """Bodies and log lines are written; a second run downloads nothing again."""
    out = tmp_path / "out"
    async with RecordingServer() as server:
        urls = [server.url(f"/?n={i}", host=i % 2) for i in range(6)]
        urls.append(server.url("/stream/3"))
        text = "\n".join(["# a comment", *urls, urls[0], ""])
        run = await cli("fetch", "-", "--rate", "20/s", "--out", str(out), stdin=text.encode())
        assert run.code == 0, run.out + run.err
        records = read_log(out)
        assert sorted(str(r["url"]) for r in records) == sorted(urls)
        for record in records:
            assert record["status"] == 200
            assert record["attempts"] == 1
            assert isinstance(record["elapsed"], float)
            assert isinstance(record["waited"], float)
            assert str(record["started"]).endswith("Z")
            body = (out / str(record["file"])).read_bytes()
            assert len(body) == record["bytes"]
        assert len(server.arrivals) == len(urls)
        assert not list(out.glob("*.part"))

        again = await cli("fetch", "-", "--out", str(out), stdin=text.encode())
        assert again.code == 0, again.out + again.err
        assert "0 to download, 7 already done" in again.out
        assert len(server.arrivals) == len(urls)
        assert len(read_log(out)) == len(urls)


async def test_fetch_after_a_torn_log_line_keeps_every_record_readable(tmp_path: Path) -> None:
    """A run killed mid-write leaves half a line; the next run's records still parse."""
    out = tmp_path / "out"
    out.mkdir()
    (out / LOG_NAME).write_text('{"url": "http://127.0.0.1:1/", "sta', encoding="utf-8")
    async with RecordingServer() as server:
        urls = [server.url(f"/?n={i}") for i in range(2)]
        run = await cli(
            "fetch", "-", "--rate", "20/s", "--out", str(out), stdin="\n".join(urls).encode()
        )
        assert run.code == 0, run.out + run.err
        lines = (out / LOG_NAME).read_text(encoding="utf-8").splitlines()
        assert lines[0] == '{"url": "http://127.0.0.1:1/", "sta'
        assert sorted(json.loads(line)["url"] for line in lines[1:]) == sorted(urls)
        again = await cli("fetch", "-", "--out", str(out), stdin="\n".join(urls).encode())
        assert "0 to download, 2 already done" in again.out


async def test_fetch_reports_failures(tmp_path: Path) -> None:
    """A 404 is final; a 503 and a refused connection are retried; all logged; exit 1."""
    out = tmp_path / "out"
    async with RecordingServer() as server:
        missing = server.url("/status/404")
        broken = server.url("/status/503")
        good = server.url("/")
        refused = "http://127.0.0.1:1/nothing-listens-here"
        text = "\n".join([missing, broken, good, refused])
        run = await cli(
            "fetch", "-", "--out", str(out), "--retries", "1", "--plain", stdin=text.encode()
        )
        assert run.code == 1
        assert "failed 3" in run.out
        by_url = {r["url"]: r for r in read_log(out)}
        assert by_url[missing]["status"] == 404
        assert by_url[missing]["attempts"] == 1
        assert by_url[broken]["status"] == 503
        assert by_url[broken]["attempts"] == 2
        assert by_url[good]["status"] == 200
        assert by_url[refused]["status"] is None
        assert by_url[refused]["attempts"] == 2
        assert by_url[refused]["error"]
        assert load_done(out / LOG_NAME) == {good}


async def test_fetch_honours_retry_after(tmp_path: Path) -> None:
    """A URL answered 429 is sent again only after its Retry-After, and then succeeds.

    Our rate (20/s) is far above the server's (2/s), one request at a time: the third URL
    gets a 429 with ``Retry-After`` (whole seconds, >= 1), and the next arrival at the
    server, its retry, comes no sooner.
    """
    out = tmp_path / "out"
    async with RecordingServer(hosts=("127.0.0.1",), server_limit="2/s") as server:
        urls = [server.url(f"/?n={i}") for i in range(3)]
        run = await cli(
            "fetch",
            "-",
            "--rate",
            "20/s",
            "--concurrency",
            "1",
            "--retries",
            "5",
            "--out",
            str(out),
            stdin="\n".join(urls).encode(),
        )
        assert run.code == 0, run.out + run.err
        assert server.rejected.get("127.0.0.1", 0) >= 1
        arrivals = sorted(server.arrivals, key=lambda a: a.time)
        for previous, following in itertools.pairwise(arrivals):
            if previous.status == 429:
                assert following.time - previous.time >= 0.99
        records = read_log(out)
        assert all(r["status"] == 200 for r in records)
        assert len(records) == len(urls)
        assert max(float(str(r["waited"])) for r in records) >= 0.99


async def test_fetch_gone_is_permanent_unless_asked(tmp_path: Path) -> None:
    """A 404 or 410 is logged as permanent and not fetched on resume; --refetch-gone does."""
    out = tmp_path / "out"
    async with RecordingServer() as server:
        urls = [server.url("/status/404"), server.url("/status/410"), server.url("/")]
        text = "\n".join(urls).encode()
        first = await cli("fetch", "-", "--out", str(out), "--plain", stdin=text)
        assert first.code == 1
        records = {r["url"]: r for r in read_log(out)}
        assert records[urls[0]]["permanent"] is True
        assert records[urls[1]]["permanent"] is True
        assert "permanent" not in records[urls[2]]
        assert len(server.arrivals) == 3

        again = await cli("fetch", "-", "--out", str(out), stdin=text)
        assert again.code == 0, again.out + again.err
        assert "0 to download, 1 already done, 2 gone (404/410" in again.out
        assert len(server.arrivals) == 3

        asked = await cli("fetch", "-", "--out", str(out), "--refetch-gone", stdin=text)
        assert asked.code == 1
        assert "2 to download, 1 already done" in asked.out
        assert len(server.arrivals) == 5


async def test_fetch_sends_the_user_agent_and_headers(tmp_path: Path) -> None:
    """Every request carries --user-agent and the --header fields."""
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="ok")

    async with RecordingServer(routes=[web.get("/echo/{n}", echo)]) as server:
        custom = await cli(
            "fetch",
            "-",
            "--out",
            str(tmp_path / "b"),
            "--user-agent",
            "my-crawler/1.0 (+https://example.com/bot)",
            "--header",
            "Accept: text/html",
            "--header",
            "X-Team: data",
            stdin=server.url("/echo/2").encode(),
        )
    assert custom.code == 0, custom.out + custom.err
    (headers,) = seen
    assert headers["User-Agent"] == "my-crawler/1.0 (+https://example.com/bot)"
    assert headers["Accept"] == "text/html"
    assert headers["X-Team"] == "data"


def test_fetch_identifies_itself_by_default() -> None:
    """Without --user-agent, requests say throttled-http and its version."""
    options = parse_options(_parser().parse_args(["fetch", "urls.txt"]))
    assert options.headers == (("User-Agent", USER_AGENT),)
    assert f"throttled-http/{__version__}" == USER_AGENT
    assert not options.adapt
    assert not options.refetch_gone


async def test_fetch_host_rate_limits_one_host(tmp_path: Path) -> None:
    """--host-rate 127.0.0.2=2/s holds that host to 2 in any second, the other to --rate."""
    async with RecordingServer() as server:
        urls = [server.url(f"/?n={i}", host=1) for i in range(3)]
        urls += [server.url(f"/?n={i}", host=0) for i in range(3)]
        run = await cli(
            "fetch",
            "-",
            "--rate",
            "50/s",
            "--host-rate",
            "127.0.0.2=2/s",
            "--out",
            str(tmp_path / "out"),
            stdin="\n".join(urls).encode(),
        )
        assert run.code == 0, run.out + run.err
        assert "(1 per-host)" in run.out
        assert server.max_in_window(1.0, host="127.0.0.2") <= 2
        assert server.max_in_window(1.0, host="127.0.0.1") == 3  # not held to 2/s


async def test_fetch_adapt_gets_everything_from_a_stricter_server(tmp_path: Path) -> None:
    """--adapt against a server allowing less than --rate: everything arrives, with far
    fewer refusals than the requests sent (a generous bound, on the real clock)."""
    async with RecordingServer(hosts=("127.0.0.1",), server_limit="4/s") as server:
        urls = [server.url(f"/?n={i}") for i in range(8)]
        run = await cli(
            "fetch",
            "-",
            "--rate",
            "10/s",
            "--adapt",
            "--retries",
            "10",
            "--out",
            str(tmp_path / "out"),
            stdin="\n".join(urls).encode(),
        )
        assert run.code == 0, run.out + run.err
        assert "adapting to refusals" in run.out
        assert all(r["status"] == 200 for r in read_log(tmp_path / "out"))
        assert server.rejected.get("127.0.0.1", 0) <= 6


@pytest.mark.parametrize("target", ["http://a|b/", "http://a..b/"], ids=["pipe", "empty-label"])
async def test_fetch_records_a_hostile_redirect_and_fetches_the_rest(
    tmp_path: Path, target: str
) -> None:
    """A redirect to a URL aiohttp or the key parser refuses fails that URL only, once."""

    async def hostile(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": target})

    out = tmp_path / "out"
    async with RecordingServer(routes=[web.get("/hostile", hostile)]) as server:
        urls = [server.url("/hostile"), *(server.url(f"/?n={i}") for i in range(5))]
        run = await cli(
            "fetch", "-", "--out", str(out), "--retries", "2", stdin="\n".join(urls).encode()
        )
    assert run.code == 1, run.out + run.err
    assert "Traceback" not in run.err
    by_url = {str(r["url"]): r for r in read_log(out)}
    assert set(by_url) == set(urls)
    assert by_url[urls[0]]["status"] is None
    assert by_url[urls[0]]["attempts"] == 1  # the same redirect would fail the same way
    assert all(by_url[u]["status"] == 200 for u in urls[1:])


async def _fetch_until_three_logged(listing: Path, out: Path) -> asyncio.subprocess.Process:
    """Start ``fetch`` of ``listing`` at 2/s in a child process; return once 3 are logged."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "throttled_http",
        "fetch",
        str(listing),
        "--rate",
        "2/s",
        "--out",
        str(out),
        "--plain",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    log = out / LOG_NAME
    for _ in range(int(TIMEOUT / 0.05)):
        if log.exists() and len(log.read_text(encoding="utf-8").splitlines()) >= 3:
            break
        await asyncio.sleep(0.05)
    return proc


async def test_fetch_interrupt_then_resume(tmp_path: Path) -> None:
    """Ctrl-C exits 130 with a consistent log and no partial file; rerunning completes.

    The URLs logged before the interrupt are not downloaded again: the final log holds
    exactly one line per URL.
    """
    out = tmp_path / "out"
    async with RecordingServer() as server:
        urls = [server.url(f"/?n={i}") for i in range(12)]
        listing = tmp_path / "urls.txt"
        listing.write_text("\n".join(urls) + "\n", encoding="utf-8")
        proc = await _fetch_until_three_logged(listing, out)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 130, stdout.decode() + stderr.decode()
        assert "Traceback" not in stderr.decode()
        assert "interrupted" in stdout.decode()
        first = read_log(out)
        assert 3 <= len(first) < len(urls)
        assert all(r["status"] == 200 for r in first)
        assert not list(out.glob("*.part"))
        done = {str(r["url"]) for r in first}
        assert server.max_in_window(1.0) <= 2  # --rate 2/s held at the server

        run = await cli("fetch", str(listing), "--rate", "50/s", "--out", str(out))
        assert run.code == 0, run.out + run.err
        assert f"{len(urls) - len(done)} to download, {len(done)} already done" in run.out
        final = read_log(out)
        assert {str(r["url"]) for r in final} == set(urls)
        assert len(final) == len(urls)


async def test_fetch_a_second_ctrl_c_still_counts_what_was_fetched(tmp_path: Path) -> None:
    """Two Ctrl-C in a row: exit 130, and the summary counts every record the log holds."""
    out = tmp_path / "out"
    async with RecordingServer() as server:
        urls = [server.url(f"/?n={i}") for i in range(12)]
        listing = tmp_path / "urls.txt"
        listing.write_text("\n".join(urls) + "\n", encoding="utf-8")
        proc = await _fetch_until_three_logged(listing, out)
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGINT)  # the second, as the first is being handled
        stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 130, stdout.decode() + stderr.decode()
    records = read_log(out)
    assert len(records) >= 3
    fetched = sum(1 for r in records if r["status"] == 200)
    assert f"fetched {fetched}," in stdout.decode(), stdout.decode() + stderr.decode()


# -- demo: its own verdict ---------------------------------------------------------------


def _result(
    times: list[float],
    *,
    rejected: int = 0,
    server: Rate | None = None,
    late: list[float] | None = None,
) -> _HostResult:
    plan = _HostPlan("127.0.0.9", len(times), Rate(10, 1.0), server, override=False)
    return _HostResult(
        plan, arrivals=times, ok=len(times), rejected=rejected, rejections=late or []
    )


@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        pytest.param(_result([i / 10 for i in range(20)]), 0, id="held"),
        pytest.param(_result([0.0] * 10 + [0.99]), 1, id="11-in-one-window"),
        pytest.param(_result([0.0] * 5, rejected=2, server=Rate(20, 1.0)), 1, id="needless-429"),
        pytest.param(_result([0.0] * 5, rejected=2, server=Rate(5, 1.0)), 0, id="expected-429"),
        pytest.param(
            _result([0.0, 0.5, 1.0, 9.0, 10.0], rejected=1, server=Rate(5, 1.0), late=[9.5]),
            1,
            id="adapting-host-never-settled",
        ),
    ],
)
def test_demo_verdict(
    result: _HostResult, verdict: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo fails on a window over our limit, or a 429 from a server we fit under."""
    assert _report({"aiohttp": {"127.0.0.9": result}}, 1.0, None, True) == verdict
    captured = capsys.readouterr()
    assert ("FAILED" in captured.err) == bool(verdict)


def test_max_in_window_half_open() -> None:
    """Windows are half-open: an arrival exactly one period later starts a new one."""
    assert max_in_window([0.0, 0.5, 1.0, 1.5], 1.0) == 2
    assert max_in_window([], 1.0) == 0
    assert sustained_rate([0.0] * 10 + [1.0] * 10, 1.0) == 10.0
