"""Raabin-WBC (Kouzehkanan et al. 2022): ``Train/``, ``TestA/``, ``TestB/`` of class folders."""

from __future__ import annotations

from pathlib import Path

from pipeline.classes import ordered
from pipeline.data.records import Dataset, DatasetLayoutError, classes_of, scan_class_folders
from pipeline.data.registry import register_adapter
from pipeline.data.splits import stratified_split

SPLIT_SEED = 0


@register_adapter("raabin")
def load_raabin(root: Path) -> Dataset:
    missing = [name for name in ("Train", "TestA") if not (root / name).is_dir()]
    if missing:
        raise DatasetLayoutError(
            f"{root} is not a Raabin-WBC folder: missing {', '.join(missing)}/ "
            "(expected Train/, TestA/ and optionally TestB/, each with Basophil/ … Neutrophil/)"
        )
    train, skipped = scan_class_folders(root, root / "Train")
    splits = stratified_split(train, {"train": 0.9, "val": 0.1}, SPLIT_SEED)
    splits["test"], more = scan_class_folders(root, root / "TestA")
    skipped += more
    if (root / "TestB").is_dir():
        # TestB holds lymphocytes and neutrophils only; empty folders of other classes are fine
        splits["testb"], more = scan_class_folders(root, root / "TestB", allow_empty=True)
        skipped += more
    # the vocabulary is Train's class folders, so TestA and TestB are scored over all of them
    return Dataset("raabin", root, classes_of(train), splits, skipped)


@register_adapter("raabin-testb")
def load_raabin_testb(root: Path) -> Dataset:
    """Raabin's TestB alone (another microscope and camera): an evaluation set for members
    trained elsewhere, e.g. ``--eval testb=raabin-testb:/data/Raabin-WBC``."""
    raabin = load_raabin(root)
    if "testb" not in raabin.splits:
        raise DatasetLayoutError(f"{root} has no TestB/ folder")
    testb = raabin.splits["testb"]
    # TestB holds lymphocytes and neutrophils only, but its vocabulary is Raabin's: a member that
    # answers "monocyte" there is wrong, not unscored
    classes = ordered([*raabin.classes, *classes_of(testb)])
    return Dataset("raabin-testb", root, classes, {"testb": testb}, raabin.skipped)
