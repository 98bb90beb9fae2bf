"""Scoring over the set's declared vocabulary, and the identity of a test set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.data.pbc import FOLDER, load_pbc
from pipeline.data.records import scan_class_folders
from pipeline.data.splits import write_split_file
from pipeline.evaluation.answers import AnswerKeys
from pipeline.evaluation.scoring import AnswerKey, missing_classes, mistakes, score

RAABIN = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")


def always_monocyte(key: dict[str, str], classes: tuple[str, ...]) -> np.ndarray:
    """A model that answers monocyte everywhere, its second choice always the true class."""
    probs = np.zeros((len(key), len(classes)))
    probs[:, classes.index("monocyte")] = 0.9
    probs[np.arange(len(key)), [classes.index(label) for label in key.values()]] = 0.1
    return probs


@pytest.fixture
def testb_root(tmp_path: Path, make_tree) -> Path:
    """A Raabin tree whose TestB, like the real one, holds lymphocytes and neutrophils only."""
    root = tmp_path / "raabin"
    make_tree(root / "Train", {c.capitalize(): 10 for c in RAABIN})
    make_tree(root / "TestA", {c.capitalize(): 2 for c in RAABIN}, seed=50)
    make_tree(root / "TestB", {"Lymphocyte": 3, "Neutrophil": 3}, seed=80)
    for c in ("Basophil", "Eosinophil", "Monocyte"):
        (root / "TestB" / c).mkdir()
    return root


@pytest.mark.parametrize(
    "source",
    [{"adapter": "raabin-testb", "split": None}, {"adapter": "raabin", "split": "testb"}],
)
def test_a_set_is_scored_over_its_vocabulary_not_its_labels(testb_root: Path, source) -> None:
    keys = AnswerKeys()
    source = {**source, "root": str(testb_root)}
    answers = keys.answers(source)
    key = answers.labels
    assert set(key.values()) == {"lymphocyte", "neutrophil"}  # a strict subset
    assert answers.vocabulary == RAABIN
    probs = always_monocyte(key, RAABIN)
    scores = score(list(key), probs, RAABIN, answers)
    assert (scores["accuracy"], scores["n"], scores["unscored"]) == (0.0, 6, 0)
    assert scores["classes"] == list(RAABIN)
    assert {m.pred for m in mistakes(list(key), probs, RAABIN, answers)} == {"monocyte"}


def test_a_folder_split_missing_a_rare_class_keeps_the_class(tmp_path: Path, make_tree) -> None:
    """24% of a 2-image class rounds to no validation image: the split still has its class."""
    make_tree(tmp_path / "cells", {"lymphocyte": 20, "monocyte": 2, "neutrophil": 20})
    source = {"adapter": "folder", "root": str(tmp_path / "cells"), "split": "val"}
    keys = AnswerKeys()
    key = keys.key(source)
    assert "monocyte" not in key.values() and "monocyte" in keys.vocabulary(source)
    classes = ("lymphocyte", "monocyte", "neutrophil")
    scores = score(list(key), always_monocyte(key, classes), classes, keys.answers(source))
    assert scores["accuracy"] == 0.0


def test_labels_outside_the_vocabulary_are_an_error() -> None:
    with pytest.raises(ValueError, match=r"labels \['platelet'\] outside the set's vocabulary"):
        AnswerKey({"a": "lymphocyte", "b": "platelet"}, ("lymphocyte",))


def test_missing_classes_names_the_absent_columns() -> None:
    assert missing_classes(("neutrophil",), RAABIN) == ("basophil", "eosinophil", "lymphocyte",
                                                        "monocyte")  # fmt: skip
    assert missing_classes((*RAABIN, "platelet"), RAABIN) == ()  # extra classes are allowed


def test_pbc_vocabulary_comes_from_the_split_file(pbc_dataset) -> None:
    assert len(pbc_dataset.classes) == 8


def test_a_split_csv_that_departs_from_the_versioned_split_warns(pbc_root: Path) -> None:
    records, _ = scan_class_folders(pbc_root, pbc_root / FOLDER)
    write_split_file(pbc_root / "split.csv", {"train": records[1:], "test": records[:1]})
    with pytest.warns(UserWarning, match=r"split.csv replaces the versioned PBC split .*48 of its"):
        load_pbc(pbc_root)
