"""Adapted ensembles: a fitted ensemble's method applied to its members' adapted entries.

An ensemble keeps the members and weights it chose on validation; ``<ensemble>+adabn+tta``
recombines the members' ``+adabn+tta`` predictions with them, so a lab change is met by every
member at once. Members' adapted entries that are missing are made first (``adapt_member``);
a member without BatchNorm contributes its TTA (or plain) predictions, which is what AdaBN
leaves of it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

from pipeline.adapted.members import (
    SetResult,
    adapt_member,
    adapted_calibration,
    adapted_entry,
    fit_outputs,
    write_adapted,
)
from pipeline.data.store import ImageStore
from pipeline.errors import UserError
from pipeline.evaluation.answers import keys_of_zoo
from pipeline.evaluation.calibration import FIT_SET, apply_temperature
from pipeline.evaluation.scoring import score
from pipeline.inference.adaptation import Adaptation, without_batchnorm
from pipeline.inference.load import fitted_method
from pipeline.runs import provenance
from pipeline.runs.layout import Layout
from pipeline.runs.metadata import EnsembleMeta, MetaError, is_transductive, read_entry
from pipeline.runs.submissions import Submission, read_submission


def make_missing(
    out: Path,
    dataset: str,
    member: str,
    adaptations: list[Adaptation],
    store: ImageStore,
    device: str,
    module: str,
) -> None:
    """Make the member's adapted entries that are missing or were made otherwise, in one pass
    (the member is loaded and its sets decoded once)."""
    missing = [a for a in adaptations if not made_with(Layout(out), dataset, member, a)]
    if missing:
        adapt_member(out, member, missing, store, dataset, device, module)


def member_predictions(
    layout: Layout, dataset: str, member: str, adaptation: Adaptation
) -> dict[str, Submission]:
    """Set -> the member's (calibrated) predictions under ``adaptation``, from its adapted
    entry, validation from the outputs its temperature was fitted on; a member without
    BatchNorm, which has no such entry, gives its entry without the BatchNorm method
    (``adapt_member`` writes ``+tta`` for its ``+adabn+tta``)."""
    for candidate in (adaptation, without_batchnorm(adaptation)):
        name = member + candidate.suffix
        files = layout.entry(dataset, name)
        if files.meta.is_file():
            preds = {s: read_submission(p) for s, p in files.prediction_files().items()}
            fit = layout.adapted_fit(dataset, name) / f"{FIT_SET}.csv"
            if FIT_SET not in preds and fit.is_file():  # an adapted entry's, calibrated as it
                raw = read_submission(fit)
                temperature = read_entry(files.meta).temperature
                preds[FIT_SET] = replace(raw, probs=apply_temperature(raw.probs, temperature))
            return preds
    raise UserError(f"{layout.submission(dataset, member)}: member {member!r} has no predictions")


def made_with(layout: Layout, dataset: str, member: str, adaptation: Adaptation) -> bool:
    """Whether the member's entry for ``adaptation`` exists and was made with these settings
    and a temperature of its own (entries of earlier versions reused the member's)."""
    name = member + adaptation.suffix
    try:
        meta = read_entry(layout.meta(dataset, name))
    except (MetaError, FileNotFoundError):
        return False
    return (
        getattr(meta, "adapted_from", None) == member
        and meta.adaptation == asdict(adaptation)
        and (layout.adapted_fit(dataset, name) / f"{FIT_SET}.csv").is_file()
    )


def adapt_ensemble(
    out: Path,
    name: str,
    meta: EnsembleMeta,
    dataset: str,
    adaptations: list[Adaptation],
    store: ImageStore,
    device: str = "auto",
    module: str = "pipeline.adapt",
) -> list[SetResult]:
    """Write ``<name><suffix>`` for every adaptation of ensemble ``name`` and return its scores
    on every set its members share."""
    if meta.adapted_from:
        raise UserError(f"{name!r} is already adapted: adapt {meta.adapted_from!r} instead")
    if pooled := [m for m in meta.members if m.endswith("-pooled")]:
        raise UserError(
            f"{name!r} pools seeds ({pooled[0]}): their adapted entries cannot be pooled back; "
            "adapt an ensemble built without --pool-seeds"
        )
    estimator = fitted_method(out, dataset, name, meta)
    keys = keys_of_zoo(out)
    entries = {
        a: adapted_entry(out, dataset, name, a, EnsembleMeta.kind, meta.classes)
        for a in adaptations
    }
    results = []
    for member in meta.members:
        make_missing(out, dataset, member, adaptations, store, device, module)
    # an ensemble built before ensembles carried the flag: its members still say
    seen = meta.transductive or any(
        is_transductive(read_entry(Layout(out).meta(dataset, m))) for m in meta.members
    )
    for adaptation in adaptations:
        entry = name + adaptation.suffix
        preds = [member_predictions(Layout(out), dataset, m, adaptation) for m in meta.members]
        writer = entries[adaptation]
        shared = sorted(set.intersection(*(set(p) for p in preds)), key=lambda s: s != FIT_SET)
        adapted = meta.with_changes(
            name=entry,
            adapted_from=name,
            adaptation=asdict(adaptation),
            calibration={},  # without validation outputs to fit on: uncalibrated, and says so
            transductive=seen or adaptation.transductive,
            command=provenance.command_line(module),
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        for set_name in shared:
            raw = estimator.predict_proba([p[set_name].probs for p in preds])
            ids = preds[0][set_name].ids
            source = meta.source(set_name)
            if set_name == FIT_SET:  # first: its own temperature, as its members have
                fit_outputs(out, dataset, entry, ids, raw, meta.classes)
                calib = adapted_calibration(ids, raw, meta.classes, keys.answers(source))
                adapted = adapted.with_changes(calibration=calib)
                continue
            write_adapted(writer, set_name, ids, raw, adapted)
            if source is not None:
                s = score(ids, raw, meta.classes, keys.answers(source), auc=False)
                results.append(SetResult(entry, set_name, s["n"],
                                         s["accuracy"], s["balanced_accuracy"]))  # fmt: skip
        writer.finish(adapted)
    return results


def ensemble_scores(out: Path, name: str, meta: EnsembleMeta, dataset: str) -> list[SetResult]:
    """The ensemble's own scores on the sets its adapted entries have (all but validation),
    printed beside them."""
    keys = keys_of_zoo(out)
    results = []
    for set_name, source in sorted(meta.sets.items()):
        path = Layout(out).entry(dataset, name).predictions(set_name)
        if set_name == FIT_SET or not path.is_file():
            continue
        sub = read_submission(path)
        s = score(sub.ids, sub.probs, sub.classes, keys.answers(source), auc=False)
        results.append(SetResult(name, set_name, s["n"], s["accuracy"], s["balanced_accuracy"]))
    return results
