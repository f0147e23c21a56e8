"""`cea bench pipeline|step|train|augment`: is the accelerator kept fed? With baselines and gates.

Wiring only: the measurements are `cea.api.bench_*` (over `cea.bench.run`); this module parses
the options and renders what they return."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cea.cli._common import JsonOpt, QuietOpt, SetOpt, console, emit_json, info, set_mode

app = typer.Typer(
    help="Input-pipeline throughput, data-wait/step ratio, augmenter latency, run estimate.",
    no_args_is_help=True,
)

# the default cheap augmenters, as the option shows them (cea.bench.run.CHEAP; a test holds
# them equal: importing cea.bench.run here would load pydantic for `cea --help`)
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
ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="Measure this run config on its data (packaged name or YAML)."
    ),
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Measure on this dataset: a ReDSM5 folder, a .jsonl/.csv file, 'sample' or "
        "'sample-long' (300 generated posts of real post lengths).",
    ),
]
# test-only: makes every batch / call slower, so the regression gate can be shown to fire
DelayOpt = Annotated[float, typer.Option("--inject-delay-ms", hidden=True, min=0.0)]


def _names(augmenters: str) -> list[str]:
    return [a.strip() for a in augmenters.split(",") if a.strip()]


def _finish(result: Any, json_mode: bool, table: Table | None) -> None:
    """Render, then refuse the gate on a regression (after the output, so it is seen)."""
    from cea.bench.run import raise_if_regressed

    verdict = result.comparison
    if json_mode:
        emit_json(result.to_dict())
    else:
        if table is not None:
            console.print(table)
        for c in (verdict or {}).get("checks", []):
            mark = "[red]REGRESSED[/]" if c["regressed"] else "[green]ok[/]"
            console.print(
                f"{mark} {c['metric']}: {c['baseline']:.4g} → {c['current']:.4g} "
                f"({c['change']:+.1%}; {c['better']} is better)"
            )
    raise_if_regressed(verdict)


def _seconds_table(title: str, times: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("part")
    table.add_column("seconds", justify="right")
    for key, value in times.items():
        if value is not None:
            table.add_row(key.removesuffix("_s").replace("_", " "), f"{value:.4f}")
    return table


@app.command("pipeline")
def pipeline_command(
    config: ConfigOpt = None,
    data: DataOpt = None,
    sets: SetOpt = None,
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
    """Throughput (samples/s) and batch latency (p50/p95) of the training input pipeline.
    With --config/--data: the run's own pipeline on its data, every part timed (read, split,
    tokenize + chunk, augment, re-tokenize, collate); the batch, corpus and augmenter options
    then come from the config. Without: a fixed synthetic corpus (augment → re-tokenize →
    collate, base rows pre-tokenized outside the timing), comparable across machines."""
    from cea import api

    mode = set_mode(json_out, quiet)
    on_data = config is not None or data is not None
    if on_data:
        info(f"measuring the pipeline of {config or 'default'} on {data or 'its data'}")
        res = api.bench_pipeline(
            config or "default", data=data, overrides=sets or [], repeats=repeats,
            save_baseline=save_baseline, baseline=baseline, max_regression=max_regression,
            check=False, inject_delay_ms=inject_delay_ms,
        )  # fmt: skip
    else:
        info(f"corpus: {n} texts of {words} words; batch {batch_size}, {workers} workers")
        res = api.bench_pipeline(
            batch_size=batch_size, workers=workers, prob=prob, augmenters=_names(augmenters),
            n=n, words=words, max_length=max_length, repeats=repeats, backbone=backbone,
            compare_naive=compare_naive, seed=seed, save_baseline=save_baseline,
            baseline=baseline, max_regression=max_regression, check=False,
            inject_delay_ms=inject_delay_ms,
        )  # fmt: skip
    ours = res.data["cea"]
    table = Table(title=f"input pipeline ({repeats} runs, medians)")
    for col in ("pipeline", "samples/s", "batch p50 ms", "batch p95 ms"):
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    table.add_row(
        "cea", f"{ours['samples_per_s']:,.0f}", f"{ours['batch_p50_ms']:.3f}",
        f"{ours['batch_p95_ms']:.3f}",
    )  # fmt: skip
    naive = res.data.get("naive")
    if naive:
        table.add_row(
            "naive (nlpaug in __getitem__, tokenize in collate)",
            f"{naive['samples_per_s']:,.0f}",
            f"{naive['batch_p50_ms']:.3f}",
            f"{naive['batch_p95_ms']:.3f}",
        )
        table.caption = f"cea is {res.data['speedup']}x the naive pipeline"
    if on_data and not mode.json:
        console.print(_seconds_table(f"where the time goes ({ours['task']})", ours["time_s"]))
        console.print(
            f"{ours['examples']} examples → {ours['rows']} rows "
            f"({ours['windows_per_example']} per example, {ours['mean_tokens_per_row']} tokens "
            f"each, {ours['truncated_share']:.1%} truncated); {ours['examples_per_s']:,.0f} "
            "examples/s"
        )
    _finish(res, mode.json, table)


@app.command("train")
def train_command(
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Train config (default: packaged default).")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Dataset: a ReDSM5 folder, a .jsonl/.csv file, 'sample-long'."),
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
    from cea import api

    mode = set_mode(json_out, quiet)
    info(f"timing {steps} steps of {config or 'default'} on {data or 'its data'}")
    out = api.bench_train(config, data=data, overrides=sets or [], steps=steps, warmup=warmup)
    if mode.json:
        emit_json(out)
        return
    t = dict(out["time_s"])
    per_step = {k: t.pop(k) for k in ("data_wait_per_step", "step")}
    table = _seconds_table(f"where the time goes ({out['device']}, {out['steps_measured']} "
                           "steps)", t)  # fmt: skip
    table.add_row("data wait per step (collate, augment)", f"{per_step['data_wait_per_step']:.4f}")
    table.add_row("step (forward, backward, optimizer)", f"{per_step['step']:.4f}")
    console.print(table)
    est = out["estimate_s"]
    console.print(
        f"{out['steps_per_epoch']} steps per epoch, {out['samples_per_s']:.1f} samples/s, "
        f"data-wait ratio {out['data_wait_ratio']:.1%}: an epoch ≈ {est['epoch'] / 60:.1f} min, "
        f"the run ({out['epochs']} epochs) ≈ {est['run'] / 60:.1f} min"
    )


@app.command("step")
def step_command(
    config: ConfigOpt = None,
    data: DataOpt = None,
    sets: SetOpt = None,
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
        int | None,
        typer.Option(
            "--steps", min=5, max=100_000, help="Measured steps (200 synthetic, 20 on data)."
        ),
    ] = None,
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
    simulated one, with its band: < 5 % not, 5–20 % moderately, ≥ 20 % highly input-bound.
    With --config/--data: the run's own loop on its data, around its real steps (set the
    device with --set train.device=cuda)."""
    from cea import api

    mode = set_mode(json_out, quiet)
    if config is not None or data is not None:
        sets = [*(sets or []), *([f"train.device={device}"] if device != "auto" else [])]
        res = api.bench_step(
            config or "default", data=data, overrides=sets, steps=steps,
            save_baseline=save_baseline, baseline=baseline, max_regression=max_regression,
            check=False,
        )  # fmt: skip
        repeats = 1
    else:
        res = api.bench_step(
            simulate_step_ms=simulate_step_ms, device=device, batch_size=batch_size,
            workers=workers, prob=prob, augmenters=_names(augmenters), words=words, steps=steps,
            prefetch=prefetch, repeats=repeats, backbone=backbone, seed=seed,
            save_baseline=save_baseline, baseline=baseline, max_regression=max_regression,
            check=False, inject_delay_ms=inject_delay_ms,
        )  # fmt: skip
    out = res.data
    table = Table(title=f"data-wait/step ratio ({out['params']['step']}; {repeats} runs, median)")
    for col in ("ratio", "band", "wait ms/step", "step ms", "workers"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{out['data_wait_ratio']:.2%}",
        out["band"],
        f"{out['wait_ms_per_step']:.3f}",
        f"{out['step_ms']:.2f}",
        str(out["params"]["workers"]),
    )
    _finish(res, mode.json, table)


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
    from cea import api

    mode = set_mode(json_out, quiet)
    res = api.bench_augment(
        _names(augmenters) if augmenters else None, n=n, words=words, repeats=repeats,
        seed=seed, save_baseline=save_baseline, baseline=baseline,
        max_regression=max_regression, check=False, inject_delay_ms=inject_delay_ms,
    )  # fmt: skip
    table = Table(title=f"augmenter latency per example ({n} texts of {words} words)")
    for col in ("augmenter", "kind", "p50 ms", "p95 ms", "changed"):
        table.add_column(col, justify="left" if col in ("augmenter", "kind") else "right")
    for name, r in res.data["augmenters"].items():
        table.add_row(
            name, r["kind"], f"{r['p50_ms']:.4f}", f"{r['p95_ms']:.4f}", f"{r['changed_share']:.0%}"
        )
    _finish(res, mode.json, table)
