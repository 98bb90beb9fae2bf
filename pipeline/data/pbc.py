"""PBC (Acevedo et al. 2020): ``PBC_dataset_normal_DIB/<class>/*.jpg`` with the versioned split."""

from __future__ import annotations

import warnings
from pathlib import Path

from pipeline.classes import ordered
from pipeline.data.records import Dataset, DatasetLayoutError, classes_of, scan_class_folders
from pipeline.data.registry import register_adapter
from pipeline.data.splits import apply_split_file, read_split_file
from pipeline.resources import shipped

FOLDER = "PBC_dataset_normal_DIB"
SPLIT_SEED = 0
FRACTIONS = {"train": 0.64, "val": 0.24, "test": 0.12}


def versioned_split() -> Path:
    """The versioned PBC split shipped with the pipeline (``zoo/splits/pbc.csv``)."""
    return shipped("zoo", "splits", "pbc.csv")


def find_root(path: Path) -> Path:
    """Accept the folder holding ``PBC_dataset_normal_DIB`` or that folder itself."""
    if (path / FOLDER).is_dir():
        return path
    if path.name == FOLDER and path.is_dir():
        return path.parent
    raise DatasetLayoutError(
        f"{path} is not a PBC dataset: expected {path}/{FOLDER}/<class>/*.jpg "
        "(the layout of the Mendeley Data download)"
    )


@register_adapter("pbc")
def load_pbc(path: Path, split_file: Path | None = None) -> Dataset:
    """Load PBC with the versioned split; a subset that ships its own ``split.csv`` beside
    ``PBC_dataset_normal_DIB`` (such as the bundled sample) uses that instead."""
    root = find_root(path)
    if split_file is None:
        split_file = root / "split.csv" if (root / "split.csv").is_file() else versioned_split()
    records, skipped = scan_class_folders(root, root / FOLDER)
    rows = read_split_file(split_file)
    if split_file == root / "split.csv":
        _warn_if_it_departs(rows, split_file)
    splits = apply_split_file(records, rows, split_file)
    # the vocabulary is the split file's: every split is scored over all of its classes
    classes = ordered([*(label for label, _ in rows.values()), *classes_of(records)])
    return Dataset("pbc", root, classes, splits, skipped)


def _warn_if_it_departs(rows: dict[str, tuple[str, str]], split_file: Path) -> None:
    """A ``split.csv`` that puts any image elsewhere than the versioned split (or lists images
    it does not know) replaces it under the same ``pbc`` tag: say so. A subset that keeps every
    image's split, like the bundled sample, is quiet."""
    official = versioned_split()
    versioned = read_split_file(official)
    departs = sorted(i for i, (_, split) in rows.items() if versioned.get(i, ("", ""))[1] != split)
    if departs:
        warnings.warn(
            f"{split_file} replaces the versioned PBC split {official}: {len(departs)} of its "
            f"{len(rows)} images (e.g. {departs[0]}) are in another split or not in the versioned "
            "one, so its test set is another one and its scores are not comparable with the "
            "versioned split's (the leaderboard ranks them apart by test-set fingerprint); "
            "delete it to use the versioned split",
            stacklevel=3,
        )


def make_split_file(path: Path, out: Path | None = None) -> None:
    """Write the stratified 64/24/12 split of a PBC download to ``out``, by default the versioned
    file (done once)."""
    from pipeline.data.splits import stratified_split, write_split_file

    root = find_root(path)
    records, _ = scan_class_folders(root, root / FOLDER)
    write_split_file(out or versioned_split(), stratified_split(records, FRACTIONS, SPLIT_SEED))


if __name__ == "__main__":
    import sys

    make_split_file(Path(sys.argv[1]))
