"""The four measurements of `cea bench` as functions (pipeline, step, train, augment), each
returning one JSON-ready dict, with the baseline gate: `cea bench` and `cea.api.bench_*` are
thin wrappers over these.

`pipeline` and `step` measure either a fixed synthetic corpus (comparable across machines and
commits: what the baselines gate) or, given a config, the user's own data with its task,
lengths, chunking and augmentation (what tells whether *this* run keeps the accelerator fed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cea.config import CeaConfig
from cea.errors import GateRefused

CHEAP = ("char_keyboard", "char_swap", "word_swap", "word_delete", "spelling")


def gate(
    kind: str,
    params: dict[str, Any],
    result: dict[str, Any],
    *,
    save: Path | None = None,
    baseline: Path | None = None,
    max_regression: str = "10%",
) -> dict[str, Any] | None:
    """Compare with a saved baseline (same kind and settings) and/or save this result as one;
    the comparison's verdict (None without a baseline)."""
    from cea.bench.baseline import compare, parse_regression, save_baseline

    verdict = None
    if baseline is not None:
        verdict = compare(baseline, kind, params, result, parse_regression(max_regression))
    if save is not None:
        save_baseline(save, kind, params, result)
    return verdict


def raise_if_regressed(verdict: dict[str, Any] | None) -> None:
    """A regression beyond the allowed share is a refused gate (exit 1)."""
    if verdict and verdict["regressed"]:
        worst = [c["metric"] for c in verdict["checks"] if c["regressed"]]
        raise GateRefused(
            f"regression beyond {verdict['max_regression']:.0%} vs. {verdict['baseline']}: "
            + ", ".join(worst),
            hint="medians of repeated runs; rerun with more --repeats if the machine was busy",
        )


def _tokenizer(backbone: str, seed: int) -> tuple[Any, Any]:
    from cea.model.backbone import resolve_backbone
    from cea.model.build import load_tokenizer

    bb = resolve_backbone(backbone, seed=seed)
    return bb, load_tokenizer(bb)


def bench_pipeline(
    *,
    batch_size: int = 32,
    workers: int = 0,
    prob: float = 0.15,
    augmenters: Sequence[str] = CHEAP,
    n: int = 8000,
    words: int = 25,
    max_length: int = 64,
    repeats: int = 3,
    backbone: str = "minilm",
    compare_naive: bool = False,
    seed: int = 13,
    delay_s: float = 0.0,
) -> dict[str, Any]:
    """Throughput (samples/s) and batch latency (p50/p95) of the training input pipeline on a
    fixed synthetic corpus: augment -> re-tokenize the augmented -> collate, base rows
    pre-tokenized outside the timing; with `compare_naive` also the common pattern it replaces
    (nlpaug in `__getitem__`, the tokenizer in the collate function)."""
    from cea.bench.augment import corpus
    from cea.bench.pipeline import (
        augmented_dataset,
        cea_loader,
        naive_augmenters,
        naive_loader,
        repeat,
        summarize,
        time_loader,
    )

    names = list(augmenters)
    texts = corpus(n, words, seed=seed)
    _, tok = _tokenizer(backbone, seed)
    ds = augmented_dataset(texts, tok, names, prob, max_length, seed)
    ours = summarize(
        repeat(
            lambda r: time_loader(cea_loader(ds, batch_size, workers, seed, r), delay_s), repeats
        )
    )
    params = {
        "batch_size": batch_size,
        "workers": workers,
        "prob": prob,
        "augmenters": names,
        "n": n,
        "words": words,
        "max_length": max_length,
        "backbone": backbone,
    }
    out: dict[str, Any] = {"kind": "pipeline", "params": params, "cea": ours}
    if compare_naive:
        nl_augs = naive_augmenters(names, 0.15)
        naive = summarize(
            repeat(
                lambda r: time_loader(
                    naive_loader(
                        texts,
                        tok,
                        nl_augs,
                        prob=prob,
                        batch_size=batch_size,
                        workers=workers,
                        max_length=max_length,
                        seed=seed + r,
                    )
                ),
                repeats,
            )
        )
        naive["augmenters"] = [type(a).__name__ for a in nl_augs]
        out["naive"] = naive
        out["speedup"] = round(ours["samples_per_s"] / max(naive["samples_per_s"], 1e-9), 2)
    return out


def bench_pipeline_on(cfg: CeaConfig, *, repeats: int = 3, delay_s: float = 0.0) -> dict[str, Any]:
    """The pipeline of a configured run on its own data (`cea.bench.pipeline.pipeline_on_data`)."""
    from cea.bench.pipeline import pipeline_on_data

    result = pipeline_on_data(cfg, repeats=repeats, delay_s=delay_s)
    params = {
        "data": cfg.data.path,
        "task": result["task"],
        "backbone": cfg.model.backbone,
        "batch_size": cfg.train.batch_size,
        "workers": cfg.train.num_workers,
        "max_length": cfg.model.max_length,
        "chunking": cfg.model.chunking.model_dump(mode="json"),
        "augment": cfg.augment.enabled,
    }
    return {"kind": "pipeline", "params": params, "cea": result}


def step_function(
    simulate_ms: float | None, device: str, backbone: Any, delay_s: float = 0.0
) -> tuple[Callable[[dict[str, Any]], None], str]:
    """A training step to measure the data wait around: a sleep that stands for an accelerator
    step (the CPU is free meanwhile), or the real one (forward, backward, optimizer) of the
    backbone with a ten-label head on `device`."""
    if simulate_ms is not None:

        def sleep_step(batch: dict[str, Any]) -> None:
            time.sleep(simulate_ms / 1000.0 + delay_s)

        return sleep_step, f"simulated {simulate_ms:g} ms"
    import torch

    from cea.bench.pipeline import LABELS
    from cea.model.build import build_model
    from cea.train.loop import build_optimizer

    dev = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else (device if device != "auto" else "cpu")
    )
    model = build_model(backbone, labels=LABELS, pair=False)
    model.to(dev)
    model.train()
    opt = build_optimizer(model, lr=1e-5, weight_decay=0.0)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def real_step(batch: dict[str, Any]) -> None:
        inputs = {k: batch[k].to(dev, non_blocking=True) for k in ("input_ids", "attention_mask")}
        loss = loss_fn(model(**inputs).logits, batch["labels"].to(dev))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if delay_s:
            time.sleep(delay_s)

    return real_step, f"real step on {dev.type}"


def bench_step(
    *,
    simulate_step_ms: float | None = None,
    device: str = "auto",
    batch_size: int = 32,
    workers: int = 0,
    prob: float = 0.15,
    augmenters: Sequence[str] = CHEAP,
    words: int = 25,
    steps: int = 200,
    prefetch: int = 2,
    repeats: int = 3,
    backbone: str = "minilm",
    seed: int = 13,
    delay_s: float = 0.0,
) -> dict[str, Any]:
    """Data-wait/step ratio around the real training step or a simulated one, on the fixed
    synthetic corpus, with its band: < 5 % not, 5–20 % moderately, ≥ 20 % highly input-bound."""
    import numpy as np

    from cea.bench.augment import corpus
    from cea.bench.pipeline import augmented_dataset, band, cea_loader, time_steps
    from cea.train.prefetch import Prefetcher

    names = list(augmenters)
    texts = corpus(batch_size * (steps + 4), words, seed=seed)
    bb, tok = _tokenizer(backbone, seed)
    ds = augmented_dataset(texts, tok, names, prob, 64, seed)
    step_fn, where = step_function(simulate_step_ms, device, bb, delay_s)

    def loader(r: int) -> Any:
        base = cea_loader(ds, batch_size, workers, seed, r)
        return Prefetcher(base, prefetch) if prefetch else base

    runs = [time_steps(loader(r), step_fn, max_steps=steps) for r in range(repeats)]
    ratios = [r.ratio for r in runs]
    ratio = float(np.median(ratios))
    result: dict[str, Any] = {
        "data_wait_ratio": round(ratio, 5),
        "band": band(ratio),
        "runs_ratio": [round(x, 5) for x in ratios],
        "wait_ms_per_step": round(float(np.median([r.wait_s / r.steps for r in runs])) * 1000, 4),
        "step_ms": round(float(np.median([r.step_s / r.steps for r in runs])) * 1000, 4),
        "steps": runs[0].steps,
    }
    params = {
        "step": where,
        "batch_size": batch_size,
        "workers": workers,
        "prefetch": prefetch,
        "prob": prob,
        "augmenters": names,
        "words": words,
        "backbone": backbone,
    }
    return {"kind": "step", "params": params, **result}


def bench_step_on(cfg: CeaConfig, *, steps: int = 20, warmup: int = 3) -> dict[str, Any]:
    """The data-wait/step ratio of a configured run on its own data, measured by the training
    loop itself around its real steps (`cea.bench.train.estimate_training`)."""
    from cea.bench.pipeline import band
    from cea.bench.train import estimate_training

    est = estimate_training(cfg, steps=steps, warmup=warmup)
    ratio = float(est["data_wait_ratio"])
    params = {
        "step": f"real training step on {est['device']}",
        "data": cfg.data.path,
        "task": est["task"],
        "backbone": cfg.model.backbone,
        "batch_size": cfg.train.batch_size,
        "workers": cfg.train.num_workers,
        "prefetch": cfg.train.prefetch,
        "augment": cfg.augment.enabled,
    }
    return {
        "kind": "step",
        "params": params,
        "data_wait_ratio": round(ratio, 5),
        "band": band(ratio),
        "wait_ms_per_step": round(est["time_s"]["data_wait_per_step"] * 1000, 4),
        "step_ms": round(est["time_s"]["step"] * 1000, 4),
        "steps": est["steps_measured"],
    }


def bench_train(cfg: CeaConfig, *, steps: int = 20, warmup: int = 3) -> dict[str, Any]:
    """A few real training steps of `cfg` on its data; where the time goes; epoch and run
    estimates (`cea.bench.train.estimate_training`)."""
    from cea.bench.train import estimate_training

    return {"kind": "train", **estimate_training(cfg, steps=steps, warmup=warmup)}


def bench_augment(
    *,
    augmenters: Sequence[str] | None = None,
    n: int = 200,
    words: int = 25,
    repeats: int = 3,
    seed: int = 13,
    delay_s: float = 0.0,
) -> dict[str, Any]:
    """Latency per example (p50, p95) of each augmenter (default: every available one but
    the model-based) on a fixed corpus."""
    from cea.augment.registry import SPECS, availability, build
    from cea.bench.augment import augmenter_latency, corpus, latency_resources

    texts = corpus(n, words, seed=seed)
    res = latency_resources(n, words, seed)
    names = (
        list(augmenters)
        if augmenters
        else [s.name for s in SPECS if s.kind != "model" and availability(s.name, res).available]
    )
    rows = {}
    for name in names:
        lat = augmenter_latency(
            build(name, res), texts, repeats=repeats, seed=seed, delay_s=delay_s
        )
        rows[name] = lat.to_dict()
    result = {
        "augmenters": rows,
        "max_p50_ms": max((r["p50_ms"] for r in rows.values()), default=0.0),
    }
    params = {"n": n, "words": words, "augmenters": names}
    return {"kind": "augment", "params": params, **result}
