"""Temperature scaling, calibration error and risk-coverage on tables whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.classes import CLASSES
from pipeline.commands import calibrate
from pipeline.evaluation.calibration import (
    accepted,
    apply_temperature,
    calibrate_entry,
    ece,
    fit_temperature,
    nll,
    reliability,
    risk_coverage,
)
from pipeline.evaluation.scoring import AnswerKey
from pipeline.runs.entry import EntryWriter
from pipeline.runs.layout import EntryFiles
from pipeline.runs.submissions import read_submission, write_submission


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def overconfident(n: int, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z) and a model that answers softmax(scale * z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, (n, 5))
    truth = softmax(z)
    y = np.array([rng.choice(5, p=p) for p in truth])
    return softmax(scale * z), y


def test_fit_recovers_the_temperature_that_undoes_overconfidence() -> None:
    probs, y = overconfident(4000, 3.0)
    t = fit_temperature(probs, y)
    assert t == pytest.approx(3.0, rel=0.1)
    calibrated = apply_temperature(probs, t)
    assert ece(calibrated, y) < ece(probs, y) / 3
    assert nll(calibrated, y) < nll(probs, y)
    # an underconfident model is sharpened (T < 1)
    soft, y2 = overconfident(4000, 0.5, seed=1)
    assert fit_temperature(soft, y2) == pytest.approx(0.5, rel=0.1)


def test_temperature_keeps_the_argmax_and_survives_zero_probabilities() -> None:
    probs = np.array([[1.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.0, 0.0, 1.0]])
    for t in (0.3, 1.0, 4.0):
        out = apply_temperature(probs, t)
        assert np.isfinite(out).all() and np.allclose(out.sum(axis=1), 1)
        assert (out.argmax(axis=1) == probs.argmax(axis=1)).all()
    np.testing.assert_array_equal(apply_temperature(probs, 1.0), probs)
    softer = apply_temperature(probs, 4.0)
    assert softer[1].max() < 0.5 and softer[1].min() > 0.2
    # a true class at probability 0 gives a finite loss, so the fit still converges
    assert np.isfinite(fit_temperature(probs, np.array([1, 1, 2])))


def test_ece_and_reliability_by_hand() -> None:
    # ten cells at confidence 0.8, eight right: calibrated; ten at 0.95, all right: 0.05 off
    probs = np.array([[0.8, 0.2]] * 10 + [[0.95, 0.05]] * 10)
    y = np.array([0] * 8 + [1] * 2 + [0] * 10)
    assert ece(probs[:10], y[:10]) == pytest.approx(0.0)
    assert ece(probs, y) == pytest.approx(0.5 * 0.0 + 0.5 * 0.05)
    table = reliability(probs, y)
    used = [b for b in table if b["n"]]
    assert [(b["n"], b["accuracy"]) for b in used] == [(10, 0.8), (10, 1.0)]
    assert used[0]["lo"] < 0.8 <= used[0]["hi"] and len(table) == 15


def test_risk_coverage_keeps_the_most_confident_cells() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    y = np.array([0, 0, 0, 1])  # confidences 0.9, 0.6, 0.8, 0.7; the 0.8 one is wrong
    curve = risk_coverage(probs, y, coverages=(0.25, 0.5, 0.75, 1.0))
    assert curve["accuracy"] == pytest.approx([1.0, 0.5, 2 / 3, 0.75])
    assert curve["aurc"] == pytest.approx((0 + 0.5 + 1 / 3 + 0.25) / 4)
    # ties: exactly ceil(coverage * n) cells, the earlier ones first
    assert accepted(np.array([0.5, 0.5, 0.5]), 0.5).tolist() == [True, True, False]
    assert accepted(np.array([0.1, 0.9]), 1.0).all()


def raw_path(folder: Path, set_name: str) -> Path:
    return EntryFiles(folder).raw(set_name)


def write_raw(folder: Path, name: str, ids: list[str], probs: np.ndarray, classes) -> None:
    write_submission(raw_path(folder, name), ids, probs, classes)


def test_calibrate_entry_writes_calibrated_sets_and_reports_across_labs(tmp_path: Path) -> None:
    classes = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
    val, y_val = overconfident(600, 3.0)
    lab, y_lab = overconfident(200, 3.0, seed=5)
    folder = tmp_path / "sub"
    ids = [f"v{i}" for i in range(600)]
    write_raw(folder, "val", ids, val, classes)
    write_raw(folder, "lab2", [f"l{i}" for i in range(200)], lab, classes)
    keys = {
        "val": AnswerKey({i: classes[k] for i, k in zip(ids, y_val, strict=True)}, classes),
        # the other lab knows no basophils: its cells of that class are left out of the report
        "lab2": AnswerKey(
            {f"l{i}": classes[k] for i, k in enumerate(y_lab) if k != 0}, classes[1:]
        ),
    }
    entry = EntryWriter(EntryFiles(folder), "member", classes)
    calib = calibrate_entry(entry, keys.get)
    assert calib.temperature == pytest.approx(3.0, rel=0.2) and calib.n_fit == 600
    written = read_submission(folder / "val.csv")
    np.testing.assert_allclose(written.probs, apply_temperature(val, calib.temperature), atol=1e-6)
    report = calib.sets["lab2"]
    assert report["n"] == int((y_lab != 0).sum())
    assert report["ece"] < report["ece_raw"]
    assert 0 <= report["acc_at_80"] <= 1 and report["risk_coverage"]["coverage"][-1] == 1.0
    assert "val_ece" not in calib.summary() and "lab2_ece" in calib.summary()
    again = calibrate_entry(entry, keys.get)  # the fit reads raw/, never its own output
    assert again.temperature == calib.temperature


def test_calibrate_entry_needs_a_validation_submission(tmp_path: Path) -> None:
    write_raw(tmp_path, "test", ["a"], np.array([[1.0]]), ("basophil",))
    entry = EntryWriter(EntryFiles(tmp_path), "member", ("basophil",))
    with pytest.raises(FileNotFoundError, match="raw/val.csv is missing"):
        calibrate_entry(entry, lambda s: None)


def test_calibrate_entry_refuses_columns_in_another_order(tmp_path: Path) -> None:
    classes = ("basophil", "eosinophil")
    write_raw(tmp_path, "val", ["a", "b"], np.array([[0.9, 0.1], [0.2, 0.8]]), classes)
    entry = EntryWriter(EntryFiles(tmp_path), "member", classes[::-1])
    with pytest.raises(ValueError, match="raw/val.csv: columns basophil, eosinophil, not the"):
        calibrate_entry(entry, lambda s: AnswerKey({"a": "basophil", "b": "eosinophil"}, classes))
    assert not (tmp_path / "val.csv").exists()


def test_calibrate_command_brings_an_old_member_up_to_date(
    tmp_path: Path, make_tree, fake_member
) -> None:
    data = tmp_path / "cells"
    make_tree(data, {c: 6 for c in CLASSES[:4]})
    out = tmp_path / "out"
    folder = fake_member(out, "cells", "m-fast-s0", {"val": (data, None), "test": (data, None)},
                         0.6)  # fmt: skip
    before = read_submission(folder / "test.csv").probs
    assert calibrate.main(["--out", str(out)]) == 0
    meta = json.loads((folder / "meta.json").read_text())
    t = meta["calibration"]["temperature"]
    assert meta["calibration"]["fitted_on"] == "val" and t != pytest.approx(1.0)
    np.testing.assert_allclose(read_submission(raw_path(folder, "test")).probs, before)
    np.testing.assert_allclose(
        read_submission(folder / "test.csv").probs, apply_temperature(before, t), atol=1e-6
    )
    assert calibrate.main(["--out", str(out)]) == 0  # idempotent: raw/ stays the original
    np.testing.assert_allclose(read_submission(raw_path(folder, "test")).probs, before)
    assert json.loads((folder / "meta.json").read_text())["calibration"]["temperature"] == t
    assert calibrate.main(["--out", str(out), "--members", "nobody"]) == 2
