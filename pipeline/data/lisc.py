"""LISC (Rezatofighi & Soltanian-Zadeh 2011), as published or as cropped by Tavakoli et al.

Published: ``Main Dataset/<Baso|eosi|lymp|mono|neut|mixt>/<n>.bmp`` whole 720x576 frames, the
white cell small among red cells, with optional expert masks in ``Ground Truth Segmentation/
<class>/areaforexpert1/<n>_expert.bmp``. ``mixt`` frames have no per-cell label and are left out;
exact duplicate files (``Baso/2`` = ``Baso/50``) are kept once. Cropped (Tavakoli et al.):
``Train/`` and ``Test/`` image folders with ``Train.json`` and ``Test.json`` mapping each file
name to 1=neutrophil, 2=lymphocyte, 3=monocyte, 4=eosinophil, 5=basophil.

As an evaluation set all images count; trained on, frames split 64/24/12 and the cropped
distribution's Train is split 90/10 into train/val with Test as test.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

from pipeline.classes import UnknownClassError, canonical_class
from pipeline.data.records import (
    IMAGE_SUFFIXES,
    Dataset,
    DatasetLayoutError,
    Record,
    classes_of,
)
from pipeline.data.registry import register_adapter
from pipeline.data.splits import stratified_split

FRAMES = "Main Dataset"
MASKS = "Ground Truth Segmentation"
EXPERT = "areaforexpert1"
UNLABELLED = "mixt"
CROPPED_LABELS = {1: "neutrophil", 2: "lymphocyte", 3: "monocyte", 4: "eosinophil", 5: "basophil"}
SPLIT_SEED = 0
FRACTIONS = {"train": 0.64, "val": 0.24, "test": 0.12}
LAYOUTS = (
    f"{FRAMES}/<Baso|eosi|lymp|mono|neut>/<n>.bmp (LISC as published), or Train/, Test/ with "
    "Train.json and Test.json (the cropped LISC of Tavakoli et al.)"
)


@register_adapter("lisc")
def load_lisc(root: Path) -> Dataset:
    """Either layout, found in ``root`` (or ``root`` being ``Main Dataset`` itself)."""
    if root.name == FRAMES and root.is_dir():
        root = root.parent
    if (root / FRAMES).is_dir():
        return _load_frames(root)
    if (root / "Train.json").is_file() or (root / "Test.json").is_file():
        return _load_cropped(root)
    raise DatasetLayoutError(f"{root} is not a LISC folder: expected {LAYOUTS}")


def _load_frames(root: Path) -> Dataset:
    records, skipped, digests = [], [], {}
    for class_dir in sorted(p for p in (root / FRAMES).iterdir() if p.is_dir()):
        if class_dir.name.lower() == UNLABELLED or class_dir.name.startswith("."):
            continue
        try:
            label = canonical_class(class_dir.name)
        except UnknownClassError as exc:
            raise DatasetLayoutError(f"{class_dir}: {exc}; expected {LAYOUTS}") from exc
        for path in sorted(class_dir.iterdir(), key=_frame_order):
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(rel)
                continue
            digest = hashlib.sha1(path.read_bytes()).hexdigest()
            if digest in digests:
                warnings.warn(
                    f"{root}: {rel} is the same file as {digests[digest]}; kept once", stacklevel=3
                )
                continue
            digests[digest] = rel
            mask = root / MASKS / class_dir.name / EXPERT / f"{path.stem}_expert.bmp"
            mask_id = mask.relative_to(root).as_posix() if mask.is_file() else None
            records.append(Record(rel, label, mask_id))
    if not records:
        raise DatasetLayoutError(f"{root / FRAMES} holds no labelled frames; expected {LAYOUTS}")
    splits = stratified_split(records, FRACTIONS, SPLIT_SEED)
    return Dataset("lisc", root, classes_of(records), splits, skipped)


def _frame_order(path: Path) -> tuple[int, str]:
    """Numbered frames in number order, so of two duplicates the lower number is kept."""
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 30, path.name)


def _load_cropped(root: Path) -> Dataset:
    parts = {}
    for part in ("Train", "Test"):
        index, folder = root / f"{part}.json", root / part
        if not index.is_file() or not folder.is_dir():
            raise DatasetLayoutError(f"{root}: missing {index.name} or {part}/; expected {LAYOUTS}")
        parts[part] = _cropped_records(root, index, folder)
    splits = stratified_split(parts["Train"], {"train": 0.9, "val": 0.1}, SPLIT_SEED)
    splits["test"] = parts["Test"]
    return Dataset("lisc-cropped", root, classes_of(parts["Train"] + parts["Test"]), splits)


def _cropped_records(root: Path, index: Path, folder: Path) -> list[Record]:
    try:
        labels = json.loads(index.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetLayoutError(f"{index}: not a readable JSON file ({exc})") from exc
    if not isinstance(labels, dict):
        raise DatasetLayoutError(f"{index}: expected an object mapping file names to 1..5")
    records = []
    for name, value in sorted(labels.items()):
        if int(value) not in CROPPED_LABELS:
            raise DatasetLayoutError(
                f"{index}: {name} has label {value!r}; expected 1=neutrophil, 2=lymphocyte, "
                "3=monocyte, 4=eosinophil, 5=basophil"
            )
        if not (folder / name).is_file():
            raise DatasetLayoutError(f"{index} lists {name}, which is not in {folder}")
        records.append(
            Record((folder / name).relative_to(root).as_posix(), CROPPED_LABELS[int(value)])
        )
    return records
