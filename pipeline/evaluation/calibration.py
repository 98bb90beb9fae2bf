"""Temperature scaling (Guo et al. 2017), calibration error, reliability and risk-coverage.

A submission folder keeps the uncalibrated probabilities in ``raw/<set>.csv`` and the calibrated
ones, what every consumer reads, in ``<set>.csv``. The temperature is fitted on ``val`` alone and
stored in the folder's ``meta.json`` (``calibration``). Temperature scaling works on log
probabilities: softmax(log p / T) equals softmax(z / T) for the logits z behind p, so members
and ensembles (whose outputs are probabilities, not logits) are calibrated the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from pipeline.evaluation.scoring import AnswerKey, aligned_labels
from pipeline.runs.entry import EntryWriter
from pipeline.runs.layout import RAW_FOLDER
from pipeline.runs.submissions import Submission, read_submission

FIT_SET = "val"
BINS = 15  # equal-width confidence bins, as in Guo et al.
COVERAGES = tuple(round(0.05 * i, 2) for i in range(1, 21))
LOG_FLOOR = math.log(1e-45)  # below float32's smallest subnormal: a probability rounded to 0
T_RANGE = (0.05, 20.0)


def _log(probs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(np.asarray(probs, dtype=np.float64)), LOG_FLOOR)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 softens, T < 1 sharpens; the argmax never changes."""
    probs = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0 or len(probs) == 0:
        return probs.copy()
    return _softmax(_log(probs) / temperature)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    if len(y) == 0:
        return math.nan
    return float(-_log(np.asarray(probs)[np.arange(len(y)), y]).mean())


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the NLL of ``probs`` on labels ``y`` (1 without labels)."""
    if len(y) == 0:
        return 1.0
    logp = _log(probs)
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        z = logp / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float((np.log(np.exp(z).sum(axis=1)) - z[rows, y]).mean())

    lo, hi = (math.log(t) for t in T_RANGE)
    result = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(math.exp(result.x))


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per equal-width confidence bin (lo, hi]: images, mean confidence and accuracy."""
    probs = np.asarray(probs)
    conf = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = probs.argmax(axis=1) == y if len(probs) else np.zeros(0, dtype=bool)
    index = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        out.append(
            {
                "lo": b / bins,
                "hi": (b + 1) / bins,
                "n": n,
                "confidence": float(conf[inside].mean()) if n else None,
                "accuracy": float(correct[inside].mean()) if n else None,
            }
        )
    return out


def ece(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the bins' |accuracy - confidence|, weighted by their size."""
    table = reliability(probs, y, bins)
    total = sum(b["n"] for b in table)
    if total == 0:
        return math.nan
    return float(
        sum(b["n"] * abs(b["accuracy"] - b["confidence"]) for b in table if b["n"]) / total
    )


def accepted(confidence: np.ndarray, coverage: float) -> np.ndarray:
    """A mask of the ``coverage`` share (rounded up) of most confident cells; ties go to the
    earlier cell, so exactly that many are kept."""
    n = len(confidence)
    keep = min(n, math.ceil(coverage * n - 1e-9))
    order = np.argsort(-np.asarray(confidence), kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:keep]] = True
    return mask


def risk_coverage(
    probs: np.ndarray, y: np.ndarray, coverages: tuple[float, ...] = COVERAGES
) -> dict:
    """Accuracy of the cells kept at each coverage (most confident first), and the area under
    the risk-coverage curve (AURC: mean error over every coverage k/n; lower is better)."""
    probs = np.asarray(probs)
    if len(y) == 0:
        return {"coverage": list(coverages), "accuracy": [None] * len(coverages), "aurc": None}
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    order = np.argsort(-conf, kind="stable")
    running = np.cumsum(correct[order]) / np.arange(1, len(y) + 1)
    acc = [float(correct[accepted(conf, c)].mean()) for c in coverages]
    return {"coverage": list(coverages), "accuracy": acc, "aurc": float((1 - running).mean())}


def accuracy_at(curve: dict, coverage: float) -> float | None:
    return dict(zip(curve["coverage"], curve["accuracy"], strict=True)).get(coverage)


def set_report(raw: np.ndarray, calibrated: np.ndarray, y: np.ndarray) -> dict:
    """ECE and NLL before and after, reliability tables and the calibrated risk-coverage curve
    of one evaluation set (probabilities over the classes scored, ``y`` their indices)."""
    curve = risk_coverage(calibrated, y)
    return {
        "n": int(len(y)),
        "ece_raw": ece(raw, y),
        "ece": ece(calibrated, y),
        "nll_raw": nll(raw, y),
        "nll": nll(calibrated, y),
        "acc_at_90": accuracy_at(curve, 0.9),
        "acc_at_80": accuracy_at(curve, 0.8),
        "aurc": curve["aurc"],
        "risk_coverage": curve,
        "reliability_raw": reliability(raw, y),
        "reliability": reliability(calibrated, y),
    }


@dataclass
class Calibration:
    """The fitted temperature of one submission folder and a report per scored set."""

    temperature: float
    n_fit: int
    sets: dict[str, dict]

    @property
    def meta(self) -> dict:
        """What ``meta.json`` stores under ``calibration``."""
        return {
            "method": "temperature",
            "temperature": round(self.temperature, 6),
            "fitted_on": FIT_SET,
            "n": self.n_fit,
            "uncalibrated": f"{RAW_FOLDER}/<set>.csv",
        }

    def summary(self) -> dict[str, float]:
        """The temperature and each held-out set's ECE before and after, for a results table."""
        out: dict[str, float] = {"temperature": round(self.temperature, 4)}
        for name, report in self.sets.items():
            if name == FIT_SET:
                continue
            out[f"{name}_ece_raw"] = report["ece_raw"]
            out[f"{name}_ece"] = report["ece"]
        return out

    def merge(self, metrics: dict[str, dict]) -> dict[str, dict]:
        """``metrics`` (set name -> scores) with each set's report under ``calibration``."""
        return {
            name: {**m, "calibration": self.sets[name]} if name in self.sets else m
            for name, m in metrics.items()
        }


def calibrate_outputs(
    ids: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    answers: AnswerKey,
    outputs: str,
) -> dict:
    """What ``meta.json`` stores under ``calibration`` for a temperature fitted on validation
    outputs ``probs`` that no submission holds (an adapted entry's), ``outputs`` saying which."""
    fit_probs, y = aligned_labels(ids, probs, classes, answers)[:2]
    return Calibration(fit_temperature(fit_probs, y), len(y), {}).meta | {"outputs": outputs}


# a set's answer key, or None where it has none
KeyOf = Callable[[str], AnswerKey | None]


def calibrate_entry(entry: EntryWriter, key_of: KeyOf) -> Calibration:
    """Fit the temperature on the entry's ``raw/val.csv`` and write every ``raw/<set>.csv``
    calibrated as its ``<set>.csv``; ``key_of(set)`` gives the set's answer key, or None."""
    raw = {name: read_submission(path) for name, path in entry.files.raw_files().items()}
    if FIT_SET not in raw:
        raise FileNotFoundError(f"{entry.files.raw(FIT_SET)} is missing: nothing to fit on")
    labelled = {}
    for name, sub in raw.items():
        if sub.classes != entry.classes:  # its calibrated file is written in the entry's order
            raise ValueError(
                f"{entry.files.raw(name)}: columns {', '.join(sub.classes)}, not the entry's "
                f"classes {', '.join(entry.classes)}"
            )
        known = key_of(name)
        if known is not None:
            labelled[name] = aligned_labels(sub.ids, sub.probs, sub.classes, known)
    if FIT_SET not in labelled:
        folder = entry.files.folder
        raise KeyError(f"{folder}: no answer key for {FIT_SET!r}, the set the fit needs")
    fit_probs, fit_y = labelled[FIT_SET][:2]
    temperature = fit_temperature(fit_probs, fit_y)
    reports = {}
    for name, sub in raw.items():
        entry.predictions(name, sub.ids, apply_temperature(sub.probs, temperature))
        if name in labelled:
            probs, y = labelled[name][:2]
            reports[name] = set_report(probs, apply_temperature(probs, temperature), y)
    return Calibration(temperature, len(fit_y), reports)


def compare(raw: Submission, calibrated: Submission, answers: AnswerKey) -> dict:
    """``set_report`` of two submissions of one set (uncalibrated, calibrated) on an answer key,
    over the classes the member and the set's vocabulary share."""
    if raw.ids != calibrated.ids or raw.classes != calibrated.classes:
        raise ValueError("the uncalibrated and calibrated submissions list other ids or classes")
    probs_raw, y = aligned_labels(raw.ids, raw.probs, raw.classes, answers)[:2]
    probs = aligned_labels(calibrated.ids, calibrated.probs, calibrated.classes, answers)[0]
    return set_report(probs_raw, probs, y)
