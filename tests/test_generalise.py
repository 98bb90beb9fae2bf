"""Generalisation without target data: MixStyle, RandConv, and the lr of networks without norm."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch

from pipeline.commands import zoo
from pipeline.inference import onnx_bundle
from pipeline.inference.load import load_member, member_probs
from pipeline.models import create_model, load_catalogue
from pipeline.models.mixstyle import MixStyle, MixStyleError, add_mixstyle, insertion_points
from pipeline.runs.checkpoint import WEIGHTS_FILE, load_weights
from pipeline.runs.recipe import RecipeError
from pipeline.training.gpu_augment import GpuAugment, randconv, split_augment
from pipeline.training.member import MemberConfig
from pipeline.training.recipes import for_member, get_recipe, override

CATALOGUE = load_catalogue()


def styled_batch(n: int = 8) -> torch.Tensor:
    """Feature maps whose channels have very different means and spreads per image."""
    g = torch.Generator().manual_seed(0)
    scale = torch.rand(n, 4, 1, 1, generator=g) * 3 + 0.5
    shift = torch.randn(n, 4, 1, 1, generator=g) * 2
    return torch.randn(n, 4, 6, 6, generator=g) * scale + shift


def test_mixstyle_mixes_instance_statistics_in_training_only() -> None:
    x = styled_batch()
    style = MixStyle(p=1.0)
    torch.manual_seed(0)
    y = style.train()(x)
    assert y.shape == x.shape and not torch.allclose(y, x)

    # each image keeps its normalised content; only its per-channel mean and spread move
    def normed(t: torch.Tensor) -> torch.Tensor:
        return (t - t.mean((2, 3), keepdim=True)) / t.std((2, 3), keepdim=True)

    torch.testing.assert_close(normed(y), normed(x), atol=1e-4, rtol=1e-4)
    # ... to a mix of its own and another image's: within the batch's range of statistics
    mu_x, mu_y = x.mean((2, 3)), y.mean((2, 3))
    assert not torch.allclose(mu_x, mu_y, atol=1e-3)
    assert (mu_y >= mu_x.min(0).values - 1e-4).all() and (mu_y <= mu_x.max(0).values + 1e-4).all()
    assert torch.equal(style.eval()(x), x)
    assert torch.equal(MixStyle(p=0.0).train()(x), x)


def test_a_member_with_mixstyle_trains_and_predicts_as_the_plain_member() -> None:
    entry = CATALOGUE["resnet18"]
    torch.manual_seed(0)
    model, _ = create_model(entry, 3, "none", 32)
    keys = list(model.state_dict())
    assert add_mixstyle(model, entry.family, entry.name, p=1.0) == ("layer1", "layer2")
    assert list(model.state_dict()) == keys  # no parameters, no buffers, no new names
    x, y = torch.rand(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    model.train()
    layer1 = []
    handle = model.layer2.register_forward_pre_hook(lambda m, a: layer1.append(a[0]))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    handle.remove()
    assert torch.isfinite(loss) and model.conv1.weight.grad is not None
    plain, _ = create_model(entry, 3, "none", 32)
    plain.load_state_dict(model.state_dict())
    plain.train()
    plain_layer1 = []
    plain.layer2.register_forward_pre_hook(lambda m, a: plain_layer1.append(a[0]))
    plain(x)
    assert not torch.allclose(layer1[0], plain_layer1[0])  # the hook mixed what layer2 saw
    plain.load_state_dict(model.state_dict())  # its own training pass moved its BN statistics
    model.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)


def test_mixstyle_is_placed_after_early_stages_or_refused_in_one_line() -> None:
    alexnet, _ = create_model(CATALOGUE["alexnet"], 3, "none", 64)
    assert insertion_points(alexnet, "alexnet") == ("features.2", "features.5")  # max-poolings
    gn, _ = create_model(CATALOGUE["resnetv2_50d_gn"], 3, "none", 32)
    assert insertion_points(gn, "resnet") == ("stages.0", "stages.1")
    vit, _ = create_model(CATALOGUE["vit_b_16"], 3, "none", 32)
    with pytest.raises(MixStyleError, match=r"^vit_b_16: MixStyle has no insertion point for "
                       r"family 'vit' \(defined for resnet, .*--exclude$") as err:  # fmt: skip
        add_mixstyle(vit, "vit", "vit_b_16")
    assert "\n" not in str(err.value)


def test_zoo_refuses_mixstyle_for_a_family_without_insertion_point(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    args = ["--models", "resnet18,vit_b_16", "--recipe", "robust-mixstyle", "--out", str(out)]
    assert zoo.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: vit_b_16: MixStyle has no insertion point") and "\n" not in err
    assert not out.exists()


@pytest.mark.trains
def test_robust_mixstyle_trains_checkpoints_reloads_and_exports(tmp_path, make_tree) -> None:
    make_tree(tmp_path / "cells", {"basophil": 16, "lymphocyte": 16, "neutrophil": 16})
    out = tmp_path / "out"
    args = [
        "--models", "resnet18", "--dataset", "folder", "--data", str(tmp_path / "cells"),
        "--recipe", "robust-mixstyle", "--set", "augment=hflip,randconv", "--set", "crop=centre",
        "--image-size", "32", "--epochs", "2", "--batch-size", "8", "--weights", "none",
        "--device", "cpu", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
        "--no-progress",
    ]  # fmt: skip
    assert zoo.main(args) == 0
    [meta_file] = out.glob("submissions/cells/resnet18-robust-mixstyle+*-s0/meta.json")
    name = meta_file.parent.name
    loaded = load_member(out, name, device="cpu")  # built plain: MixStyle is training only
    assert loaded.meta.recipe["mixstyle"] is True
    assert loaded.meta.augment_on_device == ("randconv",)  # on the CPU too: no CPU form
    state, _ = load_weights(out / "zoo" / "members" / "cells" / name / WEIGHTS_FILE)
    plain = loaded.model.state_dict()
    assert set(state) == set(plain) and all(torch.equal(state[k], plain[k].cpu()) for k in state)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    folder = onnx_bundle.export(out, name, "member")
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx = session.run(["probs"], {onnx_bundle.INPUT: images})[0]
    np.testing.assert_allclose(onnx, member_probs(loaded, images), atol=1e-4)


def test_randconv_keeps_shape_and_range_and_draws_anew() -> None:
    x = torch.rand(5, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    a, b = randconv(x, g), randconv(x, g)
    for y in (a, b):
        assert y.shape == x.shape and y.dtype == x.dtype
        assert y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(a, b) and not torch.allclose(a, x)
    # each image keeps roughly its own brightness: the output is rescaled to its statistics
    assert (a.mean((1, 2, 3)) - x.mean((1, 2, 3))).abs().max() < 0.15
    # seeded per epoch like every device augmentation: a resumed run repeats it
    again = GpuAugment(("randconv",), 7)(x)
    torch.testing.assert_close(GpuAugment(("randconv",), 7)(x), again)


def test_randconv_runs_on_the_device_in_every_mode() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    robust = (*get_recipe("robust").augment, "randconv")
    for mode, device in (("auto", cpu), ("off", cpu), ("auto", cuda), ("on", cpu)):
        on_cpu, on_device = split_augment(robust, mode, device)
        assert "randconv" not in on_cpu and "randconv" in on_device
    assert split_augment(("hflip", "randconv"), "auto", cuda) == ((), ("hflip", "randconv"))
    assert split_augment(("hflip", "randconv"), "off", cuda) == (("hflip",), ("randconv",))
    assert get_recipe("robust-randconv").augment == robust
    with pytest.raises(RecipeError, match="unknown augmentation"):
        override(get_recipe("robust"), {"augment": "hflip,randconvv"})


def test_the_lr_scale_lowers_only_networks_without_normalisation_and_renames_them() -> None:
    scaled = {e.name for e in CATALOGUE.values() if e.lr_scale != 1}
    assert "alexnet" in scaled
    assert all(CATALOGUE[n].norm == "none" for n in scaled)
    fast = get_recipe("fast")
    alexnet = for_member(fast, CATALOGUE["alexnet"].lr_scale)
    assert alexnet.lr == pytest.approx(2e-4)
    # named as the same change made by hand would be: --set lr=2e-4
    assert alexnet == override(fast, {"lr": "2e-4"}) and alexnet.name != "fast"
    tuned = override(fast, {"lr": 0.0012520653814999472})  # as pipeline.tune writes them
    for name in ("resnet18", "squeezenet1_1", "vgg16_bn"):
        assert for_member(fast, CATALOGUE[name].lr_scale) is fast
        assert for_member(tuned, CATALOGUE[name].lr_scale) is tuned
    cfg = MemberConfig(CATALOGUE["alexnet"], alexnet, 0, "none", "pbc")
    assert cfg.member_id == f"alexnet-{alexnet.name}-s0"
    notes = zoo.lr_notes(fast, [CATALOGUE["resnet18"], CATALOGUE["alexnet"]])
    assert notes == [
        f"alexnet has no normalisation layers: trained at lr 0.0002 (0.1 x the recipe's), "
        f"as recipe {alexnet.name}"
    ]


def test_mixstyle_is_a_recipe_field_off_by_default() -> None:
    assert not get_recipe("robust").mixstyle and not get_recipe("fast").mixstyle
    mixed = get_recipe("robust-mixstyle")
    assert mixed.mixstyle and dataclasses.replace(mixed, name="robust", mixstyle=False) == (
        get_recipe("robust")
    )
    assert override(get_recipe("robust"), {"mixstyle": "true"}).name.startswith("robust+")
