"""Tuning a member's recipe with Optuna on validation only: the search space and the study's
workers (``python -m pipeline.tune`` runs them on the zoo's executors).

TPE sampler, median pruner on validation accuracy per epoch, SQLite storage: a study resumes
from its file and is shared by several workers, which stop together once the study holds the
wanted number of finished trials.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from pipeline.data.augment import STRENGTH_SCALED
from pipeline.io import write_json
from pipeline.models import load_catalogue
from pipeline.runs.recipe import Recipe
from pipeline.training.jobs import DataSpec, load_data
from pipeline.training.member import MemberConfig, MemberPaths, train_member
from pipeline.training.recipes import for_member, override

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def suggest(trial: optuna.Trial, base: Recipe) -> Recipe:
    """The search space: learning rate, batch size, optimiser, weight decay, dropout, label
    smoothing, and augmentation strength where the recipe has augmentations it scales."""
    space = {
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64]),
        "optimizer": trial.suggest_categorical("optimizer", ["sgd", "adamw"]),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
        "head_dropout": trial.suggest_float("head_dropout", 0.0, 0.5),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
    }
    if set(base.augment) & set(STRENGTH_SCALED):  # else the dimension would be a no-op
        space["aug_strength"] = trial.suggest_float("aug_strength", 0.0, 1.0)
    return override(base, space)


@dataclass(frozen=True)
class TuneWorker:
    """One worker of a study: trains trials until the study holds ``trials`` finished ones.

    Picklable, so any executor runs it; all workers share the study through its SQLite file.
    """

    index: int
    member: str
    base: Recipe
    data: DataSpec
    study: str
    folder: Path  # OUT/zoo/tuning: the study's database, its trials' members
    trials: int
    seed: int = 0
    weights: str = "none"
    device: str = "auto"
    progress: bool = True

    @property
    def storage(self) -> str:
        return f"sqlite:///{(self.folder / f'{self.study}.db').resolve()}"

    def open_study(self) -> optuna.Study:
        return optuna.create_study(
            study_name=self.study,
            storage=self.storage,
            # each worker its own sampler seed, or parallel workers would suggest alike
            sampler=optuna.samplers.TPESampler(seed=self.seed + self.index),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
            direction="maximize",
            load_if_exists=True,
        )

    def run(self) -> dict:
        entry = load_catalogue()[self.member]
        data = load_data(self.data)
        sets = {name: data.sets[name] for name in ("train", "val", "test")}  # never beyond

        def objective(trial: optuna.Trial) -> float:
            recipe = dataclasses.replace(suggest(trial, self.base), name=f"trial{trial.number}")
            recipe = for_member(recipe, entry.lr_scale)
            cfg = MemberConfig(entry, recipe, self.seed, self.weights, data.tag, self.device)

            def report(row: dict) -> None:
                trial.report(row["val_acc"], row["epoch"])
                if trial.should_prune():
                    write_json(MemberPaths.of(self.folder / self.study, cfg).state,
                               {"status": "pruned", "epoch": row["epoch"]})  # fmt: skip
                    raise optuna.TrialPruned()

            result = train_member(
                cfg, sets, data.dataset.classes, data.store, self.folder / self.study,
                progress=self.progress, on_epoch=report,
            )  # fmt: skip
            return result["val_acc"]

        study = self.open_study()
        left = self.trials - finished(study)
        try:
            if left > 0:
                study.optimize(
                    objective,
                    n_trials=left,
                    callbacks=[optuna.study.MaxTrialsCallback(self.trials, states=FINISHED)],
                )
        except Exception as exc:  # the trial is marked failed in the study; say why here
            return self.lost(f"{type(exc).__name__}: {exc}")
        return {"worker": self.index, "status": "done", "trials": finished(study)}

    def lost(self, why: str) -> dict:
        return {"worker": self.index, "status": "failed", "error": why}


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))
