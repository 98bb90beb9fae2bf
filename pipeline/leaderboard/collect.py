"""Finding submissions: every ``submissions/<dataset>/<name>/`` folder with a ``meta.json``."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

_SEED = re.compile(r"-s\d+(?=(\+[A-Za-z0-9]+)*$)")  # before an adaptation's suffix, if any


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
        """The name without its seed: seeds of one configuration share a leaderboard row
        (``resnet18-fast-s0+adabn`` pools as ``resnet18-fast+adabn``)."""
        return _SEED.sub("", self.name) if self.kind in ("member", "adapted") else self.name

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
            meta = json.loads(meta_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            warnings.warn(f"{meta_file}: unreadable ({exc}), skipped", stacklevel=2)
            continue
        folder = meta_file.parent
        entries.append(Entry(folder.parent.name, folder.name, folder, meta))
    return entries
