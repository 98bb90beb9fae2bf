"""Class imbalance: loss weights, the weighted loss and a class-balanced sampler."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
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


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy as a weighted mean over hard labels and probability rows (MixUp, CutMix)
    alike: the summed per-image losses over the summed weights of the images' targets.

    ``nn.CrossEntropyLoss`` divides by the summed weights for class indices but by the batch size
    for probabilities, so a mixed batch would weigh each image's loss otherwise than a plain one.
    Label smoothing spreads the target (never its weight), as PyTorch does for class indices.
    """

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.weight is None or not target.is_floating_point():
            return F.cross_entropy(
                logits, target, weight=self.weight, label_smoothing=self.label_smoothing
            )
        smoothed = target * (1 - self.label_smoothing) + self.label_smoothing / target.shape[1]
        losses = -(smoothed * self.weight * F.log_softmax(logits, dim=1)).sum(dim=1)
        return losses.sum() / (target * self.weight).sum()


def balanced_sampler(labels: np.ndarray, seed: int) -> WeightedRandomSampler:
    """Draws (with replacement) as many images per epoch as there are, each class equally often."""
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), len(labels), True, generator
    )
