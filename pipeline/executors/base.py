"""What every executor does: run job specs, yield one result row per job as each finishes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from pipeline.jobs import JobSpec
from pipeline.manifest import Manifest

EXECUTORS = ("local", "ray", "submitit")


class Executor(Protocol):
    parallel: bool  # more than one member at a time: per-member progress bars would interleave

    def run(self, jobs: list[JobSpec]) -> Iterator[dict]:
        """Run every job (through :func:`pipeline.jobs.run_job`); yield its row when it ends."""
        ...


def lost(job: JobSpec, why: str) -> dict:
    """The row of a job whose worker died: the member resumes from its last epoch next run.

    The dead worker could not record its end, so the manifest is corrected here."""
    error = f"worker lost ({why}); run the zoo again to resume it"
    Manifest.of(job.out, job.cfg.dataset).update(job.member_id, "failed", error=error)
    return {"member": job.member_id, "arch": job.cfg.entry.name, "status": "failed", "error": error}
