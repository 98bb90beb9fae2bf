"""Answer keys: labels from the dataset and its split file, never from a submission."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.data import Dataset, Record, load_dataset
from pipeline.errors import UserError
from pipeline.evaluation.scoring import AnswerKey
from pipeline.io import write_json
from pipeline.runs.layout import Layout


class FrozenKeyError(UserError, ValueError):
    """A zoo's frozen answer-key file that cannot be read."""


@dataclass
class AnswerKeys:
    """Answer keys of evaluation sets, loading each dataset once.

    ``frozen`` holds keys written down with a zoo (the reference zoo ships them, so that it is
    scored where its datasets are not): source ident -> its ``AnswerKey``."""

    frozen: dict[str, AnswerKey] = field(default_factory=dict)
    _datasets: dict[tuple[str, str], Dataset] = field(default_factory=dict)

    def key(self, source: dict) -> dict[str, str]:
        """id -> label for a set described as ``{"adapter", "root", "split"}`` (see meta.json);
        the images it lists as ``unreadable`` (no member could decode them) are left out."""
        unreadable = set(source.get("unreadable", ()))
        if (frozen := self.frozen.get(source_ident(source))) is not None:
            return {i: label for i, label in frozen.labels.items() if i not in unreadable}
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
        if (frozen := self.frozen.get(source_ident(source))) is not None:
            return frozen.vocabulary
        return self.dataset(source).classes

    def answers(self, source: dict) -> AnswerKey:
        """One set's answer key: what ``scoring.score`` takes."""
        return AnswerKey(self.key(source), self.vocabulary(source))

    def of_sets(self, sources: dict[str, dict]) -> Callable[[str], AnswerKey | None]:
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


def source_ident(source: dict) -> str:
    """The identity of a set's answer key: its adapter, root and split."""
    return json.dumps([source["adapter"], str(Path(source["root"])), source.get("split")])


def freeze(keys: AnswerKeys, sources: Iterable[dict], path: Path) -> None:
    """Write the answer keys of ``sources`` (every image, ``unreadable`` ones too) to ``path``,
    each set once."""
    frozen = {}
    for source in sources:
        plain = {k: source[k] for k in ("adapter", "root", "split") if k in source}
        ident = source_ident(plain)
        if ident not in frozen:
            frozen[ident] = {
                "source": plain,
                "vocabulary": list(keys.vocabulary(plain)),
                "labels": keys.key(plain),
            }
    write_json(path, {"format": 1, "sets": list(frozen.values())})


def keys_of_zoo(out: Path) -> AnswerKeys:
    """The answer keys a zoo is scored with: its frozen keys where it has them (``Layout.answers``),
    the datasets' own for every other set."""
    path = Layout(out).answers
    if not path.is_file():
        return AnswerKeys()
    try:
        sets = json.loads(path.read_text(encoding="utf-8"))["sets"]
        frozen = {
            source_ident(s["source"]): AnswerKey(dict(s["labels"]), tuple(s["vocabulary"]))
            for s in sets
        }
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise FrozenKeyError(f"{path}: not a readable answer-key file ({exc})") from exc
    return AnswerKeys(frozen)
