"""Questions the leaderboard app asks of entries and scores, answered without Streamlit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import pandas as pd

from pipeline.ranking.collect import Contender
from pipeline.ranking.table import ranked_table, ranked_test_sets

# the name of the trial row: never a saved entry's (upload names are reduced to [A-Za-z0-9._-])
TRIAL = "(this submission)"


class Standing(NamedTuple):
    """A would-be rank among ``of`` ranked rows, by the score named in ``label``."""

    rank: int | None  # None: the submission leaves images of the set unscored
    of: int
    label: str


def eval_sets(entries: Iterable[Contender], dataset: str) -> dict[str, dict]:
    """Set name -> answer-key source, from the ``meta.json`` of the dataset's entries (the first
    one wins); the test set first, then the others by name."""
    sets: dict[str, dict] = {}
    for e in entries:
        if e.dataset == dataset:
            for set_name, source in e.meta.sets.items():
                if source is not None:
                    sets.setdefault(set_name, source)
    return dict(sorted(sets.items(), key=lambda kv: (kv[0] != "test", kv[0])))


def would_rank(
    long: pd.DataFrame,
    dataset: str,
    set_name: str,
    scores: Mapping[str, float],
    test_set: str | None = None,
) -> Standing:
    """The rank a submission scored on ``set_name`` (``scores``: ``accuracy``,
    ``balanced_accuracy``, ``macro_f1``) would get among the rows of the dataset's board
    (``long``: ``table.long_table``; ``test_set`` as for ``table.ranked_table``).

    Ranked by ``table.ranked_table`` itself, with the submission added as one more row: equal
    scores share a rank, and a row that leaves images of the set unscored has none. The test
    set ranks on accuracy, another set on balanced accuracy (its answers are mostly one class),
    by handing the board that set's balanced accuracy in the place of test accuracy. So the
    rank shown before saving is the one after.
    """
    metric, label = (
        ("accuracy", "test accuracy")
        if set_name == "test"
        else ("balanced_accuracy", f"{set_name} balanced accuracy")
    )
    if long.empty:
        return Standing(1, 1, label)
    # the board's rows are those of one test set, by default the most used one
    if test_set is None:
        test_set = next(iter(ranked_test_sets(long, dataset)), "")
    rows = long[(long["dataset"] == dataset) & (long["set"] == set_name)]
    trial = {"dataset": dataset, "name": TRIAL, "entry": TRIAL, "kind": "upload",
             "test_set": test_set, "set": set_name}  # fmt: skip
    trial |= {m: scores[m] for m in ("accuracy", "balanced_accuracy", "macro_f1")}
    trial["unscored"] = scores.get("unscored", 0)
    rows = pd.concat([rows, pd.DataFrame([trial])], ignore_index=True)
    board = ranked_table(rows.assign(set="test", accuracy=rows[metric]), dataset, test_set or None)
    rank = board.loc[board["name"] == TRIAL, "rank"].iloc[0]
    return Standing(None if pd.isna(rank) else int(rank), int(board["rank"].notna().sum()), label)
