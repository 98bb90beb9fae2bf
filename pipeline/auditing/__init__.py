"""Data audit: duplicates and leakage across splits and datasets, outliers, bad files.

``python -m pipeline.audit --help``; the library entry point is :func:`audit`.
"""

from pipeline.auditing.core import AuditConfig, AuditResult, Item, Pair, audit

__all__ = ["AuditConfig", "AuditResult", "Item", "Pair", "audit"]
