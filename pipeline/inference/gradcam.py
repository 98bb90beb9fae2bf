"""Grad-CAM (Selvaraju et al. 2017) for every catalogue family."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models import Architecture
from pipeline.models.factory import get_module

# The last convolutional block of each family: its spatial maps are what Grad-CAM weighs.
CAM_LAYERS: dict[str, str] = {
    "alexnet": "features",
    "vgg": "features",
    "resnet": "layer4",
    "resnext": "layer4",
    "wide_resnet": "layer4",
    "squeezenet": "features",
    "densenet": "features",
    "inception": "Mixed_7c",
    "googlenet": "inception5b",
    "mobilenet": "features",
    "efficientnet": "features",
    "convnext": "features",
    # a ViT has no spatial maps: the patch tokens entering the last block stand in for them
    "vit": "encoder.layers.encoder_layer_11.ln_1",
}
# timm builds name their blocks their own way
TIMM_CAM_LAYERS: dict[str, str] = {"resnet": "stages", "efficientnet_lite": "bn2"}


def cam_layer(entry: Architecture) -> str:
    if entry.cam_layer:
        return entry.cam_layer
    table = TIMM_CAM_LAYERS if entry.library == "timm" else CAM_LAYERS
    if entry.family not in table:
        raise KeyError(f"no Grad-CAM layer is known for family {entry.family!r} ({entry.name})")
    return table[entry.family]


def grad_cam(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-activation maps ``(N, H, W)`` in [0, 1] at the input's size, and the logits.

    ``target`` holds one class per image (default: the predicted class).
    """
    store: dict[str, torch.Tensor] = {}

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        # a copy, so that in-place activations after this layer (DenseNet) leave ours alone
        output = output.clone()
        output.register_hook(lambda grad: store.__setitem__("grad", grad))
        store["acts"] = output
        return output

    handle = layer.register_forward_hook(keep)
    try:
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # gradients flow even through a frozen model
            logits = model(x)
            if target is None:
                target = logits.argmax(1)
            logits.gather(1, target.view(-1, 1)).sum().backward()
    finally:
        handle.remove()
    acts, grads = token_map(store["acts"]), token_map(store["grad"])
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * acts).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    flat = cam.flatten(1)
    low, high = flat.min(1).values.view(-1, 1, 1), flat.max(1).values.view(-1, 1, 1)
    return (cam - low) / (high - low).clamp_min(1e-8), logits.detach()


def token_map(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` maps as they are; transformer tokens ``(N, [1 +] H*W, C)`` laid out on
    their square patch grid, the class token dropped."""
    if x.dim() == 4:
        return x
    n = x.shape[1]
    side = math.isqrt(n)
    if side * side != n:
        x, side = x[:, 1:], math.isqrt(n - 1)
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)


def member_cam(
    model: nn.Module, entry: Architecture, x: torch.Tensor, target: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    return grad_cam(model, get_module(model, cam_layer(entry)), x, target)
