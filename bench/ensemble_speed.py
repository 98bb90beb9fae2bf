"""Benchmark: `python -m pipeline.ensemble --method all` on a generated zoo of 28 members.

Members are synthetic submissions (accuracy 80-97%) for the real PBC validation and test
images, so the answer keys come from the real split file. The baseline is the floor of the
job, reading and validating the members' CSV files; the ratio says what the methods add. Both
run as users run them, in a fresh interpreter each (its start counts in both).

    python -m bench.ensemble_speed --data ../shared/data/pbc --members 28
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.data import load_dataset
from pipeline.runs.submissions import write_submission

# the floor: the members' files read and checked, as the command reads them first
READ_ONLY = (
    "import sys; from pathlib import Path; "
    "from pipeline.ensembling.candidates import load_candidates; load_candidates(Path(sys.argv[1]))"
)


def generate(out: Path, data: Path, members: int, seed: int = 0) -> Path:
    dataset = load_dataset("pbc", data)
    classes = dataset.classes
    rng = np.random.default_rng(seed)
    folder = out / "submissions" / "pbc"
    for m in range(members):
        quality = rng.uniform(0.80, 0.97)
        sources = {}
        for split in ("val", "test"):
            records = sorted(dataset.splits[split], key=lambda r: r.id)
            y = np.array([classes.index(r.label) for r in records])
            right = rng.random(len(y)) < quality
            pred = np.where(right, y, (y + rng.integers(1, len(classes), len(y))) % len(classes))
            logits = rng.normal(0, 1, (len(y), len(classes)))
            logits[np.arange(len(y)), pred] += 3
            probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            member = folder / f"m{m:02d}-fast-s0"
            write_submission(member / f"{split}.csv", [r.id for r in records], probs, classes)
            sources[split] = {"adapter": "pbc", "root": str(dataset.root.resolve()), "split": split}
        (member / "meta.json").write_text(
            json.dumps(
                {"member": member.name, "kind": "member", "arch": member.name, "sets": sources}
            )  # fmt: skip
        )
    return folder


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data/pbc"))
    p.add_argument("--members", type=int, default=28)
    p.add_argument("--top", type=int, default=0, help="candidates (0: all members)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        folder = generate(out, args.data, args.members)
        read_s = timed([sys.executable, "-c", READ_ONLY, str(folder)])
        total_s = timed([sys.executable, "-m", "pipeline.ensemble", "--out", str(out),
                         "--top", str(args.top), "--method", "all"])  # fmt: skip
    print(f"\n{args.members} members; reading and validating their CSVs: {read_s:.1f} s")
    print(f"all five methods, written and scored:   {total_s:.1f} s")
    print(f"ratio full job / reading floor:          {total_s / read_s:.1f}x")


if __name__ == "__main__":
    main()
