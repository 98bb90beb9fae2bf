"""Adaptation without source data: EM and BBSE label-shift correction, LAME, SHOT, and their
composition into adapted entries (``adabn+shot+em``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.adapted.compose import model_outputs
from pipeline.adapted.labelshift import bbse, bbse_weights, class_priors, em_priors, soft_confusion
from pipeline.adapted.lame import knn_affinity, lame
from pipeline.adapted.shot import ShotSettings, shot
from pipeline.commands import adapt as adapt_cli
from pipeline.commands import predict, zoo
from pipeline.inference.adaptation import (
    adapted_probabilities,
    applicable,
    few_images_warning,
    parse_adaptations,
)
from pipeline.models import engine
from pipeline.ranking.collect import find_entries
from pipeline.runs.submissions import read_submission
from pipeline.training.recipes import get_recipe, override

CPU = engine.Runtime(torch.device("cpu"), None, False, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
FAST = override(get_recipe("fast"), {"image_size": 32, "epochs": 1, "batch_size": 8}).name
MEMBER = f"resnet18-{FAST}-s0"
MEANS = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])


def bayes_posteriors(x: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Exact posteriors of three unit Gaussians in 2-D under ``priors``: perfectly calibrated."""
    log_lik = -0.5 * ((x[:, None, :] - MEANS[None]) ** 2).sum(-1)
    z = log_lik + np.log(priors)
    z -= z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def sample(priors: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=priors)
    return MEANS[y] + rng.standard_normal((n, 2)), y


SOURCE = np.full(3, 1 / 3)
TARGET = np.array([0.6, 0.3, 0.1])


def test_em_recovers_the_target_priors_of_calibrated_probabilities() -> None:
    x, y = sample(TARGET, 6000, seed=1)
    probs = bayes_posteriors(x, SOURCE)  # calibrated for the source's equal priors
    shift = em_priors(probs, SOURCE)
    assert shift.converged and shift.iterations < 100
    np.testing.assert_allclose(shift.priors, TARGET, atol=0.03)
    np.testing.assert_allclose(shift.probs, bayes_posteriors(x, shift.priors), atol=1e-9)
    assert (shift.probs.argmax(1) == y).mean() > (probs.argmax(1) == y).mean() + 0.02


def test_em_leaves_matching_priors_alone() -> None:
    x, _ = sample(SOURCE, 6000, seed=2)
    probs = bayes_posteriors(x, SOURCE)
    shift = em_priors(probs, SOURCE)
    np.testing.assert_allclose(shift.priors, SOURCE, atol=0.02)
    assert np.abs(shift.probs - probs).max() < 0.05
    assert (shift.probs.argmax(1) == probs.argmax(1)).mean() > 0.98


def test_em_stops_at_its_iteration_cap() -> None:
    x, _ = sample(TARGET, 500, seed=3)
    shift = em_priors(bayes_posteriors(x, SOURCE), SOURCE, iterations=2, tolerance=0.0)
    assert shift.iterations == 2 and not shift.converged


def test_bbse_solves_a_known_confusion_and_keeps_weights_positive() -> None:
    confusion = np.array([[0.25, 0.05, 0.02], [0.06, 0.24, 0.03], [0.02, 0.04, 0.29]])
    true = np.array([1.8, 0.9, 0.3])
    np.testing.assert_allclose(
        bbse_weights(confusion, confusion @ true, ridge=0.0), true, atol=1e-9
    )
    shrunk = bbse_weights(confusion, confusion @ true)  # the default ridge: near, toward 1
    assert np.abs(shrunk - true).max() < 0.05 and np.all(np.abs(shrunk - 1) < np.abs(true - 1))
    impossible = np.array([0.0, 0.0, 0.4])  # asks for negative weights on two classes
    assert np.all(bbse_weights(confusion, impossible) >= 1e-3)


def test_bbse_recovers_target_priors_from_a_validation_confusion() -> None:
    xv, yv = sample(SOURCE, 6000, seed=4)
    confusion = soft_confusion(bayes_posteriors(xv, SOURCE), yv)
    np.testing.assert_allclose(confusion.sum(0), class_priors(yv, 3), atol=1e-9)
    x, _ = sample(TARGET, 6000, seed=5)
    shift = bbse(bayes_posteriors(x, SOURCE), class_priors(yv, 3), confusion)
    np.testing.assert_allclose(shift.priors, TARGET, atol=0.04)


def test_lame_moves_an_outlying_prediction_toward_its_neighbours() -> None:
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal([5, 0], 0.1, (6, 2)), rng.normal([0, 5], 0.1, (6, 2))])
    probs = np.vstack([np.tile([0.8, 0.2], (6, 1)), np.tile([0.2, 0.8], (6, 1))])
    probs[0] = [0.45, 0.55]  # in the first cluster, predicted as the second's class
    z = lame(probs, features)
    assert z[0].argmax() == 0 and z[6:].argmax(1).tolist() == [1] * 6
    affinity = knn_affinity(features, k=3).toarray()
    assert affinity.sum(1).tolist() == [3] * 12 and np.trace(affinity) == 0
    assert set(np.nonzero(affinity[0])[0]) <= set(range(1, 6))
    np.testing.assert_array_equal(lame(probs[:1], features[:1]), probs[:1])


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    ).eval()


def entropy(probs: np.ndarray) -> float:
    return float(-(probs * np.log(np.maximum(probs, 1e-12))).sum(1).mean())


@pytest.mark.trains
def test_shot_lowers_the_target_entropy_with_its_classifier_frozen() -> None:
    """Two kinds of image (dark, bright): SHOT makes the uncertain net confident on both and
    keeps them apart (the diversity term), moving the features only."""
    model = small_net()
    with torch.no_grad():
        model[5].weight.mul_(4)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(0, 80, (16, 8, 8, 3)), rng.integers(150, 255, (16, 8, 8, 3))])
    x, rows, tta = x.astype(np.uint8), np.arange(32), parse_adaptations("tta")[0]
    before = adapted_probabilities(model, x, rows, CPU, tta)
    head = {k: v.clone() for k, v in model[5].state_dict().items()}
    conv = model[0].weight.detach().clone()
    shot(model, model[5], x, rows, CPU, [0, 1, 2], ShotSettings(epochs=10, lr=0.05, batch=16))
    after = adapted_probabilities(model, x, rows, CPU, tta)
    assert entropy(before) > 1.0 and entropy(after) < 0.5
    assert after[:16].argmax(1).tolist() != after[16:].argmax(1).tolist()
    assert all(torch.equal(v, model[5].state_dict()[k]) for k, v in head.items())
    assert not torch.equal(conv, model[0].weight)
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.trains
def test_shot_and_lame_leave_the_member_as_they_found_it() -> None:
    model = small_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = np.random.default_rng(1).integers(0, 255, (12, 8, 8, 3)).astype(np.uint8)
    member = SimpleNamespace(model=model, precision=CPU, entry=SimpleNamespace(head="5"))
    view = SimpleNamespace(images=x, rows=np.arange(12))
    probs, features = model_outputs(member, view, parse_adaptations("adabn+shot+lame")[0], [0, 1])
    assert probs.shape == (12, 3) and features.shape == (12, 8)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.requires_grad for p in model.parameters())


def test_the_order_of_a_composition_is_fixed_and_meaningless_ones_are_refused() -> None:
    adaptation = parse_adaptations("em+tta+shot+adabn")[0]
    assert adaptation.suffix == "+adabn+shot+tta+em" and adaptation.transductive
    assert parse_adaptations("lame+bbse")[0].outputs == ("lame", "bbse")
    assert not parse_adaptations("tta")[0].transductive
    for text in ("em+bbse", "tent+shot", "adabn+tent", "em+em", "adabn+emm"):
        with pytest.raises(ValueError, match=text.replace("+", r"\+")):
            parse_adaptations(text)


def test_without_batchnorm_only_the_other_steps_are_kept() -> None:
    no_bn = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    asked = parse_adaptations("adabn+em,em,adabn,adabn+shot+tta+lame")
    assert [a.suffix for a in applicable(asked, no_bn)] == ["+em", "+shot+tta+lame"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_tree) -> Path:
    """One member trained for one epoch on three classes, with a two-class other lab."""
    root = tmp_path_factory.mktemp("sourcefree")
    make_tree(root / "cells", {"eosinophil": 10, "lymphocyte": 10, "neutrophil": 10}, size=(36, 36))
    make_tree(root / "lab2", {"Lymphocyte": 4, "Neutrophil": 12}, size=(30, 30), seed=7)
    assert zoo.main(train_args(root)) == 0
    return root


def train_args(root: Path) -> list[str]:
    return ["--dataset", "folder", "--data", str(root / "cells"), "--weights", "none",
            "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--recipe", "fast",
            "--out", str(root / "out"), "--cache-dir", str(root / "cache"), "--no-progress",
            "--models", "resnet18", "--eval", f"lab2={root / 'lab2'}"]  # fmt: skip


def adapt_args(root: Path, adapt: str) -> list[str]:
    return ["--members", MEMBER, "--adapt", adapt, "--out", str(root / "out"),
            "--cache-dir", str(root / "cache"), "--device", "cpu"]  # fmt: skip


@pytest.mark.filterwarnings("ignore:.*which is noisy")
@pytest.mark.trains
def test_composed_entries_are_written_transductive_over_the_sets_classes(
    trained: Path, capsys
) -> None:
    assert adapt_cli.main(adapt_args(trained, "adabn+shot+em,tta+lame+bbse,em")) == 0
    printed = " ".join(capsys.readouterr().out.split())
    entries = {e.name: e for e in find_entries(trained / "out")}
    plain = read_submission(entries[MEMBER].files["lab2"])
    for suffix in ("+adabn+shot+em", "+tta+lame+bbse", "+em"):
        entry = entries[MEMBER + suffix]
        assert entry.kind == "adapted" and entry.meta.transductive is True
        assert f"{MEMBER}{suffix} " in printed
        raw = read_submission(entry.folder / "raw" / "lab2.csv")
        assert raw.ids == plain.ids
        # the other lab holds lymphocytes and neutrophils only: no eosinophil is predicted
        np.testing.assert_array_equal(raw.probs[:, raw.classes.index("eosinophil")], 0)
        np.testing.assert_allclose(raw.probs.sum(1), 1, atol=1e-9)
    meta = entries[MEMBER + "+adabn+shot+em"].meta
    assert meta.adaptation["shot"] is True and meta.adaptation["output"] == "em"
    assert meta.calibration["outputs"] == "adapted validation outputs"
    # EM moves the other lab's predictions toward its own class proportions
    em = read_submission(entries[MEMBER + "+em"].folder / "raw" / "lab2.csv").probs
    assert np.abs(em - plain.probs).max() > 1e-3


@pytest.mark.trains
def test_meaningless_combinations_are_one_line_and_exit_2(trained: Path, capsys) -> None:
    assert adapt_cli.main(adapt_args(trained, "adabn,em+bbse")) == 2
    err = capsys.readouterr().err.strip()
    assert "em+bbse" in err and "pick one" in err and len(err.splitlines()) == 1
    assert zoo.main([*train_args(trained), "--adapt", "tent+shot"]) == 2
    assert "tent+shot" in capsys.readouterr().err
    argv = ["--member", MEMBER, "--out", str(trained / "out"), "--device", "cpu",
            "--adapt", "adabn+em", str(trained / "lab2")]  # fmt: skip
    assert predict.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "python -m pipeline.adapt" in err and len(err.splitlines()) == 1
    names = {e.name for e in find_entries(trained / "out")}
    assert not any("bbse" in n and "em" in n.split("+") for n in names)


@pytest.mark.trains
def test_an_adapted_meta_records_the_composition(trained: Path) -> None:
    assert adapt_cli.main(adapt_args(trained, "lame")) == 0
    folder = trained / "out" / "submissions" / "cells" / f"{MEMBER}+lame"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["adaptation"]["output"] == "lame" and meta["adaptation"]["method"] == "none"
    assert meta["transductive"] is True


def test_the_few_images_warning_names_the_methods_that_estimate_from_the_set() -> None:
    lame_em, tta = parse_adaptations("tta+lame+em,tta")
    warning = few_images_warning(10, "m on lab2", [lame_em, tta])
    assert warning is not None and warning.startswith("m on lab2: lame, em estimate from")
    assert "here 10 only" in warning
    assert few_images_warning(10, "m on lab2", [tta]) is None  # TTA sees each image alone
    assert few_images_warning(32, "m on lab2", [lame_em]) is None
