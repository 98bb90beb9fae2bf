"""Shrink an image dataset for a GPU machine that takes a limited working tree, and restore it.

``pack`` re-encodes every image under SRC as WebP (longest side at most ``--size``) into DST,
keeping the relative path with ``.webp`` appended; ``unpack`` decodes them back to the original
names (JPEG at quality 95 for ``.jpg``, lossless for ``.png``/``.bmp``), so dataset adapters and
versioned split files see the original ids. Every other file (split files) is copied as it is.

    python -m bench.gpu_pack pack ../shared/data/pbc .gpu-data/pbc128 --size 128 --quality 80
    python -m bench.gpu_pack unpack .gpu-data/pbc128 /tmp/pbc128
"""

from __future__ import annotations

import argparse
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def _pack_one(job: tuple[Path, Path, int, int]) -> str | None:
    src, dst, size, quality = job
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with Image.open(src) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size), Image.Resampling.BICUBIC)
            im.save(dst, "WEBP", quality=min(quality, 100), method=6, lossless=quality >= 100)
    except (UnidentifiedImageError, OSError):
        # a non-image with an image name (PBC's .DS_ file) travels as it is: adapters skip it
        shutil.copyfile(src, dst.with_suffix(""))
        return str(src)
    return None


def _unpack_one(job: tuple[Path, Path]) -> None:
    src, dst = job
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        if dst.suffix.lower() in {".jpg", ".jpeg"}:
            im.convert("RGB").save(dst, "JPEG", quality=95)
        else:
            im.save(dst)


def pack(src: Path, dst: Path, size: int, quality: int, workers: int) -> None:
    jobs = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            jobs.append((path, dst / f"{rel}.webp", size, quality))
        else:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst / rel)
    with ProcessPoolExecutor(workers) as pool:
        copied = [s for s in pool.map(_pack_one, jobs, chunksize=64) if s]
    print(f"packed {len(jobs)} images into {dst}; copied unreadable as they are: {copied}")


def unpack(src: Path, dst: Path, workers: int) -> None:
    jobs = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if path.suffix == ".webp":
            jobs.append((path, dst / rel.with_suffix("")))
        else:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst / rel)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_unpack_one, jobs, chunksize=64))
    print(f"unpacked {len(jobs)} images into {dst}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_pack", description=__doc__)
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--size", type=int, default=128, help="pack: longest side (px)")
    parser.add_argument("--quality", type=int, default=80, help="pack: WebP quality, 100 lossless")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.action == "pack":
        pack(args.src, args.dst, args.size, args.quality, args.workers)
    else:
        unpack(args.src, args.dst, args.workers)


if __name__ == "__main__":
    main()
