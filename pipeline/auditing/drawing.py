"""What every contact sheet draws with (the audit's sheets, ``python -m pipeline.cropsheet``):
one font, atomic PNG files."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PIL import Image, ImageFont

from pipeline.io import atomic_write

FONT_SIZE = 11


@cache
def font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def save_png(image: Image.Image, path: Path) -> None:
    atomic_write(path, lambda f: image.save(f, format="PNG", optimize=True), binary=True)
