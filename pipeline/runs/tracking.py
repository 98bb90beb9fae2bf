"""Experiment tracking (``--track mlflow``): every member and ensemble as an MLflow run.

Runs are logged by the driver from the files a member or ensemble leaves (meta.json,
history.csv, metrics.json), so every executor's members are tracked the same way. The default
store is SQLite under the zoo's output folder (``OUT/zoo/mlflow.db``, artefacts beside it);
``--track-uri`` takes any MLflow tracking URI.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import UserError
from pipeline.io import read_json
from pipeline.runs.layout import HISTORY_FILE, METRICS_FILE, Layout
from pipeline.runs.metadata import EnsembleMeta, MetaError, read_entry

TRACKERS = ("mlflow",)
DEFAULT_EXPERIMENT = "wbczoo"
SET_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
CALIBRATION_METRICS = ("ece_raw", "ece", "nll_raw", "nll", "acc_at_90", "acc_at_80", "aurc")
MEMBER_PARAMS = (  # keys of a member's meta.json
    "arch",
    "family",
    "norm",
    "seed",
    "weights",
    "weights_requested",
    "image_size",
    "params",
    "gmacs",
    "precision",
    "device",
    "git_commit",
)


def add_tracking_args(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("experiment tracking")
    group.add_argument(
        "--track", choices=TRACKERS, help="log every run to MLflow (default: no tracking)"
    )
    group.add_argument(
        "--track-uri",
        help="MLflow tracking URI, e.g. http://host:5000 (default: sqlite:///OUT/zoo/mlflow.db)",
    )
    group.add_argument(
        "--track-experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name"
    )


def default_uri(out: Path) -> str:
    return f"sqlite:///{(out / 'zoo' / 'mlflow.db').resolve()}"


def artifact_root(uri: str) -> str | None:
    """Artefacts of a SQLite store go beside its file (MLflow would use ./mlruns of the current
    folder); other stores decide for themselves."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "mlflow-artifacts").resolve().as_uri()


def flatten(prefix: str, values: Mapping[str, Any]) -> dict[str, str]:
    return {f"{prefix}.{k}": str(v) for k, v in values.items()}


def set_metrics(sets: Mapping[str, Mapping]) -> dict[str, float]:
    """Final scores and calibration figures per evaluation set, as ``<set>_<metric>``."""
    out = {}
    for name, scores in sets.items():
        calibration = scores.get("calibration", {})
        for key, value in [
            *((k, scores.get(k)) for k in SET_METRICS),
            *((k, calibration.get(k)) for k in CALIBRATION_METRICS),
        ]:
            if isinstance(value, int | float) and math.isfinite(value):
                out[f"{name}_{key}"] = float(value)
    return out


def confusion_tables(sets: Mapping[str, Mapping]) -> dict[str, pd.DataFrame]:
    """Each set's confusion matrix (rows: true, columns: predicted) by artefact file name."""
    return {
        f"confusion-{name}.csv": pd.DataFrame(
            scores["confusion_matrix"], index=scores["classes"], columns=scores["classes"]
        ).rename_axis("true")
        for name, scores in sets.items()
        if "confusion_matrix" in scores
    }


@dataclass
class MlflowTracker:
    uri: str
    experiment: str = DEFAULT_EXPERIMENT
    _client: Any = field(default=None, repr=False)
    _experiment_id: str = ""

    def __post_init__(self) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise UserError(
                f"--track mlflow needs MLflow ({exc}): pip install -r requirements.txt"
            ) from None
        self._client = MlflowClient(tracking_uri=self.uri)
        found = self._client.get_experiment_by_name(self.experiment)
        self._experiment_id = (
            found.experiment_id
            if found is not None
            else self._client.create_experiment(self.experiment, artifact_root(self.uri))
        )

    def has_run(self, kind: str, dataset: str, name: str) -> bool:
        query = (
            f"tags.`wbczoo.kind` = '{kind}' and tags.`wbczoo.dataset` = '{dataset}' "
            f"and tags.`wbczoo.name` = '{name}'"
        )
        return bool(self._client.search_runs([self._experiment_id], query, max_results=1))

    def log_run(
        self,
        kind: str,
        dataset: str,
        name: str,
        params: Mapping[str, str],
        history: pd.DataFrame | None,
        metrics: Mapping[str, float],
        artefacts: Iterable[Path],
        tables: Mapping[str, pd.DataFrame],
    ) -> str:
        """One finished run: parameters, per-epoch curves, final metrics, files and tables."""
        from mlflow.entities import Metric, Param

        run = self._client.create_run(
            self._experiment_id,
            run_name=name,
            tags={"wbczoo.kind": kind, "wbczoo.dataset": dataset, "wbczoo.name": name},
        )
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        curves = []
        if history is not None:
            for row in history.to_dict("records"):
                step = int(row["epoch"])
                curves += [
                    Metric(k, float(v), now, step)
                    for k, v in row.items()
                    if k != "epoch" and isinstance(v, int | float)
                ]
        values = curves + [Metric(k, v, now, 0) for k, v in metrics.items()]
        settings = [Param(k, v[:6000]) for k, v in params.items()]
        # MLflow takes at most 100 parameters and 1000 metrics per batch
        for i in range(0, len(settings), 100):
            self._client.log_batch(run_id, params=settings[i : i + 100])
        for i in range(0, len(values), 1000):
            self._client.log_batch(run_id, metrics=values[i : i + 1000])
        for path in artefacts:
            if path.is_file():
                self._client.log_artifact(run_id, str(path))
        with tempfile.TemporaryDirectory() as tmp:
            for file_name, table in tables.items():
                table.to_csv(Path(tmp) / file_name)
                self._client.log_artifact(run_id, str(Path(tmp) / file_name))
        self._client.set_terminated(run_id)
        return run_id

    def log_member(self, out: Path, dataset: str, name: str) -> str:
        member = Layout(out).member(dataset, name)
        meta_file = Layout(out).meta(dataset, name)
        meta = read_entry(meta_file)
        metrics = read_json(member / METRICS_FILE)
        stored = meta.to_json()  # parameters are named as meta.json names them
        params = {k: str(v) for k in MEMBER_PARAMS if (v := stored.get(k)) is not None}
        params |= flatten("recipe", getattr(meta, "recipe", {}))
        params |= {
            "data_fingerprint": str(getattr(meta, "data_fingerprint", None)),  # train and val
            "test_set": str(meta.test_set),
            "dataset": dataset,
            "temperature": str(meta.calibration.get("temperature")),
        }
        history = pd.read_csv(member / HISTORY_FILE) if (member / HISTORY_FILE).is_file() else None
        files = [
            member / HISTORY_FILE,
            member / METRICS_FILE,
            meta_file,
        ]
        return self.log_run(
            "member",
            dataset,
            name,
            params,
            history,
            {**summary_metrics(metrics), **set_metrics(metrics["sets"])},
            files,
            confusion_tables(metrics["sets"]),
        )

    def member_finished(self, out: Path, dataset: str, result: Mapping) -> None:
        """Log a member the zoo just trained, or one it skipped that no run records yet."""
        name, status = result["member"], result["status"]
        if status == "trained" or (
            status == "skipped (done)" and not self.has_run("member", dataset, name)
        ):
            self.log_member(out, dataset, name)

    def log_ensemble(self, out: Path, dataset: str, name: str) -> str:
        folder = Layout(out).ensemble(dataset, name)
        meta_file = Layout(out).meta(dataset, name)
        meta = read_entry(meta_file)
        if not isinstance(meta, EnsembleMeta):
            raise MetaError(f"{meta_file}: not an ensemble")
        metrics = read_json(folder / METRICS_FILE)
        params = {
            "method": meta.method,
            "members": ",".join(meta.members),
            "weights": ",".join(str(w) for w in meta.member_weights),
            "top": str(meta.top),
            "dataset": dataset,
            "temperature": str(meta.calibration.get("temperature")),
        }
        files = [folder / METRICS_FILE, meta_file]
        return self.log_run(
            "ensemble",
            dataset,
            name,
            params,
            None,
            set_metrics(metrics["sets"]),
            files,
            confusion_tables(metrics["sets"]),
        )


def summary_metrics(metrics: Mapping) -> dict[str, float]:
    """The numeric fields of a member's summary that are not per-set scores (time, epoch)."""
    keep = ("best_epoch", "train_time_s", "temperature")
    return {k: float(v) for k, v in metrics.get("summary", {}).items() if k in keep}


def make_tracker(args: argparse.Namespace, out: Path) -> MlflowTracker | None:
    """The tracker the options ask for; a store that cannot be opened ends the command (exit 2)
    before anything runs."""
    if args.track is None:
        return None
    uri = args.track_uri or default_uri(out)
    if uri == default_uri(out):
        (Layout(out).zoo).mkdir(parents=True, exist_ok=True)
    try:
        return MlflowTracker(uri, args.track_experiment)
    except UserError:
        raise
    except Exception as exc:  # MLflow raises many kinds for an unusable store
        raise UserError(f"--track-uri {uri}: cannot open the tracking store ({exc})") from None
