"""The training data path: cached uint8 images -> albumentations -> batches of uint8 tensors.

Normalisation happens on the device, in batch (see ``pipeline.models.engine.to_input``).
"""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class CachedImages(Dataset):
    """Rows of a decoded image array with integer labels, optionally augmented."""

    def __init__(
        self,
        images: np.ndarray,
        rows: np.ndarray,
        labels: np.ndarray,
        augment: A.Compose | None = None,
    ) -> None:
        self.images, self.rows, self.labels, self.augment = images, rows, labels, augment

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = np.asarray(self.images[self.rows[i]])
        if self.augment is not None:
            image = self.augment(image=image)["image"]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), int(self.labels[i])


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    if info is not None and info.dataset.augment is not None:
        info.dataset.augment.set_random_seed(info.seed % 2**32)


def make_loader(
    dataset: CachedImages,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int,
    pin_memory: bool,
    drop_last: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A loader whose order and augmentations follow ``seed`` alone (reseeded every epoch);
    a ``sampler`` (seeded by its maker) replaces shuffling."""
    if dataset.augment is not None:
        dataset.augment.set_random_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        generator=generator,
        worker_init_fn=_seed_worker,
        pin_memory=pin_memory,
        persistent_workers=False,
        drop_last=drop_last,
    )
