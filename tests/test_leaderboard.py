"""The leaderboard library and CLI: scores from answer keys, pooled seeds, cross-domain ranks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.leaderboard import __main__ as cli
from pipeline.leaderboard import scores as scores_module
from pipeline.leaderboard.collect import find_entries
from pipeline.leaderboard.scores import Scorer
from pipeline.leaderboard.table import leaderboard, long_table, to_markdown
from pipeline.stats import mean_ci


@pytest.fixture
def board(tmp_path: Path, make_tree, fake_member) -> Path:
    """Two seeds of `a-fast`, one `b-fast` that is better in-domain but worse across labs."""
    make_tree(tmp_path / "cells", {"lymphocyte": 25, "neutrophil": 25, "platelet": 25})
    make_tree(tmp_path / "lab2", {"Lymphocyte": 10, "Neutrophil": 10}, seed=99)
    cells, lab2 = tmp_path / "cells", tmp_path / "lab2"
    sets = {"val": (cells, "val"), "test": (cells, "test"), "lab2": (lab2, None)}
    out = tmp_path / "out"
    fake_member(out, "cells", "a-fast-s0", sets, 0.4, seed=0)
    fake_member(out, "cells", "a-fast-s1", sets, 0.95, seed=1)
    fake_member(out, "cells", "b-fast-s0", sets, {"val": 1.0, "test": 1.0, "lab2": 0.0})
    return out


def test_mean_ci_is_student_t() -> None:
    mean, half, n = mean_ci(pd.Series([0.9]))
    assert (mean, n) == (0.9, 1) and np.isnan(half)
    mean, half, n = mean_ci(pd.Series([0.80, 0.82, 0.84]))
    assert (mean, n) == (pytest.approx(0.82), 3)
    assert half == pytest.approx(4.302653 * 0.02 / np.sqrt(3), rel=1e-5)


def test_leaderboard_pools_seeds_and_ranks_across_labs(board: Path) -> None:
    long = long_table(find_entries(board), Scorer())
    assert set(long["set"]) == {"val", "test", "lab2"}
    table = leaderboard(long, "cells")
    assert table["name"].tolist() == ["b-fast", "a-fast"]
    b, a = table.iloc[0], table.iloc[1]
    assert (b["rank"], b["n"], b["test_acc"]) == (1, 1, 1.0)
    assert a["n"] == 2 and a["test_acc_ci95"] > 0
    seeds = long[(long["name"] == "a-fast") & (long["set"] == "test")]["accuracy"]
    assert a["test_acc"] == pytest.approx(seeds.mean())
    # b is wrong on every lab2 image (only chance among the 2 shared classes remains): it falls
    # from 1st to 2nd across labs, a climbs one place
    assert b["lab2_acc"] < 0.6 < a["lab2_acc"]
    assert (b["rank_shift"], a["rank_shift"]) == (-1, 1)
    assert (b["kind"], b["weights"], b["norm"]) == ("single", "random", "bn")


def test_seeds_trained_otherwise_never_share_a_row(tmp_path: Path, make_tree, fake_member):
    make_tree(tmp_path / "cells", {"lymphocyte": 20, "neutrophil": 20})
    sets = {"val": (tmp_path / "cells", "val"), "test": (tmp_path / "cells", "test")}
    out = tmp_path / "out"
    fake_member(out, "cells", "a-fast-s0", sets, 0.5, seed=0)
    fake_member(out, "cells", "a-fast-s1", sets, 0.9, seed=1, meta={"weights": "imagenet"})
    fake_member(out, "cells", "a-fast-s2", sets, 0.9, seed=2, meta={"weights": "imagenet"})
    with pytest.warns(UserWarning, match="cells/a-fast: its seeds were trained with different"):
        entries = find_entries(out)
    table = leaderboard(long_table(entries, Scorer()), "cells")
    assert len(table) == 2 and all(name.startswith("a-fast~") for name in table["name"])
    assert sorted(zip(table["weights"], table["n"], strict=True)) == [
        ("ImageNet", 2),
        ("random", 1),
    ]


def test_cross_domain_rank_uses_balanced_accuracy(tmp_path: Path, make_tree, fake_member) -> None:
    """A member that always answers neutrophil wins on plain accuracy on a mostly-neutrophil
    lab, but its balanced accuracy is chance, and the cross-domain rank follows the latter."""
    from pipeline.submissions import read_submission, write_submission

    make_tree(tmp_path / "cells", {"lymphocyte": 20, "neutrophil": 20})
    make_tree(tmp_path / "lab", {"lymphocyte": 4, "neutrophil": 16}, seed=5)
    cells, lab = tmp_path / "cells", tmp_path / "lab"
    sets = {"val": (cells, "val"), "test": (cells, "test"), "lab": (lab, None)}
    out = tmp_path / "out"
    honest = fake_member(out, "cells", "honest-fast-s0", sets, {"val": 0.9, "test": 0.9, "lab": 1})
    collapsed = fake_member(out, "cells", "collapsed-fast-s0", sets, 1.0)
    sub = read_submission(honest / "lab.csv")
    lymph, neut = sub.classes.index("lymphocyte"), sub.classes.index("neutrophil")
    truth = sub.probs.argmax(1)
    # honest: wrong on 1 of 4 lymphocytes and 4 of 16 neutrophils; collapsed: always neutrophil
    flip = np.concatenate([np.flatnonzero(truth == lymph)[:1], np.flatnonzero(truth == neut)[:4]])
    pred = truth.copy()
    pred[flip] = np.where(truth[flip] == lymph, neut, lymph)
    for folder, answer in ((honest, pred), (collapsed, np.full_like(truth, neut))):
        write_submission(folder / "lab.csv", sub.ids, np.eye(len(sub.classes))[answer], sub.classes)

    table = leaderboard(long_table(find_entries(out), Scorer()), "cells").set_index("name")
    good, coll = table.loc["honest-fast"], table.loc["collapsed-fast"]
    assert coll["lab_acc"] == pytest.approx(0.8) and coll["lab_bacc"] == pytest.approx(0.5)
    assert (good["lab_acc"], good["lab_bacc"]) == pytest.approx((0.75, 0.75))
    assert (coll["rank"], coll["rank_shift"]) == (1, -1)
    assert (good["rank"], good["rank_shift"]) == (2, 1)
    assert table["cross_bacc"].tolist() == table[["lab_bacc"]].mean(axis=1).tolist()


def test_cross_domain_sets_are_scored_over_shared_classes(board: Path) -> None:
    long = long_table(find_entries(board), Scorer())
    lab2 = long[(long["entry"] == "a-fast-s0") & (long["set"] == "lab2")].iloc[0]
    assert lab2["n"] == 20 and lab2["unscored"] == 0  # 8-class member, 2-class set


def test_scores_are_cached_by_file_stamp(board: Path, monkeypatch) -> None:
    cache = board / "zoo" / "leaderboard-cache.json"
    first = long_table(find_entries(board), Scorer(cache))
    assert cache.exists()

    def no_reading(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(scores_module, "read_submission", no_reading)
    again = long_table(find_entries(board), Scorer(cache))
    pd.testing.assert_frame_equal(first, again)
    test_csv = board / "submissions" / "cells" / "a-fast-s0" / "test.csv"
    test_csv.write_text(test_csv.read_text())  # a new stamp: scored afresh
    with pytest.raises(AssertionError, match="test.csv was read again"):
        long_table(find_entries(board), Scorer(cache))


def test_an_entry_whose_dataset_moved_is_skipped_with_a_warning(board: Path) -> None:
    meta_file = board / "submissions" / "cells" / "a-fast-s0" / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["sets"]["test"]["root"] = str(board / "gone")
    meta_file.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="a-fast-s0/test.csv: not scored"):
        long = long_table(find_entries(board), Scorer())
    assert len(long[long["entry"] == "a-fast-s0"]) == 2  # val and lab2 still scored


def test_cli_markdown_and_csv(board: Path, capsys) -> None:
    assert cli.main(["--out", str(board)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### cells\n\n| rank | name | kind |")
    assert "| 1 | b-fast | single |" in out
    assert cli.main(["--out", str(board), "--format", "csv"]) == 0
    frame = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert frame["name"].tolist() == ["b-fast", "a-fast"] and set(frame["dataset"]) == {"cells"}


def test_cli_without_submissions_says_what_to_do(tmp_path: Path, capsys) -> None:
    assert cli.main(["--out", str(tmp_path)]) == 1
    assert "run pipeline.zoo first" in capsys.readouterr().err


def test_to_markdown_leaves_missing_values_blank() -> None:
    table = pd.DataFrame({"name": ["x"], "acc": [float("nan")], "shift": pd.array([None], "Int64")})
    assert to_markdown(table).splitlines()[-1] == "| x |  |  |"
