"""Scoring predictions against an answer key, over the classes member and set share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    aligned, y, shared, unscored = aligned_labels(ids, probs, classes, key)
    return {**evaluate(y, aligned, shared, auc), "unscored": unscored}


def aligned_labels(
    ids: Sequence[str], probs: np.ndarray, classes: Sequence[str], key: dict[str, str]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], int]:
    """The rows of ids whose label the member knows, over the classes member and key share:
    (probabilities, label indices, those classes, how many ids were left out).

    Ids missing from ``key`` are left out too (``score`` refuses them first).
    """
    aligned, shared = align_probabilities(probs, classes, ordered(set(key.values())))
    index = {c: i for i, c in enumerate(shared)}
    labels = [key.get(i) for i in ids]
    scored = np.array([label in index for label in labels], dtype=bool)
    y = np.array([index[label] for label in labels if label in index], dtype=np.int64)
    return aligned[scored], y, shared, int((~scored).sum())


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(probs).argmax(axis=1) == y).mean())


@dataclass(frozen=True)
class Mistake:
    id: str
    true: str
    pred: str
    confidence: float  # the predicted class's probability over the shared classes


def mistakes(
    ids: Sequence[str], probs: np.ndarray, classes: Sequence[str], key: dict[str, str]
) -> list[Mistake]:
    """Wrong predictions over the classes member and set share, in submission order.

    Only ids of the answer key count: they come from the dataset's own listing, so a caller that
    opens the images never opens a path a submission file made up.
    """
    aligned, shared = align_probabilities(probs, classes, ordered(set(key.values())))
    out = []
    for i, p in zip(ids, aligned, strict=True):
        pred = shared[int(p.argmax())]
        if i in key and key[i] in shared and key[i] != pred:
            out.append(Mistake(i, key[i], pred, float(p.max())))
    return out
