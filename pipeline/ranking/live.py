"""Members still training: their state in the zoo's manifest and progress from ``history.csv``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pandas as pd

from pipeline.runs.layout import HISTORY_FILE, Layout

UNFINISHED = ("running", "pending", "failed")
COLUMNS = ["member", "state", "epoch", "val_acc", "train_loss", "updated"]


def manifests(out: Path) -> dict[str, Path]:
    """Dataset tag -> its ``zoo/manifest-<tag>.json``."""
    found = sorted((out / "zoo").glob("manifest-*.json"))
    return {p.stem.removeprefix("manifest-"): p for p in found}


def live_runs(out: Path, tag: str) -> pd.DataFrame:
    """Members of ``tag`` the manifest lists as running, pending or failed, with their last
    epoch, validation accuracy and training loss (blank before the first epoch ends)."""
    path = out / "zoo" / f"manifest-{tag}.json"
    try:
        states = json.loads(path.read_text())
    except (OSError, ValueError):  # no zoo run yet, or a manifest being replaced
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for member, info in sorted(states.items()) if isinstance(states, dict) else ():
        state = info.get("state") if isinstance(info, dict) else None
        if state not in UNFINISHED:
            continue
        row = {"member": member, "state": state, "epoch": pd.NA, "val_acc": None}
        row |= {"train_loss": None, "updated": ""}
        history = Layout(out).member(tag, member) / HISTORY_FILE
        with contextlib.suppress(OSError, ValueError, IndexError, KeyError):
            last = pd.read_csv(history).iloc[-1]
            row["epoch"] = int(last["epoch"])
            row["val_acc"] = float(last.get("val_acc", float("nan")))
            row["train_loss"] = float(last.get("train_loss", float("nan")))
            row["updated"] = pd.Timestamp(history.stat().st_mtime, unit="s").strftime(
                "%H:%M:%S UTC"
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
