"""The Leaderboard page: the table in column presets, the glossary and the plots."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from pipeline.app.charts import chance_rule, pareto_chart, tip
from pipeline.app.loaders import set_descriptions
from pipeline.app.selection import Selection
from pipeline.ranking.present import GLOSSARY, PRESETS, display_table, set_header, set_images


def column_config(table: pd.DataFrame, images: dict[str, float] | None = None) -> dict:
    """Short headers (the full meaning in each header's tooltip), so the overview fits a
    1400-pixel screen; scores are percentages with one decimal; each cross-lab set's header
    names its image count (``images``), marked when the set is small."""
    images = images or {}
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
        "val_acc_oof": number(
            "val OOF %",
            format="%.1f",
            width="small",
            help="fitted ensembles: validation accuracy out of fold (each image predicted by "
            "the method fitted on the other folds); what they are chosen on",
        ),
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
            header, tooltip = set_header(label, "bal.", images.get(label, float("nan")))
            config[column] = number(header, format="%.1f", width="small", help=tooltip)
        elif column.endswith("_acc") and column not in config:
            label = column.removesuffix("_acc")
            header, tooltip = set_header(label, "acc.", images.get(label, float("nan")))
            config[column] = number(header, format="%.1f", help=tooltip)
    return config


def glossary() -> None:
    with st.expander("What the columns mean"):
        st.markdown("\n".join(f"- **{term}**: {meaning}." for term, meaning in GLOSSARY.items()))


def sets_described(out: str, version: str, dataset: str, folders: bool) -> None:
    """Each evaluation set in words, with its size: a 10-image set must say so (and where it
    lies, with ``folders``)."""
    lines = set_descriptions(out, version, dataset, folders)
    if lines:
        with st.expander("The evaluation sets"):
            st.markdown("\n".join(f"- {line}" for line in lines))


def leaderboard_page(chosen: Selection) -> None:
    """The rows the filters keep in a column preset, the glossary and the plots; in
    competition mode no data folder is named."""
    view, part = chosen.view, chosen.part
    if view.empty:
        st.info(f"No row passes the filters (of {chosen.total}).")
        return
    top = view.iloc[0]
    st.markdown(
        f"**{len(view)} of {chosen.total} rows** · top: **{top['name']}** "
        f"(test accuracy {100 * top['test_acc']:.1f}%)"
    )
    preset = st.segmented_control(
        "Columns", PRESETS, default=PRESETS[0], key="preset", label_visibility="collapsed"
    )
    shown = display_table(view, preset or PRESETS[0])
    st.dataframe(
        shown,
        hide_index=True,
        column_config=column_config(shown, set_images(view)),
        placeholder="",
        key="table",
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
        + (
            f" Cross-lab sets with versioned parts are scored on their **{part} part** only."
            if part
            else ""
        )
    )
    glossary()
    sets_described(chosen.out, chosen.version, chosen.dataset, folders=not chosen.rules.hiding)
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
