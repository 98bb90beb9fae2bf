"""The benchmarks still run against the library they measure (a rename once broke two of them
unnoticed: they are not part of CI otherwise). Tiny CPU runs, seconds each."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHES = (
    "amp_speed",
    "data_path",
    "ensemble_speed",
    "gpu_pack",
    "labelshift",
    "leaderboard_speed",
    "step_memory",
    "throughput",
)
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "pbc-sample"  # the bundled PBC subset


@pytest.mark.parametrize("name", BENCHES)
def test_every_bench_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")


@pytest.mark.parametrize(
    ("name", "argv", "printed"),
    [
        pytest.param("throughput", ["--members", "squeezenet1_1", "--size", "32", "--images",
                     "16", "--batch-size", "8", "--device", "cpu", "--workers", "0"],
                     r"squeezenet1_1", marks=pytest.mark.trains),
        pytest.param("amp_speed", ["--models", "squeezenet1_1", "--size", "32", "--batch-size",
                     "8", "--precisions", "fp32", "--device", "cpu"], r"squeezenet1_1",
                     marks=pytest.mark.trains),
        ("data_path", ["--size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "0",
                       "--limit", "64"], r"images: 64 from .*\nratio zoo / baseline: +\d+\.\dx"),
    ],
)  # fmt: skip
def test_cpu_benches_run_on_the_bundled_sample(
    name: str, argv: list[str], printed: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Each runs and prints what it measured, with its baseline's ratio where it has one."""
    extra = ["--cache-dir", str(tmp_path / "cache")] if name == "amp_speed" else []
    monkeypatch.setattr(sys, "argv", [name, "--data", str(SAMPLE), *argv, *extra])
    importlib.import_module(f"bench.{name}").main()
    assert re.search(printed, capsys.readouterr().out, re.DOTALL)


@pytest.mark.trains  # in child processes, which the guard cannot see
def test_step_memory_measures_both_steps_in_fresh_processes(capsys) -> None:
    from bench import step_memory

    step_memory.main(["--models", "squeezenet1_1", "--size", "32", "--batch-size", "8",
                      "--steps", "1"])  # fmt: skip
    printed = capsys.readouterr().out
    rows = re.findall(r"squeezenet1_1 +(by parts|fused) +(\d+) +\d+\.\d{3}", printed)
    assert [mode for mode, _ in rows] == ["by parts", "fused"]
    assert all(int(peak) > 200 for _, peak in rows)  # a torch process, not the parent's
    assert re.search(r"ratio fused / by parts: peak \d\.\d\dx, step time \d+\.\d\dx", printed)


def test_gpu_pack_round_trip_keeps_names_splits_and_pixels(tmp_path: Path) -> None:
    """What travels to a GPU machine comes back under its original ids, so the versioned split
    still applies; a non-image with an image name travels as it is."""
    import numpy as np
    from PIL import Image

    from bench.gpu_pack import pack, unpack

    src = tmp_path / "src"
    (src / "set" / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(src / "set" / "a" / "x.png")
    Image.fromarray(pixels).save(src / "set" / "a" / "y.jpg", quality=95)
    (src / "set" / "a" / ".DS_1.jpg").write_bytes(b"\x00\x05Bud1 not an image")
    (src / "split.csv").write_text("id,label,split\n", encoding="utf-8")
    pack(src, tmp_path / "packed", size=30, quality=100, workers=1)
    assert sorted(p.name for p in (tmp_path / "packed" / "set" / "a").iterdir()) == [
        ".DS_1.jpg", "x.png.webp", "y.jpg.webp"
    ]  # fmt: skip
    unpack(tmp_path / "packed", tmp_path / "out", workers=1)
    out = tmp_path / "out"
    assert (out / "split.csv").read_text(encoding="utf-8") == "id,label,split\n"
    assert (out / "set" / "a" / ".DS_1.jpg").read_bytes().startswith(b"\x00\x05Bud1")
    with Image.open(out / "set" / "a" / "x.png") as im:
        assert im.format == "PNG" and im.size == (30, 20)  # longest side 30, aspect kept
    with Image.open(out / "set" / "a" / "y.jpg") as im:
        assert im.format == "JPEG" and im.size == (30, 20)


def test_labelshift_scores_the_report_parts(tmp_path: Path, capsys) -> None:
    """Right and confident predictions stay right under EM and BBSE, on every scored set
    (less confident ones can lose Tecom's single basophil in the report part to EM)."""
    import json

    from bench import labelshift
    from pipeline.classes import CLASSES
    from pipeline.runs.submissions import write_submission

    folder = tmp_path / "m-s0"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"member": "m-s0", "kind": "member"}))
    for set_name in ("val", "test", "bccd", "tecom"):
        key = labelshift.answers(set_name).labels
        ids = sorted(key)
        probs = np.full((len(ids), len(CLASSES)), 0.001)
        probs[np.arange(len(ids)), [CLASSES.index(key[i]) for i in ids]] = 0.993
        write_submission(folder / f"{set_name}.csv", ids, probs, CLASSES)
    rows = labelshift.evaluate(folder)
    assert {(r["method"], r["set"]) for r in rows} == {
        (m, s) for m in ("none", "em", "bbse") for s in ("test", "bccd", "tecom")
    }
    assert all(r["acc"] == 1.0 for r in rows)
    assert {r["n"] for r in rows if r["set"] == "bccd"} == {246}


def test_paired_zoos_subtracts_namesakes_seed_by_seed(trained_zoo_copy: Path) -> None:
    """A zoo against itself: every entry is paired with its namesake, and every difference is
    zero."""
    from bench.paired_zoos import paired_between, scores

    long = scores(trained_zoo_copy, None)
    paired = paired_between(long, long.copy(), "again", "cells")
    assert set(paired["name"]) == {"resnet18-fast+30968e", "squeezenet1_1-fast+30968e"}
    assert (paired["pairs"] == 1).all() and (paired["against"] == paired["name"] + "@again").all()
    diffs = paired[[c for c in paired.columns if c.endswith("_diff")]]
    assert diffs.notna().all().all() and (diffs == 0).all().all()
