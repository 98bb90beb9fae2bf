"""Names that become paths are plain names wherever they enter; user text in messages is cut."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.commands import ensemble as ensemble_cli
from pipeline.commands import tune, zoo
from pipeline.commands.explain import main as explain_main
from pipeline.commands.options import parse_eval, parse_source
from pipeline.inference.load import find_meta
from pipeline.names import (
    BadName,
    ensemble_name,
    is_zoo_name,
    member_name,
    plain_name,
    quote,
    without_seed,
)
from pipeline.training.jobs import DataSpec, load_data
from pipeline.training.recipes import get_recipe

HOSTILE = ["../../../../escape", "..", ".", ".hidden", "a/b", "a\\b", "-rf", "*", "a b", "",
           "x" * 129, "é", "+x"]  # fmt: skip


def test_plain_names() -> None:
    good_names = ("bccd", "resnet18-fast-s0", "resnet18-fast+4fc3f4-s0+adabn", "ens-soft-top4",
                  "_x", "a.b_c-9", "x" * 128)  # fmt: skip
    for good in good_names:
        assert plain_name(good, "name") == good
    for bad in HOSTILE:
        with pytest.raises(BadName, match=r"^set name .* is not a plain name: use at most 128 "):
            plain_name(bad, "set name")
    assert issubclass(BadName, ValueError)


def test_quote_cuts_long_text_to_one_short_line() -> None:
    assert quote("a.jpg") == "'a.jpg'"
    assert quote("a\nb") == "'a\\nb'"
    long = quote("x" * 5_000_000)
    assert long == repr("x" * 60) + "... (5000000 characters)"
    message = str(pytest.raises(BadName, plain_name, "y" * 1_000_000, "--eval name").value)
    assert len(message) < 250 and "(1000000 characters)" in message


def test_eval_name_never_becomes_a_path_outside_out(tmp_path: Path, make_tree, capsys) -> None:
    """``--eval ../../../../escape=DIR`` used to write escape.csv outside --out."""
    make_tree(tmp_path / "cells", {"basophil": 8, "lymphocyte": 8}, size=(36, 36))
    out = tmp_path / "a" / "b" / "c" / "out"
    code = zoo.main(["--dataset", "folder", "--data", str(tmp_path / "cells"), "--models",
                     "squeezenet1_1", "--epochs", "1", "--image-size", "32", "--weights", "none",
                     "--eval", f"../../../../escape={tmp_path / 'cells'}", "--out", str(out),
                     "--cache-dir", str(tmp_path / "cache"), "--no-progress"])  # fmt: skip
    assert code == 2
    assert "--eval name '../../../../escape' is not a plain" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.rglob("escape*"))


@pytest.mark.parametrize("name", ["../../../../escape", "..", ".hidden", "a/b", "*", "-rf"])
def test_every_entry_point_refuses_a_hostile_name(tmp_path: Path, name: str, capsys) -> None:
    with pytest.raises(BadName):
        parse_source(f"{name}=/data/bccd")
    with pytest.raises(BadName):
        parse_eval([f"{name}=/data/bccd"], "--eval")
    with pytest.raises(BadName):
        find_meta(tmp_path, name)
    with pytest.raises(BadName):
        find_meta(tmp_path, "resnet18-fast-s0", name)
    assert ensemble_cli.main(["--out", str(tmp_path), f"--tag={name}"]) == 2
    assert "is not a plain name" in capsys.readouterr().err
    assert explain_main(["--member", "m", "--out", str(tmp_path), "gradcam",
                         f"--mistakes-on={name}"]) == 2  # fmt: skip
    assert "is not a plain name" in capsys.readouterr().err
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"name": name}))
    with pytest.raises(BadName, match="recipe name"):
        get_recipe(str(recipe))


def test_dataset_folder_and_study_names_are_plain(tmp_path: Path, make_tree, capsys) -> None:
    make_tree(tmp_path / "my cells", {"basophil": 8, "lymphocyte": 8}, size=(36, 36))
    spec = DataSpec("folder", tmp_path / "my cells", tmp_path / "cache", progress=False)
    with pytest.raises(BadName, match=r"the dataset name of .*my cells 'my cells' is not a plain"):
        load_data(spec)
    (tmp_path / "my cells").rename(tmp_path / "cells")
    assert tune.main(["--arch", "squeezenet1_1", "--study", "../x", "--dataset", "folder",
                      "--data", str(tmp_path / "cells"), "--out", str(tmp_path / "out"),
                      "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 2  # fmt: skip
    assert "--study '../x' is not a plain name" in capsys.readouterr().err
    assert not (tmp_path / "out" / "zoo" / "x.db").exists() and not (tmp_path / "x.db").exists()
    load_data.cache_clear()


def test_the_zoos_own_names_are_made_and_read_in_one_place() -> None:
    assert member_name("resnet18", "fast+1a2b3c", 2) == "resnet18-fast+1a2b3c-s2"
    assert ensemble_name("soft", "top4") == "ens-soft-top4"
    assert ensemble_name("stack", "all", pooled=True) == "ens-stack-all-pooled"
    assert without_seed("resnet18-fast+1a2b3c-s2") == "resnet18-fast+1a2b3c"
    assert without_seed("resnet18-fast-s0+adabn+tta") == "resnet18-fast+adabn+tta"
    assert without_seed("ens-soft-top4") == "ens-soft-top4"
    assert is_zoo_name("Resnet18-Fast-S0") and is_zoo_name("ENS-anything")
    assert not is_zoo_name("my-team-v2") and not is_zoo_name("seeds-s1x")
