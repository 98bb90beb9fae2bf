"""Scoring: metrics, answer keys, calibration and uncertainty over seeds."""
