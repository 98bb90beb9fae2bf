"""The benchmarks still run against the library they measure (a rename once broke two of them
unnoticed: they are not part of CI otherwise). Tiny CPU runs, seconds each."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHES = (
    "amp_speed",
    "data_path",
    "ensemble_speed",
    "labelshift",
    "leaderboard_speed",
    "throughput",
)
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "pbc-sample"  # the bundled PBC subset


@pytest.mark.parametrize("name", BENCHES)
def test_every_bench_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("throughput", ["--members", "squeezenet1_1", "--size", "32", "--images", "16",
                        "--batch-size", "8", "--device", "cpu", "--workers", "0"]),
        ("amp_speed", ["--models", "squeezenet1_1", "--size", "32", "--batch-size", "8",
                       "--precisions", "fp32", "--device", "cpu"]),
        ("data_path", ["--size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "0",
                       "--limit", "64"]),
    ],
)  # fmt: skip
def test_cpu_benches_run_on_the_bundled_sample(
    name: str, argv: list[str], tmp_path: Path, monkeypatch, capsys
) -> None:
    extra = ["--cache-dir", str(tmp_path / "cache")] if name == "amp_speed" else []
    monkeypatch.setattr(sys, "argv", [name, "--data", str(SAMPLE), *argv, *extra])
    importlib.import_module(f"bench.{name}").main()
    assert "squeezenet1_1" in capsys.readouterr().out or name == "data_path"


def test_labelshift_scores_the_report_parts(tmp_path: Path, capsys) -> None:
    """Right and confident predictions stay right under EM and BBSE, on every scored set
    (less confident ones can lose Tecom's single basophil in the report part to EM)."""
    import json

    from bench import labelshift
    from pipeline.classes import CLASSES
    from pipeline.submissions import write_submission

    folder = tmp_path / "m-s0"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"member": "m-s0", "kind": "member"}))
    for set_name in ("val", "test", "bccd", "tecom"):
        key, _ = labelshift.answers(set_name)
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
