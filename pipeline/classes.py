"""The canonical class vocabulary and the one helper that aligns members with evaluation sets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.errors import UserError

CLASSES: tuple[str, ...] = (
    "basophil",
    "eosinophil",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "ig",
    "erythroblast",
    "platelet",
)

# Spellings seen in public releases; anything else must match a canonical name case-insensitively.
_ALIASES: dict[str, str] = {
    "immature granulocyte": "ig",
    "immature granulocytes": "ig",
    "immature_granulocytes": "ig",
    "thrombocyte": "platelet",
    "baso": "basophil",
    "eosi": "eosinophil",
    "lymp": "lymphocyte",
    "mono": "monocyte",
    "neut": "neutrophil",
}


class UnknownClassError(UserError, ValueError):
    """A class name that maps to no canonical class."""


def canonical_class(name: str) -> str:
    """Map a folder or label name to the canonical vocabulary, case-insensitively."""
    key = name.strip().lower()
    for candidate in (key, key.rstrip("s")):
        if candidate in CLASSES:
            return candidate
        if candidate in _ALIASES:
            return _ALIASES[candidate]
    raise UnknownClassError(
        f"unknown class name {name!r}; allowed (case-insensitive): {', '.join(CLASSES)}"
    )


def ordered(classes: Sequence[str]) -> tuple[str, ...]:
    """Classes in canonical order, without duplicates."""
    present = set(classes)
    return tuple(c for c in CLASSES if c in present)


def align_probabilities(
    probs: np.ndarray,
    member_classes: Sequence[str],
    eval_classes: Sequence[str],
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Restrict a member's probabilities to the classes it shares with an evaluation set.

    Members trained on 8 PBC classes are scored on 5-class sets this way: the columns of the
    shared classes are kept (canonical order) and renormalised to sum to 1.
    """
    shared = tuple(c for c in ordered(member_classes) if c in set(eval_classes))
    if not shared:
        raise ValueError(
            f"member classes {list(member_classes)} share nothing with {list(eval_classes)}"
        )
    columns = [list(member_classes).index(c) for c in shared]
    kept = np.asarray(probs, dtype=np.float64)[:, columns]
    totals = kept.sum(axis=1, keepdims=True)
    uniform = np.full_like(kept, 1.0 / len(shared))
    aligned = np.divide(kept, totals, out=uniform, where=totals > 0)
    return aligned, shared
