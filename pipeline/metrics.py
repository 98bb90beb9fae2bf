"""Classification metrics for one member on one evaluation set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)


def evaluate(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, macro-F1, macro AUC, per-class scores and the confusion matrix.

    ``y_true`` holds indices into ``classes``; ``probs`` has one column per class.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(probs).argmax(axis=1)
    labels = np.arange(len(classes))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    negatives = cm.sum() - support
    fp = predicted - tp
    per_class = {
        c: {
            "support": int(support[i]),
            "precision": _ratio(tp[i], predicted[i]),
            "sensitivity": _ratio(tp[i], support[i]),
            "specificity": _ratio(negatives[i] - fp[i], negatives[i]),
        }
        for i, c in enumerate(classes)
    }
    present = labels[support > 0]
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "macro_auc": _macro_auc(y_true, np.asarray(probs), present),
        "classes": list(classes),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _macro_auc(y_true: np.ndarray, probs: np.ndarray, present: np.ndarray) -> float | None:
    """One-vs-rest AUC averaged over the classes present (None with fewer than two)."""
    if len(present) < 2:
        return None
    aucs = [roc_auc_score(y_true == c, probs[:, c]) for c in present]
    return float(np.mean(aucs))
