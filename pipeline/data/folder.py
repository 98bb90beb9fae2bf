"""Any ``<class>/<image>`` tree: an evaluation set, or a training set split 64/24/12."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.records import Dataset, classes_of, scan_class_folders
from pipeline.data.registry import register_adapter
from pipeline.data.splits import stratified_split

SPLIT_SEED = 0
FRACTIONS = {"train": 0.64, "val": 0.24, "test": 0.12}


@register_adapter("folder")
def load_folder(root: Path) -> Dataset:
    records, skipped = scan_class_folders(root, root)
    splits = stratified_split(records, FRACTIONS, SPLIT_SEED)
    return Dataset(root.resolve().name, root, classes_of(records), splits, skipped)
