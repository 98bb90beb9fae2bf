"""Decode once: every image is decoded and resized a single time into a uint8 memory map.

The map is keyed by dataset root, file list (with sizes and mtimes) and image size, so every
member and every epoch of a zoo shares it, and a changed file or size builds a new one. A root
that is an array file (``.npz``, see ``pipeline.data.npz``) is read from its arrays instead, and
keyed by the file's size and mtime.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from pipeline.data.npz import is_array_file, read_images
from pipeline.io import read_json, write_json

DEFAULT_CACHE_DIR = Path(os.environ.get("WBCZOO_CACHE", Path.home() / ".cache" / "wbczoo"))


def decode_image(path: Path, size: int) -> np.ndarray:
    """RGB uint8 ``(size, size, 3)``: centre square crop, then an antialiased resize."""
    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at the smallest scale still >= size
        return square_resize(im.convert("RGB"), size)


def array_image(pixels: np.ndarray, size: int) -> np.ndarray:
    """``decode_image`` of a uint8 ``(H, W, 3)`` or grayscale ``(H, W)`` array."""
    return square_resize(Image.fromarray(pixels).convert("RGB"), size)


def square_resize(im: Image.Image, size: int) -> np.ndarray:
    """RGB uint8 ``(size, size, 3)`` of an RGB image: centre square crop, antialiased resize."""
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _decode_chunk(args: tuple[list[str], int]) -> list[np.ndarray | str]:
    paths, size = args
    out: list[np.ndarray | str] = []
    for p in paths:
        try:
            out.append(decode_image(Path(p), size))
        except Exception as exc:  # any unreadable file is reported, never fatal
            out.append(f"{type(exc).__name__}: {exc}")
    return out


@dataclass
class ImageCache:
    """Decoded images ``(N, S, S, 3)`` with their ids; ``failed`` maps unreadable ids to why."""

    ids: list[str]
    images: np.ndarray
    failed: dict[str, str]
    path: Path

    def rows(self, ids: list[str]) -> np.ndarray:
        index = {i: n for n, i in enumerate(self.ids)}
        return np.array([index[i] for i in ids], dtype=np.int64)


def cache_key(root: Path, ids: list[str], size: int) -> str:
    h = hashlib.sha1()
    h.update(f"{root.resolve()}|{size}".encode())
    if is_array_file(root):  # the ids are rows of this one file
        st = root.stat()
        h.update(f"|{st.st_size}:{st.st_mtime_ns}|{'|'.join(ids)}".encode())
        return h.hexdigest()[:16]
    for i in ids:
        st = (root / i).stat()
        h.update(f"|{i}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_or_build(
    root: Path,
    ids: list[str],
    size: int,
    name: str,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    workers: int | None = None,
    progress: bool = True,
) -> ImageCache:
    """Open the cache for these images at this size, building it on first use."""
    ids = sorted(ids)
    stem = cache_dir / f"{name}-{size}px-{cache_key(root, ids, size)}"
    npy, meta = stem.with_suffix(".npy"), stem.with_suffix(".json")
    if not meta.exists():
        _build(root, ids, size, npy, meta, workers, progress, name)
    info = read_json(meta)
    images = np.load(npy, mmap_mode="r")
    return ImageCache(info["ids"], images, info["failed"], npy)


def _build(
    root: Path,
    ids: list[str],
    size: int,
    npy: Path,
    meta: Path,
    workers: int | None,
    progress: bool,
    name: str,
) -> None:
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_name(f".{npy.name}.{os.getpid()}.tmp.npy")
    array = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.uint8, shape=(len(ids), size, size, 3)
    )
    failed: dict[str, str] = {}  # array rows never fail: the adapter checked their shapes
    bar = tqdm(total=len(ids), desc=f"decode {name} @{size}px", unit="img", disable=not progress)
    try:
        if is_array_file(root):  # already decoded: resizing in this process is quick enough
            for position, pixels in read_images(root, ids):
                array[position] = array_image(pixels, size)
                bar.update()
        else:
            failed = _decode_files(root, ids, size, array, workers, bar)
        array.flush()
        del array
        os.replace(tmp, npy)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    write_json(meta, {"ids": ids, "size": size, "failed": failed})


def _decode_files(
    root: Path,
    ids: list[str],
    size: int,
    array: np.ndarray,
    workers: int | None,
    bar: tqdm,
) -> dict[str, str]:
    """Decode the image files into ``array`` in worker processes; returns id -> why for the
    unreadable ones."""
    failed: dict[str, str] = {}
    chunk = 64
    jobs = [([str(root / i) for i in ids[s : s + chunk]], size) for s in range(0, len(ids), chunk)]
    workers = workers or min(8, os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for start, results in zip(
            range(0, len(ids), chunk), pool.map(_decode_chunk, jobs), strict=True
        ):
            for offset, result in enumerate(results):
                if isinstance(result, str):
                    failed[ids[start + offset]] = result
                else:
                    array[start + offset] = result
            bar.update(len(results))
    return failed
