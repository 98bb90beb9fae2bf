"""Weights files (``--weights FILE``), checked against the member they go into: a backbone file
(a member architecture's parameters without its classifier, as ``pipeline.pretrain`` writes
them), or any state dict of the architecture (``.pth``, ``.pt``, ``.bin`` or ``.safetensors``;
ImageNet weights saved elsewhere, say), matched by tensor name or, where the names differ, in
order and shape for shape (``pipeline.models.packaged.map_state_dict``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from pipeline.errors import UserError
from pipeline.io import atomic_write
from pipeline.models.catalogue import Architecture
from pipeline.models.packaged import StateDictMismatch, map_state_dict

FORMAT = "wbczoo-backbone/1"


class BackboneFileError(UserError, ValueError):
    """A weights file that does not fit the member it is loaded into."""


def save_backbone(
    path: Path, entry: Architecture, state: dict[str, torch.Tensor], info: dict
) -> None:
    """Write ``state`` with what made it (``info``: method, images, epochs, ...)."""
    data = {"format": FORMAT, "arch": entry.name, "info": info, "state_dict": state}
    atomic_write(path, lambda f: torch.save(data, f), binary=True)


def read_weights_file(path: Path) -> dict:
    """The file's contents; tensors and plain values only (never pickled code)."""
    try:
        if Path(path).suffix == ".safetensors":
            return safetensors.torch.load_file(path)
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BackboneFileError(f"{path}: no such weights file") from None
    except Exception as exc:  # torch raises many kinds for a file that is not its own
        raise BackboneFileError(f"{path}: not a weights file ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise BackboneFileError(f"{path}: not a weights file (holds a {type(data).__name__})")
    return data


def is_backbone(data: dict) -> bool:
    return data.get("format") == FORMAT


def read_backbone(path: Path) -> dict:
    """A backbone file's contents."""
    data = read_weights_file(path)
    if not is_backbone(data):
        raise BackboneFileError(
            f"{path}: not a backbone file written by python -m pipeline.pretrain"
        )
    return data


def state_dict_of(path: Path, data: dict) -> dict[str, torch.Tensor]:
    """The tensors of a plain weights file: the dict itself, or the ``state_dict`` / ``model``
    it wraps (how training scripts often save them)."""
    for key in ("state_dict", "model"):
        if isinstance(data.get(key), dict):
            data = data[key]
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors or len(tensors) != len(data):
        raise BackboneFileError(
            f"{path}: neither a backbone file of python -m pipeline.pretrain nor a state dict "
            "(a dict of tensors)"
        )
    return tensors


def load_state_file(model: nn.Module, path: Path, data: dict) -> None:
    """Load a plain state dict (``data``, read from ``path``) into ``model`` as built (its
    classifier still the original's): by tensor name where every name matches, else in order,
    shape for shape."""
    state = state_dict_of(path, data)
    target = model.state_dict()
    mapping = "names" if state.keys() == target.keys() else "order"
    try:
        model.load_state_dict(map_state_dict(state, target, mapping))
    except StateDictMismatch as exc:
        raise BackboneFileError(
            f"{path}: does not fit {type(model).__name__} by name or in order: {exc}"
        ) from None


def check_backbone(path: Path, entries: list[Architecture]) -> None:
    """Before any training: the file is a backbone file of every member's architecture."""
    data = read_backbone(path)
    other = sorted({e.name for e in entries if e.name != data["arch"]})
    if other:
        raise BackboneFileError(
            f"--weights {path} holds a {data['arch']} backbone, not one of {', '.join(other)}: "
            f"train only {data['arch']} from it (--models {data['arch']})"
        )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def describe_backbone(path: Path) -> dict:
    """What a member started from, for its ``meta.json``: the file, its digest and how it was
    made (a backbone pretrained on evaluation images makes the member transductive; of a plain
    state dict nothing is known)."""
    data = read_weights_file(path)
    info = data["info"] if is_backbone(data) else {"method": "state dict"}
    return {
        "path": str(Path(path).resolve()),
        "sha256": file_sha256(path),
        **{k: info.get(k) for k in ("method", "images", "dataset", "extra", "transductive")},
    }


def load_backbone(
    model: nn.Module, entry: Architecture, path: Path, data: dict | None = None
) -> dict:
    """Load the file's backbone (``data``, where the file was read already) into ``model`` (a
    fresh ``entry`` member); returns its info.

    Every backbone parameter must match by name and shape; only the classifier heads are left
    as they were built."""
    data = data if data is not None else read_backbone(path)
    if data["arch"] != entry.name:
        raise BackboneFileError(
            f"{path} holds a {data['arch']} backbone, not {entry.name}: pretrain this "
            f"architecture (python -m pipeline.pretrain --arch {entry.name}) or pick a member "
            f"of {data['arch']}"
        )
    heads = tuple(f"{h}." for h in (entry.head, *entry.aux_heads))
    expected = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(heads)}
    state = data["state_dict"]
    wrong = [k for k in expected if k not in state or state[k].shape != expected[k]]
    if wrong or set(state) - set(expected):
        raise BackboneFileError(
            f"{path}: its {entry.name} parameters do not fit this member (e.g. "
            f"{(wrong or sorted(set(state) - set(expected)))[0]}); was it made by another "
            "version of the architecture?"
        )
    model.load_state_dict(state, strict=False)
    return data["info"]
