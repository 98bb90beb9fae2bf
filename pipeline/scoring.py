"""Scoring predictions against an answer key, over the classes member and set share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.classes import align_probabilities, ordered
from pipeline.metrics import evaluate


def score(
    ids: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    key: dict[str, str],
    auc: bool = True,
) -> dict:
    """Metrics of predictions for every id of ``key`` (id -> label).

    Images of classes the member was never trained on are left out and counted as ``unscored``.
    """
    missing = set(key) - set(ids)
    unknown = set(ids) - set(key)
    if missing or unknown:
        raise ValueError(
            f"predictions and answer key disagree: {len(missing)} id(s) missing "
            f"(e.g. {min(missing, default='-')}), {len(unknown)} unknown "
            f"(e.g. {min(unknown, default='-')})"
        )
    labels = [key[i] for i in ids]
    aligned, shared = align_probabilities(probs, classes, ordered(set(key.values())))
    index = {c: i for i, c in enumerate(shared)}
    scored = np.array([label in index for label in labels], dtype=bool)
    y = np.array([index[label] for label in labels if label in index], dtype=np.int64)
    return {**evaluate(y, aligned[scored], shared, auc), "unscored": int((~scored).sum())}


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(probs).argmax(axis=1) == y).mean())
