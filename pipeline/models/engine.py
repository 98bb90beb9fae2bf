"""Device-agnostic training and inference steps (CPU fp32; CUDA with mixed precision)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from pipeline.errors import UserError
from pipeline.models.catalogue import IMAGENET_MEAN, IMAGENET_STD


class DeviceError(UserError, RuntimeError):
    """A --device that is malformed or not on this machine."""


DEVICE_TYPES = ("cpu", "cuda")


def parse_device(name: str) -> torch.device | None:
    """The device ``--device`` names (None for auto), checked for its form only: a driver may
    send members to machines with other GPUs."""
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in DEVICE_TYPES or (device.index or 0) < 0:
        raise DeviceError(f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N")
    return device


def resolve_device(name: str) -> torch.device:
    """The device to run on here; a GPU that is not visible is an error."""
    device = parse_device(name)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"--device {name} was asked for but no CUDA GPU is visible; use --device cpu"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceError(
            f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) are visible"
        )
    return device


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """cuDNN autotuning (fastest kernels, run-to-run noise) unless results must repeat exactly."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic


class FixedBatch(nn.Module):
    """Pads a short evaluation batch to ``batch`` rows, so a compiled model sees one shape and
    the last batch of a set does not recompile it; training batches are full (drop_last)."""

    def __init__(self, model: nn.Module, batch: int) -> None:
        super().__init__()
        self.model, self.batch = model, batch

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple:
        n = len(x)
        if self.training or n >= self.batch:
            return self.model(x)
        padded = torch.cat([x, x[:1].expand(self.batch - n, *x.shape[1:])])
        if x.is_contiguous(memory_format=torch.channels_last):  # same strides, same graph
            padded = padded.contiguous(memory_format=torch.channels_last)
        return self.model(padded)[:n]


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def amp_dtype(device: torch.device, choice: str = "auto") -> torch.dtype | None:
    """The autocast dtype, None for fp32.

    ``auto``: bf16 on GPUs that support it, else fp16; fp32 on CPU, where bf16 is ~25x slower.
    """
    if choice not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {choice!r}")
    if choice == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]


@dataclass
class Runtime:
    """How batches reach the model: device, autocast dtype, memory format, normalisation."""

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def to_input(
        self,
        batch: torch.Tensor,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """uint8 NCHW on the host -> (augmented,) normalised float on the device, in batch."""
        x = batch.to(self.device, non_blocking=True).float().div_(255)
        if augment is not None:
            x = augment(x)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        x = x.sub_(mean).div_(std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @property
    def name(self) -> str:
        return "fp32" if self.dtype is None else str(self.dtype).removeprefix("torch.")


def member_loss(
    outputs: torch.Tensor | tuple, targets: torch.Tensor, criterion: nn.Module, aux_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Main loss plus weighted auxiliary losses (Inception v3, GoogLeNet) -> (loss, logits)."""
    if isinstance(outputs, tuple):
        logits, *aux = outputs
        loss = criterion(logits.float(), targets)
        for a in aux:
            if a is not None:
                loss = loss + aux_weight * criterion(a.float(), targets)
        return loss, logits
    return criterion(outputs.float(), targets), outputs


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    criterion: nn.Module,
    precision: Runtime,
    aux_weight: float,
    progress: Iterator | None = None,
    mixer: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; ``mixer`` (MixUp/CutMix) turns targets into probability rows;
    ``augment`` transforms the batch on the device (see ``pipeline.training.gpu_augment``)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for images, targets in loader:
        x = precision.to_input(images, augment)
        y = targets.to(precision.device, non_blocking=True)
        target = y
        if mixer is not None:
            x, target = mixer(x, y)
        with precision.autocast():
            outputs = model(x)
        loss, logits = member_loss(outputs, target, criterion, aux_weight)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        # gradients live from backward to step only: not beside the next batch's activations,
        # nor through evaluation and checkpoints after the epoch
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        if progress is not None:
            progress.update(len(y))
            progress.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    return {"train_loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1)}


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, precision: Runtime) -> np.ndarray:
    """Softmax probabilities (float64, rows sum to 1) for every image of the loader, in order."""
    model.eval()
    chunks = []
    for images, _ in loader:
        with precision.autocast():
            logits = model(precision.to_input(images))
        chunks.append(torch.softmax(logits.float(), dim=1).double().cpu())
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0))
