"""MixStyle (Zhou et al. 2021): mix instance-level feature statistics between the images of a
training batch, so that early features see styles (stains, cameras) the data does not hold.

Inserted with forward hooks after a member's early stages: no parameters, no buffers and no
new names in the module tree, so checkpoints, heads, Grad-CAM layers and export see the plain
member. In eval mode it is the identity, so a member predicts (and exports) without it.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.errors import UserError
from pipeline.models.factory import get_module

# The paper's defaults: applied to half of the batches, Beta(0.1, 0.1) mixing weights, partners
# drawn by a random shuffle of the batch.
P, ALPHA, EPS = 0.5, 0.1, 1e-6

# After the first two stages (the paper: ResNet's layer1 and layer2), per catalogue family;
# the first set of paths a model has is used (timm's ResNet-v2 names its stages differently).
_STAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    "resnet": (("layer1", "layer2"), ("stages.0", "stages.1")),
    "resnext": (("layer1", "layer2"),),
    "wide_resnet": (("layer1", "layer2"),),
    "densenet": (("features.denseblock1", "features.denseblock2"),),
    "mobilenet": (("features.3", "features.6"),),  # the end of the stride-4 and stride-8 stages
    "efficientnet": (("features.2", "features.3"),),
    "googlenet": (("maxpool2", "inception3b"),),
    "convnext": (("features.1", "features.3"),),
}
# networks that are a plain sequence of convolutions and poolings: after their first two
# max-poolings, where ResNet's layer1 and layer2 end in resolution
_POOLED = ("alexnet", "vgg", "squeezenet")
FAMILIES = tuple(_STAGES) + _POOLED


class MixStyleError(UserError, ValueError):
    """MixStyle asked for on a member with no insertion point."""


class MixStyle(nn.Module):
    """Each image's per-channel feature mean and standard deviation replaced, with probability
    ``p`` per batch, by a Beta(alpha, alpha) mix of its own and a random partner's."""

    def __init__(self, p: float = P, alpha: float = ALPHA, eps: float = EPS) -> None:
        super().__init__()
        self.p, self.alpha, self.eps = p, alpha, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or torch.rand(1).item() >= self.p:
            return x
        n = x.shape[0]
        mu = x.mean(dim=(2, 3), keepdim=True)
        sig = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt()
        mu, sig = mu.detach(), sig.detach()  # as the paper: no gradient through the statistics
        normed = (x - mu) / sig
        beta = torch.distributions.Beta(self.alpha, self.alpha)
        lam = beta.sample((n, 1, 1, 1)).to(x.device, x.dtype)
        perm = torch.randperm(n)
        mu_mix = mu * lam + mu[perm] * (1 - lam)
        sig_mix = sig * lam + sig[perm] * (1 - lam)
        return normed * sig_mix + mu_mix

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, eps={self.eps}"


def insertion_points(model: nn.Module, family: str, name: str = "") -> tuple[str, ...]:
    """The module paths after which ``model`` (of catalogue ``family``) gets MixStyle."""
    check_family(family, name)
    if family in _POOLED:
        pools = [n for n, m in model.features.named_children() if isinstance(m, nn.MaxPool2d)]
        return tuple(f"features.{n}" for n in pools[:2])
    names = {n for n, _ in model.named_modules()}
    for paths in _STAGES[family]:
        if all(p in names for p in paths):
            return paths
    raise MixStyleError(
        f"{name or family}: none of the MixStyle insertion points {_STAGES[family]}"
    )


def check_family(family: str, name: str = "") -> None:
    if family not in FAMILIES:
        raise MixStyleError(
            f"{name or family}: MixStyle has no insertion point for family {family!r} "
            f"(defined for {', '.join(FAMILIES)}); train it with --set mixstyle=false or "
            f"leave it out with --exclude"
        )


def add_mixstyle(model: nn.Module, family: str, name: str = "", p: float = P) -> tuple[str, ...]:
    """Hook a MixStyle after each insertion point of ``model``; it mixes while that stage is in
    training mode. Returns the paths."""
    paths = insertion_points(model, family, name)
    for path in paths:
        get_module(model, path).register_forward_hook(_mixing_hook(MixStyle(p)))
    return paths


def _mixing_hook(style: MixStyle):
    def hook(module: nn.Module, inputs: tuple, out: torch.Tensor) -> torch.Tensor:
        style.train(module.training)  # not a child module: the stage's mode is the model's
        return style(out)

    return hook
