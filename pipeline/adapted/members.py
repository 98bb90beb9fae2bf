"""Adapted entries: a trained member's predictions after test-time adaptation, one entry each.

``<member><suffix>`` (e.g. ``resnet18-fast-s0+adabn``) is a leaderboard entry of kind
``adapted`` beside its member, with a submission file for every set the member was scored on
but validation (nothing is chosen on an adapted entry), and the member's metadata plus
``adapted_from``, ``adaptation``, ``transductive`` (the member's or the adaptation's) and its own
temperature, fitted on the adaptation's validation outputs (kept in ``Layout.adapted_fit``).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from pipeline.adapted.compose import adapted_set
from pipeline.data.store import ImageSet, ImageStore, View
from pipeline.errors import UserError
from pipeline.evaluation.answers import AnswerKeys
from pipeline.evaluation.calibration import FIT_SET, apply_temperature, calibrate_outputs
from pipeline.evaluation.scoring import AnswerKey, score
from pipeline.inference.adaptation import (
    Adaptation,
    applicable,
    few_images_warning,
)
from pipeline.inference.load import LoadedMember, load_member
from pipeline.runs import provenance
from pipeline.runs.entry import EntryWriter
from pipeline.runs.layout import Layout
from pipeline.runs.metadata import AdaptedMeta, EntryMeta, MetaError, read_entry
from pipeline.runs.submissions import write_submission


class EntryClash(UserError, ValueError):
    """The adapted entry's folder belongs to something else."""


@dataclass(frozen=True)
class SetResult:
    entry: str
    set_name: str
    n: int
    accuracy: float
    balanced_accuracy: float


def member_views(
    member: LoadedMember, store: ImageStore
) -> dict[str, tuple[View, tuple[str, ...]]]:
    """Every set the member was scored on, validation first, decoded at its size, crop and
    stain, from its answer-key sources (the same images its own submissions hold), with the
    set's vocabulary."""
    keys = AnswerKeys()
    registered: set[Path] = set()
    views = {}
    for set_name, source in sorted(member.meta.sets.items(), key=lambda s: s[0] != FIT_SET):
        ds = keys.dataset(source)
        if ds.root not in registered:
            registered.add(ds.root)
            store.register(ds)
        records = tuple(keys.records(source))
        image_set = ImageSet(set_name, ds.name, ds.root, records, ds.adapter, source.get("split"))
        view = store.view(image_set, member.image_size, member.crop, member.stain)
        views[set_name] = (view, ds.classes)
    return views


def adapted_meta(
    member: LoadedMember, adaptation: Adaptation, module: str, calibration: dict
) -> AdaptedMeta:
    inherited = {f.name: getattr(member.meta, f.name) for f in fields(member.meta)}
    return AdaptedMeta(
        **inherited
        | {
            "name": member.name + adaptation.suffix,
            "adapted_from": member.name,
            "adaptation": asdict(adaptation),
            "calibration": calibration,
            # a member that saw evaluation images (its backbone did) stays transductive
            "transductive": member.meta.transductive or adaptation.transductive,
            "command": provenance.command_line(module),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )


def adapted_entry(
    out: Path, dataset: str, name: str, adaptation: Adaptation, kind: str, classes: tuple
) -> EntryWriter:
    """The writer of entry ``name``'s adaptation (of ``kind``); only an earlier adaptation of
    the same entry may be replaced there, never an entry of another kind."""
    entry = name + adaptation.suffix
    files = Layout(out).entry(dataset, entry)
    if files.folder.exists():
        try:
            meta = read_entry(files.meta)
        except MetaError:
            meta = None
        if getattr(meta, "adapted_from", None) != name:
            raise EntryClash(
                f"{files.folder} exists and is not an adaptation of {name}: "
                "move it away (nothing was written)"
            )
    return EntryWriter.open(out, dataset, entry, kind, classes)


def fit_outputs(
    out: Path, dataset: str, name: str, ids: list[str], probs: np.ndarray, classes: tuple[str, ...]
) -> None:
    """Keep the validation outputs an adapted entry's temperature was fitted on, outside its
    submissions (``Layout.adapted_fit``); an adapted ensemble fits its own on its members'."""
    write_submission(Layout(out).adapted_fit(dataset, name) / f"{FIT_SET}.csv", ids, probs, classes)


def adapted_calibration(
    ids: list[str], probs: np.ndarray, classes: tuple[str, ...], answers: AnswerKey
) -> dict:
    """The temperature of an adapted entry, fitted on its adaptation's validation outputs
    (adapting to validation itself): the member's own was fitted on plain outputs, which TTA
    smooths and AdaBN or TENT shift."""
    return calibrate_outputs(ids, probs, classes, answers, "adapted validation outputs")


def write_adapted(
    entry: EntryWriter, set_name: str, ids: list[str], probs: np.ndarray, meta: EntryMeta
) -> None:
    """One set's adapted predictions, laid out as those of the entry ``meta`` describes:
    calibrated by its temperature, the raw copy in ``raw/``."""
    if meta.calibration:
        entry.raw(set_name, ids, probs)
        probs = apply_temperature(probs, meta.temperature)
    entry.predictions(set_name, ids, probs)


def adapt_member(
    out: Path,
    name: str,
    adaptations: list[Adaptation],
    store: ImageStore,
    dataset: str | None = None,
    device: str = "auto",
    module: str = "pipeline.adapt",
) -> list[SetResult]:
    """Write one adapted entry per adaptation of member ``name``; return the scores of the
    member itself (adaptation ``none``) and of each adapted entry on every set."""
    member = load_member(out, name, dataset, device)
    kept = applicable(adaptations, member.model)
    if skipped := [a.suffix for a in adaptations if a not in kept]:
        warnings.warn(
            f"{member.name} has no BatchNorm layer: {', '.join(skipped)} would repeat its "
            "entry without AdaBN or TENT, so no such entry is written",
            stacklevel=2,
        )
    adaptations = kept
    entries = {
        a: adapted_entry(out, member.dataset, member.name, a, AdaptedMeta.kind, member.classes)
        for a in adaptations
    }
    views = member_views(member, store)
    for set_name, (view, _) in views.items():
        what = f"{member.name} on {set_name}"
        if warning := few_images_warning(len(view.ids), what, adaptations):
            warnings.warn(warning, stacklevel=2)
    results = []
    for adaptation in [Adaptation(), *adaptations]:
        entry = member.name + adaptation.suffix
        # without validation outputs to fit on, an adapted entry says it is uncalibrated
        meta = adapted_meta(member, adaptation, module, {}) if adaptation.active else member.meta
        source = None  # validation's, for the output-level methods: fitted first
        for set_name, (view, vocabulary) in views.items():
            if set_name == FIT_SET and not adaptation.active:
                continue  # the member's own temperature and scores stand
            probs, source = adapted_set(member, view, vocabulary, adaptation, source)
            answers = AnswerKey(dict(zip(view.ids, view.labels, strict=True)), vocabulary)
            if set_name == FIT_SET:  # first: the temperature the other sets are written with
                fit_outputs(out, member.dataset, entry, view.ids, probs, member.classes)
                calib = adapted_calibration(view.ids, probs, member.classes, answers)
                meta = adapted_meta(member, adaptation, module, calib)
                continue
            if adaptation.active:
                write_adapted(entries[adaptation], set_name, view.ids, probs, meta)
            s = score(view.ids, probs, member.classes, answers, auc=False)
            results.append(
                SetResult(entry, set_name, s["n"], s["accuracy"], s["balanced_accuracy"])
            )
        if adaptation.active:
            entries[adaptation].finish(meta)
    return results
