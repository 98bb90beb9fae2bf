"""Uncertainty: paired bootstrap intervals and Student t intervals over seeds, so nobody reads
noise as progress."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def paired_bootstrap(
    correct_a: np.ndarray, correct_b: np.ndarray, n: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Accuracy of A minus accuracy of B on the same images, with a percentile 95% interval."""
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired bootstrap needs two equal-length, non-empty vectors")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    diffs = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def bootstrap_ci(correct: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Accuracy with a percentile 95% interval over resampled images (one model, one seed: the
    interval of the test set's size, not of training's randomness)."""
    return paired_bootstrap(correct, np.zeros(len(correct)), n, seed)


def mean_ci(values: pd.Series) -> tuple[float, float, int]:
    """Mean, half-width of the Student t 95% interval (NaN for one value), and n."""
    v = values.dropna().to_numpy(dtype=float)
    n = len(v)
    if n == 0:
        return np.nan, np.nan, 0
    if n == 1:
        return float(v[0]), np.nan, 1
    half = stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / np.sqrt(n)
    return float(v.mean()), float(half), n


def seed_summary(
    table: pd.DataFrame, by: Sequence[str] = ("arch", "recipe"), skip: Sequence[str] = ("seed",)
) -> pd.DataFrame:
    """One row per ``by`` group: every numeric column as mean, 95% half-width and n over seeds
    (``<col>_mean``, ``<col>_ci95``), and the seeds seen."""
    numeric = [c for c in table.select_dtypes("number").columns if c not in (*by, *skip)]
    rows = []
    for keys, group in table.groupby(list(by), sort=False):
        row = dict(zip(by, keys, strict=True))
        row["n"] = len(group)
        row["seeds"] = ",".join(str(s) for s in sorted(group["seed"]))
        for col in numeric:
            row[f"{col}_mean"], row[f"{col}_ci95"], _ = mean_ci(group[col])
        rows.append(row)
    return pd.DataFrame(rows)
