"""Benchmark: peak memory and time of training steps, the zoo's fused optimiser step against
the step by parts (torch's default on CPU), one fresh process each.

The first command's peak is a VGG's: 16 bytes a parameter under AdamW (weights, gradients, two
moments) and, stepped by parts, temporaries the size of its largest weight on top.

    python -m bench.step_memory                      # VGG19 at 64 px, batch 64, as the preset
    python -m bench.step_memory --models resnet18,vgg11 --steps 5
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from pipeline.models import create_model, load_catalogue
from pipeline.training import optim
from pipeline.training.recipes import get_recipe

MODES = ("by parts", "fused")


def run_steps(member: str, size: int, batch: int, steps: int, fused: bool) -> dict:
    """Train ``steps`` steps of ``member`` from random init on random images, in this process."""
    torch.manual_seed(0)
    model, _ = create_model(load_catalogue()[member], 8, "none", size)
    model.train()
    if not fused:  # the zoo's optimiser and settings, told that no fused step serves them
        optim.fused = lambda params: False
    optimizer = optim.make_optimizer(model, get_recipe("fast"))
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 8, (batch,))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else getattr(out, "logits", out)
        torch.nn.functional.cross_entropy(logits, y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mb": round(peak_mb), "step_s": round(min(times), 3)}


def measure(member: str, args: argparse.Namespace, fused: bool) -> dict:
    """``run_steps`` in a fresh interpreter: a process's peak never comes down."""
    argv = [sys.executable, "-m", "bench.step_memory", "--child", "--models", member,
            "--size", str(args.size), "--batch-size", str(args.batch_size),
            "--steps", str(args.steps)] + (["--fused"] if fused else [])  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="vgg19", help="catalogue members, comma-separated")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fused", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    members = args.models.split(",")
    if args.child:
        print(json.dumps(run_steps(members[0], args.size, args.batch_size, args.steps, args.fused)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.size} px, "
          f"batch {args.batch_size}, best of {args.steps} steps, AdamW (recipe fast)")  # fmt: skip
    print(f"{'member':<20} {'mode':<9} {'peak MB':>8} {'step s':>7}")
    for member in members:
        base, zoo = (measure(member, args, fused) for fused in (False, True))
        for mode, r in zip(MODES, (base, zoo), strict=True):
            print(f"{member:<20} {mode:<9} {r['peak_mb']:>8} {r['step_s']:>7.3f}")
        print(f"ratio fused / by parts: peak {zoo['peak_mb'] / base['peak_mb']:.2f}x, "
              f"step time {zoo['step_s'] / base['step_s']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
