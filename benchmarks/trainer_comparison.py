"""Training-step throughput: cea's loop vs transformers' Trainer, same data and batch size.

MiniLM (packaged), (criterion, sentence) pairs from the bundled sample, batch 16, max length
128, CPU. Both sides run N optimizer steps after a warm-up; we report samples/s of the steady
part. Needs `accelerate` (Trainer's dependency; not part of cea's install):

    pip install accelerate && python benchmarks/trainer_comparison.py --steps 30 --profile 10

Then `--profile N` steps of cea's step (bucketing off) run under torch.profiler: the share of
CPU time per kind of work (its table goes to stderr) and the speed-up a loop around the same
model could reach at most. Prints one JSON object. Timing claims live here, not in unit tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _features(max_length: int):
    from cea.config import load_config
    from cea.data.prepare import prepare_data
    from cea.model.backbone import resolve_backbone
    from cea.model.build import load_tokenizer
    from cea.model.features import featurize

    cfg = load_config("default", ["task.level=sentence", "task.negatives=annotated"])
    data = prepare_data(cfg)
    bb = resolve_backbone("minilm")
    tok = load_tokenizer(bb)
    feats = featurize(
        data.examples["train"],
        tok,
        max_length=max_length,
        labels=data.labels,
        descriptions=data.descriptions,
        chunking=False,
    )
    return cfg, data, bb, tok, feats


def bench_cea(
    steps: int, warmup: int, batch: int, max_length: int, bucket: bool = True, rec: Any = None
) -> dict[str, float]:
    from cea.model.build import build_model
    from cea.progress import RecordingProgress
    from cea.train.loop import fit

    cfg, data, bb, tok, feats = _features(max_length)
    cfg = cfg.model_copy(
        update={
            "train": cfg.train.model_copy(
                update={
                    "batch_size": batch,
                    "max_steps": steps + warmup,
                    "epochs": 50,
                    "bucket_by_length": bucket,
                    "log_every": 1,  # one step event per step: per-step timings below
                }
            )
        }
    )
    model = build_model(bb, labels=data.labels, pair=True)
    rec = rec or RecordingProgress()
    with tempfile.TemporaryDirectory() as tmp:
        fit(
            model,
            cfg,
            train_features=feats,
            val_features=feats.__class__(
                feats.input_ids[:16],
                feats.token_type_ids[:16] if feats.token_type_ids else None,
                list(range(16)),
                feats.labels[:16],
                feats.crit_index[:16],
                16,
                0,
                0,
            ),
            labels=data.labels,
            pair=True,
            run_dir=Path(tmp),
            progress=rec,
            pad_id=int(tok.pad_token_id or 0),
        )
    steps_ev = [p for k, p in rec.events if k == "step"][warmup:]
    secs = sum(p["data_wait_s"] + p["step_s"] for p in steps_ev)
    return {
        "samples_per_s": round(batch * len(steps_ev) / secs, 2),
        "steps": len(steps_ev),
        "data_wait_share": round(sum(p["data_wait_s"] for p in steps_ev) / secs, 4),
    }


def bench_trainer(steps: int, warmup: int, batch: int, max_length: int) -> dict[str, float]:
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from transformers.data.data_collator import DataCollatorWithPadding

    from cea.model.build import build_model

    _cfg, data, bb, tok, feats = _features(max_length)
    rows = [
        {
            "input_ids": feats.input_ids[i],
            "token_type_ids": feats.token_type_ids[i] if feats.token_type_ids else None,
            "attention_mask": [1] * len(feats.input_ids[i]),
            "labels": list(feats.labels[i]),
        }
        for i in range(len(feats))
    ]
    model = build_model(bb, labels=data.labels, pair=True)

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.t: list[float] = []

        def on_step_end(self, args, state, control, **kw):
            self.t.append(time.perf_counter())

    timer = Timer()
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=batch,
            max_steps=steps + warmup,
            learning_rate=1e-4,
            warmup_steps=0.1,
            weight_decay=0.01,
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            dataloader_num_workers=0,
            seed=13,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=rows,
            data_collator=DataCollatorWithPadding(tok),
            callbacks=[timer],
        )
        with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its own summary
            trainer.train()
    span = timer.t[-1] - timer.t[warmup - 1]
    return {
        "samples_per_s": round(batch * (len(timer.t) - warmup) / span, 2),
        "steps": len(timer.t) - warmup,
    }


# self-CPU time of the profiled steps, by what the time is spent on
_KINDS = {
    "linear layers (GEMM)": ("aten::mm", "aten::addmm"),
    "attention (GEMM, softmax)": (
        "aten::bmm",
        "aten::baddbmm",
        "aten::_softmax",
        "aten::_softmax_backward_data",
    ),
    "dropout masks (RNG)": ("aten::bernoulli_",),
    "optimizer (fused AdamW, zero_grad)": (
        "aten::_fused_adamw_",
        "Optimizer.zero_grad#AdamW.zero_grad",
    ),
}


def profile_cea(steps: int, warmup: int, batch: int, max_length: int) -> dict[str, Any]:
    """cea's own training step (fit, bucketing off) under torch.profiler, `steps` steps after
    `warmup`: the share of CPU time per kind of work. What is left after the GEMMs and the
    dropout masks bounds what any training loop around the same model can save."""
    from torch.profiler import ProfilerActivity, profile, schedule

    from cea.progress import RecordingProgress

    class Stepper(RecordingProgress):
        def event(self, kind: str, payload: dict[str, Any]) -> None:
            super().event(kind, payload)
            if kind == "step":
                prof.step()

    with profile(
        activities=[ProfilerActivity.CPU],
        schedule=schedule(wait=0, warmup=warmup, active=steps, repeat=1),
    ) as prof:
        bench_cea(steps, warmup, batch, max_length, bucket=False, rec=Stepper())
    # ProfilerStep* is the profiler's own frame around each step, not work of the step
    averages = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]
    total = sum(e.self_cpu_time_total for e in averages)
    shares = {
        kind: round(sum(e.self_cpu_time_total for e in averages if e.key in keys) / total, 3)
        for kind, keys in _KINDS.items()
    }
    shares["everything else"] = round(1 - sum(shares.values()), 3)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14), file=sys.stderr)
    return {
        "steps": steps,
        "self_cpu_ms_per_step": round(total / steps / 1000, 1),
        "share": shares,
        # if every other op cost nothing, a loop around the same model would be this much faster
        "ceiling_speedup": round(
            1
            / (
                shares["linear layers (GEMM)"]
                + shares["attention (GEMM, softmax)"]
                + shares["dropout masks (RNG)"]
            ),
            3,
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--profile", type=int, default=10, help="steps of cea's step to profile (0: none)"
    )
    a = ap.parse_args()
    torch.manual_seed(0)
    runs: dict[str, list[float]] = {"cea": [], "cea_no_bucketing": [], "trainer": []}
    # interleaved repeats, medians: this machine is noisy
    for _ in range(a.repeats):
        runs["cea"].append(bench_cea(a.steps, a.warmup, a.batch, a.max_length)["samples_per_s"])
        runs["trainer"].append(
            bench_trainer(a.steps, a.warmup, a.batch, a.max_length)["samples_per_s"]
        )
        runs["cea_no_bucketing"].append(
            bench_cea(a.steps, a.warmup, a.batch, a.max_length, bucket=False)["samples_per_s"]
        )
    med = {k: statistics.median(v) for k, v in runs.items()}
    out = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "batch_size": a.batch,
        "max_length": a.max_length,
        "steps": a.steps,
        "samples_per_s_runs": runs,
        "samples_per_s_median": med,
        "ratio_cea_over_trainer": round(med["cea"] / med["trainer"], 3),
        "ratio_cea_no_bucketing_over_trainer": round(med["cea_no_bucketing"] / med["trainer"], 3),
    }
    if a.profile:
        out["profile_no_bucketing"] = profile_cea(a.profile, a.warmup, a.batch, a.max_length)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
