"""The command line: `python -m throttled_http` (also installed as `throttled-http`).

Subcommands:

```console
throttled-http --version
throttled-http demo [--quick] [--plot out.png] [--plain]
throttled-http fetch urls.txt --rate 2/s --per domain --concurrency 4 --out DIR
throttled-http fetch urls.txt --rate 5/s --adapt --host-rate api.example.com=1/s
```

Exit codes: 0 success; 1 the demo saw a limit broken, or some downloads failed; 2 bad
input (a one-line message on stderr, never a traceback); 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _add_output_options(command: argparse.ArgumentParser) -> None:
    """``--plain`` and ``--verbose``, which every command takes."""
    command.add_argument(
        "--plain", action="store_true", help="plain text output even when rich is installed"
    )
    command.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="throttled-http",
        description="Make every outbound HTTP request wait its turn.",
    )
    parser.add_argument("--version", action="version", version=f"throttled_http {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run a workload against local servers and check every limit held",
        description=(
            "Start local HTTP servers on 127.0.0.1-127.0.0.3 (two enforcing their own limit "
            "with 429 and Retry-After), send the same workload through aiohttp and httpx "
            "with per-host limits and an override, and verify at the servers that no "
            "configured limit was exceeded in any window. Exits 1 if one was."
        ),
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a smaller workload: about 1.5 s instead of about 10 s",
    )
    demo.add_argument(
        "--plot",
        metavar="PNG",
        help="write a timeline of arrivals per host to this file (needs matplotlib: pip "
        "install 'throttled_http[plot]')",
    )
    _add_output_options(demo)

    fetch = commands.add_parser(
        "fetch",
        help="download URLs politely: per-host limits, Retry-After, adaptation, retries, resume",
        description=(
            "Download each URL once, with at most RATE requests per host (or per registered "
            "domain), honouring Retry-After (and, with --adapt, slowing a host that refuses "
            "until it stops) and retrying transient failures. Bodies go to OUT, and a "
            "JSON-lines log (OUT/fetch-log.jsonl) records each download as it finishes; run "
            "the same command again to resume after Ctrl-C (URLs found gone, 404 or 410, "
            "are not fetched again unless --refetch-gone)."
        ),
    )
    fetch.add_argument("urls", metavar="URLS", help="file with one URL per line, or - for stdin")
    fetch.add_argument(
        "--rate",
        default="2/s",
        help="limit per host or domain, e.g. '2/s' or '10/s; 300/min' (default: 2/s)",
    )
    fetch.add_argument(
        "--per",
        choices=("host", "domain"),
        default="host",
        help="apply --rate to each host (default) or to each registered domain",
    )
    fetch.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="requests in flight at once per host or domain (default: 4)",
    )
    fetch.add_argument("--out", default="downloads", help="output folder (default: downloads)")
    fetch.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries after 429, 5xx or a connection error (default: 3)",
    )
    fetch.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds allowed for one attempt, body included (default: 60)",
    )
    fetch.add_argument(
        "--max-retry-after",
        type=float,
        default=300.0,
        help="cap in seconds on a server's Retry-After (default: 300)",
    )
    fetch.add_argument(
        "--host-rate",
        action="append",
        metavar="HOST=RATE",
        help="a limit for one host or pattern instead of --rate, e.g. 'api.example.com=1/s' "
        "or '*.example.com=10/min' (repeatable)",
    )
    fetch.add_argument(
        "--adapt",
        action="store_true",
        help="lower a host's pace when it refuses (429, 503) until it stops, and send a new "
        "host one request before the rest",
    )
    fetch.add_argument(
        "--user-agent",
        metavar="UA",
        help="the User-Agent of every request (default: throttled-http/VERSION)",
    )
    fetch.add_argument(
        "--header",
        action="append",
        metavar="'NAME: VALUE'",
        help="a header field for every request, e.g. 'Accept: text/html' (repeatable)",
    )
    fetch.add_argument(
        "--refetch-gone",
        action="store_true",
        help="on resume, fetch URLs an earlier run found gone (404, 410) again",
    )
    _add_output_options(fetch)
    return parser


_VERBOSE = "log the pauses the servers asked for and each change of a host's pace on stderr"


def _configure_logging(verbose: bool) -> None:
    """Route the package's log to stderr with `-v`; otherwise show errors only.

    The result tables already report pauses and 429s, so their log lines are noise
    unless asked for.
    """
    logger = logging.getLogger("throttled_http")
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    else:
        logger.setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code (the console script's entry point)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    _configure_logging(args.verbose)
    try:
        if args.command == "demo":
            from ._demo import run_demo

            return run_demo(quick=args.quick, plot=args.plot, plain=args.plain)
        from ._fetch import run_fetch

        return run_fetch(args)
    except KeyboardInterrupt:
        # Ctrl-C outside the commands' own handling (while starting up, say).
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
