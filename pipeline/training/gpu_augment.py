"""Augmentation of whole batches on the device: flips, 90 degree turns, rotations, and RandConv.

On a GPU, per-image albumentations on the CPU caps throughput long before the model does; these
operations run on the batch where it already is. Random draws come from a CPU generator seeded
per epoch, so a batch is augmented the same on any device and a resumed run repeats itself.
RandConv has no CPU form: it runs on whatever device trains, after the CPU augmentations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from pipeline.data.augment import DEVICE_ONLY

GPU_MODES = ("auto", "on", "off")


def _flip(dim: int) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    def flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        chosen = (torch.rand(len(x), generator=g) < 0.5).to(x.device).view(-1, 1, 1, 1)
        return torch.where(chosen, x.flip(dim), x)

    return flip


def rot90(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image turned by its own multiple of 90 degrees (square images only)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rot90 on the device needs square images, got {tuple(x.shape[-2:])}")
    turns = torch.randint(0, 4, (len(x),), generator=g).to(x.device).view(-1, 1, 1, 1)
    out = x
    for k in (1, 2, 3):
        out = torch.where(turns == k, torch.rot90(x, k, dims=(2, 3)), out)
    return out


def rotate(limit_deg: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Rotation by a uniform angle in [-limit, limit], corners filled by reflection (close to the
    CPU path's BORDER_REFLECT_101, which does not repeat the edge pixel), bilinear; float
    batches only."""

    def op(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        angle = (torch.rand(len(x), generator=g) * 2 - 1) * math.radians(limit_deg)
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        theta = torch.stack([cos, -sin, zero, sin, cos, zero], 1).view(-1, 2, 3)
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, "bilinear", "reflection", align_corners=False)

    return op


RANDCONV_SIZES = (3, 5, 7)


def randconv(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """RandConv (Xu et al. 2021), mixing variant: each image convolved with its own random
    kernel (size drawn from 3, 5, 7; He-normal weights mixing the three colour channels),
    rescaled to the image's own mean and standard deviation, and blended with the image by a
    uniform weight; float batches in [0, 1], kept there. The paper draws one kernel per batch;
    one per image gives a batch many textures and stains at the same cost."""
    n, c = x.shape[:2]
    k = RANDCONV_SIZES[int(torch.randint(len(RANDCONV_SIZES), (1,), generator=g))]
    weight = torch.randn(n * c, c, k, k, generator=g) / math.sqrt(c * k * k)
    out = F.conv2d(
        x.reshape(1, n * c, *x.shape[2:]), weight.to(x.device, x.dtype), padding=k // 2, groups=n
    ).view_as(x)
    dims = (1, 2, 3)
    out = (out - out.mean(dims, keepdim=True)) / (out.std(dims, keepdim=True) + 1e-6)
    out = out * x.std(dims, keepdim=True) + x.mean(dims, keepdim=True)
    alpha = torch.rand(n, 1, 1, 1, generator=g).to(x.device, x.dtype)
    return (alpha * x + (1 - alpha) * out).clamp_(0, 1)


OPS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "hflip": _flip(3),
    "vflip": _flip(2),
    "rot90": rot90,
    "rotate60": rotate(60),
    "randconv": randconv,
}


def split_augment(
    names: Sequence[str], mode: str, device: torch.device
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(CPU names, device names) of a recipe's augmentations.

    ``auto``: all on the device when on CUDA and every one has a device form, else all on the
    CPU; ``on``: every one with a device form on the device (on any device), the rest on the
    CPU, applied before them; ``off``: all on the CPU. Device-only ones (``randconv``) run on
    the device in every mode, after the CPU ones.
    """
    if mode not in GPU_MODES:
        raise ValueError(f"gpu augment must be one of {', '.join(GPU_MODES)}, not {mode!r}")
    names = tuple(names)
    on_device = tuple(n for n in names if n in OPS)
    if mode == "off" or (mode == "auto" and (device.type != "cuda" or on_device != names)):
        return _apart(names, DEVICE_ONLY)
    return _apart(names, tuple(OPS))


def _apart(
    names: tuple[str, ...], device: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(n for n in names if n not in device), tuple(n for n in names if n in device)


class GpuAugment:
    """The device forms of ``names``, applied in order to float NCHW batches."""

    def __init__(self, names: Sequence[str], seed: int) -> None:
        unknown = [n for n in names if n not in OPS]
        if unknown:
            raise KeyError(f"no device form for augmentation(s) {unknown}; known: {list(OPS)}")
        self.names = tuple(names)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names:
            x = OPS[name](x, self.generator)
        return x
