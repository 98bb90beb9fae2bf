"""A member or an ensemble as an ONNX model a lab can ship (``python -m pipeline.export``).

The graph takes what ``pipeline.data.cache.decode`` makes of an image file, uint8 RGB
``(N, S, S, 3)``, and returns the calibrated probabilities (``probs``) and the uncalibrated
ones (``probs_raw``): scaling to [0, 1], normalisation, the network(s), the ensemble's
combination and the temperatures are inside it. ``model.json`` beside it is the contract: the
size, the crop, the normalisation, the class order and the temperature.

Stain normalisation (a member trained with ``stain_norm``) is per-image statistics and, for
Macenko, an eigen-decomposition and percentiles that ONNX has no operators for, so it stays a
step before the graph: the bundle ships ``stain.py`` (``pipeline.data.stain_apply`` verbatim)
and ``model.json`` names the reference it maps every image onto.
"""

from __future__ import annotations

import hashlib
import io
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import torch
from torch import nn

from pipeline.data import stain_apply
from pipeline.ensembling.methods import (
    VOTE_TIE_BREAK,
    EnsembleMethod,
    StackEnsemble,
    VoteEnsemble,
)
from pipeline.evaluation.calibration import LOG_FLOOR
from pipeline.inference.load import LoadedEnsemble, LoadedMember, load_ensemble, load_member
from pipeline.io import atomic_write, write_json, write_text
from pipeline.models.factory import set_module
from pipeline.runs import provenance
from pipeline.runs.layout import Layout

OPSET = 17
INPUT = "image"
OUTPUTS = ("probs", "probs_raw")
STAIN_MODULE = "stain.py"  # shipped beside a stain-normalised member's graph
STACK_FLOOR = 1e-7  # pipeline.ensembling.methods.stack_features clips member probabilities here


def scaled(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``pipeline.evaluation.calibration.apply_temperature`` in the graph."""
    return torch.softmax(torch.clamp(torch.log(probs), min=LOG_FLOOR) / temperature, dim=1)


def pool_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` weights of adaptive average pooling along one axis: output i averages
    inputs floor(i * n_in / n_out) to ceil((i + 1) * n_in / n_out), as PyTorch defines it."""
    weights = torch.zeros(n_out, n_in)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        weights[i, start:end] = 1 / (end - start)
    return weights


class MatrixPool(nn.Module):
    """``nn.AdaptiveAvgPool2d`` at one input size as two matrix products: the TorchScript
    exporter refuses adaptive pooling whose output size does not divide the input size (VGG and
    AlexNet at the zoo's small inputs)."""

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("rows", pool_matrix(in_hw[0], out_hw[0]))
        self.register_buffer("cols", pool_matrix(in_hw[1], out_hw[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rows @ x @ self.cols.T


def exportable_pools(model: nn.Module, size: int) -> None:
    """Swap (in place) each adaptive average pool the exporter refuses at input ``size`` for
    its ``MatrixPool``, which computes the same."""
    seen: dict[str, tuple[int, int]] = {}
    pools = {n: m for n, m in model.named_modules() if isinstance(m, nn.AdaptiveAvgPool2d)}

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            seen[name] = tuple(inputs[0].shape[-2:])

        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in pools.items()]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    for name, in_hw in seen.items():
        out = pools[name].output_size
        out_hw = tuple(in_hw[k] if o is None else o for k, o in enumerate(_pair(out)))
        if in_hw[0] % out_hw[0] or in_hw[1] % out_hw[1]:
            set_module(model, name, MatrixPool(in_hw, out_hw))


def _pair(value: int | tuple) -> tuple:
    return (value, value) if isinstance(value, int) else tuple(value)


class MemberGraph(nn.Module):
    """uint8 NHWC images -> (calibrated, uncalibrated) probabilities of one member."""

    def __init__(self, member: LoadedMember) -> None:
        super().__init__()
        self.model = member.model.float().cpu().eval()
        exportable_pools(self.model, member.image_size)
        self.temperature = member.temperature
        self.register_buffer("mean", torch.tensor(member.precision.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(member.precision.std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.permute(0, 3, 1, 2).float() / 255
        logits = self.model((x - self.mean) / self.std).float()
        return torch.softmax(logits / self.temperature, dim=1), torch.softmax(logits, dim=1)


class EnsembleGraph(nn.Module):
    """uint8 NHWC images -> (calibrated, uncalibrated) probabilities of a saved ensemble:
    ``LoadedEnsemble.combine`` of its calibrated members, in the graph."""

    def __init__(self, ensemble: LoadedEnsemble) -> None:
        super().__init__()
        self.members = nn.ModuleList(MemberGraph(m) for m in ensemble.members)
        fitted = ensemble.estimator
        if type(fitted).predict_proba is not EnsembleMethod.predict_proba and not isinstance(
            fitted, VoteEnsemble | StackEnsemble
        ):
            raise ValueError(
                f"{ensemble.name}: pipeline.export has no graph for {fitted.method!r} ensembles "
                "(EnsembleGraph.combine); export its members instead"
            )
        self.method = fitted.method
        self.temperature = ensemble.temperature
        self.n_classes = len(ensemble.classes)
        weights = torch.tensor(fitted.weights_, dtype=torch.float32)
        self.register_buffer("weights", weights / weights.sum())
        if isinstance(fitted, StackEnsemble):
            model = fitted.model_
            coef = torch.tensor(model.coef_, dtype=torch.float32)
            bias = torch.tensor(model.intercept_, dtype=torch.float32)
            if len(coef) == 1:  # two classes: sklearn's sigmoid is a softmax over (0, d)
                coef, bias = torch.cat([torch.zeros_like(coef), coef]), torch.cat([0 * bias, bias])
            self.register_buffer("coef", coef)
            self.register_buffer("bias", bias)
            self.columns = [int(c) for c in model.classes_]

    def combine(self, probs: list[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(probs)  # (members, N, classes)
        if self.method == "vote":
            votes = nn.functional.one_hot(stacked.argmax(dim=2), self.n_classes).float()
            shares = votes.mean(dim=0) + VOTE_TIE_BREAK * stacked.mean(dim=0)
            return shares / shares.sum(dim=1, keepdim=True)
        if self.method == "stack":
            features = torch.log(torch.clamp(torch.cat(probs, dim=1), min=STACK_FLOOR))
            fitted = torch.softmax(features @ self.coef.T + self.bias, dim=1)
            out = torch.zeros(fitted.shape[0], self.n_classes)
            out[:, self.columns] = fitted
            return out
        mixed = torch.einsum("m,mnc->nc", self.weights, stacked)
        return mixed / mixed.sum(dim=1, keepdim=True)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.combine([m(images)[0] for m in self.members])
        return scaled(raw, self.temperature), raw


def stain_step(member: LoadedMember) -> dict | None:
    """The stain normalisation to apply before the graph, as ``model.json`` states it."""
    if member.stain is None:
        return None
    return {
        **member.stain.to_dict(),
        "in_graph": False,
        "module": STAIN_MODULE,
        "call": "stain.normalise_all(images, method, values): uint8 (N, S, S, 3) RGB, after "
        "the crop and resize, before the graph",
        "requires": f"numpy, torchstain=={version('torchstain')}",
    }


def contract(members: Sequence[LoadedMember], classes: Sequence[str], temperature: float) -> dict:
    """What a caller must do to an image before the graph, and what comes out."""
    first = members[0]
    return {
        "classes": list(classes),
        "input": {
            "name": INPUT,
            "dtype": "uint8",
            "shape": ["N", first.image_size, first.image_size, 3],
            "layout": "NHWC, RGB",
        },
        "preprocessing": {
            "image_size": first.image_size,
            "crop": asdict(first.crop),
            "resize": "bilinear (PIL), after the crop; see pipeline.data.cache.decode",
            "normalisation": [{"member": m.name, **(m.meta.normalisation or {})} for m in members],
            "normalisation_in_graph": True,
            "stain_norm": stain_step(first),
        },
        "outputs": {
            "probs": f"probabilities, calibrated (temperature {temperature:g}, fitted on "
            "validation); columns in the order of 'classes'",
            "probs_raw": "the same before the temperature",
        },
        "temperature": temperature,
    }


def check_shared_input(members: Sequence[LoadedMember]) -> None:
    """One graph input needs one image size, one crop and one stain for all members."""
    inputs = {(m.image_size, m.crop, m.stain) for m in members}
    if len(inputs) > 1:
        shown = ", ".join(
            f"{m.name}: {m.image_size} px, {m.crop.mode} crop, "
            f"{m.stain.method if m.stain else 'no'} stain"
            + (f" {m.stain.digest}" if m.stain else "")
            for m in members
        )
        raise ValueError(
            f"the members take different inputs ({shown}): export them one by one with --member"
        )


def export_graph(graph: nn.Module, size: int, path: Path) -> None:
    """ONNX through the TorchScript exporter (``dynamo=False``): it needs no onnxscript and
    exports every catalogue family we checked; batch size stays dynamic."""
    example = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter announces its deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph.eval(),
            (example,),
            buf,
            dynamo=False,
            input_names=[INPUT],
            output_names=list(OUTPUTS),
            dynamic_axes={INPUT: {0: "N"}, **{o: {0: "N"} for o in OUTPUTS}},
            opset_version=OPSET,
        )
    atomic_write(path, lambda f: f.write(buf.getbuffer()), binary=True)


def export(
    out: Path,
    name: str,
    kind: str,
    dataset: str | None = None,
    dest: Path | None = None,
) -> Path:
    """Write ``model.onnx`` and ``model.json`` of a member or ensemble; returns the folder."""
    if kind == "member":
        member = load_member(out, name, dataset, "cpu")
        members, classes, graph = [member], member.classes, MemberGraph(member)
        dataset, temperature, method = member.dataset, member.temperature, None
    else:
        ensemble = load_ensemble(out, name, dataset, "cpu")
        members, classes = ensemble.members, ensemble.classes
        check_shared_input(members)
        graph = EnsembleGraph(ensemble)
        dataset, temperature, method = members[0].dataset, ensemble.temperature, graph.method
    folder = dest or Layout(out).export(dataset, name)
    model_file = folder / "model.onnx"
    export_graph(graph, members[0].image_size, model_file)
    data = model_file.read_bytes()
    info = {
        "name": name,
        "kind": kind,
        "dataset": dataset,
        "file": model_file.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "opset": OPSET,
        **contract(members, classes, temperature),
        "members": [m.name for m in members],
        "method": method,
        "versions": provenance.package_versions(),
        "command": provenance.command_line("pipeline.export"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if members[0].stain is not None:
        write_text(folder / STAIN_MODULE, Path(stain_apply.__file__).read_text(encoding="utf-8"))
    write_json(folder / "model.json", info)
    return folder
