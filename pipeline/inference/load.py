"""Trained members and saved ensembles, loaded back from the zoo's output folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from torch import nn

from pipeline.data.cellcrop import DEFAULT_CELL_FRACTION, CropSpec
from pipeline.data.stain import StainReference, normalise_all
from pipeline.ensembling import methods
from pipeline.errors import UserError
from pipeline.evaluation.calibration import apply_temperature
from pipeline.evaluation.predictions import predict_rows
from pipeline.inference.adaptation import NO_ADAPTATION, Adaptation, adapted_probabilities
from pipeline.models import Architecture, create_model, engine, load_catalogue
from pipeline.names import plain_name
from pipeline.runs.checkpoint import WEIGHTS_FILE, find_weights, load_weights
from pipeline.runs.layout import Layout
from pipeline.runs.metadata import (
    AdaptedMeta,
    EnsembleMeta,
    EntryMeta,
    MemberMeta,
    MetaError,
    read_entry,
)


class WrongKind(UserError, ValueError):
    """A name that is another kind of entry than the command needs (an ensemble for a member)."""


def _a(kind: str) -> str:
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


@dataclass
class LoadedMember:
    name: str
    dataset: str
    meta: MemberMeta
    entry: Architecture
    model: nn.Module
    precision: engine.Runtime

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    @property
    def image_size(self) -> int:
        return int(self.meta.image_size or 0)

    @property
    def stain(self) -> StainReference | None:
        """The training split's stain that every image is mapped onto, if the recipe said so."""
        ref = self.meta.stain_norm
        return StainReference.from_dict(ref) if ref else None

    @property
    def crop(self) -> CropSpec:
        """How its images were cropped in training (centre for members from before crops)."""
        recipe = self.meta.recipe
        return CropSpec(
            recipe.get("crop", "centre"), recipe.get("cell_fraction", DEFAULT_CELL_FRACTION)
        )

    @property
    def temperature(self) -> float:
        return self.meta.temperature


def find_meta(out: Path, name: str, dataset: str | None = None) -> tuple[str, EntryMeta]:
    """The training dataset and meta.json of a member or ensemble, by name."""
    plain_name(name, "member or ensemble name")
    if dataset is not None:
        plain_name(dataset, "--tag")
    found = Layout(out).meta_files(dataset, name)
    if not found:
        raise FileNotFoundError(
            f"no member or ensemble {name!r} under {Layout(out).submissions_root}"
            + (f" for dataset {dataset!r}" if dataset else "")
            + ": see `python -m pipeline.leaderboard` for the names"
        )
    if len(found) > 1:
        datasets = ", ".join(p.parent.parent.name for p in found)
        raise UserError(f"{name!r} exists for several datasets ({datasets}): pass --tag")
    return found[0].parent.parent.name, read_entry(found[0])


def load_member(out: Path, name: str, dataset: str | None = None, device: str = "auto"):
    """A member's best checkpoint in eval mode, with the input handling it was trained with."""
    dataset, meta = find_meta(out, name, dataset)
    if isinstance(meta, AdaptedMeta):
        raise WrongKind(
            f"{name!r} is {_a(meta.kind)} entry, not a member: name its member "
            f"{meta.adapted_from or '?'!r} and adapt with --adapt"
        )
    if type(meta) is not MemberMeta:
        raise WrongKind(
            f"{name!r} is {_a(meta.kind)}, not a member: name a trained member "
            "(python -m pipeline.leaderboard lists them; an ensemble goes to --ensemble)"
        )
    if meta.arch is None or meta.image_size is None:
        raise MetaError(f"{Layout(out).meta(dataset, name)}: a member needs arch and image_size")
    folder = Layout(out).member(dataset, name)
    checkpoint = find_weights(folder)
    if checkpoint is None:
        raise FileNotFoundError(
            f"{folder / WEIGHTS_FILE} is missing: was the member trained in {out}?"
        )
    entry = load_catalogue()[meta.arch]
    torch_device = engine.resolve_device(device)
    recipe = meta.recipe
    model, _ = create_model(
        entry,
        len(meta.classes),
        weights="none",
        image_size=meta.image_size,
        head_dropout=recipe.get("head_dropout", 0.0),
        head_hidden=recipe.get("head_hidden", 0),
    )
    model.load_state_dict(load_weights(checkpoint)[0])
    model.to(torch_device).eval()
    norm = meta.normalisation or {"mean": entry.mean, "std": entry.std}
    precision = engine.Runtime(
        torch_device, engine.amp_dtype(torch_device), False, tuple(norm["mean"]), tuple(norm["std"])
    )
    return LoadedMember(name, dataset, meta, entry, model, precision)


def member_probs(
    member: LoadedMember,
    images: np.ndarray,
    calibrated: bool = True,
    adaptation: Adaptation = NO_ADAPTATION,
    temperature: float | None = None,
) -> np.ndarray:
    """Probabilities for uint8 ``(N, S, S, 3)`` images at the member's size (mapped onto its
    training stain here, when it was trained so), after adapting to these images if
    ``adaptation`` says so, scaled by ``temperature`` (default the member's) unless
    ``calibrated`` is False (what its ``<set>.csv`` and ``raw/`` hold)."""
    if len(images) == 0:
        return np.zeros((0, len(member.classes)))
    images = member_input(member, images)
    rows = np.arange(len(images))
    if adaptation.active:
        probs = adapted_probabilities(member.model, images, rows, member.precision, adaptation)
    else:
        probs = predict_rows(member.model, images, rows, member.precision)
    if not calibrated:
        return probs
    return apply_temperature(probs, member.temperature if temperature is None else temperature)


def adapted_temperature(out: Path, dataset: str, name: str, adaptation: Adaptation) -> float | None:
    """The temperature of the adapted entry ``name`` + ``adaptation`` (fitted on validation
    adapted the same way, ``pipeline.adapt``); None when there is no such calibrated entry."""
    path = Layout(out).meta(dataset, name + adaptation.suffix)
    if not adaptation.active or not path.is_file():
        return None
    meta = read_entry(path)
    return meta.temperature if meta.calibration else None


def member_input(member: LoadedMember, images: np.ndarray) -> np.ndarray:
    """Decoded images as the member saw its training images: in its stain, if it had one."""
    return images if member.stain is None else normalise_all(images, member.stain)


@dataclass
class LoadedEnsemble:
    name: str
    meta: EnsembleMeta
    members: list[LoadedMember]
    estimator: methods.EnsembleMethod  # fitted by pipeline.ensemble; takes the members' probs

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    @property
    def temperature(self) -> float:
        return self.meta.temperature

    def combine(
        self, probs: list[np.ndarray], calibrated: bool = True, temperature: float | None = None
    ) -> np.ndarray:
        """The ensemble's probabilities from its (calibrated) members', scaled by
        ``temperature`` (default its own) unless ``calibrated`` is False."""
        mixed = self.estimator.predict_proba(probs)
        if not calibrated:
            return mixed
        return apply_temperature(mixed, self.temperature if temperature is None else temperature)


def load_ensemble(out: Path, name: str, dataset: str | None = None, device: str = "auto"):
    dataset, meta = find_meta(out, name, dataset)
    if not isinstance(meta, EnsembleMeta):
        raise WrongKind(
            f"{name!r} is {_a(meta.kind)}, not an ensemble: name one built by pipeline.ensemble "
            "(a member goes to --member)"
        )
    if meta.adapted_from:
        raise WrongKind(
            f"{name!r} is {meta.adapted_from!r} adapted to whole evaluation sets: predict with "
            f"--ensemble {meta.adapted_from} --adapt METHOD"
        )
    pooled = [m for m in meta.members if m.endswith("-pooled")]
    if pooled:
        raise WrongKind(f"{name!r} pools seeds ({pooled[0]}): predict with its members instead")
    members = [load_member(out, m, dataset, device) for m in meta.members]
    return LoadedEnsemble(name, meta, members, fitted_method(out, dataset, name, meta))


def fitted_method(out: Path, dataset: str, name: str, meta: EnsembleMeta) -> methods.EnsembleMethod:
    """The saved estimator, found beside the ensemble's metrics whatever the working folder;
    an ensemble saved before estimators were is rebuilt from its meta.json (a stacker from the
    ``stack_model`` it names, else from its own folder)."""
    folder = Layout(out).ensemble(dataset, name)
    if meta.estimator is not None:
        file = folder / plain_name(meta.estimator, "meta.json 'estimator'")
        if not file.is_file():
            raise FileNotFoundError(f"{file} is missing: rebuild {name} with pipeline.ensemble")
        return joblib.load(file)
    stack_file = Path(meta.stack_model or folder / "stack.joblib")
    return methods.restored(meta, stack_file if stack_file.is_file() else folder / "stack.joblib")
