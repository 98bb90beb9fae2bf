"""Submission files: the contract between the zoo, the ensembler and the leaderboard.

One CSV per member and evaluation set: ``id``, one probability column per class (canonical
order), ``pred``. No labels: answer keys come from the dataset and its split file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from pipeline.classes import CLASSES
from pipeline.errors import UserError
from pipeline.io import atomic_write

PROB_TOLERANCE = 1e-4


class SubmissionError(UserError, ValueError):
    """A submission file that breaks the format."""


@dataclass
class Submission:
    ids: list[str]
    classes: tuple[str, ...]
    probs: np.ndarray


def to_frame(ids: Sequence[str], probs: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(np.asarray(probs, dtype=np.float64), columns=list(classes))
    frame.insert(0, "id", list(ids))
    frame["pred"] = [classes[i] for i in np.asarray(probs).argmax(axis=1)]
    return frame


def write_submission(
    path: Path, ids: Sequence[str], probs: np.ndarray, classes: Sequence[str]
) -> None:
    frame = to_frame(ids, probs, classes)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.7g", lineterminator="\n")
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def read_submission(source: Path | IO[bytes], name: str | None = None) -> Submission:
    """Read and validate a submission (a path, or bytes named ``name``); every problem names
    the file and what is wrong."""
    path = name or str(source)
    try:
        frame = pd.read_csv(source, dtype={"id": str})
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SubmissionError(f"{path}: not a readable CSV ({exc})") from exc
    columns = list(frame.columns)
    if not columns or columns[0] != "id":
        raise SubmissionError(f"{path}: the first column must be 'id', found {columns[:1]}")
    classes = tuple(c for c in columns[1:] if c != "pred")
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise SubmissionError(
            f"{path}: unknown class column(s) {unknown}; allowed: {', '.join(CLASSES)}"
        )
    if not classes:
        raise SubmissionError(f"{path}: no probability columns")
    duplicated = frame["id"][frame["id"].duplicated()].tolist()
    if duplicated:
        raise SubmissionError(f"{path}: id(s) listed more than once, e.g. {duplicated[0]}")
    try:
        probs = frame[list(classes)].to_numpy(dtype=np.float64)
    except ValueError as exc:
        raise SubmissionError(f"{path}: probabilities must be numbers ({exc})") from exc
    if not np.isfinite(probs).all():
        raise SubmissionError(f"{path}: probabilities must be finite numbers")
    if (probs < 0).any():
        raise SubmissionError(f"{path}: probabilities must not be negative")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > PROB_TOLERANCE)
    if len(bad):
        row = int(bad[0])
        raise SubmissionError(
            f"{path}: probabilities of {frame['id'][row]} sum to {sums[row]:.6f}, not 1 "
            f"(tolerance {PROB_TOLERANCE})"
        )
    return Submission(frame["id"].tolist(), classes, probs)
