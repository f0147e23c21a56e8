"""Measurements: augmenter latency, input-pipeline throughput, data-wait/step ratio."""
