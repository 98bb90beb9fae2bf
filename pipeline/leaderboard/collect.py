"""Finding submissions: every ``submissions/<dataset>/<name>/`` folder with a ``meta.json``."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from pipeline.metadata import MetaError, read_meta


@dataclass(frozen=True)
class Entry:
    """One member or ensemble of one training dataset, with its submission files."""

    dataset: str
    name: str
    folder: Path
    meta: dict

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "member")

    @property
    def config(self) -> str:
        """The name without its seed: seeds of one configuration share a leaderboard row."""
        return re.sub(r"-s\d+$", "", self.name) if self.kind == "member" else self.name

    @property
    def files(self) -> dict[str, Path]:
        return {p.stem: p for p in sorted(self.folder.glob("*.csv"))}

    def source(self, set_name: str) -> dict | None:
        return self.meta.get("sets", {}).get(set_name)


def find_entries(out: Path) -> list[Entry]:
    """All entries under ``OUT/submissions``, sorted by dataset and name."""
    root = out / "submissions"
    entries = []
    for meta_file in sorted(root.glob("*/*/meta.json")):
        try:
            meta = read_meta(meta_file)
        except MetaError as exc:  # one damaged entry spoils no table
            warnings.warn(f"{exc}; skipped", stacklevel=2)
            continue
        folder = meta_file.parent
        entries.append(Entry(folder.parent.name, folder.name, folder, meta))
    return entries
