"""End to end with the real packaged MiniLM (slow: tens of seconds on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


def test_minilm_short_run_loads_back_in_transformers(
    cli, small_sample: Path, tmp_path: Path
) -> None:
    res = cli(
        "train",
        "--config",
        "default",
        "--data",
        str(small_sample),
        "--runs-dir",
        str(tmp_path),
        "--run-name",
        "mini",
        "--json",
        "train.epochs=1",
        "train.max_steps=3",
        "model.max_length=64",
    )
    assert res.exit_code == 0, res.stderr
    run = Path(json.loads(res.stdout)["run_dir"])
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model, info = AutoModelForSequenceClassification.from_pretrained(run, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    meta = json.loads((run / "cea_meta.json").read_text())
    assert [model.config.id2label[i] for i in range(model.config.num_labels)] == meta["labels"]
    # the default on data with evidence rows: one multi-label sentence model, posts pooled
    assert meta["task"]["level"] == "sentence" and meta["task"]["encoding"] == "multilabel"
    assert meta["posts"]["pooling"] == "max" and meta["calibration"]["method"] == "platt"
    tok = AutoTokenizer.from_pretrained(run)
    with torch.no_grad():
        logits = model(**tok(["I can't sleep at night."], return_tensors="pt")).logits
    assert logits.shape == (1, 10) and torch.isfinite(logits).all()
