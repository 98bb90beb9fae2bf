"""``python -m pipeline.reference``: pack a trained zoo into a reference zoo for the repository."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.commands import options as opts
from pipeline.errors import user_errors
from pipeline.names import plain_name
from pipeline.ranking.reference import pack, reference_root
from pipeline.runs.layout import Layout


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.reference",
        "Pack the zoo under --out into a reference zoo: one xz archive of its submissions, "
        "meta.json files, histories, metrics and tables, with the answer keys of its sets frozen "
        "from the datasets (which must be on this machine), and no weights. The leaderboard "
        "shows every reference zoo under zoo/reference/ beside the user's own. A zoo holding "
        "a competition is refused until the competition is revealed.",
    )
    opts.add_out(p)
    opts.add_tag(p, opts.MEANINGS["--tag"] + " (default: the only one under OUT/submissions)")
    opts.option(p, "--reference", required=True, metavar="NAME")
    p.add_argument(
        "--into",
        type=Path,
        metavar="DIR",
        help="where reference zoos live (default: the repository's zoo/reference)",
    )
    opts.add_debug(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = plain_name(args.reference, "--reference")
    tag = Layout(args.out).dataset_tag(args.tag)
    into = args.into or reference_root()
    archive, count = pack(args.out, tag, into / name)
    print(f"{archive}: {count} files, {archive.stat().st_size / 1e6:.2f} MB")
    if into.resolve() == reference_root().resolve():
        print(
            f"note: {archive.parent} is in the repository's zoo/reference/: every leaderboard "
            "app of this checkout offers it at once (outside competition mode), with every "
            "test label of its sets, and a commit publishes it",
            file=sys.stderr,
        )
    return 0
