"""The catalogue (``zoo/catalogue.toml``) as typed entries."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UnknownNameError
from pipeline.resources import shipped

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Architecture:
    name: str
    builder: str
    family: str
    norm: str
    input_size: int
    min_size: int
    head: str
    params_m: float
    gmacs: float
    all: bool
    aux_heads: tuple[str, ...] = ()
    aux_weight: float = 0.0
    aux_min_size: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    kwargs: dict[str, Any] = field(default_factory=dict)
    random_kwargs: dict[str, Any] = field(default_factory=dict)
    variant: str = ""  # "", frozen_bn or last16 (pipeline.models.variants)
    size_kwarg: str = ""  # builder argument fixing the input size (ViT's image_size)
    cam_layer: str = ""  # Grad-CAM layer, where the family's default does not apply
    imagenet: bool = True  # False: no published ImageNet weights, random initialisation only
    lr_scale: float = 1.0  # times every recipe's lr (recipes.for_member): networks without norm

    @property
    def library(self) -> str:
        return self.builder.split(":", 1)[0]

    @property
    def fn(self) -> str:
        return self.builder.split(":", 1)[1]

    def image_size(self, requested: int | None) -> int:
        """The input size to train at: the request (or native size), never below the minimum."""
        return max(requested or self.input_size, self.min_size)

    def aux_active(self, size: int) -> bool:
        return bool(self.aux_heads) and size >= self.aux_min_size


def load_catalogue(path: Path | None = None) -> dict[str, Architecture]:
    """The catalogue at ``path``, by default the one shipped (``zoo/catalogue.toml``)."""
    with open(path or shipped("zoo", "catalogue.toml"), "rb") as f:
        raw = tomllib.load(f)
    entries = {}
    for name, fields in raw.items():
        fields = dict(fields)
        for key in ("aux_heads", "mean", "std"):
            if key in fields:
                fields[key] = tuple(fields[key])
        entries[name] = Architecture(name=name, **fields)
    return entries


def select(
    catalogue: dict[str, Architecture], names: list[str] | None, use_all: bool, exclude: list[str]
) -> list[Architecture]:
    """The members a zoo run trains, in catalogue order; unknown names are an error."""
    unknown = [n for n in (names or []) + exclude if n not in catalogue]
    if unknown:
        raise UnknownNameError(
            f"unknown member(s) {', '.join(unknown)}; "
            "`python -m pipeline.zoo --list` shows the catalogue"
        )
    chosen = (
        [e for e in catalogue.values() if e.all] if use_all else [catalogue[n] for n in names or []]
    )
    return [e for e in chosen if e.name not in exclude]
