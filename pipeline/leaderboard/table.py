"""Leaderboard tables: one row per configuration (seeds pooled), in-domain and across labs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pipeline.leaderboard.collect import Contender
from pipeline.leaderboard.scores import Scorer
from pipeline.metadata import AdaptedMeta, EnsembleMeta, MemberMeta
from pipeline.stats import mean_ci

IN_DOMAIN = ("val", "test")  # every other set of a training dataset is cross-domain
WEIGHTS = {"imagenet": "ImageNet", "none": "random", "file": "own backbone"}


def long_table(entries: list[Contender], scorer: Scorer) -> pd.DataFrame:
    """One row per entry and evaluation set, with the entry's description and its scores."""
    rows = []
    for e in entries:
        described = row_description(e) | {"test_set": _test_set(e, scorer)}
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


def _test_set(e: Contender, scorer: Scorer) -> str:
    """The fingerprint of the entry's in-domain test set; empty without one."""
    source = e.source("test")
    if source is None:
        return ""
    try:
        return scorer.test_set(source)
    except (OSError, KeyError, ValueError):  # reported when its scores fail the same way
        return ""


def ranked_test_sets(long: pd.DataFrame, dataset: str) -> list[str]:
    """The test-set fingerprints of a dataset's entries, the most used first: entries scored on
    different test sets (another split file, a partial copy) are ranked apart."""
    data = long[(long["dataset"] == dataset) & (long["test_set"] != "")]
    counts = data.groupby("test_set")["entry"].nunique()
    return sorted(counts.index, key=lambda t: (-counts[t], t))


def row_description(e: Contender) -> dict:
    m = e.meta
    weights = norm = family = gmacs = image_size = None
    params = 0
    if isinstance(m, MemberMeta):
        weights, norm, family, image_size = m.weights, m.norm, m.family, m.image_size
        params, gmacs = m.params, m.gmacs
    elif isinstance(m, EnsembleMeta):
        weights, norm, family = "+".join(m.weights_init), "+".join(m.norm), m.family
        params, gmacs = m.params, m.gmacs
    return {
        "dataset": e.dataset,
        "name": e.config,
        "entry": e.name,
        "kind": {"member": "single"}.get(e.kind, e.kind),
        "family": family or "?",
        "norm": norm or "?",
        "weights": WEIGHTS.get(weights, weights or "?"),
        "params_m": params / 1e6,
        "gmacs": np.nan if gmacs is None else gmacs,
        "image_size": np.nan if image_size is None else image_size,
        "transductive": isinstance(m, AdaptedMeta) and m.transductive,
    }


def leaderboard(long: pd.DataFrame, dataset: str, test_set: str | None = None) -> pd.DataFrame:
    """Rank, description, in-domain test accuracy (mean ± CI over seeds, n) and macro-F1,
    accuracy and balanced accuracy per cross-domain set, and the rank shift from in-domain to
    cross-domain.

    Only entries scored on one test set are ranked together: ``test_set`` (a fingerprint from
    ``ranked_test_sets``; default the most used one). A row that leaves any test image unscored (a
    class of the set's vocabulary it has no column for) is listed last, without a rank.

    The cross-domain rank uses balanced accuracy: other labs' sets are imbalanced (BCCD and
    Tecom are ~60% neutrophils), so plain accuracy would reward a model that collapsed onto the
    majority class. Both ranks of the shift are taken over the same rows: those with a rank and
    every cross-domain set scored in full.
    """
    data = long[long["dataset"] == dataset]
    if data.empty:
        return pd.DataFrame()
    fingerprints = ranked_test_sets(long, dataset)
    if fingerprints:
        chosen = fingerprints[0] if test_set is None else test_set
        data = data[data["test_set"] == chosen]
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
        row["_complete"] = len(test) > 0 and test["unscored"].sum() == 0
        row["_cross_complete"] = True
        for s in cross_sets:
            scores = group[group["set"] == s]
            row[f"{s}_acc"] = mean_ci(scores["accuracy"])[0]
            row[f"{s}_bacc"] = mean_ci(scores["balanced_accuracy"])[0]
            row["_cross_complete"] &= len(scores) > 0 and scores["unscored"].sum() == 0
        rows.append(row)
    table = pd.DataFrame(rows)
    table["_unranked"] = ~table["_complete"]
    table = table.sort_values(["_unranked", "test_acc", "name"], ascending=[True, False, True])
    ranked = table["_complete"].to_numpy()
    rank = pd.array([pd.NA] * len(table), dtype="Int64")
    rank[ranked] = np.arange(1, ranked.sum() + 1)
    table.insert(0, "rank", rank)
    if cross_sets:
        table["cross_acc"] = table[[f"{s}_acc" for s in cross_sets]].mean(axis=1)
        table["cross_bacc"] = table[[f"{s}_bacc" for s in cross_sets]].mean(axis=1)
        both = table["_complete"] & table["_cross_complete"]
        in_rank = both.cumsum().where(both)  # the table is in in-domain order
        cross_rank = table["cross_bacc"].where(both).rank(ascending=False, method="min")
        table["rank_shift"] = (in_rank - cross_rank).astype("Int64")
    table = table.drop(columns=["_complete", "_cross_complete", "_unranked"])
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
