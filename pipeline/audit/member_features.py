"""Outlier features from a trained zoo member: its penultimate activations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.data.cache import load_or_build
from pipeline.data.records import Dataset
from pipeline.features import penultimate
from pipeline.members import load_member, member_input

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
    batches = (
        member.precision.to_input(
            torch.from_numpy(
                member_input(member, np.asarray(cache.images[rows[s : s + BATCH]]))
            ).permute(0, 3, 1, 2)
        )
        for s in range(0, len(rows), BATCH)
    )
    return penultimate(member.model, member.entry, batches)
