"""``python -m pipeline.audit``: duplicates, leakage, outliers and bad files of a dataset."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from pipeline.auditing.core import AuditConfig, AuditResult, audit
from pipeline.auditing.hashing import HASH_BITS
from pipeline.auditing.report import write_outputs
from pipeline.commands import options as opts
from pipeline.errors import UserError, user_errors

SHOWN_LEAKS = 10  # leak pairs echoed on stderr; the report lists them all


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.audit",
        "Audit a dataset before training on it: exact and near-duplicate images "
        "within and across splits and extra datasets (a pair spanning train or val and another "
        "set is reported as LEAKAGE), per-class outliers in a colour/texture feature space, "
        "unreadable and skipped files, class balance per split and image sizes. Writes "
        "report.md with contact sheets (PNG) and CSVs of all pairs and scores to --report "
        "(default: OUT/audit-<dataset>/).",
    )
    opts.add_data(p, required=True)
    extra = opts.add_eval(
        p,
        "another dataset to search for duplicates across: a <class>/<image> folder, or any "
        "adapter (lisc=lisc:/data/LISC); repeatable",
    )
    opts.renamed(p, "--also", extra)
    opts.add_out(p, "the zoo's output root (of --member); the report goes to OUT/audit-<dataset>")
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="the report's folder (default: OUT/audit-<dataset>)",
    )
    p.add_argument(
        "--hash-distance",
        type=int,
        default=12,
        help=f"near duplicates: at most this many of the {HASH_BITS} perceptual-hash bits differ",
    )
    outliers = p.add_argument(
        "--outliers", type=int, default=24, metavar="N", help="outliers listed and drawn"
    )
    opts.renamed(p, "--top", outliers)
    p.add_argument("--sheet-pairs", type=int, default=24, help="duplicate pairs drawn")
    size = opts.option(
        p, "--image-size", type=int, default=64, help="decoded image size for hashes, features"
    )
    opts.renamed(p, "--size", size)
    opts.add_cache_dir(p)
    workers = p.add_argument(
        "--decode-workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        metavar="N",
        help="decoding processes",
    )
    opts.renamed(p, "--workers", workers)
    opts.option(
        p,
        "--member",
        help="score outliers in this trained member's feature space (penultimate layer) "
        "instead of colour/texture statistics, e.g. resnet18-fast-s0",
    )
    opts.renamed(p, "--zoo-out", p._option_string_actions["--out"], dest="zoo_out")
    p.add_argument("--fail-on-leakage", action="store_true", help="exit 1 if any pair leaks")
    opts.add_no_progress(p)
    opts.add_debug(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if not 0 <= args.hash_distance < HASH_BITS:
        raise UserError(f"--hash-distance must be in [0, {HASH_BITS})")
    started = time.perf_counter()
    config = AuditConfig(
        adapter=args.dataset,
        data=args.data,
        extra=opts.parse_eval(args.eval),
        hash_distance=args.hash_distance,
        size=args.image_size,
        cache_dir=args.cache_dir,
        workers=args.decode_workers,
        progress=not args.no_progress,
        member=args.member,
        zoo_out=args.out if args.zoo_out is None else args.zoo_out,
    )
    result = audit(config)
    folder = args.report or args.out / f"audit-{result.name}"
    command = shlex.join(["python", "-m", "pipeline.audit", *argv])
    write_outputs(result, folder, command, args.outliers, args.sheet_pairs)
    warn_leaks(result, folder / "report.md")
    print(
        f"{len(result.items):,} images, {len(result.pairs):,} duplicate pair(s), "
        f"{len(result.leaks):,} leaking, {len(result.unreadable)} unreadable or skipped; "
        f"{folder / 'report.md'} ({time.perf_counter() - started:.1f} s)"
    )
    return 1 if args.fail_on_leakage and result.leaks else 0


def warn_leaks(result: AuditResult, report: Path) -> None:
    """Say it loudly on stderr: a leak makes test numbers optimistic."""
    leaks = result.leaks
    if not leaks:
        return
    lines = [
        f"WARNING: LEAKAGE: {len(leaks)} duplicate pair(s) span a training or validation "
        f"split and another set (see {report}):"
    ]
    for p in leaks[:SHOWN_LEAKS]:
        a, b = result.items[p.a], result.items[p.b]
        lines.append(f"  {p.kind:5} {a.set}:{a.id}  ==  {b.set}:{b.id}")
    if len(leaks) > SHOWN_LEAKS:
        lines.append(f"  … and {len(leaks) - SHOWN_LEAKS} more")
    print("\n".join(lines), file=sys.stderr)
