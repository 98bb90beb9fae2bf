"""Scores of submission files against answer keys, remembered on disk by file stamp."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.answers import AnswerKeys
from pipeline.io import write_json
from pipeline.leaderboard.collect import Entry
from pipeline.scoring import score
from pipeline.submissions import read_submission

SUMMARY = ("accuracy", "balanced_accuracy", "macro_f1", "n", "unscored")


@dataclass
class Scorer:
    """Scores entries; summaries are cached in ``cache_file`` keyed by path, size and mtime."""

    cache_file: Path | None = None
    keys: AnswerKeys = field(default_factory=AnswerKeys)
    _cache: dict[str, dict] = field(default_factory=dict)
    _dirty: bool = False

    def __post_init__(self) -> None:
        if self.cache_file is not None and self.cache_file.exists():
            try:
                self._cache = json.loads(self.cache_file.read_text())
            except (OSError, json.JSONDecodeError):
                self._cache = {}  # a damaged cache is only a slower start

    def full(self, entry: Entry, set_name: str) -> dict:
        """All metrics of one submission file (confusion matrix, per class, AUC)."""
        return self._score(entry, set_name, auc=True)

    def summary(self, entry: Entry, set_name: str) -> dict | None:
        """Accuracy, balanced accuracy, macro-F1 and counts; None without an answer key."""
        path = entry.files[set_name]
        stat = path.stat()
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        cached = self._cache.get(str(path))
        if cached is not None and cached["stamp"] == stamp:
            return cached["scores"]
        if entry.source(set_name) is None:
            return None
        full = self._score(entry, set_name, auc=False)
        scores = {k: full[k] for k in SUMMARY}
        self._cache[str(path)] = {"stamp": stamp, "scores": scores}
        self._dirty = True
        return scores

    def save(self) -> None:
        if self.cache_file is not None and self._dirty:
            write_json(self.cache_file, self._cache)
            self._dirty = False

    def _score(self, entry: Entry, set_name: str, auc: bool) -> dict:
        source = entry.source(set_name)
        if source is None:
            raise KeyError(f"{entry.folder / 'meta.json'} gives no answer key for {set_name!r}")
        sub = read_submission(entry.files[set_name])
        return score(sub.ids, sub.probs, sub.classes, self.keys.key(source), auc=auc)
