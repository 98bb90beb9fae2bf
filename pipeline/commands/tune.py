"""``python -m pipeline.tune``: tune a member's recipe with Optuna, on validation only.

TPE sampler, median pruner on validation accuracy per epoch, SQLite storage: a study resumes
from its file and is shared by several workers (``--trial-workers N``), run by the zoo's executors
(local processes, Ray tasks or Slurm jobs), which stop together once the study holds
``--trials`` finished trials. The best trial is written as a recipe file that
``python -m pipeline.zoo --recipe FILE.json`` accepts.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from pipeline.commands import options as opts
from pipeline.data.augment import STRENGTH_SCALED
from pipeline.errors import UserError, user_errors
from pipeline.executors.options import check_executor_args, make_executor
from pipeline.io import write_json
from pipeline.models import load_catalogue
from pipeline.models.weights import CHOICES as WEIGHT_CHOICES
from pipeline.names import plain_name
from pipeline.runs.layout import Layout
from pipeline.training.jobs import DataSpec, load_data
from pipeline.training.member import MemberConfig, MemberPaths, train_member
from pipeline.training.recipes import Recipe, for_member, override, save_recipe

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


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.tune",
        __doc__.split("\n\n")[0] + " Trials train into OUT/zoo/tuning/<study>/.",
    )
    arch = opts.option(p, "--arch")
    opts.renamed(p, "--member", arch)
    p.add_argument("--trials", type=int, default=20, help="trials the study should hold in all")
    p.add_argument("--study", help="study name (default: <arch>-<dataset>)")
    opts.add_data(p)
    opts.add_recipe(p, "fast", ("epochs", "image_size"))
    opts.option(p, "--weights", choices=WEIGHT_CHOICES, default="none")
    opts.add_device(p)
    opts.option(p, "--seed", type=int, default=0, help="sampler and training seed")
    workers = p.add_argument(
        "--trial-workers",
        type=int,
        default=1,
        metavar="N",
        help="trial workers sharing the study, run by --executor",
    )
    opts.renamed(p, "--workers", workers)
    opts.add_out(p)
    opts.add_cache_dir(p)
    opts.add_no_progress(p)
    opts.add_executor(p, "worker")
    opts.add_debug(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.arch is None:
        parser.error("the following arguments are required: --arch")
    if args.arch not in load_catalogue():
        raise UserError(f"unknown architecture {args.arch!r}: see python -m pipeline.zoo --list")
    if args.trial_workers < 1:
        raise UserError(f"--trial-workers must be at least 1, not {args.trial_workers}")
    check_executor_args(args)
    spec = opts.data_spec(args)
    base = opts.recipe_from_options(args, "fast")
    load_data.cache_clear()  # the folders may have changed since an earlier run in this process
    tag = load_data(spec).tag  # builds the image cache once, here
    study_name = plain_name(args.study or f"{args.arch}-{tag}", "--study")
    folder = Layout(args.out).tuning.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if args.executor == "local" and args.local_workers is None:
        args.local_workers = args.trial_workers
    executor = make_executor(args, folder / "slurm")
    workers = [
        TuneWorker(i, args.arch, base, spec, study_name, folder, args.trials, args.seed,
                   args.weights, args.device, not args.no_progress and not executor.parallel)
        for i in range(args.trial_workers)
    ]  # fmt: skip
    # created here, once: workers that race to create a new SQLite study's tables collide
    study = workers[0].open_study()
    failed = [row for row in executor.run(workers) if row["status"] != "done"]
    for row in failed:
        print(f"tuning worker {row['worker']} failed: {row['error']}", file=sys.stderr)

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        print(f"{folder / (study_name + '.db')}: no trial completed, so no recipe was written",
              file=sys.stderr)  # fmt: skip
        return 1
    best = study.best_trial
    recipe = dataclasses.replace(suggest(best, base), name=f"tuned-{study_name}")
    recipe_file = folder / f"{study_name}-best.json"
    save_recipe(recipe_file, recipe)
    print(f"{finished(study)} finished trial(s) in {folder / (study_name + '.db')}; best "
          f"#{best.number}: validation accuracy {best.value:.4f} with {best.params}")  # fmt: skip
    print(f"recipe: {recipe_file}\n  python -m pipeline.zoo --models {args.arch} "
          f"--recipe {recipe_file}" + (f" --data {args.data}" if args.data else ""))  # fmt: skip
    return 1 if failed else 0
