"""The one writer of an entry's files, for members, ensembles, adapted entries and uploads.

Every entry is written in one order: its predictions (uncalibrated ones under ``raw/``,
calibrated ones beside them), then its scores, then ``meta.json``. Readers take a folder for an
entry only once ``meta.json`` is there, so a run that stops halfway never leaves half an entry
on the board, and one of another kind is never written over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.io import read_json, write_json
from pipeline.names import plain_name
from pipeline.runs.layout import EntryFiles, Layout
from pipeline.runs.metadata import EntryMeta, write_entry
from pipeline.runs.submissions import write_submission


class EntryRefused(UserError, ValueError):
    """An entry that may not be written where it was asked to be."""


class KindClash(EntryRefused):
    """A folder that holds an entry of another kind than the one about to be written there."""


def check_kind(folder: Path, kind: str) -> None:
    """Refuse to write a ``kind`` entry into ``folder`` when its ``meta.json`` names another
    kind, or cannot be read: no entry replaces another's files."""
    meta = EntryFiles(folder).meta
    if not meta.exists():
        return
    try:
        found = read_json(meta)
    except (OSError, ValueError):
        found = None
    found = found.get("kind", "member") if isinstance(found, dict) else None
    if found != kind:
        held = f"an entry of kind {found!r}" if found else "an unreadable meta.json"
        raise KindClash(
            f"{folder} holds {held}: refusing to write {kind} files there (nothing was "
            "overwritten); move it away, or write to another --out"
        )


@dataclass(frozen=True)
class EntryWriter:
    """Writes the files of one entry of ``kind`` (``meta.json``'s ``kind``) with ``classes``
    as its probability columns."""

    files: EntryFiles
    kind: str
    classes: tuple[str, ...]

    @classmethod
    def open(
        cls,
        out: Path,
        dataset: str,
        name: str,
        kind: str,
        classes: Sequence[str],
        new: bool = False,
    ) -> EntryWriter:
        """The writer of entry ``name`` of ``dataset`` under ``out``, once its folder is known
        to be safe to write: inside ``OUT/submissions`` (symbolic links followed), holding no
        entry of another kind, and with ``new`` not there at all."""
        layout = Layout(out)
        files = layout.entry(plain_name(dataset, "dataset"), plain_name(name, "entry name"))
        root, folder = layout.submissions_root.resolve(), files.folder.resolve()
        if not folder.is_relative_to(root):  # e.g. a dataset folder linked elsewhere
            raise EntryRefused(f"{folder} lies outside {root}: refusing to write there")
        check_kind(files.folder, kind)
        if new:
            try:
                files.folder.mkdir(parents=True)
            except FileExistsError:
                raise EntryRefused(
                    f"{dataset}/{name} already exists: choose another name (nothing was "
                    "overwritten)"
                ) from None
        return cls(files, kind, tuple(classes))

    def raw(self, set_name: str, ids: Sequence[str], probs: np.ndarray) -> None:
        """One set's uncalibrated probabilities."""
        write_submission(self.files.raw(set_name), ids, probs, self.classes)

    def predictions(self, set_name: str, ids: Sequence[str], probs: np.ndarray) -> None:
        """One set's submission: what every reader of the entry takes as its predictions."""
        write_submission(self.files.predictions(set_name), ids, probs, self.classes)

    def finish(
        self, meta: EntryMeta, metrics_file: Path | None = None, metrics: dict | None = None
    ) -> None:
        """Its scores (``metrics`` into ``metrics_file``, where it keeps any), then
        ``meta.json``: from here on the folder is a complete entry."""
        if meta.kind != self.kind or meta.name != self.files.name:
            raise ValueError(
                f"{self.files.folder}: meta.json of {meta.kind} {meta.name!r} does not describe "
                f"this {self.kind} entry"
            )
        if metrics_file is not None:
            write_json(metrics_file, metrics)
        write_entry(self.files.meta, meta)
