"""Atomic file writes: a crash mid-write never leaves a half-written result behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pipeline.errors import UserError

SHARED = 0o644  # results are meant to be read by others
PRIVATE = 0o600  # secrets and what only the owner may read (a competition's files)


def atomic_write(
    path: Path, write: Callable[[IO[Any]], None], binary: bool = False, mode: int = SHARED
) -> None:
    """Write through a temporary file in the same folder, then rename over ``path`` (its
    permissions: ``mode``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(out: Path, *subfolders: str, option: str = "--out") -> None:
    """Fail before any work unless ``out`` and its ``subfolders`` are, or can be made, folders
    this process may write in; nothing is created."""
    for folder in [Path(out)] + [Path(out) / s for s in subfolders]:
        probe = folder.absolute()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise UserError(f"{option} {out}: {probe} is a file, not a folder")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise UserError(f"{option} {out}: {probe} is not writable; choose another {option}")


def partial_files(folder: Path, name: str = "*") -> list[Path]:
    """Temporary files that ``atomic_write`` of ``name`` in ``folder`` left behind when its
    process was killed mid-write."""
    return sorted(folder.glob(f".{name}.*.tmp")) if folder.is_dir() else []


def write_json(path: Path, data: Any, mode: int = SHARED) -> None:
    atomic_write(
        path, lambda f: json.dump(data, f, indent=2, sort_keys=False, default=str), mode=mode
    )


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
