"""Fine-tuning variants of a member (Tsutsui et al. 2023): frozen BatchNorm, or the last 16 layers.

Both keep the module tree and parameter names of the plain member, so checkpoints, heads and
Grad-CAM layers are found where they always are.
"""

from __future__ import annotations

import functools

from torch import nn

VARIANTS = ("", "frozen_bn", "last16")
LAST_LAYERS = 16


class _Frozen:
    """Mixed into a BatchNorm class: ``train()`` leaves it in eval mode, so the model's own
    ``.train()`` at every epoch cannot switch it back."""

    def train(self, mode: bool = True):  # noqa: ANN201
        return super().train(False)  # type: ignore[misc]


class FrozenBatchNorm2d(_Frozen, nn.BatchNorm2d):
    """A BatchNorm2d that keeps its ImageNet statistics."""


@functools.cache
def frozen_class(cls: type[nn.BatchNorm2d]) -> type[nn.BatchNorm2d]:
    """The frozen form of a BatchNorm2d class (timm's BatchNormAct2d keeps its activation)."""
    if cls is nn.BatchNorm2d:
        return FrozenBatchNorm2d
    return type(f"Frozen{cls.__name__}", (_Frozen, cls), {})


def freeze_batchnorm(model: nn.Module) -> int:
    """Freeze every BatchNorm2d (subclasses too): statistics (eval mode, for good) and affine
    (no gradient).

    Returns how many were frozen; other BatchNorm kinds are an error, never silently trained.
    """
    frozen = 0
    for name, module in model.named_modules():
        if isinstance(module, _Frozen):
            continue
        if isinstance(module, nn.BatchNorm2d):
            module.__class__ = frozen_class(type(module))  # same parameters and buffers
            module.requires_grad_(False)
            module.eval()
            frozen += 1
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise TypeError(f"cannot freeze {name} of type {type(module).__name__}")
    return frozen


def train_last_layers(model: nn.Module, n: int = LAST_LAYERS) -> int:
    """Train only from the ``n``-th last convolution on (in module order), head included.

    Tsutsui et al.'s "last 16 layers" of ResNet-50 are the last 16 convolutions: the last two
    bottlenecks of layer3 and all of layer4 (downsampling convolution included), with their
    BatchNorms and the classifier. Everything before them gets no gradient; its BatchNorm
    statistics still follow the data in train mode, as in their code. Returns the number of
    trainable parameters.
    """
    modules = list(model.modules())
    convs = [k for k, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    if len(convs) < n:
        raise ValueError(f"{type(model).__name__} has {len(convs)} convolutions, fewer than {n}")
    first = convs[-n]
    model.requires_grad_(False)
    for module in modules[first:]:
        module.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def apply_variant(model: nn.Module, variant: str) -> None:
    """Turn a freshly built member (head already replaced) into its catalogue variant."""
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown variant {variant!r}; known: {', '.join(v for v in VARIANTS if v)}"
        )
    if variant == "frozen_bn" and freeze_batchnorm(model) == 0:
        raise ValueError(f"{type(model).__name__} has no BatchNorm2d to freeze")
    if variant == "last16":
        train_last_layers(model)
