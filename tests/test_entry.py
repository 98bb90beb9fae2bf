"""The one entry writer: where it may write, what it refuses, and meta.json last."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.names import BadName
from pipeline.runs.entry import EntryRefused, EntryWriter, KindClash, check_kind
from pipeline.runs.metadata import EnsembleMeta, MemberMeta, read_entry
from pipeline.runs.submissions import read_submission

CLASSES = ("lymphocyte", "neutrophil")
PROBS = np.array([[0.8, 0.2], [0.3, 0.7]])


def test_an_entry_is_written_predictions_first_and_meta_json_last(tmp_path: Path) -> None:
    entry = EntryWriter.open(tmp_path, "cells", "m-fast-s0", "member", CLASSES)
    folder = tmp_path / "submissions" / "cells" / "m-fast-s0"
    assert entry.files.folder == folder
    entry.raw("val", ["a", "b"], PROBS)
    entry.predictions("val", ["a", "b"], PROBS[:, ::-1])
    assert not entry.files.meta.exists()  # not an entry yet: readers skip the folder
    assert entry.files.raw_files() == {"val": folder / "raw" / "val.csv"}
    assert entry.files.prediction_files() == {"val": folder / "val.csv"}
    np.testing.assert_allclose(read_submission(folder / "raw" / "val.csv").probs, PROBS)
    scores = tmp_path / "zoo" / "metrics.json"
    entry.finish(MemberMeta(name="m-fast-s0", dataset="cells", classes=CLASSES), scores, {"a": 1})
    assert json.loads(scores.read_text()) == {"a": 1}
    assert read_entry(entry.files.meta).classes == CLASSES


def test_meta_json_must_describe_the_entry_it_finishes(tmp_path: Path) -> None:
    entry = EntryWriter.open(tmp_path, "cells", "m-fast-s0", "member", CLASSES)
    for meta in (EnsembleMeta(name="m-fast-s0"), MemberMeta(name="other-s0")):
        with pytest.raises(ValueError, match="does not describe this member entry"):
            entry.finish(meta)
    assert not entry.files.meta.exists()


def test_a_new_entry_never_replaces_one_and_never_leaves_out(tmp_path: Path) -> None:
    EntryWriter.open(tmp_path, "cells", "x", "upload", CLASSES, new=True)
    with pytest.raises(EntryRefused, match="cells/x already exists: choose another name"):
        EntryWriter.open(tmp_path, "cells", "x", "upload", CLASSES, new=True)
    for dataset, name in (("..", "y"), ("cells", "../y"), ("cells/sub", "y")):
        with pytest.raises(BadName, match="is not a plain name"):
            EntryWriter.open(tmp_path, dataset, name, "upload", CLASSES, new=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "submissions" / "linked").symlink_to(elsewhere)
    with pytest.raises(EntryRefused, match="lies outside"):
        EntryWriter.open(tmp_path, "linked", "y", "upload", CLASSES, new=True)
    assert not any(elsewhere.iterdir())


def test_an_entry_is_never_written_over_one_of_another_kind(tmp_path: Path) -> None:
    folder = tmp_path / "resnet18-fast-s0"
    check_kind(folder, "member")  # nothing there yet
    folder.mkdir()
    (folder / "meta.json").write_text('{"member": "resnet18-fast-s0"}')  # old members: no kind
    check_kind(folder, "member")
    unreadable = "an unreadable meta.json"
    for meta, held in (
        ('{"kind": "upload"}', "an entry of kind 'upload'"),
        ("{broken", unreadable),
        ("[1]", unreadable),
    ):
        (folder / "meta.json").write_text(meta)
        with pytest.raises(KindClash, match=f"{folder} holds {held}: refusing to write member"):
            check_kind(folder, "member")
