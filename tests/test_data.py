"""The data layer: class names, adapters, splits, the decode cache, the store, augment, loader."""

from __future__ import annotations

import csv
import inspect
import os
import shutil
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.classes import CLASSES, UnknownClassError, align_probabilities, canonical_class
from pipeline.data import DatasetLayoutError, Record, list_adapters, load_dataset
from pipeline.data import cache as cache_module
from pipeline.data.augment import AUGMENTATIONS, build_augment
from pipeline.data.cache import cache_key, decode_image, load_or_build
from pipeline.data.folder import load_folder
from pipeline.data.loader import CachedImages, make_loader
from pipeline.data.pbc import FOLDER, FRACTIONS, SPLIT_SEED, find_root, load_pbc, versioned_split
from pipeline.data.raabin import load_raabin
from pipeline.data.records import Dataset, scan_class_folders
from pipeline.data.splits import read_split_file, stratified_split, write_split_file
from pipeline.data.store import ImageSet, ImageStore, image_sets

SHARED_PBC = Path(__file__).resolve().parents[2] / "shared" / "data" / "pbc"
FIVE = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
WriteImage = Callable[..., Path]  # the conftest ``write_image`` fixture
MakeTree = Callable[..., list[Path]]  # the conftest ``make_tree`` fixture


def records_of(counts: dict[str, int]) -> list[Record]:
    """Synthetic records, ``counts[label]`` per label."""
    return [Record(f"{label}/{i:04d}.jpg", label) for label, n in counts.items() for i in range(n)]


def ids_by_split(splits: dict[str, list[Record]]) -> dict[str, list[str]]:
    """The ids of each split."""
    return {name: [r.id for r in rs] for name, rs in splits.items()}


def label_counts(records: list[Record]) -> Counter[str]:
    """How many records each label has."""
    return Counter(r.label for r in records)


def solid_colour(i: int) -> tuple[int, int, int]:
    """A distinct, exactly representable colour per index."""
    return (10 * i % 256, 255 - 7 * i % 256, 40 + 3 * i % 200)


# --- class names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("basophil", "basophil"),
        ("EOSINOPHIL", "eosinophil"),
        ("  Lymphocyte ", "lymphocyte"),
        ("Neutrophils", "neutrophil"),
        ("Baso", "basophil"),
        ("IG", "ig"),
        ("Immature Granulocytes", "ig"),
        ("Thrombocyte", "platelet"),
        ("Erythroblasts", "erythroblast"),
    ],
)
def test_canonical_class_maps_spellings(name: str, expected: str) -> None:
    assert canonical_class(name) == expected


@pytest.mark.parametrize("name", ["band_cell", "", "Lymphoblast"])
def test_canonical_class_unknown_lists_allowed(name: str) -> None:
    with pytest.raises(UnknownClassError) as info:
        canonical_class(name)
    assert repr(name) in str(info.value)
    assert all(c in str(info.value) for c in CLASSES)


def test_align_probabilities_restricts_and_renormalises() -> None:
    member = (
        "platelet",
        "neutrophil",
        "ig",
        "basophil",
        "monocyte",
        "erythroblast",
        "lymphocyte",
        "eosinophil",
    )  # deliberately not in canonical order
    probs = np.random.default_rng(0).dirichlet(np.ones(8), size=6)
    aligned, shared = align_probabilities(probs, member, list(reversed(FIVE)))
    assert shared == FIVE
    assert aligned.shape == (6, 5)
    np.testing.assert_allclose(aligned.sum(axis=1), 1.0)
    columns = [member.index(c) for c in FIVE]
    expected = probs[:, columns] / probs[:, columns].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(aligned, expected)


def test_align_probabilities_zero_shared_mass_is_uniform() -> None:
    probs = np.zeros((2, 8))
    probs[0, CLASSES.index("ig")] = 1.0
    probs[1, CLASSES.index("basophil")] = 1.0
    aligned, shared = align_probabilities(probs, CLASSES, FIVE)
    assert shared == FIVE
    np.testing.assert_allclose(aligned[0], np.full(5, 0.2))
    np.testing.assert_allclose(aligned[1], np.eye(5)[0])


def test_align_probabilities_nothing_shared_raises() -> None:
    with pytest.raises(ValueError, match="share nothing"):
        align_probabilities(np.ones((1, 2)) / 2, ("ig", "platelet"), FIVE)


# --- registry and folder adapter -----------------------------------------------------------


def test_load_dataset_unknown_adapter_and_missing_root(tmp_path: Path) -> None:
    assert {"folder", "pbc", "raabin"} <= set(list_adapters())
    with pytest.raises(KeyError, match="known: .*folder"):
        load_dataset("nope", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("folder", tmp_path / "missing")


def test_folder_maps_class_names_case_insensitively(tmp_path: Path, make_tree: MakeTree) -> None:
    root = tmp_path / "cells"
    make_tree(root, {"Basophil": 5, "EOSINOPHIL": 5, "lymphocytes": 5})
    ds = load_dataset("folder", root)
    assert ds.name == "cells"
    assert ds.classes == ("basophil", "eosinophil", "lymphocyte")
    assert ds.trainable
    for r in ds.records():
        assert r.label == canonical_class(r.id.split("/")[0])
    assert sorted(len(rs) for rs in ds.splits.values()) == [3, 3, 9]  # 64/24/12 of 5, per class


def test_folder_unknown_class_folder_lists_allowed(tmp_path: Path, make_tree: MakeTree) -> None:
    make_tree(tmp_path, {"basophil": 2, "Blast": 2})
    with pytest.raises(UnknownClassError, match="'Blast'") as info:
        load_folder(tmp_path)
    assert all(c in str(info.value) for c in CLASSES)


def test_folder_empty_class_folder_is_named(tmp_path: Path, make_tree: MakeTree) -> None:
    make_tree(tmp_path, {"basophil": 2})
    (tmp_path / "monocyte").mkdir()
    (tmp_path / "monocyte" / ".DS_Store").write_bytes(b"\0")  # a hidden file is no image
    with pytest.raises(DatasetLayoutError, match="monocyte"):
        load_folder(tmp_path)


def test_folder_without_class_folders(tmp_path: Path, write_image: WriteImage) -> None:
    write_image(tmp_path / "loose.jpg")
    (tmp_path / ".hidden").mkdir()
    with pytest.raises(DatasetLayoutError, match="no class folders"):
        load_folder(tmp_path)


def test_folder_skips_hidden_and_non_images(tmp_path: Path, make_tree: MakeTree) -> None:
    images = make_tree(tmp_path, {"basophil": 3, "eosinophil": 3, "monocyte": 3})
    images += make_tree(tmp_path, {"eosinophil": 1}, ext=".PNG")
    (tmp_path / "basophil" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "eosinophil" / "notes.txt").write_text("not an image")
    (tmp_path / "eosinophil" / "._img_000.jpg").write_bytes(b"\0")  # macOS resource fork
    ds = load_folder(tmp_path)
    assert sorted(ds.skipped) == [
        "basophil/.DS_Store",
        "eosinophil/._img_000.jpg",
        "eosinophil/notes.txt",
    ]
    expected = {p.relative_to(tmp_path).as_posix(): canonical_class(p.parent.name) for p in images}
    assert {r.id: r.label for r in ds.records()} == expected
    assert label_counts(ds.records()) == {"basophil": 3, "eosinophil": 4, "monocyte": 3}


def test_folder_skips_hidden_folders_stray_files_and_macos_debris(
    tmp_path: Path, make_tree: MakeTree
) -> None:
    make_tree(tmp_path, {"basophil": 2, "monocyte": 2})
    make_tree(tmp_path, {"basophil/.ipynb_checkpoints": 1, "__MACOSX/basophil": 1})
    (tmp_path / "README.txt").write_text("about this set")
    ds = load_folder(tmp_path)
    assert label_counts(ds.records()) == {"basophil": 2, "monocyte": 2}
    assert sorted(ds.skipped) == ["README.txt", "basophil/.ipynb_checkpoints/img_000.jpg"]


def test_folder_two_folders_of_one_class_are_an_error(tmp_path: Path, make_tree: MakeTree) -> None:
    make_tree(tmp_path, {"Basophil": 1, "basophils": 1, "monocyte": 1})
    with pytest.raises(DatasetLayoutError, match="map to class 'basophil'"):
        load_folder(tmp_path)


def test_folder_ids_are_relative_posix_paths(tmp_path: Path, make_tree: MakeTree) -> None:
    make_tree(tmp_path, {"neutrophil": 2})
    make_tree(tmp_path, {"neutrophil/sub/deeper": 1}, ext=".png")
    ds = load_folder(tmp_path)
    ids = [r.id for r in ds.records()]
    assert "neutrophil/sub/deeper/img_000.png" in ids
    for i in ids:
        assert not Path(i).is_absolute() and "\\" not in i
        assert (tmp_path / i).is_file()
    assert all(r.label == "neutrophil" for r in ds.records())


# --- PBC adapter ---------------------------------------------------------------------------


def test_pbc_accepts_parent_and_inner_folder(pbc_root: Path, pbc_split_file: Path) -> None:
    outer = load_pbc(pbc_root, split_file=pbc_split_file)
    inner = load_pbc(pbc_root / FOLDER, split_file=pbc_split_file)
    assert outer.root == inner.root == pbc_root
    assert outer.splits == inner.splits
    assert outer.classes == CLASSES
    assert all(r.id.startswith(f"{FOLDER}/") for r in outer.records())


def test_pbc_wrong_layout_says_what_was_expected(tmp_path: Path, make_tree: MakeTree) -> None:
    make_tree(tmp_path / "download", {"basophil": 1})
    with pytest.raises(DatasetLayoutError, match=f"expected .*{FOLDER}/<class>"):
        load_pbc(tmp_path / "download")
    with pytest.raises(DatasetLayoutError):
        find_root(tmp_path / "download" / "basophil")


def test_pbc_image_missing_from_split_file(
    pbc_root: Path, pbc_split_file: Path, write_image: WriteImage
) -> None:
    write_image(pbc_root / FOLDER / "monocyte" / "MO_new.jpg")
    with pytest.raises(ValueError, match=f"1 images are not in .*{FOLDER}/monocyte/MO_new.jpg"):
        load_pbc(pbc_root, split_file=pbc_split_file)


def test_pbc_split_file_with_absent_images_warns(pbc_root: Path, pbc_split_file: Path) -> None:
    next((pbc_root / FOLDER / "platelet").iterdir()).unlink()
    with pytest.warns(UserWarning, match="1 of the 48 images in .* are missing"):
        ds = load_pbc(pbc_root, split_file=pbc_split_file)
    assert len(ds.records()) == 47


def test_pbc_split_file_label_must_match_folder(pbc_root: Path, pbc_split_file: Path) -> None:
    text = pbc_split_file.read_text()
    pbc_split_file.write_text(
        text.replace("/basophil/img_000.jpg,basophil", "/basophil/img_000.jpg,ig")
    )
    with pytest.raises(ValueError, match="basophil/img_000.jpg is labelled differently"):
        load_pbc(pbc_root, split_file=pbc_split_file)


def test_pbc_subset_uses_its_own_split_file(pbc_root: Path, pbc_split_file: Path) -> None:
    (pbc_root / "split.csv").write_bytes(pbc_split_file.read_bytes())
    with pytest.warns(UserWarning, match="split.csv replaces the versioned PBC split"):
        own = load_pbc(pbc_root)
    assert own.splits == load_pbc(pbc_root, split_file=pbc_split_file).splits


def test_bundled_sample_loads_with_its_split_without_warnings() -> None:
    import warnings

    sample = Path(__file__).resolve().parents[1] / "data" / "pbc-sample"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_pbc(sample)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 192, "val": 64, "test": 64}
    committed = read_split_file(versioned_split())
    assert all(committed[r.id][1] == split for split, rs in ds.splits.items() for r in rs)


def test_pbc_split_follows_the_file(pbc_root: Path, tmp_path: Path) -> None:
    records, _ = scan_class_folders(pbc_root, pbc_root / FOLDER)
    chosen = {
        "train": [r for r in records if r.label not in ("basophil", "ig")],
        "val": [r for r in records if r.label == "ig"],
        "test": [r for r in records if r.label == "basophil"],
    }
    split_file = tmp_path / "custom.csv"
    write_split_file(split_file, chosen)
    ds = load_pbc(pbc_root, split_file=split_file)
    assert {k: sorted(v) for k, v in ids_by_split(ds.splits).items()} == {
        k: sorted(v) for k, v in ids_by_split(chosen).items()
    }
    assert ds.trainable


def test_pbc_fixture_split_is_stratified(pbc_dataset: Dataset) -> None:
    for name, per_class in (("train", 4), ("val", 1), ("test", 1)):
        assert label_counts(pbc_dataset.splits[name]) == {c: per_class for c in CLASSES}


# --- the committed PBC split -----------------------------------------------------------------


def test_committed_pbc_split_file() -> None:
    with open(versioned_split(), newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    assert header == ["id", "label", "split"]
    assert len(rows) == 17_092
    ids = [row[0] for row in rows]
    assert len(set(ids)) == len(ids)
    assert not any(Path(i).name.startswith(".") for i in ids)
    assert f"{FOLDER}/neutrophil/.DS_169665.jpg" not in ids
    assert {row[2] for row in rows} == set(FRACTIONS)
    assert {row[1] for row in rows} == set(CLASSES)
    assert all(row[0].startswith(f"{FOLDER}/{row[1]}/") for row in rows)
    per_class = Counter(row[1] for row in rows)
    per_split = Counter((row[1], row[2]) for row in rows)
    for label, n in per_class.items():
        for split, fraction in FRACTIONS.items():
            assert abs(per_split[label, split] - fraction * n) <= 1, (label, split)


def test_committed_pbc_split_regenerates(tmp_path: Path) -> None:
    if not SHARED_PBC.is_dir():
        pytest.skip(f"no PBC download at {SHARED_PBC}")
    root = find_root(SHARED_PBC)
    records, skipped = scan_class_folders(root, root / FOLDER)
    assert f"{FOLDER}/neutrophil/.DS_169665.jpg" in skipped
    regenerated = tmp_path / "pbc.csv"
    write_split_file(regenerated, stratified_split(records, FRACTIONS, SPLIT_SEED))
    assert regenerated.read_bytes() == versioned_split().read_bytes()
    ds = load_pbc(SHARED_PBC)
    assert ds.classes == CLASSES and ds.trainable
    assert len(ds.records()) == 17_092


# --- Raabin adapter --------------------------------------------------------------------------


def test_raabin_splits(raabin_root: Path) -> None:
    ds = load_dataset("raabin", raabin_root)
    assert ds.classes == FIVE
    assert set(ds.splits) == {"train", "val", "test", "testb"}
    assert label_counts(ds.splits["train"]) == {c: 9 for c in FIVE}
    assert label_counts(ds.splits["val"]) == {c: 1 for c in FIVE}
    assert label_counts(ds.splits["test"]) == {c: 3 for c in FIVE}
    assert label_counts(ds.splits["testb"]) == {c: 2 for c in FIVE}
    assert all(r.id.startswith("Train/") for s in ("train", "val") for r in ds.splits[s])
    assert all(r.id.startswith("TestA/") for r in ds.splits["test"])
    assert all(r.id.startswith("TestB/") for r in ds.splits["testb"])
    assert not set(ids_by_split(ds.splits)["train"]) & set(ids_by_split(ds.splits)["val"])


def test_raabin_without_testb(raabin_root: Path) -> None:
    shutil.rmtree(raabin_root / "TestB")
    assert set(load_raabin(raabin_root).splits) == {"train", "val", "test"}


def test_raabin_testb_may_have_empty_class_folders(raabin_root: Path) -> None:
    for name in ("Basophil", "Eosinophil", "Monocyte"):
        for image in (raabin_root / "TestB" / name).iterdir():
            image.unlink()
    ds = load_raabin(raabin_root)
    assert label_counts(ds.splits["testb"]) == {"lymphocyte": 2, "neutrophil": 2}
    (raabin_root / "TestA" / "Monocyte").rename(raabin_root / "empty")
    (raabin_root / "TestA" / "Monocyte").mkdir()
    with pytest.raises(DatasetLayoutError, match="Monocyte holds no images"):
        load_raabin(raabin_root)


def test_raabin_missing_testa(raabin_root: Path) -> None:
    (raabin_root / "TestA").rename(raabin_root / "Test")
    with pytest.raises(DatasetLayoutError, match="missing TestA/"):
        load_raabin(raabin_root)


# --- stratified splits -----------------------------------------------------------------------


def test_stratified_split_is_reproducible_stratified_and_complete() -> None:
    records = records_of({"basophil": 50, "monocyte": 31, "ig": 7})
    fractions = {"train": 0.64, "val": 0.24, "test": 0.12}
    first = stratified_split(records, fractions, seed=3)
    assert first == stratified_split(records, fractions, seed=3)
    assert ids_by_split(first) != ids_by_split(stratified_split(records, fractions, seed=4))
    assert list(first) == list(fractions)
    all_ids = [i for ids in ids_by_split(first).values() for i in ids]
    assert sorted(all_ids) == sorted(r.id for r in records)  # disjoint and complete
    for label, n in label_counts(records).items():
        counts = {name: label_counts(rs)[label] for name, rs in first.items()}
        assert counts["train"] == round(0.64 * n)
        assert counts["val"] == round(0.24 * n)
        assert counts["test"] == n - counts["train"] - counts["val"]


def test_stratified_split_fractions_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(records_of({"ig": 4}), {"train": 0.7, "val": 0.2}, seed=0)


def test_split_file_round_trip(tmp_path: Path) -> None:
    splits = stratified_split(records_of({"ig": 5, "platelet": 4}), {"a": 0.5, "b": 0.5}, 1)
    path = tmp_path / "split.csv"
    write_split_file(path, splits)
    assert read_split_file(path) == {
        r.id: (r.label, name) for name, rs in splits.items() for r in rs
    }
    (tmp_path / "bad.csv").write_text("path,fold\nx,1\n")
    with pytest.raises(ValueError, match="id,label,split"):
        read_split_file(tmp_path / "bad.csv")


# --- decode cache ----------------------------------------------------------------------------


def test_decode_image_centre_crops(tmp_path: Path) -> None:
    wide = np.zeros((10, 30, 3), dtype=np.uint8)
    wide[:, :10] = (255, 0, 0)
    wide[:, 10:20] = (0, 200, 0)
    wide[:, 20:] = (0, 0, 255)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    Image.fromarray(wide.transpose(1, 0, 2).copy()).save(tmp_path / "tall.png")
    for name in ("wide.png", "tall.png"):
        out = decode_image(tmp_path / name, 8)
        assert out.shape == (8, 8, 3) and out.dtype == np.uint8
        for corner in (out[0, 0], out[0, -1], out[-1, 0], out[-1, -1]):
            assert tuple(corner) == (0, 200, 0), name


def test_cache_builds_once_and_is_reused(
    tmp_path: Path, make_tree: MakeTree, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = make_tree(tmp_path / "ds", {"basophil": 3, "ig": 2})
    ids = [p.relative_to(tmp_path / "ds").as_posix() for p in paths]
    first = load_or_build(tmp_path / "ds", ids[::-1], 8, "ds", cache_dir, 1, False)
    assert first.images.shape == (5, 8, 8, 3) and first.images.dtype == np.uint8
    assert first.ids == sorted(ids) and first.failed == {}
    np.testing.assert_array_equal(first.images[first.rows([ids[2]])[0]], decode_image(paths[2], 8))

    def no_build(*args: object) -> None:
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(cache_module, "_build", no_build)
    again = load_or_build(tmp_path / "ds", ids, 8, "ds", cache_dir, 1, False)
    assert again.path == first.path
    np.testing.assert_array_equal(again.images, first.images)
    with pytest.raises(AssertionError, match="rebuilt"):
        load_or_build(tmp_path / "ds", ids, 6, "ds", cache_dir, 1, False)


def test_cache_new_size_builds_new_cache(
    tmp_path: Path, make_tree: MakeTree, cache_dir: Path
) -> None:
    paths = make_tree(tmp_path, {"ig": 2})
    ids = [p.relative_to(tmp_path).as_posix() for p in paths]
    small = load_or_build(tmp_path, ids, 6, "ds", cache_dir, 1, False)
    large = load_or_build(tmp_path, ids, 10, "ds", cache_dir, 1, False)
    assert small.path != large.path
    assert small.images.shape == (2, 6, 6, 3) and large.images.shape == (2, 10, 10, 3)
    assert small.path.exists() and large.path.exists()


def test_cache_key_follows_file_changes(
    tmp_path: Path, write_image: WriteImage, cache_dir: Path
) -> None:
    ids = ["ig/a.bmp"]  # BMP: the rewritten file has the same size, only the mtime changes
    path = write_image(tmp_path / ids[0], (8, 8), color=(10, 20, 30))
    key, size, mtime = cache_key(tmp_path, ids, 4), path.stat().st_size, path.stat().st_mtime_ns
    before = load_or_build(tmp_path, ids, 4, "ds", cache_dir, 1, False)
    write_image(path, (8, 8), color=(200, 100, 0))
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))  # coarse file-system clocks
    assert path.stat().st_size == size
    assert cache_key(tmp_path, ids, 4) != key
    after = load_or_build(tmp_path, ids, 4, "ds", cache_dir, 1, False)
    assert after.path != before.path
    assert tuple(after.images[0, 0, 0]) == (200, 100, 0)
    assert tuple(before.images[0, 0, 0]) == (10, 20, 30)


def test_cache_never_serves_a_file_rewritten_with_its_mtime_restored(
    tmp_path: Path, write_image: WriteImage, cache_dir: Path
) -> None:
    ids = ["ig/a.bmp"]  # BMP: same size; the mtime is put back as it was
    path = write_image(tmp_path / ids[0], (8, 8), color=(10, 20, 30))
    stat = path.stat()
    before = load_or_build(tmp_path, ids, 4, "ds", cache_dir, 1, False)
    write_image(path, (8, 8), color=(200, 100, 0))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    after = load_or_build(tmp_path, ids, 4, "ds", cache_dir, 1, False)
    assert after.path != before.path
    assert tuple(after.images[0, 0, 0]) == (200, 100, 0)


def test_cache_key_follows_the_decoder_code(
    tmp_path: Path, write_image: WriteImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.data.cellcrop import CropSpec, find_cell

    write_image(tmp_path / "ig" / "a.png", (8, 8))
    cell = CropSpec("cell", 0.5)
    key = cache_key(tmp_path, ["ig/a.png"], 4, cell)
    source = cache_module.decoder_source()
    assert inspect.getsource(find_cell) in source  # the cell finder is part of the key
    monkeypatch.setattr(cache_module, "decoder_source", lambda: source + "# a finder edit\n")
    assert cache_key(tmp_path, ["ig/a.png"], 4, cell) != key


def test_cache_key_takes_the_exact_cell_fraction(tmp_path: Path, write_image: WriteImage) -> None:
    from pipeline.data.cellcrop import CropSpec

    write_image(tmp_path / "ig" / "a.png", (8, 8))
    near = [cache_key(tmp_path, ["ig/a.png"], 4, CropSpec("cell", f)) for f in (0.42, 0.4200001)]
    assert near[0] != near[1]
    # a centre crop has no fraction: recipes that differ only there share one cache
    centre = [cache_key(tmp_path, ["ig/a.png"], 4, CropSpec("centre", f)) for f in (0.3, 0.42)]
    assert centre[0] == centre[1]


def test_cache_records_corrupt_images(tmp_path: Path, make_tree: MakeTree, cache_dir: Path) -> None:
    make_tree(tmp_path, {"ig": 2})
    (tmp_path / "ig" / "broken.jpg").write_bytes(np.random.default_rng(0).bytes(300))
    ids = ["ig/broken.jpg", "ig/img_000.jpg", "ig/img_001.jpg"]
    cache = load_or_build(tmp_path, ids, 8, "ds", cache_dir, 1, False)
    assert list(cache.failed) == ["ig/broken.jpg"]
    assert "Error" in cache.failed["ig/broken.jpg"]
    assert cache.images.shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(
        cache.images[cache.rows(["ig/img_001.jpg"])[0]], decode_image(tmp_path / ids[2], 8)
    )


# --- image store -----------------------------------------------------------------------------


def test_store_view_drops_unreadable_and_stays_aligned(
    tmp_path: Path, write_image: WriteImage, cache_dir: Path
) -> None:
    root = tmp_path / "cells"
    colours = {}
    for n, label in enumerate(FIVE * 3):
        rel = f"{label}/{n:02d}.png"
        colours[rel] = solid_colour(n)
        write_image(root / rel, (9, 7), color=colours[rel])
    (root / "monocyte" / "zz_broken.png").write_bytes(b"\x89PNG not really")
    ds = load_folder(root)
    store = ImageStore(cache_dir=cache_dir, workers=1, progress=False)
    store.register(ds)
    sets = image_sets(ds)
    with pytest.warns(UserWarning, match=r"1 unreadable image\(s\): monocyte/zz_broken.png"):
        views = {name: store.view(s, 6) for name, s in sets.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        views["train_again"] = store.view(sets["train"], 6)
        views["all_small"] = store.view(ImageSet("all", ds.name, root, tuple(ds.records())), 4)
    seen = set()
    for name, view in views.items():
        assert len(view.rows) == len(view.ids) == len(view.labels), name
        assert "monocyte/zz_broken.png" not in view.ids
        for row, i, label in zip(view.rows, view.ids, view.labels, strict=True):
            assert label == i.split("/")[0]
            assert (view.images[row] == colours[i]).all(), (name, i)
        seen.update(view.ids)
    assert seen == set(colours)


def test_store_view_needs_registration(tmp_path: Path, cache_dir: Path) -> None:
    store = ImageStore(cache_dir=cache_dir, workers=1, progress=False)
    with pytest.raises(KeyError, match="not registered"):
        store.view(ImageSet("test", "x", tmp_path, ()), 8)


# --- augmentation and loader -----------------------------------------------------------------


def test_build_augment_unknown_name_lists_known() -> None:
    with pytest.raises(KeyError, match="'sharpen'") as info:
        build_augment(["hflip", "sharpen"], 8)
    assert all(name in str(info.value) for name in AUGMENTATIONS)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augment_preserves_shape_and_dtype(name: str) -> None:
    image = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    out = build_augment([name], 12, seed=1)(image=image)["image"]
    assert out.shape == (12, 12, 3) and out.dtype == np.uint8


def test_augment_seed_determines_output() -> None:
    images = np.random.default_rng(0).integers(0, 256, (8, 10, 10, 3), dtype=np.uint8)
    names = ["rot90", "hflip", "vflip", "color"]

    def run(seed: int) -> list[np.ndarray]:
        augment = build_augment(names, 10, seed=seed)
        return [augment(image=image)["image"] for image in images]

    first = run(5)
    assert all(np.array_equal(a, b) for a, b in zip(first, run(5), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, run(6), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, images, strict=True))


def augmented(images: np.ndarray, augment_seed: int) -> CachedImages:
    """Images whose labels are their row numbers, with random rotations and flips."""
    rows = np.arange(len(images))
    augment = build_augment(["rot90", "hflip", "vflip"], images.shape[1], seed=augment_seed)
    return CachedImages(images, rows, rows, augment)


def epoch(dataset: CachedImages, seed: int, workers: int) -> tuple[list[int], np.ndarray]:
    """Labels (= source rows) and images, in loader order, of one shuffled epoch."""
    loader = make_loader(dataset, 4, shuffle=True, workers=workers, seed=seed, pin_memory=False)
    order, batches = [], []
    for x, y in loader:
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 6, 6)
        order += y.tolist()
        batches.append(x.numpy())
    return order, np.concatenate(batches)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_seed_fixes_order_and_augmentation(workers: int) -> None:
    images = np.random.default_rng(0).integers(0, 256, (16, 6, 6, 3), dtype=np.uint8)
    dataset = augmented(images, augment_seed=0)
    order, batch = epoch(dataset, 7, workers)
    assert sorted(order) == list(range(16))
    assert not np.array_equal(batch, images[order].transpose(0, 3, 1, 2))  # augmentation ran
    for again in (dataset, augmented(images, augment_seed=99)):  # the loader seed alone counts
        same_order, same_batch = epoch(again, 7, workers)
        assert same_order == order
        np.testing.assert_array_equal(same_batch, batch)
    other_order, other_batch = epoch(dataset, 8, workers)
    assert other_order != order
    assert not np.array_equal(other_batch[np.argsort(other_order)], batch[np.argsort(order)])


def test_loader_workers_draw_their_own_augmentations() -> None:
    image = np.random.default_rng(0).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    _, batch = epoch(augmented(np.stack([image] * 16), augment_seed=0), 7, workers=2)
    # Worker 0 makes batches 0 and 2, worker 1 batches 1 and 3: forked with one RNG state and
    # never reseeded, both would turn the identical images the same way.
    assert not np.array_equal(batch[:4], batch[4:8])
