"""Answer keys: labels from the dataset and its split file, never from a submission."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.data import Dataset, Record, load_dataset


@dataclass
class AnswerKeys:
    """Answer keys of evaluation sets, loading each dataset once."""

    _datasets: dict[tuple[str, str], Dataset] = field(default_factory=dict)

    def key(self, source: dict) -> dict[str, str]:
        """id -> label for a set described as ``{"adapter", "root", "split"}`` (see meta.json);
        the images it lists as ``unreadable`` (no member could decode them) are left out."""
        unreadable = set(source.get("unreadable", ()))
        return {r.id: r.label for r in self.records(source) if r.id not in unreadable}

    def records(self, source: dict) -> list[Record]:
        """Every image of the set: its dataset ``split``, or the whole dataset without one."""
        dataset = self.dataset(source)
        split = source.get("split")
        if split is not None and split not in dataset.splits:
            raise KeyError(f"{dataset.root} has no split {split!r}: {', '.join(dataset.splits)}")
        return dataset.splits[split] if split is not None else dataset.records()

    def vocabulary(self, source: dict) -> tuple[str, ...]:
        """The classes the set is scored over: its adapter's declared vocabulary, which may hold
        classes no image of the set has (Raabin's TestB: five classes, two present)."""
        return self.dataset(source).classes

    def answers(self, source: dict) -> tuple[dict[str, str], tuple[str, ...]]:
        """The key and vocabulary of one set: what ``scoring.score`` takes."""
        return self.key(source), self.vocabulary(source)

    def of_sets(
        self, sources: dict[str, dict]
    ) -> Callable[[str], tuple[dict[str, str], tuple[str, ...]] | None]:
        """Set name -> its answers (None for a set without a source), for calibration."""
        return lambda name: self.answers(sources[name]) if sources.get(name) else None

    def dataset(self, source: dict) -> Dataset:
        ident = (source["adapter"], str(Path(source["root"])))
        if ident not in self._datasets:
            self._datasets[ident] = load_dataset(*ident)
        return self._datasets[ident]


def ids_fingerprint(ids: Iterable[str]) -> str:
    """The identity of a set of images: 12 hex digits of the SHA-256 of its sorted ids, one a
    line. Scores are comparable only between submissions for sets of one fingerprint."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:12]
