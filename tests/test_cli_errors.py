"""Bad input to every command: one line on stderr, exit code 2, nothing written to --out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.commands import cropsheet, predict, tune, zoo
from pipeline.commands import ensemble as ensemble
from pipeline.commands import explain as explain
from pipeline.models import load_catalogue
from pipeline.training.recipes import get_recipe, override

ROOT = Path(__file__).resolve().parents[1]


def empty_folder(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


# the two below change the copy of the tiny dataset at tmp / "cells" (conftest's tiny_copy)
def unknown_class(tmp: Path) -> Path:
    (tmp / "cells" / "Blast").mkdir()
    (tmp / "cells" / "Blast" / "x.jpg").write_bytes(
        (tmp / "cells" / "basophil" / "img_000.jpg").read_bytes()
    )
    return tmp / "cells"


def empty_class(tmp: Path) -> Path:
    (tmp / "cells" / "monocyte").mkdir()
    return tmp / "cells"


# (extra arguments, or a function of the temporary folder giving the --data folder; a fragment
# of the expected message)
ZOO_CASES: dict[str, tuple[list[str] | Callable[[Path], Path], str]] = {
    "epochs 0": (["--epochs", "0"], "epochs must be at least 1, not 0"),
    "epochs -1": (["--epochs", "-1"], "epochs must be at least 1, not -1"),
    "batch size 0": (["--batch-size", "0"], "batch_size must be at least 1"),
    "lr nan": (["--lr", "nan"], "lr must be a finite number"),
    "lr 0": (["--lr", "0"], "lr must be above 0"),
    "device bogus": (["--device", "bogus"], "--device 'bogus' is not a device"),
    "unknown augmentation": (["--set", "augment=nosuchaug"], "unknown augmentation(s) nosuchaug"),
    "image size 0": (["--image-size", "0"], "image_size must be a positive number"),
    "local workers -1": (["--local-workers", "-1"], "--local-workers must be at least 1"),
    "loader workers -1": (["--loader-workers", "-1"], "--loader-workers must be 0 or more"),
    "unknown adapter": (["--eval", "x=nosuch:/p"], "unknown dataset adapter 'nosuch'"),
    "eval folder missing": (["--eval", "x=/no/such/folder"], "/no/such/folder does not exist"),
    "eval twice": (["--eval", "x=/a", "--eval", "x=/b"], "--eval x is given twice"),
    "eval malformed": (["--eval", "nopath"], "--eval takes NAME=[ADAPTER:]PATH"),
    "unknown member": (["--models", "nosuchnet"], "unknown member(s) nosuchnet"),
    "unknown field": (["--set", "lr_max=1"], "unknown recipe field 'lr_max'"),
    "field not a number": (
        ["--set", "step_size=x"],
        "step_size='x': step_size takes a whole number",
    ),
    "field not a bool": (["--set", "channels_last=maybe"], "channels_last takes true or false"),
    "set without value": (["--set", "epochs"], "--set takes FIELD=VALUE"),
    "bad scheduler": (["--set", "scheduler=cosin"], "scheduler must be one of"),
    "unknown recipe": (["--recipe", "fats"], "unknown recipe 'fats'"),
    "missing recipe file": (["--recipe", "/no/such/recipe.json"], "not a readable recipe file"),
    "bad seeds": (["--seeds", "5-3"], "--seeds range '5-3' is empty"),
    "missing data": (lambda tmp: tmp / "nowhere", "nowhere does not exist"),
    "empty data folder": (empty_folder, "has no class folders"),
    "unknown class folder": (unknown_class, "unknown class name 'Blast'"),
    "empty class folder": (empty_class, "monocyte holds no images"),
}


def assert_one_line(capsys: pytest.CaptureFixture[str], code: int, fragment: str) -> None:
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert fragment in err and "Traceback" not in err


@pytest.mark.parametrize("case", ZOO_CASES)
def test_bad_zoo_input_is_one_line_and_writes_nothing(
    tmp_path, tiny_copy, zoo_args, case, capsys
) -> None:
    given, fragment = ZOO_CASES[case]
    data, extra = (given(tmp_path), []) if callable(given) else (tiny_copy, given)
    assert_one_line(capsys, zoo.main(zoo_args(data, tmp_path / "out", *extra)), fragment)
    assert not (tmp_path / "out").exists()


def test_dataset_without_data_is_one_line(tmp_path, capsys) -> None:
    code = zoo.main(["--models", "resnet18", "--dataset", "lisc", "--out", str(tmp_path / "o")])
    assert_one_line(capsys, code, "--dataset lisc needs --data PATH")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_that_is_not_there_is_one_line(tmp_path, tiny, zoo_args, capsys) -> None:
    code = zoo.main(zoo_args(tiny, tmp_path / "out", "--device", "cuda"))
    assert_one_line(capsys, code, "no CUDA GPU is visible; use --device cpu")
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_left_alone(tmp_path, tiny, zoo_args, capsys) -> None:
    out = tmp_path / "out"
    out.write_text("my notes")
    args = zoo_args(tiny, out / "run", cache=tmp_path / "cache")
    assert_one_line(capsys, zoo.main(args), "is a file, not a folder")
    assert out.read_text() == "my notes"


def test_a_read_only_out_is_one_line(tmp_path, tiny, zoo_args, capsys, monkeypatch) -> None:
    # the tests may run as root, who may write anywhere: the check asks os.access, so ask it
    real = os.access
    out = tmp_path / "readonly"
    out.mkdir()
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != out and real(p, mode))
    args = zoo_args(tiny, out)
    assert_one_line(capsys, zoo.main(args), f"{out} is not writable; choose another --out")
    assert list(out.iterdir()) == []


def test_other_commands_report_bad_input_in_one_line(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    (out / "submissions").mkdir(parents=True)
    image = tmp_path / "x.jpg"
    image.write_bytes(b"")
    cases = [
        (ensemble.main, ["--out", str(out)], "holds 0 datasets"),
        (ensemble.main, ["--out", str(out), "--tag", "cells"], "cells does not exist"),
        (predict.main, ["--member", "nobody", "--out", str(out), str(image)], "'nobody'"),
        (explain.main, ["--member", "nobody", "--out", str(out), "tsne"], "'nobody'"),
        (tune.main, ["--arch", "nosuchnet", "--out", str(out)], "unknown architecture 'nosuchnet'"),
        (cropsheet.main, ["x=nosuch:/p"], "unknown dataset adapter 'nosuch'"),
    ]
    for main, argv, fragment in cases:
        assert_one_line(capsys, main(argv), fragment)
    assert [p.name for p in out.iterdir()] == ["submissions"]


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch) -> None:
    argv = ["--models", "resnet18", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        zoo.main([*argv, "--debug"])
    monkeypatch.setenv("WBCZOO_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        zoo.main(argv)


def test_a_user_error_from_the_shell_has_no_traceback(tmp_path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.zoo", "--models", "resnet18", "--set", "epochs=0",
         "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "WBCZOO_DEBUG": ""},
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr == "error: epochs must be at least 1, not 0\n"
    assert not (tmp_path / "out").exists()


# --- what is checked up front and what is recorded ------------------------------------------


def test_the_preset_banner_gives_the_epochs_actually_used(tmp_path, capsys) -> None:
    code = zoo.main(["--models", "resnet18", "--epochs", "3", "--plan", "--no-progress",
                     "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert code == 0
    banner = capsys.readouterr().out.splitlines()[0]
    assert re.search(r"recipe fast\+\w{6}, 3 epochs", banner)  # fast, its changes fingerprinted


def test_a_size_below_a_members_minimum_is_announced() -> None:
    catalogue = load_catalogue()
    recipe = override(get_recipe("fast"), {"image_size": "7"})
    notes = zoo.size_notes(recipe, [catalogue["resnet18"], catalogue["inception_v3"]])
    assert notes == [
        "image size 7 is below the smallest input of resnet18: trained at 32 px",
        "image size 7 is below the smallest input of inception_v3: trained at 75 px",
    ]
    assert zoo.size_notes(get_recipe("gavas2021"), [catalogue["resnet18"]]) == []


# --- concurrent runs share one results file ----------------------------------------------------


def test_results_of_concurrent_runs_are_merged(tmp_path) -> None:
    out, tag = tmp_path / "out", "cells"
    path = out / "zoo" / f"results-{tag}.csv"
    a = {"member": "a-fast-s0", "arch": "a", "recipe": "fast", "seed": 0, "val_acc": 0.9,
         "status": "trained"}  # fmt: skip
    zoo.record_results(path, [a], out, tag)  # run A trained a
    busy = {"member": "a-fast-s0", "arch": "a", "recipe": "fast", "seed": 0, "status": "busy"}
    b = {**a, "member": "b-fast-s0", "arch": "b", "val_acc": 0.5}
    recorded = zoo.record_results(path, [busy, b], out, tag)  # run B found a busy, trained b
    assert [r["status"] for r in recorded] == ["trained", "trained"]
    table = pd.read_csv(path)
    assert table["member"].tolist() == ["a-fast-s0", "b-fast-s0"]
    assert table["val_acc"].tolist() == [0.9, 0.5]


def test_a_busy_member_finished_meanwhile_is_read_from_its_files(tmp_path) -> None:
    out, tag = tmp_path / "out", "cells"
    member = out / "zoo" / "members" / tag / "a-fast-s0"
    member.mkdir(parents=True)
    (member / "state.json").write_text('{"status": "done"}')
    (member / "metrics.json").write_text(
        '{"summary": {"member": "a-fast-s0", "arch": "a", "seed": 0, "val_acc": 0.9}}'
    )
    busy = {"member": "a-fast-s0", "arch": "a", "recipe": "fast", "seed": 0, "status": "busy"}
    path = out / "zoo" / f"results-{tag}.csv"
    (row,) = zoo.record_results(path, [busy], out, tag)
    assert row["status"] == "done (other run)" and row["val_acc"] == 0.9


def test_a_damaged_results_file_is_replaced_with_a_warning(tmp_path) -> None:
    out, tag = tmp_path / "out", "cells"
    path = out / "zoo" / f"results-{tag}.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00garbage")
    row = {"member": "a-fast-s0", "arch": "a", "recipe": "fast", "seed": 0, "status": "trained"}
    with pytest.warns(UserWarning, match="results-cells.csv: unreadable"):
        zoo.record_results(path, [row], out, tag)
    assert pd.read_csv(path)["member"].tolist() == ["a-fast-s0"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_index_beyond_the_visible_ones_is_one_line(tmp_path, tiny, zoo_args, capsys) -> None:
    code = zoo.main(zoo_args(tiny, tmp_path / "out", "--device", "cuda:99"))
    assert_one_line(capsys, code, "--device cuda:99: only")
    assert not (tmp_path / "out").exists()
