"""A built ensemble written as a zoo entry, as members are: submission files, calibration,
scores, the fitted method, and its ``meta.json``."""

from __future__ import annotations

import time
from pathlib import Path

import joblib
import numpy as np

from pipeline.ensembling.build import Ensemble
from pipeline.ensembling.methods import ESTIMATOR_FILE, GreedyEnsemble, StackEnsemble
from pipeline.evaluation import calibration
from pipeline.evaluation.answers import AnswerKeys
from pipeline.evaluation.metrics import accuracy
from pipeline.evaluation.scoring import score
from pipeline.io import atomic_write
from pipeline.runs import provenance
from pipeline.runs.entry import EntryWriter
from pipeline.runs.layout import METRICS_FILE, Layout
from pipeline.runs.metadata import EnsembleMeta, is_transductive


def save_ensemble(
    out: Path,
    ens: Ensemble,
    tag: str,
    classes: tuple,
    top: int | None,
    seed: int,
    keys: AnswerKeys,
    y_val: np.ndarray,
) -> None:
    """An ensemble as a zoo entry: its submissions (calibrated, the uncalibrated in ``raw/``),
    meta.json last, and in ``zoo/ensembles/<tag>/<name>/`` metrics.json (calibration per set)
    and the fitted method (``ensemble.joblib``, named in meta.json relative to that folder, so
    the zoo can move). ``top``: the K best members it chose from (None: all, or a list);
    ``seed``: of its out-of-fold folds."""
    entry = EntryWriter.open(out, tag, ens.name, EnsembleMeta.kind, classes)
    zoo_folder = Layout(out).ensemble(tag, ens.name)
    ids = {s: ens.members[0].sets[s].ids for s in ens.sets()}
    raw = {s: ens.predict(s) for s in ens.sets()}
    for set_name, probs in raw.items():
        entry.raw(set_name, ids[set_name], probs)
    sources = ens.members[0].meta.sets
    calib = calibration.calibrate_entry(entry, keys.of_sets(sources))
    scores = {
        s: score(ids[s], calibration.apply_temperature(probs, calib.temperature), classes,
                 keys.answers(sources[s]))
        for s, probs in raw.items()
        if sources.get(s)
    }  # fmt: skip
    per_set = calib.merge(scores)
    metas = [m.meta for m in ens.members]
    names = [m.name for m in ens.members]
    oof = (
        {}
        if ens.oof is None
        else {"accuracy": accuracy(ens.oof, y_val), "folds": ens.oof_folds, "seed": seed}
    )
    extra: dict = {
        "selection_metric": "out-of-fold validation accuracy" if oof else "validation accuracy",
        "versions": provenance.package_versions(),
        "git_commit": provenance.git_commit(),
    }
    if isinstance(ens.estimator, GreedyEnsemble):
        extra["multiset"] = dict(zip(names, (int(n) for n in ens.estimator.counts_), strict=True))
    if isinstance(ens.estimator, StackEnsemble):
        extra["stack_C"] = float(np.atleast_1d(ens.estimator.model_.C_)[0])
    meta = EnsembleMeta(
        name=ens.name,
        method=ens.method,
        members=tuple(names),
        member_weights=tuple(round(float(w), 6) for w in ens.estimator.weights_),
        estimator=ESTIMATOR_FILE,
        top=top,
        dataset=tag,
        classes=tuple(classes),
        norm=tuple(sorted({m.norm or "?" for m in metas})),
        member_inits=tuple(sorted({m.init or "?" for m in metas})),
        params=sum(int(m.params) for m in metas),
        gmacs=round(sum(float(m.gmacs or 0) for m in metas), 4),
        sets=sources,
        test_set=ens.members[0].meta.test_set,
        calibration=calib.meta,
        transductive=any(is_transductive(m) for m in metas),
        out_of_fold=oof,
        command=provenance.command_line("pipeline.ensemble"),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        extra=extra,
    )
    atomic_write(zoo_folder / ESTIMATOR_FILE, lambda f: joblib.dump(ens.estimator, f), binary=True)
    entry.finish(meta, zoo_folder / METRICS_FILE, {"summary": calib.summary(), "sets": per_set})
