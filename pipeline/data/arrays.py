"""Array files (``.npz``) as an image source: the file format that both the ``npz`` adapter
(records, labels, splits) and the decode cache (pixels by id) read. Ids name array rows:
``train/000123`` is row 123 of ``train_images``, ``images/000123`` row 123 of ``images``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

WHOLE = "images"  # the id prefix of a file without official splits


def is_array_file(path: Path) -> bool:
    return path.suffix.lower() == ".npz" and path.is_file()


def read_images(path: Path, ids: Sequence[str]) -> Iterator[tuple[int, np.ndarray]]:
    """``(position in ids, uint8 image)`` for every id, loading one array at a time."""
    wanted: dict[str, list[tuple[int, int]]] = {}
    for position, i in enumerate(ids):
        part, _, row = i.partition("/")
        wanted.setdefault(array_key(part, "images"), []).append((position, int(row)))
    with np.load(path, allow_pickle=False) as data:
        for key, rows in wanted.items():
            images = data[key]
            for position, row in rows:
                yield position, images[row]


def array_key(part: str, kind: str) -> str:
    """The array of ``kind`` (``images``/``labels``) holding a part (a split, or ``WHOLE``)."""
    return kind if part == WHOLE else f"{part}_{kind}"
