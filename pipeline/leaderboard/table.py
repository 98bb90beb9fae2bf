"""Leaderboard tables: one row per configuration (seeds pooled), in-domain and across labs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pipeline.leaderboard.collect import Entry
from pipeline.leaderboard.scores import Scorer
from pipeline.stats import mean_ci

IN_DOMAIN = ("val", "test")  # every other set of a training dataset is cross-domain
WEIGHTS = {"imagenet": "ImageNet", "none": "random"}


def long_table(entries: list[Entry], scorer: Scorer) -> pd.DataFrame:
    """One row per entry and evaluation set, with the entry's description and its scores."""
    rows = []
    for e in entries:
        described = describe(e)
        for set_name in e.files:
            try:
                scores = scorer.summary(e, set_name)
            except (OSError, KeyError, ValueError) as exc:  # one moved dataset spoils no table
                warnings.warn(f"{e.folder / (set_name + '.csv')}: not scored ({exc})", stacklevel=2)
                continue
            if scores is not None:
                rows.append({**described, "set": set_name, **scores})
    scorer.save()
    return pd.DataFrame(rows)


def describe(e: Entry) -> dict:
    m = e.meta
    single = e.kind in ("member", "adapted")
    weights = m.get("weights") if single else "+".join(m.get("weights_init", []))
    norm = m.get("norm") if single else "+".join(m.get("norm", []))
    return {
        "dataset": e.dataset,
        "name": e.config,
        "entry": e.name,
        "kind": {"member": "single"}.get(e.kind, e.kind),
        "family": m.get("family", "?"),
        "norm": norm or "?",
        "weights": WEIGHTS.get(weights, weights or "?"),
        "params_m": m.get("params", 0) / 1e6,
        "gmacs": m.get("gmacs", np.nan),
        "image_size": m.get("image_size", np.nan),
        "transductive": bool(m.get("transductive", False)),
    }


def leaderboard(long: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Rank, description, in-domain test accuracy (mean ± CI over seeds, n) and macro-F1,
    accuracy and balanced accuracy per cross-domain set, and the rank shift from in-domain to
    cross-domain.

    The cross-domain rank uses balanced accuracy: other labs' sets are imbalanced (BCCD and
    Tecom are ~60% neutrophils), so plain accuracy would reward a model that collapsed onto the
    majority class.
    """
    data = long[long["dataset"] == dataset]
    if data.empty:
        return pd.DataFrame()
    cross_sets = sorted(s for s in data["set"].unique() if s not in IN_DOMAIN)
    rows = []
    for _, group in data.groupby("name", sort=False):
        first = group.iloc[0]
        row = {c: first[c] for c in ("name", "kind", "family", "norm", "weights", "transductive")}
        row |= {"params_m": first["params_m"], "gmacs": first["gmacs"]}
        test = group[group["set"] == "test"]
        row["test_acc"], row["test_acc_ci95"], row["n"] = mean_ci(test["accuracy"])
        row["test_macro_f1"] = mean_ci(test["macro_f1"])[0]
        row["val_acc"] = mean_ci(group[group["set"] == "val"]["accuracy"])[0]
        for s in cross_sets:
            scores = group[group["set"] == s]
            row[f"{s}_acc"] = mean_ci(scores["accuracy"])[0]
            row[f"{s}_bacc"] = mean_ci(scores["balanced_accuracy"])[0]
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(["test_acc", "name"], ascending=[False, True])
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    if cross_sets:
        table["cross_acc"] = table[[f"{s}_acc" for s in cross_sets]].mean(axis=1)
        table["cross_bacc"] = table[[f"{s}_bacc" for s in cross_sets]].mean(axis=1)
        cross_rank = table["cross_bacc"].rank(ascending=False, method="min")
        table["rank_shift"] = (table["rank"] - cross_rank).astype("Int64")
    return table.reset_index(drop=True)


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub Markdown table (no extra dependency)."""

    def cell(v: object) -> str:
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return "" if v is pd.NA else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)
