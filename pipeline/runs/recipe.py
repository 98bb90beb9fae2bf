"""A member's training recipe: the record of how it was trained, checked when it is made, and
the fingerprints that name recipes and tell seeds trained alike apart.

Named recipes, overrides and recipe files are ``pipeline.training.recipes``; ranking and
ensembling need only this record, to compare members, so it lives below them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from pipeline.data.augment import AUGMENTATIONS, DEVICE_ONLY
from pipeline.data.cellcrop import DEFAULT_CELL_FRACTION, CropSpec
from pipeline.data.stain import STAIN_METHODS
from pipeline.errors import UserError
from pipeline.runs.metadata import MemberMeta

BATCHNORM_MODES = ("train", "frozen")


class RecipeError(UserError, ValueError):
    """A recipe field with a value training cannot use."""


# the smallest value of each numeric field, and whether that value itself is allowed (every float
# must also be finite): a typo fails when the recipe is made, not in the middle of training
_BOUNDS: dict[str, tuple[float, bool]] = {
    "epochs": (1, True),
    "batch_size": (1, True),
    "lr": (0, False),
    "momentum": (0, True),
    "weight_decay": (0, True),
    "step_size": (1, True),
    "gamma": (0, False),
    "warmup_epochs": (0, True),
    "effective_beta": (0, False),
    "mixup_alpha": (0, True),
    "cutmix_alpha": (0, True),
    "head_hidden": (0, True),
}


@dataclass(frozen=True)
class Recipe:
    name: str
    epochs: int
    batch_size: int
    optimizer: str  # sgd | adamw
    lr: float  # peak learning rate
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "constant"  # constant | step | cosine | onecycle
    step_size: int = 7  # step: epochs between decays
    gamma: float = 0.1  # step: decay factor
    warmup_epochs: int = 0  # cosine: linear warm-up before the decay
    augment: tuple[str, ...] = ("hflip", "vflip")
    image_size: int | None = None  # None: the member's native input size
    label_smoothing: float = 0.0
    channels_last: bool = False
    # competition options, all off in the paper recipes
    class_weights: str = "none"  # none | inverse | effective (Cui et al. 2019, beta below)
    effective_beta: float = 0.999
    sampler: str = "shuffle"  # shuffle | balanced (each class drawn equally often)
    mixup_alpha: float = 0.0  # > 0 turns MixUp on
    cutmix_alpha: float = 0.0  # > 0 turns CutMix on (with MixUp: one of the two per batch)
    mix_prob: float = 1.0  # share of batches mixed
    aug_strength: float = 1.0  # magnitude of randaugment and color, 0..1
    head_dropout: float = 0.0  # dropout before the classifier
    head_hidden: int = 0  # > 0 adds a dense layer of this width before the classifier
    select_metric: str = "accuracy"  # accuracy | macro_f1: picks the best epoch
    # how every set (training and evaluation) is cropped to a square before resizing:
    # centre | cell (the white cell found and centred, its box cell_fraction of the side)
    crop: str = "centre"
    cell_fraction: float = DEFAULT_CELL_FRACTION
    # none | reinhard | macenko: every set mapped onto the training split's stain at decode time
    stain_norm: str = "none"
    # MixStyle (Zhou et al. 2021) after the early stages, in training only (models.mixstyle)
    mixstyle: bool = False
    # train | frozen: BatchNorm keeps its initial (ImageNet) statistics and affine in training,
    # Tsutsui et al.'s remedy; predictions and test-time AdaBN use the plain layers
    batchnorm: str = "train"

    def __post_init__(self) -> None:
        choices = {
            "optimizer": ("sgd", "adamw"),
            "scheduler": ("constant", "step", "cosine", "onecycle"),
            "class_weights": ("none", "inverse", "effective"),
            "sampler": ("shuffle", "balanced"),
            "select_metric": ("accuracy", "macro_f1"),
            "stain_norm": STAIN_METHODS,
            "batchnorm": BATCHNORM_MODES,
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise RecipeError(
                    f"{key} must be one of {', '.join(allowed)}, not {getattr(self, key)!r}"
                )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise RecipeError(f"{f.name} must be a finite number, not {value}")
        for key, (low, inclusive) in _BOUNDS.items():
            value = getattr(self, key)
            if value < low or (value == low and not inclusive):
                bound = "at least" if inclusive else "above"
                raise RecipeError(f"{key} must be {bound} {low}, not {value}")
        for key in ("mix_prob", "aug_strength", "head_dropout", "label_smoothing"):
            if not 0 <= getattr(self, key) <= 1:
                raise RecipeError(f"{key} must lie in [0, 1], not {getattr(self, key)}")
        if self.image_size is not None and self.image_size < 1:
            raise RecipeError(
                f"image_size must be a positive number of pixels (or native), not {self.image_size}"
            )
        known = AUGMENTATIONS + DEVICE_ONLY
        unknown = [a for a in self.augment if a not in known]
        if unknown:
            raise RecipeError(
                f"unknown augmentation(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        try:
            CropSpec(self.crop, self.cell_fraction)
        except ValueError as exc:
            raise RecipeError(str(exc)) from None

    @property
    def crop_spec(self) -> CropSpec:
        return CropSpec(self.crop, self.cell_fraction)


def fingerprint(values: dict) -> str:
    """Six hex digits that name these values (JSON-able), whatever the order of their keys."""
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=3).hexdigest()


def stored_recipe(fields: dict) -> dict:
    """A recipe as a member's files store it (JSON), in ``asdict`` form: fields added to
    ``Recipe`` after it was trained count as their defaults, ``augment`` is a tuple."""
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(Recipe)
        if f.default is not dataclasses.MISSING
    }
    recipe = defaults | fields
    return recipe | {"augment": tuple(recipe["augment"])}


def settings_fingerprint(meta: MemberMeta) -> str:
    """The fingerprint of what a member's ``meta.json`` says it was trained with, seed aside:
    seeds of one name pool only when these agree. Not its ``data_fingerprint``, which older
    members lack: the training data is the dataset the member is filed under."""
    values = {"arch": meta.arch, "weights": meta.init, "image_size": meta.image_size}
    values |= {"recipe": stored_recipe(meta.recipe)}
    return fingerprint(values)
