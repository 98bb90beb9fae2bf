"""The sidebar: which zoo, which dataset's test set, and the filters on the board's rows."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from pipeline.app.loaders import reference_out
from pipeline.data.parts import part_ids
from pipeline.ranking.reference import Reference, references
from pipeline.ranking.table import ranked_test_sets
from pipeline.runs.layout import OUT_ENV, default_out


def out_folder() -> tuple[Path, bool]:
    """``--out`` after ``--`` on the command line, else ``WBCZOO_OUT``, else ``runs/`` (as every
    command); and whether the user named it."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--out", type=Path)
    # parse_known_args: under pytest's AppTest, sys.argv is pytest's own command line
    args, _ = p.parse_known_args(sys.argv[1:])
    named = args.out or os.environ.get(OUT_ENV)
    return Path(named) if named else default_out(), bool(named)


REFERENCES_HIDDEN = (
    "Reference zoos are not shown in competition mode: their pages would show labels of the "
    "test images and score uploads on them."
)


def choose_zoo(out: Path, named: bool, competing: bool) -> tuple[Path, Reference | None]:
    """The zoo to show: the user's own or a reference zoo (the default when no folder was
    named, so a first look shows real numbers); only the user's own while ``competing``."""
    refs = references()
    if competing and refs:
        st.sidebar.caption(REFERENCES_HIDDEN)
        return out, None
    if not refs:
        return out, None
    labels = [f"Your zoo ({out})"] + [f"Reference: {r.name}" for r in refs]
    label = st.sidebar.radio(
        "Zoo",
        labels,
        index=0 if named else 1,
        key="zoo",
        help="Reference zoos ship with the repository (zoo/reference/): read-only.",
    )
    if label == labels[0]:
        return out, None
    ref = refs[labels.index(label) - 1]
    return Path(reference_out(str(ref.folder))), ref


def choose_test_set(long: pd.DataFrame, dataset: str) -> str | None:
    """The test set whose entries are ranked: a sidebar choice when entries of ``dataset`` were
    scored on several (another split file, a partial copy of the data)."""
    fingerprints = ranked_test_sets(long, dataset)
    if len(fingerprints) < 2:
        return None
    data = long[long["dataset"] == dataset]
    counts = {t: data[data["test_set"] == t]["entry"].nunique() for t in fingerprints}
    st.warning(
        f"The entries of {dataset} were scored on {len(fingerprints)} different test sets "
        f"({', '.join(f'{t}: {n} entries' for t, n in counts.items())}, by fingerprint of the "
        "test ids); only entries of one test set are ranked together. Choose it in the sidebar."
    )
    return st.sidebar.selectbox(
        "Test set", fingerprints, key="test_set", format_func=lambda t: f"{t} ({counts[t]})"
    )


PART_LABELS = {"all images": None, "report part (70%)": "report", "choose part (30%)": "choose"}


def choose_part(sets: dict[str, dict]) -> str | None:
    """Which images of the cross-lab sets with versioned parts the board scores (only shown
    when the dataset's entries are scored on such a set)."""
    with_parts = [name for name, source in sets.items() if part_ids(source["root"], "report")]
    if not with_parts:
        return None
    label = st.sidebar.radio(
        "Cross-lab images",
        list(PART_LABELS),
        key="part",
        help=f"{', '.join(sorted(with_parts))} are split once, stratified, into a choose part "
        "(30%) and a report part (70%) (zoo/splits/). Choose a remedy, an adaptation or an "
        "ensemble on the choose part and report it on the report part: chosen and reported on "
        "the same images, the best row flatters itself. The Details page scores whole sets.",
    )
    return PART_LABELS[label]


def filters(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that pass the sidebar's filters (an empty multiselect filters nothing)."""
    keep = pd.Series(True, index=table.index)
    for column, label in (
        ("kind", "Kind"),
        ("family", "Family"),
        ("norm", "Normalisation"),
        ("weights", "Weights"),
    ):
        values = table[column].astype(str)
        options = sorted(v for v in values.unique() if v)  # uploads leave these blank
        chosen = st.sidebar.multiselect(label, options, key=column, placeholder="all")
        if chosen:
            keep &= values.isin(chosen)
    if table["transductive"].any():  # adapted entries that saw the whole test set
        looks = {"inductive": False, "transductive": True}
        chosen = st.sidebar.multiselect(
            "Test-time adaptation", list(looks), key="transductive", placeholder="all"
        )
        if chosen:
            keep &= table["transductive"].isin([looks[c] for c in chosen])
    sizes = table["params_m"].dropna()
    low, high = (int(np.floor(sizes.min())), int(np.ceil(sizes.max()))) if len(sizes) else (0, 0)
    if high > low:  # a slider needs a range
        lo, hi = st.sidebar.slider(
            "Parameters (millions)", low, high, (low, high), step=1, key="params"
        )
        if (lo, hi) != (low, high):  # rows without a size (uploads) pass the full range only
            keep &= table["params_m"].between(lo, hi)
    query = st.sidebar.text_input("Name contains", key="search").strip()
    if query:
        keep &= table["name"].str.contains(query, case=False, regex=False)
    return table[keep].reset_index(drop=True)
