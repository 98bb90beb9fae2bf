"""File digests, header-only image sizes, perceptual hashes and a banded near-duplicate search."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

DS_STORE_MAGIC = b"\x00\x00\x00\x01Bud1"
HASH_BITS = 128  # a 64-bit dHash and a 64-bit pHash side by side
PHASH_SIDE = 32  # pHash takes the lowest 8×8 DCT frequencies of a 32×32 grey image


@dataclass(frozen=True)
class FileInfo:
    """What one read of a file tells: its SHA-1, its pixel size and why its header failed."""

    sha1: str
    size: tuple[int, int] | None  # (width, height); None when the header is unreadable
    error: str | None = None


def inspect_file(path: Path) -> FileInfo:
    """SHA-1 of the bytes and the (width, height) from the header alone (no pixel decoding)."""
    data = path.read_bytes()
    digest = hashlib.sha1(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as im:
            return FileInfo(digest, im.size)
    except Exception as exc:  # any unreadable header is a finding, never fatal
        return FileInfo(digest, None, describe_unreadable(data, exc))


def describe_unreadable(data: bytes, exc: Exception) -> str:
    """Why a file is no image, naming the common impostor (a macOS ``.DS_Store``)."""
    if data[: len(DS_STORE_MAGIC)] == DS_STORE_MAGIC:
        return f"a macOS .DS_Store file ({len(data)} bytes), not an image"
    if isinstance(exc, UnidentifiedImageError):
        return f"no image format PIL knows ({len(data)} bytes)"
    return f"{type(exc).__name__}: {exc}"


def _dct_basis(n: int, k: int) -> np.ndarray:
    """The first ``k`` rows of the orthonormal DCT-II matrix of size ``n``."""
    rows = np.arange(k)[:, None]
    basis = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * rows / (2 * n)) * np.sqrt(2 / n)
    basis[0] /= np.sqrt(2)
    return basis.astype(np.float32)


_DCT = _dct_basis(PHASH_SIDE, 8)


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """``(N, 2)`` uint64 hashes of uint8 RGB images ``(N, H, W, 3)``: dHash, then pHash.

    dHash (Krawetz): grey, area-averaged to 9×8, one bit per cell brighter than its left
    neighbour. pHash: grey at 32×32, the 8×8 lowest DCT frequencies, one bit per coefficient
    above their median. Each alone confuses distinct cells that share a layout (dHash: round
    cells on a plain background; pHash: cells centred in similar fields); the sum of the two
    distances keeps re-encoded, re-exposed or slightly shifted copies close and such pairs apart.
    """
    grey = [cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2GRAY) for im in images]
    cells = np.stack([cv2.resize(g, (9, 8), interpolation=cv2.INTER_AREA) for g in grey])
    dbits = cells[:, :, 1:].astype(np.int16) > cells[:, :, :-1]
    small = np.stack(
        [cv2.resize(g, (PHASH_SIDE, PHASH_SIDE), interpolation=cv2.INTER_AREA) for g in grey]
    ).astype(np.float32)
    freq = (_DCT @ small @ _DCT.T).reshape(len(grey), 64)
    pbits = freq > np.median(freq[:, 1:], axis=1, keepdims=True)  # the DC term would skew it
    bits = np.concatenate([dbits.reshape(len(grey), 64), pbits], axis=1)
    return np.packbits(bits, axis=1).view(">u8").astype(np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances of multi-word hashes ``(..., W)`` uint64 (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)


def near_pairs(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """All pairs ``(i, j, distance)``, ``i < j``, of hashes ``(N, W)`` at most ``max_distance``
    bits apart.

    Pigeonhole: split the bits into ``max_distance + 1`` bands; two hashes that differ in at
    most ``max_distance`` bits agree exactly on at least one band. Only hashes sharing a band
    value are compared, so the cost follows the bucket sizes, not ``N**2``.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    bits = np.unpackbits(hashes.view(np.uint8), axis=1)
    if not 0 <= max_distance < bits.shape[1]:
        raise ValueError(f"max_distance must be in [0, {bits.shape[1]}), got {max_distance}")
    found: list[np.ndarray] = []
    for band in np.array_split(np.arange(bits.shape[1]), max_distance + 1):
        _, keys = np.unique(np.packbits(bits[:, band], axis=1), axis=0, return_inverse=True)
        keys = keys.ravel()
        order = np.argsort(keys, kind="stable")
        bounds = np.flatnonzero(np.r_[True, keys[order][1:] != keys[order][:-1], True])
        shared = np.diff(bounds) > 1  # singleton buckets have nothing to compare
        for start, stop in zip(bounds[:-1][shared], bounds[1:][shared], strict=True):
            members = np.sort(order[start:stop])
            dist = hamming(hashes[members][:, None], hashes[members][None, :])
            i, j = np.nonzero(np.triu(dist <= max_distance, k=1))
            found.append(np.stack([members[i], members[j], dist[i, j]], axis=1))
    if not found:
        return np.empty((0, 3), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)
