"""``python -m pipeline.cropsheet``: look at cell-centred crops before training on them.

For every set: how its cells were found (counts, fallbacks to a centre crop named), and a contact
sheet row of source images with the found box drawn above the crops that the cache would store.
``--measure`` prints the cell box side relative to the image side over a set, the number that
``cellcrop.DEFAULT_CELL_FRACTION`` holds for PBC.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.auditing.drawing import font, save_png
from pipeline.commands import options as opts
from pipeline.data import load_dataset
from pipeline.data.cache import read_with_mask
from pipeline.data.cellcrop import (
    DEFAULT_CELL_FRACTION,
    FALLBACKS,
    FOUND,
    Detection,
    cell_crop,
    status_counts,
)
from pipeline.data.records import Record
from pipeline.data.store import crop_summary
from pipeline.errors import user_errors

SIDE = 112  # thumbnail side on the sheet
PAD = 6
LINE = 16
BOX_COLOURS = {FOUND: (0, 200, 0), "mask": (0, 120, 255)}
FALLBACK_COLOUR = (220, 0, 0)


@dataclass(frozen=True)
class Example:
    """One image of a set: its source, how its cell was found, and its crop."""

    record: Record
    source: np.ndarray
    detection: Detection
    crop: np.ndarray


def spread(records: list[Record], n: int) -> list[Record]:
    """Up to ``n`` records taken in turn from each class, evenly through each class's list."""
    by_class: dict[str, list[Record]] = {}
    for r in sorted(records, key=lambda r: r.id):
        by_class.setdefault(r.label, []).append(r)
    share = max(1, -(-n // max(1, len(by_class))))
    queues = []
    for items in by_class.values():
        step = max(1, len(items) // share)  # every step-th first, then the ones between
        queues.append([items[k] for k in sorted(range(len(items)), key=lambda k: (k % step, k))])
    picks: list[Record] = []
    while len(picks) < n and any(queues):
        for queue in queues:
            if queue and len(picks) < n:
                picks.append(queue.pop(0))
    return picks


def examine(root: Path, record: Record, fraction: float) -> Example:
    source, mask = read_with_mask(root / record.id, root / record.mask if record.mask else None)
    crop, detection = cell_crop(source, fraction, mask)
    return Example(record, source, detection, np.ascontiguousarray(crop))


def draw_row(examples: list[Example], title: str, columns: int) -> Image.Image:
    """A title line, the sources with their boxes (red frame: centre-crop fallback), the crops."""
    cell = SIDE + PAD
    row = Image.new("RGB", (columns * cell + PAD, LINE + 2 * cell + LINE), "white")
    draw = ImageDraw.Draw(row)
    draw.text((PAD, 2), title, fill=(0, 0, 0), font=font())
    for k, ex in enumerate(examples):
        x = PAD + k * cell
        source = Image.fromarray(ex.source)
        scale = SIDE / max(source.size)
        if ex.detection.box is not None:
            width = max(2, round(2 / scale))
            colour = BOX_COLOURS.get(ex.detection.status, (0, 200, 0))
            source = source.copy()
            ImageDraw.Draw(source).rectangle(ex.detection.box, outline=colour, width=width)
        source.thumbnail((SIDE, SIDE))
        row.paste(source, (x + (SIDE - source.width) // 2, LINE + (SIDE - source.height) // 2))
        row.paste(Image.fromarray(ex.crop).resize((SIDE, SIDE)), (x, LINE + cell))
        if ex.detection.status in FALLBACKS:
            frame = (x - 2, LINE + cell - 2, x + SIDE + 1, LINE + cell + SIDE + 1)
            draw.rectangle(frame, outline=FALLBACK_COLOUR, width=2)
        caption = f"{ex.record.label} {ex.record.id.rsplit('/', 1)[-1]}"[:18]
        draw.text((x, LINE + 2 * cell), caption, fill=(0, 0, 0), font=font())
    return row


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.cropsheet",
        "Find the white cell in every image of each set, print how often the finder "
        "fell back to a centre crop (no cell, several cells), and draw a contact sheet: source "
        "images with the found box (green; blue: expert mask) above the cell-centred crops (red "
        "frame: fallback).",
    )
    p.add_argument(
        "sets",
        nargs="+",
        metavar="NAME=[ADAPTER:]PATH",
        help="sets to look at, e.g. lisc=lisc:/data/LISC bccd=/data/bccd",
    )
    png = p.add_argument(
        "--png", type=Path, metavar="FILE", help="contact sheet PNG (default: none, counts only)"
    )
    opts.renamed(p, "--out", png)
    opts.option(p, "--per-set", type=int, default=10, help="images drawn per set")
    p.add_argument("--limit", type=int, help="count over at most this many images per set")
    p.add_argument(
        "--fraction",
        type=float,
        default=DEFAULT_CELL_FRACTION,
        help="cell box side / crop side",
    )
    p.add_argument(
        "--measure", action="store_true", help="print the cell box side / image side quartiles"
    )
    opts.add_debug(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = []
    for name, (adapter, path) in opts.parse_eval(args.sets, "a set").items():
        dataset = load_dataset(adapter, path)
        records = dataset.records()
        counted = spread(records, args.limit) if args.limit else records
        examples = [examine(dataset.root, r, args.fraction) for r in counted]
        counts = status_counts(ex.detection.status for ex in examples)
        line = f"{name} ({adapter}, {len(counted)} of {len(records)}): {crop_summary(counts)}"
        if args.measure:
            sides = [_relative_side(ex) for ex in examples if ex.detection.status == FOUND]
            q = np.percentile(sides, [25, 50, 75]) if sides else [np.nan] * 3
            line += f"; cell box / image side: median {q[1]:.3f} (quartiles {q[0]:.3f}, {q[2]:.3f})"
        print(line, flush=True)
        shown = {r.id for r in spread(counted, args.per_set)}
        drawn = [ex for ex in examples if ex.record.id in shown]
        rows.append(draw_row(drawn, line, args.per_set))
    if args.png:
        sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
        top = 0
        for row in rows:
            sheet.paste(row, (0, top))
            top += row.height
        save_png(sheet, args.png)
        print(f"contact sheet: {args.png}")
    return 0


def _relative_side(example: Example) -> float:
    x0, y0, x1, y1 = example.detection.box
    return max(x1 - x0, y1 - y0) / min(example.source.shape[:2])
