"""Pretrained weights through torchvision's and timm's own APIs, with an honest offline story."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision

from pipeline.models.catalogue import Entry

CHOICES = ("imagenet", "none", "auto")


class WeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for but could not be loaded."""


def torchvision_weights(entry: Entry) -> torchvision.models.WeightsEnum:
    return torchvision.models.get_model_weights(entry.fn).DEFAULT


def cached_file(entry: Entry) -> Path | None:
    """Where torchvision keeps this member's weights file (None for timm members)."""
    if entry.library != "torchvision":
        return None
    url = torchvision_weights(entry).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def resolve(entry: Entry, weights: str) -> str:
    """Turn ``auto`` into ``imagenet`` when the weights file is already cached, else ``none``."""
    if weights not in CHOICES:
        raise ValueError(f"--weights must be one of {', '.join(CHOICES)}, not {weights!r}")
    if not entry.imagenet:
        if weights == "imagenet":
            raise WeightsUnavailable(
                f"{entry.name} has no published ImageNet weights: run it with --weights none "
                "(or auto), or pick a member that has them (python -m pipeline.zoo --list)"
            )
        return "none"
    if weights != "auto":
        return weights
    path = cached_file(entry)
    return "imagenet" if path is not None and path.exists() else "none"


def offline_hint(entry: Entry, error: Exception) -> WeightsUnavailable:
    path = cached_file(entry)
    where = (
        f"copy {path.name} into {path.parent} (set TORCH_HOME to move it)"
        if path
        else "fill the Hugging Face cache (HF_HOME) on a connected machine"
    )
    return WeightsUnavailable(
        f"could not load ImageNet weights for {entry.name}: {type(error).__name__}: {error}. "
        f"Offline? Run with --weights none (random initialisation), or {where}."
    )
