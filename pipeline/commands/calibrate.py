"""``python -m pipeline.calibrate``: fit (or refit) the temperature of members already trained.

The zoo calibrates every member it trains; this command brings members trained before that up
to date. A member without ``raw/`` has its submissions moved there first (they are the
uncalibrated ones), so running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.commands import options as opts
from pipeline.errors import user_errors
from pipeline.evaluation.answers import AnswerKeys
from pipeline.evaluation.calibration import FIT_SET, Calibration, calibrate_entry
from pipeline.io import read_json
from pipeline.runs.entry import EntryWriter
from pipeline.runs.layout import METRICS_FILE, RAW_FOLDER, EntryFiles, Layout
from pipeline.runs.metadata import read_entry
from pipeline.runs.submissions import read_submission


def keep_raw(files: EntryFiles) -> None:
    """Move a pre-calibration member's ``<set>.csv`` files to ``raw/`` (once: never over an
    existing uncalibrated copy)."""
    if (files.folder / RAW_FOLDER).is_dir():
        return
    (files.folder / RAW_FOLDER).mkdir()
    for set_name, csv in files.prediction_files().items():
        os.replace(csv, files.raw(set_name))


def calibrate_member(out: Path, dataset: str, name: str, keys: AnswerKeys) -> Calibration:
    """Calibrate one member's submissions; record the temperature in its meta.json and the
    reports in its metrics.json."""
    files = Layout(out).entry(dataset, name)
    meta = read_entry(files.meta)
    sources = meta.sets
    if not sources.get(FIT_SET):
        raise ValueError(f"{files.meta} does not say where the {FIT_SET} answers are")
    keep_raw(files)
    # the first versions wrote no classes: the columns of the submissions say them
    classes = meta.classes or read_submission(files.raw(FIT_SET)).classes
    entry = EntryWriter.open(out, dataset, name, meta.kind, classes)
    calib = calibrate_entry(entry, keys.of_sets(sources))
    meta = meta.with_changes(calibration=calib.meta)
    metrics_file = Layout(out).member(dataset, name) / METRICS_FILE
    if not metrics_file.is_file():
        entry.finish(meta)
        return calib
    metrics = read_json(metrics_file)
    summary = {**metrics["summary"], **calib.summary()}
    entry.finish(meta, metrics_file, {"summary": summary, "sets": calib.merge(metrics["sets"])})
    return calib


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.calibrate",
        "Fit each trained member's temperature on its validation submission and "
        "rewrite its submissions calibrated (the uncalibrated ones stay in raw/). Rebuild "
        "ensembles afterwards with pipeline.ensemble.",
    )
    opts.add_out(p)
    opts.add_tag(p, opts.MEANINGS["--tag"] + " (default: every one)")
    opts.option(p, "--members", help=opts.MEANINGS["--members"] + " (default: every member)")
    opts.add_debug(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    wanted = set(opts.split_names(args.members))
    keys = AnswerKeys()
    found = 0
    for meta_file in Layout(args.out).meta_files(args.tag):
        folder = meta_file.parent
        kind = read_entry(meta_file).kind
        if (wanted and folder.name not in wanted) or kind != "member":
            continue
        found += 1
        calib = calibrate_member(args.out, folder.parent.name, folder.name, keys)
        eces = ", ".join(
            f"{name} ECE {r['ece_raw']:.4f} -> {r['ece']:.4f}" for name, r in calib.sets.items()
        )
        print(f"{folder.parent.name}/{folder.name}: T = {calib.temperature:.3f}; {eces}")
    if not found:
        print(f"no member to calibrate under {Layout(args.out).submissions_root}", file=sys.stderr)
        return 2
    return 0
