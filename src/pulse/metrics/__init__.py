"""Metrics: pure functions of a model's scores (no files)."""
