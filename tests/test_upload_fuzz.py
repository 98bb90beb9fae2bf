"""Property: no upload, however malformed, gets past the reader and the checker as anything but
a ``SubmissionError`` with a short one-line message (a traceback in the app is a bug)."""

from __future__ import annotations

import csv
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.classes import CLASSES
from pipeline.evaluation.scoring import AnswerKey
from pipeline.ranking.upload import check_upload
from pipeline.runs.submissions import SubmissionError, read_submission, to_frame

USED = ("eosinophil", "lymphocyte", "neutrophil")
KEY = {f"{c}/img_{i}.jpg": c for i, c in enumerate(USED * 2)}
ANSWERS = AnswerKey(KEY, USED)
# 300 examples each: about 7 s on a shared 2-core CPU (4000 each, a minute, found nothing more);
# no deadline, as the load of a CI machine varies
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

NASTY = ["", "NA", "nan", "null", "None", "#N/A", "inf", "-inf", "-1", "0", "1", "0.5", "1e309",
         "1_0", "\u0661", " 1", "x" * 300, '"', '""', ",", "\n", "\r", "\r\n", "\x00", "\ufeff",
         "é", "id", "pred", "ID", *CLASSES, *KEY]  # fmt: skip
cells = st.one_of(st.sampled_from(NASTY), st.text(max_size=12))


def valid() -> bytes:
    probs = np.full((len(KEY), len(USED)), 0.1)
    probs[np.arange(len(KEY)), [USED.index(c) for c in KEY.values()]] = 0.8
    return to_frame(list(KEY), probs, USED).to_csv(index=False).encode()


@st.composite
def built(draw: st.DrawFn) -> bytes:
    """A table of nasty cells under a header drawn from the vocabulary and beyond, written
    raw (unbalanced quotes and all) or through the csv module."""
    header = draw(
        st.lists(st.one_of(st.sampled_from(["id", "pred", *CLASSES]), cells), max_size=10)
    )
    rows = draw(st.lists(st.lists(cells, max_size=len(header) + 2), max_size=12))
    if draw(st.booleans()):
        buf = io.StringIO()
        csv.writer(buf).writerows([header, *rows])
        text = buf.getvalue()
    else:
        text = "\n".join(",".join(row) for row in [header, *rows])
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"])),
                       errors="replace")  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid file with bytes deleted, inserted or replaced, and lines repeated or dropped."""
    data = bytearray(valid())
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "repeat", "drop"]))
        if op == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif op == "insert":
            data[at:at] = draw(st.one_of(st.binary(max_size=8), st.sampled_from(NASTY).map(
                str.encode)))  # fmt: skip
        elif op == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        else:
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [lines[i]] * (2 if op == "repeat" else 0)  # fmt: skip
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def assert_clean(data: bytes) -> None:
    """Each of the reader and the checker accepts ``data`` or says, in one short line, why not."""
    for check in (
        lambda: read_submission(io.BytesIO(data), name="fuzz.csv"),
        lambda: check_upload(data, ANSWERS, "fuzz.csv"),
    ):
        try:
            check()
        except SubmissionError as exc:
            message = str(exc)
            assert message.startswith("fuzz.csv: ") and "\n" not in message, message
            assert len(message) < 600, message


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    assert_clean(data)


@FUZZ
@given(built())
def test_random_tables(data: bytes) -> None:
    assert_clean(data)


@FUZZ
@given(mutated())
def test_mutated_valid_files(data: bytes) -> None:
    assert_clean(data)


@FUZZ
@given(
    st.permutations(list(KEY)),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_any_spelling_of_a_valid_file_is_accepted(
    order: list[str], quoting: int, newline: str, bom: bool
) -> None:
    """Row order, quoting, CRLF line ends and a byte-order mark change nothing."""
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=quoting, lineterminator=newline)
    writer.writerow(["id", *USED])
    writer.writerows([i, *(0.9 if c == KEY[i] else 0.05 for c in USED)] for i in order)
    upload = check_upload(("\ufeff" * bom + buf.getvalue()).encode(), ANSWERS)
    assert upload.submission.ids == order and upload.scores["accuracy"] == 1.0
