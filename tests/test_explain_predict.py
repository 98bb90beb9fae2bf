"""Grad-CAM, embedding maps and predictions of a tiny trained zoo (conftest's trained_zoo)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors
import safetensors.torch
import torch

from pipeline.commands import ensemble as ensemble_cli
from pipeline.commands import explain as explain
from pipeline.commands import predict
from pipeline.evaluation.calibration import apply_temperature
from pipeline.inference.gradcam import member_cam
from pipeline.inference.load import load_member, member_probs
from pipeline.models import create_model, load_catalogue
from pipeline.ranking.collect import find_entries
from pipeline.runs.checkpoint import load_weights, save_weights
from pipeline.runs.submissions import read_submission
from pipeline.training.recipes import get_recipe, override

# the recipe of the trained_zoo fixture's flags: fast, named with the fingerprint of its changes
FAST = override(get_recipe("fast"), {"image_size": 32, "epochs": 1, "batch_size": 8}).name
IMAGES = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "googlenet", "mobilenet_v2"])
def test_gradcam_maps_have_the_input_size_and_are_not_constant(name: str) -> None:
    entry = load_catalogue()[name]
    torch.manual_seed(0)
    model, _ = create_model(entry, 8, "none", 96)
    model.train()  # calibrate BatchNorm: with untouched running statistics activations vanish
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, 96, 96))
    model.eval()
    cam, logits = member_cam(model, entry, torch.rand(2, 3, 96, 96))
    assert cam.shape == (2, 96, 96) and logits.shape == (2, 8)
    assert cam.min() >= 0 and cam.max() <= 1
    assert (cam.flatten(1).std(1) > 0.01).all()


def test_explain_writes_gradcam_and_tsne(trained_zoo: Path, trained_zoo_copy: Path, capsys) -> None:
    out = trained_zoo_copy
    base = ["--member", f"resnet18-{FAST}-s0", "--out", str(out)]
    assert explain.main([*base, "gradcam", "--mistakes-on", "val", "-n", "4"]) == 0
    folder = out / "zoo" / "explain" / "cells" / f"resnet18-{FAST}-s0"
    if "makes no mistake" not in capsys.readouterr().out:
        assert (folder / "gradcam-val.png").stat().st_size > 1000
    image = next((trained_zoo / "cells" / "lymphocyte").iterdir())
    assert explain.main([*base, "gradcam", "--images", str(image), "--layer", "layer3"]) == 0
    assert (folder / "gradcam-images.png").stat().st_size > 1000
    assert explain.main([*base, "tsne", "--per-set", "6"]) == 0
    coords = pd.read_csv(folder / "tsne.csv")
    assert set(coords["set"]) == {"test", "lab2"} and len(coords) == 3 + 6  # test: 1 per class
    assert coords[["x", "y"]].notna().all().all() and (folder / "tsne.png").exists()
    capsys.readouterr()
    assert explain.main([*base, "tsne", "--sets", "nope"]) == 2
    assert f"error: resnet18-{FAST}-s0 has no set 'nope'" in capsys.readouterr().err


def test_predict_a_folder_with_a_corrupt_file(trained_zoo: Path, tmp_path: Path, capsys) -> None:
    images = tmp_path / "slide"
    shutil.copytree(trained_zoo / "cells" / "eosinophil", images)
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    csv = tmp_path / "pred.csv"
    args = [
        "--member",
        f"squeezenet1_1-{FAST}-s0",
        "--out",
        str(trained_zoo / "out"),
        "--csv",
        str(csv),
    ]
    assert predict.main([*args, str(images)]) == 0
    rows = pd.read_csv(csv)
    assert len(rows) == 12 and "broken.jpg" not in " ".join(rows["file"])
    assert list(rows.columns) == ["file", "class", "eosinophil", "lymphocyte", "neutrophil"]
    assert rows[["eosinophil", "lymphocyte", "neutrophil"]].sum(axis=1).round(4).eq(1).all()
    counts = pd.read_csv(tmp_path / "pred-counts.csv")
    assert counts["count"].sum() == 12 and counts["percent"].sum() == pytest.approx(100)
    assert "broken.jpg" in capsys.readouterr().err


def test_predict_with_a_saved_ensemble(trained_zoo: Path, tmp_path: Path, capsys) -> None:
    csv = tmp_path / "pred.csv"
    image = next((trained_zoo / "cells" / "neutrophil").iterdir())
    assert predict.main(["--ensemble", "ens-soft-all", "--out", str(trained_zoo / "out"),
                         "--csv", str(csv), str(image)]) == 0  # fmt: skip
    assert len(pd.read_csv(csv)) == 1
    assert predict.main(["--member", "nobody", "--out", str(trained_zoo / "out"), str(image)]) == 2
    assert "error: no member or ensemble 'nobody'" in capsys.readouterr().err


def test_predict_a_stacked_ensemble_from_another_folder(
    trained_zoo: Path, trained_zoo_copy: Path, tmp_path: Path, monkeypatch
) -> None:
    """A stacker built with a relative --out is found from any working folder: it was once
    saved by a path relative to the folder it was built in."""
    monkeypatch.chdir(trained_zoo_copy.parent)
    assert ensemble_cli.main(["--out", "out", "--method", "stack", "--top", "0"]) == 0
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "pred.csv"
    image = next((trained_zoo / "cells" / "neutrophil").iterdir())
    assert predict.main(["--ensemble", "ens-stack-all", "--out", str(trained_zoo_copy),
                         "--csv", str(csv), str(image)]) == 0  # fmt: skip
    assert len(pd.read_csv(csv)) == 1


def test_differential_flags_rare_classes_and_gives_wilson_intervals() -> None:
    table = predict.differential(["a"] * 97 + ["b"] * 3, ("a", "b", "c"))
    a, b, c = table.to_dict("records")
    assert (a["count"], a["percent"], a["flag"]) == (97, 97.0, "")
    assert b["flag"].startswith("rare") and c["count"] == 0 and c["flag"].startswith("rare")
    assert b["ci95_low"] < 3 < b["ci95_high"] and c["ci95_low"] == 0 and c["ci95_high"] > 0


def test_member_weights_are_half_on_disk_and_predict_as_in_full_precision(tmp_path) -> None:
    entry = load_catalogue()["resnet18"]
    torch.manual_seed(0)
    model, _ = create_model(entry, 8, "none", 32)
    model.train()  # calibrate BatchNorm, so its statistics are not the trivial 0 and 1
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, 32, 32))
    model.eval().to(memory_format=torch.channels_last)  # as the fast recipe trains
    path = tmp_path / "best.safetensors"
    save_weights(path, model, 7)
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert f.get_tensor("conv1.weight").dtype == torch.float16
        assert f.get_tensor("bn1.running_var").dtype == torch.float32  # buffers stay full
    full = tmp_path / "full.pt"
    torch.save(model.state_dict(), full)
    assert path.stat().st_size < 0.55 * full.stat().st_size
    state, epoch = load_weights(path)
    assert epoch == 7 and state["conv1.weight"].dtype == torch.float32
    restored, _ = create_model(entry, 8, "none", 32)
    restored.load_state_dict(state)
    restored.eval()
    x = torch.rand(16, 3, 32, 32)
    with torch.no_grad():
        p, q = model(x).softmax(1), restored(x).softmax(1)
    assert all(
        v.dtype == torch.float32 for v in restored.state_dict().values() if v.is_floating_point()
    )
    assert (p - q).abs().max() < 2e-3 and torch.equal(p.argmax(1), q.argmax(1))
    other = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="holds no member weights"):
        load_weights(other)


def test_members_saved_before_safetensors_still_load(trained_zoo_copy: Path) -> None:
    out = trained_zoo_copy
    folder = out / "zoo" / "members" / "cells" / f"squeezenet1_1-{FAST}-s0"
    new = member_probs(load_member(out, f"squeezenet1_1-{FAST}-s0"), IMAGES)
    state, epoch = load_weights(folder / "best.safetensors")
    torch.save({"model": state, "epoch": epoch}, folder / "best.pt")  # the old format
    (folder / "best.safetensors").unlink()
    old = member_probs(load_member(out, f"squeezenet1_1-{FAST}-s0"), IMAGES)
    np.testing.assert_allclose(old, new, atol=1e-6)


def test_training_calibrates_on_validation_and_keeps_the_raw_submissions(trained_zoo: Path) -> None:
    out = trained_zoo / "out"
    folder = out / "submissions" / "cells" / f"resnet18-{FAST}-s0"
    meta = json.loads((folder / "meta.json").read_text())
    t = meta["calibration"]["temperature"]
    assert meta["calibration"]["fitted_on"] == "val" and t > 0
    for set_name in ("val", "test", "lab2"):
        raw = read_submission(folder / "raw" / f"{set_name}.csv")
        calibrated = read_submission(folder / f"{set_name}.csv")
        assert calibrated.ids == raw.ids
        np.testing.assert_allclose(calibrated.probs, apply_temperature(raw.probs, t), atol=1e-5)
    metrics = json.loads((out / "zoo" / "members" / "cells" / folder.name / "metrics.json")
                         .read_text())  # fmt: skip
    report = metrics["sets"]["lab2"]["calibration"]
    assert {"ece_raw", "ece", "acc_at_90", "acc_at_80", "reliability"} <= set(report)
    assert report["n"] == 8 and "test_ece" in metrics["summary"]
    # raw/ is a subfolder: the leaderboard and the ensembler see the calibrated sets only
    entry = next(e for e in find_entries(out) if e.name == folder.name)
    assert set(entry.files) == {"val", "test", "lab2"}


def test_predict_sends_the_least_confident_cells_to_review(
    trained_zoo: Path, tmp_path: Path
) -> None:
    csv = tmp_path / "pred.csv"
    base = [
        "--member",
        f"squeezenet1_1-{FAST}-s0",
        "--out",
        str(trained_zoo / "out"),
        "--csv",
        str(csv),
    ]
    images = str(trained_zoo / "cells" / "eosinophil")  # 12 cells
    assert predict.main([*base, "--coverage", "0.75", images]) == 0
    rows = pd.read_csv(csv)
    assert rows["review"].sum() == 3
    assert (
        rows.loc[rows["review"], "confidence"].max()
        <= rows.loc[~rows["review"], "confidence"].min()
    )
    counts = pd.read_csv(tmp_path / "pred-counts.csv")
    cells = counts[counts["class"] != "(review)"]
    assert cells["count"].sum() == 9 and cells["percent"].sum() == pytest.approx(100)
    assert counts.loc[counts["class"] == "(review)", "count"].item() == 3
    threshold = float(rows["confidence"].median())
    assert predict.main([*base, "--review-below", str(threshold), images]) == 0
    rows = pd.read_csv(csv)
    assert (rows["review"] == (rows["confidence"] < threshold)).all()
    # the uncalibrated probabilities are the same cells at temperature 1
    assert predict.main([*base, "--uncalibrated", images]) == 0
    raw = pd.read_csv(csv)[["eosinophil", "lymphocyte", "neutrophil"]].to_numpy()
    meta = json.loads((trained_zoo / "out" / "submissions" / "cells" / f"squeezenet1_1-{FAST}-s0"
                       / "meta.json").read_text())  # fmt: skip
    calibrated = rows[["eosinophil", "lymphocyte", "neutrophil"]].to_numpy()
    np.testing.assert_allclose(
        apply_temperature(raw, meta["calibration"]["temperature"]), calibrated, atol=1e-4
    )


@pytest.mark.parametrize("option", [["--review-below", "1.5"], ["--coverage", "0"],
                                    ["--coverage", "x"], ["--coverage", "0.5", "--review-below",
                                                          "0.5"]])  # fmt: skip
def test_predict_rejects_a_bad_review_option(trained_zoo: Path, option: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        predict.main(["--member", f"squeezenet1_1-{FAST}-s0", "--out", str(trained_zoo / "out"),
                      *option, str(trained_zoo / "cells")])  # fmt: skip
    assert exc.value.code == 2 and option[0] in capsys.readouterr().err
