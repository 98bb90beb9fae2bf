"""The WBC Zoo leaderboard: ``streamlit run leaderboard/app.py -- --out DIR`` (a checkout) or
``wbczoo-board -- --out DIR`` (installed).

Ranks every member and ensemble under ``DIR/submissions`` (``--out``, else ``WBCZOO_OUT``, else
``runs/``), shows one configuration in detail, and scores uploaded submissions, one page each.
The reference zoos shipped under ``zoo/reference/`` are a click away (read-only); without
``--out`` or ``WBCZOO_OUT`` the board opens on one of them.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pipeline.app import live, loaders, sidebar
from pipeline.app.selection import Selection, share
from pipeline.ranking.live import manifests

SCRIPTS = Path(__file__).resolve().parent / "scripts"
# title, the script Streamlit runs for the page, its URL path; the first opens at the root URL
PAGES = (
    ("Leaderboard", "page_leaderboard.py", "leaderboard"),
    ("Details", "page_details.py", "details"),
    ("Competition", "page_competition.py", "competition"),
)


def pages() -> list[st.Page]:
    return [
        st.Page(SCRIPTS / script, title=title, url_path=path, default=i == 0)
        for i, (title, script, path) in enumerate(PAGES)
    ]


def main() -> None:
    """The sidebar and header every page shares, then the page chosen (only that one runs)."""
    st.set_page_config(page_title="WBC Zoo leaderboard", layout="wide")
    page = st.navigation(pages())  # before any st.stop in frame(): every URL path stays known
    share(frame())
    page.run()


def frame() -> Selection:
    """The zoo, dataset and filters chosen in the sidebar, the title, and the members still
    training; stops the run with a message when nothing is scored yet."""
    own, named = sidebar.out_folder()
    # the served zoo's competition decides what every zoo may show, reference zoos included
    rules = loaders.disclosure_of(str(own))
    out, ref = sidebar.choose_zoo(own, named, competing=rules.hiding)
    if ref is None:
        st.sidebar.caption(f"Out folder: `{out.resolve()}`")
    version = loaders.version_of(out)
    try:
        long = loaders.score_table(str(out), version)
    except (OSError, KeyError, ValueError) as exc:  # e.g. a dataset moved away from its root
        st.error(f"Could not score the submissions under {out / 'submissions'}: {exc}")
        st.stop()
    st.title("WBC Zoo leaderboard")
    st.caption(
        "White-blood-cell classifiers ranked on their own lab's test images and, across labs, "
        "on other labs' images, where most of them fall apart."
    )
    if ref is not None:
        st.info(f"**Reference zoo {ref.name}** (read-only): {ref.summary}")
    if long.empty:
        live.live_section(str(out), list(manifests(out)))
        st.info(
            f"No scored submissions under `{out / 'submissions'}` yet. Train the zoo: "
            "`python -m pipeline.zoo --all` (with `--out` pointing here); members appear above "
            "while they train and on the board when they finish."
        )
        st.stop()
    dataset = st.sidebar.selectbox(
        "Training dataset", sorted(long["dataset"].unique()), key="dataset"
    )
    test_set = sidebar.choose_test_set(long, dataset)
    part = sidebar.choose_part(loaders.dataset_sets(str(out), version, dataset))
    table = loaders.board_table(str(out), version, dataset, test_set, part)
    view = sidebar.filters(table)
    live.live_section(str(out), [dataset])
    return Selection(
        out=str(out),
        version=version,
        dataset=dataset,
        long=long,
        test_set=test_set,
        part=part,
        view=view,
        total=len(table),
        rules=rules,
        read_only=ref is not None,
    )
