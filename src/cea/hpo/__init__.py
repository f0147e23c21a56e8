"""Hyper-parameter search: search space, storages, objective, workers, recovery."""
