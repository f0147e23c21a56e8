"""The training loop, its data pipeline, schedule and checkpoints."""
