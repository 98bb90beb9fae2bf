"""Differences paired by seed: what a configuration adds over a baseline, with a Student t
interval over the seeds both were run with (seed-to-seed spread cancels out of each pair)."""

from __future__ import annotations

import pandas as pd

from pipeline.evaluation.stats import mean_ci
from pipeline.ranking.table import IN_DOMAIN, ranked_test_sets

METRICS = {"accuracy": "acc", "balanced_accuracy": "bacc"}


def paired_differences(
    long: pd.DataFrame, dataset: str, against: str, test_set: str | None = None
) -> pd.DataFrame:
    """One row per seeded configuration of ``dataset`` but ``against`` (a board name, seeds
    pooled, e.g. ``resnet18-robust+adabn+tta``): per set and metric, the mean of (row − against)
    over the seeds both have, its 95% half-width (``_ci95``) and the number of pairs.

    ``long`` is ``table.long_table``'s; only entries scored on one test set are compared
    (``test_set``, default the most used one, as the board ranks)."""
    data = long[(long["dataset"] == dataset) & long["seed"].notna()]
    fingerprints = ranked_test_sets(long, dataset)
    if fingerprints:
        data = data[data["test_set"] == (test_set or fingerprints[0])]
    names = list(dict.fromkeys(data["name"]))
    if against not in names:
        raise ValueError(
            f"--against {against!r}: no entry of that name with a seed on the {dataset} board "
            f"(names: {', '.join(names) or 'none'})"
        )
    sets = ["test", *sorted(s for s in data["set"].unique() if s not in IN_DOMAIN)]
    base = data[data["name"] == against].set_index(["set", "seed"])
    rows = []
    for name in names:
        if name == against:
            continue
        group = data[data["name"] == name].set_index(["set", "seed"])
        row: dict = {"name": name, "pairs": 0}
        for s in sets:
            for metric, short in METRICS.items():
                diff = (_of_set(group, s, metric) - _of_set(base, s, metric)).dropna()
                mean, half, n = mean_ci(diff)
                row[f"{s}_{short}_diff"], row[f"{s}_{short}_ci95"] = mean, half
                if s == "test" and short == "acc":
                    row["pairs"] = n
        if row["pairs"]:
            rows.append(row)
    return pd.DataFrame(rows)


def _of_set(table: pd.DataFrame, set_name: str, metric: str) -> pd.Series:
    """``metric`` per seed on ``set_name`` (empty when the entry has no such set)."""
    if set_name not in table.index.get_level_values("set"):
        return pd.Series(dtype=float)
    return table.xs(set_name, level="set")[metric].astype(float)
