"""``python -m pipeline.adapt``: adapted entries of trained members, scored beside them."""

from __future__ import annotations

import argparse

import pandas as pd

from pipeline.adapted.ensembles import adapt_ensemble, ensemble_scores
from pipeline.adapted.members import adapt_member
from pipeline.commands import options as opts
from pipeline.data.store import ImageStore
from pipeline.errors import user_errors
from pipeline.inference.load import find_meta
from pipeline.runs.metadata import EnsembleMeta


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.adapt",
        "Adapt trained members to each evaluation set at test time and write each "
        "adaptation as its own leaderboard entry (<member>+adabn, ...). AdaBN re-estimates "
        "BatchNorm statistics on the set's own images; TENT also tunes the BatchNorm affine "
        "parameters by entropy minimisation; both are transductive (they look at the set's "
        "images, never its labels). SHOT fine-tunes the feature extractor on the set "
        "(information maximisation and its own pseudo-labels, classifier frozen). TTA "
        "averages the 8 flips and 90 degree turns. Then, on calibrated probabilities over the "
        "set's classes: LAME smooths each prediction toward its nearest neighbours' in "
        "feature space; EM (Saerens et al.) or BBSE re-estimate the set's class priors, with "
        "the training lab's from validation. Joined by + they apply in that order "
        "(adabn+shot+tta+em); every method but tta is transductive. An ensemble "
        "is adapted by applying its fitted method to its members' adapted entries (made "
        "first where missing): <ensemble>+adabn+tta.",
    )
    opts.option(
        p,
        "--members",
        required=True,
        help=opts.MEANINGS["--members"] + ", or ensembles, e.g. ens-soft-top4",
    )
    opts.option(
        p,
        "--adapt",
        default="adabn,adabn+tta",
        help="comma-separated adaptations: adabn, tent, shot, tta, lame, em, bbse, or a "
        "combination joined by + (adabn+tta+em); at most one of adabn and tent, one of em and bbse",
    )
    opts.add_out(p)
    opts.add_tag(p)
    opts.add_cache_dir(p)
    opts.add_device(p)
    opts.add_debug(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    adaptations = opts.parse_adapt(args.adapt)
    store = ImageStore(args.cache_dir, progress=False)
    rows = []
    for name in opts.split_names(args.members):
        dataset, meta = find_meta(args.out, name, args.tag)
        if isinstance(meta, EnsembleMeta):
            rows += ensemble_scores(args.out, name, meta, dataset)
            rows += adapt_ensemble(args.out, name, meta, dataset, adaptations, store, args.device)
        else:
            rows += adapt_member(args.out, name, adaptations, store, dataset, args.device)
    table = pd.DataFrame([vars(r) for r in rows])
    wide = table.pivot_table(
        index="entry", columns="set_name", values=["accuracy", "balanced_accuracy"], sort=False
    )
    wide.columns = [f"{s}_{'bacc' if m == 'balanced_accuracy' else 'acc'}" for m, s in wide.columns]
    print(wide.to_string(float_format=lambda v: f"{v:.4f}", na_rep=""))
    print(f"\nentries written under {args.out / 'submissions'}; rank them with "
          "python -m pipeline.leaderboard")  # fmt: skip
    return 0
