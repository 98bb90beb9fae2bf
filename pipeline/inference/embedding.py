"""The t-SNE map of a member's penultimate features (as in Tsutsui et al., Fig. 3)."""

from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE


def tsne_map(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE coordinates; perplexity shrinks for small samples, as t-SNE requires."""
    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        features.astype(np.float64)
    )
