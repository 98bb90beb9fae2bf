"""The audit folder: report.md, duplicates.csv, outliers.csv and two contact sheets."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.auditing.core import AuditResult, Item, Pair
from pipeline.auditing.drawing import save_png
from pipeline.auditing.outliers import FEATURE_NAMES, top_deviations
from pipeline.auditing.sheets import PairTile, Tile, outlier_sheet, pair_sheet
from pipeline.classes import ordered
from pipeline.io import write_text

MAX_ROWS = 200  # pairs listed per table in report.md; duplicates.csv holds them all
TOP_SIZES = 6  # sizes listed per dataset
DUPLICATES_PNG, OUTLIERS_PNG = "duplicates.png", "outliers.png"


def write_outputs(
    result: AuditResult, folder: Path, command: str, top: int = 24, sheet_pairs: int = 24
) -> list[Path]:
    """Write the audit folder (each file atomically); returns the files written."""
    files = {"duplicates.csv": duplicates_csv(result), "outliers.csv": outliers_csv(result)}
    for name, text in files.items():
        write_text(folder / name, text)
    written = [folder / name for name in files]
    if result.pairs:
        shown = result.pairs[:sheet_pairs]
        title = f"first {len(shown)} of {len(result.pairs)} duplicate pairs (leaks first, in red)"
        save_png(pair_sheet([_pair_tile(result, p) for p in shown], title), folder / DUPLICATES_PNG)
        written.append(folder / DUPLICATES_PNG)
    if outliers := result.outliers(top):
        title = f"top {len(outliers)} outliers of {result.name}: distance from the class centre"
        tiles = [_tile(result.items[i], f"score {result.scores[i]:.1f}") for i in outliers]
        save_png(outlier_sheet(tiles, title), folder / OUTLIERS_PNG)
        written.append(folder / OUTLIERS_PNG)
    write_text(folder / "report.md", render(result, command, top))
    return [folder / "report.md", *written]


def render(result: AuditResult, command: str, top: int) -> str:
    """report.md: leakage first, then duplicates, outliers, unreadable files, balance, sizes."""
    sections = [
        _header(result, command),
        _leakage(result),
        _duplicates(result),
        _outliers(result, top),
        _unreadable(result),
        _balance(result),
        _sizes(result),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def duplicates_csv(result: AuditResult) -> str:
    side = ["dataset", "set", "id", "label"]
    head = ["kind", "distance", "leak", *(f"{c}_a" for c in side), *(f"{c}_b" for c in side)]
    rows = [
        [p.kind, p.distance, int(p.leak), *_cells(result.items[p.a]), *_cells(result.items[p.b])]
        for p in result.pairs
    ]
    return _csv([head, *rows])


def outliers_csv(result: AuditResult) -> str:
    rows = [
        [
            *_cells(result.items[i]),
            f"{result.scores[i]:.3f}",
            top_deviations(result.deviations[i], result.feature_names),
        ]
        for i in result.outliers(len(result.items))
    ]
    return _csv([["dataset", "set", "id", "label", "score", "why"], *rows])


def _header(result: AuditResult, command: str) -> list[str]:
    images = Counter(it.dataset for it in result.items)
    bad = Counter(u.dataset for u in result.unreadable)
    rows = [
        [f"**{n}**" if n == result.name else n, f"`{root}`", f"{images[n]:,}", f"{bad[n]:,}"]
        for n, root in result.roots.items()
    ]
    config = result.config
    return [
        f"# Data audit: {result.name}",
        "",
        f"    {command}",
        "",
        f"Run {dt.datetime.now():%Y-%m-%d %H:%M}; the checks took {result.seconds:.1f} s. Exact "
        "duplicates: same SHA-1 of the file bytes. Near duplicates: a 128-bit perceptual hash "
        f"(64-bit dHash and 64-bit pHash of the {config.size} px decoded image) at most "
        f"{config.hash_distance} bits apart.",
        "",
        _table(["dataset", "root", "images", "skipped or unreadable"], rows),
    ]


def _leakage(result: AuditResult) -> list[str]:
    leaks = result.leaks
    if not leaks:
        return ["## Leakage: none", "", "No duplicate pair spans train or val and another set."]
    summary = ", ".join(
        f"{sets}: {n}" for sets, n in Counter(_sets(result, p) for p in leaks).items()
    )
    return [
        f"## ⚠ LEAKAGE: {len(leaks)} duplicate pair(s) span train or val and another set",
        "",
        f"{summary}. The same image, or a near copy, is trained on or selected on and then "
        "scored again, so scores on those sets are optimistic.",
        "",
        *_pair_table(result, leaks),
    ]


def _duplicates(result: AuditResult) -> list[str]:
    if not result.pairs:
        return ["## Duplicates: none"]
    kinds = Counter((_sets(result, p), p.kind) for p in result.pairs)
    rows = [
        [sets, f"{kinds[sets, 'exact']:,}", f"{kinds[sets, 'near']:,}"]
        for sets in sorted({sets for sets, _ in kinds})
    ]
    relabelled = sum(result.items[p.a].label != result.items[p.b].label for p in result.pairs)
    lines = [
        f"## Duplicates: {len(result.pairs):,} pair(s)",
        "",
        _table(["sets", "exact", "near"], rows),
        "",
        f"{relabelled} pair(s) carry different class labels. All pairs: `duplicates.csv`.",
        "",
        f"![duplicate pairs, leaks first]({DUPLICATES_PNG})",
    ]
    if other := [p for p in result.pairs if not p.leak]:
        lines += ["", "### Pairs within one set or between evaluation sets", ""]
        lines += _pair_table(result, other)
    return lines


def _outliers(result: AuditResult, top: int) -> list[str]:
    order = result.outliers(top)
    if not order:
        return ["## Outliers: no class large enough to score"]
    rows = [
        [
            str(rank),
            f"{result.scores[i]:.1f}",
            result.items[i].set,
            f"`{result.items[i].id}`",
            result.items[i].label,
            top_deviations(result.deviations[i], result.feature_names),
        ]
        for rank, i in enumerate(order, start=1)
    ]
    if result.config.member:
        space = (
            f"the {len(result.feature_names)} penultimate features of the zoo member "
            f"`{result.config.member}` (standardised)"
        )
    else:
        space = (
            f"the {len(FEATURE_NAMES)} colour and texture statistics (RGB and HSV mean and "
            "spread, a 27-cell colour histogram, gradient and Laplacian statistics, "
            "standardised); `share RGB=MLH` is the share of pixels with red in the middle, "
            "green in the low and blue in the high third of 0–255, beyond the first 1% (stray "
            "pixels do not count)"
        )
    return [
        f"## Outliers: the top {len(order)} of {result.name}",
        "",
        f"Score: Mahalanobis distance of an image in {space} from its class centre, under a "
        "Ledoit-Wolf shrunk class covariance. The median image scores "
        f"{np.nanmedian(result.scores):.1f}. All scores: `outliers.csv`.",
        "",
        _table(["rank", "score", "set", "image", "class", "what sets it apart"], rows),
        "",
        f"![top outliers]({OUTLIERS_PNG})",
    ]


def _unreadable(result: AuditResult) -> list[str]:
    if not result.unreadable:
        return ["## Unreadable and skipped files: none"]
    rows = [[u.dataset, f"`{u.id}`", u.reason] for u in result.unreadable]
    return [
        f"## Unreadable and skipped files: {len(result.unreadable)}",
        "",
        "No model sees these files: the adapter skips them, or they fail to decode.",
        "",
        _table(["dataset", "file", "reason"], rows),
    ]


def _balance(result: AuditResult) -> list[str]:
    """Per dataset: images per class and split (splits of the audited dataset only)."""
    counts = Counter((it.dataset, it.set, it.label) for it in result.items)
    lines = ["## Class balance"]
    for name in result.roots:
        mine = [it for it in result.items if it.dataset == name]
        splits = list(dict.fromkeys(it.set for it in mine)) if name == result.name else []
        classes = ordered([it.label for it in mine])
        totals = Counter(it.label for it in mine)
        rows = [
            [c, *(f"{counts[name, s, c]:,}" for s in splits), f"{totals[c]:,}"]
            + [f"{totals[c] / len(mine):.1%}"]
            for c in classes
        ]
        every = Counter(it.set for it in mine)
        rows.append(["**all**", *(f"{every[s]:,}" for s in splits), f"{len(mine):,}", "100%"])
        lines += ["", f"### {name}", "", _table(["class", *splits, "total", "share"], rows)]
    return lines


def _sizes(result: AuditResult) -> list[str]:
    lines = ["## Image sizes (width × height, read from the file headers)"]
    for name, sizes in result.sizes.items():
        if not sizes:
            lines += ["", f"### {name}: no readable header"]
            continue
        total = sizes.total()
        common = sizes.most_common()
        rows = [[f"{w}×{h}", f"{n:,}", f"{n / total:.1%}"] for (w, h), n in common[:TOP_SIZES]]
        if rest := common[TOP_SIZES:]:
            n = sum(k for _, k in rest)
            rows.append([f"{len(rest)} other sizes", f"{n:,}", f"{n / total:.1%}"])
        widths, heights = zip(*sizes, strict=True)
        span = f"widths {min(widths)}–{max(widths)}, heights {min(heights)}–{max(heights)}"
        lines += ["", f"### {name}: {len(sizes)} distinct sizes; {span}", ""]
        lines.append(_table(["size", "images", "share"], rows))
    return lines


def _pair_table(result: AuditResult, pairs: list[Pair]) -> list[str]:
    rows = []
    for rank, p in enumerate(pairs[:MAX_ROWS], start=1):
        a, b = result.items[p.a], result.items[p.b]
        rows.append(
            [str(rank), p.kind, str(p.distance)]
            + [a.set, f"`{a.id}`", a.label, b.set, f"`{b.id}`", b.label]
        )
    head = ["#", "kind", "bits", "set", "image", "class", "set", "image", "class"]
    lines = [_table(head, rows)]
    if len(pairs) > MAX_ROWS:
        lines += ["", f"… and {len(pairs) - MAX_ROWS:,} more in `duplicates.csv`."]
    return lines


def _sets(result: AuditResult, p: Pair) -> str:
    """``train ↔ test`` for a pair across sets, ``within train`` for one inside a set."""
    a, b = result.items[p.a].set, result.items[p.b].set
    return f"within {a}" if a == b else f"{a} ↔ {b}"


def _pair_tile(result: AuditResult, p: Pair) -> PairTile:
    a, b = result.items[p.a], result.items[p.b]
    what = "exact" if p.kind == "exact" else f"near, {p.distance} bits"
    header = f"{'LEAK ' if p.leak else ''}{a.set} / {b.set}: {what}"
    return PairTile(header, _tile(a, a.set), _tile(b, b.set), p.leak)


def _tile(item: Item, last: str) -> Tile:
    return Tile(item.path, (Path(item.id).name, item.label, last))


def _cells(item: Item) -> list[str]:
    return [item.dataset, item.set, item.id, item.label]


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _csv(rows: list[list[object]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()
