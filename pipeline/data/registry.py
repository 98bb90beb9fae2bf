"""The dataset adapter registry: ``name -> loader(root) -> Dataset``."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from pipeline.data.records import Dataset
from pipeline.errors import UnknownNameError
from pipeline.names import plain_name

Loader = Callable[[Path], Dataset]
_ADAPTERS: dict[str, Loader] = {}


def register_adapter(name: str) -> Callable[[Loader], Loader]:
    def decorate(fn: Loader) -> Loader:
        _ADAPTERS[name] = fn
        return fn

    return decorate


def list_adapters() -> list[str]:
    return sorted(_ADAPTERS)


def load_dataset(adapter: str, root: Path | str) -> Dataset:
    """Load a dataset through its adapter; unknown adapters name the known ones."""
    if adapter not in _ADAPTERS:
        raise UnknownNameError(
            f"unknown dataset adapter {adapter!r}; known: {', '.join(list_adapters())}"
        )
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    return dataclasses.replace(_ADAPTERS[adapter](root), adapter=adapter)


def parse_source(spec: str, option: str = "--eval") -> tuple[str, str, Path]:
    """``NAME=[ADAPTER:]PATH`` -> (name, adapter, path); without a known adapter prefix the path
    is a ``folder`` (so ``NAME=PATH`` keeps its meaning, and ``C:\\data`` stays a path)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise SystemExit(f"{option} takes NAME=[ADAPTER:]PATH, got {spec!r}")
    plain_name(name, f"{option} name")  # the set's submission file is <NAME>.csv
    adapter, colon, path = rest.partition(":")
    if colon and adapter in _ADAPTERS and path:
        return name, adapter, Path(path)
    # ``nosuch:/p``: a misspelt adapter, unless the whole is a path (``C:\data``, ``a:b/``)
    if colon and re.fullmatch(r"[A-Za-z][\w-]+", adapter) and not Path(rest).exists():
        raise UnknownNameError(
            f"{option} {spec}: unknown dataset adapter {adapter!r}; known: "
            f"{', '.join(list_adapters())}"
        )
    return name, "folder", Path(rest)
