"""`throttled-http fetch`: a polite, resumable downloader.

```console
throttled-http fetch urls.txt --rate 2/s --per domain --concurrency 4 --out DIR
throttled-http fetch urls.txt --rate 5/s --adapt --host-rate api.example.com=1/s
```

Each URL of the input (one per line; blank lines and `#` comments skipped; `-` reads
standard input) is downloaded once, through
[`ThrottledClientSession`][throttled_http.aiohttp.ThrottledClientSession]:

* at most `--rate` requests per host (`--per host`) or per registered domain
  (`--per domain`) in any window (`--host-rate HOST=RATE` for one host or pattern), and
  at most `--concurrency` at once per key;
* a 429 or 503 with `Retry-After` pauses that host for the time asked (capped by
  `--max-retry-after`): the session's [`FeedbackPolicy`][throttled_http.FeedbackPolicy] does it,
  and a retry waits for the pause in the throttler like any request; with `--adapt`
  every refusal also lowers that host's pace until it stops refusing
  (`FeedbackPolicy(adapt=True)`), and a host's first response is awaited before the rest;
* every request carries `--user-agent` (`throttled-http/VERSION` by default) and the
  `--header` fields;
* 408, 429 and 5xx answers, connection errors and timeouts are retried up to `--retries`
  times, after the policy's backoff (doubling from 0.5 s up to 30 s, with jitter) and,
  through the throttler, after any pause the server asked for;
* a body is written to `DIR/<name>.part` and renamed to `DIR/<name>` once complete,
  where `<name>` is 12 hex digits of the URL's SHA-256 and a sanitized last path
  segment: never a path outside `DIR`;
* `DIR/fetch-log.jsonl` gets one JSON line per finished URL, as it finishes:
  `url`, `status` (`null` after a connection error), `bytes`, `started` (UTC,
  ISO 8601), `elapsed` (seconds), `waited` (seconds spent queued by the throttler,
  paused by Retry-After and backing off), `attempts`, `file` and `error`;
* a 404 or 410 is final and logged with `"permanent": true`;
* Ctrl-C stops cleanly: downloads in progress are abandoned (their `.part` files
  removed), a summary is printed and the exit code is 130. Running the same command again
  resumes: URLs already logged with a 2xx status are skipped, and so are those logged as
  gone (404, 410) unless `--refetch-gone` is given.

Exit codes: 0 all done, 1 some URLs failed, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO, final
from urllib.parse import unquote, urlsplit

from ._demo import Board, print_table
from ._exceptions import InvalidRateError, InvalidURLError
from ._feedback import FeedbackPolicy
from ._hostmap import ThrottlerMap
from ._keys import split_url
from ._rates import Rate
from ._validate import MAX_INT
from ._version import __version__

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "FetchOptions",
    "UsageError",
    "load_done",
    "load_gone",
    "parse_urls",
    "run_fetch",
    "safe_name",
]

LOG_NAME: Final = "fetch-log.jsonl"
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
GONE_STATUSES: Final = frozenset({404, 410})
"""Statuses recorded as permanent: not fetched again on resume without `--refetch-gone`."""
USER_AGENT: Final = f"throttled-http/{__version__}"
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a field name (RFC 9110 §5.6.2)
BACKOFF_FIRST: Final = 0.5
BACKOFF_MAX: Final = 30.0
_SAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_BAD_LINES: Final = 5


class UsageError(Exception):
    """Bad input: the message is printed as one line and the exit code is 2."""


@final
@dataclass(frozen=True, slots=True)
class FetchOptions:
    """Validated options of one `fetch` run.

    Attributes:
        rates: the limits per key, all of which must allow a request.
        per: `"host"` or `"domain"`.
        concurrency: requests in flight at once per key, >= 1.
        out: the output folder.
        retries: retries after a transient failure, >= 0.
        timeout: seconds allowed for one attempt, body included, > 0.
        max_retry_after: cap in seconds on a server's Retry-After, >= 0.
        plain: plain text output.
        adapt: lower a host's pace on refusals (`FeedbackPolicy(adapt=True)`).
        host_rates: per-host (or pattern) rates, as `ThrottlerMap` overrides.
        headers: request header fields, User-Agent first.
        refetch_gone: fetch URLs logged as gone (404, 410) again.
    """

    rates: tuple[Rate, ...]
    per: Literal["host", "domain"]
    concurrency: int
    out: Path
    retries: int
    timeout: float
    max_retry_after: float
    plain: bool = False
    adapt: bool = False
    host_rates: tuple[tuple[str, tuple[Rate, ...]], ...] = ()
    headers: tuple[tuple[str, str], ...] = (("User-Agent", USER_AGENT),)
    refetch_gone: bool = False

    def throttler(self) -> ThrottlerMap:
        """The per-key map these options describe."""
        return ThrottlerMap(
            rates=self.rates,
            scope=self.per,
            max_concurrency=self.concurrency,
            overrides=dict(self.host_rates),
        )


# -- input -------------------------------------------------------------------------------


def parse_options(args: argparse.Namespace) -> FetchOptions:
    """Check the command line's options; raise `UsageError` naming the bad one."""
    try:
        rates = Rate.parse_many(args.rate)
    except (InvalidRateError, ValueError, TypeError) as exc:
        raise UsageError(f"--rate: {exc}") from None
    if not 1 <= args.concurrency <= MAX_INT:
        raise UsageError(
            f"--concurrency must be an integer from 1 to 2**62, got {args.concurrency}"
        )
    if args.retries < 0:
        raise UsageError(f"--retries must be an integer >= 0, got {args.retries}")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UsageError(f"--timeout must be a finite number of seconds > 0, got {args.timeout}")
    if not (math.isfinite(args.max_retry_after) and args.max_retry_after >= 0):
        raise UsageError(
            f"--max-retry-after must be a finite number of seconds >= 0, got {args.max_retry_after}"
        )
    options = FetchOptions(
        rates=rates,
        per="domain" if args.per == "domain" else "host",
        concurrency=args.concurrency,
        out=Path(args.out),
        retries=args.retries,
        timeout=args.timeout,
        max_retry_after=args.max_retry_after,
        plain=args.plain,
        adapt=args.adapt,
        host_rates=tuple(_host_rate(item) for item in args.host_rate or ()),
        headers=_headers(args.user_agent, args.header or ()),
        refetch_gone=args.refetch_gone,
    )
    try:
        options.throttler()
    except (TypeError, ValueError) as exc:  # InvalidURLError and InvalidRateError too
        raise UsageError(f"--host-rate: {exc}") from None
    return options


def _host_rate(item: str) -> tuple[str, tuple[Rate, ...]]:
    """`HOST=RATE` (`api.example.com=1/s`, `*.example.com=10/min; 100/h`)."""
    host, equals, spec = item.partition("=")
    if not equals or not host.strip() or not spec.strip():
        raise UsageError(
            f"--host-rate must be HOST=RATE, such as api.example.com=1/s, got {item!r}"
        )
    try:
        return host.strip(), Rate.parse_many(spec)
    except (InvalidRateError, ValueError, TypeError) as exc:
        raise UsageError(f"--host-rate {host.strip()}: {exc}") from None


def _headers(user_agent: str | None, fields: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The request header fields: User-Agent, then each `--header "Name: value"`."""
    agent = USER_AGENT
    if user_agent is not None:
        agent = _check_field(f"User-Agent: {user_agent}", "--user-agent")[1]
    return (("User-Agent", agent), *(_check_field(field, "--header") for field in fields))


def _check_field(field: str, option: str) -> tuple[str, str]:
    name, colon, value = field.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _TOKEN.fullmatch(name):
        raise UsageError(
            f'{option} must be "Name: value", such as "Accept: text/html", got {field!r}'
        )
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"{option} {name}: a value may not hold a line break or NUL")
    return name, value


def read_lines(source: str, stdin: TextIO | None = None) -> list[str]:
    """The lines of file `source`, or of standard input for `-`."""
    if source == "-":
        stream = stdin if stdin is not None else sys.stdin
        try:
            return stream.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read URLs from standard input: {exc}") from None
    try:
        return Path(source).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read {source}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None


def parse_urls(lines: Iterable[str], source: str = "input") -> list[str]:
    """The distinct http(s) URLs of `lines`, in order; blank lines and `#` skipped.

    >>> parse_urls(["http://a.test/x", "", "# note", "http://a.test/x", " https://b.test "])
    ['http://a.test/x', 'https://b.test']

    Raises:
        UsageError: naming up to five bad lines, when any line is not an http(s) URL
            with a host.
    """
    urls: list[str] = []
    seen: set[str] = set()
    bad: list[str] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        problem = _url_problem(line)
        if problem is not None:
            bad.append(f"line {number}: {problem}: {line[:80]!r}")
            continue
        if line not in seen:
            seen.add(line)
            urls.append(line)
    if bad:
        more = f" (and {len(bad) - _MAX_BAD_LINES} more)" if len(bad) > _MAX_BAD_LINES else ""
        raise UsageError(f"bad URL in {source}: " + "; ".join(bad[:_MAX_BAD_LINES]) + more)
    if not urls:
        raise UsageError(f"no URL in {source}")
    return urls


def _url_problem(url: str) -> str | None:
    if any(c.isspace() for c in url):
        return "white space inside a URL"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"malformed ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "not an http or https URL"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0"
    try:
        split_url(url)
    except InvalidURLError as exc:  # every request would fail in its task: refuse it now
        return f"a host no limit can be kept for ({exc})"
    return None


def safe_name(url: str) -> str:
    """A file name for `url`'s body: a hash prefix and a sanitized last segment.

    The name never contains a path separator, never starts with a dot and is at most
    80 characters, so it always stays inside the output folder; the hash keeps distinct
    URLs apart.

    >>> safe_name("https://example.com/a/report.pdf?x=1")[13:]
    'report.pdf'
    >>> safe_name("http://example.com/../../etc/passwd")[13:]
    'passwd'
    >>> safe_name("http://example.com/")[13:]
    'example.com'
    """
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    parts = urlsplit(url)
    segment = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) or (parts.hostname or "")
    clean = _SAFE.sub("_", segment).strip("._-")[:66] or "index"
    return f"{digest}-{clean}"


def _ends_mid_line(path: Path) -> bool:
    """Whether the file at `path` is non-empty and does not end with a newline."""
    try:
        with path.open("rb") as file:
            if file.seek(0, 2) == 0:
                return False
            file.seek(-1, 2)
            return file.read(1) != b"\n"
    except FileNotFoundError:
        return False


def load_done(log_path: Path) -> set[str]:
    """URLs the log at `log_path` records with a 2xx status (none if it is missing).

    Lines that are not complete JSON objects (a run killed mid-write) are ignored.
    """
    return {url for url, status in _logged(log_path) if 200 <= status < 300}


def load_gone(log_path: Path) -> set[str]:
    """URLs the log at `log_path` records as gone (404 or 410), unless fetched since."""
    last: dict[str, int] = {}
    for url, status in _logged(log_path):
        last[url] = status
    return {url for url, status in last.items() if status in GONE_STATUSES}


def _logged(log_path: Path) -> Iterable[tuple[str, int]]:
    """`(url, status)` of each complete record of the log, in order (none if missing)."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"cannot read the log {log_path}: {exc.strerror or exc}") from None
    found = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        status = record.get("status")
        url = record.get("url")
        if isinstance(url, str) and isinstance(status, int):
            found.append((url, status))
    return found


def key_of(url: str, per: str) -> str:
    """The key a URL's limit is counted under, for the progress display."""
    host = (urlsplit(url).hostname or "").lower()
    if per == "domain":
        try:
            from ._keys import domain_key

            return str(domain_key(host))
        except (ImportError, ValueError):  # pragma: no cover - depends on the tree
            return host
    return host


# -- the download loop -----------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    url: str
    status: int | None = None
    size: int = 0
    started: float = 0.0
    elapsed: float = 0.0
    waited: float = 0.0
    attempts: int = 0
    file: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def record(self) -> dict[str, Any]:
        started = datetime.datetime.fromtimestamp(self.started, datetime.UTC)
        permanent = {"permanent": True} if self.status in GONE_STATUSES else {}
        return {
            "url": self.url,
            "status": self.status,
            "bytes": self.size,
            "started": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "elapsed": round(self.elapsed, 3),
            "waited": round(self.waited, 3),
            "attempts": self.attempts,
            "file": self.file,
            "error": self.error,
            **permanent,
        }


@final
class _SendTimes:
    """When each request's headers left, from an aiohttp trace: the end of its wait."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent: float | None = None


def _trace_config() -> Any:
    import aiohttp

    async def on_headers_sent(_session: Any, ctx: Any, _params: Any) -> None:
        marker = ctx.trace_request_ctx
        if isinstance(marker, _SendTimes):
            marker.sent = time.monotonic()

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_headers_sent)
    return trace


def _policy(options: FetchOptions) -> FeedbackPolicy:
    """Pauses on Retry-After (and adapts with `--adapt`); retries are made here
    (connection errors and 5xx as well)."""
    return FeedbackPolicy(
        max_retry_after=options.max_retry_after,
        adapt=options.adapt,
        backoff=BACKOFF_FIRST,
        max_backoff=BACKOFF_MAX,
    )


def _session(options: FetchOptions, policy: FeedbackPolicy) -> Any:
    import aiohttp

    from .aiohttp import ThrottledClientSession

    return ThrottledClientSession(
        throttler=options.throttler(),
        feedback=policy,
        headers=dict(options.headers),
        timeout=aiohttp.ClientTimeout(total=options.timeout),
        # An attempt ends within --timeout, body included: never cut a slot short before.
        release_timeout=options.timeout + 1.0,
        trace_configs=[_trace_config()],
    )


async def _download(
    session: Any, url: str, options: FetchOptions, policy: FeedbackPolicy
) -> _Outcome:
    """Fetch `url` with retries; write the body; never raise except on cancellation."""
    import aiohttp

    outcome = _Outcome(url, started=time.time())
    began = time.monotonic()
    name = safe_name(url)
    final_path = options.out / name
    part_path = options.out / (name + ".part")
    attempt = 0
    try:
        while True:
            attempt += 1
            outcome.attempts = attempt
            marker = _SendTimes()
            asked = time.monotonic()
            try:
                async with session.get(url, trace_request_ctx=marker) as response:
                    outcome.waited += (marker.sent or asked) - asked
                    outcome.status = int(response.status)
                    outcome.error = None
                    if 200 <= response.status < 300:
                        size = 0
                        with part_path.open("wb") as out:
                            async for chunk in response.content.iter_chunked(65536):
                                out.write(chunk)
                                size += len(chunk)
                        os.replace(part_path, final_path)
                        outcome.size = size
                        outcome.file = name
                        return outcome
                    outcome.error = f"HTTP {response.status} {response.reason or ''}".rstrip()
                    if response.status not in RETRY_STATUSES:
                        return outcome
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                # ValueError: a URL aiohttp refuses, such as a redirect to http://a..b/
                # (UnicodeError) or to a host no limit can be kept for (InvalidURL).
                if marker.sent is not None:
                    outcome.waited += marker.sent - asked
                outcome.status = None
                outcome.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
                with contextlib.suppress(OSError):
                    part_path.unlink()
                if isinstance(exc, ValueError):
                    return outcome  # the same URL would fail the same way: not retried
            if attempt > options.retries:
                return outcome
            # A pause the server asked for is kept by the throttler: the retry waits for it.
            pause = policy.backoff_delay(attempt)
            outcome.waited += pause
            await asyncio.sleep(pause)
    except BaseException:
        with contextlib.suppress(OSError):
            part_path.unlink()
        raise
    finally:
        outcome.elapsed = time.monotonic() - began


async def _fetch_all(
    urls: Sequence[str],
    options: FetchOptions,
    log: TextIO,
    board: Board,
    bar_of: Callable[[str], str],
    outcomes: list[_Outcome],
) -> bool:
    """Download `urls` concurrently into `outcomes`; return whether Ctrl-C stopped it.

    `outcomes` is the caller's, so what finished is known even when a second Ctrl-C
    ends the loop with a KeyboardInterrupt.
    """
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        # A second Ctrl-C gets Python's default behaviour.
        loop.remove_signal_handler(signal.SIGINT)
        if main is not None:
            main.cancel()

    handled = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        handled = True

    try:
        policy = _policy(options)
        async with _session(options, policy) as session:

            async def one(url: str) -> None:
                outcome = await _download(session, url, options, policy)
                outcomes.append(outcome)
                log.write(json.dumps(outcome.record()) + "\n")
                log.flush()
                board.advance(bar_of(url), note=_note(outcome))

            tasks = [asyncio.ensure_future(one(url)) for url in urls]
            try:
                await asyncio.gather(*tasks)
            except asyncio.CancelledError:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if not interrupted:
                    raise
                uncancel = getattr(main, "uncancel", None)  # Python 3.11+
                if uncancel is not None:
                    uncancel()
    finally:
        if handled:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGINT)
    return interrupted


def _note(outcome: _Outcome) -> str:
    if outcome.ok:
        return ""
    return f"last failure: {outcome.status or outcome.error or ''}"


def run_fetch(args: argparse.Namespace) -> int:
    """Run `fetch` with parsed command-line `args`; return the exit code."""
    try:
        options = parse_options(args)
        urls = parse_urls(
            read_lines(args.urls), "standard input" if args.urls == "-" else args.urls
        )
        try:
            options.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create {options.out}: {exc.strerror or exc}") from None
        log_path = options.out / LOG_NAME
        done = load_done(log_path)
        gone = set() if options.refetch_gone else load_gone(log_path) - done
        try:
            import aiohttp  # noqa: F401

            from .aiohttp import ThrottledClientSession  # noqa: F401
        except ImportError as exc:
            raise UsageError(
                f"fetch needs aiohttp: pip install 'throttled_http[aiohttp]' ({exc})"
            ) from None
        try:
            torn = _ends_mid_line(log_path)
            log = log_path.open("a", encoding="utf-8")
            if torn:
                # A run killed mid-write left half a record: end it, so the next record
                # stands on a line of its own and resume can read it.
                log.write("\n")
        except OSError as exc:
            raise UsageError(f"cannot write the log {log_path}: {exc.strerror or exc}") from None
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    todo = [url for url in urls if url not in done and url not in gone]
    skipped = sum(1 for url in urls if url in done)
    left_gone = len(urls) - len(todo) - skipped
    stream = sys.stdout
    print(
        f"fetch: {len(todo)} to download, {skipped} already done"
        + (f", {left_gone} gone (404/410; --refetch-gone to try again)" if left_gone else "")
        + f"; limit {'; '.join(str(r) for r in options.rates)} per {options.per}"
        + (f" ({len(options.host_rates)} per-host)" if options.host_rates else "")
        + (", adapting to refusals" if options.adapt else "")
        + f", {options.concurrency} at once; log {log_path}",
        file=stream,
        flush=True,
    )
    board = Board(plain=options.plain, stream=stream)
    keys: dict[str, int] = {}
    for url in todo:
        key = key_of(url, options.per)
        keys[key] = keys.get(key, 0) + 1
    if len(keys) <= 8:
        for key, count in keys.items():
            board.add(key, count)

        def bar_of(url: str) -> str:
            return key_of(url, options.per)

    else:
        board.add("all", len(todo))

        def bar_of(url: str) -> str:
            return "all"

    began = time.monotonic()
    outcomes: list[_Outcome] = []
    interrupted = False
    try:
        with log, board:
            if todo:
                interrupted = asyncio.run(_fetch_all(todo, options, log, board, bar_of, outcomes))
    except KeyboardInterrupt:  # a second Ctrl-C while the first was being handled
        interrupted = True
    if interrupted:
        # The run is over; only the summary is left. Another Ctrl-C now would only cut it
        # short and turn exit 130 into death by signal.
        with contextlib.suppress(ValueError):  # not the main thread: nothing to ignore
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    elapsed = time.monotonic() - began

    failed = [o for o in outcomes if not o.ok]
    fetched = len(outcomes) - len(failed)
    if failed:
        print_table(
            "failed",
            ("url", "status", "attempts", "error"),
            [(o.url, str(o.status), str(o.attempts), o.error or "") for o in failed[:20]],
            plain=options.plain,
            stream=stream,
        )
    left = len(todo) - len(outcomes)
    print(
        f"fetched {fetched}, failed {len(failed)}, skipped {skipped} (already done)"
        + (f", {left_gone} gone" if left_gone else "")
        + (f", {left} not started or abandoned" if left else "")
        + f" in {elapsed:.1f} s; log {log_path}",
        file=stream,
        flush=True,
    )
    if interrupted:
        print("interrupted: run the same command again to resume", file=stream, flush=True)
        return 130
    return 1 if failed else 0
