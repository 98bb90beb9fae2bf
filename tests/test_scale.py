"""Scale: the cost plan, device augmentation, manifest and locks, and the three executors,
including a driver killed with SIGKILL mid-training and run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.commands import zoo
from pipeline.models import engine, load_catalogue
from pipeline.runs.manifest import Manifest, MemberBusy, MemberLock, remove_partial_files
from pipeline.runs.submissions import read_submission
from pipeline.training.gpu_augment import GpuAugment, rotate, split_augment
from pipeline.training.plan import Gpu, member_flops, plan
from pipeline.training.recipes import get_recipe, override

REPO = Path(__file__).resolve().parents[1]
MEMBERS = ("squeezenet1_1", "squeezenet1_0")  # small checkpoints: quick to write each epoch


@pytest.fixture
def args(tmp_path: Path, tiny: Path, zoo_args) -> Callable[..., list[str]]:
    """``args(*extra, models=MEMBERS, epochs=1)``: a zoo of ``tiny`` into ``tmp_path/out``."""

    def make(*extra: str, models: str = ",".join(MEMBERS), epochs: int = 1) -> list[str]:
        return zoo_args(tiny, tmp_path / "out", *extra, models=models, epochs=epochs)

    return make


def recipe_name(epochs: int = 1) -> str:
    """The name the zoo_args flags give the recipe: fast plus the fingerprint of their changes."""
    return override(get_recipe("fast"), {"image_size": 32, "epochs": epochs, "batch_size": 8}).name


def assert_zoo_finished(out: Path, epochs: int = 1) -> None:
    """Every member done once, its submissions readable, no temporary file anywhere."""
    members = out / "zoo" / "members" / "cells"
    done = {p.parent.name for p in members.glob("*/state.json")
            if json.loads(p.read_text())["status"] == "done"}  # fmt: skip
    assert done == {f"{m}-{recipe_name(epochs)}-s0" for m in MEMBERS}
    for member in done:
        assert len(pd.read_csv(members / member / "history.csv")) == epochs
        for name in ("val", "test"):
            sub = read_submission(out / "submissions" / "cells" / member / f"{name}.csv")
            assert len(sub.ids) > 0 and sub.probs.shape[1] == 3
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    manifest = json.loads((out / "zoo" / "manifest-cells.json").read_text())
    assert {k: v["state"] for k, v in manifest.items()} == dict.fromkeys(done, "done")
    results = pd.read_csv(out / "zoo" / "results-cells.csv")
    assert list(results["arch"]) == list(MEMBERS)  # in the order asked for, whoever ran them


# --- plan ---------------------------------------------------------------------------------


def test_plan_counts_training_validation_and_final_predictions() -> None:
    resnet18 = load_catalogue()["resnet18"]
    counts = {"train": 1000, "val": 100, "test": 50}
    recipe = get_recipe("gavas2021")  # 25 epochs at the native 224 px
    table = plan([resnet18], recipe, 2, counts, Gpu(tflops=1000.0, mfu=0.25))
    # 2 FLOPs per MAC; 3x for training; validation every epoch; val + test once at the end
    flops = 2 * (2e9 * 1.814 * (3 * 1000 * 25 + 100 * 25 + 150))
    row = table.iloc[0]
    assert row["GMACs"] == pytest.approx(1.814) and row["size"] == 224
    assert row["PFLOPs"] == pytest.approx(flops / 1e15, abs=0.01)
    assert row["floor_s"] == pytest.approx(flops / 1e15, abs=0.1)
    assert row["estimate_s"] == pytest.approx(4 * flops / 1e15, abs=0.1)
    assert row["disk_MB"] == pytest.approx(2 * 2 * 11.181, abs=0.1)  # 2 seeds, half precision
    assert table.iloc[-1]["member"] == "TOTAL"
    # half the side, a quarter of the MACs
    small = plan([resnet18], override(recipe, {"image_size": 112}), 1, counts, Gpu())
    assert small.iloc[0]["GMACs"] == pytest.approx(1.814 / 4, abs=1e-3)
    assert member_flops(1.0, 1, {"train": 1, "val": 0}) == 6e9


def test_plan_cli_prints_the_table_and_trains_nothing(tmp_path, args, capsys) -> None:
    assert zoo.main(args("--plan", "--gpu-tflops", "100")) == 0
    out = capsys.readouterr().out
    assert "squeezenet1_1" in out and "TOTAL" in out and "floor_s" in out and "100 TFLOPS" in out
    assert "disk_MB" in out and "disk: up to 2.93 MB of member weights" in out
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


# --- augmentation on the device ----------------------------------------------------------


def dihedral(image: torch.Tensor) -> list[torch.Tensor]:
    turns = [torch.rot90(image, k, dims=(1, 2)) for k in range(4)]
    return turns + [t.flip(2) for t in turns]


def test_flips_and_turns_on_the_device_are_exact_and_seeded() -> None:
    x = torch.arange(32 * 3 * 6 * 6, dtype=torch.float32).view(32, 3, 6, 6)
    augment = ["hflip", "vflip", "rot90"]
    out = GpuAugment(augment, seed=5)(x)
    used = set()
    for image, result in zip(x, out, strict=True):
        matches = [k for k, d in enumerate(dihedral(image)) if torch.equal(d, result)]
        assert matches, "a pixel was changed, not only moved"
        used.add(matches[0])
    assert len(used) >= 4  # images of one batch get different transforms
    assert torch.equal(GpuAugment(augment, seed=5)(x), out)  # same seed, same batch
    assert not torch.equal(GpuAugment(augment, seed=6)(x), out)
    assert torch.equal(GpuAugment(augment, seed=5)(x.to(torch.uint8)), out.to(torch.uint8))
    with pytest.raises(ValueError, match="square"):
        GpuAugment(["rot90"], 0)(torch.zeros(2, 3, 4, 6))


def test_rotation_on_the_device_keeps_the_centre_and_fills_by_reflection() -> None:
    x = torch.rand(4, 3, 16, 16)
    assert torch.allclose(rotate(0)(x, torch.Generator().manual_seed(0)), x, atol=1e-5)
    y = rotate(60)(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert y.min() >= x.min() - 1e-5 and y.max() <= x.max() + 1e-5  # bilinear, no black corners
    assert torch.allclose(y.mean((2, 3)), x.mean((2, 3)), atol=0.1)


def test_split_augment_sends_what_has_a_device_form_to_the_device() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    flips = ("hflip", "vflip", "rotate60")
    assert split_augment(flips, "auto", cpu) == (flips, ())
    assert split_augment(flips, "auto", cuda) == ((), flips)
    mixed = ("hflip", "color")
    assert split_augment(mixed, "auto", cuda) == (mixed, ())  # all or nothing
    assert split_augment(mixed, "on", cpu) == (("color",), ("hflip",))
    assert split_augment(mixed, "off", cuda) == (mixed, ())
    with pytest.raises(ValueError, match="auto, on, off"):
        split_augment(mixed, "maybe", cpu)


@pytest.mark.trains
def test_training_with_device_augmentation_and_compile_flag(tmp_path, args, monkeypatch) -> None:
    """CPU-only check of the wiring: torch.compile is replaced by a recorder (compiling on
    this 2-core CPU would take minutes); the GPU check runs the real thing."""
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(kw) or model)
    flags = ("--gpu-augment", "on", "--compile", "--deterministic")
    assert zoo.main(args(*flags, models="squeezenet1_1")) == 0
    meta = json.loads(
        (tmp_path / f"out/submissions/cells/squeezenet1_1-{recipe_name()}-s0/meta.json").read_text()
    )
    assert meta["augment_on_device"] == ["hflip", "vflip", "rot90"]
    assert meta["compiled"] is True and meta["deterministic"] is True
    assert compiled == [{"dynamic": False}]


def test_fixed_batch_pads_short_evaluation_batches() -> None:
    shapes = []

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shapes.append(tuple(x.shape))
            return x.flatten(1)[:, :2]

    model = engine.FixedBatch(Probe(), batch=8).eval()
    x = torch.rand(3, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    out = model(x)
    assert shapes == [(8, 3, 2, 2)] and torch.equal(out, x.flatten(1)[:, :2])
    model.train()(torch.rand(3, 3, 2, 2))  # training batches pass untouched
    assert shapes[-1] == (3, 3, 2, 2)


# --- manifest and locks ------------------------------------------------------------------


def test_member_lock_is_exclusive_and_names_its_holder(tmp_path) -> None:
    path = tmp_path / "locks" / "m.lock"
    with MemberLock(path):
        with pytest.raises(MemberBusy, match=f'"pid": {os.getpid()}'):
            MemberLock(path).acquire()
        assert MemberLock(path).is_held()
    assert not MemberLock(path).is_held()
    with MemberLock(path):  # free again after release
        pass


def test_a_lock_left_by_a_killed_process_is_free(tmp_path) -> None:
    path = tmp_path / "m.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pipeline.runs.manifest import MemberLock; "
         f"lock = MemberLock(__import__('pathlib').Path({str(path)!r})); lock.acquire(); "
         "print('held', flush=True); time.sleep(60)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    assert MemberLock(path).is_held()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert str(holder.pid) in path.read_text()  # the dead holder's name is still in the file
    lock = MemberLock(path)
    lock.acquire()  # but the kernel released its lock
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_manifest_updates_and_leftovers(tmp_path) -> None:
    manifest = Manifest.of(tmp_path, "cells")
    manifest.record({"a": "pending", "b": "pending"})
    manifest.update("a", "running")
    manifest.update("b", "failed", error="boom")
    entries = manifest.read()
    assert entries["a"]["state"] == "running" and entries["a"]["pid"] == os.getpid()
    assert entries["b"]["error"] == "boom"
    with pytest.raises(ValueError, match="pending, running, done, failed"):
        manifest.update("a", "finished")
    leftover = manifest.path.with_name(f".{manifest.path.name}.abc.tmp")
    leftover.write_text("{")  # a writer killed mid-write
    manifest.record({"a": "done"})
    assert not leftover.exists() and manifest.read()["a"] == {"state": "done"}
    folder = tmp_path / "member"
    folder.mkdir()
    (folder / ".last.pt.x.tmp").write_bytes(b"")
    (folder / "best.pt").write_bytes(b"")
    assert [p.name for p in remove_partial_files(folder)] == [".last.pt.x.tmp"]
    assert [p.name for p in folder.iterdir()] == ["best.pt"]


def test_a_member_locked_by_another_run_is_left_to_it(tmp_path, args, capsys) -> None:
    name = f"squeezenet1_1-{recipe_name()}-s0"
    lock = tmp_path / f"out/zoo/locks/cells/{name}.lock"
    with MemberLock(lock):  # not a failure, but not done either: the other run trains it
        assert zoo.main(args(models="squeezenet1_1")) == zoo.EXIT_BUSY
    printed = capsys.readouterr()
    assert f"BUSY {name}" in printed.out
    assert printed.err.strip() == (
        f"1 member(s) still training in another run, not waited for: {name}; run the same "
        "command again once that run ends"
    )
    assert not (tmp_path / f"out/zoo/members/cells/{name}").exists()
    state = json.loads((tmp_path / "out/zoo/manifest-cells.json").read_text())
    assert state[name]["state"] == "running"


# --- executors ---------------------------------------------------------------------------


@pytest.mark.trains  # in worker processes: the guard does not see them
def test_local_executor_with_two_worker_processes(tmp_path, args) -> None:
    assert zoo.main(args("--local-workers", "2")) == 0
    assert_zoo_finished(tmp_path / "out")
    pids = {json.loads(p.read_text())["pid"]
            for p in (tmp_path / "out/zoo/locks/cells").glob("*.lock")}  # fmt: skip
    assert os.getpid() not in pids  # trained in the worker processes, not in the driver


@pytest.mark.trains
def test_submitit_backend_in_its_debug_cluster(tmp_path, args) -> None:
    assert zoo.main(args("--executor", "submitit", "--slurm-cluster", "debug")) == 0
    assert_zoo_finished(tmp_path / "out")
    assert (tmp_path / "out/zoo/slurm").is_dir()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # two logical GPUs: tasks ask for one each, as on a GPU cluster, and run on the CPU
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.trains  # in Ray's workers: the guard does not see them
def test_ray_backend_on_a_local_cluster(tmp_path, args, ray_cluster) -> None:
    assert zoo.main(args("--executor", "ray", "--gpus-per-member", "1")) == 0
    assert_zoo_finished(tmp_path / "out")
    holders = [json.loads(p.read_text())
               for p in (tmp_path / "out/zoo/locks/cells").glob("*.lock")]  # fmt: skip
    assert all(h["pid"] != os.getpid() for h in holders)  # trained in Ray's workers


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.trains
def test_a_driver_killed_mid_training_finishes_on_the_next_run(tmp_path, args, workers) -> None:
    """Killed with SIGKILL: no cleanup runs in the driver, and its worker processes (2) die
    with it, freeing their locks; a next run finishes every member once, from its last epoch."""
    epochs = 4
    out = tmp_path / "out"
    argv = args("--local-workers", workers, epochs=epochs)
    driver = subprocess.Popen([sys.executable, "-m", "pipeline.zoo", *argv], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    members = out / "zoo" / "members" / "cells"
    deadline = time.monotonic() + 120
    while not list(members.glob("*/last.pt")):
        assert driver.poll() is None and time.monotonic() < deadline, "never started training"
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    running = [p.parent for p in members.glob("*/last.pt")]
    assert running, "finished before the kill: nothing to resume"
    epoch_reached = torch.load(running[0] / "last.pt", weights_only=False)["epoch"]
    assert epoch_reached < epochs - 1
    (running[0] / ".history.csv.x.tmp").write_text("epoch\n")  # as if killed mid-write
    locks = list((out / "zoo" / "locks" / "cells").glob("*.lock"))
    deadline = time.monotonic() + 30
    while any(MemberLock(lock).is_held() for lock in locks):  # orphaned workers would hold them
        assert time.monotonic() < deadline, "a worker outlived its driver"
        time.sleep(0.1)

    assert zoo.main(args(epochs=epochs)) == 0  # one worker: quicker here
    assert_zoo_finished(out, epochs)
