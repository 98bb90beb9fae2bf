"""Classification metrics for one member on one evaluation set (the zoo's and the leaderboard's)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    flat = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(probs).argmax(axis=1) == y).mean())


def evaluate(
    y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], auc: bool = True
) -> dict:
    """Accuracy, balanced accuracy, macro-F1, macro AUC, per-class scores and the confusion matrix.

    ``y_true`` holds indices into ``classes``; ``probs`` has one column per class. Averages run
    over the classes present in ``y_true``. ``auc=False`` skips the (slowest) AUC.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    cm = confusion(y_true, probs.argmax(axis=1), len(classes))
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    negatives = cm.sum() - support
    fp = predicted - tp
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=present)
    per_class = {
        c: {
            "support": int(support[i]),
            "precision": _ratio(tp[i], predicted[i]),
            "sensitivity": _ratio(tp[i], support[i]),
            "specificity": _ratio(negatives[i] - fp[i], negatives[i]),
        }
        for i, c in enumerate(classes)
    }
    n = int(len(y_true))
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else float("nan"),
        "balanced_accuracy": float(recall[present].mean()) if n else float("nan"),
        "macro_f1": float(f1[present].mean()) if n else float("nan"),
        "macro_auc": _macro_auc(y_true, probs, np.flatnonzero(present)) if auc else None,
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
    return float(np.mean([roc_auc_score(y_true == c, probs[:, c]) for c in present]))
