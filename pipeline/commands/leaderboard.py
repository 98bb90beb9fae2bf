"""``python -m pipeline.leaderboard``: the leaderboard as a Markdown or CSV table on stdout."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import pandas as pd

from pipeline.commands import options as opts
from pipeline.data.cache import DEFAULT_CACHE_DIR
from pipeline.data.parts import PARTS
from pipeline.errors import UserError, user_errors
from pipeline.ranking import competition as contest
from pipeline.ranking.bundle import make_bundle
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries, in_domain_test_source
from pipeline.ranking.competition import Settings, board, load_settings, save_settings
from pipeline.ranking.paired import paired_differences
from pipeline.ranking.reference import references
from pipeline.ranking.table import long_table, ranked_table, ranked_test_sets, to_markdown
from pipeline.ranking.teams import add_team, authenticate
from pipeline.runs.layout import Layout

TOKEN_ENV = "WBCZOO_TEAM_TOKEN"


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
    p.add_argument(
        "--part",
        choices=list(PARTS),
        help="score the cross-lab sets that have versioned parts (zoo/splits: BCCD, Tecom) on "
        "this part only: choose on 'choose', report on 'report' (default: whole sets)",
    )
    p.add_argument(
        "--per-seed",
        action="store_true",
        help="one row per seed instead of one per configuration: every member's own scores, "
        "for the spread behind a mean",
    )
    p.add_argument(
        "--against",
        metavar="NAME",
        help="also print each seeded row's difference from NAME (a row of the board, e.g. "
        "resnet18-robust+adabn+tta), paired by seed, with its 95%% interval",
    )
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
        "--deadline",
        metavar="TIME",
        help="UTC time after which submissions are refused, ISO 8601 with its zone (e.g. "
        "2027-01-31T23:59Z)",
    )
    c.add_argument(
        "--bundle",
        type=Path,
        metavar="DIR",
        help="with --competition: write the participants' test bundle of --tag's test set to "
        "DIR (images under random ids, a sample submission; no labels) and keep its key in "
        "OUT/competition/<dataset>/",
    )
    c.add_argument(
        "--add-team",
        metavar="NAME",
        help="register a team and print its token (shown this once, stored only hashed)",
    )
    c.add_argument(
        "--submit",
        type=Path,
        metavar="FILE",
        help="submit FILE for --tag's competition as --team (token: --token or "
        f"{TOKEN_ENV}); prints the public score",
    )
    c.add_argument("--team", help="the team a --submit is for")
    c.add_argument("--token", help=f"the team's token (default: ${TOKEN_ENV})")
    c.add_argument(
        "--reveal",
        action="store_true",
        help="end the competition: record each team's final submission, refuse submissions and "
        "setting changes, show the private scores and the shake-up from now on, and exit "
        "(asks for confirmation)",
    )
    c.add_argument("--yes", action="store_true", help="--reveal without asking")
    opts.add_debug(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.reference:
        if args.competition or args.reveal or args.add_team or args.submit:
            raise UserError(
                "a reference zoo is read-only: --competition, --reveal, --add-team and --submit "
                "take --out"
            )
        ref = next(r for r in references() if r.name == args.reference)
        args.out = ref.unpacked(DEFAULT_CACHE_DIR)
    if args.bundle and not args.competition:
        raise UserError("--bundle goes with --competition")
    if args.per_seed and args.against:
        raise UserError("--against pairs the seeds of pooled rows: leave out --per-seed")
    if args.add_team:
        team, token = add_team(args.out, args.add_team)
        print(f"team {team}: token {token}\n(shown only now: hand it to the team)")
        return 0
    if args.submit:
        return submit(args)
    if args.competition or args.reveal:
        return organise(p, args)
    entries = find_entries(args.out)
    if not entries:
        print(f"no submissions under {Layout(args.out).submissions_root}: run pipeline.zoo first",
              file=sys.stderr)  # fmt: skip
        return 1
    scorer = Scorer.of_zoo(args.out, args.part)
    long = long_table(entries, scorer)
    if args.per_seed:  # each entry its own row: seeds are not pooled
        long = long.assign(name=long["entry"])
    datasets = [args.tag] if args.tag else sorted(long["dataset"].unique())
    boards = []
    for dataset in datasets:
        fingerprints = ranked_test_sets(long, dataset)
        split = len(fingerprints) > 1
        if split:
            note = f"{len(fingerprints)} different test sets ({', '.join(fingerprints)})"
            print(f"{dataset}: entries were scored on {note}; each is ranked apart",
                  file=sys.stderr)  # fmt: skip
        boards += [(dataset, t, split) for t in (fingerprints or [None])]
    for i, (dataset, test_set, split) in enumerate(boards):
        table = ranked_table(long, dataset, test_set)
        if args.format == "csv":
            table.insert(0, "dataset", dataset)
            table.insert(1, "test_set", test_set or "")
            print(table.to_csv(index=False, header=i == 0), end="")
        else:
            title = f"{dataset} (test set {test_set})" if split else dataset
            if args.part:
                title += f", cross-lab sets with parts on their {args.part} part"
            print(f"{'' if i == 0 else chr(10)}### {title}\n\n{to_markdown(table)}")
        if args.against:
            print_paired(long, dataset, test_set, args)
    settings = load_settings(args.out)
    if settings is not None and args.format == "markdown":
        print_competition(args.out, settings, datasets)
    return 0


def print_paired(long: pd.DataFrame, dataset: str, test_set: str | None, args) -> None:
    """The ``--against`` table of one board."""
    try:
        paired = paired_differences(long, dataset, args.against, test_set)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.format == "csv":
        paired.insert(0, "against", args.against)
        print(paired.to_csv(index=False), end="")
    else:
        print(f"\n### {dataset}: minus {args.against}, paired by seed\n\n{to_markdown(paired)}")


def organise(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--competition`` (with its settings) and ``--reveal``."""
    try:
        settings = load_settings(args.out)
        if settings is None and not args.competition:
            print(f"{args.out}: competition mode is off; turn it on with --competition",
                  file=sys.stderr)  # fmt: skip
            return 2
        changes = {"public_share": args.public_share, "daily_limit": args.daily_limit,
                   "deadline": args.deadline}  # fmt: skip
        changes = {k: v for k, v in changes.items() if v is not None}
        new = dataclasses.replace(settings or Settings(), **changes)
    except ValueError as exc:  # a bad setting, on the command line or in the file
        p.error(str(exc))
    where = Layout(args.out).competition_settings
    if settings is not None and settings.revealed and (changes or args.bundle):
        raise UserError(
            f"{where}: the competition is revealed, its settings and bundles are frozen "
            "(nothing changed)"
        )
    if args.reveal and not (new.revealed or confirmed(args)):
        print("nothing changed", file=sys.stderr)
        return 1
    if args.bundle:
        bundle(args)
    if new != settings:
        save_settings(args.out, new)
    if args.reveal:
        new = contest.reveal(args.out)
    print(f"competition mode: {dataclasses.asdict(new)} ({where})")
    if args.reveal:
        print_competition(args.out, new, None)
    return 0


def confirmed(args: argparse.Namespace) -> bool:
    """Whether the organiser confirms ``--reveal``: ``--yes``, or yes on a terminal."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UserError(
            "--reveal ends the competition for good (no more submissions, private scores "
            "shown): add --yes to confirm where no terminal asks"
        )
    answer = input(f"Reveal the private scores of {args.out} and end the competition? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def bundle(args: argparse.Namespace) -> None:
    """Write the participants' bundle of a dataset's test set and keep its key."""
    entries = find_entries(args.out)
    dataset = args.tag or Layout(args.out).dataset_tag(None)
    if contest.load_key(args.out, dataset) is not None:
        raise UserError(
            f"{Layout(args.out).competition_key(dataset)}: {dataset} has a competition already; "
            "its submissions are scored with that key (nothing changed)"
        )
    source = in_domain_test_source(entries, dataset)
    if source is None:
        raise UserError(f"{dataset}: no entry says where its test answers come from (--tag)")
    keys = Scorer.of_zoo(args.out).keys
    key = make_bundle(args.bundle, dataset, source, keys.answers(source))
    contest.save_key(args.out, dataset, key)
    print(f"{args.bundle}: {len(key.images)} test images of {dataset} under random ids; the key "
          f"stays in {Layout(args.out).competition_key(dataset)}")  # fmt: skip


def submit(args: argparse.Namespace) -> int:
    """``--submit FILE --team NAME``: one team's submission, scored on the public part."""
    settings = load_settings(args.out)
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if settings is None:
        raise UserError(f"{args.out}: competition mode is off; the organiser turns it on")
    if not args.team or not token:
        raise UserError(f"--submit needs --team and a token (--token or {TOKEN_ENV})")
    team = authenticate(args.out, args.team, token)
    dataset = args.tag or Layout(args.out).dataset_tag(None)
    key = contest.load_key(args.out, dataset)
    if key is None:
        raise UserError(f"{dataset}: no competition bundle yet (the organiser makes it)")
    try:
        record = contest.submit(
            args.out, dataset, team, args.submit.read_bytes(), args.submit.name, key
        )
    except ValueError as exc:  # a malformed file
        raise UserError(str(exc)) from exc
    print(f"{args.submit.name}: submission {record.id} of team {record.team}, public accuracy "
          f"{record.public['accuracy']:.4f}")  # fmt: skip
    return 0


def print_competition(out: Path, settings: Settings, datasets: list | None) -> None:
    """The competition board of every dataset with competition submissions."""
    for dataset in contest.datasets(out):
        if datasets is not None and dataset not in datasets:
            continue
        key = contest.load_key(out, dataset)
        table = board(out, dataset, settings, key.public_set(settings.public_share))
        what = "final board (private scores)" if settings.revealed else "public board"
        print(f"\n### {dataset}: competition, {what}\n\n{to_markdown(table)}")
