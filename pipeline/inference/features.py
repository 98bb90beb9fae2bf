"""A member's inputs in batches, and its penultimate features: what the audit, explanations,
test-time adaptation and pretraining's probe run on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from pipeline.models import Architecture
from pipeline.models.engine import Runtime
from pipeline.models.factory import get_module


def batches(
    images: np.ndarray,
    rows: np.ndarray,
    runtime: Runtime,
    size: int,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[torch.Tensor]:
    """Normalised input batches of ``images[rows]`` (uint8 NHWC) on the model's device;
    ``prepare`` maps each chunk of pixels first (a member's stain normalisation)."""
    for start in range(0, len(rows), size):
        chunk = np.ascontiguousarray(images[rows[start : start + size]])
        if prepare is not None:
            chunk = prepare(chunk)
        yield runtime.to_input(torch.from_numpy(chunk).permute(0, 3, 1, 2))


@torch.no_grad()
def penultimate(
    model: nn.Module, entry: Architecture, batches: Iterable[torch.Tensor]
) -> np.ndarray:
    """The input of the member's classifier for each image (globally pooled if spatial)."""
    head = get_module(model, entry.head)
    store: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple) -> None:
        x = inputs[0].float()
        store.append((x.mean(dim=(2, 3)) if x.dim() == 4 else x.flatten(1)).cpu())

    handle = head.register_forward_pre_hook(keep)
    try:
        model.eval()
        for x in batches:
            model(x)
    finally:
        handle.remove()
    return torch.cat(store).numpy() if store else np.zeros((0, 0))
