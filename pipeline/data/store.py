"""Evaluation sets and the per-run store of decoded images they are read from."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.data.cache import CENTRE_CROP, DEFAULT_CACHE_DIR, ImageCache, load_or_build
from pipeline.data.cellcrop import FALLBACKS, CropSpec
from pipeline.data.records import Dataset, DatasetLayoutError, Record, classes_of
from pipeline.data.stain import StainReference, normalised


@dataclass(frozen=True)
class ImageSet:
    """One named list of images of one dataset root, e.g. PBC ``test`` or an extra ``bccd`` set."""

    name: str
    dataset: str
    root: Path
    records: tuple[Record, ...]
    adapter: str = ""
    split: str | None = None  # the dataset split it is; None: the whole dataset
    vocabulary: tuple[str, ...] = ()  # the classes it is scored over: its dataset's ``classes``

    @property
    def classes(self) -> tuple[str, ...]:
        return classes_of(list(self.records))

    @property
    def source(self) -> dict[str, str | None]:
        """Where the answer key of this set comes from (see ``pipeline.evaluation.answers``)."""
        return {"adapter": self.adapter, "root": str(self.root.resolve()), "split": self.split}


def image_sets(dataset: Dataset, extra: dict[str, Dataset] | None = None) -> dict[str, ImageSet]:
    """The sets of a training dataset (its splits) plus whole extra datasets, by name."""
    sets = {
        name: ImageSet(
            name, dataset.name, dataset.root, tuple(records), dataset.adapter, name, dataset.classes
        )
        for name, records in dataset.splits.items()
    }
    for name, ds in (extra or {}).items():
        if name in sets:
            raise DatasetLayoutError(
                f"evaluation set name {name!r} clashes with a split of {dataset.name}"
            )
        sets[name] = ImageSet(
            name, ds.name, ds.root, tuple(ds.records()), ds.adapter, vocabulary=ds.classes
        )
    return sets


@dataclass
class View:
    """The readable images of a set at one size: array rows, ids and labels, in the set's order,
    and how their crops were made (mode, fraction, status counts)."""

    images: np.ndarray
    rows: np.ndarray
    ids: list[str]
    labels: list[str]
    crop: dict = field(default_factory=dict)


@dataclass
class ImageStore:
    """Opens (building once) the decode cache of each dataset root at each size."""

    cache_dir: Path = DEFAULT_CACHE_DIR
    workers: int | None = None
    progress: bool = True
    _caches: dict[tuple[Path, int, CropSpec], ImageCache] = field(default_factory=dict)
    _all_ids: dict[Path, tuple[str, list[str], dict[str, str]]] = field(default_factory=dict)
    _warned: set[Path] = field(default_factory=set)
    _reported: set[tuple[str, CropSpec]] = field(default_factory=set)

    def register(self, dataset: Dataset) -> None:
        """Make every image of a dataset known, so one cache holds all its splits."""
        records = dataset.records()
        masks = {r.id: r.mask for r in records if r.mask}
        ids = [r.id for r in records]
        if dataset.root in self._all_ids:  # two adapters of one root (raabin, raabin-testb)
            name, known, known_masks = self._all_ids[dataset.root]
            ids, masks = sorted(set(known) | set(ids)), known_masks | masks
        else:
            name = dataset.name
        self._all_ids[dataset.root] = (name, ids, masks)
        if dataset.skipped:
            warnings.warn(
                f"{dataset.root}: skipped {len(dataset.skipped)} non-image file(s): "
                + ", ".join(dataset.skipped),
                stacklevel=2,
            )

    def view(
        self,
        image_set: ImageSet,
        size: int,
        crop: CropSpec = CENTRE_CROP,
        stain: StainReference | None = None,
    ) -> View:
        """The set's images at ``size`` under ``crop``, in the ``stain`` of a reference if one is
        given; cell-crop fallbacks are printed once per set."""
        cache = self._cache(image_set.root, size, crop)
        readable = [r for r in image_set.records if r.id not in cache.failed]
        ids = [r.id for r in readable]
        counts = cache.crop_counts(ids)
        if crop.mode == "cell" and (image_set.name, crop) not in self._reported:
            self._reported.add((image_set.name, crop))
            tqdm.write(f"cell crops of {image_set.name}: {crop_summary(counts)}")
        return View(
            cache.images if stain is None else normalised(cache.images, stain, self.cache_dir),
            cache.rows(ids),
            ids,
            [r.label for r in readable],
            {"mode": crop.mode, "fraction": crop.fraction, "counts": counts},
        )

    def _cache(self, root: Path, size: int, crop: CropSpec) -> ImageCache:
        key = (root, size, crop)
        if key not in self._caches:
            if root not in self._all_ids:
                raise KeyError(f"{root} was not registered with the image store")
            name, ids, masks = self._all_ids[root]
            cache = load_or_build(
                root, ids, size, name, self.cache_dir, self.workers, self.progress, crop, masks
            )
            if cache.failed and root not in self._warned:
                self._warned.add(root)
                warnings.warn(
                    f"{root}: skipped {len(cache.failed)} unreadable image(s): "
                    + "; ".join(f"{i} ({why})" for i, why in cache.failed.items()),
                    stacklevel=2,
                )
            self._caches[key] = cache
        return self._caches[key]


def crop_summary(counts: dict[str, int]) -> str:
    """``"240 found, 3 no cell -> centre crop"``: fallbacks named as such."""
    fallback = " -> centre crop"
    parts = [f"{n} {s}{fallback if s in FALLBACKS else ''}" for s, n in counts.items()]
    return ", ".join(parts) or "no images"
