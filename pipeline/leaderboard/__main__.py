"""``python -m pipeline.leaderboard``: the leaderboard as a Markdown or CSV table on stdout."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from pipeline.cli import options as opts
from pipeline.data.cache import DEFAULT_CACHE_DIR
from pipeline.errors import UserError, user_errors
from pipeline.layout import Layout
from pipeline.leaderboard.collect import Contender, find_entries, in_domain_test_source
from pipeline.leaderboard.competition import (
    Settings,
    board,
    load_settings,
    public_set,
    save_settings,
    settings_file,
)
from pipeline.leaderboard.scores import Scorer
from pipeline.leaderboard.table import leaderboard, long_table, ranked_test_sets, to_markdown
from pipeline.reference import references


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.leaderboard",
        "Rank the zoo's members and ensembles on in-domain test accuracy, with "
        "accuracy and balanced accuracy per cross-domain set and the rank shift across labs (by "
        "balanced accuracy). Seeds of one configuration are one row (mean, Student t 95% "
        "interval, n). Entries scored on different test sets are ranked apart.",
    )
    opts.add_out(p)
    opts.add_tag(p, opts.MEANINGS["--tag"] + " (default: every one, a table each)")
    shipped = [r.name for r in references()]
    opts.option(
        p,
        "--reference",
        metavar="NAME",
        choices=shipped,
        help="rank a reference zoo shipped with the repository instead of --out's: "
        + ", ".join(shipped),
    )
    p.add_argument("--format", choices=["markdown", "csv"], default="markdown")
    c = p.add_argument_group("competition mode (leaderboard/README.md)")
    c.add_argument(
        "--competition",
        action="store_true",
        help="turn competition mode on, or change its settings, and exit",
    )
    c.add_argument(
        "--public-share",
        type=float,
        help="share of each class's test images on the public board (default "
        f"{Settings.public_share})",
    )
    c.add_argument(
        "--daily-limit",
        type=int,
        help=f"submissions per team and UTC day (default {Settings.daily_limit})",
    )
    c.add_argument(
        "--reveal",
        action="store_true",
        help="show the private scores and the shake-up from now on, and exit",
    )
    opts.add_debug(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.reference:
        if args.competition or args.reveal:
            raise UserError("a reference zoo is read-only: --competition and --reveal take --out")
        ref = next(r for r in references() if r.name == args.reference)
        args.out = ref.unpacked(DEFAULT_CACHE_DIR)
    if args.competition or args.reveal:
        return organise(p, args)
    entries = find_entries(args.out)
    if not entries:
        print(f"no submissions under {Layout(args.out).submissions_root}: run pipeline.zoo first",
              file=sys.stderr)  # fmt: skip
        return 1
    scorer = Scorer.of_zoo(args.out)
    long = long_table(entries, scorer)
    datasets = [args.tag] if args.tag else sorted(long["dataset"].unique())
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
    settings = load_settings(args.out)
    if settings is not None and args.format == "markdown":
        print_competition(args.out, entries, scorer, settings, datasets)
    return 0


def organise(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--competition`` (with its settings) and ``--reveal``."""
    try:
        settings = load_settings(args.out)
        if settings is None and not args.competition:
            print(f"{args.out}: competition mode is off; turn it on with --competition",
                  file=sys.stderr)  # fmt: skip
            return 2
        changes: dict = {"public_share": args.public_share, "daily_limit": args.daily_limit}
        changes = {k: v for k, v in changes.items() if v is not None}
        if args.reveal:
            changes["revealed"] = True
        settings = dataclasses.replace(settings or Settings(), **changes)
    except ValueError as exc:  # a bad setting, on the command line or in the file
        p.error(str(exc))
    save_settings(args.out, settings)
    print(f"competition mode: {dataclasses.asdict(settings)} ({settings_file(args.out)})")
    if args.reveal:
        print_competition(args.out, find_entries(args.out), Scorer.of_zoo(args.out), settings, None)
    return 0


def print_competition(
    out: Path, entries: list[Contender], scorer: Scorer, settings: Settings, datasets: list | None
) -> None:
    """The competition board of every dataset with competition submissions."""
    for folder in sorted(p for p in (out / "competition").glob("*") if p.is_dir()):
        if datasets is not None and folder.name not in datasets:
            continue
        source = in_domain_test_source(entries, folder.name)
        if source is None:
            print(f"{folder.name}: no entry says where its test answers come from",
                  file=sys.stderr)  # fmt: skip
            continue
        key = scorer.keys.key(source)
        table = board(out, folder.name, settings, public_set(key, settings.public_share))
        what = "final board (private scores)" if settings.revealed else "public board"
        print(f"\n### {folder.name}: competition, {what}\n\n{to_markdown(table)}")


if __name__ == "__main__":
    sys.exit(main())
