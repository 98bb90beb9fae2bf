"""Uncertainty: paired bootstrap intervals, so nobody reads noise as progress."""

from __future__ import annotations

import numpy as np


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
