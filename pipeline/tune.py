"""``python -m pipeline.tune``: tune a member's recipe with Optuna, on validation only.

TPE sampler, median pruner on validation accuracy per epoch, SQLite storage: a study resumes
from its file and can be shared by several processes. The best trial is written as a recipe
file that ``python -m pipeline.zoo --recipe FILE.json`` accepts.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import optuna

from pipeline.data.cache import DEFAULT_CACHE_DIR
from pipeline.helpformat import HelpFormatter
from pipeline.models import load_catalogue
from pipeline.models.weights import CHOICES as WEIGHT_CHOICES
from pipeline.recipes import Recipe, override, save_recipe
from pipeline.train import MemberConfig, train_member
from pipeline.zoo import BUNDLED_SAMPLE, prepare_data, recipe_from_args


def suggest(trial: optuna.Trial, base: Recipe) -> Recipe:
    """The search space: learning rate, batch size, optimiser, weight decay, dropout, label
    smoothing and augmentation strength."""
    return override(
        base,
        {
            "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64]),
            "optimizer": trial.suggest_categorical("optimizer", ["sgd", "adamw"]),
            "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
            "head_dropout": trial.suggest_float("head_dropout", 0.0, 0.5),
            "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
            "aug_strength": trial.suggest_float("aug_strength", 0.0, 1.0),
        },
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.tune",
        description=__doc__.split("\n\n")[0] + " Trials train into OUT/zoo/tuning/<study>/.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--member", required=True, help="architecture from the catalogue, e.g. resnet18")
    p.add_argument("--trials", type=int, default=20, help="trials the study should hold in all")
    p.add_argument("--study", help="study name (default: <member>-<dataset>)")
    p.add_argument("--dataset", default="pbc", help="dataset adapter")
    p.add_argument("--data", type=Path, help="dataset (default: the bundled PBC sample)")
    p.add_argument("--recipe", default="fast", help="the recipe whose fields are tuned")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the recipe's)")
    p.add_argument("--image-size", type=int, help="input size (default: the recipe's)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="fix a recipe field for every trial (repeatable)")  # fmt: skip
    p.add_argument("--weights", choices=WEIGHT_CHOICES, default="none")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed")
    p.add_argument("--out", type=Path, default=Path("."), help="the zoo's output root")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="decoded-image cache")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    entry = load_catalogue().get(args.member)
    if entry is None:
        raise SystemExit(f"unknown member {args.member!r}: see python -m pipeline.zoo --list")
    preset = args.data is None
    args.eval, args.batch_size, args.lr = [], None, None  # what prepare_data/recipe_from_args read
    base = recipe_from_args(args, preset=False)
    dataset, tag, sets, store = prepare_data(args, BUNDLED_SAMPLE if preset else args.data, preset)
    sets = {name: sets[name] for name in ("train", "val", "test")}  # tuning never looks beyond
    study_name = args.study or f"{args.member}-{tag}"
    folder = args.out / "zoo" / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=study_name,
        storage=f"sqlite:///{(folder / f'{study_name}.db').resolve()}",
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        direction="maximize",
        load_if_exists=True,
    )

    def objective(trial: optuna.Trial) -> float:
        recipe = dataclasses.replace(suggest(trial, base), name=f"trial{trial.number}")
        cfg = MemberConfig(entry, recipe, args.seed, args.weights, tag, args.device)

        def report(row: dict) -> None:
            trial.report(row["val_acc"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = train_member(
            cfg, sets, dataset.classes, store, folder / study_name, progress=not args.no_progress,
            on_epoch=report,
        )  # fmt: skip
        return result["val_acc"]

    done = [t for t in study.trials if t.state.is_finished()]
    study.optimize(objective, n_trials=max(0, args.trials - len(done)))
    best = study.best_trial
    recipe = dataclasses.replace(suggest(best, base), name=f"tuned-{study_name}")
    recipe_file = folder / f"{study_name}-best.json"
    save_recipe(recipe_file, recipe)
    print(f"{len(study.trials)} trial(s) in {folder / (study_name + '.db')}; best #{best.number}: "
          f"validation accuracy {best.value:.4f} with {best.params}")  # fmt: skip
    print(f"recipe: {recipe_file}\n  python -m pipeline.zoo --models {args.member} "
          f"--recipe {recipe_file}" + (f" --data {args.data}" if args.data else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
