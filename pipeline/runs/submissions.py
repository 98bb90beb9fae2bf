"""Submission files: the contract between the zoo, the ensembler and the leaderboard.

One CSV per member and evaluation set: ``id``, one probability column per class (canonical
order), ``pred``. No labels: answer keys come from the dataset and its split file.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from pipeline.classes import CLASSES
from pipeline.errors import UserError
from pipeline.io import SHARED, atomic_write
from pipeline.names import quote

PROB_TOLERANCE = 1e-4
# characters; the longest valid header (id, every class, pred) has about 100
HEADER_MAX = 1024
EXTRA_ROWS = 1000  # lines read beyond the expected ids, to name surplus ids in the message


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
    path: Path, ids: Sequence[str], probs: np.ndarray, classes: Sequence[str], mode: int = SHARED
) -> None:
    frame = to_frame(ids, probs, classes)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.7g", lineterminator="\n")
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode=mode)


def read_submission(
    source: Path | IO[bytes], name: str | None = None, ids_expected: int | None = None
) -> Submission:
    """Read and validate a submission (a path, or bytes named ``name``); every problem names
    the file and what is wrong.

    The header is checked before the body is parsed, and ids are read as text: an id is never
    taken for a missing value, and an empty one is an error. With ``ids_expected`` (the size of
    the set), reading stops ``EXTRA_ROWS`` lines beyond it: the work is bounded by the set, not
    by the file.
    """
    path = name or str(source)
    lines = io.StringIO(_text(source, path), newline="")
    columns = _header(lines, path)
    classes = tuple(c for c in columns[1:] if c != "pred")
    rows = _rows(lines, len(columns), path, ids_expected)
    ids = [row[0] for row in rows]
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise SubmissionError(f"{path}: id(s) listed more than once, e.g. {quote(i)}")
        seen.add(i)
    probs = _probabilities(rows, [columns.index(c) for c in classes], columns, path)
    if (probs < 0).any():
        raise SubmissionError(f"{path}: probabilities must not be negative")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > PROB_TOLERANCE)
    if len(bad):
        row = int(bad[0])
        raise SubmissionError(
            f"{path}: probabilities of {quote(ids[row])} sum to {sums[row]:.6f}, not 1 "
            f"(tolerance {PROB_TOLERANCE})"
        )
    return Submission(ids, classes, probs)


def _text(source: Path | IO[bytes], path: str) -> str:
    try:
        data = Path(source).read_bytes() if isinstance(source, str | Path) else source.read()
    except OSError as exc:
        raise SubmissionError(f"{path}: not a readable CSV ({exc})") from exc
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as spreadsheets write, is allowed
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def _header(lines: io.StringIO, path: str) -> list[str]:
    """The header's columns, checked against the vocabulary before any row is read: at most
    ``HEADER_MAX`` characters, ``id`` first, known classes and ``pred``, each once."""
    line = lines.readline(HEADER_MAX + 1)
    if not line.strip():
        raise SubmissionError(f"{path}: not a readable CSV (no header line)")
    if len(line) > HEADER_MAX:
        raise SubmissionError(
            f"{path}: the header line is over {HEADER_MAX} characters; it holds 'id', class "
            f"columns and 'pred', each once"
        )
    try:
        columns = next(csv.reader([line]))
    except csv.Error as exc:
        raise SubmissionError(f"{path}: not a readable CSV (header: {exc})") from exc
    if columns[0] != "id":
        raise SubmissionError(f"{path}: the first column must be 'id', found [{quote(columns[0])}]")
    counts = Counter(columns)
    twice = [c for c, n in counts.items() if n > 1]
    if twice:
        raise SubmissionError(f"{path}: column(s) listed more than once: {_some(twice)}")
    unknown = [c for c in columns[1:] if c not in CLASSES and c != "pred"]
    if unknown:
        raise SubmissionError(
            f"{path}: unknown class column(s) {_some(unknown)}; allowed: {', '.join(CLASSES)}"
        )
    if len(columns) == 1 + ("pred" in counts):
        raise SubmissionError(f"{path}: no probability columns")
    return columns


def _rows(lines: io.StringIO, width: int, path: str, ids_expected: int | None) -> list[list[str]]:
    """Every non-blank row after the header, each with exactly ``width`` fields and an id."""
    reader = csv.reader(lines)
    limit = None if ids_expected is None else ids_expected + EXTRA_ROWS
    rows = []
    try:
        for n, row in enumerate(reader):
            if n == limit:  # blank lines count: they cost time too
                raise SubmissionError(
                    f"{path}: more than {limit} lines for a set of {ids_expected} ids (each must "
                    "be listed once)"
                )
            if not row:
                continue
            if len(row) != width or not row[0].strip():
                line = reader.line_num + 1
                problem = "an empty id" if len(row) == width else f"{len(row)} fields, not {width}"
                raise SubmissionError(f"{path}: line {line} has {problem}")
            rows.append(row)
    except csv.Error as exc:
        raise SubmissionError(
            f"{path}: not a readable CSV (line {reader.line_num + 1}: {exc})"
        ) from exc
    return rows


def _probabilities(
    rows: list[list[str]], columns_at: list[int], columns: list[str], path: str
) -> np.ndarray:
    """The probability cells as an ``(N, C)`` array; the first cell that is not a finite
    number is named by its column and id."""
    probs = np.empty((len(rows), len(columns_at)))
    for j, at in enumerate(columns_at):
        cells = [row[at] for row in rows]
        try:
            probs[:, j] = np.array(cells, dtype=np.float64)
        except ValueError:  # Python's float() decides, and names the cell
            for i, cell in enumerate(cells):
                try:
                    probs[i, j] = float(cell)
                except ValueError:
                    raise SubmissionError(
                        _cell(path, "numbers", columns[at], rows[i], at)
                    ) from None
    bad = np.argwhere(~np.isfinite(probs))
    if len(bad):
        i, j = bad[0]
        at = columns_at[j]
        raise SubmissionError(_cell(path, "finite numbers", columns[at], rows[i], at))
    return probs


def _cell(path: str, what: str, column: str, row: list[str], at: int) -> str:
    return f"{path}: probabilities must be {what}: {column} of {quote(row[0])} is {quote(row[at])}"


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(quote(n) for n in names[:shown]) + more
