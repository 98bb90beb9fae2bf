"""``python -m pipeline.export``: a member or an ensemble as an ONNX model a lab can ship
(the graphs and their contract: ``pipeline.inference.onnx_bundle``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.commands import options as opts
from pipeline.errors import user_errors
from pipeline.inference.onnx_bundle import export


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.export",
        "Export a trained member or a saved ensemble as ONNX (uint8 RGB images in, "
        "calibrated probabilities out), with its preprocessing contract in model.json. A "
        "member trained with stain normalisation ships stain.py: map images onto its stain "
        "with it (model.json: preprocessing.stain_norm) before the graph.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    opts.option(which, "--member")
    opts.option(
        which,
        "--ensemble",
        help=opts.MEANINGS["--ensemble"] + ", whose members share one input size",
    )
    opts.add_out(p)
    opts.add_tag(p)
    p.add_argument(
        "--dest", type=Path, help="output folder (default: OUT/zoo/export/<dataset>/<name>)"
    )
    opts.add_debug(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kind, name = ("member", args.member) if args.member else ("ensemble", args.ensemble)
    try:
        folder = export(args.out, name, kind, args.tag, args.dest)
    except (FileNotFoundError, ValueError) as exc:
        print(f"pipeline.export: {exc}", file=sys.stderr)
        return 2
    model_file = folder / "model.onnx"
    size = model_file.stat().st_size / 2**20
    print(f"{name}: {model_file} ({size:.1f} MiB); contract: {folder / 'model.json'}")
    return 0
