"""SimCLR (Chen et al. 2020) on unlabelled cell images: a backbone learns that two augmented
views of one cell belong together and views of other cells do not.

The member's own architecture is trained, its classifier standing in as the projection head
(an MLP), so the backbone's parameter names are exactly a member's and ``--weights FILE`` loads
them into any member of that architecture.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data.augment import build_augment
from pipeline.data.loader import CachedImages, make_loader
from pipeline.models import Architecture, create_model, engine

# Strong views: cells differ in stain, lamp and position across labs, never in orientation.
VIEW_AUGMENT = ("resized_crop", "hflip", "vflip", "rot90", "hed", "colorjitter", "grayscale")
PROJECTION = 128
HIDDEN = 512


@dataclass(frozen=True)
class SimCLRConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    image_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.image_size < 16:
            raise ValueError("SimCLR needs 1+ epochs, batches of 2+ images and 16+ px images")
        if not (self.lr > 0 and self.temperature > 0):
            raise ValueError("learning rate and temperature must be positive")


class TwoViews(CachedImages):
    """Each image as two independently augmented views (uint8 CHW)."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = np.asarray(self.images[self.rows[i]])
        views = [self.augment(image=image)["image"] for _ in range(2)]
        return tuple(torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1))) for v in views)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The normalised temperature-scaled cross entropy: each view must pick its partner out of
    the other 2N - 2 views of the batch."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def backbone_state(model: nn.Module, entry: Architecture) -> dict[str, torch.Tensor]:
    """The parameters and buffers of everything but the classifier heads."""
    heads = tuple(f"{h}." for h in (entry.head, *entry.aux_heads))
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if not k.startswith(heads)}  # fmt: skip


def pretrain(
    entry: Architecture,
    images: np.ndarray,
    rows: np.ndarray,
    config: SimCLRConfig,
    device: torch.device,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[nn.Module, list[float]]:
    """Train ``entry``'s architecture from random initialisation on ``images[rows]``; returns
    the model (its head is the projection) and the mean loss of each epoch."""
    torch.manual_seed(config.seed)
    model, _ = create_model(entry, PROJECTION, "none", config.image_size, head_hidden=HIDDEN)
    model.to(device)
    precision = engine.Runtime(
        device, engine.amp_dtype(device), False, tuple(entry.mean), tuple(entry.std)
    )
    augment = build_augment(VIEW_AUGMENT, config.image_size, config.seed, 1.0)
    data = TwoViews(images, rows, np.zeros(len(rows), dtype=np.int64), augment)
    batch = min(config.batch_size, len(rows))
    steps = max(1, len(rows) // batch) * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    )
    losses = []
    for epoch in range(config.epochs):
        seed = config.seed * 100_003 + epoch
        loader = make_loader(data, batch, True, 0, seed, device.type == "cuda", drop_last=True)
        model.train()
        total, seen = 0.0, 0
        for v1, v2 in loader:
            x = precision.to_input(torch.cat([v1, v2]))
            with precision.autocast():
                out = model(x)
            z = out[0] if isinstance(out, tuple) else out  # Inception/GoogLeNet: main head
            loss = nt_xent(z[: len(v1)], z[len(v1) :], config.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total, seen = total + loss.item() * len(v1), seen + len(v1)
        losses.append(total / max(seen, 1))
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])
    return model.eval(), losses
