"""``python -m pipeline.adapt``: adapted entries of trained members, scored beside them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from pipeline.adapt.entries import adapt_member
from pipeline.adapt.methods import parse_adaptations
from pipeline.data.cache import DEFAULT_CACHE_DIR
from pipeline.data.store import ImageStore
from pipeline.errors import add_debug_flag, user_errors
from pipeline.helpformat import HelpFormatter


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.adapt",
        description="Adapt trained members to each evaluation set at test time and write each "
        "adaptation as its own leaderboard entry (<member>+adabn, ...). AdaBN re-estimates "
        "BatchNorm statistics on the set's own images; TENT also tunes the BatchNorm affine "
        "parameters by entropy minimisation; both are transductive (they look at the set's "
        "images, never its labels). TTA averages the 8 flips and 90 degree turns.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--members", required=True, help="comma-separated trained members")
    p.add_argument(
        "--adapt",
        default="adabn,adabn+tta",
        help="comma-separated adaptations: adabn, tent, tta, or one method with tta (adabn+tta)",
    )
    p.add_argument("--out", type=Path, default=Path("."), help="the zoo's output root")
    p.add_argument("--dataset", help="the training dataset, where a name exists for several")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="decode cache")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_debug_flag(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        adaptations = parse_adaptations(args.adapt)
    except ValueError as exc:
        raise SystemExit(f"--adapt: {exc}") from None
    store = ImageStore(args.cache_dir, progress=False)
    rows = []
    for name in (n.strip() for n in args.members.split(",") if n.strip()):
        rows += adapt_member(args.out, name, adaptations, store, args.dataset, args.device)
    table = pd.DataFrame([vars(r) for r in rows])
    wide = table.pivot_table(
        index="entry", columns="set_name", values=["accuracy", "balanced_accuracy"], sort=False
    )
    wide.columns = [f"{s}_{'bacc' if m == 'balanced_accuracy' else 'acc'}" for m, s in wide.columns]
    print(wide.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\nentries written under {args.out / 'submissions'}; rank them with "
          "python -m pipeline.leaderboard")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
