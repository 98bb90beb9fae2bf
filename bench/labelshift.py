"""Benchmark: EM and BBSE label-shift correction of existing submissions, against none.

Output-only: no weights, no images. Each submission folder's calibrated ``<set>.csv`` (PBC
``test``, ``bccd``, ``tecom``) is corrected with the training lab's priors and confusion from
its ``val.csv`` (BBSE needs that file; EM needs only the validation labels' priors, so adapted
entries without ``val.csv`` get EM alone), over the classes each set holds, exactly as
``pipeline.adapted.compose`` does for an adapted entry. Each set is adapted as a whole (no
labels), and BCCD and Tecom are scored on their ``report`` parts (``zoo/splits``).

    python -m bench.labelshift /tmp/ref/submissions/pbc/resnet18-fast-s0 ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.adapted.compose import SourceFit, label_shift, labelled, set_columns, widened
from pipeline.adapted.labelshift import normalise
from pipeline.data.parts import COLUMN, splits_folder
from pipeline.data.splits import read_split_file
from pipeline.evaluation.scoring import AnswerKey, score
from pipeline.runs.metadata import read_meta
from pipeline.runs.submissions import read_submission

PART_FILES = {"bccd": "bccd.csv", "tecom": "zheng2018_tecom.csv"}
METHODS = ("none", "em", "bbse")


def answers(set_name: str) -> AnswerKey:
    """The scored ids' labels (PBC test, or the report part of BCCD or Tecom) and vocabulary."""
    if set_name in PART_FILES:
        rows = read_split_file(splits_folder() / PART_FILES[set_name], COLUMN)
        key = {i: label for i, (label, part) in rows.items() if part == "report"}
    else:
        rows = read_split_file(splits_folder() / "pbc.csv")
        key = {i: label for i, (label, split) in rows.items() if split == set_name}
    return AnswerKey(key, tuple(sorted({label for label, _ in rows.values()})))


def corrected(probs: np.ndarray, columns: list[int], method: str, source: SourceFit):
    """``probs`` over ``columns`` after ``method`` (none, em, bbse), back over all classes."""
    p = normalise(probs[:, columns])
    if method != "none":
        p = label_shift(p, columns, (method,), source)
    return widened(p, columns, probs.shape[1])


def evaluate(folder: Path) -> list[dict]:
    val_key = answers("val").labels
    val_path = folder / "val.csv"
    member = read_meta(folder / "meta.json").get("adapted_from") or folder.name
    val = read_submission(val_path if val_path.is_file() else folder.parent / member / "val.csv")
    known, y = labelled([val_key.get(i, "") for i in val.ids], val.classes)
    source = SourceFit(1.0, val.probs[known], y)  # the submissions are calibrated already
    rows = []
    for set_name in ("test", "bccd", "tecom"):
        sub = read_submission(folder / f"{set_name}.csv")
        truth = answers(set_name)
        columns = set_columns(sub.classes, truth.vocabulary)
        scored = np.array([i in truth.labels for i in sub.ids])
        ids = [i for i in sub.ids if i in truth.labels]
        for method in METHODS if val_path.is_file() else ("none", "em"):
            probs = corrected(sub.probs, columns, method, source)
            s = score(ids, probs[scored], sub.classes, truth, auc=False)
            rows.append({"entry": folder.name, "method": method, "set": set_name, "n": s["n"],
                         "acc": s["accuracy"], "bacc": s["balanced_accuracy"]})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="submission folders (meta.json, *.csv)")
    args = p.parse_args(argv)
    table = pd.DataFrame([r for f in args.folders for r in evaluate(f)])
    wide = table.pivot_table(index=["entry", "method"], columns="set", values=["acc", "bacc"],
                             sort=False)  # fmt: skip
    wide.columns = [f"{s}_{m}" for m, s in wide.columns]
    order = ["test_acc", "bccd_acc", "bccd_bacc", "tecom_acc", "tecom_bacc"]
    print(wide[order].to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
