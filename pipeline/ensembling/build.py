"""Building one ensemble of a method from candidates, on validation labels alone."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.ensembling import methods
from pipeline.ensembling.candidates import Candidate
from pipeline.ensembling.methods import METHODS, EnsembleMethod, make_method, out_of_fold
from pipeline.evaluation.metrics import accuracy

__all__ = ["METHODS", "Ensemble", "build", "choose", "val_accuracy"]


@dataclass
class Ensemble:
    """A fitted ensemble method and the candidates it combines; for a fitted method, its
    out-of-fold validation probabilities (``oof``, over ``oof_folds`` folds)."""

    name: str
    members: list[Candidate]
    estimator: EnsembleMethod
    oof: np.ndarray | None = field(default=None, repr=False)
    oof_folds: int | None = None

    @property
    def method(self) -> str:
        return self.estimator.method

    def predict(self, set_name: str) -> np.ndarray:
        return self.estimator.predict_proba([m.probs(set_name) for m in self.members])

    def sets(self) -> list[str]:
        """The sets every member predicted, so the ensemble can predict them too."""
        return sorted(set.intersection(*(set(m.sets) for m in self.members)))


def val_accuracy(candidate: Candidate, y: np.ndarray) -> float:
    return accuracy(candidate.probs("val"), y)


def choose(
    method: str, candidates: list[Candidate], y: np.ndarray, top: int | None
) -> list[Candidate]:
    """The top K by validation accuracy; ties for the last places go to the combination with
    the best validation accuracy of this method's ensemble (soft vote for fitted methods)."""
    if top is None or top >= len(candidates):
        return list(candidates)
    combine = methods.vote if method == "vote" else methods.soft

    def ensemble_acc(idx: list[int]) -> float:
        return accuracy(combine([candidates[i].probs("val") for i in idx]), y)

    accs = [val_accuracy(c, y) for c in candidates]
    chosen = methods.top_k([c.name for c in candidates], accs, top, ensemble_acc)
    return [candidates[i] for i in chosen]


def build(
    method: str,
    candidates: list[Candidate],
    y: np.ndarray,
    name: str,
    top: int | None,
    greedy_size: int = 10,
    seed: int = 0,
) -> Ensemble:
    """Fit one ensemble on the validation labels ``y``; a fitted method is also cross-fitted
    over the same pool for its out-of-fold validation score (the pool's top K stays chosen on
    all of validation, as for every method)."""
    estimator = make_method(method, greedy_size, seed)
    pool = choose(method, candidates, y, top)
    val = [c.probs("val") for c in pool]
    oof = out_of_fold(estimator, val, y, seed=seed) if estimator.learns_from_labels else None
    estimator.fit(val, y)
    members = [pool[i] for i in estimator.members_]
    if oof is None:
        return Ensemble(name, members, estimator)
    return Ensemble(name, members, estimator, oof[0], oof[1])
