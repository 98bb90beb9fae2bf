"""Competition options: class weights, balanced sampling, MixUp/CutMix, strong augmentation,
head options and the selection metric."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pipeline.commands import zoo
from pipeline.inference.load import load_member, member_probs
from pipeline.models import create_model, engine, load_catalogue
from pipeline.training.balance import WeightedCrossEntropy, balanced_sampler, class_weights
from pipeline.training.mixing import Mixer
from pipeline.training.recipes import get_recipe, override


def test_class_weights() -> None:
    labels = np.array([0] * 10 + [1] * 30)
    np.testing.assert_allclose(class_weights(labels, 3, "inverse"), [1.5, 0.5, 0.0])
    effective = class_weights(labels, 2, "effective", beta=0.9)
    assert effective.mean() == pytest.approx(1) and effective[0] > effective[1]
    # a large beta tends to the inverse frequency, beta 0 to no weighting at all
    np.testing.assert_allclose(class_weights(labels, 2, "effective", beta=0.99999), [1.5, 0.5],
                               rtol=1e-3)  # fmt: skip
    np.testing.assert_allclose(class_weights(labels, 2, "effective", beta=0.0), [1, 1])


def test_balanced_sampler_draws_classes_equally_often() -> None:
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    drawn = labels[list(balanced_sampler(labels, seed=0))]
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.05)
    assert list(balanced_sampler(labels, 1)) == list(balanced_sampler(labels, 1))


@pytest.mark.parametrize(("mixup", "cutmix"), [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_mixed_targets_sum_to_one(mixup: float, cutmix: float) -> None:
    mixer = Mixer(5, mixup, cutmix, 1.0, seed=3)
    x = torch.rand(16, 3, 8, 8)
    y = torch.randint(0, 5, (16,))
    for _ in range(5):
        mixed, targets = mixer(x, y)
        assert mixed.shape == x.shape and targets.shape == (16, 5)
        torch.testing.assert_close(targets.sum(1), torch.ones(16))
        assert (targets >= 0).all() and (targets.max(1).values < 1).any()


def test_cutmix_label_share_is_the_pasted_area() -> None:
    x = torch.zeros(2, 1, 10, 10)
    x[1] = 1.0
    mixed, targets = Mixer(2, 0.0, 1.0, 1.0, seed=0)(x, torch.tensor([0, 1]))
    for i in range(2):
        own = mixed[i].eq(x[i]).float().mean()  # share of pixels still its own
        assert targets[i, i].item() == pytest.approx(own.item())


def test_no_mixing_gives_one_hot_targets() -> None:
    mixer = Mixer(3)
    x, y = torch.rand(4, 3, 4, 4), torch.tensor([0, 1, 2, 1])
    mixed, targets = mixer(x, y)
    assert not mixer.active and torch.equal(mixed, x) and torch.equal(targets.argmax(1), y)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixed_and_plain_batches_are_one_weighted_mean(smoothing: float) -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(6, 3), torch.tensor([0, 0, 0, 0, 1, 2])
    weight = torch.tensor([0.2, 1.4, 1.4])
    loss = WeightedCrossEntropy(weight, smoothing)
    plain = nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)(logits, y)
    one_hot = nn.functional.one_hot(y, 3).float()
    # an unmixed batch as probability rows (a Mixer with mix_prob < 1) scores as class indices
    torch.testing.assert_close(loss(logits, y), plain)
    torch.testing.assert_close(loss(logits, one_hot), plain)
    # a mixed batch: each image's two losses weighed by its share of each class weight
    perm, lam = torch.tensor([5, 4, 3, 2, 1, 0]), 0.7
    mixed = lam * one_hot + (1 - lam) * one_hot[perm]
    per_image = nn.CrossEntropyLoss(weight=weight, reduction="none", label_smoothing=smoothing)
    numerator = (lam * per_image(logits, y) + (1 - lam) * per_image(logits, y[perm])).sum()
    denominator = (lam * weight[y] + (1 - lam) * weight[y[perm]]).sum()
    torch.testing.assert_close(loss(logits, mixed), numerator / denominator)
    # without weights, the plain mean over images
    torch.testing.assert_close(
        WeightedCrossEntropy(None, smoothing)(logits, mixed),
        nn.CrossEntropyLoss(label_smoothing=smoothing)(logits, mixed),
    )


def test_head_options() -> None:
    entry = load_catalogue()["resnet18"]
    model, _ = create_model(entry, 4, "none", 32, head_dropout=0.3, head_hidden=16)
    assert [type(m) for m in model.fc] == [nn.Dropout, nn.Linear, nn.ReLU, nn.Linear]
    assert model.fc[1].out_features == 16 and model.fc[3].out_features == 4
    squeeze, _ = create_model(load_catalogue()["squeezenet1_1"], 4, "none", 32, 0.0, 8)
    assert squeeze.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 4)


def test_recipe_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="sampler must be one of shuffle, balanced"):
        override(get_recipe("fast"), {"sampler": "oversample"})
    with pytest.raises(ValueError, match=r"mix_prob must lie in \[0, 1\]"):
        override(get_recipe("fast"), {"mix_prob": "1.5"})


@pytest.mark.trains
def test_zoo_trains_with_every_option_and_the_member_reloads(
    tmp_path: Path, make_tree, zoo_args, monkeypatch
) -> None:
    real, criteria = engine.train_one_epoch, []

    def spy(*args, **kwargs):
        criteria.append(kwargs["criterion"])
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", spy)
    make_tree(tmp_path / "cells", {"basophil": 8, "lymphocyte": 20, "neutrophil": 30})
    options = ["class_weights=effective", "sampler=balanced", "mixup_alpha=0.2",
               "cutmix_alpha=1.0", "augment=hflip,randaugment,color", "aug_strength=0.5",
               "head_dropout=0.2", "head_hidden=16", "select_metric=macro_f1",
               "label_smoothing=0.1"]  # fmt: skip
    args = zoo_args(tmp_path / "cells", tmp_path / "out", models="resnet18", epochs=2)
    for option in options:
        args += ["--set", option]
    assert zoo.main(args) == 0
    # the class-weighted loss of a mixed batch is the weighted mean of a plain one's
    logits, y = torch.randn(6, 3), torch.tensor([0, 0, 0, 1, 2, 2])
    one_hot = nn.functional.one_hot(y, 3).float()
    torch.testing.assert_close(criteria[0](logits, one_hot), criteria[0](logits, y))
    name = f"resnet18-{zoo.recipe_from_options(zoo.build_parser().parse_args(args), False).name}-s0"
    member = tmp_path / "out" / "zoo" / "members" / "cells" / name
    history = pd.read_csv(member / "history.csv")
    assert "val_macro_f1" in history.columns and len(history) == 2
    meta = json.loads((tmp_path / "out/submissions/cells" / name / "meta.json").read_text())
    assert meta["recipe"]["sampler"] == "balanced" and meta["recipe"]["head_hidden"] == 16
    loaded = load_member(tmp_path / "out", name)
    probs = member_probs(loaded, np.zeros((2, 32, 32, 3), dtype=np.uint8))
    np.testing.assert_allclose(probs.sum(1), 1)
