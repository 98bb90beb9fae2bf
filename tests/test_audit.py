"""The data audit: hashing, duplicate search, leakage, outliers, unreadable files, the report."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.auditing import AuditConfig, audit
from pipeline.auditing.hashing import DS_STORE_MAGIC, hamming, near_pairs, perceptual_hashes
from pipeline.commands.audit import main
from pipeline.data import load_dataset

MakeTree = Callable[..., list[Path]]  # the conftest ``make_tree`` fixture
WriteImage = Callable[..., Path]  # the conftest ``write_image`` fixture
COUNTS = {"lymphocyte": 12, "neutrophil": 12}  # folder split 64/24/12 -> 8/3/1 per class


def cell_image(shift: int = 0, size: int = 48) -> np.ndarray:
    """A smooth cell-like RGB picture: shaded background, a nucleus, a red cell; ``shift``
    moves everything right by that many pixels."""
    y, x = np.mgrid[:size, :size].astype(np.float32)
    x -= shift
    image = np.stack([225 - 0.6 * x, 205 - 0.4 * y, 215 - 0.2 * (x + y)], axis=-1)
    image[(x - 20) ** 2 + (y - 26) ** 2 < 100] = (90, 40, 140)
    image[(x - 38) ** 2 + (y - 10) ** 2 < 36] = (210, 120, 130)
    return np.clip(image, 0, 255).astype(np.uint8)


def save_jpeg(pixels: np.ndarray, path: Path, quality: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=quality)
    return path


def decoded(path: Path) -> np.ndarray:
    """The image as the audit sees it: RGB at 64 px."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR))


def split_of(root: Path) -> dict[str, str]:
    """Map image id -> the split the folder adapter puts it in."""
    ds = load_dataset("folder", root)
    return {r.id: split for split, records in ds.splits.items() for r in records}


def run(args: list[str], cache_dir: Path) -> int:
    return main([*args, "--cache-dir", str(cache_dir), "--decode-workers", "1", "--no-progress"])


def config(root: Path, cache_dir: Path, **kwargs: object) -> AuditConfig:
    return AuditConfig("folder", root, cache_dir=cache_dir, workers=1, progress=False, **kwargs)


@pytest.fixture
def cells(tmp_path: Path, make_tree: MakeTree) -> Path:
    """A folder dataset of noise images, 12 per class, 2 classes."""
    root = tmp_path / "cells"
    make_tree(root, COUNTS)
    return root


# --- hashing and the banded search ---------------------------------------------------------


@pytest.mark.parametrize("max_distance", [0, 3, 12, 40])
def test_banded_search_finds_exactly_the_pairs_brute_force_finds(max_distance: int) -> None:
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, (300, 2), dtype=np.uint64)
    for k in range(60):  # near copies with 0..14 flipped bits
        bits = np.unpackbits(hashes[k].view(np.uint8))
        bits[rng.choice(128, k % 15, replace=False)] ^= 1
        hashes[150 + k] = np.packbits(bits).view(np.uint64)
    dist = hamming(hashes[:, None], hashes[None, :])
    i, j = np.nonzero(np.triu(dist <= max_distance, k=1))
    expected = {(a, b, dist[a, b]) for a, b in zip(i, j, strict=True)}
    found = {tuple(row) for row in near_pairs(hashes, max_distance)}
    assert found == expected
    planted = {(k, 150 + k) for k in range(60) if k % 15 <= max_distance}
    assert planted <= {(a, b) for a, b, _ in found}


def test_perceptual_hash_keeps_resaved_and_shifted_copies_close(tmp_path: Path) -> None:
    base = save_jpeg(cell_image(), tmp_path / "a.jpg", quality=95)
    resaved = save_jpeg(cell_image(), tmp_path / "b.jpg", quality=70)
    shifted = save_jpeg(cell_image(shift=1), tmp_path / "c.jpg", quality=95)
    noise = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    other = save_jpeg(noise, tmp_path / "d.jpg", quality=95)
    h = perceptual_hashes(np.stack([decoded(p) for p in (base, resaved, shifted, other)]))
    assert hamming(h[0], h[1]) <= 4
    assert hamming(h[0], h[2]) <= 12
    assert hamming(h[0], h[3]) > 30


# --- leakage, duplicates ---------------------------------------------------------------------


def test_exact_duplicate_across_train_and_test_is_leakage(
    cells: Path, tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    splits = split_of(cells)
    train = next(i for i, s in sorted(splits.items()) if s == "train")
    test = next(i for i, s in sorted(splits.items()) if s == "test")
    shutil.copyfile(cells / train, cells / test)
    out = tmp_path / "out"
    assert run(["--dataset", "folder", "--data", str(cells), "--out", str(out)], cache_dir) == 0
    assert "LEAKAGE: 1 duplicate pair" in capsys.readouterr().err
    folder = out / "audit-cells"
    report = (folder / "report.md").read_text()
    leakage = report.split("\n## ")[1]  # the first section after the header
    assert leakage.startswith("⚠ LEAKAGE: 1 duplicate pair")
    assert "train ↔ test: 1" in leakage
    assert f"`{train}`" in leakage and f"`{test}`" in leakage and "| exact |" in leakage
    for name in ("duplicates.png", "outliers.png", "duplicates.csv", "outliers.csv"):
        assert (folder / name).stat().st_size > 0
    args = ["--dataset", "folder", "--data", str(cells), "--out", str(out), "--fail-on-leakage"]
    assert run(args, cache_dir) == 1


def test_clean_dataset_passes_fail_on_leakage(
    cells: Path, tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--dataset", "folder", "--data", str(cells), "--out", str(tmp_path / "out")]
    assert run([*args, "--fail-on-leakage"], cache_dir) == 0
    assert "LEAKAGE" not in capsys.readouterr().err
    report = (tmp_path / "out" / "audit-cells" / "report.md").read_text()
    assert "## Leakage: none" in report and "## Duplicates: none" in report


def test_near_duplicates_are_found_within_and_across_splits(cells: Path, cache_dir: Path) -> None:
    base = save_jpeg(cell_image(), cells / "lymphocyte" / "cell_a.jpg", quality=95)
    save_jpeg(cell_image(), cells / "lymphocyte" / "cell_b.jpg", quality=70)
    save_jpeg(cell_image(shift=1), cells / "neutrophil" / "cell_c.jpg", quality=95)
    result = audit(config(cells, cache_dir))
    found = {
        frozenset((result.items[p.a].id, result.items[p.b].id)): p
        for p in result.pairs
        if p.kind == "near"
    }
    base_id = base.relative_to(cells).as_posix()
    for other in ("lymphocyte/cell_b.jpg", "neutrophil/cell_c.jpg"):
        pair = found[frozenset((base_id, other))]
        sets = {result.items[pair.a].set, result.items[pair.b].set}
        assert pair.leak == (len(sets) == 2 and bool(sets & {"train", "val"}))
    assert len(found) == 3  # the three copies pair up; no noise image joins them


def leaking_extra(cells: Path, extra: Path, make_tree: MakeTree) -> Path:
    """Another lab's folder holding a copy of a training image."""
    make_tree(extra, {"lymphocyte": 3}, seed=100)
    train = next(i for i, s in sorted(split_of(cells).items()) if s == "train")
    shutil.copyfile(cells / train, extra / "lymphocyte" / "copy.jpg")
    return extra


def test_duplicate_in_an_extra_dataset_leaks_from_train(
    cells: Path, tmp_path: Path, cache_dir: Path, make_tree: MakeTree
) -> None:
    extra = leaking_extra(cells, tmp_path / "lab2", make_tree)
    result = audit(config(cells, cache_dir, extra={"lab2": ("folder", extra)}))
    (pair,) = result.pairs
    assert pair.leak and pair.kind == "exact"
    assert {result.items[pair.a].set, result.items[pair.b].set} == {"train", "lab2"}
    assert result.items[pair.b].dataset == "lab2"


def test_eval_sets_take_an_adapter_and_the_report_folder_is_chosen(
    cells: Path, tmp_path: Path, cache_dir: Path, make_tree: MakeTree
) -> None:
    extra = leaking_extra(cells, tmp_path / "lab2", make_tree)
    report = tmp_path / "report"
    args = ["--dataset", "folder", "--data", str(cells), "--eval", f"lab2=folder:{extra}",
            "--report", str(report), "--fail-on-leakage"]  # fmt: skip
    assert run(args, cache_dir) == 1  # the copy leaks from train
    assert "lab2" in (report / "report.md").read_text()


def test_also_name_clashing_with_a_split_is_an_error(cells: Path, cache_dir: Path) -> None:
    with pytest.raises(ValueError, match="clash"):
        audit(config(cells, cache_dir, extra={"test": ("folder", cells)}))


# --- outliers --------------------------------------------------------------------------------


def test_odd_image_ranks_first_as_outlier(
    cells: Path, tmp_path: Path, cache_dir: Path, write_image: WriteImage
) -> None:
    cartoon = write_image(cells / "lymphocyte" / "cartoon.png", (14, 12), color=(60, 230, 60))
    pixels = np.asarray(Image.open(cartoon)).copy()
    pixels[3:9, 4:10] = 0  # a black square on flat bright green
    Image.fromarray(pixels).save(cartoon)
    out = tmp_path / "out"
    assert run(["--dataset", "folder", "--data", str(cells), "--out", str(out)], cache_dir) == 0
    report = (out / "audit-cells" / "report.md").read_text()
    rank_one = r"\n\| 1 \| [\d.]+ \| (train|val|test) \| `lymphocyte/cartoon.png` \| lymphocyte \|"
    assert re.search(rank_one, report)
    assert (out / "audit-cells" / "outliers.png").stat().st_size > 0


def test_outliers_in_a_zoo_members_feature_space(
    cells: Path, tmp_path: Path, cache_dir: Path, trained_zoo: Path, zoo_args
):
    """The trained zoo's resnet18 (its own classes need not be these cells') embeds them."""
    from pipeline.commands import zoo

    zoo_out = trained_zoo / "out"
    args = zoo_args(trained_zoo / "cells", zoo_out, models="resnet18")
    recipe = zoo.recipe_from_options(zoo.build_parser().parse_args(args), False)
    member = f"resnet18-{recipe.name}-s0"
    assert (zoo_out / "zoo" / "members" / "cells" / member / "best.safetensors").exists()
    out = tmp_path / "out"
    args = ["--dataset", "folder", "--data", str(cells), "--report", str(out / "audit-cells"),
            "--member", member, "--out", str(zoo_out)]  # fmt: skip
    assert run(args, cache_dir) == 0
    report = (out / "audit-cells" / "report.md").read_text()
    assert f"512 penultimate features of the zoo member `{member}`" in report
    scores = pd.read_csv(out / "audit-cells" / "outliers.csv")
    assert scores["score"].notna().sum() == sum(COUNTS.values())


# --- unreadable files, class balance, sizes ---------------------------------------------------


def test_unreadable_and_skipped_files_are_reported(
    cells: Path, tmp_path: Path, cache_dir: Path
) -> None:
    (cells / "neutrophil" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (cells / "neutrophil" / ".DS_1.jpg").write_bytes(DS_STORE_MAGIC + bytes(100))
    out = tmp_path / "out"
    assert run(["--dataset", "folder", "--data", str(cells), "--out", str(out)], cache_dir) == 0
    report = (out / "audit-cells" / "report.md").read_text()
    section = report.split("## Unreadable and skipped files: 2")[1].split("\n## ")[0]
    assert "`neutrophil/broken.jpg` | no image format PIL knows (17 bytes)" in section
    assert "`neutrophil/.DS_1.jpg` | skipped by the adapter: a macOS .DS_Store file" in section


def test_class_balance_and_sizes_tables(
    cells: Path, tmp_path: Path, cache_dir: Path, write_image: WriteImage
) -> None:
    for i in range(3):
        write_image(cells / "neutrophil" / f"big_{i}.png", (30, 20), seed=50 + i)
    out = tmp_path / "out"
    assert run(["--dataset", "folder", "--data", str(cells), "--out", str(out)], cache_dir) == 0
    report = (out / "audit-cells" / "report.md").read_text()
    balance = report.split("## Class balance")[1].split("\n## ")[0]
    # 12 lymphocytes -> 8/3/1; 15 neutrophils -> round(9.6)=10 / round(3.6)=4 / 1
    assert "| class | train | val | test | total | share |" in balance
    assert "| lymphocyte | 8 | 3 | 1 | 12 | 44.4% |" in balance
    assert "| neutrophil | 10 | 4 | 1 | 15 | 55.6% |" in balance
    assert "| **all** | 18 | 7 | 2 | 27 | 100% |" in balance
    sizes = report.split("## Image sizes")[1]
    assert "2 distinct sizes" in sizes and "| 14×12 | 24 | 88.9% |" in sizes
    assert "| 30×20 | 3 | 11.1% |" in sizes


def test_help_names_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    checks = ("LEAKAGE", "outliers", "unreadable", "--fail-on-leakage", "--eval NAME=")
    for words in checks:
        assert words in text
