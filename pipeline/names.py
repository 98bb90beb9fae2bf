"""Names that become file or folder names, and user text quoted in messages.

Set, member, ensemble, upload, study and dataset names all end up as path parts under the
output folder, so every one of them passes :func:`plain_name` where it enters.
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
