"""SHOT (Liang et al. 2020, "Do we really need to access the source data?"): fine-tune a
member's feature extractor on one unlabelled set, its classifier frozen.

Each epoch first labels the set by its own feature clusters (class centroids weighted by the
predictions, then by the labels they give, nearest centroid by cosine), then trains the
feature extractor on

    mean entropy of the predictions  -  entropy of their mean  +  beta * cross-entropy(labels)

(information maximisation: confident, yet not all one class; plus the self-supervised
pseudo-labels). BatchNorm layers keep whatever statistics they hold (eval mode): a member's
own, or the set's after AdaBN (``adabn+shot``, which re-estimates them again afterwards). The
predictions are restricted to the set's classes (its vocabulary, never its labels), so the
diversity term does not push toward classes the set cannot hold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.inference.features import batches
from pipeline.models.engine import Runtime


@dataclass(frozen=True)
class ShotSettings:
    """Fixed in advance, from the paper's defaults (its backbone's learning rate, beta 0.3),
    with few epochs so that a few hundred 64 px cells take seconds to a minute on a CPU."""

    epochs: int = 5
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-3
    beta: float = 0.3  # weight of the pseudo-label cross-entropy
    batch: int = 64
    seed: int = 0


SHOT = ShotSettings()
EPSILON = 1e-5


@contextlib.contextmanager
def head_inputs(head: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collects what the classifier receives (globally pooled if spatial) during the block."""
    store: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple) -> None:
        x = inputs[0]
        store.append(x.mean(dim=(2, 3)) if x.dim() == 4 else x.flatten(1))

    handle = head.register_forward_pre_hook(keep)
    try:
        yield store
    finally:
        handle.remove()


@torch.no_grad()
def pseudo_labels(
    model: nn.Module,
    head: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    precision: Runtime,
    columns: list[int],
    size: int,
) -> np.ndarray:
    """SHOT's self-supervised labels (indices into ``columns``): nearest class centroid by
    cosine, the centroids weighted first by the predictions, then by the labels they give."""
    model.eval()
    feats, probs = [], []
    with head_inputs(head) as store:
        for x in batches(images, rows, precision, size):
            with precision.autocast():
                logits = model(x).float()[:, columns]
            probs.append(logits.softmax(1).cpu().double())
            feats.append(store.pop().float().cpu().double())
    f = torch.cat(feats)
    f = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1)
    f = (f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()
    weights = torch.cat(probs).numpy()
    for _ in range(2):
        centroids = weights.T @ f / (weights.sum(0)[:, None] + 1e-8)
        present = weights.sum(0) > 0
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        similarity = np.where(present[None, :], f @ centroids.T, -np.inf)
        labels = similarity.argmax(1)
        weights = np.eye(len(columns))[labels]
    return labels


def shot_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float) -> torch.Tensor:
    """Information maximisation plus ``beta`` times the pseudo-label cross-entropy."""
    p = logits.softmax(1)
    entropy = -(p * logits.log_softmax(1)).sum(1).mean()
    mean = p.mean(0)
    diversity = (mean * torch.log(mean + EPSILON)).sum()  # minus the entropy of the mean
    return entropy + diversity + beta * nn.functional.cross_entropy(logits, labels)


def shot(
    model: nn.Module,
    head: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    precision: Runtime,
    columns: list[int],
    settings: ShotSettings = SHOT,
) -> None:
    """Fine-tune every parameter but ``head``'s on ``images[rows]`` in place, predictions
    over ``columns``; eval mode throughout (callers restore the model afterwards)."""
    if len(rows) < 2:
        return
    model.eval()
    model.requires_grad_(True)
    head.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params,
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        nesterov=True,
    )
    generator = torch.Generator().manual_seed(settings.seed)
    for _ in range(settings.epochs):
        labels = pseudo_labels(model, head, images, rows, precision, columns, settings.batch)
        order = torch.randperm(len(rows), generator=generator).numpy()
        for start in range(0, len(order), settings.batch):
            chosen = order[start : start + settings.batch]
            if len(chosen) < 2:
                continue
            x = next(batches(images, rows[chosen], precision, len(chosen)))
            target = torch.from_numpy(labels[chosen]).to(x.device)
            with precision.autocast():
                logits = model(x).float()[:, columns]
            loss = shot_loss(logits, target, settings.beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.requires_grad_(False)
