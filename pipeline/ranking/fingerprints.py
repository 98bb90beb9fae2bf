"""Image content fingerprints: a hash of the decoded pixels, so that one image is recognised
under another name, folder or file format (a PNG copy of a PNG, the same JPEG renamed).

A re-encoded, resized or cropped copy has other pixels and another fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image


def image_fingerprint(path: Path) -> str:
    """SHA-256 of the image's size and RGB pixels."""
    with Image.open(path) as image:
        rgb = np.ascontiguousarray(image.convert("RGB"))
    return hashlib.sha256(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest()


def set_fingerprints(root: Path, ids: Iterable[str]) -> frozenset[str] | None:
    """The fingerprints of a set's images (``root / id``); None when one cannot be read here:
    its content is then unknown."""
    try:
        return frozenset(image_fingerprint(root / i) for i in ids)
    except (OSError, ValueError, Image.DecompressionBombError):  # missing, not an image
        return None
