"""`cea bench train`: a few real optimizer steps of the configured run on the user's data, and
from them an estimate of an epoch and of the whole run.

Everything a run does is timed on the real task: reading the data, splitting and building the
examples, tokenizing and chunking (the tokenizer cuts the windows), building the model, the
training steps (data wait — collate, augmentation — and the step itself: forward, pooling,
backward, optimizer), a validation pass and a checkpoint. The estimate is

    setup + epochs × (steps per epoch × time per step + validation + checkpoint)
          + final validation and test passes,

with the steps per epoch counted by the very sampler training uses (post packing or window
batches) and the time per step the mean over the measured steps after a warm-up. Early
stopping can end a run sooner: the estimate is for all `train.epochs`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from cea.config import CeaConfig


def _sampler_len(cfg: CeaConfig, feats: Any, pair: bool, hardness: Any = None) -> tuple[int, int]:
    """Micro-steps and rows per epoch: those of the very sampler training builds (a sampled
    epoch's draw of negatives included, so rows may be fewer than the training rows)."""
    from cea.train.loop import negative_plan, sampling_applies, training_loader

    plan = negative_plan(cfg, feats, hardness) if sampling_applies(cfg, pair) else None
    sampler = training_loader(cfg, feats, pair=pair, plan=plan)[1]
    return len(sampler), sum(len(batch) for batch in sampler)


def estimate_training(cfg: CeaConfig, *, steps: int = 20, warmup: int = 3) -> dict[str, Any]:
    """Time `warmup + steps` real micro-steps of `cfg` and estimate its epoch and run time.
    The setup is the run's own (`cea.train.run.load_inputs`, `build_run_model`), timed."""
    import psutil

    from cea.model.inference import predict
    from cea.progress import RecordingProgress
    from cea.train.loop import fit, resolve_device
    from cea.train.run import build_run_model, load_inputs

    times: dict[str, float] = {}
    # what the process spent before this call (interpreter start, imports): a run pays it too
    times["startup_s"] = max(0.0, time.time() - psutil.Process().create_time())
    inputs = load_inputs(cfg, times=times)
    cfg = inputs.data.config  # task.level "auto" resolved from the data
    data, feats, pair = inputs.data, inputs.feats, cfg.task.pair
    t = time.perf_counter()
    model = build_run_model(cfg, inputs)
    times["model_build_s"] = time.perf_counter() - t
    steps_per_epoch, epoch_rows = _sampler_len(cfg, feats["train"], pair, inputs.hardness)
    measured = min(warmup + steps, steps_per_epoch)
    timed = {"max_steps": max(1, measured // cfg.train.grad_accum), "epochs": 1, "log_every": 1}
    short = cfg.model_copy(update={"train": cfg.train.model_copy(update=timed)})
    rec = RecordingProgress()
    n_out = 1 if pair else len(data.labels)
    pad_id = inputs.pad_id
    ch = cfg.model.chunking
    with tempfile.TemporaryDirectory(prefix="cea-bench-train-") as tmp:
        t = time.perf_counter()
        fit(model, short, train_features=feats["train"], val_features=feats["validation"],
            labels=data.labels, pair=pair, run_dir=Path(tmp), progress=rec, pad_id=pad_id,
            train_dataset=inputs.train_dataset, hardness=inputs.hardness)  # fmt: skip
        fit_s = time.perf_counter() - t
    step_events = [p for k, p in rec.events if k == "step"]
    # (micro-steps, wait, step) per event: its times are per optimizer step, so times their count
    micro = [
        (p["steps"], p["data_wait_s"] * p["optimizer_steps"], p["step_s"] * p["optimizer_steps"])
        for p in step_events
    ]
    skip = min(warmup, max(len(micro) - 1, 0))
    kept = micro[skip:] or micro
    n_micro = sum(m[0] for m in kept)
    wait = sum(m[1] for m in kept)
    step = sum(m[2] for m in kept)
    per_step = (wait + step) / max(n_micro, 1)
    epoch_ev = next((p for k, p in rec.events if k == "epoch"), {})
    device = resolve_device(cfg.train.device, _dist())
    t = time.perf_counter()
    predict(model, feats["validation"], device=device, batch_size=cfg.train.eval_batch_size,
            pair=pair, n_outputs=n_out, aggregate=ch.aggregate, pad_id=pad_id)  # fmt: skip
    val_s = time.perf_counter() - t
    test_rows = len(feats["test"]) if "test" in feats else 0
    test_s = val_s * test_rows / max(len(feats["validation"]), 1)
    # the epoch event's duration covers the steps and the validation pass; what fit spent
    # beyond it is the checkpoint (and the optimizer's setup)
    checkpoint_s = max(0.0, fit_s - float(epoch_ev.get("duration_s", fit_s)))
    setup_s = sum(times.values())
    epoch_s = steps_per_epoch * per_step + val_s + checkpoint_s
    # the end of a run: validation and test passes with the kept model, and its folder written
    run_s = setup_s + cfg.train.epochs * epoch_s + val_s + test_s + checkpoint_s
    rows_per_step = epoch_rows / max(steps_per_epoch, 1)
    inputs.release()
    return {
        "task": f"{cfg.task.name}/{cfg.task.level}",
        "backbone": cfg.model.backbone,
        "device": str(device),
        "examples": {k: len(v) for k, v in data.examples.items()},
        "rows": {k: len(f) for k, f in feats.items()},
        "truncated_share": {
            k: round(f.truncated_examples / max(f.n_examples, 1), 4) for k, f in feats.items()
        },
        "steps_measured": n_micro,
        "steps_per_epoch": steps_per_epoch,
        "epochs": cfg.train.epochs,
        "time_s": {
            **{k: round(v, 3) for k, v in times.items()},
            "data_wait_per_step": round(wait / max(n_micro, 1), 5),
            "step": round(step / max(n_micro, 1), 5),
            "validation_pass": round(val_s, 3),
            "checkpoint": round(checkpoint_s, 3),
        },
        "data_wait_ratio": round(wait / max(wait + step, 1e-12), 5),
        "samples_per_s": round(rows_per_step / max(per_step, 1e-9), 2),
        "estimate_s": {
            "epoch": round(epoch_s, 1),
            "run": round(run_s, 1),
        },
    }


def _dist() -> Any:
    from cea.train.loop import DistContext

    return DistContext()
