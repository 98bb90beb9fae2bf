"""Optimisers and per-step learning-rate schedules from a recipe."""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.runs.recipe import Recipe

FUSED_DEVICES = ("cpu", "cuda")
FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def fused(params: list[nn.Parameter]) -> bool:
    """Whether torch's fused step serves every parameter. It updates each tensor in one pass:
    the step by parts makes temporaries the size of the largest weight (0.8 GB for VGG's first
    classifier layer under AdamW, the peak of a CPU zoo) and makes a VGG's whole training step
    about 10% slower (``bench.step_memory``)."""
    return all(p.device.type in FUSED_DEVICES and p.dtype in FUSED_DTYPES for p in params)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    one_pass = fused(params)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            fused=one_pass,
        )
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=one_pass
        )
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; use sgd or adamw")


def make_scheduler(
    optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler stepped once per batch, whatever the recipe's schedule."""
    total = recipe.epochs * steps_per_epoch
    if recipe.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=total)
    if recipe.scheduler == "constant":
        factor = lambda step: 1.0  # noqa: E731
    elif recipe.scheduler == "step":
        factor = lambda step: recipe.gamma ** (step // steps_per_epoch // recipe.step_size)  # noqa: E731
    elif recipe.scheduler == "cosine":
        warmup = recipe.warmup_epochs * steps_per_epoch

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))
    else:
        raise ValueError(
            f"unknown scheduler {recipe.scheduler!r}; use constant, step, cosine or onecycle"
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
