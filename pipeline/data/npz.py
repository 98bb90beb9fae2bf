"""Array files (``.npz``): MedMNIST's BloodMNIST, or any ``images`` + ``labels`` file.

A file with ``train_*``/``val_*``/``test_*`` arrays keeps those splits; one with plain
``images``/``labels`` is split stratified 64/24/12. Ids name array rows, not files:
``train/000123`` is row 123 of ``train_images``, ``images/000123`` row 123 of ``images``; the
decode cache reads them through ``pipeline.data.arrays.read_images``.

Integer labels need class names, taken from the first of: a ``classes`` string array in the
file, a sidecar beside it (``<stem>.classes.txt``, ``<stem>.classes.json``, ``classes.txt``,
``classes.json``), the BloodMNIST label order for a file named ``bloodmnist*.npz``.
"""

from __future__ import annotations

import json
import zipfile
from functools import partial
from pathlib import Path

import numpy as np

from pipeline.classes import UnknownClassError, canonical_class
from pipeline.data.arrays import WHOLE, array_key, is_array_file
from pipeline.data.records import Dataset, DatasetLayoutError, Record, classes_of
from pipeline.data.registry import register_adapter
from pipeline.data.splits import balanced_test_split, stratified_split

SPLITS = ("train", "val", "test")
SPLIT_SEED = 0
FRACTIONS = {"train": 0.64, "val": 0.24, "test": 0.12}
# MedMNIST v2 BloodMNIST labels 0..7, in order
BLOODMNIST = (
    "basophil",
    "eosinophil",
    "erythroblast",
    "ig",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "platelet",
)
Headers = dict[str, tuple[tuple[int, ...], np.dtype]]  # array name -> (shape, dtype)
SIDECARS = ("{stem}.classes.txt", "{stem}.classes.json", "classes.txt", "classes.json")


@register_adapter("npz")
def load_npz(path: Path, balanced_test: bool = False) -> Dataset:
    """Load an array file; ``balanced_test`` gives every class the same test count (files
    without official splits only; see ``balanced_test_split``): the ``npz-balanced`` adapter."""
    if not is_array_file(path):
        raise DatasetLayoutError(f"{path} is not a .npz file; the npz adapter reads one array file")
    headers = array_headers(path)
    parts = [s for s in SPLITS if f"{s}_images" in headers or f"{s}_labels" in headers] or [WHOLE]
    with np.load(path, allow_pickle=False) as data:
        labels = {part: _labels(path, data, headers, part) for part in parts}
        names = _class_names(path, data)
    records: dict[str, list[Record]] = {}
    for part, values in labels.items():
        unnamed = sorted(set(values.tolist()) - set(names))
        if unnamed:
            raise DatasetLayoutError(f"{path}: labels {unnamed} have no class name")
        width = max(6, len(str(len(values) - 1)))  # ids sort in row order
        records[part] = [
            Record(f"{part}/{row:0{width}d}", names[v]) for row, v in enumerate(values)
        ]
    if parts != [WHOLE]:
        if balanced_test:
            raise ValueError(f"{path} has official splits: its test split cannot be rebalanced")
        splits = records
    else:
        split = balanced_test_split if balanced_test else stratified_split
        splits = split(records[WHOLE], FRACTIONS, SPLIT_SEED)
    everything = [r for rs in records.values() for r in rs]
    return Dataset(path.stem, path, classes_of(everything), splits)


def array_headers(path: Path) -> Headers:
    """Shape and dtype of every array in the file, from the headers alone: the images of a
    large file are never read just to load its records."""
    out = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(f)
                out[member.removesuffix(".npy")] = (shape, dtype)
    except zipfile.BadZipFile as exc:
        raise DatasetLayoutError(f"{path} is not a readable .npz file ({exc})") from exc
    return out


def _sidecars(path: Path) -> list[Path]:
    return [path.parent / name.format(stem=path.stem) for name in SIDECARS]


def _labels(path: Path, data: np.lib.npyio.NpzFile, headers: Headers, part: str) -> np.ndarray:
    """The checked integer labels of one part, as a 1-d array."""
    images, labels = array_key(part, "images"), array_key(part, "labels")
    missing = [k for k in (images, labels) if k not in headers]
    if missing:
        raise DatasetLayoutError(
            f"{path} has no {' or '.join(missing)} (arrays: {', '.join(sorted(headers))}); "
            "expected images/labels, or train_/val_/test_images and _labels"
        )
    shape, dtype = headers[images]
    if dtype != np.uint8 or not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 3)):
        raise DatasetLayoutError(
            f"{path}: {images} is {dtype} {shape}; expected uint8 (N, H, W, 3) or (N, H, W)"
        )
    values = data[labels]
    if values.ndim == 2 and values.shape[1] == 1:  # MedMNIST stores labels as (N, 1)
        values = values[:, 0]
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise DatasetLayoutError(
            f"{path}: {labels} is {values.dtype} {values.shape}; expected integers (N,) or (N, 1)"
        )
    if len(values) != shape[0]:
        raise DatasetLayoutError(f"{path}: {images} has {shape[0]} rows but {labels} {len(values)}")
    return values


def _class_names(path: Path, data: np.lib.npyio.NpzFile) -> dict[int, str]:
    """Label value -> canonical class, from the file, a sidecar or the BloodMNIST order."""
    if "classes" in data.files:
        try:
            listed: list | dict = data["classes"].tolist()
        except ValueError as exc:  # an object array would need pickle
            raise DatasetLayoutError(
                f"{path}: save `classes` as a string array, np.array(names, dtype=str)"
            ) from exc
        source = f"{path}[classes]"
    elif sidecar := next((p for p in _sidecars(path) if p.is_file()), None):
        source = str(sidecar)
        text = sidecar.read_text(encoding="utf-8")
        if sidecar.suffix == ".json":
            listed = json.loads(text)
        else:
            listed = [line.strip() for line in text.splitlines() if line.strip()]
    elif path.name.lower().startswith("bloodmnist"):
        source, listed = "BloodMNIST", list(BLOODMNIST)
    else:
        raise DatasetLayoutError(
            f"{path}: the labels are class indices but no class names are given; add a string "
            "array `classes` (label order) to the file, or beside it a "
            f"{path.stem}.classes.txt with one class name per line in label order, or a "
            f'{path.stem}.classes.json holding a list or a mapping {{"0": "neutrophil", ...}}'
        )
    pairs = listed.items() if isinstance(listed, dict) else enumerate(listed)
    names: dict[int, str] = {}
    for value, name in pairs:
        try:
            names[int(value)] = canonical_class(str(name))
        except UnknownClassError as exc:
            raise UnknownClassError(f"{source}: {exc}") from exc
        except ValueError as exc:  # a JSON mapping key that is no label number
            raise DatasetLayoutError(f"{source}: {value!r} is not a label number") from exc
    clashes = {n for n in names.values() if list(names.values()).count(n) > 1}
    if clashes:
        raise DatasetLayoutError(f"{source}: several labels map to {', '.join(sorted(clashes))}")
    return names


# Its own adapter name, so that answer keys are rebuilt with the same split.
register_adapter("npz-balanced")(partial(load_npz, balanced_test=True))
