"""Colour and texture statistics per image, and each image's distance from its class centre."""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.covariance import LedoitWolf

_LEVELS = "LMH"  # three intensity levels per channel for the joint colour histogram
_HIST_NAMES = tuple(f"share RGB={r}{g}{b}" for r in _LEVELS for g in _LEVELS for b in _LEVELS)
FEATURE_NAMES: tuple[str, ...] = (
    *(f"{c} mean" for c in "RGB"),
    *(f"{c} std" for c in "RGB"),
    "hue cos",
    "hue sin",
    "S mean",
    "S std",
    "V mean",
    "V std",
    *_HIST_NAMES,
    "gradient mean",
    "gradient std",
    "log Laplacian var",
)
MIN_CLASS_SIZE = 3  # below this a class has no centre and spread worth the name
# A colour cell counts from 1% of the pixels on: a few stray pixels (JPEG ringing, a speck)
# would otherwise set an image apart in a cell that is empty in nearly every other image.
HIST_DEADZONE = 0.01
_ANGLE = np.arange(256) * (2 * np.pi / 256)  # OpenCV's full-range 8-bit hue, in radians
_COS, _SIN = np.cos(_ANGLE).astype(np.float32), np.sin(_ANGLE).astype(np.float32)


def image_features(images: np.ndarray) -> np.ndarray:
    """``(N, len(FEATURE_NAMES))`` float64 statistics of uint8 RGB images ``(N, S, S, 3)``."""
    x = np.ascontiguousarray(images, dtype=np.uint8)
    n = len(x)
    pixels = x.reshape(n, -1, 3)
    # one contiguous row per channel: reductions along rows are several times faster
    rgb = pixels.transpose(0, 2, 1).astype(np.float32, order="C") / 255
    hsv = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2HSV_FULL) for im in x]).reshape(n, -1, 3)
    sat = hsv[..., 1].astype(np.float32) / 255
    val = hsv[..., 2].astype(np.float32) / 255
    # hue is an angle and meaningless on grey pixels: a saturation-weighted circular mean
    weight = sat / np.maximum(sat.sum(axis=1, keepdims=True), 1e-6)
    hue = [(weight * _COS[hsv[..., 0]]).sum(1), (weight * _SIN[hsv[..., 0]]).sum(1)]
    codes = (pixels // 86) @ np.array([9, 3, 1], dtype=np.uint8)  # 3 levels per channel
    offsets = 27 * np.arange(n)[:, None]
    hist = np.bincount((codes + offsets).ravel(), minlength=27 * n).reshape(n, 27)
    shares = np.maximum(hist / pixels.shape[1] - HIST_DEADZONE, 0)
    grey = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in x]).astype(np.float32) / 255
    gy, gx = grey[:, 2:, 1:-1] - grey[:, :-2, 1:-1], grey[:, 1:-1, 2:] - grey[:, 1:-1, :-2]
    grad = np.sqrt(gx**2 + gy**2).reshape(n, -1)
    lap = (
        grey[:, :-2, 1:-1]
        + grey[:, 2:, 1:-1]
        + grey[:, 1:-1, :-2]
        + grey[:, 1:-1, 2:]
        - 4 * grey[:, 1:-1, 1:-1]
    ).reshape(n, -1)
    columns = [
        rgb.mean(-1),
        rgb.std(-1),
        np.stack(hue, axis=1),
        np.stack([sat.mean(1), sat.std(1), val.mean(1), val.std(1)], axis=1),
        shares,
        np.stack([grad.mean(1), grad.std(1), np.log(lap.var(1) + 1e-8)], axis=1),
    ]
    return np.concatenate(columns, axis=1, dtype=np.float64)


def standardise(features: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column; constant columns stay zero."""
    std = features.std(axis=0)
    return (features - features.mean(axis=0)) / np.where(std > 0, std, 1.0)


def class_distances(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mahalanobis distance of each image from its class centre, and per-feature deviations.

    Features are standardised over all images, then each class gets its mean and a Ledoit-Wolf
    shrunk covariance (well-conditioned even for classes smaller than the feature count).
    Returns ``scores (N,)`` (NaN in classes under ``MIN_CLASS_SIZE``) and ``deviations (N, F)``,
    each feature's distance from the class mean in class standard deviations.
    """
    z = standardise(features)
    scores = np.full(len(z), np.nan)
    deviations = np.zeros_like(z)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < MIN_CLASS_SIZE:
            continue
        fit = LedoitWolf().fit(z[rows])
        diff = z[rows] - fit.location_
        scores[rows] = np.sqrt(np.einsum("ij,jk,ik->i", diff, fit.precision_, diff))
        deviations[rows] = diff / np.sqrt(np.diag(fit.covariance_))
    return scores, deviations


def top_deviations(deviation: np.ndarray, names: list[str], k: int = 2) -> str:
    """The ``k`` features that set one image apart, e.g. ``"V mean -6.1σ, S std +4.0σ"``."""
    order = np.argsort(-np.abs(deviation))[:k]
    return ", ".join(f"{names[i]} {deviation[i]:+.1f}σ" for i in order)
