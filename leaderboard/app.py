"""The WBC Zoo leaderboard: ``streamlit run leaderboard/app.py -- --out DIR``.

Ranks every member and ensemble under ``DIR/submissions`` (``--out``, else ``WBCZOO_OUT``, else
the current folder), shows one configuration in detail, and scores uploaded submissions. The
reference zoos shipped under ``zoo/reference/`` are a click away (read-only); without ``--out``
or ``WBCZOO_OUT`` the board opens on one of them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

# `streamlit run` puts this script's folder on the path, not the project, which is not installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import altair as alt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402
from streamlit.runtime.uploaded_file_manager import UploadedFile  # noqa: E402

from pipeline.calibration import RAW_FOLDER, compare  # noqa: E402
from pipeline.data.cache import DEFAULT_CACHE_DIR  # noqa: E402
from pipeline.layout import Layout  # noqa: E402
from pipeline.leaderboard import competition  # noqa: E402
from pipeline.leaderboard.collect import Contender, find_entries  # noqa: E402
from pipeline.leaderboard.disclosure import Disclosure, disclosure  # noqa: E402
from pipeline.leaderboard.live import live_runs, manifests  # noqa: E402
from pipeline.leaderboard.pareto import pareto_front  # noqa: E402
from pipeline.leaderboard.present import (  # noqa: E402
    GLOSSARY,
    PRESETS,
    display_table,
    head_lines,
    sample_submission,
    set_description,
)
from pipeline.leaderboard.scores import Scorer  # noqa: E402
from pipeline.leaderboard.table import IN_DOMAIN, leaderboard, long_table, ranked_test_sets  # noqa: E402
from pipeline.leaderboard.teams import Team, authenticate  # noqa: E402
from pipeline.leaderboard.upload import MAX_BYTES, check_upload, sanitise_name, save_upload  # noqa: E402
from pipeline.reference import Reference, references  # noqa: E402
from pipeline.scoring import mistakes  # noqa: E402
from pipeline.submissions import read_submission  # noqa: E402

COMPETING = (
    "Competition mode: the test set's confusion matrix, per-class scores and misclassified "
    "images are not shown until the organiser reveals the private scores: they would reveal "
    "true labels of the test set."
)
GALLERY_MAX = 24
GALLERY_COLUMNS = 6
LIVE_REFRESH_S = 10  # how often the table of members still training is read again


def out_folder() -> tuple[Path, bool]:
    """``--out`` after ``--`` on the command line, else ``WBCZOO_OUT``, else the current folder;
    and whether the user named it."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--out", type=Path)
    # parse_known_args: under pytest's AppTest, sys.argv is pytest's own command line
    args, _ = p.parse_known_args(sys.argv[1:])
    named = args.out or os.environ.get("WBCZOO_OUT")
    return Path(named or "."), bool(named)


@st.cache_resource(show_spinner="Unpacking the reference zoo…")
def reference_out(folder: str) -> str:
    """The reference zoo's ``--out`` folder, unpacked into the cache once per archive."""
    return str(Reference(Path(folder)).unpacked(DEFAULT_CACHE_DIR))


def choose_zoo(out: Path, named: bool) -> tuple[Path, Reference | None]:
    """The zoo to show: the user's own or a reference zoo (the default when no folder was
    named, so a first look shows real numbers)."""
    refs = references()
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


# --- loading, cached -------------------------------------------------------------------------


def version_of(out: Path) -> str:
    """A digest of the size and mtime of every submission file: any change reloads the tables."""
    stamps = []
    for path in sorted((out / "submissions").glob("*/*/*")):
        if path.suffix in (".csv", ".json"):
            with contextlib.suppress(FileNotFoundError):  # removed while we looked
                stat = path.stat()
                stamps.append((str(path), stat.st_size, stat.st_mtime_ns))
    return hashlib.sha1(repr(stamps).encode()).hexdigest()


@st.cache_resource(show_spinner=False)
def shared_scorer(out: str) -> tuple[Scorer, threading.Lock]:
    """One scorer per out folder for all sessions: answer keys load once, scores persist on disk.

    Sessions run in threads; the lock keeps them from writing the score cache at the same time.
    """
    return Scorer.of_zoo(Path(out)), threading.Lock()


# Every call of a cache_data function returns a fresh copy of its value. Copies of all entries
# (a thousand typed meta.json records) on every rerun pile up objects that the garbage collector
# must then walk, a full collection landing in some later interaction: reruns ask the small
# cached results below, which read ``load`` only when they are computed.


@st.cache_data(show_spinner=False, max_entries=4)
def load(out: str, version: str) -> tuple[list[Contender], pd.DataFrame]:
    """Entries and the long score table (``version`` is only part of the cache key)."""
    entries = find_entries(Path(out))
    scorer, lock = shared_scorer(out)
    with lock:
        return entries, long_table(entries, scorer)


@st.cache_data(show_spinner="Scoring submissions…", max_entries=4)
def score_table(out: str, version: str) -> pd.DataFrame:
    """The long score table without the entries (empty when there is no entry)."""
    return load(out, version)[1]


@st.cache_data(show_spinner=False, max_entries=16)
def board(out: str, version: str, dataset: str, test_set: str | None) -> pd.DataFrame:
    return leaderboard(load(out, version)[1], dataset, test_set)


@st.cache_data(show_spinner=False, max_entries=256)
def find_entry(out: str, version: str, dataset: str, name: str) -> Contender:
    return next(e for e in load(out, version)[0] if e.dataset == dataset and e.name == name)


@st.cache_data(show_spinner=False, max_entries=16)
def dataset_sets(out: str, version: str, dataset: str) -> dict[str, dict]:
    """``eval_sets`` of the dataset's entries."""
    return eval_sets(load(out, version)[0], dataset)


@st.cache_data(show_spinner=False, max_entries=64)
def full_scores(out: str, version: str, dataset: str, name: str, set_name: str) -> dict:
    entry = find_entry(out, version, dataset, name)
    scorer, lock = shared_scorer(out)
    with lock:
        return scorer.full(entry, set_name)


@st.cache_data(show_spinner=False)
def answer_key(out: str, source_json: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """The set's answer key (id -> label) and its declared class vocabulary."""
    scorer, lock = shared_scorer(out)
    source = json.loads(source_json)
    with lock:
        return scorer.keys.key(source), scorer.keys.vocabulary(source)


@st.cache_data(show_spinner=False, max_entries=64)
def misclassified(
    out: str, version: str, dataset: str, name: str, set_name: str
) -> list[tuple[str, str, str, float]]:
    """(id, true class, predicted class, confidence) of every wrong prediction over the shared
    classes, the most confident first: those are the ones to look at."""
    entry = find_entry(out, version, dataset, name)
    key, vocabulary = answer_key(out, json.dumps(entry.source(set_name), sort_keys=True))
    sub = read_submission(entry.files[set_name])
    wrong = mistakes(sub.ids, sub.probs, sub.classes, key, vocabulary)
    wrong = sorted(wrong, key=lambda m: -m.confidence)
    return [(m.id, m.true, m.pred, m.confidence) for m in wrong]


def history(out: str, dataset: str, name: str) -> pd.DataFrame | None:
    """A member's training history (``pipeline.train.MemberPaths``); None for ensembles."""
    path = Layout(Path(out)).member(dataset, name) / "history.csv"
    return read_history(str(path), path.stat().st_mtime_ns) if path.is_file() else None


@st.cache_data(show_spinner=False, max_entries=64)
def read_history(path: str, mtime_ns: int) -> pd.DataFrame:
    """``mtime_ns`` is only part of the cache key: a member still training rewrites its history."""
    return pd.read_csv(path)


# --- views -----------------------------------------------------------------------------------


def sidebar_filters(table: pd.DataFrame) -> pd.DataFrame:
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


def column_config(table: pd.DataFrame) -> dict:
    """Short headers (the full meaning in each header's tooltip), so the overview fits a
    1400-pixel screen; scores are percentages with one decimal."""
    number = st.column_config.NumberColumn
    text = st.column_config.TextColumn
    config = {
        "rank": number("#", width=40, pinned=True, help="equal scores share a rank"),
        "name": text("name", width="medium"),
        "note": text(
            "note", width=90, help="no better than guessing on the test set or across labs"
        ),
        "test": text(
            "test acc. %",
            width="small",
            help="in-domain test accuracy, mean ± 95% CI "
            "half-width over seeds (shown from 3 seeds)",
        ),
        "params_m": number(
            "params (M)",
            format="%.1f",
            width="small",
            help="parameters, millions; ensembles count members with non-zero weight",
        ),
        "gmacs": number(
            "GMACs", format="%.2f", width="small", help="multiply-accumulates per image, billions"
        ),
        "test_acc": number("test acc. %", format="%.1f", help="in-domain test accuracy, mean"),
        "test_acc_ci95": number("± 95%", format="%.1f", help="Student t 95% half-width"),
        "n": number("n", width=40, help="seeds"),
        "test_macro_f1": number("test F1 %", format="%.1f", help="in-domain test macro-F1"),
        "val_acc": number("val acc. %", format="%.1f", help="validation accuracy"),
        "cross_acc": number("cross acc. %", format="%.1f", help="mean accuracy, other labs"),
        "cross_bacc": number(
            "cross bal. %",
            format="%.1f",
            width="small",
            help="mean balanced accuracy over the other labs' sets",
        ),
        "rank_shift": number(
            "rank shift",
            width="small",
            help="in-domain rank − cross-lab rank (balanced accuracy); none at chance",
        ),
        "members_used": number("members", width="small", help="members with non-zero weight"),
    }
    for column in table.columns:
        if column.endswith("_bacc") and column not in config:
            label = column.removesuffix("_bacc")
            config[column] = number(
                f"{label} bal. %", format="%.1f", width="small", help=f"balanced accuracy, {label}"
            )
        elif column.endswith("_acc") and column not in config:
            label = column.removesuffix("_acc")
            config[column] = number(f"{label} acc. %", format="%.1f", help=f"accuracy on {label}")
    return config


TITLES = {
    "name": "name",
    "kind": "kind",
    "params_m": "parameters (M)",
    "gmacs": "GMACs",
    "test_acc": "test accuracy",
    "cross_bacc": "cross-lab balanced accuracy",
    "rank_shift": "rank shift",
}


def tip(column: str) -> alt.Tooltip:
    """A tooltip with a readable title, scores as percentages."""
    if column in ("test_acc", "cross_bacc", "cross_acc"):
        return alt.Tooltip(column, title=TITLES.get(column, column), format=".1%")
    if column in ("params_m", "gmacs"):
        return alt.Tooltip(column, title=TITLES[column], format=".2f")
    return alt.Tooltip(column, title=TITLES.get(column, column))


def chance_rule(value: float, axis: str) -> alt.Chart:
    """A dashed line at the score of guessing."""
    line = pd.DataFrame({axis: [value], "label": [f"chance {value:.1%}"]})
    return (
        alt.Chart(line)
        .mark_rule(color="#9e9e9e", strokeDash=[4, 4])
        .encode(**{axis: alt.X(axis) if axis == "x" else alt.Y(axis)}, tooltip="label")
    )


def pareto_chart(view: pd.DataFrame, x: str, title: str) -> alt.LayerChart | None:
    """Test accuracy against ``x`` (log scale), the Pareto front highlighted and joined, and
    the chance line."""
    data = view[(view[x] > 0) & view["test_acc"].notna()].copy()  # uploads have no size
    if data.empty:
        return None
    data["pareto"] = np.where(pareto_front(data[x], data["test_acc"]), "Pareto front", "dominated")
    base = alt.Chart(data).encode(
        x=alt.X(x, title=title, scale=alt.Scale(type="log")),
        y=alt.Y("test_acc", title="test accuracy", axis=alt.Axis(format="%")),
    )
    points = base.mark_circle(size=80).encode(
        color=alt.Color(
            "pareto",
            title=None,
            scale=alt.Scale(domain=["Pareto front", "dominated"], range=["#d62728", "#9e9e9e"]),
        ),
        tooltip=[tip("name"), tip("kind"), tip(x), tip("test_acc")],
    )
    front = base.transform_filter(alt.datum.pareto == "Pareto front").mark_line(color="#d62728")
    chart = front.encode(order=x) + points
    chance = data["test_chance"].dropna()
    return chart + chance_rule(float(chance.iloc[0]), "y") if len(chance) else chart


def glossary() -> None:
    with st.expander("What the columns mean"):
        st.markdown("\n".join(f"- **{term}**: {meaning}." for term, meaning in GLOSSARY.items()))


@st.cache_data(show_spinner=False, max_entries=16)
def set_descriptions(out: str, version: str, dataset: str) -> list[str]:
    """Each evaluation set of the dataset in words (sets without a readable answer key left out)."""
    lines = []
    for set_name, source in dataset_sets(out, version, dataset).items():
        try:
            key, _ = answer_key(out, json.dumps(source, sort_keys=True))
        except (OSError, KeyError, ValueError):
            continue
        lines.append(set_description(set_name, source, len(key), len(set(key.values()))))
    return lines


def sets_described(out: str, version: str, dataset: str) -> None:
    """Each evaluation set in words, with its size: a 10-image set must say so."""
    lines = set_descriptions(out, version, dataset)
    if lines:
        with st.expander("The evaluation sets"):
            st.markdown("\n".join(f"- {line}" for line in lines))


def leaderboard_tab(out: str, version: str, dataset: str, view: pd.DataFrame, total: int) -> None:
    if view.empty:
        st.info(f"No row passes the filters (of {total}).")
        return
    top = view.iloc[0]
    st.markdown(
        f"**{len(view)} of {total} rows** · top: **{top['name']}** "
        f"(test accuracy {100 * top['test_acc']:.1f}%)"
    )
    preset = st.segmented_control(
        "Columns", PRESETS, default=PRESETS[0], key="preset", label_visibility="collapsed"
    )
    shown = display_table(view, preset or PRESETS[0])
    st.dataframe(
        shown, hide_index=True, column_config=column_config(shown), placeholder="", key="table"
    )
    st.caption(
        "Ranked on in-domain test accuracy (equal scores share a rank, the earlier entry first), "
        "scores in percent. Seeds of one configuration are one row: their mean, ± the "
        "half-width of the Student t 95% interval from 3 seeds on (n = seeds, in the in-domain "
        "columns). `<set> bal.` columns score images from other labs by balanced accuracy (mean "
        "recall over the set's classes): those sets are mostly neutrophils, so a model that "
        "always answers neutrophil scores high on plain accuracy but at chance on balanced "
        "accuracy. rank shift = in-domain rank − cross-lab rank: positive means the row climbs "
        "when the lab changes; rows at chance across labs get none."
    )
    glossary()
    sets_described(out, version, dataset)
    if "cross_bacc" in view.columns:
        st.subheader("In-domain accuracy against cross-lab balanced accuracy")
        chart = (
            alt.Chart(view)
            .mark_circle(size=80)
            .encode(
                x=alt.X("test_acc", title="in-domain test accuracy", axis=alt.Axis(format="%")),
                y=alt.Y(
                    "cross_bacc",
                    title="cross-lab balanced accuracy (mean)",
                    axis=alt.Axis(format="%"),
                ),
                color=alt.Color("kind", title="kind"),
                tooltip=[tip(c) for c in ("name", "test_acc", "cross_bacc", "rank_shift")],
            )
        )
        for column, axis in (("test_chance", "x"), ("cross_chance", "y")):
            chance = view[column].dropna()
            if len(chance):
                chart = chart + chance_rule(float(chance.iloc[0]), axis)
        st.altair_chart(chart, width="stretch")
        st.caption("Dashed: chance (1/K in-domain; the mean of 1/K over the cross-lab sets).")
    st.subheader("Accuracy against cost")
    for column, (x, title) in zip(
        st.columns(2), (("params_m", "parameters (millions)"), ("gmacs", "GMACs")), strict=True
    ):
        chart = pareto_chart(view, x, title)
        if chart is not None:
            column.altair_chart(chart, width="stretch")
    st.caption(
        "Red: the Pareto front, rows no other shown row beats on both axes "
        "(no larger and at least as accurate, better in one). Dashed: chance. Uploads have no "
        "cost and are not drawn."
    )


def confusion_chart(cm: pd.DataFrame, by_row: bool) -> alt.LayerChart:
    """The confusion matrix as a heat map; ``by_row``: each true class's row as shares."""
    data = cm.rename_axis("true").reset_index().melt("true", var_name="predicted", value_name="n")
    value = "n"
    if by_row:
        totals = data.groupby("true")["n"].transform("sum").replace(0, np.nan)
        data["share"] = (data["n"] / totals).fillna(0.0)
        value = "share"
    order = list(cm.index)
    base = alt.Chart(data).encode(
        x=alt.X("predicted", sort=order, title="predicted class"),
        y=alt.Y("true", sort=order, title="true class"),
    )
    tooltip = [alt.Tooltip("true", title="true"), alt.Tooltip("predicted", title="predicted"),
               alt.Tooltip("n", title="images")]  # fmt: skip
    if by_row:
        tooltip.append(alt.Tooltip("share", title="share of the row", format=".1%"))
    cells = base.mark_rect().encode(
        color=alt.Color(value, scale=alt.Scale(scheme="blues"), title=value), tooltip=tooltip
    )
    labels = base.mark_text().encode(
        text=alt.Text(value, format=".0%" if by_row else "d"),
        color=alt.condition(
            alt.datum[value] > data[value].max() / 2, alt.value("white"), alt.value("black")
        ),
    )
    return cells + labels


def set_scores(out: str, version: str, entry: Contender, set_name: str, truth: bool) -> None:
    """Headline metrics; with ``truth``, also the confusion matrix and per-class table."""
    full = full_scores(out, version, entry.dataset, entry.name, set_name)
    summary = {
        "accuracy": full["accuracy"],
        "balanced accuracy": full["balanced_accuracy"],
        "macro-F1": full["macro_f1"],
        "macro AUC": full["macro_auc"],  # None with fewer than two classes present
    }
    cols = st.columns(len(summary) + 1)
    for col, (label, value) in zip(cols, summary.items(), strict=False):
        col.metric(label, "–" if value is None else f"{100 * value:.1f}%")
    cols[-1].metric("images", full["n"], help=f"{full['unscored']} of unshared classes unscored")
    if not truth:
        st.caption(COMPETING)
        return
    classes = full["classes"]
    cm = pd.DataFrame(full["confusion_matrix"], index=classes, columns=classes)
    left, right = st.columns(2)
    by_row = left.toggle("Normalise by row (share of each true class)", key=f"by-row-{set_name}")
    left.altair_chart(confusion_chart(cm, by_row), width="stretch")
    with left.expander("Confusion matrix as a table (rows: true, columns: predicted)"):
        st.table(cm)
    per_class = pd.DataFrame(full["per_class"]).T.rename_axis("class")
    right.dataframe(
        per_class[["support", "precision", "sensitivity", "specificity"]],
        column_config={
            c: st.column_config.NumberColumn(format="%.3f")
            for c in ("precision", "sensitivity", "specificity")
        },
        placeholder="–",  # precision of a class never predicted
        key=f"per-class-{set_name}",
    )


@st.cache_data(show_spinner=False, max_entries=64)
def calibration_report(out: str, version: str, dataset: str, name: str, set_name: str) -> dict:
    """ECE, reliability and risk-coverage of a set's submission; the uncalibrated copy
    (``raw/<set>.csv``) is the "before" where there is one, else the submission itself."""
    entry = find_entry(out, version, dataset, name)
    key, vocabulary = answer_key(out, json.dumps(entry.source(set_name), sort_keys=True))
    calibrated = read_submission(entry.files[set_name])
    raw_file = entry.folder / RAW_FOLDER / f"{set_name}.csv"
    raw = read_submission(raw_file) if raw_file.is_file() else calibrated
    return {**compare(raw, calibrated, key, vocabulary), "has_raw": raw_file.is_file()}


def reliability_chart(report: dict) -> alt.LayerChart:
    """Accuracy against mean confidence per bin, before and after; the diagonal is perfect."""
    sides = {"uncalibrated": report["reliability_raw"], "calibrated": report["reliability"]}
    rows = [{**b, "probabilities": side} for side, bins in sides.items() for b in bins if b["n"]]
    diagonal = alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]})).mark_line(
        color="#9e9e9e", strokeDash=[4, 4]
    )
    points = (
        alt.Chart(pd.DataFrame(rows))
        .mark_line(point=True)
        .encode(
            x=alt.X("confidence", title="mean confidence (bin)", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("accuracy", title="accuracy", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("probabilities", title=None),
            tooltip=["probabilities", "lo", "hi", "n", alt.Tooltip("accuracy", format=".3f")],
        )
    )
    return diagonal.encode(x="x", y="y") + points


def calibration_section(out: str, version: str, entry: Contender, set_name: str) -> None:
    report = calibration_report(out, version, entry.dataset, entry.name, set_name)
    temperature = entry.meta.calibration.get("temperature")
    cols = st.columns(5)
    cols[0].metric("ECE before", f"{report['ece_raw']:.4f}" if report["has_raw"] else "–")
    cols[1].metric("ECE after", f"{report['ece']:.4f}")
    cols[2].metric("accuracy at 90% coverage", f"{report['acc_at_90']:.4f}")
    cols[3].metric("accuracy at 80% coverage", f"{report['acc_at_80']:.4f}")
    cols[4].metric("temperature", "–" if temperature is None else f"{temperature:.3f}")
    left, right = st.columns(2)
    left.altair_chart(reliability_chart(report), width="stretch")
    curve = pd.DataFrame(report["risk_coverage"]).drop(columns="aurc")
    right.line_chart(curve, x="coverage", y="accuracy", x_label="coverage (most confident first)")
    st.caption(
        "Expected calibration error (15 equal-width confidence bins) before and after temperature "
        "scaling fitted on validation; right: accuracy of the cells kept as the confidence "
        "threshold rises (risk–coverage). "
        + ("" if report["has_raw"] else "This submission has no uncalibrated copy.")
    )


def gallery(out: str, version: str, entry: Contender, set_name: str, truth: bool) -> None:
    """The set's misclassified images, the most confident mistakes first."""
    if not truth:  # an image captioned with its true class is a label of the test set
        st.caption(COMPETING)
        return
    wrong = misclassified(out, version, entry.dataset, entry.name, set_name)
    root = Path(entry.source(set_name)["root"])
    shown = [(root / i, t, p, c) for i, t, p, c in wrong if (root / i).is_file()][:GALLERY_MAX]
    st.caption(
        f"{len(wrong)} {set_name} images misclassified; {len(shown)} shown, the most confident "
        f"mistakes first (at most {GALLERY_MAX}, read from {root})."
    )
    for start in range(0, len(shown), GALLERY_COLUMNS):
        row = shown[start : start + GALLERY_COLUMNS]
        for col, (path, true, pred, conf) in zip(st.columns(GALLERY_COLUMNS), row, strict=False):
            caption = f"true {true} · predicted {pred} ({100 * conf:.0f}%)"
            col.image(str(path), caption=caption, width="stretch")


def show_entry(config: str, entry_name: str) -> None:
    """Open another configuration on the Details tab (a button's callback)."""
    st.session_state["detail_row"] = config
    st.session_state["detail_entry"] = entry_name


def ensemble_members(entry: Contender, view: pd.DataFrame, long: pd.DataFrame) -> None:
    """An ensemble's method, members and weights (or greedy counts), each member a link."""
    meta = entry.meta
    names = list(meta.members)
    weights = list(meta.weights) or [None] * len(names)
    counts = meta.extra.get("multiset") or {}
    rows = pd.DataFrame(
        {
            "member": names,
            "weight": weights if len(weights) == len(names) else [None] * len(names),
            "count": [counts.get(n) for n in names] if counts else [None] * len(names),
        }
    )
    used = rows["count"].fillna(0).gt(0) if counts else rows["weight"].fillna(1).ne(0)
    rows["used"] = used
    st.subheader("Members")
    top = meta.top
    st.markdown(
        f"Method **{meta.method or '?'}**, K = **{int(used.sum())}** of {len(names)} "
        f"candidates used{'' if top is None else f' (top {top} by validation accuracy)'}; "
        "cost counts only the members used."
    )
    st.dataframe(rows.dropna(axis=1, how="all"), hide_index=True, key="ensemble_members")
    configs = long[long["dataset"] == entry.dataset].drop_duplicates("entry")
    config_of = dict(zip(configs["entry"], configs["name"], strict=True))
    cols = st.columns(min(len(names), 6) or 1)
    for i, name in enumerate(names):
        config = config_of.get(name)
        cols[i % len(cols)].button(
            name,
            key=f"member-{i}",
            on_click=show_entry,
            args=(config, name),
            disabled=config is None or config not in set(view["name"]),
            help="open this member's details",
        )


def details_tab(
    out: str, version: str, dataset: str, view: pd.DataFrame, long: pd.DataFrame
) -> None:
    if view.empty:
        st.info("No row passes the filters.")
        return
    name = st.selectbox("Configuration", list(view["name"]), key="detail_row")
    entries = sorted(long[(long["dataset"] == dataset) & (long["name"] == name)]["entry"].unique())
    if st.session_state.get("detail_entry") not in entries:
        st.session_state.pop("detail_entry", None)
    entry_name = (
        st.selectbox("Seed", entries, key="detail_entry") if len(entries) > 1 else entries[0]
    )
    entry = find_entry(out, version, dataset, entry_name)
    if getattr(entry.meta, "description", ""):
        st.markdown(f"*{entry.meta.description}*")
    if entry.kind == "ensemble":
        ensemble_members(entry, view, long)
    scored = [s for s in entry.files if entry.source(s) is not None]
    # in-domain test first, then every cross-domain set; validation only when nothing else
    shown = [s for s in ("test",) if s in scored] + [s for s in scored if s not in IN_DOMAIN]
    shown = shown or scored
    rules: Disclosure = disclosure(Path(out))
    st.subheader(f"{entry_name}: scores per evaluation set")
    for tab, set_name in zip(st.tabs(shown), shown, strict=True):
        truth = rules.shows_truth(set_name)
        with tab:
            set_scores(out, version, entry, set_name, truth)
            st.markdown("**Calibration and selective prediction**")
            calibration_section(out, version, entry, set_name)
            st.markdown(f"**Misclassified {set_name} images**")
            gallery(out, version, entry, set_name, truth)

    st.subheader("Training curves")
    hist = history(out, dataset, entry_name)
    if hist is None:
        st.caption("No training history (ensembles and uploads have none).")
    else:
        hist = hist.set_index("epoch")
        for col, suffix, label in zip(
            st.columns(2), ("_acc", "_loss"), ("accuracy", "loss"), strict=True
        ):
            curves = [c for c in hist.columns if c.endswith(suffix)]
            if curves:
                col.line_chart(hist[curves], x_label="epoch", y_label=label)

    pictures = sorted(Layout(Path(out)).explanations(dataset, entry_name).glob("*.png"))
    if pictures:  # written by `python -m pipeline.explain`
        st.subheader("Explanations")
        for picture in pictures:
            st.image(str(picture), caption=picture.name)

    st.subheader("Provenance")
    if entry.meta.command is not None:
        st.code(entry.meta.command, language="bash", wrap_lines=True)
    st.json(entry.meta.to_json(), expanded=False)


def eval_sets(entries: list[Contender], dataset: str) -> dict[str, dict]:
    """Set name -> answer-key source, from the entries' ``meta.json`` (the first one wins)."""
    sets: dict[str, dict] = {}
    for e in entries:
        if e.dataset == dataset:
            for set_name, source in e.meta.sets.items():
                if source is not None:
                    sets.setdefault(set_name, source)
    return dict(sorted(sets.items(), key=lambda kv: (kv[0] != "test", kv[0])))


def submission_uploader(set_name: str) -> UploadedFile | None:
    return st.file_uploader(
        f"A submission CSV for {set_name} (format: submissions/README.md; at most "
        f"{MAX_BYTES // 2**20} MB)",
        type=["csv"],
        key="upload",
        max_upload_size=MAX_BYTES // 2**20,
    )


def would_rank(table: pd.DataFrame, set_name: str, scores: dict) -> tuple[int, int, str]:
    """The rank an upload would get, and among how many: the leaderboard's own rule (equal
    scores share a rank), on test accuracy for the test set and balanced accuracy elsewhere, so
    that the rank after saving is the one shown before."""
    if set_name == "test":
        column, metric, ranked = "test_acc", "accuracy", table[table["rank"].notna()]
    else:
        column, metric = f"{set_name}_bacc", "balanced_accuracy"
        ranked = table[table[column].notna()] if column in table else table.iloc[:0]
    label = "test accuracy" if set_name == "test" else f"{set_name} balanced accuracy"
    return int((ranked[column] > scores[metric]).sum()) + 1, len(ranked) + 1, label


@st.cache_data(show_spinner=False, max_entries=16)
def sample_csv(out: str, source_json: str) -> bytes:
    """The set's sample submission, built once (thousands of rows)."""
    key, vocabulary = answer_key(out, source_json)
    return sample_submission(list(key), vocabulary)


def format_help(out: str, set_name: str, source: dict, key: dict[str, str]) -> None:
    """The set in words, a sample submission to download and its first lines inline."""
    st.markdown(
        "Answer key: "
        + set_description(set_name, source, len(key), len(set(key.values()))).replace("**", "")
    )
    sample = sample_csv(out, json.dumps(source, sort_keys=True))
    st.markdown(
        "A submission is a CSV with a header `id`, one probability column per class and `pred`,"
        " one row per image (the repository's `submissions/README.md`); the sample "
        "below gives every class the same probability:"
    )
    st.code(head_lines(sample), language="text")
    st.download_button(
        f"Download a sample submission for {set_name} ({len(key)} rows)",
        sample,
        file_name=f"sample-{set_name}.csv",
        mime="text/csv",
        key=f"sample-{set_name}",
    )


def competition_tab(
    out: str, version: str, dataset: str, table: pd.DataFrame, read_only: bool = False
) -> None:
    if "saved" in st.session_state:
        st.success(st.session_state.pop("saved"))
    sets = dataset_sets(out, version, dataset)
    if not sets:
        st.info(f"No entry of {dataset} says where its answer keys come from.")
        return
    try:
        settings = competition.load_settings(Path(out))
    except (OSError, ValueError) as exc:  # a hand-edited settings file
        st.error(f"Competition settings: {exc}")
        return
    if settings is not None:
        contest(out, dataset, settings)
        return
    set_name = st.selectbox(f"Evaluation set of {dataset}", list(sets), key="eval_set")
    source = sets[set_name]
    try:
        key, vocabulary = answer_key(out, json.dumps(source, sort_keys=True))
    except (OSError, KeyError, ValueError) as exc:  # OSError, KeyError: the answer key's data
        st.error(str(exc))
        return
    format_help(out, set_name, source, key)
    uploaded = submission_uploader(set_name)
    if uploaded is None:
        return
    try:
        result = check_upload(uploaded.getvalue(), key, uploaded.name, vocabulary=vocabulary)
    except ValueError as exc:
        st.error(str(exc))
        return
    s = result.scores
    rank, of, label = would_rank(table, set_name, s)
    st.success(f"{uploaded.name}: valid, {s['n']} images scored.")
    cols = st.columns(4)
    cols[0].metric("accuracy", f"{100 * s['accuracy']:.1f}%")
    cols[1].metric("macro-F1", f"{100 * s['macro_f1']:.1f}%")
    cols[2].metric("balanced accuracy", f"{100 * s['balanced_accuracy']:.1f}%")
    cols[3].metric(f"would rank ({label})", f"{rank} of {of}")
    if read_only:
        st.caption("The reference zoo is read-only: to keep this submission, save it on your zoo.")
        return

    name = st.text_input("Name to save it under", key="upload_name")
    description = st.text_input(
        "Description (optional: the model, its training, a link)", key="upload_description"
    )
    if st.button("Save", key="save", disabled=not name.strip()):
        try:
            folder = save_upload(
                Path(out), dataset, set_name, name, result, source, description=description
            )
        except ValueError as exc:
            st.error(str(exc))
            return
        st.session_state["saved"] = f"Saved as {folder}; it is on the leaderboard now."
        st.rerun()
    elif name.strip():
        with contextlib.suppress(ValueError):  # an unusable name is reported on Save
            st.caption(f"It will be saved as {dataset}/{sanitise_name(name)}.")


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


def contest(out: str, dataset: str, settings: competition.Settings) -> None:
    """Competition mode: teams submit for the test bundle's opaque ids and are ranked on its
    public part; a team's token opens its submitting, history and final selection."""
    try:
        key = competition.load_key(Path(out), dataset)
    except ValueError as exc:
        st.error(str(exc))
        return
    if key is None:
        st.info(
            f"No competition on {dataset} yet: the organiser makes its test bundle with "
            f"`python -m pipeline.leaderboard --out DIR --competition --tag {dataset} "
            "--bundle BUNDLE`."
        )
        return
    public, _ = key.divide(settings.public_share)
    hidden = "revealed" if settings.revealed else "hidden until the organiser reveals them"
    st.markdown(
        f"**Competition** on the {dataset} test bundle: ranked on its public part "
        f"({len(public)} of {len(key.images)} images, stratified, drawn in secret); private "
        f"scores {hidden}. At most {settings.daily_limit} submissions per team and UTC day."
    )
    table = competition.board(Path(out), dataset, settings, key.public_set(settings.public_share))
    if table.empty:
        st.info("No submission yet.")
    else:
        st.dataframe(table, hide_index=True, key="competition_board")
    if settings.revealed:
        st.caption(
            "Final ranking on the private part, by each team's selected submission; public "
            "rank by best public accuracy; shake-up = public rank − private rank."
        )
    cols = st.columns(2)
    name = cols[0].text_input("Team", key="team").strip()
    token = cols[1].text_input("Token", key="token", type="password").strip()
    if not (name and token):
        st.caption("Your team's name and the token the organiser gave you open submitting.")
        return
    try:
        team = authenticate(Path(out), name, token)
    except ValueError as exc:
        st.error(str(exc))
        return
    uploaded = submission_uploader(competition.SET)
    if uploaded is not None:
        submit_form(out, dataset, team, uploaded, key, settings)
    team_history(out, dataset, team, settings)


def submit_form(
    out: str,
    dataset: str,
    team: Team,
    uploaded: UploadedFile,
    key: competition.ContestKey,
    settings: competition.Settings,
) -> None:
    """Check an uploaded file; on Submit, score and store it for ``team``. Scores show only once
    submitted, and only the public one: checking a file is no free probe of the test set."""
    try:
        competition.check(uploaded.getvalue(), key, uploaded.name)
    except ValueError as exc:
        st.error(str(exc))
        return
    st.caption(f"{uploaded.name} is valid. Submit it to see its public score.")
    if st.button("Submit", key="submit"):
        _, lock = shared_scorer(out)
        try:
            with lock:  # the daily limit holds across sessions
                record = competition.submit(
                    Path(out), dataset, team, uploaded.getvalue(), uploaded.name, key, settings
                )
        except ValueError as exc:
            st.error(str(exc))
            return
        st.session_state["saved"] = (
            f"{uploaded.name}: submission {record.id} of team {record.team}, public "
            f"accuracy {record.public['accuracy']:.4f}."
        )
        st.rerun()


def team_history(out: str, dataset: str, team: Team, settings: competition.Settings) -> None:
    """A team's submissions, today's count, and its choice for the final ranking."""
    try:
        records = competition.history(Path(out), dataset, team.name)
    except ValueError as exc:  # a damaged record
        st.error(str(exc))
        return
    if not records:
        st.caption(f"No submission by {team.name} yet.")
        return
    chosen = competition.selected(Path(out), dataset, team.name, records)
    rows = []
    for r in records:
        row = {"submission": r.id, "file": r.file, "created": r.created}
        row |= {"public_acc": r.public["accuracy"], "public_bacc": r.public["balanced_accuracy"]}
        if settings.revealed:
            row["private_acc"] = r.private["accuracy"]
        rows.append(row | {"selected": r.id == chosen.id})
    st.subheader(f"Submissions of {team.name}")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="history")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    used = sum(r.day == today for r in records)
    st.caption(f"{used} of {settings.daily_limit} submissions used today (UTC).")
    ids = [r.id for r in records]
    pick = st.selectbox(
        "Selected for the final ranking (default: the best public score)",
        ids,
        index=ids.index(chosen.id),
        key=f"final-{team.name}",
        disabled=settings.revealed,
    )
    if pick != chosen.id:
        competition.select(Path(out), dataset, team, pick, settings)
        st.rerun()


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


def main() -> None:
    st.set_page_config(page_title="WBC Zoo leaderboard", layout="wide")
    out, ref = choose_zoo(*out_folder())
    if ref is None:
        st.sidebar.caption(f"Out folder: `{out.resolve()}`")
    version = version_of(out)
    try:
        long = score_table(str(out), version)
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
        live_section(str(out), list(manifests(out)))
        st.info(
            f"No scored submissions under `{out / 'submissions'}` yet. Train the zoo: "
            "`python -m pipeline.zoo --all` (with `--out` pointing here); members appear above "
            "while they train and on the board when they finish."
        )
        st.stop()
    dataset = st.sidebar.selectbox(
        "Training dataset", sorted(long["dataset"].unique()), key="dataset"
    )
    table = board(str(out), version, dataset, choose_test_set(long, dataset))
    view = sidebar_filters(table)
    live_section(str(out), [dataset])
    tabs = st.tabs(["Leaderboard", "Details", "Competition"])
    with tabs[0]:
        leaderboard_tab(str(out), version, dataset, view, len(table))
    with tabs[1]:
        details_tab(str(out), version, dataset, view, long)
    with tabs[2]:
        competition_tab(str(out), version, dataset, table, read_only=ref is not None)


main()
