"""The model zoo: catalogue, construction, head replacement, weights, and the engine."""

from pipeline.models.catalogue import Architecture, load_catalogue, select
from pipeline.models.factory import count_gmacs, count_params, create_model

__all__ = [
    "Architecture",
    "count_gmacs",
    "count_params",
    "create_model",
    "load_catalogue",
    "select",
]
