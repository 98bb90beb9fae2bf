"""One member as a small picklable job, and the one function every executor runs for it.

Local worker processes, Ray tasks and Slurm jobs all call :func:`run_job`, so a member's
outputs are the same files in the same shared folder whichever engine ran it.
"""

from __future__ import annotations

import functools
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.data import Dataset, load_dataset
from pipeline.data.store import ImageSet, ImageStore, image_sets
from pipeline.errors import UserError
from pipeline.io import write_json, write_text
from pipeline.names import plain_name
from pipeline.runs.manifest import Manifest, MemberBusy, member_lock, remove_partial_files
from pipeline.training.member import MemberConfig, MemberPaths, SettingsMismatch, train_member


@dataclass(frozen=True)
class DataSpec:
    """Where a job finds its data: the training dataset, extra evaluation sets, the cache."""

    adapter: str
    root: Path
    cache_dir: Path
    tag: str | None = None  # the output tag; None: the dataset's name
    eval: tuple[tuple[str, str, Path], ...] = ()  # (set name, adapter, root)
    progress: bool = True


@dataclass(frozen=True)
class Data:
    dataset: Dataset
    tag: str
    sets: dict[str, ImageSet]
    store: ImageStore


@functools.lru_cache(maxsize=2)  # a worker process loads the data once for all its members
def load_data(spec: DataSpec) -> Data:
    """The training dataset, its output tag, every evaluation set, and the image store."""
    dataset = load_dataset(spec.adapter, spec.root)
    if not dataset.trainable:
        raise UserError(f"{spec.root}: {spec.adapter} has no train/val/test split")
    extra = {name: load_dataset(adapter, path) for name, adapter, path in spec.eval}
    store = ImageStore(spec.cache_dir, progress=spec.progress)
    for ds in (dataset, *extra.values()):
        store.register(ds)
    tag = plain_name(spec.tag or dataset.name, f"the dataset name of {spec.root}")
    return Data(dataset, tag, image_sets(dataset, extra), store)


@dataclass(frozen=True)
class JobSpec:
    cfg: MemberConfig  # its dataset tag must be the data's tag
    data: DataSpec
    out: Path
    force: bool = False
    progress: bool = True

    @property
    def member_id(self) -> str:
        return self.cfg.member_id

    def run(self) -> dict:
        return run_job(self)

    def lost(self, why: str) -> dict:
        """The row of a member whose worker died: it resumes from its last epoch next run.

        The dead worker could not record its end, so the manifest is corrected here."""
        error = f"worker lost ({why}); run the zoo again to resume it"
        Manifest.of(self.out, self.cfg.dataset).update(self.member_id, "failed", error=error)
        return {"member": self.member_id, "arch": self.cfg.arch.name, "status": "failed",
                "error": error}  # fmt: skip


def run_job(spec: JobSpec) -> dict:
    """Train one member under its lock; a failure is returned as a row, never raised.

    The row has the member's summary and ``status`` (trained, skipped (done), busy or failed);
    ``error`` says why for the last two.
    """
    cfg, out = spec.cfg, spec.out
    paths = MemberPaths.of(out, cfg)
    manifest = Manifest.of(out, cfg.dataset)
    failed = {"member": cfg.member_id, "arch": cfg.arch.name, "recipe": cfg.recipe.name,
              "seed": cfg.seed, "status": "failed"}  # fmt: skip
    lock = member_lock(out, cfg.dataset, cfg.member_id)
    try:
        lock.acquire()
    except MemberBusy as exc:  # another run trains it; this one must not
        return {**failed, "status": "busy", "error": str(exc)}
    try:
        remove_partial_files(paths.root, paths.submissions)
        manifest.update(cfg.member_id, "running")
        data = load_data(spec.data)
        result = train_member(
            cfg, data.sets, data.dataset.classes, data.store, out, spec.force, spec.progress
        )
    except SettingsMismatch as exc:  # the finished or partly trained member stays as it is
        manifest.update(cfg.member_id, "failed", error=str(exc))
        return {**failed, "error": str(exc)}
    except Exception as exc:  # one broken member must not stop the zoo
        error = f"{type(exc).__name__}: {exc}"
        write_text(paths.error, traceback.format_exc())
        write_json(paths.state, {"status": "failed", "error": error})
        manifest.update(cfg.member_id, "failed", error=error)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {**failed, "error": f"{error} (see {paths.error})"}
    finally:
        lock.release()
    manifest.update(cfg.member_id, "done")
    return result
