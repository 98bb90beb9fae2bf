"""Benchmark: the leaderboard on 1,000 submission files (500 members x val/test of PBC).

Members are synthetic submissions for the real PBC validation and test images (answer keys from
the real split file). Times: scoring every file cold (the baseline), the same tables from the
score cache on disk, the app's first page (Streamlit AppTest, score cache warm), and a later
interaction (a filter change, served from Streamlit's caches).

    python -m bench.leaderboard_speed --data ../shared/data/pbc --members 500
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from bench.ensemble_speed import generate
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.ranking.table import long_table, ranked_table

APP = str(Path(__file__).resolve().parents[1] / "leaderboard" / "app.py")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data/pbc"))
    p.add_argument("--members", type=int, default=500, help="two submission files each")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out, args.data, args.members)
        files = len(list((out / "submissions").glob("*/*/*.csv")))
        cache = out / "zoo" / "leaderboard-cache.json"
        _, cold = timed(lambda: ranked_table(long_table(find_entries(out), Scorer(cache)), "pbc"))
        _, warm = timed(lambda: ranked_table(long_table(find_entries(out), Scorer(cache)), "pbc"))
        os.environ["WBCZOO_OUT"] = str(out)
        # the tables above leave ~600k objects of the bench's own behind: collected now, their
        # full garbage collection is not charged to whichever app step happens to trigger it
        gc.collect()
        at, first = timed(lambda: AppTest.from_file(APP, default_timeout=600).run())
        if at.exception:
            raise SystemExit(f"the app failed: {at.exception}")
        _, later = timed(lambda: at.text_input(key="search").set_value("m01").run())
    print(f"{files} submission files ({args.members} members), PBC val + test")
    print(f"score every file, cold (baseline):   {cold:7.2f} s")
    print(f"tables from the score cache:         {warm:7.2f} s   ({cold / warm:.0f}x faster)")
    print(f"app, first page (score cache warm):  {first:7.2f} s")
    print(f"app, a later interaction (filter):   {later:7.2f} s")


if __name__ == "__main__":
    main()
