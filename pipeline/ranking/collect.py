"""Finding submissions: every ``submissions/<dataset>/<name>/`` folder with a ``meta.json``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.names import without_seed
from pipeline.runs.layout import EntryFiles, Layout
from pipeline.runs.metadata import EntryMeta, MetaError, read_entry
from pipeline.runs.recipe import settings_fingerprint

SEEDED = ("member", "adapted")  # kinds whose seeds pool into one row


@dataclass(frozen=True)
class Contender:
    """One contender on the leaderboard (member, ensemble, adapted member or upload) of one
    training dataset, with its submission files."""

    dataset: str
    name: str
    folder: Path
    meta: EntryMeta
    variant: str = ""  # set when seeds of one name were trained otherwise: their fingerprint

    @property
    def kind(self) -> str:
        return self.meta.kind

    @property
    def config(self) -> str:
        """The name without its seed: seeds of one configuration share a leaderboard row
        (``resnet18-fast-s0+adabn`` pools as ``resnet18-fast+adabn``).

        Names carry the fingerprint of their recipe's overrides; seeds of one name trained
        otherwise all the same (other weights, a named recipe since changed) get ``~<settings
        fingerprint>`` each, so no row averages unlike runs."""
        if self.kind not in SEEDED:
            return self.name
        return without_seed(self.name) + self.variant

    @property
    def files(self) -> dict[str, Path]:
        return EntryFiles(self.folder).prediction_files()

    def source(self, set_name: str) -> dict | None:
        return self.meta.source(set_name)


def find_entries(out: Path) -> list[Contender]:
    """All entries under ``OUT/submissions``, sorted by dataset and name."""
    entries = []
    for meta_file in Layout(out).meta_files():
        try:
            meta = read_entry(meta_file)
        except MetaError as exc:  # one damaged entry spoils no table
            warnings.warn(f"{exc}; skipped", stacklevel=2)
            continue
        folder = meta_file.parent
        entries.append(Contender(folder.parent.name, folder.name, folder, meta))
    return split_unlike_seeds(entries)


def split_unlike_seeds(entries: list[Contender]) -> list[Contender]:
    """Members of one configuration whose ``meta.json`` settings differ, told apart (with a
    warning) by their settings fingerprint."""
    settings: dict[tuple[str, str], set[str]] = {}
    for e in entries:
        if e.kind in SEEDED:
            settings.setdefault((e.dataset, e.config), set()).add(settings_fingerprint(e.meta))
    unlike = {key for key, prints in settings.items() if len(prints) > 1}
    for dataset, config in sorted(unlike):
        warnings.warn(
            f"{dataset}/{config}: its seeds were trained with different settings (recipe, "
            "weights or image size); shown as one row per setting, never averaged",
            stacklevel=3,
        )
    return [
        replace(e, variant=f"~{settings_fingerprint(e.meta)}")
        if e.kind in SEEDED and (e.dataset, e.config) in unlike
        else e
        for e in entries
    ]


def in_domain_test_source(entries: list[Contender], dataset: str) -> dict | None:
    """Where the test answers of a training dataset come from, per its entries' ``meta.json``."""
    return next((s for e in entries if e.dataset == dataset and (s := e.source("test"))), None)
