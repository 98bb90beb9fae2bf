"""``python -m pipeline.leaderboard``: the leaderboard as a Markdown or CSV table on stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.errors import add_debug_flag, user_errors
from pipeline.helpformat import HelpFormatter
from pipeline.leaderboard.collect import find_entries
from pipeline.leaderboard.scores import Scorer
from pipeline.leaderboard.table import leaderboard, long_table, to_markdown


@user_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.leaderboard",
        description="Rank the zoo's members and ensembles on in-domain test accuracy, with "
        "accuracy and balanced accuracy per cross-domain set and the rank shift across labs (by "
        "balanced accuracy). Seeds of one configuration are one row (mean, Student t 95% "
        "interval, n).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("."), help="the zoo's output root")
    p.add_argument("--dataset", help="training dataset (default: every one, a table each)")
    p.add_argument("--format", choices=["markdown", "csv"], default="markdown")
    add_debug_flag(p)
    args = p.parse_args(argv)
    entries = find_entries(args.out)
    if not entries:
        print(f"no submissions under {args.out / 'submissions'}: run pipeline.zoo first",
              file=sys.stderr)  # fmt: skip
        return 1
    long = long_table(entries, Scorer(args.out / "zoo" / "leaderboard-cache.json"))
    datasets = [args.dataset] if args.dataset else sorted(long["dataset"].unique())
    for i, dataset in enumerate(datasets):
        table = leaderboard(long, dataset)
        if args.format == "csv":
            table.insert(0, "dataset", dataset)
            print(table.to_csv(index=False, header=i == 0), end="")
        else:
            print(f"{'' if i == 0 else chr(10)}### {dataset}\n\n{to_markdown(table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
