"""Scoring: a model's predictions in batches, metrics, answer keys, calibration and
uncertainty over seeds."""
