"""The reference zoo shipped with the repository: a trained zoo's submissions, histories, tables
and answer keys packed into one archive (no checkpoints), unpacked once into the cache wherever
the leaderboard shows it. Unpacked, it is an ordinary ``--out`` folder that scores without the
datasets it was trained on, since its answer keys travel with it (``Layout.answers``)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.evaluation.answers import AnswerKeys, freeze
from pipeline.evaluation.calibration import FIT_SET
from pipeline.ranking.competition import load_settings
from pipeline.resources import shipped
from pipeline.runs.layout import HISTORY_FILE, METRICS_FILE, Layout
from pipeline.runs.metadata import AdaptedMeta, EnsembleMeta, EntryMeta, MetaError, read_entry

ARCHIVE = "zoo.tar.xz"
DEFAULT = "default.txt"  # under reference_root(): the name of the zoo the board opens on
_DONE = ".unpacked"  # written last: a folder without it is a torn unpacking, redone
# what a member's and an ensemble's folders contribute: records, never weights
_RECORDS = (HISTORY_FILE, METRICS_FILE)


class ReferenceError(UserError, ValueError):
    """A reference zoo that cannot be packed or opened."""


@dataclass(frozen=True)
class Reference:
    """One reference zoo: ``zoo/reference/<name>/`` with its archive and README."""

    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def archive(self) -> Path:
        return self.folder / ARCHIVE

    @property
    def summary(self) -> str:
        """The first paragraph of its README, after the title: what the zoo is."""
        readme = self.folder / "README.md"
        text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
        first = next((b for b in text.split("\n\n") if b.strip() and not b.startswith("#")), "")
        return " ".join(first.split()) or f"{self.folder}: no README.md"

    def unpacked(self, cache_dir: Path) -> Path:
        """The zoo's ``--out`` folder, unpacked into ``cache_dir`` on first use (per archive
        content, so an updated archive is unpacked afresh)."""
        digest = hashlib.sha256(self.archive.read_bytes()).hexdigest()[:12]
        target = cache_dir / "reference" / f"{self.name}-{digest}"
        if (target / _DONE).is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=target.parent))
        try:
            with tarfile.open(self.archive, "r:xz") as tar:
                tar.extractall(staging, filter="data")  # no path may leave the folder
            (staging / _DONE).touch()
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
        except (OSError, tarfile.TarError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if (target / _DONE).is_file():  # another process unpacked it meanwhile
                return target
            what = f"{self.archive}: cannot unpack the reference zoo ({exc})"
            raise ReferenceError(what) from exc
        return target


def reference_root() -> Path:
    """Where the shipped reference zoos are (``zoo/reference/``)."""
    return shipped("zoo", "reference")


def references(root: Path | None = None) -> list[Reference]:
    """The reference zoos under ``root``: the one ``root/default.txt`` names first (the board
    opens on it), then by name; by default the shipped ones (``reference_root``)."""
    root = root or reference_root()
    found = [Reference(p.parent) for p in sorted(root.glob(f"*/{ARCHIVE}"))]
    default = root / DEFAULT
    first = default.read_text(encoding="utf-8").strip() if default.is_file() else ""
    return sorted(found, key=lambda r: r.name != first)


def read_entries(out: Path, tag: str) -> dict[Path, EntryMeta]:
    """Every entry's ``meta.json`` and what it says; a damaged one is an error, not a gap."""
    entries = {}
    for meta_file in Layout(out).meta_files(tag):
        try:
            entries[meta_file] = read_entry(meta_file)
        except MetaError as exc:
            raise ReferenceError(f"{exc}: mend or remove the entry before packing") from exc
    return entries


def zoo_files(out: Path, tag: str, entries: dict[Path, EntryMeta]) -> Iterator[Path]:
    """The files of a zoo that a reference keeps: every entry's ranked submissions and
    ``meta.json``, members' and ensembles' histories and metrics, and the zoo's tables.

    Left out, to keep the repository small: weights, the uncalibrated ``raw/`` copies, and
    adapted entries' validation files (adaptation is for other labs' sets; nothing is chosen on
    an adapted entry's validation score)."""
    layout = Layout(out)
    for meta_file, meta in entries.items():
        adapted = isinstance(meta, AdaptedMeta) or (
            isinstance(meta, EnsembleMeta) and bool(meta.adapted_from)
        )
        yield meta_file
        for csv in sorted(meta_file.parent.glob("*.csv")):
            if not (adapted and csv.stem == FIT_SET):
                yield csv
    for kind in ("members", "ensembles"):
        for name in _RECORDS:
            yield from sorted((layout.zoo / kind / tag).glob(f"*/{name}"))
    tables = (layout.results(tag), layout.results(tag, seeds=True), layout.ensembles_table(tag))
    for table in tables:
        if table.is_file():
            yield table


def check_no_running_competition(out: Path) -> None:
    """Refuse a zoo that holds a competition not yet revealed (or whose settings cannot say):
    its frozen answer keys would carry the test labels, and its entries' pages every test
    mistake."""
    folder = Layout(out).competition
    if not folder.exists():
        return
    try:
        settings = load_settings(out)
    except (OSError, ValueError):  # damaged: it cannot say the competition is over
        settings = None
    if settings is None or not settings.revealed:
        raise ReferenceError(
            f"{folder}: this zoo holds a competition that is not revealed, and a reference zoo "
            "would carry its test labels: pack it after `python -m pipeline.leaderboard --out "
            f"{out} --reveal` (nothing written)"
        )


def pack(out: Path, tag: str, dest: Path, keys: AnswerKeys | None = None) -> tuple[Path, int]:
    """Pack the zoo under ``out`` (dataset ``tag``) into ``dest/zoo.tar.xz`` with its answer keys
    frozen from the datasets; return the archive and how many files it holds. A competition in
    ``out`` must be revealed first (``check_no_running_competition``); its files are never
    packed."""
    check_no_running_competition(out)
    entries = read_entries(out, tag)
    if not entries:
        raise ReferenceError(f"{Layout(out).submissions(tag)}: no entries to pack (--out, --tag)")
    files = list(zoo_files(out, tag, entries))
    sources = [s for meta in entries.values() for s in meta.sets.values() if s]
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / ARCHIVE
    with tempfile.TemporaryDirectory() as tmp:
        answers = Path(tmp) / "answers.json"
        freeze(keys or AnswerKeys(), sources, answers)
        members = [(p, p.relative_to(out)) for p in files]
        members.append((answers, Layout(Path(".")).answers))
        staging = archive.with_name(f".{ARCHIVE}.partial")
        with tarfile.open(staging, "w:xz", preset=9) as tar:
            for path, name in sorted(members, key=lambda m: str(m[1])):
                data = path.read_bytes()
                tar.addfile(_plain_info(str(name), len(data)), io.BytesIO(data))
        os.replace(staging, archive)  # the old archive stays whole until the new one is
    return archive, len(members)


def _plain_info(name: str, size: int) -> tarfile.TarInfo:
    """A file's header without owner or time: the archive depends on the content alone."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info
