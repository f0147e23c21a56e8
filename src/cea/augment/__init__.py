"""Augmentation: a registry of offline augmenters, a policy, a deterministic training dataset."""
