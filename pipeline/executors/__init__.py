"""Engines that run the zoo's jobs: ``local`` processes, ``ray`` tasks, ``submitit`` (Slurm)."""

from pipeline.executors.base import EXECUTORS, Executor, lost

__all__ = ["EXECUTORS", "Executor", "lost"]
