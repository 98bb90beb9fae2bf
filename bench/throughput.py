"""Benchmark: training images/s per member, the zoo's path against a plain torchvision loop.

Both train the same architecture (random init, SGD, batch ``--batch-size``) on the same images
in one run. The plain loop: ImageFolder + PIL decoding and transforms every epoch, fp32, default
memory format. The zoo's path: the decode-once uint8 cache, pinned non-blocking batches, flips
and 90 degree turns on the device, normalisation on the device, mixed precision where the
device has it (bf16 on CUDA; fp32 on a CPU, where bf16 is slower), channels_last, and
cudnn.benchmark. On CUDA it also prints the model-FLOPs utilisation of the zoo's path.

    python -m bench.throughput --device cpu --size 64 --members squeezenet1_1,resnet18
    python -m bench.throughput --data ../shared/data/pbc-fullres-sample --size 224 \\
        --members resnet18,resnet50,vgg16,densenet121,mobilenet_v2,efficientnet_v2_s
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from bench.data_path import baseline_folder
from pipeline.data import load_dataset
from pipeline.data.cache import load_or_build
from pipeline.data.loader import CachedImages, make_loader
from pipeline.models import create_model, engine, load_catalogue
from pipeline.runs import provenance
from pipeline.training.gpu_augment import GpuAugment
from pipeline.training.plan import Gpu, member_gmacs

WARMUP_BATCHES = 2  # cuDNN autotuning and the allocator settle in these


def train_steps(
    model: nn.Module,
    batches: Iterable,
    to_input,
    device: torch.device,
    autocast,
    steps: int,
) -> float:
    """Images/s over ``steps`` SGD steps after the warm-up batches (wall clock, synchronised)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    seen, start = 0, 0.0
    for step, (images, targets) in enumerate(batches):
        if step == WARMUP_BATCHES:
            sync()
            start, seen = time.perf_counter(), 0
        if step == WARMUP_BATCHES + steps:
            break
        x, y = to_input(images), targets.to(device, non_blocking=True)
        with autocast():
            out = model(x)
        logits = out[0] if isinstance(out, tuple) else out  # Inception/GoogLeNet aux outputs
        loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
    sync()
    return seen / (time.perf_counter() - start)


def fresh_model(member: str, size: int, device: torch.device, channels_last: bool) -> nn.Module:
    torch.manual_seed(0)
    model, _ = create_model(load_catalogue()[member], 8, "none", size)
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    return model.to(device, memory_format=memory_format).train()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data/pbc-fullres-sample"))
    p.add_argument("--members", default="resnet18,squeezenet1_1")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=512, help="images timed per member and path")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--workers", type=int, help="loader workers, both paths (default 2 CPU, 8 GPU)")
    p.add_argument("--gpu-tflops", type=float, default=Gpu.tflops, help="peak, for the MFU")
    p.add_argument("--compile", action="store_true", help="torch.compile the zoo path's model")
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: torch's); on a shared CPU, 1 avoids OpenMP oversubscription",
    )
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = engine.resolve_device(args.device)
    cuda = device.type == "cuda"
    workers = args.workers if args.workers is not None else (8 if cuda else 2)
    engine.configure_backends(device, deterministic=False)
    with warnings.catch_warnings():  # a PBC subset lacks most split images: expected
        warnings.simplefilter("ignore")
        dataset = load_dataset("pbc", args.data)
    records = dataset.records()
    ids = [r.id for r in records]
    labels = np.array([dataset.classes.index(r.label) for r in records])
    steps = max(args.images // args.batch_size, 1)
    # cycle the images so that warm-up and timed steps never run out
    order = np.resize(np.arange(len(ids)), (steps + WARMUP_BATCHES + 1) * args.batch_size)
    base_data = Subset(baseline_folder(dataset.root, ids, args.size), order.tolist())
    precision = engine.Runtime(device, engine.amp_dtype(device), channels_last=True)

    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        cache = load_or_build(
            dataset.root, ids, args.size, "bench", Path(cache_dir), progress=False
        )
        build_s = time.perf_counter() - start
        zoo_data = CachedImages(cache.images, cache.rows(ids)[order], labels[order])
        print(f"device: {provenance.device_name(device)}; torch {torch.__version__}; "
              f"{torch.get_num_threads()} threads; loader workers {workers}")  # fmt: skip
        print(f"{len(ids)} images of {args.data} at {args.size}px (cache built once in "
              f"{build_s:.1f} s); batch {args.batch_size}; {steps * args.batch_size} images "
              f"timed per path after {WARMUP_BATCHES} warm-up batches")  # fmt: skip
        print(f"zoo path: cache + device flips/turns + {precision.name} + channels_last"
              f"{' + torch.compile' if args.compile else ''}; "
              "baseline: ImageFolder + PIL + fp32")  # fmt: skip
        header = f"{'member':<20}{'baseline img/s':>16}{'zoo img/s':>12}{'ratio':>8}"
        print(header + ("  zoo MFU" if cuda else ""), flush=True)
        for member in args.members.split(","):
            augment = GpuAugment(("hflip", "vflip", "rot90"), seed=0)
            model = fresh_model(member, args.size, device, True)
            zoo_ips = train_steps(
                torch.compile(model) if args.compile else model,
                make_loader(zoo_data, args.batch_size, False, workers, 0, cuda, True),
                lambda x, a=augment: precision.to_input(x, a),
                device,
                precision.autocast,
                steps,
            )
            base_ips = train_steps(
                fresh_model(member, args.size, device, False),
                DataLoader(base_data, args.batch_size, num_workers=workers, drop_last=True),
                lambda x: x.to(device),  # already normalised float batches, on the CPU
                device,
                contextlib.nullcontext,  # fp32
                steps,
            )
            line = f"{member:<20}{base_ips:16.1f}{zoo_ips:12.1f}{zoo_ips / base_ips:7.2f}x"
            if cuda:
                gmacs = member_gmacs(load_catalogue()[member], args.size)
                line += f"  {zoo_ips * 6e9 * gmacs / (args.gpu_tflops * 1e12):7.1%}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
