"""Ensemble methods: pure functions on member probability tables, and the estimators (one
class per method, in ``ENSEMBLE_METHODS``) that ``pipeline.ensemble`` fits and saves and
``predict --ensemble`` and ``pipeline.export`` load.

``probs`` is always a list (one per member) of ``(n_images, n_classes)`` arrays on the same
images; ``y`` holds the validation labels as class indices. Nothing here sees a test set.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar, Self

import joblib
import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

from pipeline.evaluation.metrics import accuracy
from pipeline.runs.metadata import EnsembleMeta

ESTIMATOR_FILE = "ensemble.joblib"  # in OUT/zoo/ensembles/<dataset>/<name>/
OOF_FOLDS = 5  # cross-fitting folds for a fitted method's out-of-fold validation score
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


def fold_count(y: np.ndarray, most: int) -> int:
    """Stratified folds ``y`` allows: at most ``most``, and no more than its rarest class has
    images (0 for no labels)."""
    if not len(y):
        return 0
    counts = np.bincount(y)
    return int(min(most, counts[counts > 0].min()))


def fit_stack(
    probs: Sequence[np.ndarray], y: np.ndarray, seed: int = 0, max_iter: int = 2000
) -> LogisticRegressionCV:
    """Multinomial logistic regression on the members' probabilities; its regularisation is
    chosen by stratified cross-validation inside the validation set, then refitted on it all.

    Warns once (``ConvergenceWarning``) when the solver stopped at ``max_iter`` at the chosen
    regularisation."""
    folds = fold_count(y, 5)
    if folds < 2:
        raise ValueError("stacking needs at least 2 validation images of every class")
    model = LogisticRegressionCV(
        Cs=np.logspace(-3, 3, 7),
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring="neg_log_loss",
        l1_ratios=(0.0,),
        max_iter=max_iter,
        use_legacy_attributes=False,
        n_jobs=-1,  # the folds in parallel
    )
    # The path visits weak regularisation where lbfgs often stops at max_iter; held-out log-loss
    # judges those points as they are, so sklearn's warning per fold is noise. Only the chosen C
    # matters (the refit starts from its folds' mean, so converges when they did). sklearn's
    # Parallel hands this filter to its workers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(stack_features(probs), y)
    chosen = int(np.flatnonzero(model.Cs_ == model.C_)[0])
    stopped = int((model.n_iter_[..., chosen] >= max_iter).sum())
    if stopped:
        warnings.warn(
            f"stacking: the logistic regression at the chosen C={model.C_:g} stopped at "
            f"max_iter={max_iter} in {stopped} of {folds} folds; its weights may be slightly off",
            ConvergenceWarning,
            stacklevel=2,
        )
    return model


def stack_features(probs: Sequence[np.ndarray]) -> np.ndarray:
    return np.log(np.clip(np.concatenate(probs, axis=1), 1e-7, None))


def stack_predict(model: LogisticRegressionCV, probs: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Probabilities over all ``n`` classes (a class absent from validation gets 0)."""
    out = np.zeros((len(probs[0]), n))
    out[:, model.classes_] = model.predict_proba(stack_features(probs))
    return out


class EnsembleMethod(BaseEstimator):
    """An ensemble method in scikit-learn's shape: ``fit(val_probs, y)`` learns from the
    members' validation probabilities alone, ``predict_proba(probs)`` combines any set's.

    ``weights_`` (one per member, summing to 1) is set by every method; ``members_`` holds the
    positions of the members the fitted ensemble uses (greedy drops those never picked), and
    ``predict_proba`` takes exactly those members' probabilities, in that order. The fitted
    object is saved whole (joblib) and is what ``predict --ensemble`` and the ONNX export use.
    """

    method: ClassVar[str]
    learns_from_labels: ClassVar[bool] = True  # fitted on validation labels: scored out-of-fold

    def fit(self, probs: Sequence[np.ndarray], y: np.ndarray) -> Self:
        self.n_classes_ = int(probs[0].shape[1])
        self.members_ = list(range(len(probs)))
        self.weights_ = np.full(len(probs), 1.0 / len(probs))
        return self

    def predict_proba(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        return soft(probs, self.weights_)


class VoteEnsemble(EnsembleMethod):
    method = "vote"
    learns_from_labels = False

    def predict_proba(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        return vote(probs)


class SoftEnsemble(EnsembleMethod):
    method = "soft"
    learns_from_labels = False


class WeightedEnsemble(EnsembleMethod):
    method = "weighted"

    def fit(self, probs: Sequence[np.ndarray], y: np.ndarray) -> Self:
        super().fit(probs, y)
        self.weights_ = fit_weights(probs, y)
        return self


class GreedyEnsemble(EnsembleMethod):
    method = "greedy"

    def __init__(self, size: int = 10) -> None:
        self.size = size

    def fit(self, probs: Sequence[np.ndarray], y: np.ndarray) -> Self:
        super().fit(probs, y)
        counts = greedy(probs, y, self.size)
        self.members_ = [i for i, n in enumerate(counts) if n > 0]
        self.counts_ = counts[self.members_]
        self.weights_ = self.counts_ / self.counts_.sum()
        return self


class StackEnsemble(EnsembleMethod):
    method = "stack"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, probs: Sequence[np.ndarray], y: np.ndarray) -> Self:
        super().fit(probs, y)
        self.model_ = fit_stack(probs, y, self.seed)
        return self

    def predict_proba(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        return stack_predict(self.model_, probs, self.n_classes_)


ENSEMBLE_METHODS: dict[str, type[EnsembleMethod]] = {
    m.method: m
    for m in (VoteEnsemble, SoftEnsemble, WeightedEnsemble, GreedyEnsemble, StackEnsemble)
}
METHODS = tuple(ENSEMBLE_METHODS)


def out_of_fold(
    estimator: EnsembleMethod,
    probs: Sequence[np.ndarray],
    y: np.ndarray,
    folds: int = OOF_FOLDS,
    seed: int = 0,
) -> tuple[np.ndarray, int] | None:
    """Validation probabilities of ``estimator``'s method, each image predicted by a copy
    fitted on the other folds (stratified, seeded), and the number of folds used.

    A fitted method's score on the validation set it was fitted on is in-sample; this one is
    not, so fitted and unfitted ensembles can be compared on validation. None where the rarest
    class has too few images to hold any out and still fit the method on the rest."""
    k = fold_count(y, folds)
    if k < 2:
        return None
    out = np.zeros_like(probs[0], dtype=float)
    for train, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(y, y):
        try:
            fold = clone(estimator).fit([p[train] for p in probs], y[train])
        except ValueError:  # stacking's own folds need 2 images of every class in the rest
            return None
        out[held] = fold.predict_proba([probs[i][held] for i in fold.members_])
    return out, k


def make_method(method: str, greedy_size: int = 10, seed: int = 0) -> EnsembleMethod:
    """An unfitted ensemble of ``method`` with the options that method takes."""
    if method not in ENSEMBLE_METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)} or all")
    if method == "greedy":
        return GreedyEnsemble(greedy_size)
    if method == "stack":
        return StackEnsemble(seed)
    return ENSEMBLE_METHODS[method]()


def restored(meta: EnsembleMeta, stack_file: Path) -> EnsembleMethod:
    """The fitted method of an ensemble saved before ensembles were saved whole: its method,
    members' weights and (stacking) the bundle in ``stack_file``."""
    est = ENSEMBLE_METHODS[meta.method]()
    est.n_classes_ = len(meta.classes)
    est.members_ = list(range(len(meta.members)))
    weights = np.asarray(meta.member_weights or np.ones(len(meta.members)), dtype=float)
    est.weights_ = weights / weights.sum()
    if isinstance(est, StackEnsemble):
        est.model_ = joblib.load(stack_file)["model"]
    return est
