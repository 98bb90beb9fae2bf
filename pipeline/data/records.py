"""Records (image id, label) and the folder scanning shared by the adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.classes import canonical_class, ordered
from pipeline.errors import UserError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})


class DatasetLayoutError(UserError, ValueError):
    """The folder does not have the layout the adapter expects."""


@dataclass(frozen=True)
class Record:
    """One image: its id is the POSIX path relative to the dataset root; ``mask``, when the
    dataset ships one, the path of its expert segmentation mask (it places cell-centred crops)."""

    id: str
    label: str
    mask: str | None = None


@dataclass
class Dataset:
    """A dataset as the zoo sees it: named record lists over one canonical class list.

    ``classes`` is the vocabulary the adapter declares (PBC: its split file's classes; Raabin:
    its Train folders; a folder tree: its class folders): every split is scored over all of
    them, whether or not the split holds images of each (Raabin's TestB has two of five).

    ``splits`` holds ``train``/``val``/``test`` for training sets; every other entry (and every
    split of an evaluation-only set) is an extra evaluation set.
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    splits: dict[str, list[Record]]
    skipped: list[str] = field(default_factory=list)
    adapter: str = ""  # the registry name it was loaded with

    @property
    def trainable(self) -> bool:
        return all(s in self.splits for s in ("train", "val", "test"))

    def records(self) -> list[Record]:
        """All records of all splits, each once, in a stable order."""
        seen: dict[str, Record] = {}
        for name in sorted(self.splits):
            for r in self.splits[name]:
                seen.setdefault(r.id, r)
        return [seen[k] for k in sorted(seen)]


def scan_class_folders(
    root: Path, folder: Path, allow_empty: bool = False
) -> tuple[list[Record], list[str]]:
    """Records of a ``<class>/<image>`` tree under ``folder``; ids are relative to ``root``.

    Returns the records and the files skipped as non-images (hidden files, other suffixes).
    An empty class folder is an error unless ``allow_empty``.
    """
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder} is not a folder")
    entries = sorted(folder.iterdir())
    class_dirs = [p for p in entries if p.is_dir() and not _hidden(p.name)]
    skipped = [p.relative_to(root).as_posix() for p in entries if p.is_file()]
    if not class_dirs:
        raise DatasetLayoutError(
            f"{folder} has no class folders; expected {folder}/<class>/<image files>"
        )
    labels = {d: canonical_class(d.name) for d in class_dirs}
    for label in set(labels.values()):
        same = [d.name for d, lab in labels.items() if lab == label]
        if len(same) > 1:
            raise DatasetLayoutError(f"{folder}: folders {same} all map to class {label!r}")
    records: list[Record] = []
    for class_dir, label in labels.items():
        images = []
        for path in sorted(class_dir.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            inner = path.relative_to(class_dir).parts
            if any(_hidden(part) for part in inner) or path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(rel)
            else:
                images.append(Record(rel, label))
        if not images and not allow_empty:
            raise DatasetLayoutError(
                f"class folder {class_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        records.extend(images)
    return records, skipped


def list_images(paths: list[Path]) -> list[Path]:
    """Image files named directly or found (recursively) in named folders, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return found


def _hidden(name: str) -> bool:
    """Hidden files and folders, and macOS archive debris (``__MACOSX``)."""
    return name.startswith(".") or name == "__MACOSX"


def classes_of(records: list[Record]) -> tuple[str, ...]:
    return ordered([r.label for r in records])
