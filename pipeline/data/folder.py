"""Any ``<class>/<image>`` tree: an evaluation set, or a training set split 64/24/12."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from pipeline.data.records import Dataset, classes_of, scan_class_folders
from pipeline.data.registry import register_adapter
from pipeline.data.splits import balanced_test_split, stratified_split

SPLIT_SEED = 0
FRACTIONS = {"train": 0.64, "val": 0.24, "test": 0.12}


@register_adapter("folder")
def load_folder(root: Path, balanced_test: bool = False) -> Dataset:
    """Split stratified 64/24/12; ``balanced_test`` gives every class the same test count
    (see ``balanced_test_split``): the ``folder-balanced`` adapter."""
    records, skipped = scan_class_folders(root, root)
    split = balanced_test_split if balanced_test else stratified_split
    splits = split(records, FRACTIONS, SPLIT_SEED)
    return Dataset(root.resolve().name, root, classes_of(records), splits, skipped)


# A test split with as many images of every class as of the rarest (accuracy = balanced
# accuracy on test): its own adapter name, so that answer keys are rebuilt with the same split.
register_adapter("folder-balanced")(partial(load_folder, balanced_test=True))
