"""The one rank rule of every board: equal scores share a rank, the next rank skips (1, 1, 3)."""

from __future__ import annotations

import pandas as pd


def shared_rank(scores: pd.Series) -> pd.Series:
    """Competition ranking of ``scores``, higher first: equals share the best rank of their
    group (``method="min"``); a missing score gets no rank (``<NA>``)."""
    return scores.rank(ascending=False, method="min").astype("Int64")
