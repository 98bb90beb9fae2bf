"""``python -m pipeline.pretrain``: learn a member's backbone from unlabelled cell images."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline.commands import options as opts
from pipeline.data import load_dataset
from pipeline.data.cache import load_or_build
from pipeline.data.overlap import describe_shared, set_files, shared_images
from pipeline.data.records import IMAGE_SUFFIXES, list_images
from pipeline.data.store import ImageStore, View, image_sets
from pipeline.errors import user_errors
from pipeline.inference.features import batches, penultimate
from pipeline.io import write_json
from pipeline.models import Architecture, create_model, engine, load_catalogue
from pipeline.models.backbone_file import save_backbone
from pipeline.runs.layout import Layout
from pipeline.training.probe import knn_scores
from pipeline.training.simclr import HIDDEN, PROJECTION, SimCLRConfig, backbone_state, pretrain

PROBE_TRAIN = 3000  # labelled training images the k-NN probe votes with


def build_parser() -> argparse.ArgumentParser:
    d = SimCLRConfig()
    p = opts.command_parser(
        "python -m pipeline.pretrain",
        "Self-supervised pretraining (SimCLR) of a member's architecture on cell "
        "images, labels ignored: by default the training split of --data, plus any --extra "
        "folders. Writes a weights file for `python -m pipeline.zoo --weights FILE` and a k-NN "
        "probe of the features (against a random backbone) on validation and --eval sets.",
    )
    opts.option(p, "--arch", required=True)
    opts.add_data(p, required=True)
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        type=Path,
        help="a folder of more unlabelled images (searched recursively); repeatable. A folder "
        "that holds an image of --data's validation or test split or of an --eval set (same "
        "bytes, any name) makes the weights transductive",
    )
    opts.add_eval(p, "another lab's set to probe the features on: NAME=[ADAPTER:]PATH; repeatable")
    opts.option(p, "--epochs", type=int, default=d.epochs)
    opts.option(p, "--batch-size", type=int, default=d.batch_size)
    opts.option(p, "--lr", type=float, default=d.lr)
    p.add_argument("--temperature", type=float, default=d.temperature, help="SimCLR's NT-Xent")
    opts.option(p, "--image-size", type=int, default=d.image_size)
    opts.option(p, "--seed", type=int, default=d.seed)
    opts.add_device(p)
    opts.add_out(p)
    p.add_argument(
        "--output", type=Path, help="weights file (default: OUT/zoo/pretrained/<name>.pt)"
    )
    opts.add_cache_dir(p)
    opts.add_no_progress(p)
    opts.add_debug(p)
    return p


def folder_images(folder: Path, size: int, cache_dir: Path, progress: bool) -> View:
    """Every image file below ``folder``, decoded at ``size`` (unreadable ones left out)."""
    ids = sorted(p.relative_to(folder).as_posix() for p in list_images([folder]))
    if not ids:
        raise SystemExit(f"--extra {folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    cache = load_or_build(folder, ids, size, folder.name, cache_dir, progress=progress)
    readable = [i for i in ids if i not in cache.failed]
    return View(cache.images, cache.rows(readable), readable, [""] * len(readable))


def features(model: torch.nn.Module, entry: Architecture, view: View, rows: np.ndarray,
             precision: engine.Runtime) -> np.ndarray:  # fmt: skip
    return penultimate(model, entry, batches(view.images, rows, precision, 128))


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    catalogue = load_catalogue()
    if args.arch not in catalogue:
        raise SystemExit(f"--arch {args.arch!r} is not in the catalogue (python -m pipeline.zoo "
                         "--list names them)")  # fmt: skip
    entry = catalogue[args.arch]
    try:
        config = SimCLRConfig(args.epochs, args.batch_size, args.lr, 1e-4, args.temperature,
                              args.image_size, args.seed)  # fmt: skip
    except ValueError as exc:
        raise SystemExit(f"pipeline.pretrain: {exc}") from None
    progress = not args.no_progress
    dataset = load_dataset(args.dataset, args.data)
    if "train" not in dataset.splits:
        raise SystemExit(f"{args.data}: {args.dataset} has no train split to pretrain on")
    if missing := [f for f in args.extra if not f.is_dir()]:
        raise SystemExit(f"--extra {missing[0]}: not a folder")
    evals = {name: load_dataset(adapter, path) for name, (adapter, path) in
             opts.parse_eval(args.eval).items()}  # fmt: skip
    sets = image_sets(dataset, evals)
    # validation, test and every --eval set, by content: --extra may be the data root itself
    shared = shared_images(args.extra, {n: set_files(s) for n, s in sets.items() if n != "train"})
    transductive = bool(shared)
    store = ImageStore(args.cache_dir, progress=progress)
    for ds in (dataset, *evals.values()):
        store.register(ds)
    views = {name: store.view(s, config.image_size) for name, s in sets.items()}

    train = views["train"]
    pools = [(train.images, train.rows)]
    for folder in args.extra:
        extra = folder_images(folder, config.image_size, args.cache_dir, progress)
        pools.append((extra.images, extra.rows))
    images = np.concatenate([np.asarray(im)[rows] for im, rows in pools])
    n = len(images)
    print(f"SimCLR on {n} unlabelled images of {entry.name} at {config.image_size} px, "
          f"{config.epochs} epochs" + (f" (transductive: --extra holds {describe_shared(shared)})"
                                       if transductive else ""), flush=True)  # fmt: skip
    device = engine.resolve_device(args.device)
    bar = tqdm(total=config.epochs, desc="pretrain", unit="epoch", disable=not progress)

    def report(epoch: int, loss: float) -> None:
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}")

    t0 = time.perf_counter()
    model, losses = pretrain(entry, images, np.arange(n), config, device, report)
    bar.close()
    seconds = time.perf_counter() - t0

    name = f"{entry.name}-simclr-{dataset.name}-s{config.seed}"
    output = args.output or Layout(args.out).pretrained(name)
    info = {"method": "simclr", "config": asdict(config), "images": n, "dataset": dataset.name,
            "extra": [str(p.resolve()) for p in args.extra], "transductive": transductive,
            "shared": shared, "losses": losses, "train_time_s": round(seconds, 1)}  # fmt: skip
    save_backbone(output, entry, backbone_state(model, entry), info)

    precision = engine.Runtime(device, None, False, tuple(entry.mean), tuple(entry.std))
    torch.manual_seed(config.seed)
    random_model, _ = create_model(entry, PROJECTION, "none", config.image_size, head_hidden=HIDDEN)
    probe_rows = np.random.default_rng(0).permutation(len(train.rows))[:PROBE_TRAIN]
    rows = []
    for label, backbone in (("random init", random_model.to(device)), ("SimCLR", model)):
        fit = features(backbone, entry, train, train.rows[probe_rows], precision)
        fit_labels = [train.labels[i] for i in probe_rows]
        for set_name, view in views.items():
            if set_name in ("train", "test"):  # the test split stays unseen, as everywhere
                continue
            feats = features(backbone, entry, view, view.rows, precision)
            s = knn_scores(fit, fit_labels, feats, view.labels)
            rows.append({"backbone": label, "set": set_name, **s})
    probe = pd.DataFrame(rows)
    write_json(output.with_suffix(".json"), {**info, "probe": probe.to_dict("records")})
    print(f"\nk-NN probe (k=20, cosine; {len(probe_rows)} labelled training images vote):")
    print(probe.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nweights: {output} ({seconds:.0f} s); train members from them with "
          f"python -m pipeline.zoo --models {entry.name} --weights {output}")  # fmt: skip
    return 0
