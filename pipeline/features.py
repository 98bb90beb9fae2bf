"""A member's penultimate features: what the audit, explanations and pretraining's probe embed."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from pipeline.models import Entry
from pipeline.models.factory import get_module


@torch.no_grad()
def penultimate(model: nn.Module, entry: Entry, batches: Iterable[torch.Tensor]) -> np.ndarray:
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
