"""Leaderboard tables: one row per configuration (seeds pooled), in-domain and across labs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from pipeline.evaluation.stats import mean_ci
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import Contender
from pipeline.ranking.ranks import shared_rank
from pipeline.runs.metadata import EnsembleMeta, MemberMeta, UploadMeta

IN_DOMAIN = ("val", "test")  # every other set of a training dataset is cross-domain
WEIGHTS = {"imagenet": "ImageNet", "none": "random", "file": "own backbone"}
# columns the app uses that a printed table leaves out
NOT_PRINTED = ("created", "description", "test_chance", "cross_chance", "members_used")
TOLERANCE = 1e-9  # a score this close to chance is at chance


def long_table(entries: list[Contender], scorer: Scorer) -> pd.DataFrame:
    """One row per entry and evaluation set, with the entry's description and its scores."""
    rows = []
    used = used_costs(entries)
    chances: dict[str, float] = {}  # per answer-key source: sets are shared by many entries
    for e in entries:
        described = row_description(e) | used.get((e.dataset, e.name), {})
        described["test_set"] = _test_set(e, scorer)
        for set_name in e.files:
            try:
                scores = scorer.summary(e, set_name)
            except (OSError, KeyError, ValueError) as exc:  # one moved dataset spoils no table
                warnings.warn(f"{e.folder / (set_name + '.csv')}: not scored ({exc})", stacklevel=2)
                continue
            if scores is not None:
                source = e.source(set_name)
                ident = json.dumps(source, sort_keys=True)
                if ident not in chances:
                    chances[ident] = _chance(source, scorer)
                rows.append({**described, "set": set_name, **scores, "chance": chances[ident]})
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


def _chance(source: dict, scorer: Scorer) -> float:
    """The balanced accuracy of guessing: 1 / the number of classes of the set's vocabulary."""
    try:
        return 1 / len(scorer.keys.vocabulary(source))
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        return np.nan


def used_costs(entries: list[Contender]) -> dict[tuple[str, str], dict]:
    """(dataset, ensemble) -> the parameters, GMACs and number of the members it really uses:
    those with a non-zero weight (or count, for a greedy multiset). An ensemble whose members
    are not all on the board keeps the cost its ``meta.json`` states."""
    members = {(e.dataset, e.name): e.meta for e in entries if isinstance(e.meta, MemberMeta)}
    costs = {}
    for e in entries:
        m = e.meta
        if not isinstance(m, EnsembleMeta) or not m.members:
            continue
        names, weights, counts = m.members, m.member_weights, m.extra.get("multiset")
        if isinstance(counts, dict):
            used = [n for n in names if counts.get(n, 0)]
        elif len(weights) == len(names):
            used = [n for n, w in zip(names, weights, strict=True) if w]
        else:
            used = list(names)
        metas = [members.get((e.dataset, n)) for n in dict.fromkeys(used)]
        if used and all(meta is not None for meta in metas):
            costs[(e.dataset, e.name)] = {
                "params_m": sum(meta.params for meta in metas) / 1e6,
                "gmacs": sum(meta.gmacs or 0 for meta in metas),
                "members_used": len(metas),
            }
    return costs


def ranked_test_sets(long: pd.DataFrame, dataset: str) -> list[str]:
    """The test-set fingerprints of a dataset's entries, the most used first: entries scored on
    different test sets (another split file, a partial copy) are ranked apart."""
    data = long[(long["dataset"] == dataset) & (long["test_set"] != "")]
    counts = data.groupby("test_set")["entry"].nunique()
    return sorted(counts.index, key=lambda t: (-counts[t], t))


def row_description(e: Contender) -> dict:
    """The entry's description. Uploads say nothing of how they were made: their family,
    normalisation, weights and cost are blank (not "?" or 0), and their description is the
    uploader's own."""
    m = e.meta
    described = {
        "dataset": e.dataset,
        "name": e.config,
        "entry": e.name,
        "kind": "adapted ensemble"
        if isinstance(m, EnsembleMeta) and m.adapted_from
        else {"member": "single"}.get(e.kind, e.kind),
        "created": m.created or "",
        "description": m.description if isinstance(m, UploadMeta) else "",
        "transductive": isinstance(m, (MemberMeta, EnsembleMeta)) and m.transductive,
        # a fitted ensemble's validation score out of fold: its val_acc is in-sample
        "val_acc_oof": _or_nan(m.val_acc_oof) if isinstance(m, EnsembleMeta) else np.nan,
        "seed": m.seed if isinstance(m, MemberMeta) and m.seed is not None else np.nan,
    }
    if isinstance(m, MemberMeta):  # adapted entries too
        weights, norm, family, members_used = m.init, m.norm, m.family, 1
    elif isinstance(m, EnsembleMeta):
        weights, norm, family = "+".join(m.member_inits), "+".join(m.norm), m.family
        members_used = len(m.members)
    else:
        blank = {"family": "", "norm": "", "weights": "", "params_m": np.nan, "gmacs": np.nan}
        return described | blank | {"image_size": np.nan, "members_used": np.nan}
    image_size = m.image_size if isinstance(m, MemberMeta) else None
    return described | {
        "family": family or "",
        "norm": norm or "",
        "weights": WEIGHTS.get(weights, weights or ""),
        "params_m": m.params / 1e6,
        "gmacs": np.nan if m.gmacs is None else m.gmacs,
        "image_size": np.nan if image_size is None else image_size,
        "members_used": members_used,
    }


def ranked_table(long: pd.DataFrame, dataset: str, test_set: str | None = None) -> pd.DataFrame:
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
    described = ("name", "kind", "family", "norm", "weights", "transductive", "description")
    rows = []
    for _, group in data.groupby("name", sort=False):
        first = group.iloc[0]
        row = {c: first[c] for c in described if c in group}
        row |= {"params_m": first["params_m"], "gmacs": first["gmacs"]}
        row["members_used"] = first.get("members_used", np.nan)
        row["created"] = group["created"].min() if "created" in group else ""
        test = group[group["set"] == "test"]
        row["test_acc"], row["test_acc_ci95"], row["n"] = mean_ci(test["accuracy"])
        row["test_macro_f1"] = mean_ci(test["macro_f1"])[0]
        row["val_acc"] = mean_ci(group[group["set"] == "val"]["accuracy"])[0]
        row["val_acc_oof"] = group.drop_duplicates("entry")["val_acc_oof"].mean()
        row["test_chance"] = _first(test, "chance")
        row["_complete"] = len(test) > 0 and test["unscored"].sum() == 0
        row["_cross_complete"] = True
        chances = []
        for s in cross_sets:
            scores = group[group["set"] == s]
            row[f"{s}_acc"] = mean_ci(scores["accuracy"])[0]
            row[f"{s}_bacc"] = mean_ci(scores["balanced_accuracy"])[0]
            row[f"{s}_images"] = scores["n"].max() if len(scores) else np.nan
            row["_cross_complete"] &= len(scores) > 0 and scores["unscored"].sum() == 0
            chances.append(_first(scores, "chance"))
        row["cross_chance"] = (
            np.nanmean(chances) if chances and not np.isnan(chances).all() else np.nan
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    table["_unranked"] = ~table["_complete"]
    # equals share a rank (competition ranking); among them the earlier submission is shown
    # first, as on Kaggle, and the name orders the rest
    table = table.sort_values(
        ["_unranked", "test_acc", "created", "name"], ascending=[True, False, True, True]
    )
    table.insert(0, "rank", shared_rank(table["test_acc"].where(table["_complete"])))
    table["at_chance"] = table["test_acc"] <= table["test_chance"] + TOLERANCE
    if cross_sets:
        table["cross_acc"] = table[[f"{s}_acc" for s in cross_sets]].mean(axis=1)
        table["cross_bacc"] = table[[f"{s}_bacc" for s in cross_sets]].mean(axis=1)
        both = table["_complete"] & table["_cross_complete"]
        in_rank = shared_rank(table["test_acc"].where(both))
        cross_rank = shared_rank(table["cross_bacc"].where(both))
        # climbing to the top of a board of chance scores means nothing
        at_chance = table["cross_bacc"] <= table["cross_chance"] + TOLERANCE
        table["cross_at_chance"] = at_chance
        table["rank_shift"] = (in_rank - cross_rank).where(~at_chance).astype("Int64")
    table = table.drop(columns=["_complete", "_cross_complete", "_unranked"])
    return table.reset_index(drop=True)


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else value


def _first(rows: pd.DataFrame, column: str) -> float:
    return float(rows[column].iloc[0]) if column in rows and len(rows) else np.nan


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub Markdown table (no extra dependency)."""

    def cell(v: object) -> str:
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return "" if v is pd.NA else str(v)

    table = table.drop(columns=[c for c in NOT_PRINTED if c in table.columns])
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)
