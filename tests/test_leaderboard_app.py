"""The Streamlit leaderboard (through AppTest) and its pure helpers: Pareto front and uploads."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from boards import (
    APP,
    CLASSES,
    ENSEMBLE_COMMAND,
    QUALITY,
    ZOO_COMMAND,
    answer_key,
    csv_bytes,
    onehot,
    open_page,
    perfect,
    predictions,
    table,
)
from PIL import Image
from streamlit.testing.v1 import AppTest

from pipeline.data import load_dataset
from pipeline.evaluation.calibration import apply_temperature, compare
from pipeline.evaluation.scoring import AnswerKey
from pipeline.names import BadName
from pipeline.ranking.collect import Contender
from pipeline.ranking.pareto import pareto_front
from pipeline.ranking.upload import MAX_BYTES, check_upload, sanitise_name, save_upload
from pipeline.runs.submissions import (
    Submission,
    SubmissionError,
    read_submission,
    to_frame,
    write_submission,
)


@pytest.fixture
def app(out: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("WBCZOO_OUT", str(out))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


# --- pure helpers ----------------------------------------------------------------------------


def test_pareto_front() -> None:
    params = [1.0, 2.0, 2.0, 3.0, 0.5, np.nan, 4.0, 1.0]
    acc = [0.7, 0.8, 0.75, 0.8, 0.6, 0.99, 0.9, 0.7]
    # 2 dominated by 1 (same size, less accurate), 3 by 1 (larger, same accuracy); the two
    # equal points 0 and 7 are both on the front; NaN is never on it and dominates nothing
    assert pareto_front(params, acc).tolist() == [
        True, True, False, False, True, False, True, True,
    ]  # fmt: skip
    assert pareto_front([], []).tolist() == []
    with pytest.raises(ValueError):
        pareto_front([1.0], [0.5, 0.6])


def test_sanitise_name() -> None:
    assert sanitise_name("my model (v2)!") == "my-model-v2"
    assert sanitise_name("../../x") == "x"
    assert sanitise_name("a" * 100) == "a" * 64
    for bad in ("", "   ", ".", "..", "../..", "///"):
        with pytest.raises(ValueError, match="not a usable name"):
            sanitise_name(bad)


def test_uploads_never_take_a_name_of_the_zoo(out: Path) -> None:
    """A saved upload used to be overwritten by a later zoo member of the same name."""
    for name in ("resnet18-fast-s0", "Resnet18-Fast-S12", "ens-soft-top4", "ENS-x"):
        with pytest.raises(BadName, match="is a name of the zoo's"):
            sanitise_name(name)
    member = out / "submissions" / "cells" / "alpha-fast-s0"
    before = {p.name: p.read_bytes() for p in member.iterdir()}
    key = answer_key(out)
    with pytest.raises(BadName):
        save_upload(
            out,
            "cells",
            "test",
            "alpha-fast-s0",
            check_upload(perfect(key), AnswerKey(key, CLASSES)),
            {},
        )
    assert {p.name: p.read_bytes() for p in member.iterdir()} == before
    assert sanitise_name("resnet18-fast-s0-mine") == "resnet18-fast-s0-mine"


def test_na_like_ids_are_ids(out: Path) -> None:
    """Ids such as NA or null became floats and crashed the check with a TypeError."""
    nas = ["", "NA", "nan", "null", "None", "#N/A"]
    key = {na or "x": "lymphocyte" for na in nas}
    data = perfect(key)
    assert check_upload(data, AnswerKey(key, CLASSES)).scores["accuracy"] == 1.0
    empty = data.replace(b"\nx,", b"\n,")
    with pytest.raises(SubmissionError, match=r"^bad.csv: line \d+ has an empty id$"):
        check_upload(empty, AnswerKey(key, CLASSES), "bad.csv")


def test_save_upload_stays_inside_out_and_never_overwrites(out: Path, tmp_path: Path) -> None:
    key = answer_key(out)
    upload = check_upload(perfect(key), AnswerKey(key, CLASSES))
    source = {"adapter": "folder", "root": "cells", "split": "test"}
    folder = save_upload(out, "cells", "test", "../../x", upload, source)
    assert folder == (out / "submissions" / "cells" / "x").resolve()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["kind"] == "upload" and meta["member"] == "x" and meta["sets"] == {"test": source}
    saved = (folder / "test.csv").read_bytes()
    with pytest.raises(ValueError, match=r"cells/x already exists: choose another name"):
        save_upload(out, "cells", "test", "x", upload, source)
    assert (folder / "test.csv").read_bytes() == saved
    for dataset, set_name in (("../evil", "test"), ("..", "test"), ("cells", "../test")):
        with pytest.raises(BadName, match="is not a plain name"):
            save_upload(out, dataset, set_name, "y", upload, source)
    (tmp_path / "elsewhere").mkdir()
    (out / "submissions" / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="lies outside"):
        save_upload(out, "linked", "test", "y", upload, source)
    assert not any((tmp_path / "elsewhere").iterdir())


def test_check_upload_scores_a_valid_file(out: Path) -> None:
    key = answer_key(out)
    ids = list(key)[::-1]  # any row order is accepted
    result = check_upload(csv_bytes(ids, onehot([key[i] for i in ids])), AnswerKey(key, CLASSES))
    assert result.scores["accuracy"] == 1.0 and result.scores["n"] == len(key)


# --- the app ---------------------------------------------------------------------------------


def test_table_ranks_configurations_with_seeds_pooled(app: AppTest) -> None:
    t = table(app)  # the overview: rank to cost, percentages, the test interval in one cell
    assert t.columns.tolist() == [
        "rank", "name", "note", "test", "cross_bacc", "bccd_bacc", "rank_shift", "params_m",
        "gmacs",
    ]  # fmt: skip
    assert t["name"].tolist() == ["ens-soft-top2", "alpha-fast", "beta-fast"]
    assert t["rank"].tolist() == [1, 2, 3]
    assert t["test"].tolist() == ["100.0", "58.3", "33.3"]  # no interval from 2 seeds
    assert t["rank_shift"].tolist() == [-1, -1, 2]
    app.segmented_control(key="preset").set_value("all").run()
    t = table(app)
    assert t["n"].tolist() == [1, 2, 1]
    assert t["test_acc"].tolist() == pytest.approx([100.0, 700 / 12, 100 / 3])
    assert t["bccd_acc"].tolist() == pytest.approx([50.0, 37.5, 100.0])
    assert {"test_acc_ci95", "test_macro_f1", "val_acc", "cross_acc", "params_m", "gmacs"} <= set(
        t.columns
    )
    assert app.markdown[0].value.startswith("**3 of 3 rows** · top: **ens-soft-top2**")
    captions = " ".join(c.value for c in app.caption)
    assert "positive means the row climbs when the lab changes" in captions
    assert "Student t 95% interval from 3 seeds on" in captions


def test_filters(app: AppTest) -> None:
    app.multiselect(key="kind").set_value(["ensemble"]).run()
    assert table(app)["name"].tolist() == ["ens-soft-top2"]
    app.multiselect(key="kind").set_value([]).run()
    app.text_input(key="search").set_value("BETA").run()
    assert table(app)["name"].tolist() == ["beta-fast"]
    app.text_input(key="search").set_value("").run()
    app.slider(key="params").set_value((5.0, 10.0)).run()
    assert table(app)["name"].tolist() == ["alpha-fast"]
    app.multiselect(key="norm").set_value(["gn"]).run()
    assert not app.dataframe and "No row passes the filters" in app.info[0].value


def test_a_filter_change_copies_only_the_entry_shown(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamlit's cache hands each call a fresh copy of its value; reruns that copied every
    entry several times left a full garbage collection for the next interaction to pay."""
    copies = []

    def counted(self, state: dict) -> None:  # pickle calls it for each entry it rebuilds
        self.__dict__.update(state)
        copies.append(self.name)

    monkeypatch.setattr(Contender, "__setstate__", counted, raising=False)
    app.text_input(key="search").set_value("ens").run()
    assert not app.exception
    assert table(app)["name"].tolist() == ["ens-soft-top2"]
    assert copies == []  # the Details page, which reads an entry, is not drawn
    open_page(app, "details")  # the same entry stays in the details
    copies.clear()
    app.text_input(key="search").set_value("ens-").run()
    assert not app.exception
    assert app.selectbox(key="detail_row").value == "ens-soft-top2"
    assert copies == ["ens-soft-top2"]


def test_details_show_scores_curves_gallery_and_provenance(app: AppTest, out: Path) -> None:
    open_page(app, "details")
    app.selectbox(key="detail_row").set_value("alpha-fast").run()
    app.selectbox(key="detail_entry").set_value("alpha-fast-s1").run()
    assert not app.exception
    for set_name, cm in zip(("test", "bccd"), app.table, strict=True):
        key = answer_key(out, set_name)
        preds = predictions(list(key.values()), QUALITY["alpha-fast-s1"][set_name])
        expected = pd.crosstab(pd.Series(key.values()), pd.Series(preds)).reindex(
            index=CLASSES, columns=CLASSES, fill_value=0
        )
        np.testing.assert_array_equal(cm.value.to_numpy(), expected.to_numpy())
    assert app.code[0].value == ZOO_COMMAND
    assert app.json[0].value and json.loads(app.json[0].value)["member"] == "alpha-fast-s1"
    captions = " ".join(c.value for c in app.caption)
    assert "No training history" in captions  # s1 has none; s0 has one
    assert "3 test images misclassified; 3 shown" in captions  # half of 6, all on disk
    assert "6 bccd images misclassified; 6 shown" in captions  # each set's own mistakes
    assert len(app.image) == 3 + 6
    explained = out / "zoo" / "explain" / "cells" / "alpha-fast-s0"
    explained.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(explained / "tsne.png")  # as `pipeline.explain` leaves it
    app.selectbox(key="detail_entry").set_value("alpha-fast-s0").run()
    assert "No training history" not in " ".join(c.value for c in app.caption)
    assert "Explanations" in [s.value for s in app.subheader]
    shown = sum(
        map(int, re.findall(r"misclassified; (\d+) shown", " ".join(c.value for c in app.caption)))
    )
    assert len(app.image) == shown + 1  # the galleries, then the explanation
    app.selectbox(key="detail_row").set_value("ens-soft-top2").run()
    assert app.code[0].value == ENSEMBLE_COMMAND


def test_upload_is_scored_ranked_and_saved(app: AppTest, out: Path) -> None:
    key = answer_key(out)
    open_page(app, "competition")
    app.file_uploader(key="upload").set_value(("mine.csv", perfect(key), "text/csv")).run()
    assert not app.error and not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["accuracy"] == "100.0%" and metrics["macro-F1"] == "100.0%"
    assert metrics["balanced accuracy"] == "100.0%"
    assert metrics["would rank (test accuracy)"] == "1 of 4"
    app.text_input(key="upload_name").set_value("my upload!").run()
    assert "It will be saved as cells/my-upload." in [c.value for c in app.caption]
    app.button(key="save").click().run()
    assert not app.error, [e.value for e in app.error]
    saved = out / "submissions" / "cells" / "my-upload"
    assert (saved / "test.csv").is_file() and (saved / "meta.json").is_file()
    assert any("Saved as" in s.value for s in app.success)
    app.button(key="save").click().run()
    assert "cells/my-upload already exists: choose another name" in app.error[0].value
    assert "my-upload" in table(open_page(app, "leaderboard"))["name"].tolist()


def malformed(key: dict[str, str]) -> dict[str, tuple[bytes, str]]:
    """Uploads that break the format or the answer key, and the exact error each must show."""
    ids, labels = list(key), list(key.values())
    good = to_frame(ids, onehot(labels), CLASSES)
    n = len(ids)

    def csv(frame: pd.DataFrame) -> bytes:
        return frame.to_csv(index=False).encode()

    unsummed = good.copy()
    unsummed.loc[0, "eosinophil"] += 0.5
    extra = pd.concat([good, good.iloc[:2].assign(id=["zz/a.jpg", "zz/b.jpg"])])
    return {
        "header": (
            csv(good.rename(columns={"id": "image"})),
            "bad.csv: the first column must be 'id', found ['image']",
        ),
        "duplicate": (
            csv(pd.concat([good, good.iloc[[1]]])),
            f"bad.csv: id(s) listed more than once, e.g. {ids[1]!r}",
        ),
        "missing": (
            csv(good.iloc[3:]),
            f"bad.csv: 3 ids missing, e.g. {', '.join(map(repr, ids[:3]))} (the set has {n} ids, "
            "each must be listed once)",
        ),
        "unknown": (
            csv(extra),
            f"bad.csv: 2 ids unknown, e.g. 'zz/a.jpg', 'zz/b.jpg' (the set has {n} ids, each must "
            "be listed once)",
        ),
        "sum": (
            csv(unsummed),
            f"bad.csv: probabilities of {ids[0]!r} sum to 1.500000, not 1 (tolerance 0.0001)",
        ),
        "partial": (
            csv(pd.DataFrame({"id": ids, "neutrophil": 1.0})),
            "bad.csv: no probability column for eosinophil, lymphocyte; a submission needs one "
            "for every class of the set (eosinophil, lymphocyte, neutrophil), extra classes "
            "allowed",
        ),
        "too large": (b"x" * (MAX_BYTES + 1), "bad.csv: 20.0 MB, over the 20 MB limit"),
        "not text": (b"\xff\xfe\x00id", "bad.csv: not UTF-8 text (invalid start byte)"),
    }


def test_malformed_uploads_say_what_is_wrong(app: AppTest, out: Path) -> None:
    cases = malformed(answer_key(out))
    open_page(app, "competition")
    for case, (data, message) in cases.items():
        app.file_uploader(key="upload").set_value(("bad.csv", data, "text/csv")).run()
        assert [e.value for e in app.error] == [message], case
        assert not app.metric or "would rank" not in app.metric[-1].label, case


def test_an_empty_id_is_an_error_message_not_a_traceback(app: AppTest, out: Path) -> None:
    data = perfect(answer_key(out)).replace(b"\n", b"\n,1,0,0,eosinophil\n", 1)
    open_page(app, "competition")
    app.file_uploader(key="upload").set_value(("bad.csv", data, "text/csv")).run()
    assert not app.exception
    assert [e.value for e in app.error] == ["bad.csv: line 2 has an empty id"]


def test_malformed_uploads_raise_value_errors(out: Path) -> None:
    key = answer_key(out)
    for case, (data, message) in malformed(key).items():
        with pytest.raises(ValueError) as info:
            check_upload(data, AnswerKey(key, CLASSES), "bad.csv")
        assert str(info.value) == message, case


def test_empty_out_folder_says_to_train_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WBCZOO_OUT", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "python -m pipeline.zoo --all" in at.info[0].value


def test_out_folder_comes_from_the_command_line(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WBCZOO_OUT", os.devnull)
    monkeypatch.setattr("sys.argv", ["app.py", "--out", str(out)])
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert table(at)["name"].tolist()[0] == "ens-soft-top2"


def test_entries_of_another_test_set_are_ranked_apart(out: Path, monkeypatch) -> None:
    """An entry scored on a copy of the data with more images has another test set: the app
    says so and ranks one test set at a time, chosen in the sidebar."""
    import shutil

    copy = out.parent / "cells-copy"
    shutil.copytree(out.parent / "cells", copy)
    for c in CLASSES:
        shutil.copy(copy / c / "img_000.jpg", copy / c / "img_099.jpg")
    records = sorted(load_dataset("folder", copy).splits["test"], key=lambda r: r.id)
    folder = out / "submissions" / "cells" / "gamma-fast-s0"
    write_submission(folder / "test.csv", [r.id for r in records],
                     onehot([r.label for r in records]), CLASSES)  # fmt: skip
    source = {"adapter": "folder", "root": str(copy), "split": "test"}
    (folder / "meta.json").write_text(
        json.dumps({"member": "gamma-fast-s0", "sets": {"test": source}})
    )
    monkeypatch.setenv("WBCZOO_OUT", str(out))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert "scored on 2 different test sets" in at.warning[0].value
    assert "gamma-fast" not in table(at)["name"].tolist()
    at.sidebar.selectbox(key="test_set").select_index(1).run()
    assert table(at)["name"].tolist() == ["gamma-fast"]


def test_details_show_calibration_before_and_after(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = out / "submissions" / "cells" / "alpha-fast-s0"
    sub = read_submission(folder / "test.csv")
    raw = Submission(sub.ids, sub.classes, apply_temperature(sub.probs, 0.2))  # overconfident
    write_submission(folder / "raw" / "test.csv", raw.ids, raw.probs, raw.classes)
    monkeypatch.setenv("WBCZOO_OUT", str(out))
    app = open_page(AppTest.from_file(APP, default_timeout=60).run(), "details")
    app.selectbox(key="detail_row").set_value("alpha-fast").run()
    app.selectbox(key="detail_entry").set_value("alpha-fast-s0").run()
    assert not app.exception, [e.message for e in app.exception]
    expected = compare(raw, sub, AnswerKey(answer_key(out), CLASSES))
    shown = [(m.label, m.value) for m in app.metric]
    test_tab = dict(shown[shown.index(("images", "6")) + 1 :][:5])  # after the test scores
    assert test_tab["ECE before"] == f"{expected['ece_raw']:.4f}"
    assert test_tab["ECE after"] == f"{expected['ece']:.4f}"
    assert expected["ece_raw"] > expected["ece"]
    assert test_tab["accuracy at 80% coverage"] == f"{expected['acc_at_80']:.4f}"
    # bccd has no uncalibrated copy: no "before"
    bccd_tab = dict(shown[-5:])
    assert bccd_tab["ECE before"] == "–"


# --- honest ranks, chance, cost, uploads, live runs ------------------------------------------


def frame_with(at: AppTest, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_ties_share_a_rank_and_would_rank_is_the_rank_after_saving(app: AppTest, out) -> None:
    """An upload identical to the ensemble used to rank above it (its name sorts first), and
    the rank shown before saving differed from the one after."""
    key = answer_key(out)
    open_page(app, "competition")
    app.file_uploader(key="upload").set_value(("copy.csv", perfect(key), "text/csv")).run()
    before = {m.label: m.value for m in app.metric}["would rank (test accuracy)"]
    app.text_input(key="upload_name").set_value("aaa-copy").run()
    app.button(key="save").click().run()
    t = table(open_page(app, "leaderboard"))
    assert t["name"].tolist()[:2] == ["ens-soft-top2", "aaa-copy"]  # the earlier one first
    assert t["rank"].tolist() == [1, 1, 3, 4]
    assert before == "1 of 4"
    open_page(app, "competition")
    app.selectbox(key="eval_set").set_value("bccd").run()
    bccd = answer_key(out, "bccd")
    app.file_uploader(key="upload").set_value(("b.csv", perfect(bccd), "text/csv")).run()
    metrics = {m.label: m.value for m in app.metric}
    # tied with beta (1.0); among the 3 rows scored on bccd and this one
    assert metrics["would rank (bccd balanced accuracy)"] == "1 of 4"


def test_rows_at_chance_are_marked(app: AppTest) -> None:
    """beta-fast gets 2 of 6 test images right: chance for 3 classes."""
    t = table(app).set_index("name")
    assert t.loc["beta-fast", "note"] == "chance: test"
    assert t.loc["alpha-fast", "note"] == ""


def test_ensembles_cost_only_the_members_they_weigh(out: Path, monkeypatch) -> None:
    meta_file = out / "submissions" / "cells" / "ens-soft-top2" / "meta.json"
    meta = json.loads(meta_file.read_text()) | {"weights": [0.997, 0.0]}
    meta_file.write_text(json.dumps(meta))
    monkeypatch.setenv("WBCZOO_OUT", str(out))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.segmented_control(key="preset").set_value("cost").run()
    ens = table(at).set_index("name").loc["ens-soft-top2"]
    # alpha-fast-s0 alone (5 M, 0.5 GMACs), not alpha + beta (25 M) as meta.json states
    assert (ens["params_m"], ens["gmacs"], ens["members_used"]) == (5.0, 0.5, 1)
    open_page(at, "details")
    at.selectbox(key="detail_row").set_value("ens-soft-top2").run()
    members = frame_with(at, "weight")
    assert members["member"].tolist() == ["alpha-fast-s0", "beta-fast-s0"]
    assert members["used"].tolist() == [True, False]
    assert any("K = **1** of 2" in m.value for m in at.markdown)
    at.button(key="member-0").click().run()  # a member's button opens its page
    assert at.selectbox(key="detail_row").value == "alpha-fast"


def test_uploads_are_their_own_kind_without_cost(app: AppTest, out: Path) -> None:
    key = answer_key(out)
    open_page(app, "competition")
    app.file_uploader(key="upload").set_value(("mine.csv", perfect(key), "text/csv")).run()
    app.text_input(key="upload_name").set_value("mine").run()
    app.text_input(key="upload_description").set_value("a  ViT, 3 epochs").run()
    app.button(key="save").click().run()
    open_page(app, "leaderboard").segmented_control(key="preset").set_value("cost").run()
    row = table(app).set_index("name").loc["mine"]
    assert row["kind"] == "upload" and row["family"] == "" and pd.isna(row["params_m"])
    assert "" not in app.sidebar.multiselect(key="family").options
    assert "?" not in app.sidebar.multiselect(key="family").options
    open_page(app, "details")
    app.selectbox(key="detail_row").set_value("mine").run()
    assert "*a ViT, 3 epochs*" in [m.value for m in app.markdown]


def test_an_uploads_test_mistakes_stay_hidden_in_competition_mode(app: AppTest, out) -> None:
    key = answer_key(out)
    wrong = csv_bytes(list(key), onehot(predictions(list(key.values()), 0.5)))
    open_page(app, "competition")
    app.file_uploader(key="upload").set_value(("half.csv", wrong, "text/csv")).run()
    app.text_input(key="upload_name").set_value("half").run()
    app.button(key="save").click().run()
    open_page(app, "details")
    app.selectbox(key="detail_row").set_value("half").run()
    assert len(app.image) == 3  # outside competition mode: its 3 mistakes
    from pipeline.ranking import competition

    competition.save_settings(out, competition.Settings(public_share=0.5, daily_limit=2))
    app.run()
    assert not app.image
    assert any("would reveal true labels" in c.value for c in app.caption)


def test_running_members_appear_with_their_progress(out: Path, monkeypatch) -> None:
    """A zoo run in progress: members running or pending show their last epoch."""
    manifest = {"alpha-fast-s0": {"state": "done"}, "gamma-fast-s0": {"state": "running"},
                "delta-fast-s0": {"state": "pending"}}  # fmt: skip
    (out / "zoo" / "manifest-cells.json").write_text(json.dumps(manifest))
    history = out / "zoo" / "members" / "cells" / "gamma-fast-s0" / "history.csv"
    history.parent.mkdir(parents=True)
    history.write_text("epoch,train_loss,train_acc,val_acc\n1,1.2,0.3,0.4\n2,0.9,0.5,0.625\n")
    monkeypatch.setenv("WBCZOO_OUT", str(out))
    at = AppTest.from_file(APP, default_timeout=60).run()
    live = frame_with(at, "state")
    assert live["member"].tolist() == ["delta-fast-s0", "gamma-fast-s0"]
    assert live["state"].tolist() == ["pending", "running"]
    assert pd.isna(live["epoch"][0]) and live["epoch"][1] == 2
    assert live["val_acc"][1] == 0.625
    assert any("1 pending, 1 running" in m.value or "1 running, 1 pending" in m.value
               for m in at.markdown)  # fmt: skip
    # before any member finished, the board is empty but the runs show
    for folder in (out / "submissions" / "cells").iterdir():
        (folder / "meta.json").unlink()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert frame_with(at, "state")["member"].tolist() == ["delta-fast-s0", "gamma-fast-s0"]


def test_transductive_entries_can_be_filtered(out: Path, monkeypatch) -> None:
    source = out / "submissions" / "cells" / "alpha-fast-s0"
    adapted = out / "submissions" / "cells" / "alpha-fast-s0+tent"
    adapted.mkdir()
    for f in source.glob("*.csv"):
        (adapted / f.name).write_bytes(f.read_bytes())
    meta = json.loads((source / "meta.json").read_text())
    meta |= {"member": adapted.name, "kind": "adapted", "transductive": True}
    (adapted / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setenv("WBCZOO_OUT", str(out))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert len(table(at)) == 4
    at.sidebar.multiselect(key="transductive").set_value(["transductive"]).run()
    assert table(at)["name"].tolist() == ["alpha-fast+tent"]
    at.sidebar.multiselect(key="transductive").set_value(["inductive"]).run()
    assert "alpha-fast+tent" not in table(at)["name"].tolist()
