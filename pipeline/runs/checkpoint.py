"""A member's best weights on disk: safetensors, half precision, restored in full precision.

Only inference reads them back (the zoo's own final evaluation, predict, explain, ensembles),
so parameters are kept in half precision where their values fit; buffers (BatchNorm statistics)
are small and stay in full precision. safetensors holds tensors and nothing else: reading a
member runs no code, unlike a pickle. Resuming training uses its own full-precision state.
"""

from __future__ import annotations

from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import nn

from pipeline.io import atomic_write

FORMAT = "wbczoo-member/1"
WEIGHTS_FILE = "best.safetensors"
LEGACY_FILE = "best.pt"  # earlier versions: a pickle of {"model": state dict, "epoch": n}
BYTES_PER_PARAM = 2  # float16
HALF_MAX = torch.finfo(torch.float16).max


def estimate_bytes(params: float) -> int:
    """The size on disk of a member with ``params`` parameters (buffers are a rounding error)."""
    return round(params * BYTES_PER_PARAM)


def fits_half(tensor: torch.Tensor) -> bool:
    return tensor.dtype in (torch.float32, torch.float64) and (
        tensor.numel() == 0 or bool(tensor.abs().max() <= HALF_MAX)
    )


def save_weights(path: Path, model: nn.Module, epoch: int) -> None:
    """``model``'s state (contiguous CPU copies, parameters in half precision) and the epoch."""
    params = {name for name, _ in model.named_parameters()}
    tensors = {}
    for name, tensor in model.state_dict().items():
        half = name in params and fits_half(tensor)
        tensors[name] = tensor.detach().to(
            "cpu",
            torch.float16 if half else tensor.dtype,
            copy=True,  # shared storage would be refused by safetensors
            memory_format=torch.contiguous_format,  # channels-last weights too
        )
    blob = safetensors.torch.save(tensors, metadata={"format": FORMAT, "epoch": str(epoch)})
    atomic_write(path, lambda f: f.write(blob), binary=True)


def find_weights(folder: Path) -> Path | None:
    """A member folder's weights file, also one saved before this format, if there is one."""
    return next((folder / n for n in (WEIGHTS_FILE, LEGACY_FILE) if (folder / n).exists()), None)


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """The state dict in full precision and the epoch it was saved at."""
    if path.name == LEGACY_FILE:
        old = torch.load(path, map_location="cpu", weights_only=True)
        return old["model"], int(old["epoch"])
    with safetensors.safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} holds no member weights (format {meta.get('format')!r})")
        state = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (not a dict)
    full = {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}
    return full, int(meta["epoch"])
