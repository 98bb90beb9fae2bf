"""Decode once: every image is decoded and resized a single time into a uint8 memory map.

The map is keyed by dataset root, file list with every file's bytes, image size, crop (centre,
or cell-centred at the exact fraction, with any expert masks) and the version of the code that
decodes and crops, so every member and every epoch of a zoo shares it, and a changed file, size,
crop or decoder builds a new one. Bytes, not sizes and mtimes: a file rewritten in place with its
mtime restored would otherwise return its old pixels (digesting all of PBC's 17,092 files, 162 MB,
takes ~0.3 s warm). A root that is an array file (``.npz``, see ``pipeline.data.arrays``) is read
from its arrays instead, and keyed by its bytes. Cell-centred maps remember how each image's cell
was found (``crop_status``).
"""

from __future__ import annotations

import hashlib
import inspect
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import PIL
from PIL import Image
from tqdm import tqdm

from pipeline.data import cellcrop
from pipeline.data.arrays import is_array_file, read_images
from pipeline.data.cellcrop import CENTRE, FOUND, CropSpec, cell_crop, status_counts
from pipeline.io import read_json, write_json

DEFAULT_CACHE_DIR = Path(os.environ.get("WBCZOO_CACHE", Path.home() / ".cache" / "wbczoo"))
CENTRE_CROP = CropSpec()


def decode_image(path: Path, size: int) -> np.ndarray:
    """RGB uint8 ``(size, size, 3)``: centre square crop, then an antialiased resize."""
    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at the smallest scale still >= size
        return square_resize(im.convert("RGB"), size)


def array_image(pixels: np.ndarray, size: int) -> np.ndarray:
    """``decode_image`` of a uint8 ``(H, W, 3)`` or grayscale ``(H, W)`` array."""
    return square_resize(Image.fromarray(pixels).convert("RGB"), size)


def decode(
    path: Path, size: int, crop: CropSpec = CENTRE_CROP, mask: Path | None = None
) -> tuple[np.ndarray, str]:
    """An image file at ``size`` under ``crop``, and how its crop was placed (``cellcrop``)."""
    if crop.mode == "centre":
        return decode_image(path, size), CENTRE
    pixels, mask_pixels = read_with_mask(path, mask)
    return crop_array(pixels, size, crop, mask_pixels)


def read_with_mask(path: Path, mask: Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """An image file as RGB uint8 at full size, and its expert mask as grayscale (or None)."""
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB"))
    if mask is None:
        return pixels, None
    with Image.open(mask) as m:
        return pixels, np.asarray(m.convert("L"))


def crop_array(
    pixels: np.ndarray, size: int, crop: CropSpec, mask: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """``decode`` of a uint8 ``(H, W, 3)`` or grayscale ``(H, W)`` array."""
    if crop.mode == "centre":
        return array_image(pixels, size), CENTRE
    rgb = np.asarray(Image.fromarray(pixels).convert("RGB"))
    square, detection = cell_crop(rgb, crop.fraction, mask)
    resized = Image.fromarray(np.ascontiguousarray(square)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.uint8), detection.status


def square_resize(im: Image.Image, size: int) -> np.ndarray:
    """RGB uint8 ``(size, size, 3)`` of an RGB image: centre square crop, antialiased resize."""
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


Job = tuple[list[str], list[str | None], int, CropSpec]


def _decode_chunk(job: Job) -> list[tuple[np.ndarray, str] | str]:
    paths, masks, size, crop = job
    out: list[tuple[np.ndarray, str] | str] = []
    for p, m in zip(paths, masks, strict=True):
        try:
            out.append(decode(Path(p), size, crop, Path(m) if m else None))
        except Exception as exc:  # any unreadable file is reported, never fatal
            out.append(f"{type(exc).__name__}: {exc}")
    return out


@dataclass
class ImageCache:
    """Decoded images ``(N, S, S, 3)`` with their ids; ``failed`` maps unreadable ids to why,
    ``crop_status`` every id whose cell-centred crop was not found by the finder to how it was
    placed instead (``mask``, or the ``cellcrop.FALLBACKS`` to a centre crop)."""

    ids: list[str]
    images: np.ndarray
    failed: dict[str, str]
    path: Path
    crop: CropSpec = CENTRE_CROP
    crop_status: dict[str, str] = field(default_factory=dict)

    def rows(self, ids: list[str]) -> np.ndarray:
        index = {i: n for n, i in enumerate(self.ids)}
        return np.array([index[i] for i in ids], dtype=np.int64)

    def crop_counts(self, ids: list[str]) -> dict[str, int]:
        """How the crops of these images were placed: status -> count."""
        default = CENTRE if self.crop.mode == "centre" else FOUND
        return status_counts(self.crop_status.get(i, default) for i in ids)


def decoder_source() -> str:
    """Everything that turns a file into cached pixels: the decode and crop code of this module,
    the array reader, the cell finder, and the Pillow and OpenCV versions; any edit keys anew."""
    code = [decode, decode_image, read_with_mask, crop_array, array_image, square_resize]
    text = "".join(inspect.getsource(f) for f in [*code, read_images, cellcrop])
    return text + f"|Pillow {PIL.__version__}|OpenCV {cv2.__version__}"


def _update_with_file(h: hashlib.blake2b, path: Path) -> None:
    """Feed a file's bytes to ``h``; a file that cannot be read keys as such (the build then
    records why)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        h.update(f"!{type(exc).__name__}".encode())
        return
    h.update(f"{len(data)}:".encode())
    h.update(data)


def cache_key(
    root: Path,
    ids: list[str],
    size: int,
    crop: CropSpec = CENTRE_CROP,
    masks: dict[str, str] | None = None,
) -> str:
    h = hashlib.blake2b(digest_size=8)
    # repr: the exact fraction, which the file name's tag rounds; a centre crop has none
    placed = "centre" if crop.mode == "centre" else f"cell:{crop.fraction!r}"
    h.update(f"{root.resolve()}|{size}|{placed}|{decoder_source()}".encode())
    if is_array_file(root):  # the ids are rows of this one file
        _update_with_file(h, root)
        h.update(f"|{'|'.join(ids)}".encode())
        return h.hexdigest()
    for i in ids:
        h.update(f"|{i}:".encode())
        _update_with_file(h, root / i)
    if crop.mode == "cell":
        for i, m in sorted((masks or {}).items()):
            h.update(f"|{i}>{m}:".encode())
            _update_with_file(h, root / m)
    return h.hexdigest()


def load_or_build(
    root: Path,
    ids: list[str],
    size: int,
    name: str,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    workers: int | None = None,
    progress: bool = True,
    crop: CropSpec = CENTRE_CROP,
    masks: dict[str, str] | None = None,
) -> ImageCache:
    """Open the cache for these images at this size and crop, building it on first use.

    ``masks`` maps ids to expert mask files (relative to ``root``) that place cell crops.
    """
    ids = sorted(ids)
    masks = {i: m for i, m in (masks or {}).items() if m} if crop.mode == "cell" else {}
    tag = "" if crop.mode == "centre" else f"-{crop.tag}"
    stem = cache_dir / f"{name}-{size}px{tag}-{cache_key(root, ids, size, crop, masks)}"
    npy, meta = stem.with_suffix(".npy"), stem.with_suffix(".json")
    if not meta.exists():
        _build(root, ids, size, npy, meta, workers, progress, name, crop, masks)
    info = read_json(meta)
    images = np.load(npy, mmap_mode="r")
    return ImageCache(info["ids"], images, info["failed"], npy, crop, info.get("crop_status", {}))


def _build(
    root: Path,
    ids: list[str],
    size: int,
    npy: Path,
    meta: Path,
    workers: int | None,
    progress: bool,
    name: str,
    crop: CropSpec,
    masks: dict[str, str],
) -> None:
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_name(f".{npy.name}.{os.getpid()}.tmp.npy")
    array = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.uint8, shape=(len(ids), size, size, 3)
    )
    failed: dict[str, str] = {}  # array rows never fail: the adapter checked their shapes
    status: dict[str, str] = {}
    bar = tqdm(
        total=len(ids),
        desc=f"decode {name} @{size}px",
        unit="img",
        disable=None if progress else True,
    )
    try:
        if is_array_file(root):  # already decoded: resizing in this process is quick enough
            for position, pixels in read_images(root, ids):
                array[position], status[ids[position]] = crop_array(pixels, size, crop)
                bar.update()
        else:
            failed, status = _decode_files(root, ids, size, array, workers, bar, crop, masks)
        array.flush()
        del array
        os.replace(tmp, npy)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    info: dict = {"ids": ids, "size": size, "failed": failed}
    if crop.mode == "cell":
        info["crop"] = {"mode": crop.mode, "fraction": crop.fraction}
        info["crop_counts"] = status_counts(status.values())
        info["crop_status"] = {i: s for i, s in status.items() if s != FOUND}
    write_json(meta, info)


def _decode_files(
    root: Path,
    ids: list[str],
    size: int,
    array: np.ndarray,
    workers: int | None,
    bar: tqdm,
    crop: CropSpec,
    masks: dict[str, str],
) -> tuple[dict[str, str], dict[str, str]]:
    """Decode the image files into ``array`` in worker processes; returns id -> why for the
    unreadable ones, and id -> how its crop was placed for the others."""
    failed: dict[str, str] = {}
    status: dict[str, str] = {}
    chunk = 64
    jobs: list[Job] = []
    for s in range(0, len(ids), chunk):
        part = ids[s : s + chunk]
        mask_paths = [str(root / masks[i]) if i in masks else None for i in part]
        jobs.append(([str(root / i) for i in part], mask_paths, size, crop))
    workers = workers or min(8, os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for start, results in zip(
            range(0, len(ids), chunk), pool.map(_decode_chunk, jobs), strict=True
        ):
            for offset, result in enumerate(results):
                i = ids[start + offset]
                if isinstance(result, str):
                    failed[i] = result
                else:
                    array[start + offset], status[i] = result
            bar.update(len(results))
    return failed, status
