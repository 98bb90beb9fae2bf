"""The catalogue: every member builds, takes its new head and runs forward; weights resolve."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error

import huggingface_hub
import pytest
import safetensors.torch
import timm
import torch
import torchvision

from pipeline.inference.gradcam import member_cam
from pipeline.models import count_params, create_model, load_catalogue, select
from pipeline.models import weights as weights_api
from pipeline.models.factory import get_module, replace_heads

CATALOGUE = load_catalogue()
REAL_PROBE = weights_api.probe  # before conftest takes the network away
ALL = [e.name for e in CATALOGUE.values() if e.all]
TORCHVISION_27 = {
    "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "squeezenet1_0",
    "squeezenet1_1", "densenet121", "densenet161", "densenet169", "densenet201", "inception_v3",
    "googlenet", "mobilenet_v2", "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2",
    "wide_resnet101_2",
}  # fmt: skip
# by name only: the cross-lab study's members
ACROSS_LABS = [
    "resnetv2_50d_gn", "resnet50_gn", "resnet18_gn", "resnet50_frozenbn", "resnet50_last16",
    "vgg16_bn_frozenbn", "densenet121_frozenbn", "vit_b_16", "convnext_tiny",
]  # fmt: skip
# by name only: the members whose ImageNet weights install from packages (tests/test_packaged.py)
PACKAGED = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def test_all_is_the_27_of_gavas_and_olpadkar_plus_efficientnetv2_s() -> None:
    assert set(ALL) == TORCHVISION_27 | {"efficientnet_v2_s"}
    by_name = {"efficientnet_v2_m", "efficientnet_v2_l", *ACROSS_LABS, *PACKAGED}
    assert by_name == set(CATALOGUE) - set(ALL)


@pytest.mark.trains
def test_frozen_batchnorm_stays_frozen_across_epochs() -> None:
    entry = CATALOGUE["resnet50_frozenbn"]
    model, _ = create_model(entry, 3, "none", 32)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for epoch in range(2):
        model.train()  # what every epoch starts with
        assert not any(bn.training for bn in bns) and model.fc.training
        for _ in range(2):
            loss = model(torch.rand(4, 3, 32, 32) * (epoch + 2)).logsumexp(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    after = model.state_dict()
    bn_keys = [k for k in before if k.startswith(("bn1.", "layer4.2.bn3."))]
    assert len(bn_keys) == 10  # weight, bias, running mean and var, batches tracked, twice
    assert all(torch.equal(before[k], after[k]) for k in bn_keys)
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])
    assert not any(p.requires_grad for bn in bns for p in bn.parameters())


def test_last16_trains_what_tsutsui_et_al_train() -> None:
    model, _ = create_model(CATALOGUE["resnet50_last16"], 5, "none", 32)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert min(trainable, key=list(dict(model.named_parameters())).index) == "layer3.4.conv1.weight"
    assert {"layer4.0.downsample.0.weight", "layer4.2.bn3.bias", "fc.weight"} <= trainable
    assert "layer3.3.conv3.weight" not in trainable and "conv1.weight" not in trainable
    # their code: the last 7 children of the flattened ResNet-50 (16 convolutions)
    assert sum(p.numel() for n, p in model.named_parameters() if n in trainable) == 17_209_349


def test_vit_with_imagenet_weights_needs_its_native_size() -> None:
    with pytest.raises(ValueError, match="224 px only.*--weights none"):
        create_model(CATALOGUE["vit_b_16"], 8, "imagenet", 64)


@pytest.mark.parametrize("name", [*ALL, *ACROSS_LABS, *PACKAGED])
def test_member_builds_with_new_head_and_runs_forward(name: str) -> None:
    entry = CATALOGUE[name]
    torch.manual_seed(0)
    model, used = create_model(entry, 8, "none", entry.input_size)
    assert used == "none"
    assert count_params(model) == pytest.approx(entry.params_m * 1e6, abs=600)
    if entry.size_kwarg:  # a fixed input size (ViT): built again at its smallest
        model, _ = create_model(entry, 8, "none", entry.min_size)
    replace_heads(model, entry, 5)
    for path in (entry.head, *entry.aux_heads):
        head = get_module(model, path)
        assert (getattr(head, "out_features", None) or head.out_channels) == 5
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, entry.min_size, entry.min_size))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    cam, _ = member_cam(model, entry, torch.rand(1, 3, entry.min_size, entry.min_size))
    assert cam.shape == (1, entry.min_size, entry.min_size)  # every member has a Grad-CAM layer


def test_min_size_is_tight_for_alexnet() -> None:
    entry = CATALOGUE["alexnet"]
    model, _ = create_model(entry, 8, "none")
    model.eval()
    with pytest.raises(RuntimeError):
        model(torch.rand(1, 3, entry.min_size - 1, entry.min_size - 1))


def test_googlenet_trains_with_its_auxiliary_heads() -> None:
    model, _ = create_model(CATALOGUE["googlenet"], 8, "none", 64)
    model.train()
    out = model(torch.rand(2, 3, 64, 64))
    assert [o.shape for o in out] == [(2, 8)] * 3


def test_inception_drops_auxiliary_head_below_its_minimum_size() -> None:
    entry = CATALOGUE["inception_v3"]
    small, _ = create_model(entry, 8, "none", 96)
    assert small.AuxLogits is None
    small.train()
    assert small(torch.rand(2, 3, 96, 96)).shape == (2, 8)
    native, _ = create_model(entry, 8, "none", 299)
    assert native.AuxLogits.fc.out_features == 8


def test_select_all_exclude_and_unknown() -> None:
    chosen = select(CATALOGUE, None, True, ["vgg19"])
    assert len(chosen) == 27 and "vgg19" not in [e.name for e in chosen]
    assert [e.name for e in select(CATALOGUE, ["resnet18", "vgg16"], False, [])] == [
        "resnet18",
        "vgg16",
    ]
    with pytest.raises(KeyError, match="nosuchnet"):
        select(CATALOGUE, ["nosuchnet"], False, [])


def test_auto_takes_a_weights_file_from_the_torch_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    entry = CATALOGUE["squeezenet1_1"]
    path = weights_api.cache_path(entry)
    assert path.parent == tmp_path / "hub" / "checkpoints" and weights_api.cached(entry) is None
    torch.manual_seed(3)  # stands in for the ImageNet file; the tests never download
    saved = torchvision.models.squeezenet1_1().state_dict()
    path.parent.mkdir(parents=True)
    torch.save(saved, path)
    assert weights_api.cached(entry) == path
    model, used = create_model(entry, 8, "auto", 32)  # the network is off (conftest)
    assert used == "imagenet"
    assert torch.equal(model.features[0].weight, saved["features.0.weight"])
    assert weights_api.resolve(entry, "none") == "none"
    with pytest.raises(ValueError, match="imagenet, none, auto"):
        weights_api.resolve(entry, "pretrained")


def test_auto_takes_timm_weights_from_the_hugging_face_cache(tmp_path, monkeypatch) -> None:
    entry = CATALOGUE["resnet50_gn"]
    snapshot = tmp_path / "models--timm--resnet50_gn.a1h_in1k" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (tmp_path / "models--timm--resnet50_gn.a1h_in1k" / "refs").mkdir()
    (tmp_path / "models--timm--resnet50_gn.a1h_in1k" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert weights_api.cached(entry) is None
    torch.manual_seed(5)  # stands in for the ImageNet file; the tests never download
    saved = timm.create_model("resnet50_gn").state_dict()
    safetensors.torch.save_file(saved, str(snapshot / "model.safetensors"))
    assert weights_api.cached(entry) == snapshot / "model.safetensors"
    model, used = create_model(entry, 8, "auto", 32)  # the network is off (conftest)
    assert used == "imagenet" and torch.equal(model.conv1.weight, saved["conv1.weight"])


def test_an_unreachable_download_falls_back_to_random_init_at_once(monkeypatch) -> None:
    """A network that swallows connections (no answer, not even to DNS) costs one short probe
    per host, then every member falls back; ``imagenet`` still refuses."""
    monkeypatch.setattr(weights_api, "probe", REAL_PROBE)
    monkeypatch.setattr(weights_api, "PROBE_TIMEOUT_S", 0.3)
    attempts = []

    def black_hole(address, timeout=None, *args):
        attempts.append(address)
        threading.Event().wait(10)  # the probe's thread is a daemon: it is left behind
        raise OSError("timed out")

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although the host is unreachable")

    monkeypatch.setattr(socket, "create_connection", black_hole)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    weights_api.connect.cache_clear()
    try:
        started = time.perf_counter()
        used = [create_model(CATALOGUE[n], 8, "auto", 32)[1] for n in ("resnet18", "googlenet")]
        assert used == ["none", "none"]
        assert time.perf_counter() - started < 3
        assert attempts == [("download.pytorch.org", 443)]  # one probe for both
        with pytest.raises(weights_api.WeightsUnavailable, match="no answer within 0.3 s"):
            create_model(CATALOGUE["resnet18"], 8, "imagenet", 32)
    finally:
        weights_api.connect.cache_clear()


def test_failed_download_says_how_to_run_offline(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(weights_api, "probe", lambda url: None)  # the host answers, then...

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(weights_api.WeightsUnavailable, match="--weights none") as err:
        create_model(CATALOGUE["squeezenet1_1"], 8, "imagenet")
    message = str(err.value)
    assert "squeezenet1_1" in message and "network is unreachable" in message
    assert str(tmp_path) in message and "--fetch-weights" in message
    assert create_model(CATALOGUE["squeezenet1_1"], 8, "auto", 32)[1] == "none"


def test_member_without_imagenet_weights_refuses_them_clearly() -> None:
    entry = CATALOGUE["resnet18_gn"]
    with pytest.raises(
        weights_api.WeightsUnavailable, match="no published ImageNet weights.*--weights none"
    ):
        create_model(entry, 8, "imagenet", 32)
    model, used = create_model(entry, 8, "auto", 32)
    assert used == "none"
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
