"""Training recipes as named, frozen configs; every field can be overridden from the CLI.

An overridden recipe is named after the one it came from plus a fingerprint of the values that
changed (``fast+1a2b3c``), so members trained otherwise never share a name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.augment import AUGMENTATIONS
from pipeline.data.cellcrop import DEFAULT_CELL_FRACTION, CropSpec
from pipeline.data.stain import STAIN_METHODS
from pipeline.errors import UnknownNameError, UserError
from pipeline.io import write_json
from pipeline.names import plain_name
from pipeline.runs.metadata import MemberMeta
from pipeline.training.gpu_augment import DEVICE_ONLY

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


RECIPES: dict[str, Recipe] = {
    # Gavas & Olpadkar 2021: SGD, step decay, flips + 60 degree rotations, native sizes.
    "gavas2021": Recipe(
        name="gavas2021",
        epochs=25,
        batch_size=32,
        optimizer="sgd",
        lr=1e-3,
        momentum=0.9,
        scheduler="step",
        step_size=7,
        gamma=0.1,
        augment=("hflip", "vflip", "rotate60"),
    ),
    # Tsutsui et al. 2023: AdamW, 10 warm-up + 90 cosine epochs, flips, batch 128 (the default of
    # their public code, github.com/apple2373/wbc-benchmark; its random 224 crop of a 256 resize
    # is left out: images are decoded once at the input size).
    "tsutsui2023": Recipe(
        name="tsutsui2023",
        epochs=100,
        batch_size=128,
        optimizer="adamw",
        lr=1e-4,
        weight_decay=0.005,
        scheduler="cosine",
        warmup_epochs=10,
        augment=("hflip", "vflip"),
    ),
    # From random initialisation at small sizes (CPU budgets): AdamW with a one-cycle schedule,
    # flips and 90 degree rotations, which cells are invariant to.
    "fast": Recipe(
        name="fast",
        epochs=15,
        batch_size=64,
        optimizer="adamw",
        lr=2e-3,
        weight_decay=0.05,
        scheduler="onecycle",
        augment=("hflip", "vflip", "rot90"),
        image_size=64,
        channels_last=True,
    ),
}


# Across labs: fast's optimiser and schedule (comparable on a CPU at 64 px) with cell-centred
# crops on every set and stain and colour augmentation, so that a member sees cells at one scale
# and in many stains.
RECIPES["robust"] = dataclasses.replace(
    RECIPES["fast"],
    name="robust",
    augment=("hflip", "vflip", "rot90", "hed", "colorjitter", "grayscale"),
    crop="cell",
)
# Domain generalisation on top of robust, with no target data: MixStyle mixes feature
# statistics between the cells of a batch; RandConv re-textures and re-colours every image by
# a random convolution (pipeline.training.gpu_augment).
RECIPES["robust-mixstyle"] = dataclasses.replace(
    RECIPES["robust"], name="robust-mixstyle", mixstyle=True
)
RECIPES["robust-randconv"] = dataclasses.replace(
    RECIPES["robust"], name="robust-randconv", augment=(*RECIPES["robust"].augment, "randconv")
)
# Fine-tuning ImageNet weights: robust's crops and augmentation at half fast's peak lr, reached
# after one-cycle's warm-up (the first 30% of steps), at the member's native input size.
RECIPES["finetune"] = dataclasses.replace(
    RECIPES["robust"], name="finetune", lr=1e-3, weight_decay=0.01, image_size=None
)
# Tsutsui et al.'s question on it: BatchNorm kept at its ImageNet statistics while fine-tuning.
RECIPES["finetune-frozenbn"] = dataclasses.replace(
    RECIPES["finetune"], name="finetune-frozenbn", batchnorm="frozen"
)


def for_member(recipe: Recipe, lr_scale: float) -> Recipe:
    """The recipe a member trains with: its catalogue ``lr_scale`` times the recipe's lr,
    named as that change would be (``fast+1a2b3c``, see ``override``), so a member trained at
    another lr never shares a name with one trained at the recipe's own."""
    if lr_scale == 1:  # not even rounded: a tuned lr of many digits keeps its name
        return recipe
    return override(recipe, {"lr": float(f"{recipe.lr * lr_scale:.12g}")})


def get_recipe(name: str) -> Recipe:
    """A named recipe, or one saved as JSON (``pipeline.tune`` writes them)."""
    if name.endswith(".json"):
        return load_recipe(Path(name))
    if name not in RECIPES:
        raise UnknownNameError(
            f"unknown recipe {name!r}; known: {', '.join(RECIPES)} or a .json file"
        )
    return RECIPES[name]


def load_recipe(path: Path) -> Recipe:
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecipeError(f"{path}: not a readable recipe file ({exc})") from exc
    if not isinstance(fields, dict):
        raise RecipeError(f"{path}: a recipe file holds one JSON object of recipe fields")
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise RecipeError(f"{path}: unknown recipe field(s) {unknown}")
    plain_name(str(fields.get("name", "")), f"{path}: recipe name")  # members are named by it
    fields["augment"] = tuple(fields.get("augment", ()))
    try:
        return Recipe(**fields)
    except (TypeError, RecipeError) as exc:  # a missing field, or a value out of range
        raise RecipeError(f"{path}: {exc}") from None


def save_recipe(path: Path, recipe: Recipe) -> None:
    write_json(path, dataclasses.asdict(recipe))


def override(recipe: Recipe, changes: dict[str, str | int | float | None]) -> Recipe:
    """A copy with fields replaced; string values (from ``--set k=v``) are parsed by field type.

    The copy is named ``<name>+<fingerprint of the fields whose values changed>``; changes that
    keep every value leave the recipe (and its name) as it was.
    """
    fields = {f.name: f for f in dataclasses.fields(Recipe)}
    parsed = {}
    for key, value in changes.items():
        if key not in fields or key == "name":
            raise UnknownNameError(
                f"unknown recipe field {key!r}; fields: {', '.join(list(fields)[1:])}"
            )
        if not isinstance(value, str):
            parsed[key] = value
            continue
        try:
            parsed[key] = _parse(key, value, getattr(recipe, key))
        except RecipeError:
            raise
        except ValueError:  # int("x"), float("x")
            kind = "a number" if isinstance(getattr(recipe, key), float) else "a whole number"
            raise RecipeError(f"{key}={value!r}: {key} takes {kind}") from None
    changed = {k: v for k, v in parsed.items() if v != getattr(recipe, k)}
    if not changed:
        return recipe
    return dataclasses.replace(recipe, name=f"{recipe.name}+{fingerprint(changed)}", **changed)


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
    values = {"arch": meta.arch, "weights": meta.weights, "image_size": meta.image_size}
    values |= {"recipe": stored_recipe(meta.recipe)}
    return fingerprint(values)


def _parse(key: str, text: str, current: object) -> object:
    if key == "augment":
        return tuple(a for a in text.split(",") if a)
    if key == "image_size":
        return None if text.lower() in ("", "none", "native") else int(text)
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise RecipeError(f"{key} takes true or false, not {text!r}")
        return text.lower() in ("true", "1", "yes")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    return text
