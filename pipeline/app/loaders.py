"""Cached loading: entries, score tables, answer keys and per-entry reports.

Every function here is cached by Streamlit for all sessions; ``version`` (``version_of``) is
part of a key only so that a changed submission file reloads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from pathlib import Path

import pandas as pd
import streamlit as st

from pipeline.data.cache import DEFAULT_CACHE_DIR
from pipeline.evaluation.calibration import compare
from pipeline.evaluation.scoring import AnswerKey, mistakes
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import Contender, find_entries
from pipeline.ranking.competition import datasets
from pipeline.ranking.disclosure import HIDDEN, Disclosure, disclosure
from pipeline.ranking.fingerprints import set_fingerprints
from pipeline.ranking.present import sample_submission, set_description
from pipeline.ranking.queries import eval_sets
from pipeline.ranking.reference import Reference
from pipeline.ranking.table import long_table, ranked_table
from pipeline.runs.layout import HISTORY_FILE, EntryFiles, Layout
from pipeline.runs.submissions import read_submission


@st.cache_resource(show_spinner="Unpacking the reference zoo…")
def reference_out(folder: str) -> str:
    """The reference zoo's ``--out`` folder, unpacked into the cache once per archive."""
    return str(Reference(Path(folder)).unpacked(DEFAULT_CACHE_DIR))


def disclosure_of(out: str) -> Disclosure:
    """``disclosure``, read again whenever a competition's settings or key change."""
    layout = Layout(Path(out))
    files = [
        layout.competition_settings,
        *(layout.competition_key(d) for d in datasets(layout.out)),
    ]
    stamps = [(str(p), p.stat().st_mtime_ns) for p in files if p.is_file()]
    return _disclosure(out, repr(stamps))


@st.cache_resource(show_spinner=False, max_entries=8)
def _disclosure(out: str, stamps: str) -> Disclosure:
    """``stamps`` is only part of the cache key."""
    return disclosure(Path(out))


def version_of(out: Path) -> str:
    """A digest of the size and mtime of every submission file: any change reloads the tables."""
    stamps = []
    for path in sorted((out / "submissions").glob("*/*/*")):
        if path.suffix in (".csv", ".json"):
            with contextlib.suppress(FileNotFoundError):  # removed while we looked
                stat = path.stat()
                stamps.append((str(path), stat.st_size, stat.st_mtime_ns))
    return hashlib.sha1(repr(stamps).encode()).hexdigest()


@st.cache_resource(show_spinner=False)
def shared_scorer(out: str, part: str | None = None) -> tuple[Scorer, threading.Lock]:
    """One scorer per out folder (and cross-lab ``part``) for all sessions: answer keys load
    once, scores persist on disk.

    Sessions run in threads; the lock keeps them from writing the score cache at the same time.
    """
    return Scorer.of_zoo(Path(out), part), threading.Lock()


# Every call of a cache_data function returns a fresh copy of its value. Copies of all entries
# (a thousand typed meta.json records) on every rerun pile up objects that the garbage collector
# must then walk, a full collection landing in some later interaction: reruns ask the small
# cached results below, which read ``load`` only when they are computed.


@st.cache_data(show_spinner=False, max_entries=4)
def load(out: str, version: str, part: str | None = None) -> tuple[list[Contender], pd.DataFrame]:
    """Entries and the long score table (``version`` is only part of the cache key), the
    cross-lab sets with versioned parts scored on ``part`` alone if given."""
    entries = find_entries(Path(out))
    scorer, lock = shared_scorer(out, part)
    with lock:
        return entries, long_table(entries, scorer)


@st.cache_data(show_spinner="Scoring submissions…", max_entries=4)
def score_table(out: str, version: str) -> pd.DataFrame:
    """The long score table without the entries (empty when there is no entry)."""
    return load(out, version)[1]


@st.cache_data(show_spinner=False, max_entries=16)
def board_table(
    out: str, version: str, dataset: str, test_set: str | None, part: str | None = None
) -> pd.DataFrame:
    return ranked_table(load(out, version, part)[1], dataset, test_set)


@st.cache_data(show_spinner=False, max_entries=256)
def find_entry(out: str, version: str, dataset: str, name: str) -> Contender:
    return next(e for e in load(out, version)[0] if e.dataset == dataset and e.name == name)


@st.cache_data(show_spinner=False, max_entries=16)
def dataset_sets(out: str, version: str, dataset: str) -> dict[str, dict]:
    """``eval_sets`` of the dataset's entries."""
    return eval_sets(load(out, version)[0], dataset)


@st.cache_data(show_spinner=False, max_entries=64)
def full_scores(out: str, version: str, dataset: str, name: str, set_name: str) -> dict:
    entry = find_entry(out, version, dataset, name)
    scorer, lock = shared_scorer(out)
    with lock:
        return scorer.full(entry, set_name)


@st.cache_data(show_spinner=False)
def answer_key(out: str, source_json: str) -> AnswerKey:
    """The set's answer key: its labels and its declared class vocabulary."""
    scorer, lock = shared_scorer(out)
    source = json.loads(source_json)
    with lock:
        return scorer.keys.answers(source)


@st.cache_data(show_spinner="Fingerprinting the set's images…", max_entries=64)
def set_images(out: str, source_json: str) -> frozenset[str] | None:
    """The pixel fingerprints of a set's images; None when they cannot all be read here."""
    try:
        key = answer_key(out, source_json).labels
    except (OSError, KeyError, ValueError):  # the answer key's data is not on this machine
        return None
    return set_fingerprints(Path(json.loads(source_json)["root"]), key)


@st.cache_data(show_spinner=False, max_entries=64)
def misclassified(
    out: str, version: str, dataset: str, name: str, set_name: str
) -> list[tuple[str, str, str, float]]:
    """(id, true class, predicted class, confidence) of every wrong prediction over the shared
    classes, the most confident first: those are the ones to look at."""
    entry = find_entry(out, version, dataset, name)
    answers = answer_key(out, json.dumps(entry.source(set_name), sort_keys=True))
    sub = read_submission(entry.files[set_name])
    wrong = mistakes(sub.ids, sub.probs, sub.classes, answers)
    wrong = sorted(wrong, key=lambda m: -m.confidence)
    return [(m.id, m.true, m.pred, m.confidence) for m in wrong]


def history(out: str, dataset: str, name: str) -> pd.DataFrame | None:
    """A member's training history (``training.member.MemberPaths``); None for ensembles."""
    path = Layout(Path(out)).member(dataset, name) / HISTORY_FILE
    return read_history(str(path), path.stat().st_mtime_ns) if path.is_file() else None


@st.cache_data(show_spinner=False, max_entries=64)
def read_history(path: str, mtime_ns: int) -> pd.DataFrame:
    """``mtime_ns`` is only part of the cache key: a member still training rewrites its history."""
    return pd.read_csv(path)


@st.cache_data(show_spinner=False, max_entries=16)
def set_descriptions(out: str, version: str, dataset: str, folders: bool = True) -> list[str]:
    """Each evaluation set of the dataset in words (sets without a readable answer key left
    out); without ``folders``, the data folders are not named."""
    lines = []
    for set_name, source in dataset_sets(out, version, dataset).items():
        try:
            key = answer_key(out, json.dumps(source, sort_keys=True)).labels
        except (OSError, KeyError, ValueError):
            continue
        shown = source if folders else {**source, "root": HIDDEN}
        lines.append(set_description(set_name, shown, len(key), len(set(key.values()))))
    return lines


@st.cache_data(show_spinner=False, max_entries=64)
def calibration_report(out: str, version: str, dataset: str, name: str, set_name: str) -> dict:
    """ECE, reliability and risk-coverage of a set's submission; the uncalibrated copy
    (``raw/<set>.csv``) is the "before" where there is one, else the submission itself."""
    entry = find_entry(out, version, dataset, name)
    answers = answer_key(out, json.dumps(entry.source(set_name), sort_keys=True))
    calibrated = read_submission(entry.files[set_name])
    raw_file = EntryFiles(entry.folder).raw(set_name)
    raw = read_submission(raw_file) if raw_file.is_file() else calibrated
    return {**compare(raw, calibrated, answers), "has_raw": raw_file.is_file()}


@st.cache_data(show_spinner=False, max_entries=16)
def sample_csv(out: str, source_json: str) -> bytes:
    """The set's sample submission, built once (thousands of rows)."""
    answers = answer_key(out, source_json)
    return sample_submission(list(answers.labels), answers.vocabulary)
