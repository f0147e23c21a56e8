"""Multi-instance training of chunked posts, masked labels and a diverging loss (issue #16)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cea.config import load_config
from cea.errors import RuntimeFailure
from cea.model.features import ExampleBatchSampler, Features
from cea.model.inference import masked_bce, pool_logits
from cea.train.loop import pos_weights
from cea.train.run import run_training


@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=30),
    st.integers(0, 2**31 - 1),
)
@settings(max_examples=60, deadline=None)
def test_pooling_rules_against_a_loop(index: list[int], seed: int) -> None:
    present = sorted(set(index))
    remap = {v: i for i, v in enumerate(present)}
    idx = torch.tensor([remap[v] for v in index])
    n = len(present)
    logits = torch.from_numpy(np.random.default_rng(seed).normal(0, 3, (len(index), 3)))
    for rule in ("max", "mean", "lse"):
        pooled = pool_logits(logits, idx, n, rule)
        for e in range(n):
            rows = logits[idx == e]
            want = {
                "max": rows.max(0).values,
                "mean": rows.mean(0),
                "lse": torch.logsumexp(rows, 0) - math.log(len(rows)),
            }[rule]
            assert torch.allclose(pooled[e], want, atol=1e-9)
        if rule == "lse":  # between the mean and the max
            assert torch.all(pooled <= pool_logits(logits, idx, n, "max") + 1e-9)
            assert torch.all(pooled >= pool_logits(logits, idx, n, "mean") - 1e-9)


def test_max_pooling_sends_the_gradient_to_the_evidence_window() -> None:
    logits = torch.tensor([[-2.0], [3.0], [0.5]], requires_grad=True)
    pooled = pool_logits(logits, torch.tensor([0, 0, 0]), 1, "max")
    masked_bce(pooled, torch.tensor([[1.0]])).backward()
    grad = logits.grad
    assert grad is not None
    assert grad[1, 0] != 0 and grad[0, 0] == 0 and grad[2, 0] == 0


def test_masked_targets_add_nothing_to_the_loss() -> None:
    logits = torch.tensor([[5.0, -5.0], [0.0, 0.0]])
    full = masked_bce(logits[:, :1], torch.tensor([[1.0], [0.0]]))
    masked = masked_bce(logits, torch.tensor([[1.0, math.nan], [0.0, math.nan]]))
    assert torch.isclose(full, masked)


def _features(windows: list[int], labels: list[tuple[float, ...]]) -> Features:
    ids, ex = [], []
    for e, k in enumerate(windows):
        for _ in range(k):
            ids.append([1] * (5 + e))
            ex.append(e)
    return Features(ids, None, ex, [labels[e] for e in ex], [-1] * len(ex), len(windows), 0, 0)


def test_example_batches_keep_every_window_of_a_post_together() -> None:
    f = _features([1, 4, 2, 3, 1, 5], [(0.0,)] * 6)
    sampler = ExampleBatchSampler(f, 4, seed=3)
    seen = []
    for batch in sampler:
        posts = {f.example_index[r] for r in batch}
        assert len(batch) <= 4 or len(posts) == 1  # packed up to 4 windows; a longer post alone
        for p in posts:  # all windows of each post in this batch
            assert sorted(r for r in batch if f.example_index[r] == p) == [
                r for r, e in enumerate(f.example_index) if e == p
            ]
        seen += batch
    assert sorted(seen) == list(range(len(f)))
    assert len(sampler) == len(list(sampler))
    assert list(sampler) == list(ExampleBatchSampler(f, 4, seed=3))  # (seed, epoch) only
    halves = [list(ExampleBatchSampler(f, 4, seed=3, rank=r, num_replicas=2)) for r in (0, 1)]
    assert len(halves[0]) == len(halves[1])


def test_pos_weight_counts_a_post_once_and_skips_unknown_labels() -> None:
    # post 0 positive with 4 windows, posts 1-3 negative with 1 window, post 4 unknown
    f = _features([4, 1, 1, 1, 2], [(1.0,), (0.0,), (0.0,), (0.0,), (math.nan,)])
    assert float(pos_weights(f, 1, False, 100.0)[0]) == pytest.approx(3.0)
    # per window the positive post weighs 4 times: 3 negatives / 4 positive rows, clipped to 1
    assert float(pos_weights(f, 1, False, 100.0, per_example=False)[0]) == pytest.approx(1.0)


def _cfg(tiny: Path, data: Path | str, runs: Path, name: str, *extra: str):  # type: ignore[no-untyped-def]
    return load_config(
        "tiny",
        [
            f"model.backbone={tiny}",
            f"data.path={data}",
            f"output.runs_dir={runs}",
            f"output.run_name={name}",
            "model.max_length=24",  # every sample post is several windows
            "model.chunking.stride=4",
            *extra,
        ],
    )


@pytest.mark.parametrize("unit,agg", [("post", "lse"), ("window", "max")])
def test_chunked_training_per_post_and_per_window(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path, unit: str, agg: str
) -> None:
    cfg = _cfg(tiny_backbone, small_sample, tmp_path, unit,
               f"model.chunking.train_unit={unit}", f"model.chunking.aggregate={agg}")  # fmt: skip
    meta = run_training(cfg, tmp_path / unit).meta
    assert meta["truncation"]["train"]["chunked"] > 0
    assert meta["chunking"]["train_unit"] == unit
    assert all(math.isfinite(h["train_loss"]) for h in meta["history"])


def _poison_loss(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """The loss turns NaN after `after` steps (what a too-high learning rate does on a GPU)."""
    import cea.train.loop as loop

    calls = {"n": 0}
    real = loop._loss

    def poisoned(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        out = real(*args, **kwargs)
        return out * float("nan") if calls["n"] > after else out

    monkeypatch.setattr(loop, "_loss", poisoned)


def test_a_diverging_loss_is_exit_6_one_line_and_a_failed_mlflow_run(
    tiny_backbone: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    _poison_loss(monkeypatch, 1)
    res = cli(
        "train", "--config", "tiny", "--backbone", str(tiny_backbone), "--run-name", "nan",
        "-q", "train.batch_size=10000", "tracking.system_metrics=false",
    )  # fmt: skip
    assert res.exit_code == 6, res.stderr
    assert "training loss became nan at epoch 2" in res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    assert not (Path("runs/nan") / "manifest.json").exists()  # never a finished run
    assert (Path("runs/nan") / "checkpoints" / "best" / "model.safetensors").is_file()
    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    runs = mlflow.search_runs(experiment_names=["cea"], output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]


def test_nonfinite_loss_is_caught_at_once(
    tiny_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forced NaN in the second epoch: RuntimeFailure, and epoch 1's best weights kept."""
    _poison_loss(monkeypatch, 1)
    cfg = load_config("tiny", [f"model.backbone={tiny_backbone}", f"output.runs_dir={tmp_path}",
                               "output.run_name=poison", "train.batch_size=10000"])  # fmt: skip
    with pytest.raises(RuntimeFailure) as exc:
        run_training(cfg, tmp_path / "poison")
    assert exc.value.exit_code == 6
    assert "best checkpoint so far is kept" in (exc.value.hint or "")
    assert (tmp_path / "poison" / "checkpoints" / "best" / "model.safetensors").is_file()


def test_masked_labels_train_and_score_without_nan(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path
) -> None:
    ann = small_sample / "redsm5_annotations.csv"
    lines = ann.read_text().splitlines()
    # misspell every FATIGUE label: those posts' FATIGUE targets become unknown
    ann.write_text("\n".join(ln.replace(",FATIGUE,", ",FATIGUEE,") for ln in lines) + "\n")
    cfg = _cfg(tiny_backbone, small_sample, tmp_path, "masked")
    meta = run_training(cfg, tmp_path / "masked").meta
    assert meta["data_warnings"] > 0
    val = meta["metrics"]["validation"]
    assert all(math.isfinite(v) for v in (val["macro_f1"], val["micro_f1"], val["loss"]))
    # every FATIGUE target is unknown or negative now; none was silently made negative
    assert val["per_label"]["FATIGUE"]["support"] == 0
    fixed = _cfg(tiny_backbone, small_sample, tmp_path, "aliased",
                 'data.label_aliases={"FATIGUEE": "FATIGUE"}')  # fmt: skip
    meta2 = run_training(fixed, tmp_path / "aliased").meta
    assert meta2["data_warnings"] < meta["data_warnings"]
    assert meta2["metrics"]["validation"]["per_label"]["FATIGUE"]["support"] > 0
    # evaluation of the masked run: finite numbers, unknown targets written as null
    from cea.evaluate.evaluation import evaluate_run

    out = evaluate_run(tmp_path / "masked", split="validation", name="v", n_boot=100)
    rows = [json.loads(x) for x in (out.folder / "predictions.jsonl").read_text().splitlines()]
    assert any(r["targets"]["FATIGUE"] is None for r in rows)
    assert "NaN" not in (out.folder / "predictions.jsonl").read_text()
    assert math.isfinite(out.report["ece"])
    assert "FATIGUE" in out.report["metrics"]["labels_without_positives"]
    assert "left out of the macro averages" in (out.folder / "report.md").read_text()


def test_non_finite_validation_outputs_never_become_the_model(
    tiny_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finite loss, then an update that overflows: the validation pass sees NaN outputs."""
    import cea.train.loop as loop

    real = loop.predict
    calls = {"n": 0}

    def nan_after_first(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        out = real(*args, **kwargs)
        if calls["n"] > 1:
            out.prob[:] = float("nan")
        return out

    monkeypatch.setattr(loop, "predict", nan_after_first)
    cfg = load_config("tiny", [f"model.backbone={tiny_backbone}", f"output.runs_dir={tmp_path}",
                               "output.run_name=v", "train.epochs=3"])  # fmt: skip
    with pytest.raises(RuntimeFailure) as exc:
        run_training(cfg, tmp_path / "v")
    assert "validation outputs became non-finite after epoch 2" in exc.value.message
    assert not (tmp_path / "v" / "manifest.json").exists()
