"""Stratified splits and the versioned split files that pin everyone to one test set."""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.data.records import DatasetLayoutError, Record
from pipeline.io import write_text


def stratified_split(
    records: Sequence[Record], fractions: dict[str, float], seed: int
) -> dict[str, list[Record]]:
    """Split each class by the given fractions (in their given order), reproducibly.

    Rounding gives each split its share per class; the last split takes the remainder.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    out: dict[str, list[Record]] = {name: [] for name in fractions}
    names = list(fractions)
    for label in sorted({r.label for r in records}):
        members = sorted((r for r in records if r.label == label), key=lambda r: r.id)
        order = rng.permutation(len(members))
        start = 0
        for i, name in enumerate(names):
            stop = (
                len(members)
                if i == len(names) - 1
                else start + round(fractions[name] * len(members))
            )
            out[name].extend(members[j] for j in order[start:stop])
            start = stop
    return {name: sorted(rs, key=lambda r: r.id) for name, rs in out.items()}


def balanced_test_split(
    records: Sequence[Record], fractions: dict[str, float], seed: int
) -> dict[str, list[Record]]:
    """Like ``stratified_split``, but ``test`` holds the same number of images of every class.

    That number is the smallest class's test share (``fractions["test"]`` of its images), so
    accuracy and macro-F1 coincide on test; the other images are split by the remaining
    fractions, stratified.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    if "test" not in fractions:
        raise ValueError(f"a balanced test split needs a 'test' fraction, got {fractions}")
    by_label: dict[str, list[Record]] = {}
    for r in sorted(records, key=lambda r: r.id):
        by_label.setdefault(r.label, []).append(r)
    smallest = min(by_label, key=lambda label: (len(by_label[label]), label))
    per_class = round(fractions["test"] * len(by_label[smallest]))
    if per_class == 0:
        raise DatasetLayoutError(
            f"class {smallest!r} has {len(by_label[smallest])} images: too few for a balanced "
            f"test split with a test fraction of {fractions['test']}"
        )
    rng = np.random.default_rng(seed)
    test: list[Record] = []
    for label in sorted(by_label):
        members = by_label[label]
        test.extend(members[j] for j in rng.permutation(len(members))[:per_class])
    held = {r.id for r in test}
    rest = [r for r in records if r.id not in held]
    others = {
        name: f / (1.0 - fractions["test"]) for name, f in fractions.items() if name != "test"
    }
    splits = stratified_split(rest, others, seed) | {"test": sorted(test, key=lambda r: r.id)}
    return {name: splits[name] for name in fractions}


def write_split_file(path: Path, splits: dict[str, list[Record]], column: str = "split") -> None:
    """``id,label,<column>`` rows sorted by id (``column``: ``split``, or ``part`` for the
    choose/report parts of an evaluation set)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "label", column])
    rows = sorted((r.id, r.label, name) for name, rs in splits.items() for r in rs)
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def read_split_file(path: Path, column: str = "split") -> dict[str, tuple[str, str]]:
    """Map id -> (label, split) (``column`` as in ``write_split_file``)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"id", "label", column} <= set(reader.fieldnames):
            raise DatasetLayoutError(f"{path}: a split file needs the columns id,label,{column}")
        return {row["id"]: (row["label"], row[column]) for row in reader}


def apply_split_file(
    records: Sequence[Record], rows: dict[str, tuple[str, str]], source: Path
) -> dict[str, list[Record]]:
    """Group records by a split file: unknown or relabelled images are errors, absent ones a
    warning."""
    labels = {i: label for i, (label, _) in rows.items()}
    assignment = {i: split for i, (_, split) in rows.items()}
    unknown = [r.id for r in records if r.id not in assignment]
    if unknown:
        raise DatasetLayoutError(
            f"{len(unknown)} images are not in the split file {source} (first: {unknown[0]}); "
            "is this the release of the data the split was made for?"
        )
    mislabelled = [r.id for r in records if labels.get(r.id, r.label) != r.label]
    if mislabelled:
        raise DatasetLayoutError(
            f"{source}: {mislabelled[0]} is labelled differently from its folder"
        )
    absent = set(assignment) - {r.id for r in records}
    if absent:
        warnings.warn(
            f"{len(absent)} of the {len(assignment)} images in {source} are missing from the "
            f"dataset folder (e.g. {min(absent)}): a partial copy gives smaller splits whose "
            "numbers are not comparable with the full dataset's",
            stacklevel=2,
        )
    out: dict[str, list[Record]] = {}
    for r in records:
        out.setdefault(assignment[r.id], []).append(r)
    return out
