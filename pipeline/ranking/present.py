"""How the leaderboard shows its tables: column presets, percentages, intervals and plain words.

Pure functions of the tables ``pipeline.ranking.table`` makes; the app only draws them.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from pipeline.runs.submissions import to_frame

MIN_SEEDS_FOR_CI = 3  # with 2 seeds the Student t half-width is wider than the scale
PRESETS = ("overview", "in-domain", "across labs", "cost", "all")
FRACTIONS = ("test_acc", "test_acc_ci95", "test_macro_f1", "val_acc", "val_acc_oof", "cross_acc",
             "cross_bacc")  # fmt: skip
GLOSSARY = {
    "balanced accuracy": "the mean of the per-class recalls: every class counts the same, so "
    "answering the commonest class everywhere scores chance (1/K for K classes), not its share",
    "rank shift": "in-domain rank − cross-lab rank (by balanced accuracy), over rows scored on "
    "every set; positive: the row climbs when the lab changes. Rows at chance across labs get "
    "none",
    "at chance": "no better than guessing: in-domain accuracy ≤ 1/K, or cross-lab balanced "
    "accuracy ≤ the mean of 1/K over the sets",
    "± (interval)": "half-width of the Student t 95% interval over seeds, shown from "
    f"{MIN_SEEDS_FOR_CI} seeds (n: seeds pooled in the row)",
    "val_acc_oof": "an ensemble fitted on validation (stacking, weighted, greedy) scored on "
    "validation out of fold: each image predicted by the method fitted on the other folds "
    "(5 stratified folds, fewer for a class with fewer images). Its plain validation accuracy "
    "is in-sample, so fitted ensembles are compared and chosen by this one",
    "GMACs": "billions of multiply-accumulate operations to classify one image",
    "params (M)": "trainable parameters, millions; an ensemble counts only members it weighs",
    "bn+none": "an ensemble's normalisations joined: members with batch norm (bn) and without "
    "(none); gn is group norm",
    "Pareto front": "rows no other shown row beats on both cost and accuracy",
    "adapted, transductive": "an entry adapted at test time; transductive ones look at the whole "
    "test set (without labels) before answering",
}


def percent(value: float) -> str:
    return "" if pd.isna(value) else f"{100 * value:.1f}"


def with_interval(mean: float, half: float, n: int) -> str:
    """``97.3 ± 0.4`` from ``MIN_SEEDS_FOR_CI`` seeds on, the bare mean below; percentages."""
    if pd.isna(mean):
        return ""
    if n < MIN_SEEDS_FOR_CI or pd.isna(half):
        return percent(mean)
    return f"{percent(mean)} ± {percent(half)}"


def chance_notes(table: pd.DataFrame) -> pd.Series:
    """``chance: test``, ``chance: labs`` or both for rows no better than guessing there."""
    notes = pd.Series("", index=table.index)
    for column, text in (("at_chance", "test"), ("cross_at_chance", "labs")):
        if column in table:
            hit = table[column].fillna(False).astype(bool)
            notes[hit] = np.where(notes[hit] == "", f"chance: {text}", notes[hit] + f" + {text}")
    return notes


def cross_sets(table: pd.DataFrame) -> list[str]:
    return [
        c.removesuffix("_bacc") for c in table.columns if c.endswith("_bacc") and c != "cross_bacc"
    ]


def preset_columns(table: pd.DataFrame, preset: str) -> list[str]:
    """The columns a preset shows, in order; ``all`` shows every one."""
    sets = cross_sets(table)
    bacc = [f"{s}_bacc" for s in sets]
    acc = [f"{s}_acc" for s in sets]
    head = ["rank", "name", "note"]
    cost = ["params_m", "gmacs"]
    columns = {
        "overview": [*head, "test", "cross_bacc", *bacc, "rank_shift", *cost],
        "in-domain": [*head, "test", "n", "test_macro_f1", "val_acc", "val_acc_oof", "kind"],
        "across labs": [*head, "test", "cross_bacc", *bacc, "cross_acc", *acc, "rank_shift"],
        "cost": [*head, "test", *cost, "members_used", "kind", "family", "norm", "weights"],
    }
    if preset == "all":
        hidden = {"test_chance", "cross_chance", "at_chance", "cross_at_chance", "created"}
        hidden |= {c for c in table.columns if c.endswith("_images")}  # in the headers
        return [*head, "test"] + [c for c in table.columns if c not in {*head, "test", *hidden}]
    return [c for c in columns[preset] if c in table.columns or c in ("note", "test")]


FEW_IMAGES = 50  # below this, a set's score is marked: one image moves it by 2 points or more


def set_header(label: str, metric: str, images: float) -> tuple[str, str]:
    """A cross-lab column's header and tooltip, naming the set's image count; a set of fewer
    than ``FEW_IMAGES`` is marked, its tooltip giving the 95% interval of a score of 50%."""
    if pd.isna(images):
        return f"{label} {metric} %", f"{metric} on {label}"
    n = int(images)
    header = f"{label} {metric} % ({n}{' ⚠' if n < FEW_IMAGES else ''})"
    tooltip = f"{metric} on {label}, {n} images"
    if n < FEW_IMAGES:
        half = 100 * 1.96 * (0.25 / n) ** 0.5
        tooltip += (
            f": few images, one of them moves the score by {100 / n:.0f} points, and a score of "
            f"50% has a 95% interval of ±{half:.0f} points; not a result on its own"
        )
    return header, tooltip


def set_images(table: pd.DataFrame) -> dict[str, float]:
    """Images scored per cross-lab set (the most any row scored)."""
    return {c.removesuffix("_images"): table[c].max() for c in table if c.endswith("_images")}


def display_table(table: pd.DataFrame, preset: str) -> pd.DataFrame:
    """The rows as shown: scores in percent with one decimal, the test accuracy and its interval
    in one cell, a note on rows at chance."""
    shown = table.copy()
    shown["test"] = [
        with_interval(m, h, n)
        for m, h, n in zip(shown["test_acc"], shown["test_acc_ci95"], shown["n"], strict=True)
    ]
    shown["note"] = chance_notes(shown)
    scores = [c for c in shown.columns if c in FRACTIONS or c.endswith(("_acc", "_bacc"))]
    shown[scores] = shown[scores] * 100
    return shown[preset_columns(table, preset)]


def set_description(name: str, source: dict, images: int, classes: int) -> str:
    """A set in words: where its answer key comes from and how many images and classes."""
    where = source.get("root", "?")
    part = f"the {source['split']} split of" if source.get("split") else "all images of"
    small = " (a small set: read its scores with care)" if images < 100 else ""
    return (
        f"**{name}**: {images} images, {classes} classes (chance {100 / max(classes, 1):.1f}%), "
        f"{part} `{where}` ({source.get('adapter', '?')} layout){small}"
    )


def sample_submission(ids: list[str], vocabulary: tuple[str, ...]) -> bytes:
    """A valid submission of uniform probabilities for every id: the format by example."""
    probs = np.full((len(ids), len(vocabulary)), 1 / max(len(vocabulary), 1))
    frame = to_frame(sorted(ids), probs, vocabulary)
    return frame.to_csv(index=False, float_format="%.4g", lineterminator="\n").encode()


def head_lines(data: bytes, lines: int = 4) -> str:
    return "\n".join(io.StringIO(data.decode()).read().splitlines()[:lines])
