"""Albumentations pipelines on uint8 HWC arrays, built from a recipe's augmentation names."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import albumentations as A
import cv2
import numpy as np

from pipeline.errors import UnknownNameError

# Cells have no orientation, so flips and rotations are label-preserving. Reflection fills the
# corners that a rotation exposes with plausible background instead of black. ``strength`` (0..1)
# scales the photometric and affine magnitudes of ``color``, ``randaugment`` and the stain and
# colour augmentations (``hestain``, ``hed``, ``colorjitter``), which imitate other labs' stains,
# cameras and lamps; ``grayscale`` takes colour away from 10% of the images altogether.
_AUGMENTATIONS: dict[str, Callable[[int, float], A.BasicTransform]] = {
    "hflip": lambda size, s: A.HorizontalFlip(p=0.5),
    "vflip": lambda size, s: A.VerticalFlip(p=0.5),
    "rot90": lambda size, s: A.RandomRotate90(p=1.0),
    "rotate60": lambda size, s: A.Rotate(limit=60, border_mode=cv2.BORDER_REFLECT_101, p=1.0),
    "resized_crop": lambda size, s: A.RandomResizedCrop(size=(size, size), scale=(0.7, 1.0), p=1.0),
    "color": lambda size, s: A.ColorJitter(0.2 * s, 0.2 * s, 0.1 * s, 0.02 * s, p=0.8),
    "randaugment": lambda size, s: randaugment(s),
    "hestain": lambda size, s: A.HEStain(
        method="random_preset",
        intensity_scale_range=(1 - 0.3 * s, 1 + 0.3 * s),
        intensity_shift_range=(-0.2 * s, 0.2 * s),
        augment_background=False,
        p=0.5,
    ),
    "hed": lambda size, s: HEDJitter(sigma=0.05 * s, bias=0.05 * s, p=0.8),
    "colorjitter": lambda size, s: A.ColorJitter(
        brightness=(1 - 0.3 * s, 1 + 0.3 * s),
        contrast=(1 - 0.3 * s, 1 + 0.3 * s),
        saturation=(1 - 0.3 * s, 1 + 0.3 * s),
        hue=(-0.05 * s, 0.05 * s),
        p=0.8,
    ),
    "grayscale": lambda size, s: A.ToGray(p=0.1),
}
STRENGTH_SCALED = ("color", "randaugment", "hestain", "hed", "colorjitter")

AUGMENTATIONS = tuple(_AUGMENTATIONS)
# augmentations with no albumentations form, which ``pipeline.training.gpu_augment`` runs on the
# device whatever the mode; named here with the others so that recipes are checked below training
DEVICE_ONLY = ("randconv",)


# Ruifrok & Johnston (2001): optical densities of haematoxylin, eosin and DAB, one row each.
_RGB_FROM_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64
)
_RGB_FROM_HED /= np.linalg.norm(_RGB_FROM_HED, axis=1, keepdims=True)
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED)


class HEDJitter(A.ImageOnlyTransform):
    """HED jitter (Tellez et al. 2018): colour deconvolution into haematoxylin, eosin and DAB
    optical densities, each scaled by ``1 + U(-sigma, sigma)`` and shifted by ``U(-bias, bias)``,
    then back to RGB. The draws come from the pipeline's generator, so ``seed`` repeats them."""

    def __init__(self, sigma: float = 0.05, bias: float = 0.05, p: float = 0.5) -> None:
        super().__init__(p=p)
        self.sigma, self.bias = sigma, bias

    def get_params(self) -> dict[str, np.ndarray]:
        rng = self.random_generator
        return {
            "alpha": rng.uniform(1 - self.sigma, 1 + self.sigma, 3),
            "beta": rng.uniform(-self.bias, self.bias, 3),
        }

    def apply(self, img: np.ndarray, alpha: np.ndarray, beta: np.ndarray, **params) -> np.ndarray:
        return hed_jitter(img, alpha, beta)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("sigma", "bias")


def hed_jitter(rgb: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``rgb`` (uint8) with its stain concentrations scaled by ``alpha`` and shifted by ``beta``."""
    od = -np.log(np.maximum(rgb.astype(np.float64), 1.0) / 255.0)
    hed = od.reshape(-1, 3) @ _HED_FROM_RGB * alpha + beta
    out = 255.0 * np.exp(-(hed @ _RGB_FROM_HED))
    return np.clip(np.rint(out), 0, 255).reshape(rgb.shape).astype(np.uint8)


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
        raise UnknownNameError(
            f"unknown augmentation(s) {unknown}; known: {', '.join(AUGMENTATIONS)}"
        )
    return A.Compose([_AUGMENTATIONS[n](size, strength) for n in names], seed=seed)
