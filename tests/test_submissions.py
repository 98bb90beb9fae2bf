"""The submission format: what the zoo writes reads back; malformed files say what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.submissions import (
    KindClash,
    SubmissionError,
    check_kind,
    read_submission,
    write_submission,
)

CLASSES = ("lymphocyte", "neutrophil", "platelet")


def test_round_trip(tmp_path: Path) -> None:
    probs = np.array([[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]])
    path = tmp_path / "test.csv"
    write_submission(path, ["a/x.jpg", "b/y.jpg"], probs, CLASSES)
    assert path.read_text().splitlines()[0] == "id,lymphocyte,neutrophil,platelet,pred"
    assert path.read_text().splitlines()[1].endswith(",neutrophil")
    sub = read_submission(path)
    assert sub.ids == ["a/x.jpg", "b/y.jpg"] and sub.classes == CLASSES
    np.testing.assert_allclose(sub.probs, probs, atol=1e-7)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write leaves no temporary behind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,lymphocyte\na,1\n", "first column must be 'id'"),
        ("id,lymphocyte,blast\na,0.5,0.5\n", "unknown class column"),
        ("id,lymphocyte,neutrophil\na,0.5,0.5\na,0.5,0.5\n", "more than once"),
        ("id,lymphocyte,neutrophil\na,0.5,nan\n", "finite"),
        ("id,lymphocyte,neutrophil\na,1.5,-0.5\n", "negative"),
        ("id,lymphocyte,neutrophil\na,0.5,0.4\n", "sum to 0.900000"),
        ("id,pred\na,lymphocyte\n", "no probability columns"),
        ("", "not a readable CSV"),
        ("id,lymphocyte,neutrophil\na,high,0.5\n", "must be numbers"),
    ],
)
def test_malformed_submission_names_file_and_problem(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SubmissionError, match=message) as err:
        read_submission(path)
    assert str(path) in str(err.value)


def test_bytes_are_read_under_their_display_name() -> None:
    import io

    with pytest.raises(SubmissionError, match="^mine.csv: not UTF-8 text"):
        read_submission(io.BytesIO(b"id,lymphocyte\n\xff\xfe,1\n"), name="mine.csv")
    sub = read_submission(io.BytesIO(b"id,lymphocyte\nx,1\n"), name="mine.csv")
    assert sub.ids == ["x"] and sub.classes == ("lymphocyte",)


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
