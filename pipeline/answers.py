"""Answer keys: labels from the dataset and its split file, never from a submission."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.data import Dataset, load_dataset


@dataclass
class AnswerKeys:
    """Answer keys of evaluation sets, loading each dataset once."""

    _datasets: dict[tuple[str, str], Dataset] = field(default_factory=dict)

    def key(self, source: dict) -> dict[str, str]:
        """id -> label for a set described as ``{"adapter", "root", "split"}`` (see meta.json);
        the images it lists as ``unreadable`` (no member could decode them) are left out."""
        ident = (source["adapter"], str(Path(source["root"])))
        if ident not in self._datasets:
            self._datasets[ident] = load_dataset(*ident)
        dataset = self._datasets[ident]
        split = source.get("split")
        if split is not None and split not in dataset.splits:
            raise KeyError(f"{dataset.root} has no split {split!r}: {', '.join(dataset.splits)}")
        records = dataset.splits[split] if split is not None else dataset.records()
        unreadable = set(source.get("unreadable", ()))
        return {r.id: r.label for r in records if r.id not in unreadable}
