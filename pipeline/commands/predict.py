"""``python -m pipeline.predict``: classify new cell images and count the differential."""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.commands import options as opts
from pipeline.data.cache import decode
from pipeline.data.cellcrop import CropSpec
from pipeline.data.records import list_images
from pipeline.errors import UserError, user_errors
from pipeline.evaluation.calibration import accepted
from pipeline.inference.adaptation import Adaptation, few_images_warning
from pipeline.inference.load import (
    LoadedEnsemble,
    adapted_temperature,
    load_ensemble,
    load_member,
    member_probs,
)
from pipeline.io import write_text

RARE_SHARE = 0.02  # below this share, or with fewer than RARE_COUNT cells, a percentage is shaky
RARE_COUNT = 5


def decode_all(
    files: list[Path], size: int, crop: CropSpec
) -> tuple[np.ndarray, list[Path], dict[Path, str]]:
    """Decoded images of the readable files (cropped as the member was trained); unreadable
    ones are returned with the reason."""
    images, readable, failed = [], [], {}
    for f in tqdm(files, desc=f"decode @{size}px", unit="img", leave=False, disable=None):
        try:
            images.append(decode(f, size, crop)[0])
            readable.append(f)
        except Exception as exc:  # a broken file is reported, never fatal
            failed[f] = f"{type(exc).__name__}: {exc}"
    shape = (0, size, size, 3)
    return (np.stack(images) if images else np.zeros(shape, np.uint8)), readable, failed


def wilson(count: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion: honest for small counts, unlike count/total ± SE."""
    if total == 0:
        return math.nan, math.nan
    p = count / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def differential(predicted: list[str], classes: tuple[str, ...]) -> pd.DataFrame:
    """Count and percent per class, a 95% interval, and a flag where the count is too small."""
    total = len(predicted)
    rows = []
    for c in classes:
        n = predicted.count(c)
        lo, hi = wilson(n, total)
        rare = total > 0 and (n < RARE_COUNT or n / total < RARE_SHARE)
        rows.append(
            {
                "class": c,
                "count": n,
                "percent": 100 * n / total if total else math.nan,
                "ci95_low": 100 * lo,
                "ci95_high": 100 * hi,
                "flag": "rare: few cells, percent uncertain" if rare else "",
            }
        )
    return pd.DataFrame(rows)


def share(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {text}")
    return value


def to_review(confidence: np.ndarray, below: float | None, coverage: float | None) -> np.ndarray:
    """Cells for a human: confidence under ``below``, or all but the ``coverage`` share of most
    confident cells; none when neither is given."""
    if below is not None:
        return confidence < below
    if coverage is not None:
        return ~accepted(confidence, coverage)
    return np.zeros(len(confidence), dtype=bool)


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.predict",
        "Classify cell images with a zoo member or a saved ensemble; write one row "
        "per image (class and calibrated probability per class) and the differential count.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    opts.option(which, "--member")
    opts.option(which, "--ensemble")
    p.add_argument("images", nargs="+", type=Path, help="image files and/or folders")
    opts.add_out(p)
    opts.add_tag(p)
    p.add_argument("--csv", type=Path, default=Path("predictions.csv"), help="per-image output")
    opts.add_device(p)
    p.add_argument(
        "--uncalibrated",
        action="store_true",
        help="probabilities without the temperature fitted on validation (an ensemble's members "
        "stay calibrated, as it was fitted on them)",
    )
    review = p.add_mutually_exclusive_group()
    review.add_argument(
        "--review-below",
        type=share,
        metavar="P",
        help="send cells whose top probability is below P to human review; the differential "
        "counts the accepted cells",
    )
    review.add_argument(
        "--coverage",
        type=share,
        metavar="C",
        help="accept the C share of most confident cells (e.g. 0.9), send the rest to review",
    )
    opts.option(
        p,
        "--adapt",
        default="none",
        help="adapt to these images first: adabn (BatchNorm statistics of the given images), "
        "tent (also entropy minimisation), either with +tta (average the 8 flips and 90 degree "
        "turns), or tta alone; for a batch of cells from one new lab or scanner",
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="with --adapt: also average the 8 flips "
        "and 90 degree turns (the same as --adapt METHOD+tta)",
    )
    opts.add_debug(p)
    return p


def one_adaptation(text: str, tta: bool) -> Adaptation:
    """``--adapt`` names one adaptation here; ``--tta`` adds TTA to it."""
    adaptations = opts.parse_adapt(text)
    if len(adaptations) > 1:
        raise UserError(f"--adapt takes one adaptation here, e.g. adabn+tta, not {text!r}")
    if adaptations[0].shot or adaptations[0].outputs:
        raise UserError(
            f"--adapt {text}: shot, lame, em and bbse need the member's validation set; "
            "here take adabn, tent or tta, or write adapted entries with python -m pipeline.adapt"
        )
    return dataclasses.replace(adaptations[0], tta=adaptations[0].tta or tta)


def adapted_temperatures(
    out: Path, members: list, ensemble: LoadedEnsemble | None, adaptation: Adaptation
) -> dict[str, float]:
    """Entry name -> the temperature of its adapted entry for ``adaptation``, fitted on
    validation adapted the same way: plain temperatures suit plain outputs, which TTA smooths
    and AdaBN shifts. An entry without one keeps its plain temperature, with a warning."""
    if not adaptation.active:
        return {}
    dataset = members[0].dataset
    names = [m.name for m in members] + ([ensemble.name] if ensemble else [])
    found = {n: adapted_temperature(out, dataset, n, adaptation) for n in names}
    if missing := [n + adaptation.suffix for n, t in found.items() if t is None]:
        warnings.warn(
            f"no calibrated adapted entry {', '.join(missing)}: calibrated with the plain "
            f"temperature; make it with python -m pipeline.adapt --adapt "
            f"{adaptation.suffix.lstrip('+')} to use one fitted on adapted validation outputs",
            stacklevel=2,
        )
    return {n: t for n, t in found.items() if t is not None}


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    calibrated = not args.uncalibrated
    adaptation = one_adaptation(args.adapt, args.tta)

    if args.member:
        members = [load_member(args.out, args.member, args.tag, args.device)]
        ensemble = None
    else:
        ensemble = load_ensemble(args.out, args.ensemble, args.tag, args.device)
        members = ensemble.members
    classes = members[0].classes
    files = list_images(args.images)
    decoded = {}
    failed: dict[Path, str] = {}
    for size, crop in {(m.image_size, m.crop) for m in members}:
        decoded[size, crop] = decode_all(files, size, crop)
        failed |= decoded[size, crop][2]
    readable = [f for f in files if f not in failed]
    if warning := few_images_warning(len(readable), "--adapt", [adaptation]):
        warnings.warn(warning, stacklevel=1)
    temperatures = adapted_temperatures(args.out, members, ensemble, adaptation)
    probs = []
    for m in members:
        images, names, _ = decoded[m.image_size, m.crop]
        keep = [i for i, f in enumerate(names) if f not in failed]
        probs.append(member_probs(m, images[keep], calibrated or ensemble is not None, adaptation,
                                  temperatures.get(m.name)))  # fmt: skip
    if ensemble:
        final = ensemble.combine(probs, calibrated, temperatures.get(ensemble.name))
    else:
        final = probs[0]

    predicted = [classes[i] for i in final.argmax(axis=1)] if len(final) else []
    confidence = final.max(axis=1) if len(final) else np.zeros(0)
    review = to_review(confidence, args.review_below, args.coverage)
    selective = args.review_below is not None or args.coverage is not None
    rows = pd.DataFrame(final, columns=list(classes))
    rows.insert(0, "file", [str(f) for f in readable])
    rows.insert(1, "class", predicted)
    if selective:
        rows["confidence"] = confidence
        rows["review"] = review
    buf = io.StringIO()
    rows.to_csv(buf, index=False, float_format="%.6g")
    write_text(args.csv, buf.getvalue())
    counts = differential([c for c, r in zip(predicted, review, strict=True) if not r], classes)
    if selective:
        sent = int(review.sum())
        counts.loc[len(counts)] = {
            "class": "(review)",
            "count": sent,
            "percent": 100 * sent / len(review) if len(review) else math.nan,
            "ci95_low": math.nan,
            "ci95_high": math.nan,
            "flag": "sent to human review: percent of all cells, not in the differential",
        }
    counts_file = args.csv.with_name(f"{args.csv.stem}-counts.csv")
    write_text(counts_file, counts.to_csv(index=False, float_format="%.2f"))

    model = args.member or f"{args.ensemble} ({len(members)} members)"
    print(f"{len(readable)} cells classified by {model}; per image: {args.csv}")
    if selective:
        rule = (
            f"top probability below {args.review_below:g}"
            if args.review_below is not None
            else f"outside the {args.coverage:.0%} most confident"
        )
        print(
            f"{len(review) - int(review.sum())} cells accepted, {int(review.sum())} sent to "
            f"review ({rule}); the differential counts the accepted cells:"
        )
    print(counts.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if failed:
        print(f"\n{len(failed)} unreadable file(s) skipped:", file=sys.stderr)
        for f, why in failed.items():
            print(f"  {f}: {why}", file=sys.stderr)
    return 0
