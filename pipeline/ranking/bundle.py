"""The participants' test bundle: the test images under opaque random ids, nothing else.

``make_bundle`` writes ``<bundle>/images/<opaque>.<ext>``, ``sample_submission.csv`` and a
``README.txt``, and returns the ``ContestKey`` (opaque id -> image -> label, the secret salt of
the public/private division, and the images' pixel fingerprints) that only the server keeps.
Nothing in the bundle names a class: not the ids (random), the file names or folders (one flat
folder), the file order (files are written in the order of their random ids), nor the bytes:
every image is written afresh from its decoded pixels (a JPEG re-encoded at quality 95, anything
else as PNG), so no metadata, segment, padding or trailing byte of the source survives. Each
written file is checked to decode to (for a JPEG: close to) the source's pixels and to hold
neither the source's file name nor a class name.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.errors import UserError
from pipeline.evaluation.scoring import AnswerKey
from pipeline.ranking.competition import ContestKey
from pipeline.ranking.fingerprints import image_fingerprint
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
JPEG_QUALITY = 95  # no chroma subsampling either: close to the source, whatever its settings
# a re-encoded JPEG decodes within this mean absolute difference (of 255) of the source: about
# 0.5 on PBC's cells, 2.5 on noise; more is a broken encoding, and the image goes as PNG
JPEG_TOLERANCE = 4.0


class BundleError(UserError, ValueError):
    """A bundle that cannot be made (images missing, folder taken)."""


def make_bundle(
    dest: Path,
    dataset: str,
    source: dict,
    answers: AnswerKey,
) -> ContestKey:
    """Write the bundle of the test set ``answers`` (images under ``source["root"]``) to
    ``dest``, which must not exist yet; return the server's key."""
    if dest.exists():
        raise BundleError(f"{dest} already exists: give --bundle a new folder (nothing written)")
    key, vocabulary = answers.labels, answers.vocabulary
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
    fingerprints = set()
    try:
        for oid in sorted(images):  # file order: that of the random ids
            real, _ = images[oid]
            data, ext = clean_image(root / real, telltales | {Path(real).stem.lower()})
            (staging / "images" / f"{oid}{ext}").write_bytes(data)
            fingerprints.add(image_fingerprint(root / real))
        (staging / SAMPLE).write_bytes(sample_submission(list(images), vocabulary))
        readme = README.format(dataset=dataset, n=len(images), classes=", ".join(vocabulary))
        (staging / "README.txt").write_text(readme, encoding="utf-8")
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    salt = secrets.token_hex(32)
    return ContestKey(salt, vocabulary, images, dict(source), tuple(sorted(fingerprints)))


def _opaque_ids(n: int) -> list[str]:
    """``n`` distinct random ids, in the order they were drawn."""
    ids: dict[str, None] = {}
    while len(ids) < n:
        ids[secrets.token_hex(ID_BYTES)] = None
    return list(ids)


def clean_image(path: Path, telltales: set[str]) -> tuple[bytes, str]:
    """The image written afresh from its decoded pixels, and its new extension: a JPEG
    re-encoded (no byte of its compressed data, segments or trailer kept), anything else (or a
    JPEG whose re-encoding fails the checks) as PNG. Checked: the pixels of the source (a JPEG:
    within ``JPEG_TOLERANCE``), and none of ``telltales`` (lower case) in the bytes."""
    with Image.open(path) as image:
        fmt = image.format
        plain = image.mode in ("L", "RGB", "RGBA")  # others (palettes, CMYK) go by RGB
        pixels = np.asarray(image if plain else image.convert("RGB"))
    candidates = []
    if fmt == "JPEG":
        candidates.append((_encoded(pixels, "JPEG"), ".jpg", JPEG_TOLERANCE))
    candidates.append((_encoded(pixels, "PNG"), ".png", 0.0))
    for data, ext, tolerance in candidates:
        if _pixel_error(data, pixels) <= tolerance and not _tells(data, telltales):
            return data, ext
    raise BundleError(f"{path}: cannot write it without a trace of its name or class")


def _encoded(pixels: np.ndarray, fmt: str) -> bytes:
    """The pixels alone in a new file: no metadata, comment or colour profile is passed on."""
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _pixel_error(data: bytes, pixels: np.ndarray) -> float:
    """Mean absolute difference of the decoded ``data`` from ``pixels`` (inf: other shape)."""
    with Image.open(io.BytesIO(data)) as image:
        decoded = np.asarray(image)
    if decoded.shape != pixels.shape:
        return float("inf")
    return float(np.abs(decoded.astype(np.int16) - pixels).mean())


def _tells(data: bytes, telltales: set[str]) -> bool:
    low = data.lower()
    return any(t.encode() in low for t in telltales if len(t) >= MIN_TELLTALE)
