"""Engines that run the zoo's tasks: ``local`` processes, ``ray`` tasks, ``submitit`` (Slurm)."""

from pipeline.executors.base import EXECUTORS, Executor, Task, run_task

__all__ = ["EXECUTORS", "Executor", "Task", "run_task"]
