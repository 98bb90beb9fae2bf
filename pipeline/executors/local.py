"""One worker process per visible GPU (or one, in this process, on CPU) pulling from a queue."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import torch

from pipeline.executors.base import Task, run_task

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def default_workers() -> int:
    return max(torch.cuda.device_count(), 1)


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the driver dies, so a killed driver leaves no orphan
    training on (and holding its member's lock) while the next run waits for it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _start_worker(gpus: mp.Queue) -> None:
    """Pin a worker to one GPU before it touches CUDA, so each member sees a single device."""
    _die_with_parent()
    index = gpus.get()
    if index is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)


@dataclass
class LocalExecutor:
    workers: int = 1

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def run(self, jobs: list[Task]) -> Iterator[dict]:
        if not self.parallel:  # in this process: the same as a plain loop, debuggable
            for job in jobs:
                yield job.run()
            return
        # spawn, not fork: a forked CUDA context is unusable, and torch threads do not fork well
        context = mp.get_context("spawn")
        gpus = context.Queue()
        visible = torch.cuda.device_count()
        for i in range(self.workers):
            gpus.put(i % visible if visible else None)
        with ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_start_worker, initargs=(gpus,)
        ) as pool:
            futures = {pool.submit(run_task, job): job for job in jobs}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except BrokenProcessPool as exc:  # a worker was killed: the pool is gone
                    yield futures[future].lost(str(exc))
