"""Datasets: readers, validation, splits, sentence splitting, examples, synthetic sample."""
