"""Synthetic data, training, evaluation and export of the detector that the edge runs."""
