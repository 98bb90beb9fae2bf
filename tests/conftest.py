"""Shared fixtures: tiny synthetic image trees (never real data) in ``tmp_path``, one tiny
trained zoo shared by the session, the ``zoo_args`` helper, the ``slow`` marker, and the guard of
the ``trains`` marker (``training_guard``)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import training_guard
from boards import fabricate_out
from PIL import Image

from pipeline.classes import CLASSES
from pipeline.commands import ensemble as ensemble_cli
from pipeline.commands import zoo
from pipeline.data.pbc import FOLDER, FRACTIONS, SPLIT_SEED, load_pbc
from pipeline.data.records import Dataset, scan_class_folders
from pipeline.data.splits import stratified_split, write_split_file
from pipeline.io import write_json
from pipeline.models import weights as weights_api
from pipeline.runs.metadata import MemberMeta, entry_meta

# Raabin-WBC spells its five class folders with a capital letter.
RAABIN_CLASSES = ("Basophil", "Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil")
PBC_PER_CLASS = 6  # 64/24/12 of 6 -> 4/1/1, so every split holds every class
TINY_COUNTS = {"basophil": 16, "lymphocyte": 16, "neutrophil": 16}
TRAINED_COUNTS = {"eosinophil": 12, "lymphocyte": 12, "neutrophil": 12}
TRAINED_MEMBERS = "resnet18,squeezenet1_1"

pytest_plugins = ("pytester",)  # test_training_guard runs inner sessions

# Fixtures that may train for a test not marked ``trains``: built once, for the whole session.
SHARED_TRAINING = ("_trained_zoo",)

WriteImage = Callable[..., Path]
MakeTree = Callable[..., list[Path]]
ZooArgs = Callable[..., list[str]]


def pytest_configure(config: pytest.Config) -> None:
    """A test that trains a model itself, outside ``SHARED_TRAINING``, fails unless marked
    ``trains`` (``training_guard``)."""
    training_guard.register(config, SHARED_TRAINING)


def pytest_unconfigure(config: pytest.Config) -> None:
    training_guard.unregister(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``slow`` tests run only with WBCZOO_SLOW_TESTS=1 (``-m "not slow"`` deselects them)."""
    if os.environ.get("WBCZOO_SLOW_TESTS"):
        return
    skip = pytest.mark.skip(reason="slow: set WBCZOO_SLOW_TESTS=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _zoo_args(
    data: Path,
    out: Path,
    *extra: str,
    models: str = "squeezenet1_1",
    size: int | None = 32,
    epochs: int | None = 1,
    weights: str = "none",
    dataset: str = "folder",
    recipe: str = "fast",
    cache: Path | None = None,
    progress: bool = False,
) -> list[str]:
    """``pipeline.zoo`` arguments for a tiny CPU run: batches of 8, decode cache beside
    ``out`` unless given; ``size`` or ``epochs`` None keeps the recipe's own."""
    args = ["--dataset", dataset, "--data", str(data), "--models", models, "--weights", weights,
            "--recipe", recipe, "--batch-size", "8", "--out", str(out),
            "--cache-dir", str(cache or out.parent / "cache")]  # fmt: skip
    if size is not None:
        args += ["--image-size", str(size)]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    return [*args, *([] if progress else ["--no-progress"]), *extra]


def _snapshot(*roots: Path) -> dict[Path, tuple[int, int]]:
    """Every path under ``roots`` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for r in roots for p in r.rglob("*")}


@contextmanager
def _unchanged(*roots: Path) -> Iterator[None]:
    """Fail the test that changed anything under ``roots``, which later tests share."""
    before = _snapshot(*roots)
    yield
    after = _snapshot(*roots)
    changed = sorted(str(p) for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, f"a test wrote into shared fixture files (use a *_copy fixture): {changed}"


def _write_image(
    path: Path,
    size: tuple[int, int] = (14, 12),
    color: tuple[int, int, int] | None = None,
    seed: int = 0,
) -> Path:
    """Write a ``size`` = (width, height) RGB image: solid ``color``, else seeded noise."""
    width, height = size
    if color is None:
        pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        pixels = np.broadcast_to(np.array(color, dtype=np.uint8), (height, width, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    return path


def _make_tree(
    root: Path,
    counts: Mapping[str, int],
    ext: str = ".jpg",
    size: tuple[int, int] = (14, 12),
    seed: int = 0,
) -> list[Path]:
    """Write ``root/<folder>/img_<i><ext>`` noise images, ``counts[folder]`` per folder."""
    paths = []
    for folder, n in counts.items():
        for i in range(n):
            path = root / folder / f"img_{i:03d}{ext}"
            paths.append(_write_image(path, size, seed=seed + len(paths)))
    return paths


@pytest.fixture(autouse=True)
def keep_main_module(monkeypatch) -> None:
    """Streamlit's script runner (AppTest) installs the app as ``sys.modules["__main__"]`` and
    leaves it there; processes spawned by later tests (the local executor's workers) would run
    the app."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])


@pytest.fixture
def out(tmp_path: Path, make_tree) -> Path:
    """A fabricated zoo for the leaderboard's tests (``boards.fabricate_out``): two seeds of
    alpha, one of beta, a soft ensemble, on tiny folder datasets."""
    return fabricate_out(tmp_path, make_tree)


@pytest.fixture(autouse=True, scope="session")
def offline_weights(tmp_path_factory) -> Iterator[None]:
    """No test touches the network or the user's torch cache: an empty TORCH_HOME, and every
    weights host is unreachable (a test of the probe itself puts the real one back)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
        patch.setattr(weights_api, "probe", lambda url: "network disabled in the tests")
        yield


@pytest.fixture(scope="session")
def write_image() -> WriteImage:
    """The ``write_image(path, size=(w, h), color=None, seed=0)`` helper."""
    return _write_image


@pytest.fixture(scope="session")
def make_tree() -> MakeTree:
    """The ``make_tree(root, {folder: n}, ext=".jpg", size=(w, h), seed=0)`` factory."""
    return _make_tree


@pytest.fixture(scope="session")
def zoo_args() -> ZooArgs:
    """The ``zoo_args(data, out, *extra, models="squeezenet1_1", size=32, epochs=1, ...)``
    helper: the argument list of a tiny ``pipeline.zoo`` run."""
    return _zoo_args


@pytest.fixture(scope="session")
def _tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "cells"
    _make_tree(root, TINY_COUNTS, size=(40, 36))
    return root


@pytest.fixture
def tiny(_tiny: Path) -> Iterator[Path]:
    """A 3-class folder dataset of 40x36 px images (split 64/24/12 by the folder adapter),
    shared by the session: read only (checked after the test)."""
    with _unchanged(_tiny):
        yield _tiny


@pytest.fixture
def tiny_copy(_tiny: Path, tmp_path: Path) -> Path:
    """A copy of ``tiny`` of the test's own, ``tmp_path / "cells"``, for a test that writes."""
    return Path(shutil.copytree(_tiny, tmp_path / "cells"))


@pytest.fixture(scope="session")
def _trained_zoo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    # noise images: a 1-epoch member is often so wrong on its 9 validation cells that its
    # temperature fit runs to the bound; with this seed it lands inside, as calibration tests need
    _make_tree(root / "cells", TRAINED_COUNTS, size=(40, 40), seed=5)
    _make_tree(root / "lab2", {"Lymphocyte": 4, "Neutrophil": 4}, size=(30, 30), seed=7)
    args = _zoo_args(root / "cells", root / "out", "--eval", f"lab2={root / 'lab2'}",
                     models=TRAINED_MEMBERS)  # fmt: skip
    assert zoo.main(args) == 0
    assert ensemble_cli.main(["--out", str(root / "out"), "--method", "soft", "--top", "0"]) == 0
    return root


@pytest.fixture
def trained_zoo(_trained_zoo: Path) -> Iterator[Path]:
    """A tiny zoo trained once per session: ``cells/`` (3 classes of 12 images, 40 px),
    ``lab2/`` (another lab's 4 lymphocytes and 4 neutrophils), ``out/`` with resnet18 and
    squeezenet1_1 trained 1 epoch at 32 px by the ``zoo_args`` flags and scored on lab2, and a
    soft ensemble of both (``ens-soft-all``), and ``cache/``. ``cells``, ``lab2`` and ``out``
    are read only (checked after the test): a test that writes uses ``trained_zoo_copy``."""
    shared = _trained_zoo
    with _unchanged(shared / "cells", shared / "lab2", shared / "out"):
        yield shared


@pytest.fixture
def trained_zoo_copy(_trained_zoo: Path, tmp_path: Path) -> Path:
    """A copy of ``trained_zoo``'s ``out/`` of the test's own, ``tmp_path / "trained" / "out"``
    (its members' answer keys are still ``trained_zoo``'s ``cells`` and ``lab2``)."""
    return Path(shutil.copytree(_trained_zoo / "out", tmp_path / "trained" / "out"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A private decode-cache folder (pass it on; the default lives in the home folder)."""
    return tmp_path / "cache"


@pytest.fixture
def pbc_root(tmp_path: Path) -> Path:
    """A tiny PBC download: ``<root>/PBC_dataset_normal_DIB/<class>/*.jpg``, all 8 classes."""
    root = tmp_path / "pbc"
    _make_tree(root / FOLDER, {c: PBC_PER_CLASS for c in CLASSES})
    return root


@pytest.fixture
def pbc_split_file(pbc_root: Path, tmp_path: Path) -> Path:
    """A 64/24/12 split file (``id,label,split``) of ``pbc_root``, made like the committed one."""
    records, _ = scan_class_folders(pbc_root, pbc_root / FOLDER)
    path = tmp_path / "splits" / "pbc.csv"
    write_split_file(path, stratified_split(records, FRACTIONS, SPLIT_SEED))
    return path


@pytest.fixture
def pbc_dataset(pbc_root: Path, pbc_split_file: Path) -> Dataset:
    """``pbc_root`` loaded through the PBC adapter with ``pbc_split_file``."""
    return load_pbc(pbc_root, split_file=pbc_split_file)


@pytest.fixture
def raabin_root(tmp_path: Path) -> Path:
    """A tiny Raabin-WBC tree: Train (10/class), TestA (3/class), TestB (2/class), 5 classes."""
    root = tmp_path / "raabin"
    for split, n in (("Train", 10), ("TestA", 3), ("TestB", 2)):
        _make_tree(root / split, {c: n for c in RAABIN_CLASSES})
    return root


def _fake_member(
    out: Path,
    tag: str,
    name: str,
    sets: Mapping[str, tuple[Path, str | None]],
    quality: float | Mapping[str, float],
    seed: int = 0,
    meta: Mapping | None = None,
) -> Path:
    """Write a member's submissions, right on a ``quality`` share of images (per set, if a
    mapping), with its meta.json (a member's, with ``meta``'s fields on top).

    ``sets`` maps a set name to (folder dataset root, split or None for the whole folder);
    predictions cover the 8 canonical classes, as a PBC member's would.
    """
    from pipeline.data import load_dataset
    from pipeline.runs.submissions import write_submission

    rng = np.random.default_rng(seed)
    folder = out / "submissions" / tag / name
    sources = {}
    for set_name, (root, split) in sets.items():
        ds = load_dataset("folder", root)
        records = sorted(ds.splits[split] if split else ds.records(), key=lambda r: r.id)
        y = np.array([CLASSES.index(r.label) for r in records])
        share = quality[set_name] if isinstance(quality, Mapping) else quality
        right = rng.random(len(y)) < share
        pred = np.where(right, y, (y + rng.integers(1, len(CLASSES), len(y))) % len(CLASSES))
        probs = np.full((len(y), len(CLASSES)), 0.3 / (len(CLASSES) - 1))
        probs[np.arange(len(y)), pred] = 0.7
        write_submission(folder / f"{set_name}.csv", [r.id for r in records], probs, CLASSES)
        sources[set_name] = {"adapter": "folder", "root": str(root.resolve()), "split": split}
    entry = MemberMeta(name=name, arch=name.split("-")[0], family="resnet", norm="bn",
                       init="none", params=11_000_000, gmacs=0.15, seed=seed,
                       recipe={"name": "fast"}, sets=sources,
                       command=f"python -m pipeline.zoo --models {name}")  # fmt: skip
    path = folder / "meta.json"
    if meta:  # other fields, or another kind of entry, typed as the reader would
        entry = entry_meta(entry.to_json() | dict(meta), path)
    write_json(path, entry.to_json())
    return folder


@pytest.fixture
def fake_member() -> Callable[..., Path]:
    """The ``fake_member(out, tag, name, sets, quality, seed=0, meta=None)`` writer."""
    return _fake_member
