"""Members still training, above every page, read again every few seconds."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pipeline.ranking.live import live_runs

LIVE_REFRESH_S = 10  # how often the table of members still training is read again


@st.fragment(run_every=LIVE_REFRESH_S)
def live_section(out: str, datasets: list[str]) -> None:
    """Members the zoo's manifest lists as running, pending or failed, read again every few
    seconds: a long zoo run can be watched as it goes."""
    for tag in datasets:
        runs = live_runs(Path(out), tag)
        if runs.empty:
            continue
        states = runs["state"].value_counts()
        st.markdown(
            f"**Training now ({tag})**: "
            + ", ".join(f"{n} {state}" for state, n in states.items())
            + f" · read every {LIVE_REFRESH_S} s"
        )
        st.dataframe(
            runs,
            hide_index=True,
            key=f"live-{tag}",
            column_config={
                "val_acc": st.column_config.NumberColumn("val acc.", format="percent"),
                "train_loss": st.column_config.NumberColumn("train loss", format="%.3f"),
            },
        )
