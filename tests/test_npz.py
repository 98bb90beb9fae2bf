"""Array-file datasets (MedMNIST-style and generic .npz), their cache, balanced test splits."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.classes import CLASSES, UnknownClassError
from pipeline.commands import zoo
from pipeline.data import DatasetLayoutError, Record, load_dataset
from pipeline.data import cache as cache_module
from pipeline.data.cache import decode_image, load_or_build
from pipeline.data.folder import load_folder
from pipeline.data.npz import BLOODMNIST, load_npz
from pipeline.data.splits import balanced_test_split, stratified_split
from pipeline.evaluation.answers import AnswerKeys
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.runs.submissions import read_submission

MEDMNIST_SIZES = {"train": 20, "val": 6, "test": 6}
FRACTIONS = {"train": 0.64, "val": 0.24, "test": 0.12}


def noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_medmnist(path: Path, channels: int | None = 3, side: int = 28) -> dict[str, np.ndarray]:
    """A MedMNIST-style file: ``<split>_images`` (colour or grayscale), ``<split>_labels`` (N, 1)
    cycling through the 8 labels. Returns the arrays."""
    arrays = {}
    for seed, (split, n) in enumerate(MEDMNIST_SIZES.items()):
        shape = (n, side, side) if channels is None else (n, side, side, channels)
        arrays[f"{split}_images"] = noise(shape, seed)
        arrays[f"{split}_labels"] = (np.arange(n) % 8).reshape(n, 1)
    np.savez_compressed(path, **arrays)
    return arrays


def write_generic(path: Path, n: int = 30, n_classes: int = 3, **extra: np.ndarray) -> np.ndarray:
    """An ``images`` + ``labels`` file with ``n`` 20x16 images over ``n_classes`` labels."""
    images = noise((n, 20, 16, 3), 7)
    np.savez(path, images=images, labels=np.arange(n) % n_classes, **extra)
    return images


def label_counts(records: list[Record]) -> Counter[str]:
    return Counter(r.label for r in records)


# --- MedMNIST files --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bloodmnist.npz", "bloodmnist_64.npz"])
def test_bloodmnist_keeps_official_splits_and_label_order(tmp_path: Path, name: str) -> None:
    write_medmnist(tmp_path / name)
    ds = load_dataset("npz", tmp_path / name)
    assert ds.name == name.removesuffix(".npz") and ds.adapter == "npz" and ds.trainable
    assert ds.root == tmp_path / name and ds.classes == CLASSES and ds.skipped == []
    assert {s: len(rs) for s, rs in ds.splits.items()} == MEDMNIST_SIZES
    for split, n in MEDMNIST_SIZES.items():
        assert [r.id for r in ds.splits[split]] == [f"{split}/{row:06d}" for row in range(n)]
        assert [r.label for r in ds.splits[split]] == [BLOODMNIST[row % 8] for row in range(n)]
    labels = {r.id: r.label for r in ds.records()}
    assert labels["train/000002"] == "erythroblast" and labels["val/000003"] == "ig"
    assert labels["test/000005"] == "monocyte"
    assert not (tmp_path / "train").exists()  # ids name rows, not files


def test_grayscale_medmnist_is_cached_as_rgb(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "bloodmnist.npz"
    arrays = write_medmnist(path, channels=None)
    ds = load_npz(path)
    assert {s: len(rs) for s, rs in ds.splits.items()} == MEDMNIST_SIZES
    cache = load_or_build(path, [r.id for r in ds.records()], 14, "bm", cache_dir, 1, False)
    assert cache.images.shape == (32, 14, 14, 3)
    row = cache.images[cache.rows(["val/000004"])[0]]
    expected = Image.fromarray(arrays["val_images"][4]).resize((14, 14), Image.Resampling.BILINEAR)
    for channel in range(3):
        np.testing.assert_array_equal(row[..., channel], np.asarray(expected))


def test_cache_reads_arrays_and_is_reused(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bloodmnist.npz"
    arrays = write_medmnist(path)
    ids = [r.id for r in load_npz(path).records()]
    first = load_or_build(path, ids[::-1], 16, "bm", cache_dir, 1, False)
    assert first.images.shape == (32, 16, 16, 3) and first.images.dtype == np.uint8
    assert first.ids == sorted(ids) and first.failed == {}
    for i in ("train/000000", "train/000019", "val/000002", "test/000005"):
        split, row = i.split("/")
        image = Image.fromarray(arrays[f"{split}_images"][int(row)])
        expected = np.asarray(image.resize((16, 16), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(first.images[first.rows([i])[0]], expected)

    def no_build(*args: object) -> None:
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(cache_module, "_build", no_build)
    again = load_or_build(path, ids, 16, "bm", cache_dir, 1, False)
    assert again.path == first.path
    np.testing.assert_array_equal(again.images, first.images)
    mtime = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(mtime, mtime))  # touched, the same bytes: the same cache
    assert load_or_build(path, ids, 16, "bm", cache_dir, 1, False).path == first.path
    stat = path.stat()
    write_medmnist(path, side=27)  # rewritten, its mtime put back: a new cache
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(AssertionError, match="rebuilt"):
        load_or_build(path, ids, 16, "bm", cache_dir, 1, False)


def test_array_images_crop_and_resize_like_decoded_files(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "cells.npz"
    images = write_generic(path, classes=np.array(["ig", "basophil", "monocyte"]))
    cache = load_or_build(path, ["images/000003"], 8, "cells", cache_dir, 1, False)
    Image.fromarray(images[3]).save(tmp_path / "same.png")  # 20x16: the centre crop matters
    np.testing.assert_array_equal(cache.images[0], decode_image(tmp_path / "same.png", 8))


# --- generic files ---------------------------------------------------------------------------


def test_generic_file_with_classes_is_split_stratified(tmp_path: Path) -> None:
    path = tmp_path / "cells.npz"
    write_generic(path, classes=np.array(["Neutrophils", "lymphocyte", "Immature Granulocytes"]))
    ds = load_dataset("npz", path)
    assert ds.name == "cells" and ds.classes == ("lymphocyte", "neutrophil", "ig")
    names = ("neutrophil", "lymphocyte", "ig")  # label order
    expected = [Record(f"images/{row:06d}", names[row % 3]) for row in range(30)]
    assert ds.records() == expected
    assert ds.splits == stratified_split(expected, FRACTIONS, 0)
    assert {s: len(rs) for s, rs in ds.splits.items()} == {"train": 18, "val": 6, "test": 6}


@pytest.mark.parametrize(
    ("sidecar", "text"),
    [
        ("cells.classes.txt", "neutrophil\n\nLymphocytes\nbaso\n"),
        ("cells.classes.json", '["neutrophil", "lymphocyte", "basophil"]'),
        ("classes.json", '{"2": "basophil", "0": "neutrophil", "1": "lymphocyte"}'),
    ],
)
def test_generic_file_with_sidecar_class_list(tmp_path: Path, sidecar: str, text: str) -> None:
    write_generic(tmp_path / "cells.npz")
    (tmp_path / sidecar).write_text(text)
    labels = {r.id: r.label for r in load_npz(tmp_path / "cells.npz").records()}
    assert [labels[f"images/{row:06d}"] for row in range(4)] == [
        "neutrophil", "lymphocyte", "basophil", "neutrophil",
    ]  # fmt: skip


def test_bare_integers_say_how_to_name_the_classes(tmp_path: Path) -> None:
    write_generic(tmp_path / "cells.npz")
    with pytest.raises(DatasetLayoutError, match="no class names") as info:
        load_npz(tmp_path / "cells.npz")
    assert "`classes`" in str(info.value) and "cells.classes.txt" in str(info.value)


def test_unknown_class_name_lists_allowed(tmp_path: Path) -> None:
    write_generic(tmp_path / "cells.npz")
    (tmp_path / "cells.classes.txt").write_text("neutrophil\nblast\nbasophil\n")
    with pytest.raises(
        UnknownClassError, match="cells.classes.txt: unknown class name 'blast'"
    ) as e:
        load_npz(tmp_path / "cells.npz")
    assert all(c in str(e.value) for c in CLASSES)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": noise((4, 8, 8, 3), 0)}, "no labels"),
        ({"images": noise((4, 8, 8, 3), 0).astype(float), "labels": np.zeros(4, int)}, "uint8"),
        ({"images": noise((4, 8, 8, 3), 0), "labels": np.zeros(3, int)}, "4 rows but labels 3"),
        ({"images": noise((4, 8, 8, 3), 0), "labels": np.full(4, 5)}, r"labels \[5\] have no"),
        ({"images": noise((4, 8, 8, 3), 0), "labels": np.zeros((4, 2), int)}, "expected integ"),
    ],
)
def test_layout_errors_name_the_problem(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    np.savez(tmp_path / "cells.npz", classes=np.array(["ig", "monocyte"]), **arrays)
    with pytest.raises(DatasetLayoutError, match=message):
        load_npz(tmp_path / "cells.npz")


def test_balanced_test_for_generic_files_only(tmp_path: Path) -> None:
    write_generic(tmp_path / "cells.npz", n=40, classes=np.array(["ig", "monocyte", "basophil"]))
    ds = load_npz(tmp_path / "cells.npz", balanced_test=True)  # 14/13/13 images per class
    assert label_counts(ds.splits["test"]) == {"ig": 2, "monocyte": 2, "basophil": 2}
    write_medmnist(tmp_path / "bloodmnist.npz")
    with pytest.raises(ValueError, match="official splits"):
        load_npz(tmp_path / "bloodmnist.npz", balanced_test=True)


# --- the zoo on an array file ----------------------------------------------------------------


@pytest.mark.trains
def test_zoo_trains_on_an_npz_file_and_scores_by_row_ids(
    tmp_path: Path, cache_dir: Path, zoo_args
) -> None:
    path = tmp_path / "bloodmnist.npz"
    write_medmnist(path)
    out = tmp_path / "out"
    args = zoo_args(path, out, dataset="npz", cache=cache_dir)
    assert zoo.main(args) == 0
    recipe = zoo.recipe_from_options(zoo.build_parser().parse_args(args), False)
    subs = out / "submissions" / "bloodmnist" / f"squeezenet1_1-{recipe.name}-s0"
    for split in ("val", "test"):
        submission = read_submission(subs / f"{split}.csv")
        assert submission.ids == [f"{split}/{row:06d}" for row in range(6)]
        assert submission.classes == CLASSES
    source = json.loads((subs / "meta.json").read_text())["sets"]["test"]
    assert source == {"adapter": "npz", "root": str(path.resolve()), "split": "test"}
    assert AnswerKeys().key(source) == {f"test/{r:06d}": BLOODMNIST[r % 8] for r in range(6)}
    (entry,) = find_entries(out)
    assert Scorer().summary(entry, "test")["n"] == 6


# --- balanced test split ---------------------------------------------------------------------


def records_of(counts: dict[str, int]) -> list[Record]:
    return [Record(f"{label}/{i:04d}.jpg", label) for label, n in counts.items() for i in range(n)]


def test_balanced_test_split_equal_disjoint_complete_deterministic() -> None:
    counts = {"basophil": 50, "monocyte": 31, "ig": 25}
    records = records_of(counts)
    splits = balanced_test_split(records, FRACTIONS, seed=3)
    assert list(splits) == list(FRACTIONS)
    assert label_counts(splits["test"]) == {label: 3 for label in counts}  # 12% of 25
    ids = [r.id for rs in splits.values() for r in rs]
    assert sorted(ids) == sorted(r.id for r in records)  # disjoint and complete
    for label, n in counts.items():  # the rest: 64:24, stratified
        assert label_counts(splits["train"])[label] == round(0.64 / 0.88 * (n - 3))
    assert splits == balanced_test_split(records, FRACTIONS, seed=3)
    assert splits != balanced_test_split(records, FRACTIONS, seed=4)
    assert all(rs == sorted(rs, key=lambda r: r.id) for rs in splits.values())


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({"train": 0.9, "val": 0.1}, "needs a 'test' fraction"),
        ({"train": 0.9, "test": 0.05}, "sum to 1"),
        ({"train": 0.9, "test": 0.1}, "'ig' has 4 images: too few"),
    ],
)
def test_balanced_test_split_errors(fractions: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        balanced_test_split(records_of({"basophil": 30, "ig": 4}), fractions, seed=0)


def test_folder_balanced_test(tmp_path: Path, make_tree: Callable[..., list[Path]]) -> None:
    make_tree(tmp_path, {"basophil": 20, "ig": 9, "monocyte": 12}, size=(4, 4))
    plain, balanced = load_folder(tmp_path), load_folder(tmp_path, balanced_test=True)
    assert label_counts(plain.splits["test"]) == {"basophil": 2, "ig": 1, "monocyte": 1}
    assert label_counts(balanced.splits["test"]) == {"basophil": 1, "ig": 1, "monocyte": 1}
    assert balanced.records() == plain.records()
    via_registry = load_dataset("folder-balanced", tmp_path)  # answer keys reload it this way
    assert via_registry.splits == balanced.splits and via_registry.adapter == "folder-balanced"
