"""Which evaluation images a folder of unlabelled images holds: the same bytes, wherever they lie
and whatever they are called (a copy of the test split, or the data root itself)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.data.records import list_images
from pipeline.data.store import ImageSet


def set_files(image_set: ImageSet) -> list[Path]:
    return [image_set.root / r.id for r in image_set.records]


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:  # a listed image that is gone holds nothing to share
        return None


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def shared_images(folders: Sequence[Path], sets: Mapping[str, Sequence[Path]]) -> dict[str, int]:
    """Per set, how many of its files have the bytes of an image file below ``folders``; sets
    that share none are left out. Files are compared by size first, so only files of a size
    found on both sides are read and hashed."""
    pool = {p: _size(p) for p in list_images([Path(f) for f in folders])}
    sized = {name: {p: _size(p) for p in files} for name, files in sets.items()}
    wanted = {s for sizes in sized.values() for s in sizes.values()}
    pool_sizes = set(pool.values())
    digests = {_sha1(p) for p, s in pool.items() if s is not None and s in wanted}
    counts = {}
    for name, sizes in sized.items():
        n = sum(s is not None and s in pool_sizes and _sha1(p) in digests for p, s in sizes.items())
        if n:
            counts[name] = n
    return counts


def describe_shared(counts: Mapping[str, int]) -> str:
    """``{"test": 3, "lab2": 1}`` -> ``3 images of test, 1 of lab2``."""
    parts = [f"{n} {'image' if n == 1 else 'images'} of {name}" if i == 0 else f"{n} of {name}"
             for i, (name, n) in enumerate(counts.items())]  # fmt: skip
    return ", ".join(parts)
