"""`cea train`: fine-tune a classifier from a YAML config (+ key.path=value overrides)."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cea.cli._common import (
    JsonOpt,
    QuietOpt,
    SetOpt,
    emit_json,
    graceful_stop,
    human,
    info,
    set_mode,
    show_progress,
    warn,
)
from cea.progress import NullProgress


def render_metrics(meta: dict[str, Any]) -> Table:
    split = meta["final_split"]
    m = meta["metrics"][split]
    table = Table(title=f"{split} metrics (thresholds tuned on validation)")
    for col in ("criterion", "support", "precision", "recall", "F1", "AUPRC", "threshold"):
        table.add_column(col, justify="left" if col == "criterion" else "right")
    for lab, lm in m["per_label"].items():
        auprc = "-" if lm["auprc"] is None else f"{lm['auprc']:.3f}"
        table.add_row(
            lab,
            str(lm["support"]),
            f"{lm['precision']:.3f}",
            f"{lm['recall']:.3f}",
            f"{lm['f1']:.3f}",
            auprc,
            f"{lm['threshold']:.3f}",
        )
    macro_auprc = "-" if m["macro_auprc"] is None else f"{m['macro_auprc']:.3f}"
    table.add_section()
    table.add_row("macro", "", "", "", f"{m['macro_f1']:.3f}", macro_auprc, "", style="bold")
    table.add_row("micro", "", "", "", f"{m['micro_f1']:.3f}", "", "", style="bold")
    return table


def train(
    sets: SetOpt = None,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key.path=value overrides, e.g. train.epochs=2")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="YAML config, or a packaged one: default, tiny."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue a killed run from checkpoints/last.")
    ] = None,
    run_name: Annotated[
        str | None, typer.Option("--run-name", help="Name of the run folder.")
    ] = None,
    runs_dir: Annotated[
        str | None, typer.Option("--runs-dir", help="Where run folders go.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed for everything.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Number of epochs.")] = None,
    backbone: Annotated[
        str | None, typer.Option("--backbone", help="minilm, tiny, or a local model folder.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Dataset path (or 'sample', 'sample-long', 'sample-hard')."),
    ] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not track with MLflow.")] = False,
    strict_tracking: Annotated[
        bool,
        typer.Option(
            "--strict-tracking",
            help="Stop training when tracking fails (default: warn at the end, keep training).",
        ),
    ] = False,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri", help="MLflow tracking URI (default: sqlite mlflow.db here)."
        ),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="MLflow experiment.")
    ] = None,
    json_events: Annotated[
        Path | None,
        typer.Option("--json-events", help="Write one JSON line per step/epoch ('-' = stdout)."),
    ] = None,
    refit: Annotated[
        bool, typer.Option("--refit", help="Rebuild the TF-IDF cache entry (augmentation).")
    ] = False,
    no_baseline: Annotated[
        bool,
        typer.Option(
            "--no-baseline",
            help="Do not fit the TF-IDF + balanced logistic regression baseline on the train "
            "split for the final report.",
        ),
    ] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune a classifier; write the run folder (best model, metadata, manifest, checkpoints)."""
    import os

    from cea import api
    from cea.errors import UsageError

    mode = set_mode(json_out, quiet)
    if int(os.environ.get("RANK", "0")) != 0:  # other ranks train in silence: rank 0 speaks
        mode = set_mode(False, True)
    overrides = [*(sets or []), *(overrides or [])]
    if json_events is not None and str(json_events) == "-":
        if mode.json:
            raise UsageError(
                "--json-events - and --json both want stdout; give --json-events a file"
            )
        mode.stdout_is_data = True  # stdout is the event stream: everything else to stderr
    settings = {
        "output.run_name": run_name,
        "output.runs_dir": runs_dir,
        "seed": seed,
        "train.epochs": epochs,
        "model.backbone": backbone,
        "data.path": data,
        "tracking.uri": tracking_uri,
        "tracking.experiment": experiment,
        "augment.refit_tfidf": True if refit else None,
    }

    from cea.cli.progress import JsonEventsProgress, PlainProgress, RichProgress
    from cea.progress import FanOut

    with ExitStack() as stack:
        sinks: list[Any] = [_RunFolderNote(echo_warnings=mode.json or mode.quiet)]
        if show_progress():
            sinks.append(stack.enter_context(RichProgress()))
        elif not (mode.json or mode.quiet):
            sinks.append(PlainProgress())
        if json_events is not None:
            stream = (
                sys.stdout
                if str(json_events) == "-"
                else stack.enter_context(json_events.open("a", encoding="utf-8"))
            )
            sinks.append(JsonEventsProgress(stream))
        should_stop = stack.enter_context(graceful_stop(immediate=True))
        result = api.train(
            config,
            overrides,
            settings=None if resume is not None else settings,
            resume=resume,
            track=not no_track,
            strict_tracking=strict_tracking,
            tracking_uri=tracking_uri,
            observer=FanOut(*sinks),
            should_stop=should_stop,
        )
    for message in result.tracking_warnings:
        warn(message)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    base = None if no_baseline else _train_baseline(result.run_dir, result.meta)
    if mode.json:
        emit_json({**result.summary(), **({"baseline": base} if base is not None else {})})
        return
    meta = result.meta
    if not mode.quiet:
        human().print(render_metrics(meta))
    final = meta["metrics"][meta["final_split"]]
    human().print(
        f"macro-F1 {final['macro_f1']:.3f}, micro-F1 {final['micro_f1']:.3f} on {meta['final_split']} "
        f"(best epoch {meta['best_epoch']} of {meta['epochs_run']}); model in {result.run_dir}"
        + (f"; MLflow run {result.mlflow_run_id}" if result.mlflow_run_id else "")
    )
    posts = (meta.get("posts") or {}).get("metrics", {}).get(meta["final_split"])
    if posts:  # one sentence model, both tasks: the criteria of whole posts
        human().print(
            f"posts ({meta['posts']['pooling']} of their sentences): macro-F1 "
            f"{posts['macro_f1']:.3f}, micro-F1 {posts['micro_f1']:.3f} on {meta['final_split']}"
        )
    if base is not None:
        from cea.cli.eval import print_baseline

        print_baseline(base, human())


def _train_baseline(run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The TF-IDF baseline on the final split, beside the model's final metrics."""
    from cea.errors import CeaError
    from cea.evaluate.baseline import baseline_for_run, with_verdict

    split = meta["final_split"]
    try:
        base = baseline_for_run(run_dir, split)
    except CeaError as exc:  # the model is trained and saved: the baseline never fails it
        return {"skipped": str(exc)}
    answer = meta.get("posts") or {}
    posts = answer.get("metrics", {}).get(split)
    post_ci = (answer.get("intervals") or {}).get(split)
    model_ci = (meta.get("intervals") or {}).get(split)
    return with_verdict(base, meta["metrics"][split], model_ci, (posts, post_ci) if posts else None)


class _RunFolderNote(NullProgress):
    """Says where the run goes before it starts; with --json / --quiet (no progress display)
    it still says each warning on stderr."""

    def __init__(self, echo_warnings: bool) -> None:
        self.echo_warnings = echo_warnings

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "warning" and self.echo_warnings:
            warn(str(payload["message"]))
        elif kind == "run_dir":
            info(f"run folder: {payload['run_dir']}" + (" (resuming)" if payload["resume"] else ""))
