"""Stain normalisation toward the training set's stain: Reinhard (LAB statistics) and Macenko
(stain vectors from optical density), both from torchstain.

The reference is fitted on training images and stored with the member, so evaluation sets and
``predict`` map every image onto the stain the member learnt (``stain_apply``, which an export
ships). Whole decoded arrays are normalised once and cached by content, like decoded crops.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchstain.numpy.normalizers import NumpyMacenkoNormalizer, NumpyReinhardNormalizer

from pipeline.data import stain_apply
from pipeline.io import atomic_write

STAIN_METHODS = ("none", "reinhard", "macenko")
FIT_SAMPLE = 256  # training images pooled into the reference
VERSION = 1  # bump when normalisation changes: cached arrays of older code are not reused


@dataclass(frozen=True)
class StainReference:
    """A fitted target stain: Reinhard's LAB means and standard deviations (6 numbers), or
    Macenko's stain matrix and maximal concentrations (6 + 2)."""

    method: str
    values: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"method": self.method, "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: dict) -> StainReference:
        return cls(str(data["method"]), tuple(float(v) for v in data["values"]))

    @property
    def digest(self) -> str:
        text = json.dumps([VERSION, self.method, [repr(v) for v in self.values]])
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def fit_reference(
    method: str, images: np.ndarray, rows: np.ndarray, seed: int = 0
) -> StainReference:
    """The stain of up to ``FIT_SAMPLE`` of ``images[rows]`` pooled (uint8 NHWC)."""
    if method not in STAIN_METHODS[1:]:
        raise ValueError(f"stain normalisation must be one of {', '.join(STAIN_METHODS)}")
    if len(rows) == 0:
        raise ValueError("no training images to fit a stain reference on")
    chosen = np.random.default_rng(seed).permutation(rows)[:FIT_SAMPLE]
    mosaic = np.concatenate([np.asarray(images[r]) for r in np.sort(chosen)], axis=0)
    if method == "reinhard":
        reinhard = NumpyReinhardNormalizer()
        reinhard.fit(mosaic)
        return StainReference(method, (*map(float, reinhard.target_means),
                                       *map(float, reinhard.target_stds)))  # fmt: skip
    macenko = NumpyMacenkoNormalizer()
    macenko.fit(mosaic)
    return StainReference(method, (*map(float, macenko.HERef.ravel()),
                                   *map(float, macenko.maxCRef)))  # fmt: skip


def normalise_all(images: np.ndarray, ref: StainReference) -> np.ndarray:
    return stain_apply.normalise_all(images, ref.method, ref.values)


def normalised(images: np.ndarray, ref: StainReference, cache_dir: Path) -> np.ndarray:
    """``images`` (a decoded array) in the reference's stain, cached under ``cache_dir/stain``
    by the array's content and the reference, so no change to either can return stale pixels."""
    data = np.ascontiguousarray(images)
    digest = hashlib.blake2b(data.view(np.uint8).data, digest_size=12)
    digest.update(f"{data.shape}:{ref.digest}".encode())
    path = Path(cache_dir) / "stain" / f"{ref.method}-{digest.hexdigest()}.npy"
    if path.exists():
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt
    result = normalise_all(data, ref)
    atomic_write(path, lambda f: np.save(f, result), binary=True)
    return result
