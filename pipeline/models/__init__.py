"""The model zoo: catalogue, construction, head replacement and weights."""

from pipeline.models.catalogue import Entry, load_catalogue, select
from pipeline.models.factory import count_gmacs, count_params, create_model

__all__ = ["Entry", "count_gmacs", "count_params", "create_model", "load_catalogue", "select"]
