"""Scoring cross-lab sets on their choose/report parts, and differences paired by seed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from pipeline.commands import leaderboard as cli
from pipeline.data.parts import in_part, part_ids, splits_folder
from pipeline.data.splits import read_split_file
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.ranking.paired import paired_differences
from pipeline.ranking.table import long_table, ranked_table
from pipeline.runs.submissions import read_submission

APP = str(Path(__file__).resolve().parents[1] / "leaderboard" / "app.py")
BCCD = read_split_file(splits_folder() / "bccd.csv", "part")


def bccd_copy(root: Path, per_class: int = 4) -> dict[str, str]:
    """A folder named ``bccd`` with the first ``per_class`` real ids of each class of the
    versioned parts file (noise pixels): id -> part."""
    picked: dict[str, str] = {}
    seen: dict[str, int] = {}
    for i, (label, part) in BCCD.items():
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            picked[i] = part
            (root / i).parent.mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(len(picked)).integers(0, 255, (12, 12, 3), np.uint8)
            Image.fromarray(pixels).save(root / i)
    return picked


@pytest.fixture
def seeded(tmp_path: Path, make_tree, fake_member) -> tuple[Path, dict[str, str]]:
    """Three seeds of `a-fast` (60% right) and of `b-fast` (90% across labs), and one seed of
    `c-fast`, scored on a small copy of BCCD."""
    make_tree(tmp_path / "cells", {"lymphocyte": 20, "neutrophil": 20, "eosinophil": 20})
    picked = bccd_copy(tmp_path / "bccd")
    cells, bccd = tmp_path / "cells", tmp_path / "bccd"
    sets = {"val": (cells, "val"), "test": (cells, "test"), "bccd": (bccd, None)}
    out = tmp_path / "out"
    for seed in range(3):
        fake_member(out, "pbc", f"a-fast-s{seed}", sets, 0.6, seed=seed)
        fake_member(out, "pbc", f"b-fast-s{seed}", sets, {"val": 0.6, "test": 0.6, "bccd": 0.9},
                    seed=seed + 10, meta={"seed": seed})  # fmt: skip
    fake_member(out, "pbc", "c-fast-s1", sets, 0.5, seed=1)
    return out, picked


def test_parts_restrict_a_key_by_the_set_folder_name_alone(tmp_path: Path) -> None:
    report = part_ids(tmp_path / "bccd", "report")
    assert report is not None and len(report) == 246
    assert part_ids(tmp_path / "lisc-sample", "report") is None  # no versioned parts: whole
    key = {i: label for i, (label, _) in list(BCCD.items())[:20]}
    kept = in_part(key, "/anywhere/bccd", "choose")
    assert set(kept) == {i for i in key if BCCD[i][1] == "choose"} and kept
    assert in_part(key, "/anywhere/cells", "choose") == key
    with pytest.raises(ValueError, match=r"1 images \(first: neutrophil/new.jpg\) are in no part"):
        in_part(key | {"neutrophil/new.jpg": "neutrophil"}, "/x/bccd", "report")
    with pytest.raises(ValueError, match="part must be one of choose, report"):
        part_ids("/x/bccd", "test")


def test_a_part_scores_only_its_images_and_leaves_other_sets_whole(seeded) -> None:
    out, picked = seeded
    entries = find_entries(out)
    whole = long_table(entries, Scorer())
    for part in ("choose", "report"):
        long = long_table(entries, Scorer(part=part))
        n = long.groupby("set")["n"].max()
        assert n["bccd"] == sum(p == part for p in picked.values())
        assert n["test"] == whole.groupby("set")["n"].max()["test"]  # PBC-like sets stay whole
    # the report part's accuracy is the share right among the report part's own images
    report = long_table(entries, Scorer(part="report")).set_index(["entry", "set"])
    sub = read_submission(out / "submissions" / "pbc" / "b-fast-s0" / "bccd.csv")
    right = [sub.classes[p.argmax()] == BCCD[i][0] for i, p in zip(sub.ids, sub.probs, strict=True)
             if picked[i] == "report"]  # fmt: skip
    assert report.loc[("b-fast-s0", "bccd"), "accuracy"] == pytest.approx(np.mean(right))


def test_a_set_of_another_release_is_not_scored_on_a_part(seeded) -> None:
    out, _ = seeded
    bccd = next(p for p in (out.parent / "bccd").iterdir())
    Image.new("RGB", (12, 12)).save(bccd / "not_in_the_parts.jpg")
    sub = out / "submissions" / "pbc" / "a-fast-s0" / "bccd.csv"  # covers the new image too
    line = sub.read_text().splitlines()[1].split(",", 1)[1]
    sub.write_text(sub.read_text() + f"{bccd.name}/not_in_the_parts.jpg,{line}\n")
    with pytest.warns(UserWarning, match="bccd.csv: not scored .*are in no part of"):
        long = long_table(find_entries(out), Scorer(part="report"))
    assert not ((long["entry"] == "a-fast-s0") & (long["set"] == "bccd")).any()


def test_differences_are_paired_by_seed(seeded) -> None:
    out, _ = seeded
    long = long_table(find_entries(out), Scorer(part="report"))
    paired = paired_differences(long, "pbc", "a-fast").set_index("name")
    assert paired.loc["b-fast", "pairs"] == 3 and paired.loc["c-fast", "pairs"] == 1
    by_seed = long.set_index(["name", "set", "seed"])["accuracy"]
    diffs = [by_seed["b-fast", "bccd", s] - by_seed["a-fast", "bccd", s] for s in range(3)]
    assert paired.loc["b-fast", "bccd_acc_diff"] == pytest.approx(np.mean(diffs))
    half = 4.302653 * np.std(diffs, ddof=1) / np.sqrt(3)
    assert paired.loc["b-fast", "bccd_acc_ci95"] == pytest.approx(half, rel=1e-5)
    assert np.isnan(paired.loc["c-fast", "test_acc_ci95"])  # one pair: no interval
    with pytest.raises(ValueError, match="--against 'z-fast': no entry of that name"):
        paired_differences(long, "pbc", "z-fast")


def test_cli_prints_the_part_and_the_paired_table(seeded, capsys) -> None:
    out, _ = seeded
    assert cli.main(["--out", str(out), "--part", "report", "--against", "a-fast"]) == 0
    printed = capsys.readouterr().out
    assert "### pbc, cross-lab sets with parts on their report part" in printed
    assert "### pbc: minus a-fast, paired by seed" in printed
    assert "| b-fast | 3 |" in printed
    assert cli.main(["--out", str(out), "--against", "nope"]) == 2
    assert "--against 'nope': no entry of that name" in capsys.readouterr().err


def test_the_board_scores_a_part_when_asked(seeded, monkeypatch) -> None:
    out, _ = seeded
    monkeypatch.setenv("WBCZOO_OUT", str(out))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])  # see the app tests
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    at.segmented_control(key="preset").set_value("all").run()

    def shown() -> dict[str, float]:
        return dict(zip(at.dataframe[0].value["name"], at.dataframe[0].value["bccd_acc"],
                        strict=True))  # fmt: skip

    assert shown()["b-fast"] == pytest.approx(100 * board_of(out, None).loc["b-fast", "bccd_acc"])
    at.radio(key="part").set_value("report part (70%)").run()
    assert not at.exception, [e.message for e in at.exception]
    report = board_of(out, "report")
    assert shown()["b-fast"] == pytest.approx(100 * report.loc["b-fast", "bccd_acc"])
    assert report.loc["b-fast", "bccd_acc"] != board_of(out, None).loc["b-fast", "bccd_acc"]
    assert "scored on their **report part** only" in " ".join(c.value for c in at.caption)


def board_of(out: Path, part: str | None) -> pd.DataFrame:
    return ranked_table(long_table(find_entries(out), Scorer(part=part)), "pbc").set_index("name")
