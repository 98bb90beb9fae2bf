"""MkDocs hook: the site is ``docs/`` plus the repository's files that its pages link to.

``README.md`` becomes the home page, and a file outside ``docs/`` that a page links to
(``leaderboard/README.md``, ``zoo/catalogue.toml``, ...) is published under ``repo/``. Every
relative link is rewritten from the repository's layout to the site's, so one Markdown source
reads right on a checkout and on the site. A link to a file that exists nowhere is left as
written, and the strict build fails on it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

REPO = Path(__file__).resolve().parents[1]
DOCS = "docs/"
LINK = re.compile(r"\]\(([^)\s]+)\)")  # inline links and images


def site_path(repo_path: str) -> str:
    """Where a repository file lives in the site's sources."""
    if repo_path == "README.md":
        return "index.md"
    return repo_path.removeprefix(DOCS) if repo_path.startswith(DOCS) else f"repo/{repo_path}"


def repo_path(file: File) -> str:
    return Path(file.abs_src_path).resolve().relative_to(REPO).as_posix()


def targets(markdown: str, source: str) -> Iterator[tuple[re.Match[str], str, str]]:
    """Each relative link of a page at ``source``: the match, the repository path it names
    (normalised; the file may not exist) and its ``#anchor`` (or "")."""
    for link in LINK.finditer(markdown):
        url = urlsplit(link[1])
        if url.scheme or url.netloc or not url.path or url.path.startswith("/"):
            continue
        target = posixpath.normpath(posixpath.join(posixpath.dirname(source), unquote(url.path)))
        yield link, target, f"#{url.fragment}" if url.fragment else ""


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "index.md", abs_src_path=str(REPO / "README.md")))
    pages = [f for f in files if f.is_documentation_page()]
    while pages:
        page = pages.pop()
        text = Path(page.abs_src_path).read_text(encoding="utf-8")
        for _, target, _ in targets(text, repo_path(page)):
            if files.get_file_from_path(site_path(target)) or not (REPO / target).is_file():
                continue
            linked = File.generated(config, site_path(target), abs_src_path=str(REPO / target))
            files.append(linked)
            if linked.is_documentation_page():
                pages.append(linked)
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    source = repo_path(page.file)
    here = posixpath.dirname(page.file.src_uri) or "."
    rewritten = markdown
    for link, target, anchor in targets(markdown, source):
        if (REPO / target).is_file():
            relative = posixpath.relpath(site_path(target), here)
            rewritten = rewritten.replace(link[0], f"]({relative}{anchor})", 1)
    return rewritten
