"""Across labs: the LISC adapter, cell-centred crops, stain augmentation, seeds and intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.commands import zoo
from pipeline.commands.options import parse_seeds, parse_source
from pipeline.data import DatasetLayoutError, load_dataset
from pipeline.data.augment import build_augment, hed_jitter
from pipeline.data.cache import load_or_build
from pipeline.data.cellcrop import (
    CELL_MARGIN,
    FOUND,
    MASK,
    NO_CELL,
    SEVERAL,
    CropSpec,
    cell_crop,
    find_cell,
)
from pipeline.errors import UserError
from pipeline.evaluation.scoring import AnswerKey, score
from pipeline.evaluation.stats import mean_ci, seed_summary
from pipeline.training.recipes import get_recipe, override

BACKGROUND = (236, 228, 232)  # pale slide
RED_CELL = (214, 168, 178)  # pale pink erythrocyte
NUCLEUS = (105, 40, 150)  # dark purple nucleus stain


def draw_frame(
    size: tuple[int, int] = (180, 144),
    nuclei: list[tuple[int, int, int]] = (),
    red_cells: int = 12,
    seed: int = 0,
) -> np.ndarray:
    """A pale frame with red cells and dark nucleus discs ``(cx, cy, radius)``."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    for _ in range(red_cells):
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 7**2] = RED_CELL
    for cx, cy, r in nuclei:
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r**2] = NUCLEUS
    return img


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


# --- the cell finder and the crop -------------------------------------------------------------


@pytest.mark.parametrize(("cx", "cy", "r"), [(120, 50, 14), (40, 100, 9), (90, 72, 20)])
def test_finder_centres_the_nucleus_and_scales_the_crop(cx: int, cy: int, r: int) -> None:
    frame = draw_frame(nuclei=[(cx, cy, r)], seed=cx)
    detection = find_cell(frame)
    assert detection.status == FOUND
    x0, y0, x1, y1 = detection.box
    assert abs((x0 + x1) / 2 - cx) <= 2 and abs((y0 + y1) / 2 - cy) <= 2
    assert (x1 - x0) == pytest.approx(2 * r * CELL_MARGIN, rel=0.15)
    crop, _ = cell_crop(frame, 0.5)
    side = crop.shape[0]
    assert crop.shape[:2] == (side, side)
    assert side == pytest.approx(2 * r * CELL_MARGIN / 0.5, rel=0.15)
    ys, xs = np.nonzero((crop == NUCLEUS).all(axis=2))
    assert abs(xs.mean() - side / 2) <= 2 and abs(ys.mean() - side / 2) <= 2  # cell centred


def test_finder_falls_back_without_a_cell_or_with_several() -> None:
    empty = draw_frame()
    assert find_cell(empty).status == NO_CELL
    crop, detection = cell_crop(empty, 0.5)
    assert detection.box is None and crop.shape == (144, 144, 3)  # the centre square
    two = draw_frame(nuclei=[(40, 40, 12), (140, 100, 11)])
    assert find_cell(two).status == SEVERAL
    # a platelet-sized speck beside the cell is no second cell
    speck = draw_frame(nuclei=[(60, 70, 14), (150, 20, 2)])
    assert find_cell(speck).status == FOUND


def test_lobes_of_one_nucleus_are_one_cell() -> None:
    lobes = draw_frame(nuclei=[(80, 70, 7), (95, 70, 7), (88, 82, 7)])
    detection = find_cell(lobes)
    assert detection.status == FOUND
    x0, y0, x1, y1 = detection.box
    assert x0 <= 73 and x1 >= 102


def test_expert_mask_places_the_crop() -> None:
    frame = draw_frame(nuclei=[(40, 40, 10), (140, 100, 10)])  # two cells: the finder gives up
    mask = np.zeros(frame.shape[:2], dtype=np.uint8)
    mask[90:111, 130:151] = 128  # cytoplasm and nucleus in two grey levels, as LISC draws them
    mask[95:106, 135:146] = 255
    detection = find_cell(frame, mask)
    assert detection.status == MASK and detection.box == (130, 90, 151, 111)
    assert find_cell(frame, np.zeros_like(mask)).status == SEVERAL  # an empty mask is no help


def test_crop_spec_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="centre, cell"):
        CropSpec("middle")
    with pytest.raises(ValueError, match="cell_fraction"):
        CropSpec("cell", 0.0)


def test_cell_and_centre_caches_never_mix_and_count_fallbacks(tmp_path: Path, cache_dir) -> None:
    root = tmp_path / "frames"
    save(root / "lymphocyte" / "a.png", draw_frame(nuclei=[(120, 50, 14)]))
    save(root / "lymphocyte" / "b.png", draw_frame(nuclei=[(40, 40, 12), (140, 100, 11)]))
    save(root / "neutrophil" / "c.png", draw_frame(seed=3))
    ids = sorted(r.id for r in load_dataset("folder", root).records())
    centre = load_or_build(root, ids, 32, "f", cache_dir, 1, False)
    cell = load_or_build(root, ids, 32, "f", cache_dir, 1, False, CropSpec("cell", 0.5))
    assert centre.path != cell.path
    assert cell.crop_counts(ids) == {FOUND: 1, NO_CELL: 1, SEVERAL: 1}
    assert centre.crop_counts(ids) == {"centre": 3}
    row = cell.rows(["lymphocyte/a.png"])[0]
    dark = (cell.images[row].astype(int).sum(axis=2) < 400).nonzero()
    assert abs(dark[0].mean() - 16) <= 1.5 and abs(dark[1].mean() - 16) <= 1.5
    again = load_or_build(root, ids, 32, "f", cache_dir, 1, False, CropSpec("cell", 0.5))
    assert again.path == cell.path  # built once
    other = load_or_build(root, ids, 32, "f", cache_dir, 1, False, CropSpec("cell", 0.4))
    assert other.path != cell.path


# --- LISC --------------------------------------------------------------------------------------


def lisc_frames(root: Path) -> Path:
    """LISC as published, small: 2 frames per class, a duplicate, mixt, one expert mask."""
    for k, folder in enumerate(("Baso", "eosi", "lymp", "mono", "neut")):
        for n in (1, 2):
            frame = draw_frame((72, 58), nuclei=[(20 + 10 * n, 30, 6)], seed=10 * k + n)
            save(root / "Main Dataset" / folder / f"{n}.bmp", frame)
    dup = root / "Main Dataset" / "Baso" / "50.bmp"
    dup.write_bytes((root / "Main Dataset" / "Baso" / "2.bmp").read_bytes())
    save(root / "Main Dataset" / "mixt" / "1.bmp", draw_frame((72, 58)))
    mask = np.zeros((58, 72), dtype=np.uint8)
    mask[20:40, 20:40] = 255
    save(root / "Ground Truth Segmentation" / "eosi" / "areaforexpert1" / "2_expert.bmp", mask)
    return root


def test_lisc_published_layout(tmp_path: Path) -> None:
    root = lisc_frames(tmp_path / "LISC")
    with pytest.warns(UserWarning, match="Baso/50.bmp is the same file as Main Dataset/Baso/2"):
        ds = load_dataset("lisc", root)
    assert ds.classes == ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
    ids = {r.id for r in ds.records()}
    assert len(ids) == 10 and not any("mixt" in i or "50.bmp" in i for i in ids)
    masks = {r.id: r.mask for r in ds.records() if r.mask}
    expert = "Ground Truth Segmentation/eosi/areaforexpert1/2_expert.bmp"
    assert masks == {"Main Dataset/eosi/2.bmp": expert}
    with pytest.warns(UserWarning):
        assert load_dataset("lisc", root / "Main Dataset").root == root


def test_lisc_cropped_layout_and_its_errors(tmp_path: Path) -> None:
    root = tmp_path / "LISCcropped"
    names = {f"{i}.bmp": 1 + i % 5 for i in range(20)}
    for part in ("Train", "Test"):
        for name in names:
            save(root / part / name, draw_frame((24, 24), nuclei=[(12, 12, 5)]))
        (root / f"{part}.json").write_text(json.dumps(names))
    ds = load_dataset("lisc", root)
    assert ds.trainable and len(ds.splits["test"]) == 20
    labels = {r.id: r.label for r in ds.splits["test"]}
    assert labels["Test/0.bmp"] == "neutrophil" and labels["Test/4.bmp"] == "basophil"
    (root / "Test.json").write_text(json.dumps({"0.bmp": 7}))
    with pytest.raises(DatasetLayoutError, match="label 7.*1=neutrophil"):
        load_dataset("lisc", root)
    (root / "Test.json").write_text(json.dumps({"missing.bmp": 1}))
    with pytest.raises(DatasetLayoutError, match="lists missing.bmp"):
        load_dataset("lisc", root)
    with pytest.raises(DatasetLayoutError, match="Main Dataset/<Baso"):
        load_dataset("lisc", tmp_path)


def test_eval_spec_takes_an_adapter_prefix() -> None:
    assert parse_source("lisc=lisc:/data/LISC") == ("lisc", "lisc", Path("/data/LISC"))
    assert parse_source("bccd=/data/bccd") == ("bccd", "folder", Path("/data/bccd"))
    assert parse_source("win=C:/data") == ("win", "folder", Path("C:/data"))
    with pytest.raises(UserError, match="NAME=\\[ADAPTER:\\]PATH"):
        parse_source("lisc")


# --- scoring over shared classes, seeds and intervals ------------------------------------------


def test_members_are_scored_over_the_classes_they_share_with_a_set() -> None:
    member = ("basophil", "lymphocyte", "neutrophil", "platelet")
    key = {"a": "lymphocyte", "b": "neutrophil", "c": "monocyte", "d": "neutrophil"}
    probs = np.array([[0.1, 0.5, 0.1, 0.3], [0.6, 0.1, 0.3, 0.0], [0, 1, 0, 0], [0, 0, 1, 0]])
    answers = AnswerKey(key, ("lymphocyte", "monocyte", "neutrophil"))
    result = score(list(key), probs, member, answers)
    assert result["classes"] == ["lymphocyte", "neutrophil"]  # basophil, platelet not in the set
    assert result["unscored"] == 1  # the monocyte: the member never learnt it
    assert result["n"] == 3 and result["accuracy"] == pytest.approx(1.0)  # b: 0.3 vs 0.1


def test_seed_ranges() -> None:
    assert parse_seeds("0-9") == list(range(10))
    assert parse_seeds("0,3,5-7,3") == [0, 3, 5, 6, 7]
    for bad in ("x", "5-3", ""):
        with pytest.raises(UserError, match="--seeds"):
            parse_seeds(bad)


def test_seed_summary_is_mean_and_student_t_interval() -> None:
    table = pd.DataFrame(
        {
            "arch": ["a", "a", "a", "b"],
            "recipe": ["fast"] * 4,
            "seed": [0, 1, 2, 0],
            "test_acc": [0.80, 0.82, 0.84, 0.5],
        }
    )
    summary = seed_summary(table).set_index("arch")
    assert summary.loc["a", "n"] == 3 and summary.loc["a", "seeds"] == "0,1,2"
    assert summary.loc["a", "test_acc_mean"] == pytest.approx(0.82)
    assert summary.loc["a", "test_acc_ci95"] == pytest.approx(4.303 * 0.02 / np.sqrt(3), rel=1e-3)
    assert np.isnan(summary.loc["b", "test_acc_ci95"])
    assert mean_ci(table["test_acc"][:3])[0] == pytest.approx(0.82)


# --- stain and colour augmentation --------------------------------------------------------------


def test_stain_augmentations_are_seeded_and_change_colour() -> None:
    image = draw_frame((32, 32), nuclei=[(16, 16, 6)])
    assert np.abs(hed_jitter(image, np.ones(3), np.zeros(3)).astype(int) - image).max() <= 1
    for names in (["hestain"], ["hed"], ["colorjitter"], ["hed", "colorjitter", "grayscale"]):
        first, second = build_augment(names, 32, seed=4), build_augment(names, 32, seed=4)
        a = [first(image=image)["image"] for _ in range(6)]
        b = [second(image=image)["image"] for _ in range(6)]
        assert all((x == y).all() for x, y in zip(a, b, strict=True)), names
        assert any((x != image).any() for x in a), names
    gray = build_augment(["grayscale"], 32, seed=0)
    outs = [gray(image=image)["image"] for _ in range(60)]
    grey = sum(
        bool((o[..., 0] == o[..., 1]).all() and (o[..., 1] == o[..., 2]).all()) for o in outs
    )
    assert 1 <= grey <= 20  # about one in ten


# --- the zoo across labs -----------------------------------------------------------------------


@pytest.mark.trains
def test_zoo_trains_with_cell_crops_evaluates_lisc_and_summarises_seeds(tmp_path: Path) -> None:
    train = tmp_path / "cells"
    for k, label in enumerate(("lymphocyte", "neutrophil")):
        for i in range(12):
            r = 8 + 4 * k
            frame = draw_frame((90, 72), nuclei=[(30 + 2 * i, 36, r)], seed=100 * k + i)
            save(train / label / f"{i}.png", frame)
    lisc = lisc_frames(tmp_path / "LISC")
    with pytest.warns(UserWarning):
        code = zoo.main(
            [
                "--dataset", "folder", "--data", str(train), "--weights", "none",
                "--models", "resnet18", "--recipe", "robust", "--image-size", "32",
                "--epochs", "1", "--batch-size", "8", "--seeds", "0-1",
                "--eval", f"lisc=lisc:{lisc}", "--out", str(tmp_path / "out"),
                "--cache-dir", str(tmp_path / "cache"), "--no-progress",
            ]
        )  # fmt: skip
    assert code == 0
    results = pd.read_csv(tmp_path / "out" / "zoo" / "results-cells.csv")
    assert list(results["seed"]) == [0, 1] and "lisc_acc" in results
    seeds = pd.read_csv(tmp_path / "out" / "zoo" / "results-cells-seeds.csv")
    assert seeds.loc[0, "n"] == 2 and "lisc_acc_ci95" in seeds
    robust = override(get_recipe("robust"), {"image_size": 32, "epochs": 1, "batch_size": 8})
    member = tmp_path / "out" / "zoo" / "members" / "cells" / f"resnet18-{robust.name}-s0"
    sets = json.loads((member / "metrics.json").read_text())["sets"]
    assert sets["lisc"]["set_classes"] == [
        "basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil",
    ]  # fmt: skip
    assert sets["lisc"]["classes"] == ["lymphocyte", "neutrophil"]
    assert sets["lisc"]["crop"]["mode"] == "cell"
    assert sets["lisc"]["crop"]["counts"] == {FOUND: 9, MASK: 1}
    assert sum(sets["test"]["crop"]["counts"].values()) == sets["test"]["n"]


def test_loaded_members_crop_new_images_as_they_were_trained() -> None:
    from pipeline.inference.load import LoadedMember
    from pipeline.runs.metadata import MemberMeta

    def member(meta: dict) -> LoadedMember:  # only its metadata is read
        return LoadedMember("m", "d", MemberMeta.from_json(meta), None, None, None)

    assert member({"recipe": {"crop": "cell", "cell_fraction": 0.5}}).crop == CropSpec("cell", 0.5)
    assert member({"recipe": {"name": "fast"}}).crop == CropSpec()  # trained before crops


def test_raabin_testb_alone_is_an_evaluation_set(raabin_root: Path, cache_dir) -> None:
    from pipeline.data.store import ImageStore, image_sets

    testb = load_dataset("raabin-testb", raabin_root)
    assert list(testb.splits) == ["testb"] and len(testb.records()) == 10
    assert all(r.id.startswith("TestB/") for r in testb.records())
    raabin = load_dataset("raabin", raabin_root)
    store = ImageStore(cache_dir, workers=1, progress=False)
    store.register(raabin)
    store.register(testb)  # the same root: one cache keeps both adapters' images
    sets = image_sets(raabin, {"b": testb})
    assert len(store.view(sets["train"], 8).ids) == len(raabin.splits["train"])
    assert len(store.view(sets["b"], 8).ids) == 10


def test_crop_sheet_counts_and_draws_every_set(tmp_path: Path, capsys) -> None:
    from pipeline.commands import cropsheet

    lisc = lisc_frames(tmp_path / "LISC")
    save(
        tmp_path / "two" / "neutrophil" / "a.png", draw_frame(nuclei=[(40, 40, 12), (140, 99, 11)])
    )
    out = tmp_path / "sheet.png"
    with pytest.warns(UserWarning):
        code = cropsheet.main([f"lisc=lisc:{lisc}", f"two={tmp_path / 'two'}", "--png", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "lisc (lisc, 10 of 10): 9 found, 1 mask" in printed
    assert "two (folder, 1 of 1): 1 several cells -> centre crop" in printed
    with Image.open(out) as sheet:
        assert sheet.width > 10 * 100 and sheet.height > 2 * 2 * 100
