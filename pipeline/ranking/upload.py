"""Uploaded submissions: checked against an answer key, scored, and saved like any other entry.

Every problem is a ``ValueError`` whose message says what is wrong; the app only displays it.
A file that breaks the format or the answer key raises ``SubmissionError``; a name that cannot
be saved, ``BadName``.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.classes import ordered
from pipeline.evaluation.scoring import AnswerKey, missing_classes, score
from pipeline.names import BadName, is_zoo_name, plain_name, quote
from pipeline.ranking.limits import MAX_BYTES
from pipeline.runs.entry import EntryWriter
from pipeline.runs.metadata import UploadMeta
from pipeline.runs.submissions import Submission, SubmissionError, read_submission

NAME_MAX = 64
DESCRIPTION_MAX = 500
EXAMPLES = 3  # ids quoted in a mismatch message
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Upload:
    """A valid uploaded submission and its scores on the chosen set."""

    submission: Submission
    scores: dict


def check_upload(data: bytes, answers: AnswerKey, filename: str = "upload.csv") -> Upload:
    """Validate an uploaded CSV (size, format, a column for every class of the set's
    vocabulary, ids against its answer key) and score it."""
    if len(data) > MAX_BYTES:
        raise SubmissionError(
            f"{filename}: {len(data) / 2**20:.1f} MB, over the {MAX_BYTES // 2**20} MB limit"
        )
    key, vocabulary = answers.labels, answers.vocabulary
    sub = read_submission(io.BytesIO(data), filename, ids_expected=len(key))
    absent = missing_classes(sub.classes, vocabulary)
    if absent:  # its images would go unscored, and the rest score as if the set were easier
        raise SubmissionError(
            f"{filename}: no probability column for {', '.join(absent)}; a submission needs one "
            f"for every class of the set ({', '.join(ordered(vocabulary))}), extra classes "
            "allowed"
        )
    ids = set(sub.ids)
    missing, unknown = sorted(set(key) - ids), sorted(ids - set(key))
    problems = []
    if missing:
        problems.append(f"{_ids(len(missing))} missing, e.g. {_examples(missing)}")
    if unknown:
        problems.append(f"{_ids(len(unknown))} unknown, e.g. {_examples(unknown)}")
    if problems:
        raise SubmissionError(
            f"{filename}: {'; '.join(problems)} (the set has {_ids(len(key))}, each must be "
            "listed once)"
        )
    try:
        scores = score(sub.ids, sub.probs, sub.classes, answers, auc=False)
    except ValueError as exc:  # no class in common with the set
        raise SubmissionError(f"{filename}: {exc}") from exc
    return Upload(sub, scores)


def _ids(n: int) -> str:
    return f"{n} id" if n == 1 else f"{n} ids"


def _examples(ids: list[str]) -> str:
    return ", ".join(quote(i) for i in ids[:EXAMPLES])


def sanitise_name(name: str) -> str:
    """``name`` as a folder name: runs of characters outside ``[A-Za-z0-9._-]`` become ``-``,
    dots and dashes at either end go (no hidden folders, no ``..``), at most 64 characters.

    Names of the zoo's own members and ensembles are refused: an upload never shares a folder
    with them.
    """
    safe = _UNSAFE.sub("-", name).strip(".-")[:NAME_MAX].rstrip(".-")
    if not safe:
        raise BadName(
            f"{quote(name)} is not a usable name: use letters, digits, '.', '_' or '-' "
            f"(at most {NAME_MAX} characters)"
        )
    if is_zoo_name(safe):
        raise BadName(
            f"{quote(safe)} is a name of the zoo's (members end in -s<seed>, ensembles start "
            "with ens-): choose another name"
        )
    return plain_name(safe, "upload name")


def save_upload(
    out: Path,
    dataset: str,
    set_name: str,
    name: str,
    upload: Upload,
    source: dict,
    description: str = "",
) -> Path:
    """Write ``OUT/submissions/<dataset>/<name>/<set>.csv`` and its ``meta.json`` (kind
    ``upload``, ``source``: where the set's answer key comes from, the uploader's
    ``description``, at most 500 characters); return the folder.

    Never overwrites: an existing folder of that name is an error.
    """
    safe = sanitise_name(name)
    plain_name(set_name, "set")
    sub = upload.submission
    entry = EntryWriter.open(out, dataset, safe, UploadMeta.kind, sub.classes, new=True)
    order = np.argsort(sub.ids, kind="stable")  # the format wants rows sorted by id
    entry.predictions(set_name, [sub.ids[i] for i in order], sub.probs[order])
    meta = UploadMeta(
        name=safe,
        dataset=dataset,
        classes=tuple(sub.classes),
        sets={set_name: source},
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        description=" ".join(description.split())[:DESCRIPTION_MAX],
    )
    entry.finish(meta)
    return entry.files.folder.resolve()
