"""A model's softmax outputs on decoded images, in batches: what training scores and a loaded
member predicts with."""

from __future__ import annotations

import numpy as np
from torch import nn

from pipeline.data.loader import CachedImages, make_loader
from pipeline.data.store import View
from pipeline.models import engine

EVAL_BATCH = 128


def predict_rows(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    precision: engine.Runtime,
    workers: int = 0,
) -> np.ndarray:
    """Softmax probabilities for ``images[rows]`` (uint8 ``(N, S, S, 3)``), in batches."""
    data = CachedImages(images, rows, np.zeros(len(rows), dtype=np.int64))
    loader = make_loader(data, EVAL_BATCH, False, workers, 0, precision.device.type == "cuda")
    return engine.predict(model, loader, precision)


def predict_view(
    model: nn.Module, view: View, precision: engine.Runtime, workers: int
) -> np.ndarray:
    return predict_rows(model, view.images, view.rows, precision, workers)
