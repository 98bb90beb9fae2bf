"""``python -m pipeline.audit``: duplicates, leakage, outliers and bad files of a dataset."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from pipeline.audit.core import AuditConfig, AuditResult, audit
from pipeline.audit.hashing import HASH_BITS
from pipeline.audit.report import write_outputs
from pipeline.data import list_adapters
from pipeline.data.cache import DEFAULT_CACHE_DIR
from pipeline.errors import add_debug_flag, user_errors
from pipeline.helpformat import HelpFormatter
from pipeline.names import plain_name

SHOWN_LEAKS = 10  # leak pairs echoed on stderr; the report lists them all


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.audit",
        description="Audit a dataset before training on it: exact and near-duplicate images "
        "within and across splits and extra datasets (a pair spanning train or val and another "
        "set is reported as LEAKAGE), per-class outliers in a colour/texture feature space, "
        "unreadable and skipped files, class balance per split and image sizes. Writes "
        "OUT/audit-<dataset>/report.md with contact sheets (PNG) and CSVs of all pairs and scores.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--dataset", default="pbc", choices=list_adapters(), help="dataset adapter")
    p.add_argument("--data", type=Path, required=True, help="dataset folder")
    p.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another <class>/<image> folder to search for duplicates across; repeatable",
    )
    p.add_argument("--out", type=Path, default=Path("."), help="writes OUT/audit-<dataset>/")
    p.add_argument(
        "--hash-distance",
        type=int,
        default=12,
        help=f"near duplicates: at most this many of the {HASH_BITS} perceptual-hash bits differ",
    )
    p.add_argument("--top", type=int, default=24, help="outliers listed and drawn")
    p.add_argument("--sheet-pairs", type=int, default=24, help="duplicate pairs drawn")
    p.add_argument("--size", type=int, default=64, help="decoded image size for hashes, features")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="decoded-image cache (WBCZOO_CACHE)",
    )
    p.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="decoding processes"
    )
    p.add_argument(
        "--member",
        help="score outliers in this zoo member's feature space (penultimate layer) instead of "
        "colour/texture statistics, e.g. resnet18-fast-s0",
    )
    p.add_argument("--zoo-out", type=Path, default=Path("."), help="the zoo's --out (for --member)")
    p.add_argument("--fail-on-leakage", action="store_true", help="exit 1 if any pair leaks")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_debug_flag(p)
    return p


def parse_also(values: list[str]) -> dict[str, Path]:
    also: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--also takes NAME=PATH, got {value!r}")
        plain_name(name, "--also name")
        if name in also:
            raise SystemExit(f"--also name {name!r} given twice")
        also[name] = Path(path)
    return also


@user_errors
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if not 0 <= args.hash_distance < HASH_BITS:
        raise SystemExit(f"--hash-distance must be in [0, {HASH_BITS})")
    started = time.perf_counter()
    config = AuditConfig(
        adapter=args.dataset,
        data=args.data,
        also=parse_also(args.also),
        hash_distance=args.hash_distance,
        size=args.size,
        cache_dir=args.cache_dir,
        workers=args.workers,
        progress=not args.no_progress,
        member=args.member,
        zoo_out=args.zoo_out,
    )
    result = audit(config)
    folder = args.out / f"audit-{result.name}"
    command = shlex.join(["python", "-m", "pipeline.audit", *argv])
    write_outputs(result, folder, command, args.top, args.sheet_pairs)
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


if __name__ == "__main__":
    sys.exit(main())
