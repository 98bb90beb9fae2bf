"""Test-time remedies for a lab change: AdaBN, TENT and dihedral test-time augmentation, and
the names of every adaptation (SHOT, LAME, EM and BBSE are in their own modules).

Each works on one evaluation set at a time and leaves the model exactly as it found it, so the
next set starts from the trained member again (TENT's updates never leak from set to set).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.inference.features import batches
from pipeline.models import engine

METHODS = ("none", "adabn", "tent")
# applied after the BatchNorm-level method, SHOT and TTA, in this order (pipeline.adapted.compose)
OUTPUT_METHODS = ("lame", "em", "bbse")
BATCH = 64  # BatchNorm statistics of a batch: large enough to be stable, small enough for a CPU


@dataclass(frozen=True)
class Adaptation:
    """How a member meets an evaluation set, in a fixed order: ``method`` (none, adabn, tent:
    BatchNorm level), ``shot`` (fine-tune the feature extractor, classifier frozen), ``tta``
    (average over the 8 flips and 90° turns; a cell has no orientation), then ``output``
    (none, or ``+``-joined output-level methods of OUTPUT_METHODS: lame, em, bbse)."""

    method: str = "none"
    tta: bool = False
    tent_steps: int = 1  # passes of entropy minimisation over the set
    tent_lr: float = 1e-3
    batch: int = BATCH
    shot: bool = False
    output: str = "none"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"adaptation must be one of {', '.join(METHODS)}, not {self.method!r}")
        if self.tent_steps < 1 or not self.tent_lr > 0 or self.batch < 2:
            raise ValueError("TENT needs at least 1 step, a positive learning rate, batches of 2+")
        if self.method == "tent" and self.shot:
            raise ValueError("tent+shot: both tune the model on the set; combine shot with adabn")
        outputs = self.outputs
        if outputs and (
            any(o not in OUTPUT_METHODS for o in outputs)
            or list(outputs) != sorted(set(outputs), key=OUTPUT_METHODS.index)
        ):
            raise ValueError(f"output must be '+'-joined {', '.join(OUTPUT_METHODS)} in that order")
        if {"em", "bbse"} <= set(outputs):
            raise ValueError("em+bbse: both correct the class priors; pick one")

    @property
    def outputs(self) -> tuple[str, ...]:
        """The output-level methods, in the order they are applied."""
        return () if self.output == "none" else tuple(self.output.split("+"))

    @property
    def active(self) -> bool:
        return self.method != "none" or self.tta or self.shot or bool(self.outputs)

    @property
    def transductive(self) -> bool:
        """Whether predictions depend on the other images of the set (not only on their own)."""
        return self.method != "none" or self.shot or bool(self.outputs)

    @property
    def parts(self) -> tuple[str, ...]:
        """Its methods in the order they are applied: ``("adabn", "shot", "tta", "em")``."""
        method = (self.method,) if self.method != "none" else ()
        return method + ("shot",) * self.shot + ("tta",) * self.tta + self.outputs

    @property
    def suffix(self) -> str:
        """What an adapted entry's name adds to its member's: ``+adabn``, ``+tent+tta``, …"""
        return "".join(f"+{p}" for p in self.parts)


NO_ADAPTATION = Adaptation()  # plain predictions
FEW_IMAGES = 32  # below this, statistics re-estimated from the set itself are noisy


def few_images_warning(n: int, what: str, adaptations: Sequence[Adaptation]) -> str | None:
    """A warning for adapting to too few images to estimate from (statistics, a fine-tuning,
    neighbours or class priors), naming the transductive methods used."""
    methods = dict.fromkeys(p for a in adaptations for p in a.parts if p != "tta")
    if n >= FEW_IMAGES or not methods:
        return None
    return (
        f"{what}: {', '.join(methods)} estimate from the set's own images, here {n} only, "
        f"which is noisy; adapt to {FEW_IMAGES} or more cells of one lab and scanner"
    )


def parse_adaptation(item: str) -> Adaptation:
    """``adabn+shot+em`` -> one adaptation; its parts in any order, applied in the fixed one."""
    if item == "none":
        return NO_ADAPTATION
    parts = item.split("+")
    known = (*METHODS[1:], "shot", "tta", *OUTPUT_METHODS)
    if unknown := [p for p in parts if p not in known]:
        raise ValueError(f"{item!r}: unknown adaptation {unknown[0]!r}; known: {', '.join(known)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"{item!r}: a method is named twice")
    methods = [p for p in parts if p in METHODS]
    if len(methods) > 1:
        raise ValueError(f"{item!r}: combine at most one of adabn, tent (tent includes AdaBN)")
    outputs = [o for o in OUTPUT_METHODS if o in parts]
    try:
        return Adaptation(
            methods[0] if methods else "none",
            tta="tta" in parts,
            shot="shot" in parts,
            output="+".join(outputs) or "none",
        )
    except ValueError as exc:
        raise ValueError(f"{item!r}: {exc}") from None


def parse_adaptations(text: str) -> list[Adaptation]:
    """``adabn,tent,tta,adabn+shot+em`` -> one adaptation per comma-separated item."""
    out = [parse_adaptation(t.strip()) for t in text.split(",") if t.strip()]
    if not out:
        raise ValueError("name at least one adaptation: adabn, tent, shot, tta, lame, em, bbse "
                         "or a combination such as adabn+tta+em")  # fmt: skip
    return out


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def without_batchnorm(adaptation: Adaptation) -> Adaptation:
    """What is left of an adaptation on a model without BatchNorm (``adabn+tta+em``:
    ``tta+em``)."""
    return dataclasses.replace(adaptation, method="none")


def applicable(adaptations: list[Adaptation], model: nn.Module) -> list[Adaptation]:
    """The adaptations that can change this model's predictions, each once: without a
    BatchNorm layer AdaBN and TENT have nothing to adapt (``adabn+tta`` is ``tta``), and an entry
    for them would repeat the plain or another entry under a transductive name."""
    if batchnorm_layers(model):
        return list(dict.fromkeys(adaptations))
    return [a for a in dict.fromkeys(map(without_batchnorm, adaptations)) if a.active]


@contextlib.contextmanager
def restored(model: nn.Module) -> Iterator[nn.Module]:
    """Whatever happens inside, the model leaves with its weights, buffers, modes and
    ``requires_grad`` flags as they were."""
    state = copy.deepcopy(model.state_dict())
    modes = {m: m.training for m in model.modules()}
    grads = {p: p.requires_grad for p in model.parameters()}
    momenta = {m: m.momentum for m in batchnorm_layers(model)}
    try:
        yield model
    finally:
        model.load_state_dict(state)
        for m, mode in modes.items():
            m.training = mode
        for p, flag in grads.items():
            p.requires_grad_(flag)
        for m, momentum in momenta.items():
            m.momentum = momentum


def _batch_statistics(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Eval mode everywhere but BatchNorm, which normalises with each batch's statistics.

    ``training`` is set on the layers themselves: a frozen BatchNorm's ``train()`` refuses.
    """
    model.eval()
    layers = batchnorm_layers(model)
    for m in layers:
        m.training = True
    return layers


@torch.no_grad()
def reestimate(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    precision: engine.Runtime,
    size: int = BATCH,
) -> int:
    """AdaBN (Li et al. 2016): replace every BatchNorm layer's running statistics by those of
    these images (a cumulative average over batches), weights untouched; model left in eval
    mode. Returns the number of layers re-estimated."""
    layers = _batch_statistics(model)
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative: every batch counts the same
    if layers:
        for x in batches(images, rows, precision, size):
            if len(x) > 1:  # one image has no variance to estimate
                with precision.autocast():
                    model(x)
    model.eval()
    return len(layers)


def entropy_minimise(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    precision: engine.Runtime,
    adaptation: Adaptation,
) -> None:
    """TENT (Wang et al. 2021): a few passes of entropy minimisation of the predictions,
    updating only the BatchNorm affine parameters, normalising with batch statistics."""
    layers = _batch_statistics(model)
    model.requires_grad_(False)
    params = []
    for m in layers:
        for p in (m.weight, m.bias):
            if p is not None:
                p.requires_grad_(True)
                params.append(p)
    if not params:
        return
    optimizer = torch.optim.SGD(params, lr=adaptation.tent_lr, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(adaptation.tent_steps):
        order = rows[torch.randperm(len(rows), generator=generator).numpy()]
        for x in batches(images, order, precision, adaptation.batch):
            if len(x) < 2:
                continue
            with precision.autocast():
                logits = model(x).float()
            loss = -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.requires_grad_(False)


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th of the 8 symmetries of the square (k < 4: turns; k >= 4: flip, then turn)."""
    if k >= 4:
        x = x.flip(3)
    return torch.rot90(x, k % 4, dims=(2, 3))


@torch.no_grad()
def probabilities(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    precision: engine.Runtime,
    tta: bool,
    size: int = BATCH,
) -> np.ndarray:
    """Softmax probabilities in eval mode, averaged over the 8 symmetries with ``tta``."""
    model.eval()
    views = range(8) if tta else range(1)
    chunks = []
    for x in batches(images, rows, precision, size):
        total = 0
        for k in views:
            with precision.autocast():
                total = total + torch.softmax(model(dihedral(x, k)).float(), 1).double()
        chunks.append((total / len(views)).cpu())
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0))


def adapt_batchnorm(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    precision: engine.Runtime,
    adaptation: Adaptation,
) -> None:
    """The BatchNorm-level method (AdaBN, or TENT then AdaBN) on one set, in place: callers
    restore the model."""
    if adaptation.method == "tent":
        entropy_minimise(model, images, rows, precision, adaptation)
    if adaptation.method != "none":
        reestimate(model, images, rows, precision, adaptation.batch)


def adapted_probabilities(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    precision: engine.Runtime,
    adaptation: Adaptation,
) -> np.ndarray:
    """Probabilities of one evaluation set's images after adapting to that set alone; the
    model is restored afterwards.

    TENT ends with an AdaBN pass under its updated affine parameters, so its predictions are
    made in eval mode and do not depend on how the set happens to be batched. SHOT and the
    output-level methods need the member's classifier and validation: ``compose.adapted_set``.
    """
    if adaptation.shot or adaptation.outputs:
        raise ValueError(f"{adaptation.suffix}: SHOT, LAME, EM and BBSE adapt whole entries")
    with restored(model):
        adapt_batchnorm(model, images, rows, precision, adaptation)
        return probabilities(model, images, rows, precision, adaptation.tta, adaptation.batch)
