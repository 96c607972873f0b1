"""The documentation site builds strictly, and its API reference reads as written.

The site is built once per test run with ``mkdocs build --strict`` into a temporary
folder, or read from ``THROTTLED_HTTP_DOCS_SITE`` when CI has just built it. The tests
skip when mkdocs is not installed (the ``docs`` extra); ``.ci/run`` installs it and runs
them against the site it built.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 300.0  # seconds; a build takes about 15

# Files whose docstrings the Redis work is converting right now: their objects' parts of
# the reference may still show raw roles or private names. Remove a file once it is done.
PENDING: frozenset[str] = frozenset()  # modules whose docstrings are not converted yet

ROLE = re.compile(r":(?:class|meth|func|attr|mod|exc|data|obj):")
# A private name: _Limit, _L, _EntryContext, a private module (throttled_http._ledger),
# and the private base class of the two maps. Dunder names (__init__) are public.
PRIVATE = re.compile(r"(?<![\w.])_[A-Za-z]\w*|\bBaseThrottlerMap\b|\bthrottled_http\._[a-z]\w*")
ANCHOR = re.compile(r'id="(throttled_http(?:\.\w+)*)"')
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "griffe")


@dataclass(frozen=True, slots=True)
class Part:
    """What the reference renders for one object, up to the next object's anchor."""

    ident: str  # throttled_http.Throttler.acquire, or "" for the page's own text
    html: str

    @property
    def text(self) -> str:
        """The visible text, code included."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.html))

    @property
    def paragraphs(self) -> list[str]:
        """The visible text of each prose paragraph (code blocks left out)."""
        prose = re.sub(r"<pre.*?</pre>", "", self.html, flags=re.S)
        found = re.findall(r"<p\b[^>]*>(.*?)</p>", prose, flags=re.S)
        return [html.unescape(re.sub(r"<[^>]+>", "", p)) for p in found]


def _missing() -> str | None:
    for name in NEEDED:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ModuleNotFoundError:
            return name
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site: the one CI built, else one built strictly for this run."""
    given = os.environ.get("THROTTLED_HTTP_DOCS_SITE")
    if given:
        return Path(given)
    missing = _missing()
    if missing is not None:
        pytest.skip(f"{missing} is not installed: pip install -e '.[docs]' to build the docs")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-5000:]}"
    return out


@pytest.fixture(scope="module")
def package() -> Any:
    """The package as griffe (the docs' own reader) sees it, to find each object's file."""
    griffe = pytest.importorskip("griffe", reason="griffe comes with the docs extra")
    return griffe.load("throttled_http", search_paths=[str(ROOT)], resolve_aliases=True)


@pytest.fixture(scope="module")
def reference(site: Path) -> list[Part]:
    """The API reference page, cut at every object's anchor."""
    page = (site / "reference" / "index.html").read_text(encoding="utf-8")
    article = page[page.index("<article") : page.index("</article>")]
    parts = []
    ident = ""
    start = 0
    for match in ANCHOR.finditer(article):
        parts.append(Part(ident, article[start : match.start()]))
        ident, start = match.group(1), match.end()
    parts.append(Part(ident, article[start:]))
    return parts


def _source(package: Any, ident: str) -> str:
    """The file that holds the docstring of ``ident`` (``reference.md`` for the page)."""
    if not ident:
        return "reference.md"
    path = ident.removeprefix("throttled_http").lstrip(".")
    obj = package[path] if path else package
    return Path(str(obj.filepath)).name


def _checked(package: Any, reference: list[Part]) -> Iterator[tuple[str, Part]]:
    for part in reference:
        source = _source(package, part.ident)
        if source not in PENDING:
            yield source, part


def _matches(package: Any, reference: list[Part], pattern: re.Pattern[str]) -> list[str]:
    """Where ``pattern`` shows in the reference, outside the pending files' objects."""
    return [
        f"{source} {part.ident}: {m.group(0)!r} in {part.text[max(0, m.start() - 50) : m.end()]!r}"
        for source, part in _checked(package, reference)
        for m in pattern.finditer(part.text)
    ]


def test_reference_has_no_raw_roles(package: Any, reference: list[Part]) -> None:
    """No :class:, :meth:, :func: or :attr: role shows as text: every one was rendered."""
    found = _matches(package, reference, ROLE)
    assert not found, "\n".join(found)


def test_reference_has_no_literal_block_markers(package: Any, reference: list[Part]) -> None:
    """No paragraph ends in the reStructuredText '::' that should have opened a code block."""
    found = [
        f"{source} {part.ident}: {paragraph[-60:]!r}"
        for source, part in _checked(package, reference)
        for paragraph in part.paragraphs
        if paragraph.rstrip().endswith("::")
    ]
    assert not found, "\n".join(found)


def test_reference_shows_no_private_names(package: Any, reference: list[Part]) -> None:
    """No private class, type variable or module appears: not in signatures, bases or prose."""
    found = _matches(package, reference, PRIVATE)
    assert not found, "\n".join(found)
    bases = [part.ident for part in reference if re.search(r"Bases:\s*_", part.text)]
    assert not bases, bases


def test_reference_documents_every_public_name(package: Any, site: Path) -> None:
    """Every name of the core's and the integrations' __all__ has its entry in the reference."""
    page = (site / "reference" / "index.html").read_text(encoding="utf-8")
    anchors = set(ANCHOR.findall(page))
    missing = []
    for module in ("", "aiohttp", "httpx", "httpx2", "redis", "otel", "testing"):
        obj = package[module] if module else package
        prefix = "throttled_http" + (f".{module}" if module else "")
        for name in obj.exports or ():
            if name == "__version__" or _source(package, f"{prefix}.{name}") in PENDING:
                continue
            if f"{prefix}.{name}" not in anchors:
                missing.append(f"{prefix}.{name}")
    assert not missing, missing


@pytest.mark.parametrize(
    "member",
    ["from_rates", "rate_limit", "period", "rates", "burst", "max_concurrency", "statistics"],
)
@pytest.mark.parametrize("owner", ["Throttler", "SyncThrottler"])
def test_reference_shows_inherited_members(reference: list[Part], owner: str, member: str) -> None:
    """What a throttler inherits from the private base it shares with its twin is listed."""
    assert f"throttled_http.{owner}.{member}" in {part.ident for part in reference}


def test_home_page_shows_the_quickstart(site: Path) -> None:
    """The home page carries the quickstart code for aiohttp, httpx and the Throttler."""
    page = html.unescape(re.sub(r"<[^>]+>", "", (site / "index.html").read_text("utf-8")))
    for code in (
        "async with ThrottledClientSession(rate_limit=10) as session:",
        "httpx.AsyncClient(transport=ThrottledTransport(rate_limit=10))",
        'Throttler("10/s")',
    ):
        assert code in page, code


def test_guides_carry_no_development_history(site: Path) -> None:
    """Before/after figures of past work live on the Performance page, not in the guides."""
    for guide in ("throttler", "per-host", "server-feedback", "aiohttp", "httpx", "cli"):
        text = (site / guide / "index.html").read_text("utf-8")
        assert "November 2026" not in text, guide
    assert "November 2026" in (site / "performance" / "index.html").read_text("utf-8")


def test_stylesheet_wraps_what_would_overflow(site: Path) -> None:
    """The stylesheet that wraps signatures and tables is shipped and linked from pages."""
    css = (site / "css" / "extra.css").read_text("utf-8")
    assert ".doc-signature" in css
    assert "table" in css
    assert "css/extra.css" in (site / "reference" / "index.html").read_text("utf-8")
