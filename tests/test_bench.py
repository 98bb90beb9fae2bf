"""The benchmarks still run against the library they measure (a rename once broke two of them
unnoticed: they are not part of CI otherwise). Tiny CPU runs, seconds each."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHES = ("amp_speed", "data_path", "ensemble_speed", "leaderboard_speed", "throughput")
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
