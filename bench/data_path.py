"""Benchmark: the zoo's data path against a plain ImageFolder + PIL loader, in one run.

The zoo decodes every image once into a uint8 memory map, then each epoch reads it, augments
with albumentations and normalises on the device. The baseline decodes every JPEG every epoch
(torchvision ImageFolder + PIL + transforms). Both produce normalised float batches of the same
size with flips; the ratio is printed.

    python -m bench.data_path --data ../shared/data/pbc --size 64 --epochs 3
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T

from pipeline.data import load_dataset
from pipeline.data.augment import build_augment
from pipeline.data.cache import load_or_build
from pipeline.data.loader import CachedImages, make_loader
from pipeline.models.catalogue import IMAGENET_MEAN, IMAGENET_STD
from pipeline.models.engine import Runtime


def time_epochs(loader: DataLoader, epochs: int, to_input=lambda x: x) -> float:
    """Images per second over ``epochs`` full passes."""
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _labels in loader:
            seen += len(to_input(images))
    return seen / (time.perf_counter() - start)


def baseline_folder(root: Path, ids: list[str], size: int) -> Subset:
    """The images ``ids`` of a PBC folder as a plain torchvision pipeline reads them: ImageFolder,
    PIL decoding every time, resize, random flips, normalisation on the CPU."""
    transform = T.Compose(
        [
            T.Resize(size),
            T.CenterCrop(size),
            T.RandomHorizontalFlip(),
            T.RandomVerticalFlip(),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    folder = torchvision.datasets.ImageFolder(
        str(root / "PBC_dataset_normal_DIB"),
        transform=transform,
        is_valid_file=lambda path: not Path(path).name.startswith("."),
    )
    wanted = {Path(root / i).resolve() for i in ids}
    return Subset(
        folder, [n for n, (path, _) in enumerate(folder.samples) if Path(path).resolve() in wanted]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data/pbc"), help="a PBC folder")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="data-loader workers for both paths")
    p.add_argument("--limit", type=int, default=4000, help="images used (0: all)")
    args = p.parse_args()

    dataset = load_dataset("pbc", args.data)
    records = dataset.records()
    rng = np.random.default_rng(0)
    if args.limit and args.limit < len(records):
        records = [records[i] for i in sorted(rng.choice(len(records), args.limit, replace=False))]
    ids = [r.id for r in records]
    labels = np.array([dataset.classes.index(r.label) for r in records])

    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        cache = load_or_build(
            dataset.root, ids, args.size, "bench", Path(cache_dir), progress=False
        )
        build_s = time.perf_counter() - start
        data = CachedImages(
            cache.images, cache.rows(ids), labels, build_augment(["hflip", "vflip"], args.size)
        )
        loader = make_loader(data, args.batch_size, True, args.workers, 0, False)
        precision = Runtime(torch.device("cpu"), None, False)
        zoo_ips = time_epochs(loader, args.epochs, precision.to_input)

    base_loader = DataLoader(
        baseline_folder(dataset.root, ids, args.size),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
    )
    base_ips = time_epochs(base_loader, args.epochs)

    amortised = len(ids) * args.epochs / (build_s + len(ids) * args.epochs / zoo_ips)
    threads = torch.get_num_threads()
    print(f"machine: {platform.machine()}, {threads} threads, torch {torch.__version__}")
    print(
        f"images: {len(ids)} from {args.data} at {args.size}px; batch {args.batch_size}; "
        f"workers {args.workers}; epochs {args.epochs}"
    )
    print(f"zoo cache build (once):      {build_s:8.1f} s ({len(ids) / build_s:,.0f} img/s)")
    print(f"zoo path, per epoch:         {zoo_ips:10,.0f} img/s")
    print(f"zoo path, build amortised:   {amortised:10,.0f} img/s over {args.epochs} epochs")
    print(f"ImageFolder + PIL baseline:  {base_ips:10,.0f} img/s")
    print(
        f"ratio zoo / baseline:        {zoo_ips / base_ips:10.1f}x per epoch, "
        f"{amortised / base_ips:.1f}x amortised"
    )


if __name__ == "__main__":
    main()
