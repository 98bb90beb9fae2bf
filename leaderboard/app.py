"""The WBC Zoo leaderboard: ``streamlit run leaderboard/app.py -- --out DIR``.

Ranks every member and ensemble under ``DIR/submissions`` (``--out``, else ``WBCZOO_OUT``, else
the current folder), shows one configuration in detail, and scores uploaded submissions. The
reference zoos shipped under ``zoo/reference/`` are a click away (read-only); without ``--out``
or ``WBCZOO_OUT`` the board opens on one of them.
"""

from __future__ import annotations

import streamlit as st

from leaderboard import board, competition_page, details, live, loaders, sidebar
from pipeline.ranking.live import manifests


def main() -> None:
    st.set_page_config(page_title="WBC Zoo leaderboard", layout="wide")
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
    tabs = st.tabs(["Leaderboard", "Details", "Competition"])
    with tabs[0]:
        board.leaderboard_tab(
            str(out), version, dataset, view, len(table), part, folders=not rules.hiding
        )
    with tabs[1]:
        details.details_tab(str(out), version, dataset, view, long, rules)
    with tabs[2]:
        competition_page.competition_tab(
            str(out), version, dataset, long, test_set, read_only=ref is not None
        )


main()
