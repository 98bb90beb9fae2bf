"""The zoo's manifest (members and their states) and one lock per member.

Both rest on ``fcntl.flock``: the kernel drops a lock when its holder dies, ``kill -9``
included, so a crashed driver or worker never blocks the next run. On NFS, Linux maps flock onto
byte-range locks, so the locks also hold between the machines of a cluster sharing the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipeline.io import partial_files, read_json, write_json
from pipeline.runs.layout import Layout

STATES = ("pending", "running", "done", "failed")


def holder() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


@contextlib.contextmanager
def flocked(path: Path) -> Iterator[IO[str]]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield f
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class MemberBusy(RuntimeError):
    """Another live process trains this member."""


@dataclass
class MemberLock:
    """An exclusive, non-blocking lock on one member; the file names its holder."""

    path: Path
    _file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "an unknown process"
            f.close()
            raise MemberBusy(f"{self.path.stem} is being trained by {owner}") from None
        # a lock left by a killed holder still names it; the new holder overwrites the name
        f.seek(0)
        f.truncate()
        f.write(json.dumps(holder()))
        f.flush()
        self._file = f

    def is_held(self) -> bool:
        """Whether a live process holds the lock now (a probe: takes and drops it)."""
        try:
            self.acquire()
        except MemberBusy:
            return True
        self.release()
        return False

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> MemberLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class Manifest:
    """``OUT/zoo/manifest-<tag>.json``: every requested member with its state, host and pid.

    Drivers and workers on any machine update it in place, each change under a lock and
    written atomically, so concurrent runs never lose each other's entries.
    """

    path: Path

    @classmethod
    def of(cls, out: Path, tag: str) -> Manifest:
        return cls(Layout(out).manifest(tag))

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def read(self) -> dict[str, dict]:
        return read_json(self.path) if self.path.exists() else {}

    def update(self, member: str, state: str, **info: object) -> None:
        if state not in STATES:
            raise ValueError(f"manifest state must be one of {', '.join(STATES)}, not {state!r}")
        with flocked(self.lock_path):
            entries = self.read()
            entries[member] = {"state": state, **holder(), **info}
            write_json(self.path, entries)

    def record(self, states: dict[str, str]) -> None:
        """Set the state of many members at once (a driver, at its start)."""
        with flocked(self.lock_path):
            # every writer holds the lock, so a temporary file seen now is a killed writer's
            for tmp in partial_files(self.path.parent, self.path.name):
                tmp.unlink(missing_ok=True)
            entries = self.read()
            for member, state in states.items():
                entries[member] = {"state": state}
            write_json(self.path, entries)


def member_lock(out: Path, tag: str, member: str) -> MemberLock:
    return MemberLock(Layout(out).lock(tag, member))


def remove_partial_files(*folders: Path) -> list[Path]:
    """Delete the temporary files of atomic writes that a killed process left behind.

    Call it only while holding the member's lock: then nobody else can be writing there.
    """
    removed = [tmp for folder in folders for tmp in partial_files(folder)]
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed
