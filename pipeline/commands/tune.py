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

from optuna.trial import TrialState

from pipeline.commands import options as opts
from pipeline.errors import UserError, user_errors
from pipeline.executors.options import check_executor_args, make_executor
from pipeline.models import load_catalogue
from pipeline.models.weights import CHOICES as WEIGHT_CHOICES
from pipeline.names import plain_name
from pipeline.runs.layout import Layout
from pipeline.training.jobs import load_data
from pipeline.training.recipes import save_recipe
from pipeline.training.tuning import TuneWorker, finished, suggest


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
