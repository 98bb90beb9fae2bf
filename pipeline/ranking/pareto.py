"""The Pareto front of a cost/quality trade-off (parameters or GMACs against accuracy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_front(cost: Sequence[float], value: Sequence[float]) -> np.ndarray:
    """A boolean mask of the points no other point dominates.

    A point is dominated when another has a cost no higher and a value no lower, and is strictly
    better in one of the two. Points with a missing (NaN) cost or value are never on the front and
    dominate nothing. Equal points are all on the front.
    """
    c = np.asarray(cost, dtype=np.float64)
    v = np.asarray(value, dtype=np.float64)
    if c.shape != v.shape or c.ndim != 1:
        raise ValueError(f"cost and value must be 1-d and of one length, got {c.shape}, {v.shape}")
    known = np.isfinite(c) & np.isfinite(v)
    # dominates[i, j]: point i dominates point j; comparisons with NaN are False, as wanted
    no_worse = (c[:, None] <= c[None, :]) & (v[:, None] >= v[None, :])
    better = (c[:, None] < c[None, :]) | (v[:, None] > v[None, :])
    dominated = (no_worse & better).any(axis=0)
    return known & ~dominated
