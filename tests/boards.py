"""A fabricated zoo for the leaderboard's tests (app, browser, competition, queries, reference):
members, an ensemble and their submission files on tiny folder datasets, and helpers that
make submissions and read the app's table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from pipeline.data import load_dataset
from pipeline.runs.submissions import to_frame, write_submission

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "leaderboard" / "app.py")  # what `streamlit run` runs in a checkout
PAGES = ROOT / "pipeline" / "app" / "scripts"  # one script per page: page_<url path>.py
CLASSES = ("eosinophil", "lymphocyte", "neutrophil")
ZOO_COMMAND = "python -m pipeline.zoo --models alpha,beta --seeds 0,1 --out OUT"
ENSEMBLE_COMMAND = "python -m pipeline.ensemble --method soft --top 2"
# entry -> fraction right on test (6 images; also val) and on bccd (12 images): the ensemble
# leads in-domain, beta across labs
QUALITY = {
    "alpha-fast-s0": {"test": 4 / 6, "bccd": 3 / 12},
    "alpha-fast-s1": {"test": 3 / 6, "bccd": 6 / 12},
    "beta-fast-s0": {"test": 2 / 6, "bccd": 12 / 12},
    "ens-soft-top2": {"test": 6 / 6, "bccd": 6 / 12},
}


def predictions(labels: list[str], quality: float) -> list[str]:
    """The first ``quality`` of the images right, the rest one class off."""
    right = round(quality * len(labels))
    return [
        label if i < right else CLASSES[(CLASSES.index(label) + 1) % len(CLASSES)]
        for i, label in enumerate(labels)
    ]


def onehot(preds: list[str]) -> np.ndarray:
    probs = np.full((len(preds), len(CLASSES)), 0.15)
    probs[np.arange(len(preds)), [CLASSES.index(p) for p in preds]] = 0.7
    return probs


def fabricate_out(root: Path, make_tree) -> Path:
    """An out folder: 2 seeds of alpha, 1 of beta, 1 ensemble; val, test and a cross-domain set
    ``bccd`` on tiny folder datasets, and a training history for alpha-fast-s0."""
    cells, bccd = root / "cells", root / "bccd"
    make_tree(cells, {c: 10 for c in CLASSES})
    make_tree(bccd, {c: 4 for c in CLASSES}, seed=100)
    dataset = load_dataset("folder", cells)
    sets = {
        "val": ({"adapter": "folder", "root": str(cells), "split": "val"}, dataset.splits["val"]),
        "test": (
            {"adapter": "folder", "root": str(cells), "split": "test"},
            dataset.splits["test"],
        ),
        "bccd": (
            {"adapter": "folder", "root": str(bccd), "split": None},
            load_dataset("folder", bccd).records(),
        ),
    }
    out = root / "out"
    for entry, quality in QUALITY.items():
        folder = out / "submissions" / "cells" / entry
        for set_name, (_, records) in sets.items():
            records = sorted(records, key=lambda r: r.id)
            preds = predictions([r.label for r in records], quality.get(set_name, quality["test"]))
            write_submission(folder / f"{set_name}.csv", [r.id for r in records], onehot(preds),
                             CLASSES)  # fmt: skip
        alpha = entry.startswith("alpha")
        meta = {
            "member": entry,
            "kind": "member",
            "family": "alpha" if alpha else "beta",
            "norm": "bn" if alpha else "gn",
            "weights": "imagenet" if alpha else "none",
            "params": 5e6 if alpha else 20e6,
            "gmacs": 0.5 if alpha else 2.0,
            "seed": int(entry[-1]),
            "command": ZOO_COMMAND,
        }
        if entry.startswith("ens"):
            meta = {"member": entry, "kind": "ensemble", "method": "soft", "family": "ensemble",
                    "members": ["alpha-fast-s0", "beta-fast-s0"], "norm": ["bn", "gn"],
                    "weights_init": ["imagenet", "none"], "params": 25e6, "gmacs": 2.5,
                    "command": ENSEMBLE_COMMAND}  # fmt: skip
        meta["sets"] = {s: source for s, (source, _) in sets.items()}
        (folder / "meta.json").write_text(json.dumps(meta))
    history = out / "zoo" / "members" / "cells" / "alpha-fast-s0" / "history.csv"
    history.parent.mkdir(parents=True)
    history.write_text("epoch,train_loss,train_acc,val_acc\n1,1.1,0.4,0.3\n2,0.7,0.7,0.6\n")
    return out


def answer_key(out: Path, set_name: str = "test") -> dict[str, str]:
    source = json.loads((out / "submissions/cells/alpha-fast-s0/meta.json").read_text())["sets"]
    dataset = load_dataset("folder", source[set_name]["root"])
    split = source[set_name]["split"]
    records = dataset.splits[split] if split else dataset.records()
    return {r.id: r.label for r in sorted(records, key=lambda r: r.id)}


def csv_bytes(ids: list[str], probs: np.ndarray) -> bytes:
    return to_frame(ids, probs, CLASSES).to_csv(index=False).encode()


def perfect(key: dict[str, str]) -> bytes:
    return csv_bytes(list(key), onehot(list(key.values())))


def open_page(at: AppTest, page: str) -> AppTest:
    """Run the app's page ``page`` (its URL path: leaderboard, details, competition)."""
    return at.switch_page(os.path.relpath(PAGES / f"page_{page}.py", ROOT / "leaderboard")).run()


def table(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value  # the leaderboard is the first dataframe drawn
