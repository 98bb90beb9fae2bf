"""Ensembles on hand-made probability tables whose right answers are known, and the CLI."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from pipeline.commands import ensemble as cli
from pipeline.data import load_dataset
from pipeline.ensembling import methods
from pipeline.ensembling.candidates import MemberMismatchError, load_candidates, pool_seeds
from pipeline.ensembling.selection import chosen_on_validation
from pipeline.evaluation.calibration import apply_temperature
from pipeline.evaluation.stats import bootstrap_ci, paired_bootstrap
from pipeline.inference.load import fitted_method
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.ranking.table import long_table, ranked_table
from pipeline.runs.layout import Layout
from pipeline.runs.metadata import EnsembleMeta
from pipeline.runs.submissions import read_submission, write_submission


def onehot(pred: list[int], n: int = 3, p: float = 0.6) -> np.ndarray:
    out = np.full((len(pred), n), (1 - p) / (n - 1))
    out[np.arange(len(pred)), pred] = p
    return out


def test_vote_is_a_majority_and_ties_go_to_summed_probability() -> None:
    a = np.array([[0.50, 0.40, 0.10], [0.90, 0.05, 0.05]])
    b = np.array([[0.45, 0.44, 0.11], [0.10, 0.80, 0.10]])
    c = np.array([[0.10, 0.85, 0.05], [0.10, 0.80, 0.10]])
    d = np.array([[0.20, 0.70, 0.10], [0.10, 0.10, 0.80]])
    probs = methods.vote([a, b, c, d])
    # image 0: 2 votes each for classes 0 and 1; class 1 has the larger summed probability
    # image 1: class 1 wins 2 votes to 1 although class 0 holds the single most confident vote
    assert probs.argmax(1).tolist() == [1, 1]
    np.testing.assert_allclose(probs.sum(1), 1)
    assert probs[1, 1] == pytest.approx(0.5, abs=2e-3)


def test_vote_tie_break_is_deterministic_under_member_order() -> None:
    a, b = onehot([0, 2]), onehot([1, 2], p=0.9)
    assert methods.vote([a, b]).argmax(1).tolist() == methods.vote([b, a]).argmax(1).tolist()
    assert methods.vote([a, b]).argmax(1).tolist() == [1, 2]


def test_top_k_breaks_ties_for_the_last_place_by_ensemble_accuracy() -> None:
    names = ["a", "b", "c", "d", "e"]
    accs = [0.9, 0.8, 0.7, 0.7, 0.7]
    gains = {2: 0.80, 3: 0.85, 4: 0.82}  # which tied member makes the best ensemble with a, b
    chosen = methods.top_k(names, accs, 3, lambda idx: gains[idx[-1]])
    assert chosen == [0, 1, 3]
    assert methods.top_k(names, accs, 2, lambda idx: 0.0) == [0, 1]
    assert methods.top_k(names, accs, 9, lambda idx: 0.0) == [0, 1, 2, 3, 4]


def test_greedy_selects_with_replacement() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    a = onehot([0, 1, 2, 0, 1, 0], p=0.9)  # 5/6, the best alone, but unsure of the last image
    a[5] = [0.5, 0.1, 0.4]
    b = onehot([1, 0, 2, 0, 1, 2], p=0.6)  # 4/6, sure of the last image
    b[5] = [0.05, 0.05, 0.9]
    c = onehot([2, 2, 1, 1, 0, 0], p=0.5)  # always wrong
    counts = methods.greedy([a, b, c], y, 2)
    assert counts.tolist() == [1, 1, 0]
    assert (methods.soft([a, b, c], counts).argmax(1) == y).all()
    assert methods.greedy([c, a], y, 3).tolist() == [0, 3]  # the same member, again and again


def test_weighted_puts_the_weight_on_the_informative_member() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    good = onehot(list(y), 4, p=0.7)
    noise = rng.dirichlet(np.ones(4), len(y))
    weights = methods.fit_weights([noise, good], y)
    assert weights[1] > 0.9 and weights.sum() == pytest.approx(1)
    assert (weights >= 0).all()


def test_stacking_recovers_a_planted_mapping() -> None:
    """Member b is confidently wrong in a fixed way (it names class y+1); the stacker learns to
    read it, which no weighting of probabilities can."""
    rng = np.random.default_rng(1)

    def draw(n: int) -> tuple[np.ndarray, list[np.ndarray]]:
        y = rng.integers(0, 3, n)
        weak = np.where(rng.random(n) < 0.5, y, rng.integers(0, 3, n))
        return y, [onehot(list(weak), p=0.5), onehot(list((y + 1) % 3), p=0.9)]

    y_val, val = draw(300)
    model = methods.fit_stack(val, y_val)
    y_new, new = draw(300)
    assert (methods.stack_predict(model, new, 3).argmax(1) == y_new).mean() > 0.97
    assert (methods.soft(new).argmax(1) == y_new).mean() < 0.6


def test_stacking_warns_once_and_only_about_the_chosen_regularisation() -> None:
    """sklearn warns per fold and per C on the path; the stacker says one line, and only when
    the chosen C itself stopped at max_iter."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 200)
    probs = [onehot(list(np.where(rng.random(200) < 0.7, y, (y + 1) % 3)), p=0.8)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        methods.fit_stack(probs, y)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = methods.fit_stack(probs, y, max_iter=1)
    said = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert said == [f"stacking: the logistic regression at the chosen C={model.C_:g} stopped at "
                    "max_iter=1 in 5 of 5 folds; its weights may be slightly off"]  # fmt: skip


class Memorise(methods.EnsembleMethod):
    """A method that remembers every validation image's label: perfect in-sample, useless on
    images it was not fitted on (it answers uniformly there)."""

    method = "memorise"

    def fit(self, probs, y):
        super().fit(probs, y)
        self.seen_ = {row.tobytes(): label for row, label in zip(probs[0], y, strict=True)}
        return self

    def predict_proba(self, probs):
        out = np.full(probs[0].shape, 1 / probs[0].shape[1])
        for i, row in enumerate(probs[0]):
            if (label := self.seen_.get(row.tobytes())) is not None:
                out[i] = np.eye(probs[0].shape[1])[label]
        return out


def test_out_of_fold_never_predicts_an_image_with_a_fit_that_saw_its_label() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    probs = [rng.dirichlet(np.ones(3), len(y)) for _ in range(2)]
    assert methods.accuracy(Memorise().fit(probs, y).predict_proba(probs), y) == 1.0
    oof, folds = methods.out_of_fold(Memorise(), probs, y)
    assert folds == methods.OOF_FOLDS
    np.testing.assert_allclose(oof, 1 / 3)  # every image came from a fit without it


def test_out_of_fold_removes_the_in_sample_gain_of_fitted_methods() -> None:
    """Thirty members that guess: every fitted method looks better than chance on the
    validation images it was fitted on, and is near chance out of fold."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 150)
    probs = [rng.dirichlet(np.ones(3), len(y)) for _ in range(30)]
    for est in (methods.GreedyEnsemble(1), methods.StackEnsemble(), methods.WeightedEnsemble()):
        in_sample = methods.accuracy(est.fit(probs, y).predict_proba(
            [probs[i] for i in est.members_]), y)  # fmt: skip
        oof, _ = methods.out_of_fold(est, probs, y)
        assert in_sample - methods.accuracy(oof, y) > 0.05, est.method
        assert methods.accuracy(oof, y) < 0.4, est.method
    # a class with one validation image cannot be held out: no score rather than a wrong one
    assert methods.out_of_fold(methods.WeightedEnsemble(), probs, np.r_[y[:-1], 3]) is None
    assert (
        not methods.SoftEnsemble.learns_from_labels and not methods.VoteEnsemble.learns_from_labels
    )


def test_the_entries_chosen_on_validation_are_never_the_best_on_test_by_construction() -> None:
    table = pd.DataFrame([
        {"name": "a-fast-s0", "kind": "member", "val_acc": 0.97, "test_acc": 0.95},
        {"name": "b-fast-s0", "kind": "member", "val_acc": 0.96, "test_acc": 0.98},
        {"name": "ens-stack-all", "kind": "ensemble (8)", "val_acc": 0.99,
         "val_acc_oof": 0.975, "test_acc": 0.96},
        {"name": "ens-soft-all", "kind": "ensemble (8)", "val_acc": 0.98,
         "val_acc_oof": np.nan, "test_acc": 0.97},
        {"name": "ens-greedy-top4", "kind": "ensemble (4)", "val_acc": 0.985,
         "val_acc_oof": 0.97, "test_acc": 0.99},
    ])  # fmt: skip
    chosen = chosen_on_validation(table)
    # the member by validation accuracy; the in-sample 99% of stacking loses to soft's 98%
    assert (chosen.member["name"], chosen.ensemble["name"]) == ("a-fast-s0", "ens-soft-all")
    # a table written before out-of-fold scores (the reference zoo's) still has its choice
    old = table.drop(columns="val_acc_oof").assign(kind=lambda t: t["kind"].replace(
        {"member": "member (best on val)"}))  # fmt: skip
    assert chosen_on_validation(old).ensemble["name"] == "ens-stack-all"
    assert chosen_on_validation(old.iloc[:2]).ensemble is None


def test_bootstrap_ci_brackets_the_accuracy_and_narrows_with_more_images() -> None:
    few = np.array([1, 1, 1, 0] * 5, dtype=bool)
    acc, lo, hi = bootstrap_ci(few)
    assert acc == 0.75 and lo < acc < hi
    _, lo_many, hi_many = bootstrap_ci(np.tile(few, 50))
    assert hi_many - lo_many < (hi - lo) / 4


def test_paired_bootstrap() -> None:
    a = np.array([1, 1, 1, 1, 0, 1, 1, 1, 1, 1] * 20)
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)
    diff, lo, hi = paired_bootstrap(a, np.zeros_like(a), n=500)
    assert diff == pytest.approx(0.9) and lo < 0.9 < hi and hi - lo < 0.15
    with pytest.raises(ValueError):
        paired_bootstrap(a, a[:5])


# --- members on disk and the CLI ------------------------------------------------------------

QUALITY = {"good": 0.95, "fair": 0.8, "fair2": 0.8, "poor": 0.5, "bad": 0.2}


@pytest.fixture
def zoo(tmp_path: Path, make_tree) -> Path:
    """Submissions of five members of known quality on a real (tiny) folder dataset."""
    data = tmp_path / "cells"
    make_tree(data, {"eosinophil": 20, "lymphocyte": 20, "neutrophil": 20})
    dataset = load_dataset("folder", data)
    classes = dataset.classes
    rng = np.random.default_rng(0)
    for member, quality in QUALITY.items():
        folder = tmp_path / "out" / "submissions" / "cells" / f"{member}-fast-s0"
        sources = {}
        for split in ("val", "test"):
            records = sorted(dataset.splits[split], key=lambda r: r.id)
            y = np.array([classes.index(r.label) for r in records])
            right = rng.random(len(y)) < quality
            pred = np.where(right, y, (y + rng.integers(1, 3, len(y))) % 3)
            probs = onehot(list(pred), 3, p=0.5 + 0.4 * rng.random())
            write_submission(folder / f"{split}.csv", [r.id for r in records], probs, classes)
            sources[split] = {"adapter": "folder", "root": str(data.resolve()), "split": split}
        meta = {"member": folder.name, "kind": "member", "arch": member, "seed": 0,
                "recipe": {"name": "fast"}, "norm": "bn", "weights": "none", "params": 10,
                "gmacs": 0.5, "sets": sources}  # fmt: skip
        (folder / "meta.json").write_text(json.dumps(meta))
    return tmp_path / "out"


def run(out: Path, *args: str) -> int:
    return cli.main(["--out", str(out), "--bootstrap", "200", *args])


def test_cli_builds_every_method_and_writes_submissions(zoo: Path, capsys) -> None:
    assert run(zoo, "--top", "3") == 0
    subs = zoo / "submissions" / "cells"
    for method in ("vote", "soft", "weighted", "greedy", "stack"):
        folder = subs / f"ens-{method}-top3"
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["kind"] == "ensemble" and meta["method"] == method
        fitted = method not in ("vote", "soft")
        selection = "out-of-fold validation accuracy" if fitted else "validation accuracy"
        assert meta["selection_metric"] == selection and meta["top"] == 3
        assert bool(meta["out_of_fold"]) == fitted
        assert sum(meta["weights"]) == pytest.approx(1, abs=1e-5)
        assert set(meta["members"]) <= {"good-fast-s0", "fair-fast-s0", "fair2-fast-s0"}
        test = read_submission(folder / "test.csv")
        assert test.ids == read_submission(subs / "good-fast-s0" / "test.csv").ids
    vote = json.loads((subs / "ens-vote-top3" / "meta.json").read_text())
    assert vote["members"][0] == "good-fast-s0" and len(vote["members"]) == 3
    # every ensemble is saved whole, the fitted estimator that predict and export load
    for method in ("vote", "soft", "weighted", "greedy", "stack"):
        meta = json.loads((subs / f"ens-{method}-top3" / "meta.json").read_text())
        folder = zoo / "zoo" / "ensembles" / "cells" / f"ens-{method}-top3"
        fitted = joblib.load(folder / meta["estimator"])
        assert isinstance(fitted, methods.ENSEMBLE_METHODS[method])
        members = [read_submission(subs / m / "test.csv").probs for m in meta["members"]]
        raw = read_submission(subs / f"ens-{method}-top3" / "raw" / "test.csv").probs
        np.testing.assert_allclose(fitted.predict_proba(members), raw, atol=1e-6)
    stack = joblib.load(zoo / "zoo" / "ensembles" / "cells" / "ens-stack-top3" / "ensemble.joblib")
    members = [read_submission(subs / m / "test.csv").probs for m in meta["members"]]
    np.testing.assert_allclose(methods.stack_predict(stack.model_, members, 3), raw, atol=1e-6)
    # what consumers read is the stacker's output at the temperature fitted on validation
    temperature = json.loads((subs / "ens-stack-top3" / "meta.json").read_text())["calibration"]
    np.testing.assert_allclose(
        apply_temperature(raw, temperature["temperature"]),
        read_submission(subs / "ens-stack-top3" / "test.csv").probs,
        atol=1e-6,
    )
    table = pd.read_csv(zoo / "zoo" / "ensembles-cells.csv")
    assert len(table) == 5 + 5
    assert table.loc[table["chosen_on_val"], "name"].tolist()[0] == "good-fast-s0"
    assert table["chosen_on_val"].sum() == 2  # a member and an ensemble
    gains = table.dropna(subset=["test_gain_vs_best"])
    assert len(gains) == 5 and (gains["gain_ci_low"] <= gains["test_gain_vs_best"]).all()
    assert (table["test_ci_low"] <= table["test_acc"]).all()
    assert (table["test_acc"] <= table["test_ci_high"]).all()
    assert (table["test_ci_high"] - table["test_ci_low"] > 0).any()
    assert "ens-stack-top3" in capsys.readouterr().out
    # ensembles are outputs, never candidates: a second run sees the same five members
    assert run(zoo, "--top", "3") == 0
    assert len(pd.read_csv(zoo / "zoo" / "ensembles-cells.csv")) == 10
    # another --top adds its rows; the earlier run's ensembles stay in the table
    adapted = subs / "ens-soft-top2+adabn"  # an adaptation of an earlier ens-soft-top2
    adapted.mkdir()
    (adapted / "meta.json").write_text(
        json.dumps({"kind": "ensemble", "adapted_from": "ens-soft-top2"})
    )
    with pytest.warns(UserWarning, match="ens-soft-top2\\+adabn adapted the earlier ens-soft-top2"):
        assert run(zoo, "--top", "2", "--method", "soft") == 0
    names = pd.read_csv(zoo / "zoo" / "ensembles-cells.csv")["name"].tolist()
    assert len(names) == 11 and "ens-stack-top3" in names and "ens-soft-top2" in names


def test_fitted_ensembles_carry_their_out_of_fold_score_to_the_table_and_board(
    zoo: Path, capsys
) -> None:
    assert run(zoo, "--top", "3") == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(zoo / "zoo" / "ensembles-cells.csv").set_index("name")
    board = ranked_table(long_table(find_entries(zoo), Scorer()), "cells").set_index("name")
    for method in methods.METHODS:
        name = f"ens-{method}-top3"
        meta = json.loads((zoo / "submissions" / "cells" / name / "meta.json").read_text())
        oof = meta["out_of_fold"]
        if method in ("vote", "soft"):
            assert oof == {} and pd.isna(table.loc[name, "val_acc_oof"])
            assert pd.isna(board.loc[name, "val_acc_oof"])
            continue
        assert oof["folds"] >= 2 and oof["seed"] == 0
        assert table.loc[name, "val_acc_oof"] == pytest.approx(oof["accuracy"])
        assert board.loc[name, "val_acc_oof"] == pytest.approx(oof["accuracy"])
    assert board["val_acc_oof"][~board.index.str.startswith("ens-")].isna().all()
    chosen = chosen_on_validation(table.reset_index())
    assert table.index[table["chosen_on_val"]].tolist() == [
        chosen.member["name"], chosen.ensemble["name"]]  # fmt: skip
    assert f"ensemble chosen on validation: {chosen.ensemble['name']}: val " in printed


def test_test_predictions_never_influence_the_choice(zoo: Path) -> None:
    assert run(zoo, "--top", "3", "--method", "weighted") == 0
    meta_file = zoo / "submissions" / "cells" / "ens-weighted-top3" / "meta.json"
    before = json.loads(meta_file.read_text())
    for member in QUALITY:  # scramble every member's test predictions
        path = zoo / "submissions" / "cells" / f"{member}-fast-s0" / "test.csv"
        sub = read_submission(path)
        write_submission(path, sub.ids, sub.probs[::-1], sub.classes)
    assert run(zoo, "--top", "3", "--method", "weighted") == 0
    after = json.loads(meta_file.read_text())
    assert (before["members"], before["weights"]) == (after["members"], after["weights"])


def test_explicit_members_and_pooled_seeds(zoo: Path, capsys) -> None:
    assert run(zoo, "--members", "poor-fast-s0,bad-fast-s0", "--method", "soft") == 0
    meta = json.loads((zoo / "submissions" / "cells" / "ens-soft-custom" / "meta.json").read_text())
    assert meta["members"] == ["poor-fast-s0", "bad-fast-s0"]
    candidates = load_candidates(zoo / "submissions" / "cells")
    for c in candidates:
        c.meta = c.meta.with_changes(arch="same")
    pooled = pool_seeds(candidates)
    assert [c.name for c in pooled] == ["same-fast-pooled"]
    np.testing.assert_allclose(
        pooled[0].probs("val"), np.mean([c.probs("val") for c in candidates], axis=0)
    )
    # members trained otherwise (here: other weights) under one name are never pooled together
    for c in candidates[:2]:
        c.meta = c.meta.with_changes(init="imagenet")
    pooled = pool_seeds(candidates)
    assert len(pooled) == 2 and all(re.fullmatch(r"same-fast~\w{6}-pooled", c.name) for c in pooled)
    assert sorted(len(c.pooled_from) for c in pooled) == [2, 3]
    capsys.readouterr()
    assert run(zoo, "--members", "nobody") == 2
    assert capsys.readouterr().err.startswith("error: unknown member(s) ['nobody']; known: ")


def test_mismatched_members_are_errors_naming_files(zoo: Path) -> None:
    subs = zoo / "submissions" / "cells"
    path = subs / "poor-fast-s0" / "val.csv"
    sub = read_submission(path)
    write_submission(path, sub.ids[:-1], sub.probs[:-1], sub.classes)
    with pytest.raises(MemberMismatchError, match="poor-fast-s0/val.csv"):
        load_candidates(subs)
    write_submission(path, sub.ids, sub.probs[:, :2] / sub.probs[:, :2].sum(1, keepdims=True),
                     sub.classes[:2])  # fmt: skip
    with pytest.raises(MemberMismatchError, match="class columns differ"):
        load_candidates(subs)


def test_uploads_and_ensembles_are_not_candidates(zoo: Path) -> None:
    upload = zoo / "submissions" / "cells" / "someones-upload"
    upload.mkdir()
    (upload / "val.csv").write_text("id,lymphocyte\nnot-an-id,1\n")
    (upload / "meta.json").write_text(json.dumps({"kind": "upload"}))
    assert len(load_candidates(zoo / "submissions" / "cells")) == 5


def test_an_ensemble_never_overwrites_an_entry_of_another_kind(zoo: Path, capsys) -> None:
    upload = zoo / "submissions" / "cells" / "ens-soft-top2"
    upload.mkdir()
    (upload / "meta.json").write_text(json.dumps({"kind": "upload"}))
    assert run(zoo, "--top", "2") == 2
    err = capsys.readouterr().err.strip()
    assert "ens-soft-top2 holds an entry of kind 'upload'" in err and len(err.splitlines()) == 1
    assert [p.name for p in upload.iterdir()] == ["meta.json"]
    assert not (zoo / "submissions" / "cells" / "ens-vote-top2").exists()  # none is written


def test_member_without_validation_is_skipped_with_a_warning(zoo: Path) -> None:
    (zoo / "submissions" / "cells" / "bad-fast-s0" / "val.csv").unlink()
    with pytest.warns(UserWarning, match="bad-fast-s0: no val.csv"):
        candidates = load_candidates(zoo / "submissions" / "cells")
    assert len(candidates) == 4


def _truncate(path: Path) -> None:
    text = path.read_text()
    last = text.rstrip("\n").rfind("\n") + 1
    path.write_text(text[: text.index(",", last) + 3])  # the last row ends after "id,0."


DAMAGE = {
    "truncated": ("val.csv", _truncate),
    "garbled": ("val.csv", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage")),
    "empty": ("test.csv", lambda p: p.write_bytes(b"")),
    "header only": ("val.csv", lambda p: p.write_text(p.read_text().splitlines()[0] + "\n")),
    "meta not JSON": ("meta.json", lambda p: p.write_text('{"kind": "member", ')),
    "meta sets null": ("meta.json", lambda p: p.write_text('{"kind": "member", "sets": null}')),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_member_is_skipped_with_a_warning_naming_its_file(zoo: Path, damage) -> None:
    name, spoil = DAMAGE[damage]
    path = zoo / "submissions" / "cells" / "good-fast-s0" / name
    spoil(path)
    with pytest.warns(UserWarning, match=f"good-fast-s0/{name}.*member skipped"):
        assert run(zoo, "--top", "3", "--method", "soft") == 0
    meta = json.loads((zoo / "submissions" / "cells" / "ens-soft-top3" / "meta.json").read_text())
    assert meta["members"] == ["fair-fast-s0", "fair2-fast-s0", "poor-fast-s0"]


def test_an_ensemble_saved_before_estimators_still_loads(tmp_path: Path, monkeypatch) -> None:
    """Older ensembles kept method and weights in meta.json, and a stacker in stack.joblib
    named by a path relative to the folder they were built in: both load from anywhere."""
    rng = np.random.default_rng(0)
    probs = [rng.dirichlet(np.ones(3), 40) for _ in range(2)]
    y = probs[0].argmax(1)
    layout = Layout(tmp_path / "out")
    soft = EnsembleMeta(name="ens-weighted-top2", method="weighted", members=("a", "b"),
                        member_weights=(0.25, 0.75), classes=("x", "y", "z"))  # fmt: skip
    fitted = fitted_method(layout.out, "cells", soft.name, soft)
    np.testing.assert_allclose(fitted.predict_proba(probs), methods.soft(probs, [0.25, 0.75]))
    model = methods.fit_stack(probs, y)
    folder = layout.ensemble("cells", "ens-stack-top2")
    folder.mkdir(parents=True)
    joblib.dump({"model": model, "members": ["a", "b"]}, folder / "stack.joblib")
    monkeypatch.chdir(tmp_path)  # elsewhere than the folder it was built from
    stack = EnsembleMeta(
        name="ens-stack-top2",
        method="stack",
        members=("a", "b"),
        classes=("x", "y", "z"),
        stack_model="built-here/zoo/ensembles/cells/ens-stack-top2/stack.joblib",
    )
    fitted = fitted_method(layout.out, "cells", stack.name, stack)
    np.testing.assert_allclose(fitted.predict_proba(probs), methods.stack_predict(model, probs, 3))
