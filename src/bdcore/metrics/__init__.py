"""Metrics: the evaluation batch record and functional image-quality metrics."""
