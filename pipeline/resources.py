"""The files the pipeline ships beside its code: the catalogue, the versioned split files, the
reference zoos and the bundled PBC sample.

In a checkout (and an editable install) they are its ``zoo/`` and ``data/`` folders. A wheel
carries the same files as data files under ``share/wbczoo/`` of the environment it is installed
into (``[tool.setuptools.data-files]`` in pyproject.toml), so an installed pipeline finds them
wherever it runs.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
INSTALLED = Path(sys.prefix) / "share" / "wbczoo"
MARKER = ("zoo", "catalogue.toml")  # the one file every installation has


@functools.cache
def root() -> Path:
    """The folder holding ``zoo/`` and ``data/``: the checkout where there is one."""
    return CHECKOUT if CHECKOUT.joinpath(*MARKER).is_file() else INSTALLED


def shipped(*parts: str) -> Path:
    """A shipped file or folder, e.g. ``shipped("zoo", "splits", "pbc.csv")``."""
    return root().joinpath(*parts)
