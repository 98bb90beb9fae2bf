"""The files the pipeline ships beside its code: the catalogue, the versioned split files, the
reference zoos and the bundled PBC sample.

In a checkout (and an editable install) they are its ``zoo/`` and ``data/`` folders. A wheel
carries the same files as data files under ``share/wbczoo/`` (``[tool.setuptools.data-files]``
in pyproject.toml), installed under the base pip installed into: the environment's prefix, the
user base (``pip install --user``) or a ``--prefix``. The installed distribution's record says
which, so an installed pipeline finds them wherever it runs.
"""

from __future__ import annotations

import functools
import site
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from pipeline.errors import UserError

CHECKOUT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "wbczoo"  # pyproject.toml's [project] name
SHARE = ("share", "wbczoo")  # the data files' folder under the installation's base
MARKER = ("zoo", "catalogue.toml")  # the one file every installation has


def recorded() -> Iterator[Path]:
    """The data folder the installed distribution's RECORD lists the marker in, if any."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return
    # RECORD holds data files relative to site-packages (``../../../share/wbczoo/...``), so
    # locating the entry gives the base pip really used.
    for file in dist.files or ():
        if file.parts[-4:] == (*SHARE, *MARKER):
            yield Path(dist.locate_file(file)).resolve().parents[1]


def places() -> Iterator[Path]:
    """Where the shipped files may be, in the order they are looked for."""
    yield CHECKOUT
    yield from recorded()
    # Without a record (a copied or hand-built install), the bases pip installs data files into.
    yield Path(sys.prefix, *SHARE)
    yield Path(site.getuserbase(), *SHARE)


class MissingInstall(UserError, FileNotFoundError):
    """An installation without its shipped files."""


@functools.cache
def root() -> Path:
    """The folder holding ``zoo/`` and ``data/``: the checkout where there is one. Only called
    when a command runs (never on import), so a broken installation is one line, exit 2."""
    looked: dict[str, None] = {}  # in order, once each (the record may name sys.prefix's)
    for place in places():
        if place.joinpath(*MARKER).is_file():
            return place
        looked[str(place)] = None
    raise MissingInstall(
        f"the pipeline's shipped files ({'/'.join(MARKER)} and the rest) are in none of "
        f"{', '.join(looked)}; reinstall {DISTRIBUTION}: pip install --force-reinstall with the "
        "wheel or the checkout it was installed from"
    )


def shipped(*parts: str) -> Path:
    """A shipped file or folder, e.g. ``shipped("zoo", "splits", "pbc.csv")``."""
    return root().joinpath(*parts)
