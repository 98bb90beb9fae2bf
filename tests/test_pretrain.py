"""Self-supervised pretraining: the loss, the weights file and --weights FILE's checks."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from pipeline.commands import pretrain as pretrain_cli
from pipeline.commands import zoo
from pipeline.data import load_dataset
from pipeline.models import create_model, load_catalogue
from pipeline.models.backbone_file import BackboneFileError, load_backbone, save_backbone
from pipeline.training.probe import knn_scores
from pipeline.training.simclr import nt_xent


def test_nt_xent_rewards_views_that_agree() -> None:
    torch.manual_seed(0)
    z = torch.randn(16, 8)
    agree = nt_xent(z, z + 0.01 * torch.randn(16, 8), 0.2)
    disagree = nt_xent(z, torch.randn(16, 8), 0.2)
    assert agree < 0.5 < disagree


def test_knn_probe_scores_the_shared_classes_only() -> None:
    train = torch.eye(3).repeat(4, 1).numpy()
    labels = ["lymphocyte", "neutrophil", "platelet"] * 4
    test = torch.eye(3)[:2].numpy()
    s = knn_scores(train, labels, test, ["lymphocyte", "neutrophil"], k=3)
    assert s == {"n": 2, "accuracy": 1.0, "balanced_accuracy": 1.0}
    with pytest.raises(ValueError, match="share no class"):
        knn_scores(train, labels, test, ["basophil", "basophil"])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, make_tree) -> Path:
    root = tmp_path_factory.mktemp("pretrain")
    make_tree(root / "cells", {"eosinophil": 8, "lymphocyte": 8, "neutrophil": 8}, size=(36, 36))
    make_tree(root / "lab2", {"Lymphocyte": 3, "Neutrophil": 3}, size=(30, 30), seed=7)
    make_tree(root / "unlabelled", {"slide1": 5}, size=(30, 30), seed=50)  # not lab2's
    args = ["--arch", "resnet18", "--dataset", "folder", "--data", str(root / "cells"),
            "--epochs", "1", "--batch-size", "8", "--image-size", "32", "--device", "cpu",
            "--extra", str(root / "unlabelled"), "--eval", f"lab2={root / 'lab2'}",
            "--out", str(root / "out"), "--cache-dir", str(root / "cache"),
            "--no-progress"]  # fmt: skip
    assert pretrain_cli.main(args) == 0
    return root


@pytest.mark.trains
def test_pretrain_writes_weights_and_a_probe(pretrained: Path) -> None:
    weights = pretrained / "out" / "zoo" / "pretrained" / "resnet18-simclr-cells-s0.pt"
    report = json.loads(weights.with_suffix(".json").read_text())
    train = load_dataset("folder", pretrained / "cells").splits["train"]
    assert report["images"] == len(train) + 5  # the training split and the extra folder
    assert report["transductive"] is False
    probed = {(r["backbone"], r["set"]) for r in report["probe"]}
    assert probed == {(b, s) for b in ("random init", "SimCLR") for s in ("val", "lab2")}

    entry = load_catalogue()["resnet18"]
    model, _ = create_model(entry, 3, "none", 32)
    before = model.fc.weight.clone()
    info = load_backbone(model, entry, weights)
    saved = torch.load(weights, weights_only=True)["state_dict"]
    assert torch.equal(model.conv1.weight, saved["conv1.weight"])
    assert torch.equal(model.fc.weight, before)  # the classifier stays the member's own
    assert info["method"] == "simclr"


@pytest.mark.trains
def test_a_mismatched_or_foreign_weights_file_is_a_clear_error(pretrained: Path, tmp_path) -> None:
    weights = pretrained / "out" / "zoo" / "pretrained" / "resnet18-simclr-cells-s0.pt"
    catalogue = load_catalogue()
    other, _ = create_model(catalogue["squeezenet1_1"], 3, "none", 32)
    with pytest.raises(BackboneFileError, match="holds a resnet18 backbone, not squeezenet1_1"):
        load_backbone(other, catalogue["squeezenet1_1"], weights)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    resnet, _ = create_model(catalogue["resnet18"], 3, "none", 32)
    with pytest.raises(BackboneFileError, match="not a weights file"):
        load_backbone(resnet, catalogue["resnet18"], junk)
    wrong = tmp_path / "wrong.pt"
    save_backbone(wrong, catalogue["resnet18"], {"conv1.weight": torch.zeros(1)}, {})
    with pytest.raises(BackboneFileError, match="do not fit"):
        load_backbone(resnet, catalogue["resnet18"], wrong)


@pytest.mark.trains
def test_zoo_fine_tunes_a_member_from_a_pretrained_backbone(pretrained: Path, capsys) -> None:
    weights = pretrained / "out" / "zoo" / "pretrained" / "resnet18-simclr-cells-s0.pt"
    out = pretrained / "zoo-out"
    base = ["--dataset", "folder", "--data", str(pretrained / "cells"), "--image-size", "32",
            "--epochs", "1", "--batch-size", "8", "--recipe", "fast", "--out", str(out),
            "--cache-dir", str(pretrained / "cache"), "--no-progress",
            "--weights", str(weights)]  # fmt: skip
    assert zoo.main([*base, "--models", "resnet18,squeezenet1_1"]) == 2
    assert "holds a resnet18 backbone, not one of squeezenet1_1" in capsys.readouterr().err
    assert not out.exists()  # refused before any work
    assert zoo.main([*base, "--models", "resnet18"]) == 0
    (meta_file,) = (out / "submissions" / "cells").glob("resnet18-*/meta.json")
    meta = json.loads(meta_file.read_text())
    assert meta["weights"] == "file" and meta["weights_file"]["method"] == "simclr"
    assert meta["weights_file"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["transductive"] is False
    assert zoo.main([*base[:-2], "--weights", str(pretrained / "nope.pt"), "--models",
                     "resnet18"]) == 2  # fmt: skip
    assert "no such file" in capsys.readouterr().err


def pretrain_args(root: Path, name: str, *extra: str) -> list[str]:
    return ["--arch", "resnet18", "--dataset", "folder", "--data", str(root / "cells"),
            "--epochs", "1", "--batch-size", "8", "--image-size", "32", "--device", "cpu",
            "--out", str(root / "out"), "--cache-dir", str(root / "cache"), "--no-progress",
            "--output", str(root / f"{name}.pt"), *extra]  # fmt: skip


@pytest.mark.trains
def test_extra_holding_the_data_roots_evaluation_images_is_transductive(
    pretrained: Path, capsys
) -> None:
    """--extra equal to --data holds its validation and test splits, with no --eval given."""
    assert (
        pretrain_cli.main(pretrain_args(pretrained, "own", "--extra", str(pretrained / "cells")))
        == 0
    )
    report = json.loads((pretrained / "own.json").read_text())
    splits = load_dataset("folder", pretrained / "cells").splits
    assert report["transductive"] is True
    assert report["shared"] == {"val": len(splits["val"]), "test": len(splits["test"])}
    assert "transductive: --extra holds" in capsys.readouterr().out


@pytest.mark.trains
def test_training_checks_a_backbones_extra_folders_against_every_evaluation_set(
    pretrained: Path,
) -> None:
    """Copies of lab2's cells, renamed, pretrained on without --eval lab2: the backbone file
    cannot know, but a member scored on lab2 is transductive, with one warning naming it."""
    copies = pretrained / "slides"
    for i, path in enumerate(sorted((pretrained / "lab2").rglob("*.jpg"))[:2]):
        copies.mkdir(exist_ok=True)
        shutil.copy(path, copies / f"cell{i}.jpg")
    assert pretrain_cli.main(pretrain_args(pretrained, "slides", "--extra", str(copies))) == 0
    assert json.loads((pretrained / "slides.json").read_text())["transductive"] is False
    out = pretrained / "zoo-slides"
    args = ["--dataset", "folder", "--data", str(pretrained / "cells"), "--image-size", "32",
            "--epochs", "1", "--batch-size", "8", "--recipe", "fast", "--out", str(out),
            "--cache-dir", str(pretrained / "cache"), "--no-progress", "--models", "resnet18",
            "--weights", str(pretrained / "slides.pt"),
            "--eval", f"lab2={pretrained / 'lab2'}"]  # fmt: skip
    with pytest.warns(UserWarning, match=r"scored on \(2 images of lab2\): the member is transd"):
        assert zoo.main(args) == 0
    (meta_file,) = (out / "submissions" / "cells").glob("resnet18-*/meta.json")
    meta = json.loads(meta_file.read_text())
    assert meta["transductive"] is True
    assert meta["weights_file"]["evaluation_overlap"] == {"lab2": 2}
