"""The app's questions to the library, without Streamlit: evaluation sets and would-be ranks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from boards import answer_key, fabricate_out, perfect

from pipeline.evaluation.scoring import AnswerKey
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.ranking.queries import Standing, eval_sets, would_rank
from pipeline.ranking.table import long_table, ranked_table
from pipeline.ranking.upload import check_upload, save_upload


def row(entry: str, set_name: str, acc: float, bacc: float, **extra) -> dict:
    """One row of a long table (``table.long_table``) of dataset ``d`` on test set ``x``."""
    return {
        "dataset": "d", "name": entry.split("-s")[0], "entry": entry, "kind": "single",
        "family": "", "norm": "", "weights": "", "transductive": False, "description": "",
        "params_m": np.nan, "gmacs": np.nan, "members_used": np.nan, "created": "",
        "val_acc_oof": np.nan, "test_set": "x", "set": set_name, "accuracy": acc,
        "balanced_accuracy": bacc, "macro_f1": acc, "unscored": 0, "chance": 0.25,
    } | extra  # fmt: skip


@pytest.fixture
def long() -> pd.DataFrame:
    """Seeds a-s0 and a-s1 pool to 0.7 on test; b 0.9; c leaves a test image unscored; e is
    scored on another test set; f is another dataset's. On bccd b leads on accuracy, a on
    balanced accuracy."""
    return pd.DataFrame(
        [
            row("a-s0", "test", 0.6, 0.6),
            row("a-s1", "test", 0.8, 0.8),
            row("b-s0", "test", 0.9, 0.9),
            row("c-s0", "test", 0.95, 0.95, unscored=1),
            row("e-s0", "test", 0.99, 0.99, test_set="y"),
            row("f-s0", "test", 0.99, 0.99, dataset="other"),
            row("a-s0", "bccd", 0.5, 0.7),
            row("a-s1", "bccd", 0.5, 0.5),
            row("b-s0", "bccd", 0.8, 0.3),
            row("c-s0", "bccd", 0.9, 0.9, unscored=2),
        ]
    )


def scores(value: float) -> dict:
    return {"accuracy": value, "balanced_accuracy": value, "macro_f1": value, "unscored": 0}


def test_would_rank_on_test_accuracy_by_the_boards_rule(long: pd.DataFrame) -> None:
    """Seeds pooled, ties shared, an unscored row and another test set's or dataset's rows not
    counted."""
    assert would_rank(long, "d", "test", scores(0.95)) == Standing(1, 3, "test accuracy")
    assert would_rank(long, "d", "test", scores(0.9)) == (1, 3, "test accuracy")  # tied with b
    assert would_rank(long, "d", "test", scores(0.75)).rank == 2  # below b, above a's mean 0.7
    assert would_rank(long, "d", "test", scores(0.7)).rank == 2  # tied with a's mean
    assert would_rank(long, "d", "test", scores(0.1)).rank == 3


def test_would_rank_on_another_set_uses_balanced_accuracy(long: pd.DataFrame) -> None:
    """bccd: a's pooled balanced accuracy is 0.6, b's 0.3 (though b leads on accuracy); c
    leaves images unscored and has no rank."""
    standing = would_rank(long, "d", "bccd", scores(0.5))
    assert standing == Standing(2, 3, "bccd balanced accuracy")
    assert would_rank(long, "d", "bccd", scores(0.6)).rank == 1
    assert would_rank(long, "d", "unseen", scores(0.5)) == (1, 1, "unseen balanced accuracy")


def test_would_rank_on_a_chosen_test_set(long: pd.DataFrame) -> None:
    assert would_rank(long, "d", "test", scores(0.99), test_set="y") == (1, 2, "test accuracy")
    assert would_rank(long, "d", "test", scores(0.5), test_set="y").rank == 2


def test_a_submission_leaving_images_unscored_gets_no_rank(long: pd.DataFrame) -> None:
    assert would_rank(long, "d", "test", scores(0.99) | {"unscored": 1}) == (
        None,
        2,
        "test accuracy",
    )


def test_would_rank_of_an_empty_board() -> None:
    assert would_rank(pd.DataFrame(), "d", "test", scores(0.5)) == (1, 1, "test accuracy")


def test_would_rank_is_the_rank_after_saving(tmp_path: Path, make_tree) -> None:
    """A copy of the ensemble's perfect test answers ties with it, and keeps that rank once
    saved and on the board."""
    out = fabricate_out(tmp_path, make_tree)
    entries = find_entries(out)
    key = answer_key(out)
    upload = check_upload(perfect(key), AnswerKey(key, tuple(sorted(set(key.values())))))
    before = would_rank(long_table(entries, Scorer()), "cells", "test", upload.scores)
    assert before == (1, 4, "test accuracy")
    save_upload(out, "cells", "test", "copy", upload, eval_sets(entries, "cells")["test"])
    board = ranked_table(long_table(find_entries(out), Scorer()), "cells")
    assert board.set_index("name")["rank"]["copy"] == before.rank
    assert board["rank"].notna().sum() == before.of


def test_eval_sets_put_test_first_and_the_first_source_wins(tmp_path: Path, make_tree) -> None:
    out = fabricate_out(tmp_path, make_tree)
    beta = out / "submissions" / "cells" / "beta-fast-s0" / "meta.json"
    meta = json.loads(beta.read_text())
    first = meta["sets"]["bccd"]
    meta["sets"]["bccd"] = first | {"root": str(tmp_path / "elsewhere")}
    meta["sets"]["extra"] = {"adapter": "folder", "root": str(tmp_path / "extra"), "split": None}
    beta.write_text(json.dumps(meta))
    sets = eval_sets(find_entries(out), "cells")
    assert list(sets) == ["test", "bccd", "extra", "val"]
    assert sets["bccd"] == first  # alpha-fast-s0's, listed before beta-fast-s0
    assert sets["extra"]["root"] == str(tmp_path / "extra")
    assert eval_sets(find_entries(out), "other") == {}
