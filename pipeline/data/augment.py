"""Albumentations pipelines on uint8 HWC arrays, built from a recipe's augmentation names."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import albumentations as A
import cv2

# Cells have no orientation, so flips and rotations are label-preserving. Reflection fills the
# corners that a rotation exposes with plausible background instead of black.
_AUGMENTATIONS: dict[str, Callable[[int], A.BasicTransform]] = {
    "hflip": lambda size: A.HorizontalFlip(p=0.5),
    "vflip": lambda size: A.VerticalFlip(p=0.5),
    "rot90": lambda size: A.RandomRotate90(p=1.0),
    "rotate60": lambda size: A.Rotate(limit=60, border_mode=cv2.BORDER_REFLECT_101, p=1.0),
    "resized_crop": lambda size: A.RandomResizedCrop(size=(size, size), scale=(0.7, 1.0), p=1.0),
    "color": lambda size: A.ColorJitter(0.2, 0.2, 0.1, 0.02, p=0.8),
}

AUGMENTATIONS = tuple(_AUGMENTATIONS)


def build_augment(names: Sequence[str], size: int, seed: int = 0) -> A.Compose:
    unknown = [n for n in names if n not in _AUGMENTATIONS]
    if unknown:
        raise KeyError(f"unknown augmentation(s) {unknown}; known: {', '.join(AUGMENTATIONS)}")
    return A.Compose([_AUGMENTATIONS[n](size) for n in names], seed=seed)
