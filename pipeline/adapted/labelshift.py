"""Label-shift correction of calibrated probabilities, without target labels.

Another lab's cells come in other proportions (BCCD and Tecom: 59% neutrophils; PBC: 19.5%).
If only the class priors move and p(x | y) stays, the target posterior is the source one
reweighted by w_y = pi_t(y) / pi_s(y). Two estimates of the target priors pi_t:

- EM (Saerens et al. 2002): alternate the reweighting and the mean of the reweighted
  posteriors until the priors stop moving. It needs calibrated probabilities (Alexandari et
  al. 2020: EM on temperature-scaled outputs is a strong default).
- BBSE (Lipton et al. 2018): solve C w = mu, C the joint soft confusion of the source
  validation set (C[i, j] = mean of p_i(x) [y = j]) and mu the mean prediction on the target;
  non-negative least squares with a small ridge toward w = 1 keeps the weights positive and
  the solve stable when C is badly conditioned.

Pure numpy; every function works on whatever classes it is given (restrict to a set's
vocabulary first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

EM_ITERATIONS = 100
EM_TOLERANCE = 1e-6  # largest change of any prior between two iterations
BBSE_RIDGE = 0.01  # relative to the mean diagonal of C^T C: shrinks toward no shift
WEIGHT_FLOOR = 1e-3  # smallest weight (and prior, relative): a class is never ruled out


@dataclass(frozen=True)
class PriorShift:
    """Target probabilities after correction, the target priors they imply, how many
    iterations it took (1 for BBSE) and whether EM converged within its cap."""

    probs: np.ndarray
    priors: np.ndarray
    iterations: int
    converged: bool = True


def class_priors(y: np.ndarray, n_classes: int) -> np.ndarray:
    """The share of each class among labels ``y``, floored so that no prior is zero."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float64)
    if counts.sum() == 0:
        return np.full(n_classes, 1.0 / n_classes)
    return normalise(np.maximum(counts / counts.sum(), WEIGHT_FLOOR / n_classes))


def normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    total = x.sum(axis=axis, keepdims=True)
    uniform = np.full_like(x, 1.0 / x.shape[axis])
    return np.divide(x, total, out=uniform, where=total > 0)


def reweight(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """p(y | x) * w_y, renormalised per row."""
    return normalise(np.asarray(probs, dtype=np.float64) * weights)


def em_priors(
    probs: np.ndarray,
    source_priors: np.ndarray,
    iterations: int = EM_ITERATIONS,
    tolerance: float = EM_TOLERANCE,
) -> PriorShift:
    """Saerens et al.'s EM: the target priors and posteriors of calibrated ``probs`` whose
    model was calibrated under ``source_priors``."""
    probs = np.asarray(probs, dtype=np.float64)
    source = normalise(np.asarray(source_priors, dtype=np.float64))
    if len(probs) == 0:
        return PriorShift(probs, source, 0)
    target = source
    for step in range(1, iterations + 1):
        adjusted = reweight(probs, target / source)
        updated = adjusted.mean(axis=0)
        moved = np.abs(updated - target).max()
        target = updated
        if moved < tolerance:
            return PriorShift(reweight(probs, target / source), target, step)
    return PriorShift(reweight(probs, target / source), target, iterations, converged=False)


def soft_confusion(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """C[i, j]: the mean over labelled source images of p_i(x) when the label is j."""
    probs = np.asarray(probs, dtype=np.float64)
    onehot = np.eye(probs.shape[1])[np.asarray(y, dtype=np.int64)]
    return probs.T @ onehot / max(len(y), 1)


def bbse_weights(
    confusion: np.ndarray,
    target_mean: np.ndarray,
    ridge: float = BBSE_RIDGE,
    floor: float = WEIGHT_FLOOR,
) -> np.ndarray:
    """w >= ``floor`` minimising |C w - mu|^2 + lambda |w - 1|^2, lambda = ``ridge`` times the
    mean diagonal of C^T C."""
    c = np.asarray(confusion, dtype=np.float64)
    k = c.shape[1]
    strength = ridge * float(np.mean(np.diag(c.T @ c)))
    a = np.vstack([c, np.sqrt(strength) * np.eye(k)])
    b = np.concatenate([np.asarray(target_mean, dtype=np.float64), np.sqrt(strength) * np.ones(k)])
    weights, _ = nnls(a, b)
    return np.maximum(weights, floor)


def bbse(
    probs: np.ndarray, source_priors: np.ndarray, confusion: np.ndarray, ridge: float = BBSE_RIDGE
) -> PriorShift:
    """Black-box shift estimation: the weights from the source ``confusion`` and the mean
    target prediction, applied to calibrated ``probs``."""
    probs = np.asarray(probs, dtype=np.float64)
    source = normalise(np.asarray(source_priors, dtype=np.float64))
    if len(probs) == 0:
        return PriorShift(probs, source, 0)
    weights = bbse_weights(confusion, probs.mean(axis=0), ridge)
    return PriorShift(reweight(probs, weights), normalise(weights * source), 1)
