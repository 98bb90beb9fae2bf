"""The dataset adapter registry: ``name -> loader(root) -> Dataset``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from pipeline.data.records import Dataset
from pipeline.errors import UnknownNameError

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


def is_adapter(name: str) -> bool:
    return name in _ADAPTERS
