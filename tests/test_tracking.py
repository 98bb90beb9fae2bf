"""``--track mlflow``: members and ensembles as runs in the local SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.commands import ensemble as ensemble_cli
from pipeline.commands import zoo
from pipeline.training.recipes import get_recipe, override

mlflow = pytest.importorskip("mlflow")

COUNTS = {"eosinophil": 8, "lymphocyte": 8, "neutrophil": 8}
FAST = override(get_recipe("fast"), {"image_size": 32, "epochs": 2, "batch_size": 8}).name
MEMBER = f"squeezenet1_1-{FAST}-s0"


def runs(out: Path) -> dict[str, object]:
    client = mlflow.tracking.MlflowClient(f"sqlite:///{out / 'zoo' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("wbczoo")
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}


@pytest.mark.trains
def test_zoo_and_ensembles_are_logged_to_the_local_store(
    tmp_path: Path, make_tree, zoo_args
) -> None:
    make_tree(tmp_path / "cells", COUNTS, size=(36, 36))
    make_tree(tmp_path / "lab2", {"Lymphocyte": 3, "Neutrophil": 3}, size=(30, 30), seed=9)
    out = tmp_path / "out"
    args = zoo_args(tmp_path / "cells", out, "--eval", f"lab2={tmp_path / 'lab2'}",
                    "--track", "mlflow", epochs=2)  # fmt: skip
    assert zoo.main(args) == 0
    assert ensemble_cli.main(["--out", str(out), "--method", "soft", "--top", "0",
                              "--track", "mlflow"]) == 0  # fmt: skip
    logged = runs(out)
    assert set(logged) == {MEMBER, "ens-soft-all"}
    member = logged[MEMBER]
    params, metrics = member.data.params, member.data.metrics
    assert params["recipe.name"] == FAST and params["recipe.epochs"] == "2"
    assert params["weights"] == "none"
    # the fingerprints are the member's own (meta.json), not a second way of computing them
    meta = json.loads((out / "submissions" / "cells" / MEMBER / "meta.json").read_text())
    assert params["data_fingerprint"] == meta["data_fingerprint"] != "None"
    assert params["test_set"] == meta["test_set"] != "None"
    assert float(params["temperature"]) > 0
    assert {"test_accuracy", "test_ece", "test_ece_raw", "lab2_acc_at_80", "val_acc"} <= set(
        metrics
    )
    client = mlflow.tracking.MlflowClient(f"sqlite:///{out / 'zoo' / 'mlflow.db'}")
    curve = client.get_metric_history(member.info.run_id, "train_loss")
    assert sorted(m.step for m in curve) == [1, 2]  # one point per epoch
    files = {a.path for a in client.list_artifacts(member.info.run_id)}
    assert {"history.csv", "metrics.json", "meta.json", "confusion-test.csv"} <= files
    ensemble = logged["ens-soft-all"]
    assert ensemble.data.tags["wbczoo.kind"] == "ensemble"
    assert ensemble.data.params["members"] == MEMBER
    assert "test_ece" in ensemble.data.metrics
    # the artefacts stay under the output folder, not in the current one
    assert (out / "zoo" / "mlflow-artifacts").is_dir() and not Path("mlruns").exists()
    # finished members are skipped, and not logged twice
    assert zoo.main(args) == 0
    assert len(runs(out)) == 2


def test_a_store_that_cannot_be_opened_stops_the_zoo_before_training(
    tmp_path: Path, capsys
) -> None:
    bad = ["--models", "squeezenet1_1", "--out", str(tmp_path / "out"), "--track", "mlflow",
           "--track-uri", "nosuchscheme://x", "--no-progress"]  # fmt: skip
    assert zoo.main(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --track-uri nosuchscheme://x: cannot open the tracking store")
    assert not (tmp_path / "out" / "zoo" / "members").exists()
