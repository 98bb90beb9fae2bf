"""A tiny zoo end to end: training, outputs, submissions, resume, skip, failures, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline import engine, zoo
from pipeline.data import load_dataset
from pipeline.data.store import ImageStore, image_sets
from pipeline.models import load_catalogue
from pipeline.recipes import get_recipe, override
from pipeline.submissions import read_submission
from pipeline.train import MemberConfig, MemberPaths, train_member

COUNTS = {"basophil": 16, "lymphocyte": 16, "neutrophil": 16}


@pytest.fixture
def tiny(tmp_path: Path, make_tree) -> Path:
    """A 3-class folder dataset of 32 px images (split 64/24/12 by the folder adapter)."""
    make_tree(tmp_path / "cells", COUNTS, size=(40, 36))
    return tmp_path / "cells"


def run_zoo(tmp_path: Path, data: Path, *extra: str) -> int:
    return zoo.main(
        [
            "--dataset", "folder", "--data", str(data), "--weights", "none",
            "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--recipe", "fast",
            "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
            "--no-progress", *extra,
        ]
    )  # fmt: skip


def test_zoo_end_to_end_writes_members_and_submissions(tmp_path, tiny, make_tree, capsys) -> None:
    make_tree(tmp_path / "other", {"Lymphocyte": 3, "Neutrophil": 4, "Monocyte": 2}, size=(30, 30))
    code = run_zoo(
        tmp_path, tiny, "--models", "resnet18,squeezenet1_1,googlenet", "--eval",
        f"other={tmp_path / 'other'}",
    )  # fmt: skip
    assert code == 0
    dataset = load_dataset("folder", tiny)
    for arch in ("resnet18", "squeezenet1_1", "googlenet"):
        member = tmp_path / "out" / "zoo" / "members" / "cells" / f"{arch}-fast-s0"
        subs = tmp_path / "out" / "submissions" / "cells" / f"{arch}-fast-s0"
        assert {p.name for p in member.iterdir()} == {
            "best.pt", "history.csv", "metrics.json", "state.json",
        }  # fmt: skip
        assert {p.name for p in subs.iterdir()} == {"meta.json", "val.csv", "test.csv", "other.csv",
                                                    "raw"}  # fmt: skip
        assert {p.name for p in (subs / "raw").iterdir()} == {"val.csv", "test.csv", "other.csv"}
        test = read_submission(subs / "test.csv")
        assert test.ids == sorted(r.id for r in dataset.splits["test"])
        assert test.classes == ("basophil", "lymphocyte", "neutrophil")
        other = read_submission(subs / "other.csv")
        assert len(other.ids) == 9  # every image is predicted, monocytes included
        frame = pd.read_csv(subs / "test.csv")
        assert list(frame.columns) == ["id", "basophil", "lymphocyte", "neutrophil", "pred"]
        assert "label" not in frame.columns
        meta = json.loads((subs / "meta.json").read_text())
        assert meta["weights"] == "none" and meta["image_size"] == 32 and meta["seed"] == 0
        assert meta["params"] > 0 and meta["gmacs"] > 0 and meta["recipe"]["epochs"] == 1
        assert {"torch", "torchvision", "timm", "albumentations"} <= set(meta["versions"])
        metrics = json.loads((member / "metrics.json").read_text())["sets"]
        assert set(metrics) == {"val", "test", "other"}
        # the member knows no monocytes: the 2 are left out, the rest scored over shared classes
        assert metrics["other"]["unscored"] == 2 and metrics["other"]["n"] == 7
        assert metrics["other"]["classes"] == ["lymphocyte", "neutrophil"]
        assert len(pd.read_csv(member / "history.csv")) == 1
    results = pd.read_csv(tmp_path / "out" / "zoo" / "results-cells.csv")
    assert list(results["arch"]) == ["resnet18", "squeezenet1_1", "googlenet"]
    assert "resnet18-fast-s0" in capsys.readouterr().out


def test_finished_members_are_skipped_unless_forced(tmp_path, tiny, capsys) -> None:
    assert run_zoo(tmp_path, tiny, "--models", "squeezenet1_1") == 0
    best = tmp_path / "out" / "zoo" / "members" / "cells" / "squeezenet1_1-fast-s0" / "best.pt"
    stamp = best.stat().st_mtime_ns
    assert run_zoo(tmp_path, tiny, "--models", "squeezenet1_1") == 0
    assert best.stat().st_mtime_ns == stamp
    results = pd.read_csv(tmp_path / "out" / "zoo" / "results-cells.csv")
    assert results["status"].tolist() == ["skipped (done)"]
    assert run_zoo(tmp_path, tiny, "--models", "squeezenet1_1", "--force") == 0
    assert best.stat().st_mtime_ns != stamp
    stamp = best.stat().st_mtime_ns
    # same name, other settings: an error, never a silent skip of the wrong member
    assert run_zoo(tmp_path, tiny, "--models", "squeezenet1_1", "--lr", "0.1") == 1
    assert "trained with other recipe" in capsys.readouterr().out
    assert best.stat().st_mtime_ns == stamp
    state = best.parent / "state.json"
    assert (
        json.loads(state.read_text())["status"] == "done"
        and not (best.parent / "error.txt").exists()
    )


def test_seeds_train_one_member_each(tmp_path, tiny) -> None:
    assert run_zoo(tmp_path, tiny, "--models", "squeezenet1_1", "--seeds", "0,1") == 0
    subs = tmp_path / "out" / "submissions" / "cells"
    assert sorted(p.name for p in subs.iterdir()) == [
        "squeezenet1_1-fast-s0",
        "squeezenet1_1-fast-s1",
    ]
    p0 = read_submission(subs / "squeezenet1_1-fast-s0" / "test.csv").probs
    p1 = read_submission(subs / "squeezenet1_1-fast-s1" / "test.csv").probs
    assert not (p0 == p1).all()


def test_failing_member_is_reported_and_the_zoo_goes_on(tmp_path, tiny, monkeypatch, capsys):
    import pipeline.train as train_module

    real = train_module.create_model

    def broken(entry, *args, **kwargs):
        if entry.name == "squeezenet1_0":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(entry, *args, **kwargs)

    monkeypatch.setattr(train_module, "create_model", broken)
    assert run_zoo(tmp_path, tiny, "--models", "squeezenet1_0,squeezenet1_1") == 1
    members = tmp_path / "out" / "zoo" / "members" / "cells"
    assert "out of memory" in (members / "squeezenet1_0-fast-s0" / "error.txt").read_text()
    assert json.loads((members / "squeezenet1_0-fast-s0" / "state.json").read_text())["status"] == (
        "failed"
    )
    assert (members / "squeezenet1_1-fast-s0" / "best.pt").exists()
    captured = capsys.readouterr()
    assert "FAILED squeezenet1_0-fast-s0" in captured.out
    assert "1 member(s) failed: squeezenet1_0-fast-s0" in captured.err


def _config(epochs: int) -> MemberConfig:
    recipe = override(get_recipe("fast"), {"epochs": epochs, "batch_size": 8, "image_size": 32})
    return MemberConfig(load_catalogue()["resnet18"], recipe, 0, "none", "cells", "cpu")


def _train(tmp_path: Path, data: Path, out: str) -> dict:
    dataset = load_dataset("folder", data)
    store = ImageStore(tmp_path / "cache", workers=1, progress=False)
    store.register(dataset)
    return train_member(
        _config(3), image_sets(dataset), dataset.classes, store, tmp_path / out, progress=False
    )


def test_interrupted_run_resumes_to_the_same_result(tmp_path, tiny, monkeypatch) -> None:
    _train(tmp_path, tiny, "straight")

    real, calls = engine.train_one_epoch, []

    def dies_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, tiny, "resumed")
    paths = MemberPaths.of(tmp_path / "resumed", _config(3))
    assert torch.load(paths.last, weights_only=False)["epoch"] == 0
    assert json.loads(paths.state.read_text())["status"] == "running"

    monkeypatch.setattr(engine, "train_one_epoch", real)
    _train(tmp_path, tiny, "resumed")
    straight = MemberPaths.of(tmp_path / "straight", _config(3))
    assert not paths.last.exists()  # only kept while a member is unfinished
    a = pd.read_csv(straight.history).drop(columns="time_s")
    b = pd.read_csv(paths.history).drop(columns="time_s")
    pd.testing.assert_frame_equal(a, b)
    wa = torch.load(straight.best, weights_only=False)["model"]
    wb = torch.load(paths.best, weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (paths.submissions / "test.csv").read_text() == (
        straight.submissions / "test.csv"
    ).read_text()


def test_a_run_killed_after_training_only_evaluates_again(tmp_path, tiny, monkeypatch) -> None:
    import pipeline.train as train_module

    real = train_module.evaluate_sets

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "evaluate_sets", killed)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, tiny, "out")
    paths = MemberPaths.of(tmp_path / "out", _config(3))
    assert "optimizer" not in torch.load(paths.last, weights_only=False)  # a small marker
    monkeypatch.setattr(train_module, "evaluate_sets", real)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(engine, "train_one_epoch", no_training)
    result = _train(tmp_path, tiny, "out")
    assert result["status"] == "trained" and len(pd.read_csv(paths.history)) == 3


def test_cli_errors_are_clear(tmp_path, tiny, capsys) -> None:
    with pytest.raises(SystemExit):
        zoo.main(["--out", str(tmp_path)])
    assert "--all or --models" in capsys.readouterr().err
    with pytest.raises(KeyError, match="nosuchnet"):
        run_zoo(tmp_path, tiny, "--models", "nosuchnet")
    with pytest.raises(SystemExit, match=r"NAME=\[ADAPTER:\]PATH"):
        run_zoo(tmp_path, tiny, "--models", "resnet18", "--eval", "nopath")
    with pytest.raises(KeyError, match="unknown recipe field 'lr_max'"):
        run_zoo(tmp_path, tiny, "--models", "resnet18", "--set", "lr_max=1")


def test_list_prints_the_catalogue(capsys) -> None:
    assert zoo.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "inception_v3" in out and "efficientnet_v2_l" in out
    assert sum(line.rstrip().endswith("yes") for line in out.splitlines()) == 28


def test_precision_is_fp32_on_cpu_and_normalises_on_device() -> None:
    device = torch.device("cpu")
    assert engine.amp_dtype(device) is None
    assert engine.amp_dtype(device, "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        engine.amp_dtype(device, "fp8")
    precision = engine.Precision(device, None, channels_last=True)
    batch = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    x = precision.to_input(batch)
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    expected = (1 - torch.tensor(precision.mean)) / torch.tensor(precision.std)
    assert torch.allclose(x[0, :, 0, 0], expected)
