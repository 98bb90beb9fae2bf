"""The reference zoo: packed from a zoo with its answer keys, unpacked safely, scored where its
datasets are not; and the one shipped under zoo/reference/, read as a newcomer would."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest
from boards import APP, fabricate_out, open_page, table
from streamlit.testing.v1 import AppTest

from pipeline.commands.leaderboard import main as leaderboard_main
from pipeline.commands.reference import main as pack_main
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.ranking.reference import (
    ARCHIVE,
    DEFAULT,
    Reference,
    ReferenceError,
    pack,
    references,
)
from pipeline.ranking.table import long_table, ranked_table

SHIPPED = references()
WEIGHTS = (".safetensors", ".pt", ".pth", ".joblib", ".onnx")


def board_of(out: Path) -> list[tuple]:
    long = long_table(find_entries(out), Scorer.of_zoo(out))
    return sorted(map(tuple, ranked_table(long, "cells").astype(str).values.tolist()))


def test_a_packed_zoo_scores_the_same_without_its_datasets(tmp_path, make_tree) -> None:
    out = fabricate_out(tmp_path, make_tree)
    weights = out / "zoo" / "members" / "cells" / "alpha-fast-s0" / "best.safetensors"
    weights.write_bytes(b"weights")
    alpha = out / "submissions" / "cells" / "alpha-fast-s0"
    adapted = shutil.copytree(alpha, alpha.with_name("alpha-fast-s0+adabn"))
    meta = json.loads((alpha / "meta.json").read_text())
    meta |= {"member": adapted.name, "kind": "adapted", "transductive": True}
    (adapted / "meta.json").write_text(json.dumps(meta))
    (alpha / "raw").mkdir()
    shutil.copy(alpha / "test.csv", alpha / "raw" / "test.csv")
    before = board_of(out)
    archive, count = pack(out, "cells", tmp_path / "refs" / "tiny")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert count == len(names) and "zoo/answers.json" in names
    assert "zoo/members/cells/alpha-fast-s0/history.csv" in names
    assert not [n for n in names if n.endswith(WEIGHTS) or "/raw/" in n]
    assert "submissions/cells/alpha-fast-s0+adabn/test.csv" in names
    assert "submissions/cells/alpha-fast-s0+adabn/val.csv" not in names  # nothing chosen on it
    before = [row for row in before if "+adabn" not in row[1]]  # its val column is left out
    shutil.rmtree(tmp_path / "cells"), shutil.rmtree(tmp_path / "bccd")  # the datasets are gone
    with pytest.warns(UserWarning, match="does not exist"):
        assert long_table(find_entries(out), Scorer.of_zoo(out)).empty  # no longer scores
    unpacked = Reference(archive.parent).unpacked(tmp_path / "cache")
    assert [row for row in board_of(unpacked) if "+adabn" not in row[1]] == before
    assert Reference(archive.parent).unpacked(tmp_path / "cache") == unpacked  # once


def test_packing_is_reproducible_and_names_a_zoo_without_entries(tmp_path, make_tree) -> None:
    out = fabricate_out(tmp_path, make_tree)
    first = pack(out, "cells", tmp_path / "a")[0].read_bytes()
    assert pack(out, "cells", tmp_path / "b")[0].read_bytes() == first
    with pytest.raises(ReferenceError, match="no entries to pack"):
        pack(out, "other", tmp_path / "c")


def test_the_pack_command_refuses_a_name_that_is_a_path(tmp_path, make_tree, capsys) -> None:
    out = fabricate_out(tmp_path, make_tree)
    assert pack_main(["--out", str(out), "--reference", "../up", "--into", str(tmp_path)]) == 2
    assert "not a plain name" in capsys.readouterr().err
    assert pack_main(["--out", str(out), "--reference", "tiny", "--into", str(tmp_path)]) == 0
    assert (tmp_path / "tiny" / ARCHIVE).is_file()


def test_packing_into_the_shipped_folder_says_the_app_shows_it(
    tmp_path, make_tree, monkeypatch, capsys
) -> None:
    out = fabricate_out(tmp_path, make_tree)
    shipped = tmp_path / "zoo" / "reference"
    monkeypatch.setattr("pipeline.commands.reference.reference_root", lambda: shipped)
    assert pack_main(["--out", str(out), "--reference", "tiny"]) == 0
    assert (shipped / "tiny" / ARCHIVE).is_file()
    assert "every leaderboard app of this checkout offers it at once" in capsys.readouterr().err
    assert pack_main(["--out", str(out), "--reference", "tiny", "--into", str(tmp_path)]) == 0
    assert "note:" not in capsys.readouterr().err


def test_an_archive_that_reaches_outside_is_refused(tmp_path) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    with tarfile.open(folder / ARCHIVE, "w:xz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ReferenceError, match="cannot unpack"):
        Reference(folder).unpacked(tmp_path / "cache")
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not list((tmp_path / "cache" / "reference").iterdir())  # no half-unpacked folder


@pytest.mark.parametrize("ref", SHIPPED, ids=[r.name for r in SHIPPED])
def test_each_shipped_reference_zoo_is_small_complete_and_scores(ref: Reference, tmp_path) -> None:
    assert ref.archive.stat().st_size < 10e6
    # its summary says how its members started and at what size
    assert re.search(r"random initialisation|ImageNet weights", ref.summary), ref.summary
    assert re.search(r"\b\d+ px\b", ref.summary), ref.summary
    with tarfile.open(ref.archive) as tar:
        assert not [n for n in tar.getnames() if n.endswith(WEIGHTS) or "/raw/" in n]
    out = ref.unpacked(tmp_path / "cache")
    entries = find_entries(out)
    kinds = {e.kind for e in entries}
    assert kinds >= {"member", "ensemble", "adapted"}
    assert len([e for e in entries if e.kind == "member"]) >= 6
    long = long_table(entries, Scorer.of_zoo(out))
    board = ranked_table(long, "pbc")
    assert board["test_acc"].notna().all()
    assert board["test_acc"].max() > 0.9  # real numbers, not chance
    for lab in ("bccd", "tecom", "lisc"):
        assert long[long["set"] == lab]["accuracy"].notna().any(), lab
    # the versioned parts restrict the frozen keys too: BCCD's report part is 246 cells
    report = long_table(entries, Scorer.of_zoo(out, "report"))
    assert set(report[report["set"] == "bccd"]["n"]) == {246}


@pytest.mark.skipif(not SHIPPED, reason="no reference zoo under zoo/reference")
def test_the_leaderboard_command_ranks_a_reference_zoo(capsys) -> None:
    assert leaderboard_main(["--reference", SHIPPED[0].name, "--format", "csv"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("dataset,test_set,rank,name") and len(printed) > 8
    assert leaderboard_main(["--reference", SHIPPED[0].name, "--competition"]) == 2
    assert "read-only" in capsys.readouterr().err


@pytest.mark.skipif(not SHIPPED, reason="no reference zoo under zoo/reference")
def test_the_board_opens_on_the_reference_zoo_unless_a_zoo_is_named(
    tmp_path, make_tree, monkeypatch
) -> None:
    monkeypatch.delenv("WBCZOO_OUT", raising=False)
    monkeypatch.chdir(tmp_path)  # the user's own zoo: this empty folder
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.sidebar.radio(key="zoo").value.startswith("Reference")
    assert any("Reference zoo" in m.value and "read-only" in m.value for m in at.info)
    assert len(table(at)) >= 8
    open_page(at, "competition")
    assert not [b for b in at.button if b.key == "save"]  # nothing can be saved into it
    at.sidebar.radio(key="zoo").set_value(at.sidebar.radio(key="zoo").options[0]).run()
    assert any("No scored submissions" in m.value for m in at.info)
    monkeypatch.setenv("WBCZOO_OUT", str(fabricate_out(tmp_path, make_tree)))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert at.sidebar.radio(key="zoo").value.startswith("Your zoo")
    assert len(table(at)) == 3


def test_the_default_reference_comes_first(tmp_path) -> None:
    for name in ("a-zoo", "b-zoo", "c-zoo"):
        (tmp_path / name).mkdir()
        (tmp_path / name / ARCHIVE).write_bytes(b"")
    assert [r.name for r in references(tmp_path)] == ["a-zoo", "b-zoo", "c-zoo"]
    (tmp_path / DEFAULT).write_text("b-zoo\n")
    assert [r.name for r in references(tmp_path)] == ["b-zoo", "a-zoo", "c-zoo"]
    (tmp_path / DEFAULT).write_text("gone-zoo\n")  # a stale name changes nothing
    assert [r.name for r in references(tmp_path)] == ["a-zoo", "b-zoo", "c-zoo"]
