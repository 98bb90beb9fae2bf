"""``create_model``: a catalogue member with its classifier replaced for the dataset's classes."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
import torchvision
from torch import nn

from pipeline.models import weights as weights_api
from pipeline.models.backbone_file import (
    check_backbone,
    is_backbone,
    load_backbone,
    load_state_file,
    read_weights_file,
)
from pipeline.models.catalogue import Architecture
from pipeline.models.packaged import load_packaged, packaged
from pipeline.models.variants import apply_variant


def get_module(model: nn.Module, path: str) -> nn.Module:
    module = model
    for part in path.split("."):
        module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
    return module


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, last = path.rpartition(".")
    parent = get_module(model, parent_path) if parent_path else model
    if last.lstrip("-").isdigit():
        parent[int(last)] = new
    else:
        setattr(parent, last, new)


def new_head(old: nn.Module, num_classes: int, dropout: float = 0.0, hidden: int = 0) -> nn.Module:
    """A fresh classifier of the old one's kind and input width; optionally dropout before it
    and an extra dense layer (``hidden`` units) in front of it."""
    if isinstance(old, nn.Linear):
        width, layer = old.in_features, nn.Linear
    elif isinstance(old, nn.Conv2d):  # SqueezeNet classifies with a 1x1 convolution
        width, layer = old.in_channels, lambda i, o: nn.Conv2d(i, o, old.kernel_size, old.stride)
    else:
        raise TypeError(f"cannot replace a head of type {type(old).__name__}")
    if not dropout and not hidden:
        return layer(width, num_classes)
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
    if hidden:
        layers += [layer(width, hidden), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, layer(hidden or width, num_classes))


def replace_heads(
    model: nn.Module, entry: Architecture, num_classes: int, dropout: float = 0.0, hidden: int = 0
) -> None:
    """The main head takes the options; auxiliary heads stay plain."""
    set_module(
        model, entry.head, new_head(get_module(model, entry.head), num_classes, dropout, hidden)
    )
    for path in entry.aux_heads:
        set_module(model, path, new_head(get_module(model, path), num_classes))


def drop_aux_heads(model: nn.Module, entry: Architecture) -> None:
    """Switch auxiliary classifiers off (torchvision's Inception v3 and GoogLeNet honour this)."""
    model.aux_logits = False
    for path in entry.aux_heads:
        setattr(model, path.split(".")[0], None)


def create_model(
    entry: Architecture,
    num_classes: int,
    weights: str = "none",
    image_size: int | None = None,
    head_dropout: float = 0.0,
    head_hidden: int = 0,
) -> tuple[nn.Module, str]:
    """Build a member; returns the model and the weights actually used (``imagenet``/``none``,
    or ``file`` for a weights file given as its path: a backbone of ``pipeline.pretrain`` or
    any state dict of the architecture).

    Auxiliary heads that cannot run at ``image_size`` are removed; the catalogue's variant
    (frozen BatchNorm, last 16 layers) is applied.
    """
    size = image_size or entry.input_size
    if weights_api.is_file(weights):
        path = Path(weights)
        data = read_weights_file(path)  # once: a VGG's file is half a gigabyte
        if is_backbone(data):  # the classifier stays freshly initialised
            model, _ = create_model(entry, num_classes, "none", size, head_dropout, head_hidden)
            load_backbone(model, entry, path, data)
            return model, weights_api.FILE
        model = build(entry, False, size)
        load_state_file(model, path, data)  # with the architecture's own classifier, replaced
        finish(model, entry, num_classes, size, head_dropout, head_hidden)
        return model, weights_api.FILE
    if entry.size_kwarg and size != entry.input_size:  # ImageNet weights fix the input size
        if weights == "imagenet":
            raise ValueError(
                f"{entry.name} with ImageNet weights runs at {entry.input_size} px only, not "
                f"{size}: use --image-size {entry.input_size}, or --weights none"
            )
        weights = "none" if weights == "auto" else weights
    used = weights_api.resolve(entry, weights)
    model = build(entry, used == "imagenet", size)
    finish(model, entry, num_classes, size, head_dropout, head_hidden)
    return model, used


def build(entry: Architecture, pretrained: bool, size: int) -> nn.Module:
    """The architecture as its library builds it (ImageNet classifier included), from its
    ImageNet weights (already resolved: cached or packaged) or random initialisation."""
    try:
        if entry.library == "torchvision":
            kwargs = dict(entry.kwargs) if pretrained else {**entry.kwargs, **entry.random_kwargs}
            if entry.size_kwarg and not pretrained:  # the weights fix it themselves
                kwargs[entry.size_kwarg] = size
            tv_weights = weights_api.torchvision_weights(entry) if pretrained else None
            return torchvision.models.get_model(entry.fn, weights=tv_weights, **kwargs)
        if entry.library == "timm" and pretrained and packaged(entry.name):
            model = timm.create_model(entry.fn, **entry.kwargs)
            load_packaged(model, packaged(entry.name))
            return model
        if entry.library == "timm":
            extra = {}
            if pretrained:  # the file resolve() fetched: timm would ask the Hub again, with retries
                extra["pretrained_cfg_overlay"] = {"file": str(weights_api.cached(entry))}
            return timm.create_model(entry.fn, pretrained=pretrained, **extra, **entry.kwargs)
        raise ValueError(f"{entry.name}: unknown builder library {entry.library!r}")
    except (OSError, RuntimeError, ValueError) as exc:
        if pretrained and not isinstance(exc, weights_api.WeightsUnavailable):
            raise weights_api.offline_hint(entry, exc) from exc
        raise


def finish(
    model: nn.Module,
    entry: Architecture,
    num_classes: int,
    size: int,
    head_dropout: float = 0.0,
    head_hidden: int = 0,
) -> None:
    """New heads for ``num_classes``, auxiliary heads off below their size, the variant."""
    replace_heads(model, entry, num_classes, head_dropout, head_hidden)
    if entry.aux_heads and not entry.aux_active(size):
        drop_aux_heads(model, entry)
    apply_variant(model, entry.variant)


def check_weights_file(path: Path, entries: list[Architecture]) -> None:
    """Before any training: the file is a backbone file of every member's architecture, or a
    state dict that fits each of them (by name or in order)."""
    data = read_weights_file(path)
    if is_backbone(data):
        check_backbone(path, entries)
        return
    for entry in entries:
        load_state_file(build(entry, False, entry.input_size), path, data)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gmacs(model: nn.Module, size: int) -> float:
    """Multiply-accumulates per image (billions) of one forward pass at ``size``."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    model.train(was_training)
    return counter.get_total_flops() / 2e9
