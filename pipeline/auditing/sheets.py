"""Contact sheets: captioned thumbnails of outliers and of duplicate pairs, drawn with PIL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from pipeline.auditing.drawing import FONT_SIZE, font

LINE = FONT_SIZE + 3
PAD = 6
BACKGROUND = (255, 255, 255)
EMPTY = (225, 225, 225)


@dataclass(frozen=True)
class Tile:
    """One thumbnail and the caption lines under it."""

    path: Path
    caption: tuple[str, ...]


@dataclass(frozen=True)
class PairTile:
    """Two thumbnails side by side under a header line (red when ``alarm``)."""

    header: str
    left: Tile
    right: Tile
    alarm: bool = False


def thumbnail(path: Path, side: int) -> Image.Image:
    """The whole image scaled into a ``side`` square (aspect kept), grey if unreadable."""
    tile = Image.new("RGB", (side, side), EMPTY)
    try:
        with Image.open(path) as im:
            im.draft("RGB", (side, side))
            im = im.convert("RGB")
            im.thumbnail((side, side), Image.Resampling.LANCZOS)
            tile.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    except Exception:  # the caption already says which file; the sheet must still be drawn
        ImageDraw.Draw(tile).text((4, side // 2), "unreadable", fill=(120, 0, 0), font=font())
    return tile


def _titled_grid(
    title: str, cells: int, columns: int, cell_w: int, cell_h: int
) -> tuple[Image.Image, ImageDraw.ImageDraw, list[tuple[int, int]]]:
    """A blank sheet with ``title`` on top, its drawer, and the top-left corner of each cell."""
    rows = max(1, -(-cells // columns))
    sheet = Image.new("RGB", (columns * cell_w, LINE + PAD + rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, PAD // 2), title, fill=(0, 0, 0), font=font())
    corners = [
        ((n % columns) * cell_w + PAD, LINE + PAD + (n // columns) * cell_h + PAD)
        for n in range(cells)
    ]
    return sheet, draw, corners


def outlier_sheet(tiles: list[Tile], title: str, side: int = 96, columns: int = 8) -> Image.Image:
    """A grid of captioned thumbnails under a title."""
    lines = max((len(t.caption) for t in tiles), default=0)
    cell_w, cell_h = side + 2 * PAD, side + PAD + lines * LINE + PAD
    sheet, draw, corners = _titled_grid(title, len(tiles), columns, cell_w, cell_h)
    for tile, (x, y) in zip(tiles, corners, strict=True):
        sheet.paste(thumbnail(tile.path, side), (x, y))
        _caption(draw, tile.caption, x, y + side + 2, side, (0, 0, 0))
    return sheet


def pair_sheet(pairs: list[PairTile], title: str, side: int = 96, columns: int = 3) -> Image.Image:
    """A grid of duplicate pairs, each two thumbnails side by side with their captions."""
    lines = max((len(t.caption) for p in pairs for t in (p.left, p.right)), default=0)
    cell_w = 2 * side + 4 * PAD
    cell_h = LINE + side + PAD + lines * LINE + PAD
    sheet, draw, corners = _titled_grid(title, len(pairs), columns, cell_w, cell_h)
    for pair, (x, y) in zip(pairs, corners, strict=True):
        colour = (200, 0, 0) if pair.alarm else (0, 0, 0)
        _caption(draw, (pair.header,), x, y, 2 * side + PAD, colour)
        for k, tile in enumerate((pair.left, pair.right)):
            left = x + k * (side + PAD)
            sheet.paste(thumbnail(tile.path, side), (left, y + LINE))
            _caption(draw, tile.caption, left, y + LINE + side + 2, side, (0, 0, 0))
    return sheet


def _caption(
    draw: ImageDraw.ImageDraw,
    lines: tuple[str, ...],
    x: int,
    y: int,
    width: int,
    colour: tuple[int, int, int],
) -> None:
    face = font()
    for k, text in enumerate(lines):
        draw.text((x, y + k * LINE), _fit(text, width, face), fill=colour, font=face)


def _fit(text: str, width: int, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """Shorten from the left (file names end in what tells them apart) to fit ``width``."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength("..." + text) > width:
        text = text[1:]
    return "..." + text
