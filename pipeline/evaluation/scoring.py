"""Scoring predictions against an answer key, over the classes member and set vocabulary share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.classes import align_probabilities, ordered
from pipeline.evaluation.metrics import evaluate


def score(
    ids: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    key: dict[str, str],
    vocabulary: Sequence[str],
    auc: bool = True,
) -> dict:
    """Metrics of predictions for every id of ``key`` (id -> label), over the classes the member
    (``classes``) and the set's declared ``vocabulary`` share.

    The vocabulary, not the labels that happen to occur, decides what a prediction may be: on a
    set of lymphocytes and neutrophils whose vocabulary has five classes, "monocyte" is wrong.
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
    aligned, y, shared, unscored = aligned_labels(
        ids, probs, classes, key, _vocabulary(vocabulary, key)
    )
    return {**evaluate(y, aligned, shared, auc), "unscored": unscored}


def aligned_labels(
    ids: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    key: dict[str, str],
    vocabulary: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], int]:
    """The rows of ids whose label the member knows, over the classes member and the set's
    vocabulary share: (probabilities, label indices, those classes, how many ids were left out).

    Ids missing from ``key`` are left out too (``score`` refuses them first).
    """
    aligned, shared = align_probabilities(probs, classes, ordered(vocabulary))
    index = {c: i for i, c in enumerate(shared)}
    labels = [key.get(i) for i in ids]
    scored = np.array([label in index for label in labels], dtype=bool)
    y = np.array([index[label] for label in labels if label in index], dtype=np.int64)
    return aligned[scored], y, shared, int((~scored).sum())


def missing_classes(classes: Sequence[str], vocabulary: Sequence[str]) -> tuple[str, ...]:
    """The classes of the set's vocabulary a submission has no probability column for."""
    return tuple(c for c in ordered(vocabulary) if c not in set(classes))


def _vocabulary(vocabulary: Sequence[str], key: dict[str, str]) -> tuple[str, ...]:
    """The declared vocabulary, checked to hold every label of the answer key."""
    outside = sorted(set(key.values()) - set(vocabulary))
    if outside:
        raise ValueError(
            f"the answer key has labels {outside} outside the set's vocabulary {list(vocabulary)}"
        )
    return ordered(vocabulary)


@dataclass(frozen=True)
class Mistake:
    id: str
    true: str
    pred: str
    confidence: float  # the predicted class's probability over the shared classes


def mistakes(
    ids: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    key: dict[str, str],
    vocabulary: Sequence[str],
) -> list[Mistake]:
    """Wrong predictions over the classes member and set vocabulary share, in submission order.

    Only ids of the answer key count: they come from the dataset's own listing, so a caller that
    opens the images never opens a path a submission file made up.
    """
    aligned, shared = align_probabilities(probs, classes, _vocabulary(vocabulary, key))
    out = []
    for i, p in zip(ids, aligned, strict=True):
        pred = shared[int(p.argmax())]
        if i in key and key[i] in shared and key[i] != pred:
            out.append(Mistake(i, key[i], pred, float(p.max())))
    return out
