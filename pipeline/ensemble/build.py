"""Building one ensemble of a method from candidates, on validation labels alone."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegressionCV

from pipeline.ensemble import methods
from pipeline.ensemble.members import Candidate
from pipeline.scoring import accuracy

METHODS = ("vote", "soft", "weighted", "greedy", "stack")


@dataclass
class Ensemble:
    name: str
    method: str
    members: list[Candidate]
    weights: np.ndarray  # one per member, summing to 1 (vote, stack: uniform)
    n_classes: int
    counts: list[int] = field(default_factory=list)  # greedy: the chosen multiset
    stack: LogisticRegressionCV | None = None

    def predict(self, set_name: str) -> np.ndarray:
        probs = [m.probs(set_name) for m in self.members]
        if self.method == "vote":
            return methods.vote(probs)
        if self.method == "stack":
            return methods.stack_predict(self.stack, probs, self.n_classes)
        return methods.soft(probs, self.weights)

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
    """Fit one ensemble on the validation labels ``y``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)} or all")
    pool = choose(method, candidates, y, top)
    n_classes = pool[0].probs("val").shape[1]
    val = [c.probs("val") for c in pool]
    uniform = np.full(len(pool), 1.0 / len(pool))
    if method in ("vote", "soft"):
        return Ensemble(name, method, pool, uniform, n_classes)
    if method == "weighted":
        return Ensemble(name, method, pool, methods.fit_weights(val, y), n_classes)
    if method == "greedy":
        counts = methods.greedy(val, y, greedy_size)
        keep = [i for i, n in enumerate(counts) if n > 0]
        return Ensemble(
            name,
            method,
            [pool[i] for i in keep],
            counts[keep] / counts.sum(),
            n_classes,
            counts=[int(counts[i]) for i in keep],
        )
    model = methods.fit_stack(val, y, seed)
    return Ensemble(name, method, pool, uniform, n_classes, stack=model)
