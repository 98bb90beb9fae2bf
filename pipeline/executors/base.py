"""What every executor does: run tasks, yield one result row per task as each finishes.

A task is any picklable object with ``run() -> dict`` (its result row) and ``lost(why) -> dict``
(the row when its worker died): a zoo member (:class:`pipeline.training.jobs.JobSpec`) or a
tuning worker (:class:`pipeline.commands.tune.TuneWorker`). Executors know nothing else about
what they run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

EXECUTORS = ("local", "ray", "submitit")


class Task(Protocol):
    def run(self) -> dict: ...

    def lost(self, why: str) -> dict: ...


def run_task(task: Task) -> dict:
    """The function executors ship to workers (a plain function pickles everywhere)."""
    return task.run()


class Executor(Protocol):
    parallel: bool  # more than one task at a time: per-task progress bars would interleave

    def run(self, tasks: list[Task]) -> Iterator[dict]:
        """Run every task; yield its row when it ends."""
        ...
