"""A two-trial Optuna study on a tiny fixture: it resumes from SQLite and emits a usable recipe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import optuna
import pytest

from pipeline.commands import tune, zoo
from pipeline.training import tuning
from pipeline.training.recipes import get_recipe


@pytest.mark.trains
def test_study_resumes_and_writes_a_recipe_the_zoo_accepts(tmp_path: Path, make_tree) -> None:
    make_tree(tmp_path / "cells", {"lymphocyte": 12, "neutrophil": 12})
    common = ["--arch", "squeezenet1_1", "--dataset", "folder", "--data", str(tmp_path / "cells"),
              "--epochs", "2", "--image-size", "32", "--out", str(tmp_path / "out"),
              "--cache-dir", str(tmp_path / "cache"), "--study", "s", "--no-progress"]  # fmt: skip
    assert tune.main([*common, "--trials", "1"]) == 0
    db = tmp_path / "out" / "zoo" / "tuning" / "s.db"
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert len(study.trials) == 1
    assert tune.main([*common, "--trials", "2"]) == 0  # one more, not two more
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert len(study.trials) == 2 and {t.number for t in study.trials} == {0, 1}
    assert tune.main([*common, "--trials", "2"]) == 0  # already complete: nothing to run
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{db}").trials) == 2

    recipe_file = tmp_path / "out" / "zoo" / "tuning" / "s-best.json"
    saved = json.loads(recipe_file.read_text())
    assert saved["name"] == "tuned-s" and saved["lr"] == study.best_trial.params["lr"]
    recipe = get_recipe(str(recipe_file))
    assert recipe.optimizer == study.best_trial.params["optimizer"] and recipe.epochs == 2
    assert zoo.main(["--dataset", "folder", "--data", str(tmp_path / "cells"), "--weights", "none",
                     "--models", "squeezenet1_1", "--recipe", str(recipe_file),
                     "--out", str(tmp_path / "zoo"), "--cache-dir", str(tmp_path / "cache"),
                     "--no-progress"]) == 0  # fmt: skip
    meta = tmp_path / "zoo" / "submissions" / "cells" / "squeezenet1_1-tuned-s-s0" / "meta.json"
    assert json.loads(meta.read_text())["recipe"]["lr"] == saved["lr"]


@pytest.mark.trains  # in worker processes: unseen by the guard
def test_two_workers_share_one_study_through_the_local_executor(tmp_path: Path, make_tree) -> None:
    """Two worker processes fill one SQLite study to --trials (one worker may finish a trial
    more while the other stops it), each trial trained once."""
    make_tree(tmp_path / "cells", {"lymphocyte": 10, "neutrophil": 10})
    args = ["--arch", "squeezenet1_1", "--dataset", "folder", "--data", str(tmp_path / "cells"),
            "--epochs", "1", "--image-size", "32", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--study", "p", "--no-progress",
            "--trials", "3", "--trial-workers", "2", "--device", "cpu"]  # fmt: skip
    assert tune.main(args) == 0
    db = tmp_path / "out" / "zoo" / "tuning" / "p.db"
    trials = optuna.load_study(study_name="p", storage=f"sqlite:///{db}").trials
    finished = [t for t in trials if t.state.is_finished()]
    assert 3 <= len(finished) <= 4 and all(t.state != optuna.trial.TrialState.FAIL for t in trials)
    members = tmp_path / "out" / "zoo" / "tuning" / "p" / "zoo" / "members" / "cells"
    assert sorted(m.name for m in members.iterdir()) == sorted(
        f"squeezenet1_1-trial{t.number}-s0" for t in trials
    )  # every trial trained once, into its own member folder
    assert (tmp_path / "out" / "zoo" / "tuning" / "p-best.json").exists()


def test_augmentation_strength_is_searched_only_where_it_does_something() -> None:
    params = {"lr": 1e-3, "batch_size": 32, "optimizer": "adamw", "weight_decay": 1e-3,
              "head_dropout": 0.1, "label_smoothing": 0.1, "aug_strength": 0.3}  # fmt: skip
    plain = get_recipe("fast")  # flips and 90 degree turns: nothing that strength scales
    trial = optuna.trial.FixedTrial(params)
    assert tuning.suggest(trial, plain).aug_strength == plain.aug_strength
    assert "aug_strength" not in trial.params
    strong = dataclasses.replace(plain, augment=(*plain.augment, "randaugment"))
    assert tuning.suggest(optuna.trial.FixedTrial(params), strong).aug_strength == 0.3
