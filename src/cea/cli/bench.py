"""`cea bench pipeline|step|augment`: is the accelerator kept fed? With baselines and gates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cea.cli._common import JsonOpt, QuietOpt, SetOpt, console, emit_json, info, set_mode

app = typer.Typer(
    help="Input-pipeline throughput, data-wait/step ratio, augmenter latency; baselines.",
    no_args_is_help=True,
)

CHEAP = "char_keyboard,char_swap,word_swap,word_delete,spelling"
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, max=4096, help="Rows per batch.")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=0, max=64, help="DataLoader workers.")]
ProbOpt = Annotated[
    float, typer.Option("--prob", min=0.0, max=1.0, help="Augmentation probability per example.")
]
AugOpt = Annotated[
    str, typer.Option("--augmenters", help="Comma list of augmenters (equal weights).")
]
NOpt = Annotated[int, typer.Option("--n", min=64, max=1_000_000, help="Texts in the corpus.")]
WordsOpt = Annotated[int, typer.Option("--words", min=3, max=500, help="Words per text.")]
RepeatsOpt = Annotated[
    int, typer.Option("--repeats", min=1, max=50, help="Repeated runs; medians are reported.")
]
BackboneOpt = Annotated[
    str, typer.Option("--backbone", help="Tokenizer (and model) source: minilm, tiny, or a folder.")
]
SaveOpt = Annotated[
    Path | None, typer.Option("--save-baseline", help="Write this result as a baseline (JSON).")
]
BaseOpt = Annotated[
    Path | None,
    typer.Option("--baseline", help="Compare with a saved baseline; exit 1 on a regression."),
]
RegOpt = Annotated[
    str, typer.Option("--max-regression", help="Allowed regression vs. the baseline (e.g. 10%).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the corpus and the draws.")]
# test-only: makes every batch / call slower, so the regression gate can be shown to fire
DelayOpt = Annotated[float, typer.Option("--inject-delay-ms", hidden=True, min=0.0)]


def _backbone_and_tokenizer(backbone: str, seed: int) -> tuple[Any, Any]:
    from cea.model.backbone import resolve_backbone
    from cea.model.build import load_tokenizer

    bb = resolve_backbone(backbone, seed=seed)
    return bb, load_tokenizer(bb)


def _gate(
    kind: str,
    params: dict[str, Any],
    result: dict[str, Any],
    save: Path | None,
    baseline: Path | None,
    max_regression: str,
) -> dict[str, Any] | None:
    from cea.bench.baseline import compare, parse_regression, save_baseline

    verdict = None
    if baseline is not None:
        verdict = compare(baseline, kind, params, result, parse_regression(max_regression))
    if save is not None:
        save_baseline(save, kind, params, result)
    return verdict


def _finish(out: dict[str, Any], json_mode: bool, table: Table | None) -> None:
    from cea.errors import GateRefused

    verdict = out.get("comparison")
    if json_mode:
        emit_json(out)
    else:
        if table is not None:
            console.print(table)
        if verdict:
            for c in verdict["checks"]:
                mark = "[red]REGRESSED[/]" if c["regressed"] else "[green]ok[/]"
                console.print(
                    f"{mark} {c['metric']}: {c['baseline']:.4g} → {c['current']:.4g} "
                    f"({c['change']:+.1%}; {c['better']} is better)"
                )
    if verdict and verdict["regressed"]:
        worst = [c["metric"] for c in verdict["checks"] if c["regressed"]]
        raise GateRefused(
            f"regression beyond {verdict['max_regression']:.0%} vs. {verdict['baseline']}: "
            + ", ".join(worst),
            hint="medians of repeated runs; rerun with more --repeats if the machine was busy",
        )


@app.command("pipeline")
def pipeline_command(
    batch_size: BatchOpt = 32,
    workers: WorkersOpt = 0,
    prob: ProbOpt = 0.15,
    augmenters: AugOpt = CHEAP,
    n: NOpt = 8000,
    words: WordsOpt = 25,
    max_length: Annotated[int, typer.Option("--max-length", min=8, max=8192)] = 64,
    repeats: RepeatsOpt = 3,
    backbone: BackboneOpt = "minilm",
    compare_naive: Annotated[
        bool,
        typer.Option(
            "--compare-naive",
            help="Also measure nlpaug-in-__getitem__ + tokenize-in-collate, same policy.",
        ),
    ] = False,
    seed: SeedOpt = 13,
    save_baseline: SaveOpt = None,
    baseline: BaseOpt = None,
    max_regression: RegOpt = "10%",
    inject_delay_ms: DelayOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Throughput (samples/s) and batch latency (p50/p95) of the training input pipeline:
    augment → re-tokenize the augmented → collate, base rows pre-tokenized outside the timing."""
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

    mode = set_mode(json_out, quiet)
    names = [a.strip() for a in augmenters.split(",") if a.strip()]
    texts = corpus(n, words, seed=seed)
    _, tok = _backbone_and_tokenizer(backbone, seed)
    info(f"corpus: {n} texts of {words} words; batch {batch_size}, {workers} workers")
    ds = augmented_dataset(texts, tok, names, prob, max_length, seed)
    delay = inject_delay_ms / 1000.0
    ours = summarize(
        repeat(lambda r: time_loader(cea_loader(ds, batch_size, workers, seed, r), delay), repeats)
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
    table = Table(title=f"input pipeline ({repeats} runs, medians)")
    for col in ("pipeline", "samples/s", "batch p50 ms", "batch p95 ms"):
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    table.add_row(
        "cea",
        f"{ours['samples_per_s']:,.0f}",
        f"{ours['batch_p50_ms']:.3f}",
        f"{ours['batch_p95_ms']:.3f}",
    )
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
        out["naive"] = naive
        out["naive"]["augmenters"] = [type(a).__name__ for a in nl_augs]
        out["speedup"] = round(ours["samples_per_s"] / max(naive["samples_per_s"], 1e-9), 2)
        table.add_row(
            "naive (nlpaug in __getitem__, tokenize in collate)",
            f"{naive['samples_per_s']:,.0f}",
            f"{naive['batch_p50_ms']:.3f}",
            f"{naive['batch_p95_ms']:.3f}",
        )
        table.caption = f"cea is {out['speedup']}x the naive pipeline"
    out["comparison"] = _gate("pipeline", params, ours, save_baseline, baseline, max_regression)
    _finish(out, mode.json, table)


@app.command("train")
def train_command(
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Train config (default: packaged default).")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="Dataset: a ReDSM5 folder or a .jsonl/.csv file.")
    ] = None,
    sets: SetOpt = None,
    steps: Annotated[
        int, typer.Option("--steps", min=1, max=10_000, help="Measured optimizer steps.")
    ] = 20,
    warmup: Annotated[int, typer.Option("--warmup", min=0, max=100, help="Steps not timed.")] = 3,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """A few real training steps of the configured run on your data (its task, lengths,
    chunking, augmentation), where the time goes, and an estimate of an epoch and of the run."""
    from cea.bench.train import estimate_training
    from cea.config import load_config

    mode = set_mode(json_out, quiet)
    cfg = load_config(config, sets or [], {"data.path": data})
    info(f"timing {steps} steps of {cfg.task.name}/{cfg.task.level} with {cfg.model.backbone}")
    out = {"kind": "train", **estimate_training(cfg, steps=steps, warmup=warmup)}
    if mode.json:
        emit_json(out)
        return
    t = out["time_s"]
    table = Table(title=f"where the time goes ({out['device']}, {out['steps_measured']} steps)")
    table.add_column("part")
    table.add_column("seconds", justify="right")
    for key in ("startup_s", "read_split_examples_s", "tokenize_chunk_s", "model_build_s"):
        table.add_row(key.removesuffix("_s").replace("_", " "), f"{t[key]:.2f}")
    table.add_row("data wait per step (collate, augment)", f"{t['data_wait_per_step']:.4f}")
    table.add_row("step (forward, backward, optimizer)", f"{t['step']:.4f}")
    table.add_row("validation pass", f"{t['validation_pass']:.2f}")
    table.add_row("checkpoint", f"{t['checkpoint']:.2f}")
    console.print(table)
    est = out["estimate_s"]
    console.print(
        f"{out['steps_per_epoch']} steps per epoch, {out['samples_per_s']:.1f} samples/s, "
        f"data-wait ratio {out['data_wait_ratio']:.1%}: an epoch ≈ {est['epoch'] / 60:.1f} min, "
        f"the run ({out['epochs']} epochs) ≈ {est['run'] / 60:.1f} min"
    )


@app.command("step")
def step_command(
    simulate_step_ms: Annotated[
        float | None,
        typer.Option(
            "--simulate-step-ms",
            min=0.1,
            help="Simulated accelerator step (sleeps: the CPU is free meanwhile).",
        ),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="auto | cpu | cuda (real steps).")
    ] = "auto",
    batch_size: BatchOpt = 32,
    workers: WorkersOpt = 0,
    prob: ProbOpt = 0.15,
    augmenters: AugOpt = CHEAP,
    words: WordsOpt = 25,
    steps: Annotated[
        int, typer.Option("--steps", min=5, max=100_000, help="Measured steps.")
    ] = 200,
    prefetch: Annotated[
        int,
        typer.Option(
            "--prefetch", min=0, max=64, help="Batches built ahead in a thread (train.prefetch)."
        ),
    ] = 2,
    repeats: RepeatsOpt = 3,
    backbone: BackboneOpt = "minilm",
    seed: SeedOpt = 13,
    save_baseline: SaveOpt = None,
    baseline: BaseOpt = None,
    max_regression: RegOpt = "10%",
    inject_delay_ms: DelayOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Data-wait/step ratio around the real training step (forward, backward, optimizer) or a
    simulated one, with its band: < 5 % not, 5–20 % moderately, ≥ 20 % highly input-bound."""
    import numpy as np

    from cea.bench.augment import corpus
    from cea.bench.pipeline import augmented_dataset, band, cea_loader, time_steps

    mode = set_mode(json_out, quiet)
    names = [a.strip() for a in augmenters.split(",") if a.strip()]
    n = batch_size * (steps + 4)
    texts = corpus(n, words, seed=seed)
    bb, tok = _backbone_and_tokenizer(backbone, seed)
    ds = augmented_dataset(texts, tok, names, prob, 64, seed)
    delay = inject_delay_ms / 1000.0
    step_fn, where = _step_function(simulate_step_ms, device, bb, delay)
    from cea.train.prefetch import Prefetcher

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
    out: dict[str, Any] = {"kind": "step", "params": params, **result}
    out["comparison"] = _gate("step", params, result, save_baseline, baseline, max_regression)
    table = Table(title=f"data-wait/step ratio ({where}; {repeats} runs, median)")
    for col in ("ratio", "band", "wait ms/step", "step ms", "workers"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{ratio:.2%}",
        result["band"],
        f"{result['wait_ms_per_step']:.3f}",
        f"{result['step_ms']:.2f}",
        str(workers),
    )
    _finish(out, mode.json, table)


def _step_function(
    simulate_ms: float | None, device: str, backbone: Any, delay_s: float
) -> tuple[Any, str]:
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


@app.command("augment")
def augment_command(
    augmenters: Annotated[
        str | None,
        typer.Option("--augmenters", help="Comma list (default: every available one but models)."),
    ] = None,
    n: Annotated[int, typer.Option("--n", min=10, max=100_000, help="Texts in the corpus.")] = 200,
    words: WordsOpt = 25,
    repeats: RepeatsOpt = 3,
    seed: SeedOpt = 13,
    save_baseline: SaveOpt = None,
    baseline: BaseOpt = None,
    max_regression: RegOpt = "10%",
    inject_delay_ms: DelayOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Latency per example (p50, p95) of each augmenter on a fixed corpus."""
    from cea.augment.registry import SPECS, availability, build
    from cea.bench.augment import augmenter_latency, corpus, latency_resources

    mode = set_mode(json_out, quiet)
    texts = corpus(n, words, seed=seed)
    res = latency_resources(n, words, seed)
    if augmenters:
        names = [a.strip() for a in augmenters.split(",") if a.strip()]
    else:
        names = [s.name for s in SPECS if s.kind != "model" and availability(s.name, res).available]
    rows = {}
    for name in names:
        lat = augmenter_latency(
            build(name, res), texts, repeats=repeats, seed=seed, delay_s=inject_delay_ms / 1000.0
        )
        rows[name] = lat.to_dict()
    result = {
        "augmenters": rows,
        "max_p50_ms": max((r["p50_ms"] for r in rows.values()), default=0.0),
    }
    params = {"n": n, "words": words, "augmenters": names}
    out: dict[str, Any] = {"kind": "augment", "params": params, **result}
    out["comparison"] = _gate("augment", params, result, save_baseline, baseline, max_regression)
    table = Table(title=f"augmenter latency per example ({n} texts of {words} words)")
    for col in ("augmenter", "kind", "p50 ms", "p95 ms", "changed"):
        table.add_column(col, justify="left" if col in ("augmenter", "kind") else "right")
    for name, r in rows.items():
        table.add_row(
            name, r["kind"], f"{r['p50_ms']:.4f}", f"{r['p95_ms']:.4f}", f"{r['changed_share']:.0%}"
        )
    _finish(out, mode.json, table)
