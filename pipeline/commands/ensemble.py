"""``python -m pipeline.ensemble``: ensembles of the zoo's members, chosen on validation only."""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.commands import options as opts
from pipeline.ensembling.build import METHODS, Ensemble, build
from pipeline.ensembling.candidates import Candidate, load_candidates, pool_seeds
from pipeline.ensembling.entry import save_ensemble
from pipeline.ensembling.selection import OOF_COLUMN, chosen_on_validation, summary
from pipeline.errors import user_errors
from pipeline.evaluation.answers import AnswerKeys, keys_of_zoo
from pipeline.evaluation.metrics import accuracy
from pipeline.evaluation.scoring import AnswerKey, score
from pipeline.evaluation.stats import bootstrap_ci, paired_bootstrap
from pipeline.io import write_text
from pipeline.names import ensemble_name
from pipeline.runs.entry import check_kind
from pipeline.runs.layout import Layout
from pipeline.runs.tracking import make_tracker


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.ensemble",
        "Build vote, soft, weighted, greedy and stacking ensembles of the zoo's "
        "members. Members and weights are chosen on the validation set alone; every ensemble "
        "is written back as submissions in the members' format. Fitted methods (weighted, "
        "greedy, stack) are also scored out of fold on validation (5 stratified folds), and the "
        "member and ensemble chosen on validation are printed last.",
    )
    opts.add_out(p)
    opts.add_tag(p, opts.MEANINGS["--tag"] + " (default: the only one under OUT/submissions)")
    p.add_argument("--method", default="all", choices=[*METHODS, "all"])
    p.add_argument(
        "--top",
        type=int,
        default=4,
        help="candidates: the K best members by validation accuracy (0: all members)",
    )
    opts.option(p, "--members", help=opts.MEANINGS["--members"] + ", instead of --top")
    pool = p.add_argument(
        "--pool-seeds",
        action="store_true",
        help="average the seeds of one architecture and recipe into one candidate",
    )
    opts.renamed(p, "--seeds", pool, lambda v: v == "pool", choices=["apart", "pool"])
    p.add_argument("--greedy-size", type=int, default=10, help="greedy: picks (with replacement)")
    opts.option(p, "--seed", type=int, default=0, help="stacking folds and bootstrap")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    opts.add_tracking(p)
    opts.add_debug(p)
    return p


def merged(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """This run's rows over an earlier table's: ensembles of other runs (another ``--top``)
    stay, rows of the same name are replaced. An unreadable earlier table is replaced whole."""
    try:
        old = pd.read_csv(path)
    except (OSError, ValueError):
        return table
    if not {"name", "kind"} <= set(old.columns):
        return table
    earlier = old[old["kind"].str.startswith("ensemble") & ~old["name"].isin(table["name"])]
    ensemble = table["kind"].str.startswith("ensemble")
    return pd.concat([table[~ensemble], earlier, table[ensemble]], ignore_index=True)


def answer_key(candidate: Candidate, set_name: str, keys: AnswerKeys) -> AnswerKey:
    source = candidate.meta.source(set_name)
    if source is None:
        raise SystemExit(
            f"{candidate.folder / 'meta.json'} does not say where the answers of {set_name!r} "
            "come from (no 'sets'): retrain the member with this version of pipeline.zoo"
        )
    return keys.answers(source)


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tracker = make_tracker(args, args.out)  # a wrong URI stops the run before anything is built
    started = time.perf_counter()
    layout = Layout(args.out)
    tag = layout.dataset_tag(args.tag)
    candidates = load_candidates(layout.submissions(tag))
    if args.pool_seeds:
        candidates = pool_seeds(candidates)
    top = None if args.top == 0 else args.top
    scope = f"top{args.top}" if top else "all"
    if args.members:
        wanted = opts.split_names(args.members)
        known = {c.name: c for c in candidates}
        missing = [m for m in wanted if m not in known]
        if missing:
            raise SystemExit(f"unknown member(s) {missing}; known: {', '.join(known)}")
        candidates, top, scope = [known[m] for m in wanted], None, "custom"
    classes = candidates[0].sets["val"].classes
    keys = keys_of_zoo(args.out)  # a packed zoo's frozen keys where it has them
    val_key = answer_key(candidates[0], "val", keys).labels
    y_val = np.array([classes.index(val_key[i]) for i in candidates[0].sets["val"].ids])

    ensembles = [
        build(
            m,
            candidates,
            y_val,
            ensemble_name(m, scope, args.pool_seeds),
            top,
            args.greedy_size,
            args.seed,
        )
        for m in (METHODS if args.method == "all" else [args.method])
    ]
    for ens in ensembles:  # every name is checked before any is written
        check_kind(layout.submission(tag, ens.name), "ensemble")
    for ens in ensembles:
        top_k = None if scope in ("all", "custom") else args.top
        save_ensemble(args.out, ens, tag, classes, top_k, args.seed, keys, y_val)
        if tracker is not None:
            tracker.log_ensemble(args.out, tag, ens.name)
        if adapted := sorted(p.parent.name for p in layout.meta_files(tag)
                             if p.parent.name.startswith(ens.name + "+")):  # fmt: skip
            warnings.warn(
                f"{', '.join(adapted)} adapted the earlier {ens.name}: redo them with "
                f"python -m pipeline.adapt --members {ens.name} --adapt ...",
                stacklevel=1,
            )

    table = report(candidates, ensembles, keys, y_val, args)
    table_file = layout.ensembles_table(tag)
    whole = merged(table_file, table)
    chosen = chosen_on_validation(whole)  # over the zoo's table: other runs' ensembles too
    picked = {row["name"] for row in (chosen.member, chosen.ensemble) if row is not None}
    whole = whole.assign(chosen_on_val=whole["name"].isin(picked))
    table = table.assign(chosen_on_val=table["name"].isin(picked))
    write_text(table_file, whole.to_csv(index=False))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep=""))
    print(f"\nover {table_file}:", *summary(chosen), sep="\n")
    print(
        f"\n{len(ensembles)} ensemble(s) of {len(candidates)} candidates in "
        f"{time.perf_counter() - started:.1f} s; submissions in {layout.submissions(tag)}"
    )
    return 0


def report(
    candidates: list[Candidate],
    ensembles: list[Ensemble],
    keys: AnswerKeys,
    y_val: np.ndarray,
    args: argparse.Namespace,
) -> pd.DataFrame:
    """Validation and test scores of members and ensembles (a fitted ensemble's out-of-fold
    validation accuracy too), test accuracy with a bootstrap 95% interval, and each ensemble's
    gain over the member chosen on validation on test, with a paired bootstrap 95% interval."""
    classes = candidates[0].sets["val"].classes
    has_test = all("test" in c.sets for c in candidates)
    if has_test:
        test_answers = answer_key(candidates[0], "test", keys)
        y_test = np.array(
            [classes.index(test_answers.labels[i]) for i in candidates[0].sets["test"].ids]
        )

    def row(name: str, kind: str, val: np.ndarray, test: np.ndarray | None) -> dict:
        out = {"name": name, "kind": kind, "val_acc": accuracy(val, y_val)}
        if test is not None:
            m = score(candidates[0].sets["test"].ids, test, classes, test_answers)
            _, lo, hi = bootstrap_ci(test.argmax(1) == y_test, args.bootstrap, args.seed)
            out |= {"test_acc": m["accuracy"], "test_ci_low": lo, "test_ci_high": hi,
                    "test_macro_f1": m["macro_f1"]}  # fmt: skip
        return out

    rows = [
        row(c.name, "member", c.probs("val"), c.probs("test") if has_test else None)
        for c in candidates
    ]
    chosen = chosen_on_validation(pd.DataFrame(rows)).member
    best = next(c for c in candidates if c.name == chosen["name"])
    if has_test:
        best_correct = best.probs("test").argmax(1) == y_test
    for ens in ensembles:
        test = ens.predict("test") if has_test else None
        r = row(ens.name, f"ensemble ({len(ens.members)})", ens.predict("val"), test)
        r[OOF_COLUMN] = np.nan if ens.oof is None else accuracy(ens.oof, y_val)
        if test is not None:
            diff, lo, hi = paired_bootstrap(
                test.argmax(1) == y_test, best_correct, args.bootstrap, args.seed
            )
            r |= {"test_gain_vs_best": diff, "gain_ci_low": lo, "gain_ci_high": hi}
        rows.append(r)
    return pd.DataFrame(rows)
