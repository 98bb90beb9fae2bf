"""Each member a Ray task holding one GPU, on a local or an existing (``--ray-address``) cluster.

A task's worker process exits after its member (``max_calls=1``), so its GPU memory is
released before the next member; a task whose worker or node dies is retried, and the retry
resumes from the member's last finished epoch in the shared output folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.executors.base import Task, run_task

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RayExecutor:
    address: str | None = None  # None: a cluster already initialised here, else a local one
    gpus_per_task: float = 1.0  # 0 on CPU-only clusters
    max_retries: int = 3  # retries on worker or node loss; exceptions are results, not retried
    parallel: bool = True

    def run(self, jobs: list[Task]) -> Iterator[dict]:
        import ray  # only this backend needs it

        if not ray.is_initialized():
            # workers import the pipeline from this checkout (same path on every node)
            ray.init(address=self.address, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
        task = ray.remote(
            num_gpus=self.gpus_per_task,
            max_retries=self.max_retries,
            retry_exceptions=False,
            max_calls=1,
        )(run_task)
        pending = {task.remote(job): job for job in jobs}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ref)
            try:
                yield ray.get(ref)
            except (ray.exceptions.RayError, OSError) as exc:  # retries used up
                yield job.lost(f"{type(exc).__name__}: {exc}")
