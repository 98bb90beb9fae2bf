"""Metrics on hand-made predictions whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation.metrics import evaluate


def one_hot(pred: list[int], n: int) -> np.ndarray:
    probs = np.full((len(pred), n), 0.1 / (n - 1))
    probs[np.arange(len(pred)), pred] = 0.9
    return probs


def test_known_confusion() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = [0, 0, 0, 1, 1, 1, 2, 0]
    m = evaluate(y, one_hot(pred, 3), ("a", "b", "c"))
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1 + 1 / 2) / 3)
    assert m["confusion_matrix"] == [[3, 1, 0], [0, 2, 0], [1, 0, 1]]
    a = m["per_class"]["a"]
    assert a["precision"] == pytest.approx(3 / 4)
    assert a["sensitivity"] == pytest.approx(3 / 4)
    assert a["specificity"] == pytest.approx(3 / 4)  # 4 negatives, 1 false positive
    assert m["per_class"]["c"]["specificity"] == pytest.approx(1.0)
    f1 = [2 * 0.75 * 0.75 / 1.5, 2 * (2 / 3) / (2 / 3 + 1), 2 * 0.5 / 1.5]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["n"] == 8


def test_perfect_ranking_gives_auc_one_and_absent_classes_are_not_averaged() -> None:
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1]])
    m = evaluate(y, probs, ("a", "b", "c"))
    assert m["macro_auc"] == pytest.approx(1.0)
    assert m["macro_f1"] == pytest.approx(1.0)  # class c has no support and was never predicted
    assert m["per_class"]["c"]["sensitivity"] is None


def test_single_class_set_has_no_auc() -> None:
    m = evaluate(np.array([0, 0]), one_hot([0, 1], 2), ("a", "b"))
    assert m["macro_auc"] is None and m["accuracy"] == 0.5


def test_agrees_with_scikit_learn_on_random_predictions() -> None:
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)  # class 4 never occurs, but is predicted
    probs = rng.dirichlet(np.ones(5), 300)
    m = evaluate(y, probs, ("a", "b", "c", "d", "e"))
    pred = probs.argmax(1)
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=range(5)).tolist()
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, labels=range(4), average="macro"))
    with pytest.warns(UserWarning):
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert evaluate(y, probs, ("a", "b", "c", "d", "e"), auc=False)["macro_auc"] is None


def test_mistakes_over_shared_classes_and_known_ids_only() -> None:
    from pipeline.evaluation.scoring import AnswerKey, Mistake, mistakes

    classes = ("lymphocyte", "neutrophil", "platelet")
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05]])
    key = {"a": "neutrophil", "b": "lymphocyte", "c": "neutrophil", "x": "lymphocyte"}
    # "b": platelet is not in the set's vocabulary, so its prediction falls back to the shared
    # two; "d" is not in the answer key: a made-up id never counts
    answers = AnswerKey(key, ("lymphocyte", "neutrophil"))
    found = mistakes(["a", "b", "c", "d"], probs, classes, answers)
    assert found == [
        Mistake("a", "neutrophil", "lymphocyte", pytest.approx(0.7 / 0.9)),
        Mistake("b", "lymphocyte", "neutrophil", pytest.approx(0.3 / 0.4)),
    ]
