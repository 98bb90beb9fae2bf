"""Outlier features from a trained zoo member: its penultimate activations."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from pipeline.data.cache import load_or_build
from pipeline.data.records import Dataset
from pipeline.inference.features import batches, penultimate
from pipeline.inference.load import load_member, member_input

BATCH = 128


def member_features(
    member_name: str,
    zoo_out: Path,
    dataset: Dataset,
    ids: list[str],
    cache_dir: Path,
    workers: int | None,
    progress: bool,
) -> np.ndarray:
    """Penultimate features ``(len(ids), D)`` of a member for images of ``dataset``, decoded
    once at the member's own input size and crop."""
    member = load_member(zoo_out, member_name)
    records = dataset.records()
    cache = load_or_build(
        dataset.root,
        [r.id for r in records],
        member.image_size,
        dataset.name,
        cache_dir,
        workers,
        progress,
        member.crop,
        {r.id: r.mask for r in records if r.mask},
    )
    rows = cache.rows(ids)
    chunks = batches(cache.images, rows, member.precision, BATCH, partial(member_input, member))
    return penultimate(member.model, member.entry, chunks)
