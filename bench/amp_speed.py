"""Benchmark: training images/s of catalogue members in fp32 and in mixed precision, one run.

The GPU check of the zoo: one epoch per member and precision on the PBC full-resolution sample,
through the zoo's own data path (decode-once cache, albumentations, on-device normalisation).

    python -m bench.amp_speed --data ../shared/data/pbc-fullres-sample --models resnet18,resnet50
    python -m bench.amp_speed --device cpu --size 64 --precisions fp32   # runs anywhere
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.data import load_dataset
from pipeline.data.augment import build_augment
from pipeline.data.cache import DEFAULT_CACHE_DIR
from pipeline.data.loader import CachedImages, make_loader
from pipeline.data.store import ImageSet, ImageStore
from pipeline.models import create_model, engine, load_catalogue
from pipeline.runs import provenance
from pipeline.training.optim import make_optimizer, make_scheduler
from pipeline.training.recipes import get_recipe, override


def images_per_second(
    member: str, data: CachedImages, size: int, batch: int, precision: engine.Runtime
) -> float:
    """One timed epoch after two warm-up batches (cuDNN autotuning, allocator)."""
    entry = load_catalogue()[member]
    torch.manual_seed(0)
    model, _ = create_model(entry, 8, "none", size)
    memory_format = torch.channels_last if precision.channels_last else torch.preserve_format
    model = model.to(precision.device, memory_format=memory_format)
    recipe = override(get_recipe("gavas2021"), {"batch_size": batch, "epochs": 1})
    optimizer = make_optimizer(model, recipe)
    scheduler = make_scheduler(optimizer, recipe, max(len(data) // batch, 1))
    scaler = torch.amp.GradScaler(precision.device.type, enabled=precision.dtype == torch.float16)
    loss = nn.CrossEntropyLoss()
    workers = 0 if precision.device.type == "cpu" else 8
    pin = precision.device.type == "cuda"
    n = 2 * batch
    warm = CachedImages(data.images, data.rows[:n], data.labels[:n], data.augment)
    warm_loader = make_loader(warm, batch, True, workers, 0, pin, True)
    engine.train_one_epoch(model, warm_loader, optimizer, scheduler, scaler, loss, precision, 0.3)
    loader = make_loader(data, batch, True, workers, 1, pin, True)
    sync = torch.cuda.synchronize if precision.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    engine.train_one_epoch(model, loader, optimizer, scheduler, scaler, loss, precision, 0.3)
    sync()
    return len(loader) * batch / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data/pbc-fullres-sample"))
    p.add_argument("--models", default="resnet18,resnet50")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--precisions", default="fp32,auto", help="comma-separated: fp32,auto,bf16,fp16")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = p.parse_args()

    device = engine.resolve_device(args.device)
    with warnings.catch_warnings():  # a PBC subset: that it lacks most split images is expected
        warnings.simplefilter("ignore")
        dataset = load_dataset("pbc", args.data)
    store = ImageStore(args.cache_dir, progress=False)
    store.register(dataset)
    view = store.view(
        ImageSet("all", dataset.name, dataset.root, tuple(dataset.records())), args.size
    )
    labels = np.array([dataset.classes.index(label) for label in view.labels])
    data = CachedImages(
        view.images, view.rows, labels, build_augment(["hflip", "vflip"], args.size)
    )
    print(f"device: {provenance.device_name(device)}; torch {torch.__version__}")
    print(f"{len(data)} images of {args.data} at {args.size}px, batch {args.batch_size}")
    print(f"{'member':<20}" + "".join(f"{p:>12}" for p in args.precisions.split(",")) + "   ratio")
    for member in args.models.split(","):
        speeds = []
        for choice in args.precisions.split(","):
            precision = engine.Runtime(device, engine.amp_dtype(device, choice), args.channels_last)
            speeds.append(images_per_second(member, data, args.size, args.batch_size, precision))
        ratio = f"{speeds[-1] / speeds[0]:7.2f}x" if len(speeds) > 1 else ""
        print(f"{member:<20}" + "".join(f"{s:12.1f}" for s in speeds) + "   " + ratio, flush=True)


if __name__ == "__main__":
    main()
