"""``python -m pipeline.predict``: classify new cell images and count the differential."""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.adapt.methods import METHODS, Adaptation, adapted_probabilities
from pipeline.data.cache import decode
from pipeline.data.cellcrop import CropSpec
from pipeline.data.records import IMAGE_SUFFIXES
from pipeline.errors import add_debug_flag, user_errors
from pipeline.helpformat import HelpFormatter
from pipeline.io import write_text
from pipeline.members import load_ensemble, load_member, member_input, member_probs

RARE_SHARE = 0.02  # below this share, or with fewer than RARE_COUNT cells, a percentage is shaky
RARE_COUNT = 5


def list_images(paths: list[Path]) -> list[Path]:
    """Image files named directly or found (recursively) in named folders, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return found


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


@user_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.predict",
        description="Classify cell images with a zoo member or a saved ensemble; write one row "
        "per image (class and probability per class) and the differential count.",
        formatter_class=HelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--member", help="a trained member, e.g. resnet18-gavas2021-s0")
    which.add_argument("--ensemble", help="a saved ensemble, e.g. ens-soft-top4")
    p.add_argument("images", nargs="+", type=Path, help="image files and/or folders")
    p.add_argument("--out", type=Path, default=Path("."), help="the zoo's output root")
    p.add_argument("--dataset", help="the training dataset, where a name exists for several")
    p.add_argument("--csv", type=Path, default=Path("predictions.csv"), help="per-image output")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--adapt",
        choices=METHODS,
        default="none",
        help="adapt to these images first: adabn (BatchNorm statistics of the given images) or "
        "tent (also entropy minimisation); for a batch of cells from one new lab or scanner",
    )
    p.add_argument("--tta", action="store_true", help="average the 8 flips and 90 degree turns")
    add_debug_flag(p)
    args = p.parse_args(argv)
    adaptation = Adaptation(args.adapt, args.tta)

    if args.member:
        members = [load_member(args.out, args.member, args.dataset, args.device)]
        ensemble = None
    else:
        ensemble = load_ensemble(args.out, args.ensemble, args.dataset, args.device)
        members = ensemble.members
    classes = members[0].classes
    files = list_images(args.images)
    decoded = {}
    failed: dict[Path, str] = {}
    for size, crop in {(m.image_size, m.crop) for m in members}:
        decoded[size, crop] = decode_all(files, size, crop)
        failed |= decoded[size, crop][2]
    readable = [f for f in files if f not in failed]
    probs = []
    for m in members:
        images, names, _ = decoded[m.image_size, m.crop]
        keep = [i for i, f in enumerate(names) if f not in failed]
        if adaptation.active:
            kept = member_input(m, images[keep])
            rows = np.arange(len(kept))
            probs.append(adapted_probabilities(m.model, kept, rows, m.precision, adaptation))
        else:
            probs.append(member_probs(m, images[keep]))
    final = ensemble.combine(probs) if ensemble else probs[0]

    predicted = [classes[i] for i in final.argmax(axis=1)] if len(final) else []
    rows = pd.DataFrame(final, columns=list(classes))
    rows.insert(0, "file", [str(f) for f in readable])
    rows.insert(1, "class", predicted)
    buf = io.StringIO()
    rows.to_csv(buf, index=False, float_format="%.6g")
    write_text(args.csv, buf.getvalue())
    counts = differential(predicted, classes)
    counts_file = args.csv.with_name(f"{args.csv.stem}-counts.csv")
    write_text(counts_file, counts.to_csv(index=False, float_format="%.2f"))

    model = args.member or f"{args.ensemble} ({len(members)} members)"
    print(f"{len(readable)} cells classified by {model}; per image: {args.csv}")
    print(counts.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if failed:
        print(f"\n{len(failed)} unreadable file(s) skipped:", file=sys.stderr)
        for f, why in failed.items():
            print(f"  {f}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
