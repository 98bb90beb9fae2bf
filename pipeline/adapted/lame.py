"""LAME (Boudiaf et al. 2022, "Parameter-free online test-time adaptation"): Laplacian
adjusted maximum-likelihood estimation of a set's class assignments.

The model is left untouched; only its outputs move. Each image's assignment z_i maximises its
log-likelihood under the model's probabilities plus its agreement with its k nearest
neighbours in the member's penultimate features:

    z_i  <-  softmax(log p_i + sum_j W_ij z_j),   W: k-nearest-neighbour affinity (cosine)

iterated a fixed number of times (a bound-optimisation step each). It needs no BatchNorm, so
it serves members without one (SqueezeNet, VGG, GroupNorm ResNets) as well.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

K = 5  # neighbours, LAME's default
ITERATIONS = 100
TOLERANCE = 1e-8  # largest change of any assignment between two iterations
CHUNK = 1024  # rows of the similarity matrix at a time
LOG_FLOOR = 1e-12


def knn_affinity(features: np.ndarray, k: int = K) -> sparse.csr_matrix:
    """W[i, j] = 1 when j is one of the ``k`` images most cosine-similar to i (not i itself)."""
    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return sparse.csr_matrix((n, n))
    cols = []
    for start in range(0, n, CHUNK):
        sim = x[start : start + CHUNK] @ x.T
        sim[np.arange(len(sim)), np.arange(start, start + len(sim))] = -np.inf
        cols.append(np.argpartition(-sim, k - 1, axis=1)[:, :k])
    indices = np.concatenate(cols).ravel()
    indptr = np.arange(0, n * k + 1, k)
    return sparse.csr_matrix((np.ones(n * k), indices, indptr), shape=(n, n))


def lame(
    probs: np.ndarray,
    features: np.ndarray,
    k: int = K,
    iterations: int = ITERATIONS,
    tolerance: float = TOLERANCE,
) -> np.ndarray:
    """The LAME assignments of ``probs`` given the images' ``features`` (rows aligned)."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) < 2:
        return probs.copy()
    unary = np.log(np.maximum(probs, LOG_FLOOR))
    affinity = knn_affinity(features, k)
    z = probs
    for _ in range(iterations):
        logits = unary + affinity @ z
        logits -= logits.max(axis=1, keepdims=True)
        updated = np.exp(logits)
        updated /= updated.sum(axis=1, keepdims=True)
        moved = np.abs(updated - z).max()
        z = updated
        if moved < tolerance:
            break
    return z
