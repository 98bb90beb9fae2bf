"""How good learnt features are without training a classifier: k-nearest neighbours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from pipeline.evaluation.metrics import evaluate

K = 20


def knn_scores(
    train: np.ndarray,
    train_labels: Sequence[str],
    test: np.ndarray,
    test_labels: Sequence[str],
    k: int = K,
) -> dict:
    """Accuracy and balanced accuracy of a cosine k-NN vote over the classes both sides share
    (a PBC backbone is probed on a 5-class lab with PBC's images of those 5 classes)."""
    shared = sorted(set(train_labels) & set(test_labels))
    if not shared:
        raise ValueError("the probe's training and test images share no class")
    keep_train = np.isin(train_labels, shared)
    keep_test = np.isin(test_labels, shared)
    knn = KNeighborsClassifier(min(k, int(keep_train.sum())), metric="cosine", weights="distance")
    knn.fit(train[keep_train], np.asarray(train_labels)[keep_train])
    index = {c: i for i, c in enumerate(shared)}
    y = np.array([index[c] for c in np.asarray(test_labels)[keep_test]])
    pred = np.array([index[c] for c in knn.predict(test[keep_test])])
    probs = np.eye(len(shared))[pred]
    m = evaluate(y, probs, shared, auc=False)
    return {"n": m["n"], "accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"]}
