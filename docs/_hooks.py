"""mkdocs hooks: publish ``examples/*.py`` on an Examples page and point links at it.

The guides link examples as ``../examples/NAME.py`` (right on GitHub, where ``docs/``
sits beside ``examples/``); on the site that target is outside the docs, so those links
are rewritten to ``examples.md#NAME``, where the page lists every example's source.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
_LINK = re.compile(r"\]\((?:\.\./)?examples/([A-Za-z0-9_\-]+)\.py\)")


def _examples() -> list[Path]:
    return sorted((_ROOT / "examples").glob("*.py"))


def _anchor(path: Path) -> str:
    return path.stem.replace("_", "-")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Rewrite example links; fill the Examples page with every example's source."""
    if page.file.src_uri == "examples.md":
        parts = [markdown.rstrip(), ""]
        for path in _examples():
            source = path.read_text(encoding="utf-8")
            doc = ast.get_docstring(ast.parse(source)) or ""
            summary = doc.strip().split("\n\n")[0].replace("\n", " ")
            parts += [
                f"## {path.name} {{#{_anchor(path)}}}",
                "",
                summary,
                "",
                f"```console\n$ python examples/{path.name}\n```",
                "",
                f"```python\n{source.rstrip()}\n```",
                "",
            ]
        return "\n".join(parts)
    return _LINK.sub(lambda m: f"](examples.md#{m.group(1).replace('_', '-')})", markdown)
