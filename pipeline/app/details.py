"""The Details page: one configuration and seed, its scores per set, calibration, mistakes,
training curves and provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from pipeline.app.charts import confusion_chart, reliability_chart
from pipeline.app.loaders import (
    calibration_report,
    find_entry,
    full_scores,
    history,
    misclassified,
    set_images,
)
from pipeline.app.selection import Selection
from pipeline.ranking.collect import Contender
from pipeline.ranking.disclosure import Disclosure, without_paths
from pipeline.ranking.table import IN_DOMAIN
from pipeline.runs.layout import Layout

COMPETING = (
    "Competition mode: this set's confusion matrix, per-class scores and misclassified images "
    "are not shown until the organiser reveals the private scores: the set shares images with "
    "the competition's test set (or they cannot be checked here), and they would reveal true "
    "labels of its images."
)
EXPLANATIONS_HIDDEN = (
    "Competition mode: explanations are not shown until the organiser reveals the private "
    "scores: their captions name images and their true classes."
)
PATHS_HIDDEN = "Competition mode: the data folders and the command naming them are hidden."
GALLERY_MAX = 24
GALLERY_COLUMNS = 6


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


def shows_truth(out: str, rules: Disclosure, source: dict) -> bool:
    """Whether the set's labels may show; its images are fingerprinted only while hiding."""
    if not rules.hiding:
        return True
    return rules.shows_truth(set_images(out, json.dumps(source, sort_keys=True)))


def gallery(
    out: str, version: str, entry: Contender, set_name: str, truth: bool, folders: bool
) -> None:
    """The set's misclassified images, the most confident mistakes first (and, with
    ``folders``, where they were read from)."""
    if not truth:  # an image captioned with its true class is a label of the test set
        st.caption(COMPETING)
        return
    wrong = misclassified(out, version, entry.dataset, entry.name, set_name)
    root = Path(entry.source(set_name)["root"])
    shown = [(root / i, t, p, c) for i, t, p, c in wrong if (root / i).is_file()][:GALLERY_MAX]
    where = f", read from {root}" if folders else ""
    st.caption(
        f"{len(wrong)} {set_name} images misclassified; {len(shown)} shown, the most confident "
        f"mistakes first (at most {GALLERY_MAX}{where})."
    )
    for start in range(0, len(shown), GALLERY_COLUMNS):
        row = shown[start : start + GALLERY_COLUMNS]
        for col, (path, true, pred, conf) in zip(st.columns(GALLERY_COLUMNS), row, strict=False):
            caption = f"true {true} · predicted {pred} ({100 * conf:.0f}%)"
            col.image(str(path), caption=caption, width="stretch")


def show_entry(config: str, entry_name: str) -> None:
    """Open another configuration on the Details page (a button's callback)."""
    st.session_state["detail_row"] = config
    st.session_state["detail_entry"] = entry_name


def ensemble_members(entry: Contender, view: pd.DataFrame, long: pd.DataFrame) -> None:
    """An ensemble's method, members and weights (or greedy counts), each member a link."""
    meta = entry.meta
    names = list(meta.members)
    weights = list(meta.member_weights) or [None] * len(names)
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


def details_page(chosen: Selection) -> None:
    """The configuration (and seed) chosen among the rows the filters keep; what a running
    competition lets it show."""
    out, version, dataset = chosen.out, chosen.version, chosen.dataset
    view, long, rules = chosen.view, chosen.long, chosen.rules
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
    st.subheader(f"{entry_name}: scores per evaluation set")
    for tab, set_name in zip(st.tabs(shown), shown, strict=True):
        truth = shows_truth(out, rules, entry.source(set_name))
        with tab:
            set_scores(out, version, entry, set_name, truth)
            st.markdown("**Calibration and selective prediction**")
            calibration_section(out, version, entry, set_name)
            st.markdown(f"**Misclassified {set_name} images**")
            gallery(out, version, entry, set_name, truth, folders=not rules.hiding)

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
        if rules.hiding:  # Grad-CAM sheets default to the test set's mistakes
            st.caption(EXPLANATIONS_HIDDEN)
        else:
            for picture in pictures:
                st.image(str(picture), caption=picture.name)

    st.subheader("Provenance")
    if rules.hiding:
        st.caption(PATHS_HIDDEN)
        st.json(without_paths(entry.meta.to_json()), expanded=False)
        return
    if entry.meta.command is not None:
        st.code(entry.meta.command, language="bash", wrap_lines=True)
    st.json(entry.meta.to_json(), expanded=False)
