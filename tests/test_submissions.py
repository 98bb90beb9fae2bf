"""The submission format: what the zoo writes reads back; malformed files say what is wrong."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.runs.submissions import SubmissionError, read_submission, write_submission

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
    with pytest.raises(SubmissionError, match="^mine.csv: not UTF-8 text"):
        read_submission(io.BytesIO(b"id,lymphocyte\n\xff\xfe,1\n"), name="mine.csv")
    sub = read_submission(io.BytesIO(b"id,lymphocyte\nx,1\n"), name="mine.csv")
    assert sub.ids == ["x"] and sub.classes == ("lymphocyte",)


def read_bytes(data: bytes, ids_expected: int | None = None):
    return read_submission(io.BytesIO(data), "up.csv", ids_expected)


@pytest.mark.parametrize("columns", [30_000, 1_000_000])
def test_a_huge_header_is_refused_before_the_body_is_parsed(columns: int) -> None:
    """30,000 duplicate columns (0.26 MB) took 22 s in pandas, a million over two minutes."""
    data = b"id," + b",".join([b"lymphocyte"] * columns) + b"\na.jpg," + b"0," * 3 + b"1\n"
    started = time.perf_counter()
    with pytest.raises(SubmissionError, match=r"^up.csv: the header line is over 1024 char"):
        read_bytes(data)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("row", [b"%d,1\n", b"1,1\n", b"\n"])
def test_reading_stops_a_little_beyond_the_expected_ids(row: bytes) -> None:
    """20 MB of rows for a set of 2 ids took 7 to 10 s; reading now stops after 1002 lines."""
    body = b"".join(row.replace(b"%d", b"%d" % i) for i in range(20 * 2**20 // (len(row) + 3)))
    started = time.perf_counter()
    with pytest.raises(SubmissionError, match=r"^up.csv: more than 1002 lines for a set of 2 ids"):
        read_bytes(b"id,lymphocyte\n" + body, ids_expected=2)
    assert time.perf_counter() - started < 1.0
    assert len(read_bytes(b"id,lymphocyte\n" + b"".join(b"%d,1\n" % i for i in range(1002)), 2)
               .ids) == 1002  # fmt: skip


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,lymphocyte,lymphocyte", "column(s) listed more than once: 'lymphocyte'"),
        ("id,id,lymphocyte", "column(s) listed more than once: 'id'"),
        ("id,pred,lymphocyte,pred", "column(s) listed more than once: 'pred'"),
        ("id,a,b,c,d,lymphocyte", "unknown class column(s) 'a', 'b', 'c' and 1 more; allowed: "),
        ("\ufeffid,lymphocyte", None),  # a spreadsheet's byte-order mark is no part of 'id'
    ],
)
def test_header_is_checked_against_the_vocabulary(header: str, message: str | None) -> None:
    data = f"{header}\nx,1{',1' * (header.count(',') - 1)}\n".encode()
    if message is None:
        assert read_bytes(data).ids == ["x"]
        return
    with pytest.raises(SubmissionError) as err:
        read_bytes(data)
    assert str(err.value).startswith(f"up.csv: {message}")


@pytest.mark.parametrize("na", ["NA", "nan", "NaN", "null", "NULL", "None", "#N/A", "N/A", "-"])
def test_na_like_ids_are_text(na: str) -> None:
    sub = read_bytes(f"id,lymphocyte,neutrophil\n{na},1,0\nb.jpg,0,1\n".encode())
    assert sub.ids == [na, "b.jpg"] and all(isinstance(i, str) for i in sub.ids)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (",1,0\n", "line 2 has an empty id"),
        ('"",1,0\n', "line 2 has an empty id"),
        ("b.jpg,0,1\n  ,1,0\n", "line 3 has an empty id"),
        ("a.jpg,1\n", "line 2 has 2 fields, not 3"),
        ("a.jpg,1,0,0\n", "line 2 has 4 fields, not 3"),
        ("a.jpg,,1\n", "probabilities must be numbers: lymphocyte of 'a.jpg' is ''"),
        ("a.jpg,inf,0\n", "probabilities must be finite numbers: lymphocyte of 'a.jpg' is 'inf'"),
        (
            '"a\nb.jpg",0.5,nan\n',
            "probabilities must be finite numbers: neutrophil of 'a\\nb.jpg' is 'nan'",
        ),
    ],
)
def test_rows_are_read_as_text_and_checked(body: str, message: str) -> None:
    with pytest.raises(SubmissionError) as err:
        read_bytes(f"id,lymphocyte,neutrophil\n{body}".encode())
    assert str(err.value) == f"up.csv: {message}"


def test_long_ids_and_cells_are_cut_in_messages() -> None:
    long_id = "x" * 100_000
    for body, what in (
        (f"{long_id},1,0\n{long_id},1,0\n", "listed more than once"),
        (f"{long_id},0.5,0.4\n", "sum to 0.900000"),
        (f"a.jpg,{'9' * 99_999}z,0\n", "must be numbers"),
    ):
        with pytest.raises(SubmissionError, match=what) as err:
            read_bytes(f"id,lymphocyte,neutrophil\n{body}".encode())
        assert len(str(err.value)) < 250 and "(100000 characters)" in str(err.value)
    with pytest.raises(SubmissionError, match=r"line 2: field larger than field limit"):
        read_bytes(b"id,lymphocyte\n" + b"x" * 5_000_000 + b",1\n")
