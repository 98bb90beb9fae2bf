"""Shared fixtures: tiny synthetic image trees (never real data) in ``tmp_path``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.classes import CLASSES
from pipeline.data.pbc import FOLDER, FRACTIONS, SPLIT_SEED, load_pbc
from pipeline.data.records import Dataset, scan_class_folders
from pipeline.data.splits import stratified_split, write_split_file
from pipeline.models import weights as weights_api

# Raabin-WBC spells its five class folders with a capital letter.
RAABIN_CLASSES = ("Basophil", "Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil")
PBC_PER_CLASS = 6  # 64/24/12 of 6 -> 4/1/1, so every split holds every class

WriteImage = Callable[..., Path]
MakeTree = Callable[..., list[Path]]


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
    mapping), with meta.json.

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
    base = {"member": name, "kind": "member", "arch": name.split("-")[0], "family": "resnet",
            "norm": "bn", "weights": "none", "params": 11_000_000, "gmacs": 0.15, "seed": seed,
            "recipe": {"name": "fast"}, "command": f"python -m pipeline.zoo --models {name}",
            "sets": sources}  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(base | dict(meta or {})))
    return folder


@pytest.fixture
def fake_member() -> Callable[..., Path]:
    """The ``fake_member(out, tag, name, sets, quality, seed=0, meta=None)`` writer."""
    return _fake_member
