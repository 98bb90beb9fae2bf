"""The command-line options that choose an executor, shared by the zoo and the tuner."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from pipeline.errors import UserError
from pipeline.executors.base import EXECUTORS, Executor
from pipeline.executors.local import LocalExecutor, default_workers
from pipeline.executors.ray_backend import RayExecutor
from pipeline.executors.submitit_backend import SubmititExecutor


def add_executor_args(p: argparse.ArgumentParser, what: str = "member") -> None:
    fan = p.add_argument_group("many GPUs and machines")
    fan.add_argument(
        "--executor",
        default="local",
        choices=EXECUTORS,
        help=f"local: worker processes on this machine; ray: a Ray task per {what}; submitit: "
        "a Slurm job array. Outputs land in --out the same way for all three",
    )
    fan.add_argument(
        "--local-workers",
        type=int,
        help="local: worker processes (default: one per visible GPU, one on CPU)",
    )
    fan.add_argument("--ray-address", help="ray: an existing cluster, e.g. ray://head:10001")
    fan.add_argument(
        f"--gpus-per-{what}",
        dest="gpus_per_task",
        metavar="N",
        type=float,
        help=f"ray: GPUs each {what}'s task holds (default: 1, or 0 with --device cpu)",
    )
    fan.add_argument(
        "--max-retries", type=int, default=3, help=f"ray: retries of a {what} on worker loss"
    )
    fan.add_argument(
        "--slurm-cluster",
        choices=("slurm", "local", "debug"),
        help="submitit: where jobs run (default: Slurm when sbatch is found, else local)",
    )
    fan.add_argument("--slurm-partition", help="submitit: the Slurm partition")
    fan.add_argument(
        "--slurm-gpus-per-node", type=int, default=1, help=f"submitit: GPUs per {what}'s job"
    )
    fan.add_argument(
        "--timeout-min", type=int, default=24 * 60, help=f"submitit: time limit per {what}"
    )


def check_executor_args(args: argparse.Namespace) -> None:
    """Counts that must be positive (or not negative), checked before any work starts."""
    least = {
        "--local-workers": (args.local_workers, 1),
        "--max-retries": (args.max_retries, 0),
        "--slurm-gpus-per-node": (args.slurm_gpus_per_node, 0),
        "--timeout-min": (args.timeout_min, 1),
    }
    for option, (value, low) in least.items():
        if value is not None and value < low:
            raise UserError(f"{option} must be at least {low}, not {value}")
    gpus = args.gpus_per_task
    if gpus is not None and not (math.isfinite(gpus) and gpus >= 0):
        raise UserError(f"--gpus-per-member (--gpus-per-worker) must be 0 or more, not {gpus}")


def make_executor(args: argparse.Namespace, slurm_folder: Path) -> Executor:
    if args.executor == "ray":
        gpus = args.gpus_per_task
        if gpus is None:
            gpus = 0.0 if args.device == "cpu" else 1.0
        return RayExecutor(args.ray_address, gpus, args.max_retries)
    if args.executor == "submitit":
        return SubmititExecutor(
            slurm_folder,
            args.slurm_cluster,
            args.slurm_partition,
            args.slurm_gpus_per_node,
            args.timeout_min,
        )
    return LocalExecutor(args.local_workers or default_workers())
