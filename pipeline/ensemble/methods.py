"""Ensemble methods as pure functions on member probability tables.

``probs`` is always a list (one per member) of ``(n_images, n_classes)`` arrays on the same
images; ``y`` holds the validation labels as class indices. Nothing here sees a test set.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

from pipeline.scoring import accuracy

VOTE_TIE_BREAK = 1e-3  # far below one vote (>= 1/len(members)), so it only decides ties


def vote(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Hard majority vote; ties between classes go to the highest summed probability.

    Returned as probabilities (vote shares, nudged by the mean probability) so that a vote
    ensemble is a submission like any other and its argmax is the vote's decision.
    """
    stacked = np.stack(probs)
    votes = np.zeros(stacked.shape[1:])
    for member in stacked:
        votes[np.arange(len(member)), member.argmax(axis=1)] += 1
    shares = votes / len(stacked) + VOTE_TIE_BREAK * stacked.mean(axis=0)
    return shares / shares.sum(axis=1, keepdims=True)


def soft(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """(Weighted) mean of member probabilities."""
    w = np.ones(len(probs)) if weights is None else np.asarray(weights, dtype=float)
    mixed = np.tensordot(w / w.sum(), np.stack(probs), axes=1)
    return mixed / mixed.sum(axis=1, keepdims=True)


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_weights(probs: Sequence[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Non-negative weights (summing to 1) minimising the log-loss of the weighted mean."""
    stacked = np.stack(probs)
    picked = stacked[:, np.arange(len(y)), y]  # (members, images): probability of the truth

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        # -mean log(w.p / sum(w)): scale-free in w, so the bounds alone keep weights valid
        total = max(w.sum(), 1e-12)
        mix = np.clip(w @ picked, 1e-12, None)
        value = -np.log(mix).mean() + np.log(total)
        grad = -(picked / mix).mean(axis=1) + 1.0 / total
        return float(value), grad

    start = np.full(len(probs), 1.0 / len(probs))
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(probs))
    w = np.clip(result.x, 0, None)
    return w / w.sum() if w.sum() > 0 else start


def greedy(probs: Sequence[np.ndarray], y: np.ndarray, size: int) -> np.ndarray:
    """Caruana et al. 2004: forward selection with replacement by validation accuracy.

    Ties go to the lower log-loss, then to the earlier member. Returns how often each member
    was picked (the multiset); the ensemble is the soft vote weighted by these counts.
    """
    counts = np.zeros(len(probs), dtype=int)
    total = np.zeros_like(probs[0])
    for step in range(1, size + 1):
        scores = [
            (accuracy((total + p) / step, y), -log_loss((total + p) / step, y)) for p in probs
        ]
        best = max(range(len(probs)), key=lambda i: (scores[i], -i))
        counts[best] += 1
        total = total + probs[best]
    return counts


def top_k(
    names: Sequence[str],
    val_acc: Sequence[float],
    k: int,
    ensemble_acc: Callable[[list[int]], float],
    max_combinations: int = 5000,
) -> list[int]:
    """The K best members by validation accuracy (Gavas & Olpadkar).

    Where several members tie for the last places, the combination giving the highest
    validation accuracy of the ensemble wins (then the earliest by name).
    """
    order = sorted(range(len(names)), key=lambda i: (-val_acc[i], names[i]))
    if k >= len(order):
        return order
    cutoff = val_acc[order[k - 1]]
    sure = [i for i in order if val_acc[i] > cutoff]
    tied = [i for i in order if val_acc[i] == cutoff]
    need = k - len(sure)
    combos = itertools.islice(itertools.combinations(tied, need), max_combinations)
    best = max(combos, key=lambda c: (ensemble_acc(sure + list(c)), [-i for i in c]))
    return sure + list(best)


def fit_stack(probs: Sequence[np.ndarray], y: np.ndarray, seed: int = 0) -> LogisticRegressionCV:
    """Multinomial logistic regression on the members' probabilities; its regularisation is
    chosen by stratified cross-validation inside the validation set, then refitted on it all."""
    counts = np.bincount(y)
    folds = int(min(5, counts[counts > 0].min())) if len(y) else 0
    if folds < 2:
        raise ValueError("stacking needs at least 2 validation images of every class")
    model = LogisticRegressionCV(
        Cs=np.logspace(-3, 3, 7),
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring="neg_log_loss",
        l1_ratios=(0.0,),
        max_iter=2000,
        use_legacy_attributes=False,
        n_jobs=-1,  # the folds in parallel
    )
    return model.fit(stack_features(probs), y)


def stack_features(probs: Sequence[np.ndarray]) -> np.ndarray:
    return np.log(np.clip(np.concatenate(probs, axis=1), 1e-7, None))


def stack_predict(model: LogisticRegressionCV, probs: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Probabilities over all ``n`` classes (a class absent from validation gets 0)."""
    out = np.zeros((len(probs[0]), n))
    out[:, model.classes_] = model.predict_proba(stack_features(probs))
    return out
