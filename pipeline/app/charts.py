"""Altair charts of the board and the details: Pareto fronts, confusion matrices, reliability."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from pipeline.ranking.pareto import pareto_front

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
