"""Paired differences between two zoos whose entries share names (the same architecture, recipe
and seeds trained two ways, e.g. from ImageNet weights and from random initialisation, which
name members alike and so live in separate ``--out`` folders).

    python -m bench.paired_zoos --a /tmp/pre128 --b /tmp/rnd128 --label-b random --part report

Every entry of ``--b`` is renamed ``<name>@<label-b>``; both zoos' per-seed scores then go
through the leaderboard's own ``paired_differences``: each entry of ``--a`` minus its namesake
of ``--b``, paired by seed, with a Student t 95% half-width.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.ranking.paired import paired_differences
from pipeline.ranking.table import long_table, to_markdown


def scores(out: Path, part: str | None) -> pd.DataFrame:
    return long_table(find_entries(out), Scorer.of_zoo(out, part))


def paired_between(a: pd.DataFrame, b: pd.DataFrame, label: str, dataset: str) -> pd.DataFrame:
    """Each seeded name of ``a`` minus its namesake in ``b``, paired by seed."""
    a, b = a[a["seed"].notna()], b[b["seed"].notna()]
    b = b.assign(name=b["name"] + f"@{label}")
    both = pd.concat([a, b], ignore_index=True)
    rows = []
    for name in sorted(set(a["name"]) & set(b["name"].str.removesuffix(f"@{label}"))):
        diff = paired_differences(both, dataset, f"{name}@{label}")
        rows.append(diff[diff["name"] == name].assign(against=f"{name}@{label}"))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", type=Path, required=True, help="a zoo's --out")
    p.add_argument("--b", type=Path, required=True, help="the zoo subtracted, its --out")
    p.add_argument("--label-b", default="b", help="suffix of --b's names")
    p.add_argument("--dataset", default="pbc")
    p.add_argument("--part", choices=("choose", "report"))
    args = p.parse_args()
    a, b = scores(args.a, args.part), scores(args.b, args.part)
    print(to_markdown(paired_between(a, b, args.label_b, args.dataset)))


if __name__ == "__main__":
    main()
