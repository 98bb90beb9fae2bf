"""The zoo's compute bill: FLOPs per member and the time floor they set on one GPU.

A member costs ``2 x MACs`` FLOPs per image forward and about three times that to train
(forward, backward to activations, backward to weights). Per epoch it trains on every training
image and predicts every validation image; at the end it predicts every evaluation set once.
The floor divides by the GPU's peak rate, a time no run can beat; the estimate divides by a
model-FLOPs utilisation (MFU) that real training reaches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from pipeline.models import Entry
from pipeline.recipes import Recipe


@dataclass(frozen=True)
class Gpu:
    # H100 SXM: 989 TFLOPS dense bf16 on the tensor cores (NVIDIA's data sheet; 1979 is with
    # 2:4 sparsity, which training does not use)
    tflops: float = 989.0
    mfu: float = 0.35  # share of the peak that training reaches; small CNNs often reach less


def member_gmacs(entry: Entry, size: int) -> float:
    """MACs (billions) per image at ``size``: convolutions scale with the pixel count (the
    catalogue counts them at the native size; a classifier behind adaptive pooling does not
    scale, which this overstates a little below the native size)."""
    return entry.gmacs * (size / entry.input_size) ** 2


def member_flops(gmacs: float, epochs: int, counts: dict[str, int]) -> float:
    """Training plus per-epoch validation plus the final predictions of every evaluation set."""
    forward = 2e9 * gmacs
    images = 3 * counts["train"] * epochs + counts["val"] * epochs
    images += sum(n for name, n in counts.items() if name != "train")
    return forward * images


def plan(
    members: Sequence[Entry], recipe: Recipe, seeds: int, counts: dict[str, int], gpu: Gpu
) -> pd.DataFrame:
    """One row per member (all its seeds) and a total row."""
    rows = []
    for entry in members:
        size = entry.image_size(recipe.image_size)
        gmacs = member_gmacs(entry, size)
        flops = seeds * member_flops(gmacs, recipe.epochs, counts)
        floor = flops / (gpu.tflops * 1e12)
        rows.append(
            {
                "member": entry.name,
                "params_M": entry.params_m,
                "size": size,
                "GMACs": round(gmacs, 3),
                "PFLOPs": round(flops / 1e15, 2),
                "floor_s": round(floor, 1),
                "estimate_s": round(floor / gpu.mfu, 1),
            }
        )
    table = pd.DataFrame(rows)
    total = {"member": "TOTAL", **{k: table[k].sum() for k in ("PFLOPs", "floor_s", "estimate_s")}}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


_FORMATS = {
    column: lambda v, f=f: "" if pd.isna(v) else f.format(v)
    for column, f in {
        "params_M": "{:.3f}",
        "size": "{:.0f}",
        "GMACs": "{:.3f}",
        "PFLOPs": "{:.2f}",
        "floor_s": "{:.1f}",
        "estimate_s": "{:.1f}",
    }.items()
}


def describe(
    table: pd.DataFrame, counts: dict[str, int], recipe: Recipe, seeds: int, gpu: Gpu
) -> str:
    total = table.iloc[-1]
    images = ", ".join(f"{name} {n}" for name, n in counts.items())
    return "\n".join(
        [
            f"images: {images}; recipe {recipe.name}, {recipe.epochs} epochs, {seeds} seed(s)",
            f"GPU: {gpu.tflops:g} TFLOPS peak (dense bf16), estimate at {gpu.mfu:.0%} MFU",
            table.to_string(index=False, formatters=_FORMATS, na_rep=""),
            f"floor {total['floor_s'] / 3600:.2f} h, estimate {total['estimate_s'] / 3600:.2f} h "
            "(the floor counts model FLOPs only: no data loading, no kernel overheads)",
        ]
    )
