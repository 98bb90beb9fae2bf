"""Names that become file or folder names, and user text quoted in messages.

Set, member, ensemble, upload, study and dataset names all end up as path parts under the
output folder, so every one of them passes :func:`plain_name` where it enters. The zoo's own
names are made here: members ``<arch>-<recipe>-s<seed>``, ensembles ``ens-<method>-<scope>``,
an adapted entry its member's or ensemble's name plus ``+<adaptation>``.
"""

from __future__ import annotations

import re

from pipeline.errors import UserError

NAME_MAX = 128
QUOTE_MAX = 60
# '+' joins a recipe's override fingerprint and a test-time adaptation to a member's name
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
RULE = (
    f"use at most {NAME_MAX} letters, digits, '.', '_', '+' or '-', not starting with '.', '+' "
    "or '-'"
)


ENSEMBLE_PREFIX = "ens-"
# a member's seed, before an adaptation's suffix if there is one
_SEED = re.compile(r"-s\d+(?=(\+[A-Za-z0-9]+)*$)")
# what the zoo names itself, in any case (a case-insensitive file system would put an upload
# named Resnet18-Fast-S0 into the member's folder)
_ZOO_NAME = re.compile(rf"{ENSEMBLE_PREFIX}.*|.*-s\d+", re.IGNORECASE)


def member_name(arch: str, recipe: str, seed: int) -> str:
    """``<arch>-<recipe>-s<seed>``; an overridden recipe's name carries the fingerprint of its
    changes (``resnet18-fast+1a2b3c-s0``, see ``recipes.override``)."""
    return f"{arch}-{recipe}-s{seed}"


def ensemble_name(method: str, scope: str, pooled: bool = False) -> str:
    """``ens-<method>-<scope>``, ``-pooled`` when the members' seeds were pooled."""
    return f"{ENSEMBLE_PREFIX}{method}-{scope}{'-pooled' if pooled else ''}"


def without_seed(name: str) -> str:
    """The name of a seeded entry without its seed: ``resnet18-fast-s0+adabn`` is
    ``resnet18-fast+adabn``, as seeds of one configuration share a leaderboard row."""
    return _SEED.sub("", name)


def is_zoo_name(name: str) -> bool:
    """Whether ``name`` (in any case) is one the zoo gives its members and ensembles."""
    return bool(_ZOO_NAME.fullmatch(name))


class BadName(UserError, ValueError):
    """A name that cannot be used as a plain file or folder name."""


def plain_name(value: str, what: str) -> str:
    """``value`` when it is a plain name: no separator, no ``..``, no hidden or option-like
    name, no wildcard; else :class:`BadName` naming ``what`` and the rule."""
    if len(value) <= NAME_MAX and _PLAIN.fullmatch(value):
        return value
    raise BadName(f"{what} {quote(value)} is not a plain name: {RULE}")


def quote(value: object, limit: int = QUOTE_MAX) -> str:
    """``value`` quoted for a one-line message: escaped like ``repr`` and cut to ``limit``
    characters, so that a megabyte-long id never makes a megabyte-long message."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
