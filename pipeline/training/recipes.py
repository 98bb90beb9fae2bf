"""The named training recipes, recipe files, and overrides of any field from the CLI.

An overridden recipe is named after the one it came from plus a fingerprint of the values that
changed (``fast+1a2b3c``), so members trained otherwise never share a name.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pipeline.errors import UnknownNameError
from pipeline.io import write_json
from pipeline.names import plain_name
from pipeline.runs.recipe import Recipe, RecipeError, fingerprint

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
