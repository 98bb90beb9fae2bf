"""Members as a submitit job array: Slurm on a cluster, ``local`` or ``debug`` to try it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.executors.base import Task, run_task


@dataclass
class SubmititExecutor:
    folder: Path  # logs and pickled jobs, on the shared file system (OUT/zoo/slurm)
    cluster: str | None = None  # None: Slurm when sbatch is there, else local processes
    partition: str | None = None
    gpus_per_node: int = 1
    timeout_min: int = 24 * 60
    poll_s: float = 5.0
    parallel: bool = True

    def run(self, jobs: list[Task]) -> Iterator[dict]:
        import submitit  # only this backend needs it

        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        params: dict = {"timeout_min": self.timeout_min, "gpus_per_node": self.gpus_per_node}
        if self.partition:
            params["slurm_partition"] = self.partition
        executor.update_parameters(**params)
        pending = dict(zip(executor.map_array(run_task, jobs), jobs, strict=True))
        while pending:
            for handle in [h for h in pending if h.done()]:
                job = pending.pop(handle)
                try:
                    yield handle.result()
                except Exception as exc:  # the job itself died (pre-emption, timeout, node)
                    yield job.lost(f"{type(exc).__name__}: {exc}")
            if pending:
                time.sleep(self.poll_s)
