"""Recipes: the paper configurations, CLI overrides and their learning-rate schedules."""

from __future__ import annotations

import json
import re
from dataclasses import asdict

import pytest
import torch

from pipeline.runs.metadata import MemberMeta
from pipeline.runs.recipe import RecipeError, settings_fingerprint
from pipeline.training.optim import make_optimizer, make_scheduler
from pipeline.training.recipes import get_recipe, override


def test_paper_recipes() -> None:
    g = get_recipe("gavas2021")
    assert (g.optimizer, g.lr, g.momentum, g.step_size, g.gamma, g.epochs, g.batch_size) == (
        "sgd", 1e-3, 0.9, 7, 0.1, 25, 32,
    )  # fmt: skip
    assert "rotate60" in g.augment and g.image_size is None
    t = get_recipe("tsutsui2023")
    assert (t.optimizer, t.lr, t.weight_decay, t.warmup_epochs, t.epochs, t.batch_size) == (
        "adamw", 1e-4, 0.005, 10, 100, 128,
    )  # fmt: skip
    r = get_recipe("robust")
    assert r.crop == "cell" and {"hed", "colorjitter", "grayscale"} <= set(r.augment)
    assert (r.optimizer, r.lr, r.scheduler, r.image_size) == ("adamw", 2e-3, "onecycle", 64)


def test_override_parses_strings_by_field_type() -> None:
    r = override(
        get_recipe("gavas2021"),
        {"epochs": "3", "lr": "0.01", "augment": "hflip,rot90", "channels_last": "true",
         "image_size": "native", "batch_size": 8},
    )  # fmt: skip
    assert (r.epochs, r.lr, r.augment, r.channels_last, r.image_size, r.batch_size) == (
        3, 0.01, ("hflip", "rot90"), True, None, 8,
    )  # fmt: skip
    with pytest.raises(KeyError, match="unknown recipe field"):
        override(r, {"nope": "1"})
    with pytest.raises(ValueError, match="true or false"):
        override(r, {"channels_last": "maybe"})
    with pytest.raises(KeyError, match="unknown recipe"):
        get_recipe("nope")


def test_an_overridden_recipe_is_named_by_the_fingerprint_of_its_changes() -> None:
    fast = get_recipe("fast")
    a = override(fast, {"lr": "0.01", "epochs": 3})
    b = override(fast, {"epochs": "3", "lr": 1e-2})  # other order and spelling, same values
    c = override(fast, {"lr": 0.02, "epochs": 3})
    assert a.name == b.name and re.fullmatch(r"fast\+[0-9a-f]{6}", a.name)
    assert len({a.name, c.name, override(fast, {"augment": "hflip"}).name}) == 3
    assert override(fast, {"lr": fast.lr, "epochs": "15"}) == fast  # nothing changed
    # seeds of one name pool only when their members were trained alike
    meta = {"arch": "resnet18", "weights": "none", "image_size": 64, "recipe": asdict(a)}
    fp = settings_fingerprint(MemberMeta.from_json(meta))
    assert fp == settings_fingerprint(MemberMeta.from_json(json.loads(json.dumps(meta))))
    assert fp != settings_fingerprint(MemberMeta.from_json(meta | {"weights": "imagenet"}))
    older = {**meta, "recipe": {k: v for k, v in asdict(a).items() if k != "cell_fraction"}}
    assert settings_fingerprint(MemberMeta.from_json(older)) == fp  # defaults fill in


def lrs(recipe_name: str, steps_per_epoch: int, **changes) -> list[float]:
    recipe = override(get_recipe(recipe_name), changes)
    model = torch.nn.Linear(2, 2)
    opt = make_optimizer(model, recipe)
    sched = make_scheduler(opt, recipe, steps_per_epoch)
    out = []
    for _ in range(recipe.epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_step_schedule_decays_every_seven_epochs() -> None:
    lr = lrs("gavas2021", 2, epochs=15)
    assert lr[0] == pytest.approx(1e-3) and lr[13] == pytest.approx(1e-3)
    assert lr[14] == pytest.approx(1e-4) and lr[28] == pytest.approx(1e-5)


def test_cosine_warms_up_then_decays() -> None:
    lr = lrs("tsutsui2023", 1, epochs=20, warmup_epochs=4)
    assert lr[0] == pytest.approx(2.5e-5) and lr[3] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(lr[3:], lr[4:], strict=False)) and lr[-1] < 1e-5


def test_onecycle_peaks_at_the_recipe_lr() -> None:
    lr = lrs("fast", 4, epochs=5)
    assert max(lr) == pytest.approx(2e-3, rel=1e-3) and lr[0] < 2e-4 and lr[-1] < 1e-5


def test_recipe_files_round_trip_and_reject_unknown_fields(tmp_path) -> None:
    from pipeline.training.recipes import save_recipe

    recipe = override(get_recipe("fast"), {"lr": 0.005, "augment": "hflip,randaugment"})
    path = tmp_path / "r.json"
    save_recipe(path, recipe)
    assert get_recipe(str(path)) == recipe
    path.write_text('{"name": "x", "epochs": 1, "batch_size": 2, "optimizer": "sgd", "lr": 1, '
                    '"lr_max": 3}')  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown recipe field\(s\) \['lr_max'\]"):
        get_recipe(str(path))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be at least 1, not 0"),
        ("epochs", -1, "epochs must be at least 1"),
        ("batch_size", 0, "batch_size must be at least 1"),
        ("lr", float("nan"), "lr must be a finite number"),
        ("lr", float("inf"), "lr must be a finite number"),
        ("lr", -0.1, "lr must be above 0"),
        ("gamma", 0.0, "gamma must be above 0"),
        ("weight_decay", -1.0, "weight_decay must be at least 0"),
        ("image_size", 0, "image_size must be a positive number of pixels"),
        ("image_size", "0", "image_size must be a positive number of pixels"),
        ("augment", "hflip,nosuchaug", "unknown augmentation(s) nosuchaug"),
        ("step_size", "x", "step_size='x': step_size takes a whole number"),
        ("lr", "fast", "lr='fast': lr takes a number"),
    ],
)
def test_a_bad_field_fails_when_the_recipe_is_made(field, value, message) -> None:
    with pytest.raises(RecipeError) as info:
        override(get_recipe("fast"), {field: value})
    assert str(info.value) == message or message in str(info.value)


def test_a_bad_recipe_file_names_the_file(tmp_path) -> None:
    path = tmp_path / "r.json"
    for text, message in (
        ('["epochs", 3]', "one JSON object"),
        ('{"name": "x", "epochs": 0, "batch_size": 2, "optimizer": "sgd", "lr": 1}', "epochs"),
        ('{"name": "x"}', "missing"),
        ("\xff", "not a readable recipe file"),
    ):
        path.write_text(text, encoding="latin-1")
        with pytest.raises(RecipeError, match=f"{path}: .*{message}"):
            get_recipe(str(path))
    with pytest.raises(RecipeError, match="not a readable recipe file"):
        get_recipe(str(tmp_path / "missing.json"))
