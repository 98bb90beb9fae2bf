"""A tiny zoo end to end: training, outputs, submissions, resume, skip, failures, CLI."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.commands import zoo
from pipeline.data import load_dataset
from pipeline.data.store import ImageStore, image_sets
from pipeline.evaluation.answers import ids_fingerprint
from pipeline.models import engine, load_catalogue
from pipeline.models import weights as weights_api
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.ranking.table import long_table
from pipeline.runs.checkpoint import load_weights
from pipeline.runs.submissions import read_submission
from pipeline.training.member import MemberConfig, MemberPaths, SettingsMismatch, train_member
from pipeline.training.recipes import get_recipe, override

# the recipe zoo_args' flags make, named with the fingerprint of their changes
FAST = override(get_recipe("fast"), {"image_size": 32, "epochs": 1, "batch_size": 8}).name


@pytest.fixture
def run_zoo(tmp_path: Path, zoo_args) -> Callable[..., int]:
    """``run_zoo(data, *extra, **zoo_args_options)``: the zoo into ``tmp_path / "out"``."""
    return lambda data, *extra, **options: zoo.main(
        zoo_args(data, tmp_path / "out", *extra, **options)
    )


@pytest.mark.trains
def test_zoo_end_to_end_writes_members_and_submissions(
    tmp_path, tiny, run_zoo, make_tree, capsys
) -> None:
    make_tree(tmp_path / "other", {"Lymphocyte": 3, "Neutrophil": 4, "Monocyte": 2}, size=(30, 30))
    code = run_zoo(tiny, "--eval", f"other={tmp_path / 'other'}",
                   models="resnet18,squeezenet1_1,googlenet")  # fmt: skip
    assert code == 0
    dataset = load_dataset("folder", tiny)
    for arch in ("resnet18", "squeezenet1_1", "googlenet"):
        member = tmp_path / "out" / "zoo" / "members" / "cells" / f"{arch}-{FAST}-s0"
        subs = tmp_path / "out" / "submissions" / "cells" / f"{arch}-{FAST}-s0"
        assert {p.name for p in member.iterdir()} == {
            "best.safetensors", "history.csv", "metrics.json", "state.json",
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
        assert meta["test_set"] == ids_fingerprint(test.ids)  # the identity of its test set
        metrics = json.loads((member / "metrics.json").read_text())["sets"]
        assert set(metrics) == {"val", "test", "other"}
        # the member knows no monocytes: the 2 are left out, the rest scored over shared classes
        assert metrics["other"]["unscored"] == 2 and metrics["other"]["n"] == 7
        assert metrics["other"]["classes"] == ["lymphocyte", "neutrophil"]
        assert len(pd.read_csv(member / "history.csv")) == 1
    results = pd.read_csv(tmp_path / "out" / "zoo" / "results-cells.csv")
    assert list(results["arch"]) == ["resnet18", "squeezenet1_1", "googlenet"]
    assert set(results["weights"]) == {"none"}
    assert f"resnet18-{FAST}-s0" in capsys.readouterr().out


@pytest.mark.trains
def test_finished_members_are_skipped_unless_forced(tmp_path, tiny, run_zoo, capsys) -> None:
    assert run_zoo(tiny, models="squeezenet1_1") == 0
    best = tmp_path / "out/zoo/members/cells" / f"squeezenet1_1-{FAST}-s0" / "best.safetensors"
    stamp = best.stat().st_mtime_ns
    assert run_zoo(tiny, models="squeezenet1_1") == 0
    assert best.stat().st_mtime_ns == stamp
    results = pd.read_csv(tmp_path / "out" / "zoo" / "results-cells.csv")
    assert results["status"].tolist() == ["skipped (done)"]
    assert run_zoo(tiny, "--force", models="squeezenet1_1") == 0
    assert best.stat().st_mtime_ns != stamp
    stamp = best.stat().st_mtime_ns
    # other recipe values make another member, named by their fingerprint, beside the first
    assert run_zoo(tiny, "--set", "lr=0.1", models="squeezenet1_1") == 0
    fast = override(get_recipe("fast"), {"image_size": 32, "epochs": 1, "batch_size": 8, "lr": 0.1})
    assert fast.name not in (FAST, "fast")
    assert (best.parents[1] / f"squeezenet1_1-{fast.name}-s0" / "best.safetensors").exists()
    assert best.stat().st_mtime_ns == stamp
    # same name, other settings: an error, never a silent skip of the wrong member
    assert run_zoo(tiny, models="squeezenet1_1", weights="auto") == 1
    out = capsys.readouterr().out
    assert "was trained with other settings (weights_requested 'none', now 'auto')" in out
    assert "--force" in out
    assert best.stat().st_mtime_ns == stamp
    state = best.parent / "state.json"
    assert (
        json.loads(state.read_text())["status"] == "done"
        and not (best.parent / "error.txt").exists()
    )


@pytest.mark.trains
def test_seeds_train_one_member_each(tmp_path, tiny, run_zoo) -> None:
    assert run_zoo(tiny, "--seeds", "0,1", models="squeezenet1_1") == 0
    subs = tmp_path / "out" / "submissions" / "cells"
    assert sorted(p.name for p in subs.iterdir()) == [
        f"squeezenet1_1-{FAST}-s0",
        f"squeezenet1_1-{FAST}-s1",
    ]
    p0 = read_submission(subs / f"squeezenet1_1-{FAST}-s0" / "test.csv").probs
    p1 = read_submission(subs / f"squeezenet1_1-{FAST}-s1" / "test.csv").probs
    assert not (p0 == p1).all()


@pytest.mark.trains
def test_failing_member_is_reported_and_the_zoo_goes_on(
    tmp_path, tiny, run_zoo, monkeypatch, capsys
):
    import pipeline.training.member as train_module

    real = train_module.create_model

    def broken(entry, *args, **kwargs):
        if entry.name == "squeezenet1_0":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(entry, *args, **kwargs)

    monkeypatch.setattr(train_module, "create_model", broken)
    assert run_zoo(tiny, models="squeezenet1_0,squeezenet1_1") == 1
    members = tmp_path / "out" / "zoo" / "members" / "cells"
    assert "out of memory" in (members / f"squeezenet1_0-{FAST}-s0" / "error.txt").read_text()
    assert json.loads((members / f"squeezenet1_0-{FAST}-s0" / "state.json").read_text())[
        "status"
    ] == ("failed")
    assert (members / f"squeezenet1_1-{FAST}-s0" / "best.safetensors").exists()
    captured = capsys.readouterr()
    assert f"FAILED squeezenet1_0-{FAST}-s0" in captured.out
    assert f"1 member(s) failed: squeezenet1_0-{FAST}-s0" in captured.err
    # the failed row's empty scores leave the seed a whole number, printed and saved as 0
    results = pd.read_csv(tmp_path / "out" / "zoo" / "results-cells.csv")
    assert results["seed"].tolist() == [0, 0] and results["seed"].dtype == "int64"
    lines = [line.split() for line in captured.out.splitlines()]
    header = next(words for words in lines if words[:1] == ["member"])
    rows = [words for words in lines if words[:1] and words[0].startswith("squeezenet")]
    seed_at = header.index("seed")
    assert [row[seed_at] for row in rows[-2:]] == ["0", "0"]


def test_a_member_never_overwrites_an_upload_of_its_name(tmp_path, tiny, run_zoo, capsys) -> None:
    """An upload saved under a member's name used to become that member (files replaced)."""
    upload = tmp_path / "out" / "submissions" / "cells" / f"squeezenet1_1-{FAST}-s0"
    upload.mkdir(parents=True)
    (upload / "test.csv").write_text("id,lymphocyte\na.jpg,1\n")
    (upload / "meta.json").write_text(json.dumps({"kind": "upload", "name": upload.name}))
    before = {p.name: p.read_bytes() for p in upload.iterdir()}
    assert run_zoo(tiny, "--force", models="squeezenet1_1") == 1
    assert f"{upload} holds an entry of kind 'upload': refusing to write member files" in (
        capsys.readouterr().out
    )
    assert {p.name: p.read_bytes() for p in upload.iterdir()} == before


@pytest.mark.trains
def test_auto_weights_offline_fall_back_and_say_so_without_bars_in_a_log(
    tmp_path, tiny, run_zoo, capsys
):
    """The network is off (conftest): the member starts from random initialisation, the run
    says what it would download and write before, and how to fetch the weights after; stderr
    is no terminal here, so no progress bar writes to it."""
    assert run_zoo(tiny, weights="auto", progress=True) == 0
    out, err = capsys.readouterr()
    assert "ImageNet weights: 1 of 1 missing; 1 to download, 4.96 MB into" in out
    assert "a member whose weights cannot be had starts from random initialisation" in out
    assert "disk: up to 1.45 MB of member weights" in out
    note = next(line for line in out.splitlines() if "ran from random initialisation" in line)
    assert "1 member(s)" in note and "--models squeezenet1_1 --fetch-weights" in note
    meta = json.loads(
        (tmp_path / "out/submissions/cells" / f"squeezenet1_1-{FAST}-s0" / "meta.json").read_text()
    )
    assert (meta["weights"], meta["weights_requested"]) == ("none", "auto")
    assert "it/s" not in err and "img/s" not in err and "\r" not in err


def test_fetch_weights_downloads_or_says_why_not(tmp_path, monkeypatch, capsys) -> None:
    path = weights_api.cache_path(load_catalogue()["squeezenet1_1"])
    assert zoo.main(["--models", "squeezenet1_1,resnet18_gn", "--fetch-weights"]) == 1
    out = capsys.readouterr().out
    assert "squeezenet1_1: FAILED" in out and "network disabled" in out
    assert "resnet18_gn: no published ImageNet weights" in out

    def download(url, dst, hash_prefix, progress):  # a stand-in for the real file
        assert url.endswith(Path(dst).name) and hash_prefix == "b8a52dc0"
        Path(dst).write_bytes(b"weights")

    monkeypatch.setattr(weights_api, "probe", lambda url: None)
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    try:
        assert zoo.main(["--models", "squeezenet1_1", "--fetch-weights"]) == 0
        assert f"squeezenet1_1: {path}" in capsys.readouterr().out and path.exists()
    finally:
        path.unlink(missing_ok=True)  # the tests share one empty torch cache


# the fewest epochs that leave one to resume in a member killed in its second
EPOCHS = 2


def _config(epochs: int = EPOCHS) -> MemberConfig:
    """SqueezeNet 1.1: its dropout draws from torch's random state, so a resumed run equals an
    uninterrupted one only if every epoch's randomness depends on (seed, epoch) alone."""
    recipe = override(get_recipe("fast"), {"epochs": epochs, "batch_size": 8, "image_size": 32})
    return MemberConfig(load_catalogue()["squeezenet1_1"], recipe, 0, "none", "cells", "cpu")


def _train(
    tmp_path: Path,
    data: Path,
    out: str,
    cfg: MemberConfig | None = None,
    train_from: int = 0,
    force: bool = False,
) -> dict:
    """Train ``cfg`` (default: ``_config()``), its training images from ``train_from``."""
    dataset = load_dataset("folder", data)
    store = ImageStore(tmp_path / "cache", workers=1, progress=False)
    store.register(dataset)
    sets = image_sets(dataset)
    sets["train"] = replace(sets["train"], records=sets["train"].records[train_from:])
    return train_member(
        cfg or _config(), sets, dataset.classes, store, tmp_path / out, force, progress=False
    )


def _kill_in_epoch_two(tmp_path: Path, data: Path, out: str, monkeypatch) -> MemberPaths:
    """An EPOCHS-epoch member killed in its second epoch; its paths."""
    real, calls = engine.train_one_epoch, []

    def dies_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, data, out)
    monkeypatch.setattr(engine, "train_one_epoch", real)
    return MemberPaths.of(tmp_path / out, _config())


@pytest.mark.trains
def test_interrupted_run_resumes_to_the_same_result(tmp_path, tiny, monkeypatch) -> None:
    _train(tmp_path, tiny, "straight")
    paths = _kill_in_epoch_two(tmp_path, tiny, "resumed", monkeypatch)
    assert torch.load(paths.last, weights_only=False)["epoch"] == 0
    assert json.loads(paths.state.read_text())["status"] == "running"

    _train(tmp_path, tiny, "resumed")
    straight = MemberPaths.of(tmp_path / "straight", _config())
    assert not paths.last.exists()  # only kept while a member is unfinished
    a = pd.read_csv(straight.history).drop(columns="time_s")
    b = pd.read_csv(paths.history).drop(columns="time_s")
    pd.testing.assert_frame_equal(a, b)
    wa, wb = load_weights(straight.best)[0], load_weights(paths.best)[0]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (paths.submissions / "test.csv").read_text() == (
        straight.submissions / "test.csv"
    ).read_text()


@pytest.mark.trains
def test_a_member_resumed_with_other_settings_is_an_error(tmp_path, tiny, monkeypatch) -> None:
    paths = _kill_in_epoch_two(tmp_path, tiny, "out", monkeypatch)
    resume_state = paths.last.read_bytes()
    # one name, another learning rate (an edited recipe file, a changed named recipe): the old
    # optimiser and schedule would go on under the new settings' name
    cfg = _config()
    faster = replace(cfg, recipe=replace(cfg.recipe, lr=0.5))
    with pytest.raises(SettingsMismatch, match=r"partly trained with other settings \(lr 0.002, "
                       r"now 0.5\); use --force"):  # fmt: skip
        _train(tmp_path, tiny, "out", faster)
    with pytest.raises(SettingsMismatch, match="data_fingerprint"):  # other training images
        _train(tmp_path, tiny, "out", train_from=1)
    assert paths.last.read_bytes() == resume_state  # untouched
    assert json.loads(paths.state.read_text())["status"] == "running"
    # --force starts again at the new rate
    assert _train(tmp_path, tiny, "out", faster, force=True)["status"] == "trained"
    killed = torch.load(io.BytesIO(resume_state), weights_only=False)["history"][0]["lr"]
    assert pd.read_csv(paths.history)["lr"][0] == pytest.approx(killed * 0.5 / 0.002)
    assert json.loads(paths.meta.read_text())["recipe"]["lr"] == 0.5


@pytest.mark.trains
def test_a_run_killed_after_training_only_evaluates_again(tmp_path, tiny, monkeypatch) -> None:
    import pipeline.training.member as train_module

    real = train_module.evaluate_sets

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "evaluate_sets", killed)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, tiny, "out")
    paths = MemberPaths.of(tmp_path / "out", _config())
    assert "optimizer" not in torch.load(paths.last, weights_only=False)  # a small marker
    monkeypatch.setattr(train_module, "evaluate_sets", real)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(engine, "train_one_epoch", no_training)
    result = _train(tmp_path, tiny, "out")
    assert result["status"] == "trained" and len(pd.read_csv(paths.history)) == EPOCHS


def test_cli_errors_are_clear(tmp_path, tiny, capsys) -> None:
    with pytest.raises(SystemExit):
        zoo.main(["--out", str(tmp_path)])
    assert "--all or --models" in capsys.readouterr().err
    # every other bad input: tests/test_cli_errors.py


@pytest.mark.trains
def test_an_unreadable_test_image_is_left_out_of_the_answer_key_too(
    tmp_path, tiny_copy, run_zoo
) -> None:
    broken = sorted(r.id for r in load_dataset("folder", tiny_copy).splits["test"])[0]
    (tiny_copy / broken).write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match=f"unreadable image.*{broken}"):
        assert run_zoo(tiny_copy, models="squeezenet1_1") == 0
    subs = tmp_path / "out" / "submissions" / "cells" / f"squeezenet1_1-{FAST}-s0"
    meta = json.loads((subs / "meta.json").read_text())
    assert (
        meta["sets"]["test"]["unreadable"] == [broken] and "unreadable" not in meta["sets"]["val"]
    )
    test = read_submission(subs / "test.csv")
    assert broken not in test.ids
    # the leaderboard scores the member on the images it could read
    long = long_table(find_entries(tmp_path / "out"), Scorer())
    row = long[long["set"] == "test"].iloc[0]
    assert row["n"] == len(test.ids)
    metrics = json.loads((tmp_path / "out" / "zoo" / "members" / "cells" / subs.name /
                          "metrics.json").read_text())  # fmt: skip
    assert row["accuracy"] == pytest.approx(metrics["sets"]["test"]["accuracy"])


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
    precision = engine.Runtime(device, None, channels_last=True)
    batch = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    x = precision.to_input(batch)
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    expected = (1 - torch.tensor(precision.mean)) / torch.tensor(precision.std)
    assert torch.allclose(x[0, :, 0, 0], expected)
