"""Choose/report parts of the cross-lab evaluation sets (BCCD, Zheng 2018 Tecom).

Each lab's labelled images are split once, stratified by class, into a ``choose`` part (30%),
on which a recipe, an adaptation or an ensemble may be chosen, and a ``report`` part (70%), on
which the chosen entry is reported: a "best combination" chosen on the images it is reported on
overstates it. The parts are versioned files, ``zoo/splits/<set folder>.csv`` (``id,label,part``,
ids relative to the set's root as in ``pbc.csv``), written once with

    python -m pipeline.data.parts ../shared/data/bccd ../shared/data/zheng2018_tecom
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from pipeline.data.records import DatasetLayoutError, Record, scan_class_folders
from pipeline.data.splits import (
    apply_split_file,
    read_split_file,
    stratified_split,
    write_split_file,
)
from pipeline.resources import shipped

PARTS = {"choose": 0.3, "report": 0.7}
SEED = 0
COLUMN = "part"
SETS = ("bccd", "zheng2018_tecom")  # the evaluation sets with versioned parts, by folder name


def splits_folder() -> Path:
    """The versioned split and part files (``zoo/splits/``)."""
    return shipped("zoo", "splits")


def make_parts(records: Sequence[Record]) -> dict[str, list[Record]]:
    """The stratified, seeded 30/70 choose/report split of a set's records."""
    return stratified_split(records, PARTS, SEED)


def part_file(root: Path) -> Path:
    """The versioned parts file of the set in ``root`` (named by its folder)."""
    name = Path(root).resolve().name
    if name not in SETS:
        raise DatasetLayoutError(
            f"{root}: no versioned choose/report parts for a set named {name!r}; there are "
            f"parts for {', '.join(SETS)} in {splits_folder()}"
        )
    return splits_folder() / f"{name}.csv"


def part_ids(root: str | Path, part: str) -> frozenset[str] | None:
    """The ids of ``part`` (``choose`` or ``report``) of the set in ``root``, read from its
    versioned file alone (no image is opened, so a reference zoo's frozen keys are restricted
    the same way); None for a set without versioned parts."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
    name = Path(root).name
    return _ids_of_parts(name).get(part) if name in SETS else None


def in_part(key: dict[str, str], root: str | Path, part: str) -> dict[str, str]:
    """An answer key (id -> label) of the set in ``root`` restricted to ``part``; whole for a
    set without versioned parts. An id in neither part means another release of the set."""
    ids = part_ids(root, part)
    if ids is None:
        return key
    known = _ids_of_parts(Path(root).name)
    unknown = sorted(i for i in key if not any(i in known[p] for p in PARTS))
    if unknown:
        raise ValueError(
            f"{root}: {len(unknown)} images (first: {unknown[0]}) are in no part of "
            f"{splits_folder() / Path(root).name}.csv; is this the release the parts were made for?"
        )
    return {i: label for i, label in key.items() if i in ids}


@cache
def _ids_of_parts(name: str) -> dict[str, frozenset[str]]:
    rows = read_split_file(splits_folder() / f"{name}.csv", COLUMN)
    return {p: frozenset(i for i, (_, q) in rows.items() if q == p) for p in PARTS}


def set_records(root: Path) -> list[Record]:
    """The records of a ``<class>/<image>`` evaluation set, ids relative to ``root``."""
    return scan_class_folders(root, root)[0]


def evaluation_parts(root: Path, parts: Path | None = None) -> dict[str, list[Record]]:
    """The ``choose`` and ``report`` parts of the evaluation set in ``root``, from its versioned
    file (or ``parts``); an image the file does not know, or labels otherwise, is an error."""
    source = part_file(root) if parts is None else parts
    grouped = apply_split_file(set_records(root), read_split_file(source, COLUMN), source)
    return {name: grouped.get(name, []) for name in PARTS}


def write_parts(root: Path, out: Path | None = None) -> Path:
    """Write the set's parts file (done once; the files are versioned)."""
    path = part_file(root) if out is None else out
    write_split_file(path, make_parts(set_records(root)), COLUMN)
    return path


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(write_parts(Path(folder)))
