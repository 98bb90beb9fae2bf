"""``python -m pipeline.zoo``: fine-tune the model zoo and write members and submissions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipeline.data import Dataset, list_adapters
from pipeline.data.cache import DEFAULT_CACHE_DIR
from pipeline.data.registry import parse_source
from pipeline.data.store import ImageSet, ImageStore
from pipeline.engine import PRECISIONS
from pipeline.executors.cli import add_executor_args, make_executor
from pipeline.gpu_augment import GPU_MODES
from pipeline.helpformat import HelpFormatter
from pipeline.io import read_json, write_text
from pipeline.jobs import DataSpec, JobSpec, load_data
from pipeline.manifest import Manifest, member_lock
from pipeline.models import load_catalogue, select
from pipeline.models.weights import CHOICES as WEIGHT_CHOICES
from pipeline.plan import Gpu, describe, plan
from pipeline.recipes import RECIPES, Recipe, get_recipe, override
from pipeline.stats import seed_summary
from pipeline.tracking import add_tracking_args, data_fingerprint, make_tracker
from pipeline.train import MemberConfig, MemberPaths, is_done

BUNDLED_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "pbc-sample"
# Without --data the zoo runs on the bundled sample with a preset sized for a 2-core CPU.
PRESET = {"recipe": "fast", "epochs": 2, "weights": "auto"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.zoo",
        description="Fine-tune the zoo of image classifiers on a white-blood-cell dataset. "
        "Each member leaves a checkpoint, its history, metrics and submission files. "
        "Without --data it runs a quick CPU preset on the bundled PBC sample.",
        formatter_class=HelpFormatter,
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="all 28 members of the catalogue")
    which.add_argument("--models", help="comma-separated member names, e.g. resnet18,vgg16")
    which.add_argument("--list", action="store_true", help="print the catalogue and exit")
    p.add_argument("--exclude", default="", help="comma-separated members to leave out")
    p.add_argument("--dataset", default="pbc", choices=list_adapters(), help="dataset adapter")
    p.add_argument(
        "--data", type=Path, help="dataset folder, or .npz file (default: the bundled PBC sample)"
    )
    p.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="NAME=[ADAPTER:]PATH",
        help="extra evaluation set, e.g. bccd=/data/bccd (a <class>/<image> folder) or "
        "lisc=lisc:/data/LISC (any adapter); repeatable",
    )
    p.add_argument(
        "--recipe",
        help=f"training recipe: {', '.join(RECIPES)}, or a .json file written by pipeline.tune "
        "(default: gavas2021; the preset uses fast)",
    )
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--image-size", type=int, help="override the input size (default: per member)")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    p.add_argument("--lr", type=float, help="override the recipe's learning rate")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any recipe field, e.g. --set scheduler=cosine (repeatable)",
    )
    p.add_argument(
        "--seeds",
        default="0",
        help="seeds and ranges, e.g. 0-9 or 0,3,5-7; one member per seed, results with mean "
        "and 95%% interval over seeds",
    )
    p.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        help="imagenet (default), none (random "
        "init) or auto (imagenet when cached, the preset's default)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: bf16 (else fp16) mixed precision on CUDA, fp32 on CPU",
    )
    p.add_argument("--workers", type=int, help="data-loader workers (default: 0 on CPU, 8 on GPU)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        help="output root: members go to OUT/zoo/members/, submissions to OUT/submissions/",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="decoded-image cache (env WBCZOO_CACHE)",
    )
    p.add_argument("--force", action="store_true", help="retrain members that are already done")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    speed = p.add_argument_group("speed on one GPU")
    speed.add_argument(
        "--gpu-augment",
        default="auto",
        choices=GPU_MODES,
        help="flips, 90 degree turns and rotate60 on the device in batch: auto (on CUDA, when "
        "every augmentation of the recipe has a device form), on, off",
    )
    speed.add_argument("--compile", action="store_true", help="torch.compile each member")
    speed.add_argument(
        "--deterministic",
        action="store_true",
        help="exactly repeatable cuDNN kernels (default: cudnn.benchmark autotuning on CUDA)",
    )
    speed.add_argument(
        "--plan",
        action="store_true",
        help="print each member's FLOPs and the run's time floor and estimate; train nothing",
    )
    speed.add_argument(
        "--gpu-tflops", type=float, default=Gpu.tflops, help="--plan: the GPU's peak bf16 rate"
    )
    speed.add_argument(
        "--mfu", type=float, default=Gpu.mfu, help="--plan: share of the peak training reaches"
    )
    add_executor_args(p)
    add_tracking_args(p)
    return p


def parse_eval(specs: list[str]) -> dict[str, tuple[str, Path]]:
    """``--eval`` options as name -> (adapter, path)."""
    sets = {}
    for spec in specs:
        name, adapter, path = parse_source(spec)
        sets[name] = (adapter, path)
    return sets


def parse_seeds(text: str) -> list[int]:
    """``0-9``, ``0,3,5-7``: seeds in the order given, each once."""
    seeds: list[int] = []
    for part in split_names(text):
        first, dash, last = part.partition("-")
        try:
            span = range(int(first), int(last) + 1) if dash else [int(part)]
        except ValueError:
            raise SystemExit(
                f"--seeds takes numbers and ranges like 0-9,12, got {part!r}"
            ) from None
        if dash and not span:
            raise SystemExit(f"--seeds range {part!r} is empty (write low-high)")
        seeds += [s for s in span if s not in seeds]
    if not seeds:
        raise SystemExit("--seeds needs at least one seed")
    return seeds


def split_names(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def print_catalogue() -> None:
    rows = [
        {
            "name": e.name,
            "family": e.family,
            "norm": e.norm,
            "variant": e.variant,
            "input": e.input_size,
            "params_M": e.params_m,
            "GMACs": e.gmacs,
            "in --all": "yes" if e.all else "",
        }
        for e in load_catalogue().values()
    ]
    print(pd.DataFrame(rows).to_string(index=False))


def recipe_from_args(args: argparse.Namespace, preset: bool) -> Recipe:
    """The named (or saved) recipe with the preset's and the command line's overrides."""
    recipe = get_recipe(args.recipe or (PRESET["recipe"] if preset else "gavas2021"))
    changes: dict = {"epochs": PRESET["epochs"]} if preset else {}
    for spec in args.set:
        key, sep, value = spec.partition("=")
        if not sep:
            raise SystemExit(f"--set takes FIELD=VALUE, got {spec!r}")
        changes[key] = value
    for field, value in (
        ("epochs", args.epochs),
        ("image_size", args.image_size),
        ("batch_size", args.batch_size),
        ("lr", args.lr),
    ):
        if value is not None:
            changes[field] = value
    return override(recipe, changes)


def data_spec(args: argparse.Namespace, data_root: Path, preset: bool) -> DataSpec:
    # absolute: Ray and Slurm workers start in other folders, on other machines
    return DataSpec(
        args.dataset,
        data_root.resolve(),
        args.cache_dir.resolve(),
        "pbc-sample" if preset else None,
        tuple(
            (name, adapter, path.resolve())
            for name, (adapter, path) in parse_eval(args.eval).items()
        ),
        not args.no_progress,
    )


def prepare_data(
    args: argparse.Namespace, data_root: Path, preset: bool
) -> tuple[Dataset, str, dict[str, ImageSet], ImageStore]:
    """The training dataset, its output tag, every evaluation set, and the image store."""
    load_data.cache_clear()  # the folders may have changed since an earlier run in this process
    data = load_data(data_spec(args, data_root, preset))
    return data.dataset, data.tag, data.sets, data.store


def initial_state(job: JobSpec) -> str:
    """A member's state before this run touches it, from its files and its lock."""
    paths = MemberPaths.of(job.out, job.cfg)
    if is_done(paths):
        return "done"
    if member_lock(job.out, job.cfg.dataset, job.member_id).is_held():
        return "running"
    if paths.state.exists() and read_json(paths.state).get("status") == "failed":
        return "failed"
    return "pending"


def report(result: dict) -> None:
    error = result.pop("error", None)
    if result["status"] in ("failed", "busy"):
        tqdm.write(f"{result['status'].upper()} {result['member']}: {error}")
        return
    tqdm.write(
        f"{result['member']:<40} val {result['val_acc']:.4f}  test {result['test_acc']:.4f}  "
        f"F1 {result['test_macro_f1']:.4f}  {result['train_time_s']:.0f}s  {result['status']}"
    )


def format_seed_summary(summary: pd.DataFrame) -> str:
    """The accuracy columns of ``seed_summary`` as ``mean ± half-width``."""
    shown = pd.DataFrame({"arch": summary["arch"], "recipe": summary["recipe"], "n": summary["n"]})
    for col in summary.columns:
        if col.endswith("acc_mean") or col.endswith("macro_f1_mean"):
            base = col.removesuffix("_mean")
            shown[base] = [
                f"{m:.4f}" + ("" if pd.isna(h) else f" ± {h:.4f}")
                for m, h in zip(summary[col], summary[f"{base}_ci95"], strict=True)
            ]
    return shown.to_string(index=False)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print_catalogue()
        return 0
    if not args.all and not args.models:
        build_parser().error("choose members with --all or --models (see --list)")

    preset = args.data is None
    data_root = BUNDLED_SAMPLE if preset else args.data
    if preset:
        if args.dataset != "pbc":
            raise SystemExit(f"--dataset {args.dataset} needs --data PATH")
        print(
            f"No --data given: running the CPU preset on the bundled PBC sample ({data_root}): "
            f"recipe {PRESET['recipe']}, {PRESET['epochs']} epochs, small images, ImageNet weights "
            "only if already cached (else random init). Pass --data for real training.",
            flush=True,
        )

    recipe = recipe_from_args(args, preset)
    weights = args.weights or (PRESET["weights"] if preset else "imagenet")
    seeds = parse_seeds(args.seeds)
    members = select(
        load_catalogue(), split_names(args.models), args.all, split_names(args.exclude)
    )
    dataset, tag, sets, _store = prepare_data(args, data_root, preset)
    print(
        f"{tag}: {len(dataset.classes)} classes, "
        + ", ".join(f"{n} {len(s.records)}" for n, s in sets.items())
        + f"; recipe {recipe.name}; weights {weights}; seeds {seeds}; {len(members)} member(s)",
        flush=True,
    )
    for name, image_set in sets.items():
        if name not in dataset.splits:  # members are scored over the classes they share
            print(f"  {name}: {', '.join(image_set.classes)}", flush=True)
    if args.plan:
        counts = {name: len(s.records) for name, s in sets.items()}
        gpu = Gpu(args.gpu_tflops, args.mfu)
        print(
            describe(
                plan(members, recipe, len(seeds), counts, gpu), counts, recipe, len(seeds), gpu
            )
        )
        return 0

    tracker = make_tracker(args, args.out)  # a wrong URI stops the run before any training
    fingerprint = data_fingerprint(sets) if tracker else ""
    executor = make_executor(args, args.out / "zoo" / "slurm")
    spec = data_spec(args, data_root, preset)
    jobs = [
        JobSpec(
            MemberConfig(
                entry, recipe, seed, weights, tag, args.device, args.workers, args.precision,
                args.gpu_augment, args.compile, args.deterministic,
            ),
            spec, args.out.resolve(), args.force, not args.no_progress and not executor.parallel,
        )
        for seed in seeds
        for entry in members
    ]  # fmt: skip
    Manifest.of(args.out, tag).record({job.member_id: initial_state(job) for job in jobs})
    results = {}
    with tqdm(total=len(jobs), desc="zoo", unit="member", disable=args.no_progress) as overall:
        for result in executor.run(jobs):
            report(result)
            if tracker is not None:
                tracker.member_finished(args.out, tag, result, fingerprint)
            results[result["member"]] = result
            overall.update()
    rows = [results[job.member_id] for job in jobs if job.member_id in results]  # job order
    failed = [row["member"] for row in rows if row["status"] == "failed"]

    table = pd.DataFrame(rows)
    results_file = args.out / "zoo" / f"results-{tag}.csv"
    write_text(results_file, table.to_csv(index=False, lineterminator="\n"))
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nresults: {results_file}; submissions: {args.out / 'submissions' / tag}")
    done = table[table["status"].isin(["trained", "skipped (done)"])]
    if len(seeds) > 1 and not done.empty:
        summary = seed_summary(done)
        summary_file = args.out / "zoo" / f"results-{tag}-seeds.csv"
        write_text(summary_file, summary.to_csv(index=False, lineterminator="\n"))
        print(f"\nmean ± 95% interval over seeds (Student t): {summary_file}")
        print(format_seed_summary(summary))
    if failed:
        print(f"{len(failed)} member(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
