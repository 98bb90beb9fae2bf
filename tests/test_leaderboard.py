"""The leaderboard library and CLI: scores from answer keys, pooled seeds, cross-domain ranks."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.commands import leaderboard as cli
from pipeline.evaluation.stats import mean_ci
from pipeline.ranking import cached_scores as scores_module
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.ranking.present import display_table, set_header, set_images
from pipeline.ranking.table import long_table, ranked_table, ranked_test_sets, to_markdown


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
    table = ranked_table(long, "cells")
    assert table["name"].tolist() == ["b-fast", "a-fast"]
    b, a = table.iloc[0], table.iloc[1]
    assert (b["rank"], b["n"], b["test_acc"]) == (1, 1, 1.0)
    assert a["n"] == 2 and a["test_acc_ci95"] > 0
    seeds = long[(long["name"] == "a-fast") & (long["set"] == "test")]["accuracy"]
    assert a["test_acc"] == pytest.approx(seeds.mean())
    # b is wrong on every lab2 image (only chance among the 2 shared classes remains): it falls
    # from 1st to 2nd across labs, a climbs one place; b, below chance there, gets no shift
    assert b["lab2_acc"] < 0.6 < a["lab2_acc"]
    assert pd.isna(b["rank_shift"]) and a["rank_shift"] == 1
    assert b["cross_at_chance"] and not a["cross_at_chance"] and b["cross_chance"] == 0.5
    assert (b["kind"], b["weights"], b["norm"]) == ("single", "random", "bn")


def test_per_seed_gives_every_seed_its_own_row(board: Path, capsys) -> None:
    assert cli.main(["--out", str(board), "--format", "csv", "--per-seed"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert sorted(table["name"]) == ["a-fast-s0", "a-fast-s1", "b-fast-s0"]
    assert (table["n"] == 1).all() and table["test_acc_ci95"].isna().all()
    pooled = ranked_table(long_table(find_entries(board), Scorer()), "cells")
    mean = pooled.set_index("name").loc["a-fast", "test_acc"]
    seeds = table.set_index("name").loc[["a-fast-s0", "a-fast-s1"], "test_acc"]
    assert seeds.mean() == pytest.approx(mean) and seeds.nunique() == 2
    assert cli.main(["--out", str(board), "--per-seed", "--against", "b-fast"]) == 2
    assert "leave out --per-seed" in capsys.readouterr().err


def test_seeds_trained_otherwise_never_share_a_row(tmp_path: Path, make_tree, fake_member):
    make_tree(tmp_path / "cells", {"lymphocyte": 20, "neutrophil": 20})
    sets = {"val": (tmp_path / "cells", "val"), "test": (tmp_path / "cells", "test")}
    out = tmp_path / "out"
    fake_member(out, "cells", "a-fast-s0", sets, 0.5, seed=0)
    fake_member(out, "cells", "a-fast-s1", sets, 0.9, seed=1, meta={"weights": "imagenet"})
    fake_member(out, "cells", "a-fast-s2", sets, 0.9, seed=2, meta={"weights": "imagenet"})
    with pytest.warns(UserWarning, match="cells/a-fast: its seeds were trained with different"):
        entries = find_entries(out)
    table = ranked_table(long_table(entries, Scorer()), "cells")
    assert len(table) == 2 and all(name.startswith("a-fast~") for name in table["name"])
    assert sorted(zip(table["weights"], table["n"], strict=True)) == [
        ("ImageNet", 2),
        ("random", 1),
    ]


def test_cross_domain_rank_uses_balanced_accuracy(tmp_path: Path, make_tree, fake_member) -> None:
    """A member that always answers neutrophil wins on plain accuracy on a mostly-neutrophil
    lab, but its balanced accuracy is chance, and the cross-domain rank follows the latter."""
    from pipeline.runs.submissions import read_submission, write_submission

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

    table = ranked_table(long_table(find_entries(out), Scorer()), "cells").set_index("name")
    good, coll = table.loc["honest-fast"], table.loc["collapsed-fast"]
    assert coll["lab_acc"] == pytest.approx(0.8) and coll["lab_bacc"] == pytest.approx(0.5)
    assert (good["lab_acc"], good["lab_bacc"]) == pytest.approx((0.75, 0.75))
    assert coll["rank"] == 1 and pd.isna(coll["rank_shift"])  # at chance across labs
    assert (good["rank"], good["rank_shift"]) == (1, 0)  # tied in-domain: both rank 1
    assert table["cross_bacc"].tolist() == table[["lab_bacc"]].mean(axis=1).tolist()


def test_every_cross_lab_column_names_its_image_count_and_marks_small_sets(board: Path):
    """The board carries each cross-lab set's image count; the app's headers name it, and a
    set of fewer than 50 images is marked, its tooltip giving the interval of a 50% score."""
    table = ranked_table(long_table(find_entries(board), Scorer()), "cells")
    assert (table["lab2_images"] == 20).all()
    assert set_images(table) == {"lab2": 20}
    header, tooltip = set_header("lab2", "bal.", 20)
    assert header == "lab2 bal. % (20 ⚠)" and "20 images: few images" in tooltip
    assert "moves the score by 5 points" in tooltip and "±22 points" in tooltip
    header, tooltip = set_header("bccd", "acc.", 246)
    assert header == "bccd acc. % (246)" and tooltip == "acc. on bccd, 246 images"
    assert "lab2_images" not in display_table(table, "all").columns


def test_cross_domain_sets_are_scored_over_shared_classes(board: Path) -> None:
    long = long_table(find_entries(board), Scorer())
    lab2 = long[(long["entry"] == "a-fast-s0") & (long["set"] == "lab2")].iloc[0]
    assert lab2["n"] == 20 and lab2["unscored"] == 0  # 8-class member, 2-class set


def test_scores_are_cached_until_file_key_or_code_change(board: Path, monkeypatch) -> None:
    cache = board / "zoo" / "leaderboard-cache.json"
    first = long_table(find_entries(board), Scorer(cache))
    assert cache.exists()

    def no_reading(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(scores_module, "read_submission", no_reading)
    test_csv = board / "submissions" / "cells" / "a-fast-s0" / "test.csv"
    test_csv.write_text(test_csv.read_text())  # a new mtime, the same content: still cached
    pd.testing.assert_frame_equal(first, long_table(find_entries(board), Scorer(cache)))
    monkeypatch.undo()

    # another answer in place, same size and modification time: scored afresh
    stat = test_csv.stat()
    header, *lines = test_csv.read_text().splitlines()
    classes = header.split(",")[1:-1]
    right = []
    for line in lines:  # every probability row moved onto the true class, `pred` left as it was
        cells = line.split(",")
        probs = sorted(cells[1:-1], key=float)
        true = classes.index(cells[0].split("/")[0])
        right.append(",".join([cells[0], *probs[:true], probs[-1], *probs[true:-1], cells[-1]]))
    test_csv.write_text("\n".join([header, *right]) + "\n")
    os.utime(test_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert test_csv.stat().st_size == stat.st_size
    again = long_table(find_entries(board), Scorer(cache))
    was = first[(first["entry"] == "a-fast-s0") & (first["set"] == "test")]["accuracy"].item()
    now = again[(again["entry"] == "a-fast-s0") & (again["set"] == "test")]["accuracy"].item()
    assert was < 1 and now == 1

    # a new metric list (or scoring code) rescores everything
    calls = []
    monkeypatch.setattr(scores_module, "SUMMARY", (*scores_module.SUMMARY, "macro_auc"))
    scores_module.code_version.cache_clear()
    real = scores_module.read_submission
    monkeypatch.setattr(scores_module, "read_submission", lambda p: calls.append(p) or real(p))
    assert "macro_auc" in long_table(find_entries(board), Scorer(cache)).columns
    assert len(calls) == len(first)
    scores_module.code_version.cache_clear()


def test_a_changed_answer_key_is_never_served_from_the_cache(board: Path, make_tree) -> None:
    cache = board / "zoo" / "leaderboard-cache.json"
    long_table(find_entries(board), Scorer(cache))
    make_tree(board.parent / "lab2", {"Monocyte": 3}, seed=500)  # lab2 gains a class
    with pytest.warns(UserWarning, match="lab2.csv: not scored"):
        long = long_table(find_entries(board), Scorer(cache))
    assert "lab2" not in set(long["set"])


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
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"test_set": str})
    assert frame["name"].tolist() == ["b-fast", "a-fast"] and set(frame["dataset"]) == {"cells"}
    # one test set: the column still names it (its 12-hex fingerprint), as a split board does
    assert frame["test_set"].nunique() == 1 and len(str(frame["test_set"][0])) == 12


def test_cli_without_submissions_says_what_to_do(tmp_path: Path, capsys) -> None:
    assert cli.main(["--out", str(tmp_path)]) == 1
    assert "run pipeline.zoo first" in capsys.readouterr().err


def test_to_markdown_leaves_missing_values_blank() -> None:
    table = pd.DataFrame({"name": ["x"], "acc": [float("nan")], "shift": pd.array([None], "Int64")})
    assert to_markdown(table).splitlines()[-1] == "| x |  |  |"


def partial_upload(out: Path, tag: str, name: str, source_of: Path) -> Path:
    """An upload with only a neutrophil column, 1.0 on every row, for the test set of the
    member at ``source_of``."""
    from pipeline.runs.submissions import read_submission, write_submission

    meta = json.loads((source_of / "meta.json").read_text())
    ids = read_submission(source_of / "test.csv").ids
    folder = out / "submissions" / tag / name
    write_submission(folder / "test.csv", ids, np.ones((len(ids), 1)), ("neutrophil",))
    upload = {"member": name, "kind": "upload", "sets": {"test": meta["sets"]["test"]}}
    (folder / "meta.json").write_text(json.dumps(upload))
    return folder


def test_an_entry_that_leaves_images_unscored_never_ranks(board: Path) -> None:
    partial_upload(board, "cells", "a-partial", board / "submissions" / "cells" / "b-fast-s0")
    table = ranked_table(long_table(find_entries(board), Scorer()), "cells")
    assert table["name"].tolist() == ["b-fast", "a-fast", "a-partial"]
    assert table["rank"].tolist()[:2] == [1, 2] and table["rank"].isna().tolist()[2]
    # b-fast is below chance across labs: no shift either
    assert table["rank_shift"].isna().tolist() == [True, False, True]


def test_rank_shift_ranks_both_over_the_same_rows(board: Path, fake_member) -> None:
    """An upload scored in-domain only moves nobody's shift."""
    cells = board.parent / "cells"
    fake_member(board, "cells", "up", {"test": (cells, "test")}, 1.0, meta={"kind": "upload"})
    table = ranked_table(long_table(find_entries(board), Scorer()), "cells").set_index("name")
    assert table.loc["up", "rank"] == 1 and pd.isna(table.loc["up", "rank_shift"])  # tied with b
    assert table.loc["a-fast", "rank_shift"] == 1 and pd.isna(table.loc["b-fast", "rank_shift"])


def test_entries_of_different_test_sets_are_ranked_apart(board: Path, fake_member, capsys):
    """A copy of the data with one more image per class has another test set: its entry is
    ranked on its own board, and the CLI says so."""
    import shutil

    other = board.parent / "cells-copy"
    shutil.copytree(board.parent / "cells", other)
    for c in ("lymphocyte", "neutrophil", "platelet"):
        shutil.copy(other / c / "img_000.jpg", other / c / "img_999.jpg")
    fake_member(board, "cells", "c-fast-s0", {"test": (other, "test")}, 1.0)
    long = long_table(find_entries(board), Scorer())
    fingerprints = ranked_test_sets(long, "cells")
    assert len(fingerprints) == 2
    assert ranked_table(long, "cells")["name"].tolist() == ["b-fast", "a-fast"]
    assert ranked_table(long, "cells", fingerprints[1])["name"].tolist() == ["c-fast"]
    assert cli.main(["--out", str(board)]) == 0
    captured = capsys.readouterr()
    assert "cells: entries were scored on 2 different test sets" in captured.err
    assert f"### cells (test set {fingerprints[1]})\n\n| rank | name" in captured.out


BAD_META = {
    "not UTF-8": b'{"kind": "member", "arch": "\xff\xfe"}',
    "not an object": b'["kind", "member"]',
    "sets null": b'{"kind": "member", "sets": null}',
    "sets of strings": b'{"kind": "member", "sets": {"test": "cells"}}',
    "params a string": b'{"kind": "member", "params": "11M", "sets": {}}',
}


@pytest.mark.parametrize("damage", BAD_META)
def test_a_damaged_meta_json_is_skipped_with_a_warning(board: Path, damage, capsys) -> None:
    meta = board / "submissions" / "cells" / "b-fast-s0" / "meta.json"
    meta.write_bytes(BAD_META[damage])
    with pytest.warns(UserWarning, match="b-fast-s0/meta.json.*skipped"):
        assert cli.main(["--out", str(board), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table["name"].tolist() == ["a-fast"] and table["n"].item() == 2


def test_scores_show_as_percentages_with_intervals_from_three_seeds() -> None:
    """With 2 seeds the Student t half-width (12.7 × sd / √2) is wider than the scale."""
    from pipeline.ranking.present import with_interval

    assert with_interval(0.9734, 0.0041, 3) == "97.3 ± 0.4"
    assert with_interval(0.5, 1.19, 2) == "50.0"
    assert with_interval(float("nan"), float("nan"), 0) == ""


def test_chance_notes_name_where_a_row_guesses() -> None:
    from pipeline.ranking.present import chance_notes

    flags = pd.DataFrame({"at_chance": [True, False, True, False],
                          "cross_at_chance": [True, True, False, False]})  # fmt: skip
    assert chance_notes(flags).tolist() == [
        "chance: test + labs",
        "chance: labs",
        "chance: test",
        "",
    ]
