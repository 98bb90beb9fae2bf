"""PBC (Acevedo et al. 2020): ``PBC_dataset_normal_DIB/<class>/*.jpg`` with the versioned split."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.records import Dataset, DatasetLayoutError, classes_of, scan_class_folders
from pipeline.data.registry import register_adapter
from pipeline.data.splits import apply_split_file, read_split_file

FOLDER = "PBC_dataset_normal_DIB"
SPLIT_FILE = Path(__file__).resolve().parents[2] / "zoo" / "splits" / "pbc.csv"
SPLIT_SEED = 0
FRACTIONS = {"train": 0.64, "val": 0.24, "test": 0.12}


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
        split_file = root / "split.csv" if (root / "split.csv").is_file() else SPLIT_FILE
    records, skipped = scan_class_folders(root, root / FOLDER)
    splits = apply_split_file(records, read_split_file(split_file), split_file)
    return Dataset("pbc", root, classes_of(records), splits, skipped)


def make_split_file(path: Path, out: Path = SPLIT_FILE) -> None:
    """Write the stratified 64/24/12 split of a PBC download (done once; the file is versioned)."""
    from pipeline.data.splits import stratified_split, write_split_file

    root = find_root(path)
    records, _ = scan_class_folders(root, root / FOLDER)
    write_split_file(out, stratified_split(records, FRACTIONS, SPLIT_SEED))


if __name__ == "__main__":
    import sys

    make_split_file(Path(sys.argv[1]))
