"""Class imbalance: loss weights and a class-balanced sampler."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler


def class_weights(labels: np.ndarray, n_classes: int, mode: str, beta: float = 0.999) -> np.ndarray:
    """Per-class loss weights, scaled to average 1 over the classes present.

    ``inverse``: 1 / frequency. ``effective``: 1 / effective number of samples,
    (1 - beta) / (1 - beta ** n) (Cui et al. 2019), which tempers the inverse for large classes.
    """
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    if mode == "inverse":
        weights[present] = 1.0 / counts[present]
    elif mode == "effective":
        weights[present] = (1 - beta) / (1 - beta ** counts[present])
    else:
        raise ValueError(f"class weights must be inverse or effective, not {mode!r}")
    return weights * present.sum() / weights.sum()


def balanced_sampler(labels: np.ndarray, seed: int) -> WeightedRandomSampler:
    """Draws (with replacement) as many images per epoch as there are, each class equally often."""
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), len(labels), True, generator
    )
