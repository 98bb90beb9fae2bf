"""The leaderboard in a real browser: `streamlit run` served to headless Chromium.

Needs /usr/bin/chromium and the playwright package (never `playwright install`). By default it
serves a fabricated out folder; ``WBCZOO_BROWSER_OUT=DIR`` serves a copy of DIR instead (without
checkpoints). ``WBCZOO_SCREENSHOT=1`` saves the screenshots as docs/leaderboard*.png.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from boards import csv_bytes, fabricate_out, onehot
from PIL import Image

from pipeline.commands import leaderboard as cli
from pipeline.ranking import competition
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.ranking.reference import references
from pipeline.ranking.table import long_table, ranked_table

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_S = 30  # server start, on a busy 2-core machine
PAGE_MS = 30_000  # page load and first render


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"streamlit did not listen on {port} within {START_S} s:\n{log.read_text()}")


@pytest.fixture
def out(tmp_path: Path, make_tree) -> Path:
    source = os.environ.get("WBCZOO_BROWSER_OUT")
    if not source:
        return fabricate_out(tmp_path, make_tree)
    # a copy: the app writes its score cache into the out folder; checkpoints are not needed
    return Path(shutil.copytree(source, tmp_path / "out", ignore=shutil.ignore_patterns("*.pt")))


@contextlib.contextmanager
def served_page(out: Path | None, tmp_path: Path, path: str = "") -> Iterator:
    """A Chromium page on ``streamlit run leaderboard/app.py`` serving ``out``, opened at the
    URL path ``path`` (one page of the app); with None, run as a newcomer would: no ``--out``
    nor ``WBCZOO_OUT``."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    port = free_port()
    log = tmp_path / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", "leaderboard/app.py",
               "--server.address", "127.0.0.1", "--server.port", str(port),
               "--server.headless", "true", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false"]  # fmt: skip
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            command,
            cwd=ROOT,  # the project's .streamlit/config.toml applies
            env={k: v for k, v in os.environ.items() if k != "WBCZOO_OUT"}
            | ({"WBCZOO_OUT": str(out)} if out else {}),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, server, log)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/{path}", timeout=PAGE_MS)
                yield page
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def screenshot(page, tmp_path: Path, name: str, docs: bool = True) -> Path:
    """Into docs/ with ``WBCZOO_SCREENSHOT=1`` (unless ``docs`` is False), else into the test's
    folder."""
    keep = docs and os.environ.get("WBCZOO_SCREENSHOT") == "1"
    folder = ROOT / "docs" if keep else tmp_path
    shot = folder / f"{name}.png"
    page.mouse.move(0, 0)  # no hover overlay in the picture
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    with Image.open(shot) as image:  # 256 colours: a third of the size, as sharp
        image.convert("RGB").quantize(256).save(shot, optimize=True)
    return shot


def open_page(page, title: str) -> None:
    """Follow the sidebar's link to the app's page ``title``: the same session, its own URL."""
    page.get_by_role("link", name=title, exact=True).click()
    page.wait_for_url(f"**/{title.lower()}", timeout=PAGE_MS)


def test_leaderboard_in_chromium(out: Path, tmp_path: Path) -> None:
    """At 1400×1000 the overview shows every column, cross-lab ones included, without
    scrolling; then the details and competition pages."""
    long = long_table(find_entries(out), Scorer())
    table = ranked_table(long, sorted(long["dataset"].unique())[0])  # the app's first dataset
    expected = f"{len(table)} of {len(table)} rows · top: {table['name'][0]}"
    with served_page(out, tmp_path) as page:
        summary = page.locator('[data-testid="stMarkdownContainer"]', has_text="rows · top:")
        summary.wait_for(timeout=PAGE_MS)
        assert expected in summary.inner_text()
        grid = page.locator('[data-testid="stDataFrame"]').first
        grid.wait_for(timeout=PAGE_MS)
        page.wait_for_timeout(1500)  # the table's canvas paints after it is attached
        # the grid scrolls sideways when its columns are wider than the page
        scroller = grid.locator(".dvn-scroller").first
        widths = scroller.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert widths[0] <= widths[1] + 1, f"the overview scrolls sideways: {widths}"
        box = grid.bounding_box()
        assert box["x"] + box["width"] <= 1400
        screenshot(page, tmp_path, "leaderboard-own", docs=False)  # docs: the reference zoo's
        page.get_by_text("cost", exact=True).first.click()
        page.wait_for_timeout(1000)
        open_page(page, "Details")
        page.get_by_text("scores per evaluation set").wait_for(timeout=PAGE_MS)
        ensembles = table[table["kind"] == "ensemble"]["name"]
        if len(ensembles):
            page.locator('[data-testid="stSelectbox"]', has_text="Configuration").click()
            page.get_by_role("option", name=ensembles.iloc[0], exact=True).click()
            page.get_by_text("candidates used").wait_for(timeout=PAGE_MS)
        page.wait_for_timeout(1500)
        screenshot(page, tmp_path, "leaderboard-details")
        cross = [c.removesuffix("_bacc") for c in table.columns if c.endswith("_bacc")]
        cross = [c for c in cross if c != "cross"]
        if cross:  # the gallery of a cross-domain set: that set's own mistakes
            page.get_by_role("tab", name=cross[0], exact=True).click()
        gallery = page.get_by_text("images misclassified", exact=False)
        gallery = gallery.nth(1 if cross else 0)
        gallery.scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
        screenshot(page, tmp_path, "leaderboard-gallery")
        open_page(page, "Competition")
        page.get_by_text("Download a sample submission").wait_for(timeout=PAGE_MS)
        page.wait_for_timeout(500)
        screenshot(page, tmp_path, "leaderboard-competition")


@pytest.mark.skipif(not references(), reason="no reference zoo under zoo/reference")
def test_a_first_look_opens_on_the_reference_zoo(tmp_path: Path) -> None:
    """``streamlit run leaderboard/app.py`` with no zoo named shows the shipped reference zoo,
    marked read-only, with real numbers: the README's screenshot."""
    with served_page(None, tmp_path) as page:
        page.get_by_text("(read-only)", exact=False).first.wait_for(timeout=PAGE_MS * 2)
        summary = page.locator('[data-testid="stMarkdownContainer"]', has_text="rows · top:")
        summary.wait_for(timeout=PAGE_MS)
        assert "top: ens-" in summary.inner_text()  # an ensemble leads the real zoo
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=PAGE_MS)
        page.wait_for_timeout(1500)
        screenshot(page, tmp_path, "leaderboard")


def test_competition_submission_in_chromium(tmp_path: Path, make_tree, capsys) -> None:
    """A team logs in with its token and submits a file of the bundle's opaque ids in
    competition mode and sees its public score, never the private one; a member's test tab
    shows no true labels. The app opens on the Details page's URL."""
    out = fabricate_out(tmp_path, make_tree)
    args = ["--out", str(out), "--competition", "--public-share", "0.5", "--daily-limit", "2"]
    assert cli.main([*args, "--bundle", str(tmp_path / "bundle")]) == 0
    assert cli.main(["--out", str(out), "--add-team", "Browsers"]) == 0
    token = re.search(r"token (\S+)", capsys.readouterr().out).group(1)
    key = competition.load_key(out, "cells").answers.labels
    upload = tmp_path / "mine.csv"
    upload.write_bytes(csv_bytes(list(key), onehot(list(key.values()))))
    with served_page(out, tmp_path, "details") as page:
        page.get_by_text("Competition mode: this set's confusion matrix").first.wait_for(
            timeout=PAGE_MS
        )
        # the test tab is the one open: no caption of a test mistake is visible on it
        assert page.locator("text=/true \\w+ · predicted/ >> visible=true").count() == 0
        page.wait_for_timeout(1000)
        screenshot(page, tmp_path, "leaderboard-competition-hidden")
        page.get_by_role("tab", name="bccd", exact=True).click()  # other labs keep theirs
        page.locator("text=/true \\w+ · predicted/ >> visible=true").first.wait_for(timeout=PAGE_MS)
        open_page(page, "Competition")
        page.get_by_text("ranked on its public part").wait_for(timeout=PAGE_MS)
        for label, value in (("Team", "Browsers"), ("Token", token)):
            page.get_by_label(label).fill(value)
            page.get_by_label(label).press("Enter")
        page.locator('input[type="file"]').set_input_files(str(upload))
        page.get_by_text("mine.csv is valid").wait_for(timeout=PAGE_MS)
        page.get_by_role("button", name="Submit").click()
        page.get_by_text("of team Browsers, public accuracy 1.0000.").wait_for(timeout=PAGE_MS)
        page.get_by_text("1 of 2 submissions used today (UTC).").wait_for(timeout=PAGE_MS)
        shown = page.locator('[data-testid="stAlert"]', has_text="of team Browsers").inner_text()
        assert "private" not in shown
        page.wait_for_timeout(1500)
        screenshot(page, tmp_path, "leaderboard-competition-mode")
    assert len(competition.history(out, "cells", "Browsers")) == 1
