"""The docs hold together: every relative link resolves, and the site builds with --strict."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    ROOT / "leaderboard" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, each space a hyphen."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def broken_links(page: Path) -> list[str]:
    """The relative links of a Markdown page whose file (or heading) does not exist."""
    broken = []
    for url in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", url):
            continue
        path, _, anchor = url.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.is_file() or (
            anchor and target.suffix == ".md" and anchor not in anchors(target)
        ):
            broken.append(url)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file_and_heading(page: Path) -> None:
    assert broken_links(page) == []


def test_a_missing_file_heading_or_folder_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text("# A guide\n\n## Two words\n")
    (tmp_path / "sub").mkdir()
    page = tmp_path / "index.md"
    page.write_text(
        "# Home\n[ok](guide.md#two-words) [self](#home) [web](https://example.org/x.md)\n"
        "[gone](nosuch.md#x) [heading](guide.md#three) [folder](sub/) [here](#nowhere)\n"
        "```\n[in code](ignored.md)\n```\n"
    )
    assert broken_links(page) == ["nosuch.md#x", "guide.md#three", "sub/", "#nowhere"]


def test_the_readme_links_every_guide() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for guide in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{guide.name})" in readme, guide.name


@pytest.mark.skipif(not importlib.util.find_spec("mkdocs"), reason="mkdocs not installed")
def test_the_documentation_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="training/#the-first-command"' in home and 'src="leaderboard.png"' in home
    assert (site / "repo" / "leaderboard" / "index.html").is_file()


def test_the_readme_opens_with_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    install_and_run, install_and_test = first_block.splitlines()
    assert install_and_run == "pip install -r requirements.txt -e . && python -m pipeline.zoo --all"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert install_and_test in ci and "mkdocs build --strict" in ci
    # in a fresh virtual environment, as users run it (issue: the suite failed only there)
    venv = ci.index('python3 -m venv "$scratch/venv"')
    assert venv < ci.index('. "$scratch/venv/bin/activate"') < ci.index(install_and_test)
