"""The participants' test bundle: the test images under opaque random ids, nothing else.

``make_bundle`` writes ``<bundle>/images/<opaque>.<ext>``, ``sample_submission.csv`` and a
``README.txt``, and returns the ``ContestKey`` (opaque id -> image -> label, and the secret salt
of the public/private division) that only the server keeps. Nothing in the bundle names a
class: not the ids (random), the file names or folders (one flat folder), the file order (files
are written in the order of their random ids), nor the bytes (JPEG comments and application
segments are dropped; other formats are re-encoded as PNG without metadata). Each written file
is checked to decode to the source's pixels and to hold neither the source's file name nor a
class name.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.errors import UserError
from pipeline.ranking.competition import ContestKey
from pipeline.ranking.present import sample_submission

ID_BYTES = 8  # 16 hex digits
SAMPLE = "sample_submission.csv"
# shorter strings turn up by chance in compressed data (PBC's class "ig"); the segments that
# could hold text are dropped whatever they say
MIN_TELLTALE = 5
README = """\
Test images of the {dataset} competition: {n} images in images/, named by random ids.
Classes: {classes}.

Submit a CSV with a header `id,<one column per class>,pred` and one row per image id (the
file name without its extension), as sample_submission.csv does: every id exactly once, a
probability for every class. Submit with the team name and token the organiser gave you.
"""
# JPEG segments kept: frame, tables, restart interval, and the two APPn that change decoding
_JFIF, _ADOBE = b"JFIF\0", b"Adobe"


class BundleError(UserError, ValueError):
    """A bundle that cannot be made (images missing, folder taken)."""


def make_bundle(
    dest: Path,
    dataset: str,
    source: dict,
    key: dict[str, str],
    vocabulary: Sequence[str],
) -> ContestKey:
    """Write the bundle of the test set ``key`` (id -> label; images under ``source["root"]``)
    to ``dest``, which must not exist yet; return the server's key."""
    if dest.exists():
        raise BundleError(f"{dest} already exists: give --bundle a new folder (nothing written)")
    root = Path(source["root"])
    missing = [i for i in key if not (root / i).is_file()]
    if missing:
        raise BundleError(
            f"{len(missing)} of {len(key)} test images are not under {root} (e.g. {missing[0]}): "
            "the bundle is made on the machine that holds the test set"
        )
    # random ids drawn one by one: their sorted order says nothing of the images' order
    images = dict(zip(_opaque_ids(len(key)), ((i, key[i]) for i in sorted(key)), strict=True))
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "images").mkdir(parents=True)
    telltales = {c.lower() for c in vocabulary} | {label.lower() for label in key.values()}
    try:
        for oid in sorted(images):  # file order: that of the random ids
            real, _ = images[oid]
            data, ext = clean_image(root / real, telltales | {Path(real).stem.lower()})
            (staging / "images" / f"{oid}{ext}").write_bytes(data)
        (staging / SAMPLE).write_bytes(sample_submission(list(images), tuple(vocabulary)))
        readme = README.format(dataset=dataset, n=len(images), classes=", ".join(vocabulary))
        (staging / "README.txt").write_text(readme, encoding="utf-8")
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ContestKey(secrets.token_hex(32), tuple(vocabulary), images, dict(source))


def _opaque_ids(n: int) -> list[str]:
    """``n`` distinct random ids, in the order they were drawn."""
    ids: dict[str, None] = {}
    while len(ids) < n:
        ids[secrets.token_hex(ID_BYTES)] = None
    return list(ids)


def clean_image(path: Path, telltales: set[str]) -> tuple[bytes, str]:
    """The image's bytes without metadata and its new extension: a JPEG with its comment and
    application segments dropped (the compressed data untouched), anything else (or a JPEG
    whose cleaning fails the checks) re-encoded as PNG. Checked: the same pixels as the source,
    and none of ``telltales`` (lower case) in the bytes."""
    original = path.read_bytes()
    with Image.open(io.BytesIO(original)) as image:
        fmt = image.format
        plain = image.mode in ("L", "RGB", "RGBA")  # others (palettes, CMYK) go by RGB
        pixels = np.asarray(image if plain else image.convert("RGB"))
    candidates = []
    if fmt == "JPEG":
        stripped = _strip_jpeg(original)
        if stripped is not None:
            candidates.append((stripped, ".jpg"))
    candidates.append((_png(pixels), ".png"))
    for data, ext in candidates:
        if _same_pixels(data, pixels) and not _tells(data, telltales):
            return data, ext
    raise BundleError(f"{path}: cannot write it without a trace of its name or class")


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")  # no text chunks: nothing but pixels
    return buffer.getvalue()


def _same_pixels(data: bytes, pixels: np.ndarray) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        return np.array_equal(np.asarray(image), pixels)


def _tells(data: bytes, telltales: set[str]) -> bool:
    low = data.lower()
    return any(t.encode() in low for t in telltales if len(t) >= MIN_TELLTALE)


def _strip_jpeg(data: bytes) -> bytes | None:
    """The JPEG without COM and APPn segments (JFIF's APP0 and Adobe's APP14 kept: they change
    how it decodes); from the first scan on, the bytes are copied as they are. None when the
    marker structure is not the expected one."""
    if data[:2] != b"\xff\xd8":
        return None
    out, pos = bytearray(b"\xff\xd8"), 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the compressed data follows
            return bytes(out + data[pos:])
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos : pos + 2 + length]
        body = segment[4:]
        app = 0xE0 <= marker <= 0xEF
        keep = not (marker == 0xFE or app) or (
            (marker == 0xE0 and body.startswith(_JFIF))
            or (marker == 0xEE and body.startswith(_ADOBE))
        )
        if keep:
            out += segment
        pos += 2 + length
    return None
