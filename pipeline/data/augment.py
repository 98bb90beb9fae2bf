"""Albumentations pipelines on uint8 HWC arrays, built from a recipe's augmentation names."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import albumentations as A
import cv2

# Cells have no orientation, so flips and rotations are label-preserving. Reflection fills the
# corners that a rotation exposes with plausible background instead of black. ``strength`` (0..1)
# scales the photometric and affine magnitudes of ``color`` and ``randaugment``.
_AUGMENTATIONS: dict[str, Callable[[int, float], A.BasicTransform]] = {
    "hflip": lambda size, s: A.HorizontalFlip(p=0.5),
    "vflip": lambda size, s: A.VerticalFlip(p=0.5),
    "rot90": lambda size, s: A.RandomRotate90(p=1.0),
    "rotate60": lambda size, s: A.Rotate(limit=60, border_mode=cv2.BORDER_REFLECT_101, p=1.0),
    "resized_crop": lambda size, s: A.RandomResizedCrop(size=(size, size), scale=(0.7, 1.0), p=1.0),
    "color": lambda size, s: A.ColorJitter(0.2 * s, 0.2 * s, 0.1 * s, 0.02 * s, p=0.8),
    "randaugment": lambda size, s: randaugment(s),
}

AUGMENTATIONS = tuple(_AUGMENTATIONS)


def randaugment(strength: float, n: int = 2) -> A.BaseCompose:
    """RandAugment's recipe (Cubuk et al. 2020) from albumentations' operations: ``n`` of them
    per image, each at a magnitude set by ``strength``."""
    s = strength
    ops = [
        A.Affine(rotate=(-30 * s, 30 * s), border_mode=cv2.BORDER_REFLECT_101, p=1.0),
        A.Affine(shear=(-15 * s, 15 * s), border_mode=cv2.BORDER_REFLECT_101, p=1.0),
        A.Affine(
            translate_percent=(-0.15 * s, 0.15 * s), border_mode=cv2.BORDER_REFLECT_101, p=1.0
        ),
        A.RandomBrightnessContrast(0.3 * s, 0.3 * s, p=1.0),
        A.HueSaturationValue(int(10 * s), int(20 * s), int(15 * s), p=1.0),
        A.Sharpen(alpha=(0.1, 0.1 + 0.4 * s), p=1.0),
        A.Posterize(num_bits=(max(1, round(8 - 4 * s)), 8), p=1.0),
        A.Equalize(p=1.0),
        A.Solarize(threshold_range=(1 - 0.5 * s, 1.0), p=1.0),
    ]
    return A.SomeOf(ops, n=n, p=1.0)


def build_augment(
    names: Sequence[str], size: int, seed: int = 0, strength: float = 1.0
) -> A.Compose:
    unknown = [n for n in names if n not in _AUGMENTATIONS]
    if unknown:
        raise KeyError(f"unknown augmentation(s) {unknown}; known: {', '.join(AUGMENTATIONS)}")
    return A.Compose([_AUGMENTATIONS[n](size, strength) for n in names], seed=seed)
