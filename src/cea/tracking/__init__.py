"""Experiment tracking: a small Tracker protocol, MLflow and null implementations, redaction."""
