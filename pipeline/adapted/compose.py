"""One evaluation set through a composed adaptation, always in the same order: the
BatchNorm-level method (adabn, tent), SHOT, TTA, then the output-level methods (LAME, then EM
or BBSE), each on the previous one's result.

The output-level methods work on calibrated probabilities restricted to the set's classes (its
vocabulary, as scoring restricts them; never its labels) and need what validation says about
the training lab: the temperature of the outputs adapted up to that stage, the class priors
(validation is a stratified share of the training split) and, for BBSE, the soft confusion.
Validation is adapted first, the same way, and fitted on (``SourceFit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.adapted.labelshift import bbse, class_priors, em_priors, normalise, soft_confusion
from pipeline.adapted.lame import lame
from pipeline.adapted.shot import shot
from pipeline.data.store import View
from pipeline.evaluation.calibration import apply_temperature, fit_temperature
from pipeline.inference.adaptation import (
    Adaptation,
    adapt_batchnorm,
    probabilities,
    reestimate,
    restored,
)
from pipeline.inference.features import batches, penultimate
from pipeline.inference.load import LoadedMember
from pipeline.models.factory import get_module


@dataclass(frozen=True)
class SourceFit:
    """Validation's calibrated probabilities after LAME (over the member's classes) and its
    labels, from the same adaptation, with the temperature that calibrated them."""

    temperature: float
    probs: np.ndarray
    y: np.ndarray

    def restricted(self, columns: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Its images labelled with one of ``columns``, their probabilities over those
        (renormalised) and labels as indices into them."""
        keep = np.isin(self.y, columns)
        index = {c: i for i, c in enumerate(columns)}
        y = np.array([index[c] for c in self.y[keep]], dtype=np.int64)
        return normalise(self.probs[keep][:, list(columns)]), y


def set_columns(classes: Sequence[str], vocabulary: Sequence[str]) -> list[int]:
    """The member's class indices a set can hold (its vocabulary)."""
    allowed = set(vocabulary)
    return [i for i, c in enumerate(classes) if c in allowed]


def model_outputs(
    member: LoadedMember, view: View, adaptation: Adaptation, columns: list[int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities after the model-level steps (AdaBN or TENT, SHOT, TTA) and, for LAME,
    the penultimate features of the model so adapted; the member is restored afterwards."""
    model, precision, rows = member.model, member.precision, view.rows
    needs_features = "lame" in adaptation.outputs
    with restored(model):
        adapt_batchnorm(model, view.images, rows, precision, adaptation)
        if adaptation.shot:
            head = get_module(model, member.entry.head)
            shot(model, head, view.images, rows, precision, columns)
            if adaptation.method != "none":  # the features moved: their statistics again
                reestimate(model, view.images, rows, precision, adaptation.batch)
        probs = probabilities(model, view.images, rows, precision, adaptation.tta, adaptation.batch)
        features = None
        if needs_features:
            inputs = batches(view.images, rows, precision, adaptation.batch)
            features = penultimate(model, member.entry, inputs)
    return probs, features


def labelled(labels: Sequence[str], classes: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """The rows whose label is one of the member's classes, and those labels' indices."""
    index = {c: i for i, c in enumerate(classes)}
    known = [i for i, label in enumerate(labels) if label in index]
    return known, np.array([index[labels[i]] for i in known], dtype=np.int64)


def calibrated_lame(
    probs: np.ndarray,
    features: np.ndarray | None,
    columns: list[int],
    outputs: tuple[str, ...],
    temperature: float,
) -> np.ndarray:
    """Calibrated probabilities over ``columns`` (renormalised), then LAME if asked."""
    p = normalise(apply_temperature(probs, temperature)[:, columns])
    return lame(p, features) if "lame" in outputs else p


def label_shift(
    p: np.ndarray, columns: list[int], outputs: tuple[str, ...], source: SourceFit
) -> np.ndarray:
    """EM or BBSE (whichever ``outputs`` names, if either) of probabilities over ``columns``,
    the source priors and confusion taken from validation over the same classes."""
    if "em" not in outputs and "bbse" not in outputs:
        return p
    val_probs, val_y = source.restricted(columns)
    priors = class_priors(val_y, len(columns))
    if "em" in outputs:
        return em_priors(p, priors).probs
    return bbse(p, priors, soft_confusion(val_probs, val_y)).probs


def widened(p: np.ndarray, columns: list[int], width: int) -> np.ndarray:
    """Probabilities over ``columns`` back over all ``width`` classes (zero elsewhere)."""
    out = np.zeros((len(p), width))
    out[:, columns] = p
    return out


def adapted_set(
    member: LoadedMember,
    view: View,
    vocabulary: Sequence[str],
    adaptation: Adaptation,
    source: SourceFit | None,
) -> tuple[np.ndarray, SourceFit | None]:
    """One set's probabilities under ``adaptation``. Without ``source`` the set is validation:
    its labels fit the ``SourceFit`` returned for the other sets (output-level methods only)."""
    columns = set_columns(member.classes, vocabulary)
    probs, features = model_outputs(member, view, adaptation, columns)
    if not adaptation.outputs:
        return probs, source
    width = len(member.classes)
    if source is None:
        known, y = labelled(list(view.labels), member.classes)
        temperature = fit_temperature(probs[known], y)
        p = calibrated_lame(probs, features, columns, adaptation.outputs, temperature)
        source = SourceFit(temperature, widened(p, columns, width)[known], y)
    else:
        p = calibrated_lame(probs, features, columns, adaptation.outputs, source.temperature)
    return widened(label_shift(p, columns, adaptation.outputs, source), columns, width), source
