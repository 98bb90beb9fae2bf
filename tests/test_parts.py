"""The versioned choose/report parts of the cross-lab evaluation sets (BCCD, Tecom)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from pipeline.data.parts import PARTS, evaluation_parts, part_file, splits_folder, write_parts
from pipeline.data.records import DatasetLayoutError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SIZES = {"bccd": 351, "zheng2018_tecom": 300}


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", SIZES)
def test_committed_parts_are_a_stratified_30_70_split(name: str) -> None:
    path = splits_folder() / f"{name}.csv"
    rows = rows_of(path)
    assert path.read_text().splitlines()[0] == "id,label,part"
    assert len(rows) == SIZES[name] == len({r["id"] for r in rows})
    assert all(r["id"].startswith(f"{r['label']}/") for r in rows)  # relative to the set root
    assert {r["part"] for r in rows} == set(PARTS)
    per_class = Counter(r["label"] for r in rows)
    per_part = Counter((r["label"], r["part"]) for r in rows)
    for label, n in per_class.items():
        for part, fraction in PARTS.items():
            assert abs(per_part[label, part] - fraction * n) <= 0.5 + 1e-9, (label, part)
        assert per_part[label, "report"] >= 1  # every class is reported on


@pytest.mark.parametrize("name", SIZES)
def test_committed_parts_regenerate_from_the_data(name: str, tmp_path: Path) -> None:
    root = SHARED / name
    if not root.is_dir():
        pytest.skip(f"no {name} at {root}")
    fresh = write_parts(root, tmp_path / f"{name}.csv")
    assert fresh.read_bytes() == part_file(root).read_bytes()
    parts = evaluation_parts(root)
    choose, report = ({r.id for r in parts[p]} for p in ("choose", "report"))
    assert not choose & report and len(choose | report) == SIZES[name]


def test_parts_of_a_set_follow_its_file_and_refuse_other_images(tmp_path: Path, make_tree) -> None:
    root = tmp_path / "bccd"
    make_tree(root, {"neutrophil": 10, "lymphocyte": 4, "basophil": 1})
    parts_file = write_parts(root, tmp_path / "parts.csv")
    parts = evaluation_parts(root, parts_file)
    counts = {p: Counter(r.label for r in rs) for p, rs in parts.items()}
    assert counts == {
        "choose": {"neutrophil": 3, "lymphocyte": 1},
        "report": {"neutrophil": 7, "lymphocyte": 3, "basophil": 1},
    }
    make_tree(root, {"monocyte": 1}, seed=5)  # an image the parts were not made for
    with pytest.raises(DatasetLayoutError, match="not in the split file"):
        evaluation_parts(root, parts_file)
    with pytest.raises(DatasetLayoutError, match="no versioned choose/report parts"):
        part_file(tmp_path / "lisc-sample")
