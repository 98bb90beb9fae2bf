"""Mapping decoded cells onto a fitted reference stain (Reinhard or Macenko, from torchstain).

Self-contained on purpose (numpy and torchstain only, nothing of the pipeline):
``pipeline.export`` ships this file verbatim as ``stain.py`` beside an exported member that was
trained on stain-normalised images, so a caller applies exactly what training and ``predict``
did before the ONNX graph: ``stain.normalise_all(images, method, values)`` with ``method`` and
``values`` from ``model.json``'s ``preprocessing.stain_norm``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torchstain.numpy.normalizers import NumpyMacenkoNormalizer, NumpyReinhardNormalizer


def normaliser(method: str, values: Sequence[float]) -> Callable[[np.ndarray], np.ndarray]:
    """One uint8 HWC RGB image -> the same image in the reference stain: Reinhard's LAB means
    and standard deviations (6 values), or Macenko's stain matrix and maximal concentrations
    (6 + 2). An image the method cannot unmix (too few stained pixels for Macenko) comes back
    unchanged."""
    if method == "reinhard":
        reinhard = NumpyReinhardNormalizer()
        reinhard.target_means = np.array(values[:3])
        reinhard.target_stds = np.array(values[3:])

        def apply(image: np.ndarray) -> np.ndarray:
            if np.asarray(image).std() == 0:  # a flat image has no spread to rescale
                return image
            return reinhard.normalize(image)

        return apply
    if method != "macenko":
        raise ValueError(f"unknown stain normalisation {method!r}: reinhard or macenko")
    macenko = NumpyMacenkoNormalizer()
    macenko.HERef = np.array(values[:6]).reshape(3, 2)
    macenko.maxCRef = np.array(values[6:])

    def unmix(image: np.ndarray) -> np.ndarray:
        if np.asarray(image).std() == 0:
            return image
        try:
            with np.errstate(all="ignore"):
                out = macenko.normalize(image, stains=False)[0]
        except (np.linalg.LinAlgError, ValueError, IndexError):
            return image
        return image if not np.isfinite(out).all() else out

    return unmix


def normalise_all(images: np.ndarray, method: str, values: Sequence[float]) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` RGB images, each mapped onto the reference stain."""
    apply = normaliser(method, values)
    return np.stack([apply(np.asarray(im)) for im in images]) if len(images) else images.copy()
