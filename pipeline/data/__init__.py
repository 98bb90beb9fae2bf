"""Datasets: adapters, splits, the decode-once cache and the training data path."""

from pipeline.data import folder, lisc, npz, pbc, raabin  # noqa: F401  (register the adapters)
from pipeline.data.records import Dataset, DatasetLayoutError, Record
from pipeline.data.registry import list_adapters, load_dataset, register_adapter

__all__ = [
    "Dataset",
    "DatasetLayoutError",
    "Record",
    "list_adapters",
    "load_dataset",
    "register_adapter",
]
