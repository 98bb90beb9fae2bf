"""Headlines report the entries chosen on validation; the best on test appears only labelled."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.ensembling.build import METHODS, build
from pipeline.ensembling.candidates import load_candidates
from pipeline.ensembling.selection import chosen_on_validation
from pipeline.evaluation.answers import keys_of_zoo
from pipeline.evaluation.metrics import accuracy
from pipeline.ranking.reference import references

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "zoo" / "reference" / "pbc-fast64" / "README.md"]
SHIPPED = [r for r in references() if r.name == "pbc-fast64"]
pytestmark = pytest.mark.skipif(not SHIPPED, reason="no reference zoo pbc-fast64")


def archive_table() -> pd.DataFrame:
    """The reference zoo's ensembles table, read from its archive without unpacking it."""
    with tarfile.open(SHIPPED[0].archive) as tar:
        return pd.read_csv(tar.extractfile("zoo/ensembles-pbc.csv"))


def headline() -> str:
    paragraphs = (REPO / "README.md").read_text(encoding="utf-8").split("\n\n")
    return " ".join(next(p for p in paragraphs if p.startswith("Measured so far")).split())


def statements(text: str) -> list[str]:
    """Table rows, and the sentences of everything else."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    prose = " ".join(line for line in text.splitlines() if not line.startswith("|"))
    return rows + re.split(r"(?<=[.;])\s+(?=[A-Z*(`])", " ".join(prose.split()))


def percent(value: float) -> str:
    return f"{100 * value:.2f}"


def test_the_readme_headlines_the_reference_entries_chosen_on_validation() -> None:
    table = archive_table()
    member = chosen_on_validation(table).member
    text = headline()
    assert f"member chosen on validation (`{member['name']}`)" in text
    assert f"{percent(member['test_acc'])}%" in text
    named = re.search(r"ensemble chosen on validation \(`(ens-[\w-]+)`", text)
    assert named, text
    ensemble = table.set_index("name").loc[named[1]]
    assert f"{percent(ensemble['test_acc'])}%" in text


def test_test_best_figures_appear_only_labelled_as_such() -> None:
    table = archive_table()
    chosen = chosen_on_validation(table)
    for kind, picked in (("member", chosen.member), ("ensemble", chosen.ensemble)):
        rows = table[table["kind"].str.startswith(kind)]
        best = rows.loc[rows["test_acc"].idxmax()]
        assert best["name"] != picked["name"]  # else there is nothing to label
        for doc in DOCS:
            number = re.compile(rf"(?<![–\d.]){re.escape(percent(best['test_acc']))}(?![\d)])")
            said = [s for s in statements(doc.read_text()) if number.search(s)]
            assert said, (doc, best["name"])
            for statement in said:
                assert "best on test" in statement, (doc, statement)


@pytest.mark.slow  # rebuilds 10 ensembles
def test_out_of_fold_selection_on_the_reference_archive_names_the_readme_ensemble(
    tmp_path: Path,
) -> None:
    out = SHIPPED[0].unpacked(tmp_path / "cache")
    candidates = load_candidates(out / "submissions" / "pbc")
    keys = keys_of_zoo(out)
    val = candidates[0].sets["val"]
    answers = keys.key(candidates[0].meta.sets["val"])
    y = np.array([val.classes.index(answers[i]) for i in val.ids])
    rows = []
    for top, scope in ((4, "top4"), (None, "all")):
        for method in METHODS:
            ens = build(method, candidates, y, f"ens-{method}-{scope}", top)
            oof = np.nan if ens.oof is None else accuracy(ens.oof, y)
            rows.append({"name": ens.name, "kind": "ensemble", "val_acc_oof": oof,
                         "val_acc": accuracy(ens.predict("val"), y)})  # fmt: skip
    chosen = chosen_on_validation(pd.DataFrame(rows)).ensemble
    assert f"ensemble chosen on validation (`{chosen['name']}`" in headline()
    assert f"{percent(chosen['val_acc_oof'])}%" in (REPO / "README.md").read_text()
