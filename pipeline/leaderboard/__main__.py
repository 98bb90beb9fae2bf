"""``python -m pipeline.leaderboard``: the leaderboard as a Markdown or CSV table on stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.helpformat import HelpFormatter
from pipeline.leaderboard.collect import find_entries
from pipeline.leaderboard.scores import Scorer
from pipeline.leaderboard.table import leaderboard, long_table, ranked_test_sets, to_markdown


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.leaderboard",
        description="Rank the zoo's members and ensembles on in-domain test accuracy, with "
        "accuracy and balanced accuracy per cross-domain set and the rank shift across labs (by "
        "balanced accuracy). Seeds of one configuration are one row (mean, Student t 95% "
        "interval, n). Entries scored on different test sets are ranked apart.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("."), help="the zoo's output root")
    p.add_argument("--dataset", help="training dataset (default: every one, a table each)")
    p.add_argument("--format", choices=["markdown", "csv"], default="markdown")
    args = p.parse_args(argv)
    entries = find_entries(args.out)
    if not entries:
        print(f"no submissions under {args.out / 'submissions'}: run pipeline.zoo first",
              file=sys.stderr)  # fmt: skip
        return 1
    long = long_table(entries, Scorer(args.out / "zoo" / "leaderboard-cache.json"))
    datasets = [args.dataset] if args.dataset else sorted(long["dataset"].unique())
    boards = []
    for dataset in datasets:
        fingerprints = ranked_test_sets(long, dataset)
        split = len(fingerprints) > 1
        if split:
            note = f"{len(fingerprints)} different test sets ({', '.join(fingerprints)})"
            print(f"{dataset}: entries were scored on {note}; each is ranked apart",
                  file=sys.stderr)  # fmt: skip
        boards += [(dataset, t, split) for t in (fingerprints if split else [None])]
    for i, (dataset, test_set, split) in enumerate(boards):
        table = leaderboard(long, dataset, test_set)
        if args.format == "csv":
            table.insert(0, "dataset", dataset)
            table.insert(1, "test_set", test_set or "")
            print(table.to_csv(index=False, header=i == 0), end="")
        else:
            title = f"{dataset} (test set {test_set})" if split else dataset
            print(f"{'' if i == 0 else chr(10)}### {title}\n\n{to_markdown(table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
