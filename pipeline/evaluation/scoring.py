"""A set's answer key (``AnswerKey``), and predictions scored against it over the classes member
and set vocabulary share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.classes import align_probabilities, ordered
from pipeline.evaluation.metrics import evaluate


@dataclass(frozen=True)
class AnswerKey:
    """A set's ``labels`` (id -> label) and its ``vocabulary``: the classes its dataset declares
    and it is scored over, which may hold classes no image of the set has."""

    labels: Mapping[str, str]
    vocabulary: tuple[str, ...]

    def __post_init__(self) -> None:
        # checked once, here: scoring would silently leave such a label's images unscored
        outside = sorted(set(self.labels.values()) - set(self.vocabulary))
        if outside:
            raise ValueError(
                f"the answer key has labels {outside} outside the set's vocabulary "
                f"{list(self.vocabulary)}"
            )


def score(
    ids: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    answers: AnswerKey,
    auc: bool = True,
) -> dict:
    """Metrics of predictions for every id of ``answers``, over the classes the member
    (``classes``) and the set's declared vocabulary share.

    The vocabulary, not the labels that happen to occur, decides what a prediction may be: on a
    set of lymphocytes and neutrophils whose vocabulary has five classes, "monocyte" is wrong.
    Images of classes the member was never trained on are left out and counted as ``unscored``.
    """
    missing = set(answers.labels) - set(ids)
    unknown = set(ids) - set(answers.labels)
    if missing or unknown:
        raise ValueError(
            f"predictions and answer key disagree: {len(missing)} id(s) missing "
            f"(e.g. {min(missing, default='-')}), {len(unknown)} unknown "
            f"(e.g. {min(unknown, default='-')})"
        )
    aligned, y, shared, unscored = aligned_labels(ids, probs, classes, answers)
    return {**evaluate(y, aligned, shared, auc), "unscored": unscored}


def aligned_labels(
    ids: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    answers: AnswerKey,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], int]:
    """The rows of ids whose label the member knows, over the classes member and the set's
    vocabulary share: (probabilities, label indices, those classes, how many ids were left out).

    Ids missing from ``answers`` are left out too (``score`` refuses them first).
    """
    aligned, shared = align_probabilities(probs, classes, ordered(answers.vocabulary))
    index = {c: i for i, c in enumerate(shared)}
    labels = [answers.labels.get(i) for i in ids]
    scored = np.array([label in index for label in labels], dtype=bool)
    y = np.array([index[label] for label in labels if label in index], dtype=np.int64)
    return aligned[scored], y, shared, int((~scored).sum())


def missing_classes(classes: Sequence[str], vocabulary: Sequence[str]) -> tuple[str, ...]:
    """The classes of the set's vocabulary a submission has no probability column for."""
    return tuple(c for c in ordered(vocabulary) if c not in set(classes))


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
    answers: AnswerKey,
) -> list[Mistake]:
    """Wrong predictions over the classes member and set vocabulary share, in submission order.

    Only ids of the answer key count: they come from the dataset's own listing, so a caller that
    opens the images never opens a path a submission file made up.
    """
    key = answers.labels
    aligned, shared = align_probabilities(probs, classes, ordered(answers.vocabulary))
    out = []
    for i, p in zip(ids, aligned, strict=True):
        pred = shared[int(p.argmax())]
        if i in key and key[i] in shared and key[i] != pred:
            out.append(Mistake(i, key[i], pred, float(p.max())))
    return out
