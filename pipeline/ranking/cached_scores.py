"""Scores of submission files against answer keys, remembered on disk by what they depend on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from pipeline import classes
from pipeline.data.parts import in_part, part_ids
from pipeline.evaluation import metrics, scoring
from pipeline.evaluation.answers import AnswerKeys, ids_fingerprint, keys_of_zoo
from pipeline.evaluation.scoring import AnswerKey, score
from pipeline.io import write_json
from pipeline.ranking.collect import Contender
from pipeline.runs.layout import Layout
from pipeline.runs.submissions import read_submission

SUMMARY = ("accuracy", "balanced_accuracy", "macro_f1", "n", "unscored")


@dataclass
class Scorer:
    """Scores entries; summaries are cached in ``cache_file`` by path, and used only while the
    file's content, the answer key (ids, labels, vocabulary) and the scoring code are all the
    ones they were computed from.

    With ``part`` (``choose`` or ``report``), the cross-lab sets that have versioned parts
    (``zoo/splits``) are scored on that part's images only; every other set is whole."""

    cache_file: Path | None = None
    keys: AnswerKeys = field(default_factory=AnswerKeys)
    part: str | None = None
    _cache: dict[str, dict] = field(default_factory=dict)
    _dirty: bool = False
    _key_digests: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cache_file is not None and self.cache_file.exists():
            try:
                self._cache = json.loads(self.cache_file.read_text())
            except (OSError, json.JSONDecodeError):
                self._cache = {}  # a damaged cache is only a slower start

    @classmethod
    def of_zoo(cls, out: Path, part: str | None = None) -> Scorer:
        """The scorer of the zoo under ``out``: its score cache and its answer keys."""
        return cls(Layout(out).scores_cache(part), keys_of_zoo(out), part)

    def key(self, source: dict) -> dict[str, str]:
        """The set's answer key, restricted to ``part`` where the set has versioned parts."""
        key = self.keys.key(source)
        return key if self.part is None else in_part(key, source["root"], self.part)

    def full(self, entry: Contender, set_name: str) -> dict:
        """All metrics of one submission file (confusion matrix, per class, AUC)."""
        return self._score(entry, set_name, auc=True)

    def summary(self, entry: Contender, set_name: str) -> dict | None:
        """Accuracy, balanced accuracy, macro-F1 and counts; None without an answer key."""
        source = entry.source(set_name)
        if source is None:
            return None
        path = entry.files[set_name]
        stamp = ":".join((file_digest(path), self.key_digest(source), code_version()))
        cached = self._cache.get(str(path))
        if isinstance(cached, dict) and cached.get("stamp") == stamp:
            return cached["scores"]
        full = self._score(entry, set_name, auc=False)
        scores = {k: full[k] for k in SUMMARY}
        self._cache[str(path)] = {"stamp": stamp, "scores": scores}
        self._dirty = True
        return scores

    def key_digest(self, source: dict) -> str:
        """A digest of a set's answer key: its ids, labels and vocabulary."""
        ident = json.dumps(source, sort_keys=True)
        if ident not in self._key_digests:
            key = self.key(source)
            text = json.dumps([sorted(key.items()), self.keys.vocabulary(source)])
            self._key_digests[ident] = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self._key_digests[ident]

    def test_set(self, source: dict) -> str:
        """The identity of a set: a fingerprint of its ids (12 hex digits). Entries ranked
        together must share the fingerprint of their test set."""
        return ids_fingerprint(self.keys.key(source))

    def save(self) -> None:
        if self.cache_file is not None and self._dirty:
            write_json(self.cache_file, self._cache)
            self._dirty = False

    def _score(self, entry: Contender, set_name: str, auc: bool) -> dict:
        source = entry.source(set_name)
        if source is None:
            raise KeyError(f"{entry.folder / 'meta.json'} gives no answer key for {set_name!r}")
        sub = read_submission(entry.files[set_name])
        answers = AnswerKey(self.key(source), self.keys.vocabulary(source))
        ids, probs = sub.ids, sub.probs
        if self.part and part_ids(source["root"], self.part) is not None:  # a whole-set file
            kept = np.array([i in answers.labels for i in ids], dtype=bool)
            ids, probs = [i for i in ids if i in answers.labels], probs[kept]
        return score(ids, probs, sub.classes, answers, auc=auc)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@cache
def code_version() -> str:
    """A digest of the scoring code and the summary's metric list: changing either rescores."""
    sources = [Path(m.__file__).read_bytes() for m in (scoring, metrics, classes)]
    return hashlib.sha256(b"\0".join([*sources, repr(SUMMARY).encode()])).hexdigest()[:16]
