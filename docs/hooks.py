"""MkDocs hooks: README.md is the docs set's front page, and links work on GitHub and in the site.

The pages link as files in the repository do (README -> `docs/deploy.md`, a page ->
`../README.md`, a page -> `../service/catalog.yaml`), so that they read right on GitHub. In the
site, README.md becomes `index.md`, its `docs/` prefix goes, and a link to a repository file
outside the docs becomes that path in code: MkDocs still checks every other link and anchor.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<target>[^)\s#]*)(?P<anchor>#[^)\s]*)?\)")


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "index.md", abs_src_path=str(README)))
    return files


def _rewrite(match: re.Match[str], source: Path) -> str:
    """One link, as the site needs it; `source` is the page's file in the repository."""
    text, target, anchor = match["text"], match["target"], match["anchor"] or ""
    if not target or "://" in target or target.startswith("mailto:"):
        return match[0]
    in_repo = (source.parent / target).resolve()
    if in_repo == README:
        return f"[{text}](index.md{anchor})"
    docs = ROOT / "docs"
    if in_repo.is_relative_to(docs):
        return f"[{text}]({posixpath.relpath(in_repo.as_posix(), docs.as_posix())}{anchor})"
    if in_repo.exists() and in_repo.is_relative_to(ROOT):
        return f"`{in_repo.relative_to(ROOT).as_posix()}`"
    return match[0]  # broken: left for MkDocs to report


def on_page_markdown(markdown: str, page: Page, **_: Any) -> str:
    source = README if page.file.src_uri == "index.md" else ROOT / "docs" / page.file.src_uri
    return _LINK.sub(lambda match: _rewrite(match, source), markdown)
