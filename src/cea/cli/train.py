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
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for everything.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Number of epochs.")] = None,
    backbone: Annotated[
        str | None, typer.Option("--backbone", help="minilm, tiny, or a local model folder.")
    ] = None,
    data: Annotated[str | None, typer.Option("--data", help="Dataset path (or 'sample').")] = None,
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
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune a classifier; write the run folder (best model, metadata, manifest, checkpoints)."""
    from cea.cli._tracking import open_tracker
    from cea.config import load_config
    from cea.errors import Interrupted, UsageError
    from cea.tracking.base import BestEffortTracker, NullTracker
    from cea.train.run import new_run_dir, read_run_config, run_training

    mode = set_mode(json_out, quiet)
    dist = _dist_from_env()
    if not dist.is_main:  # other ranks train in silence: rank 0 prints, tracks and writes
        mode = set_mode(False, True)
    overrides = [*(sets or []), *(overrides or [])]
    if resume is not None:
        if config or overrides:
            raise UsageError("--resume takes the run's saved config; give no --config or overrides")
        cfg = read_run_config(resume)
        run_dir = resume
    else:
        flags = {
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
        cfg = load_config(config, overrides or [], flags)
        run_dir = _same_on_all_ranks(new_run_dir(cfg) if dist.is_main else None, dist)
    if json_events is not None and str(json_events) == "-":
        if mode.json:
            raise UsageError(
                "--json-events - and --json both want stdout; give --json-events a file"
            )
        mode.stdout_is_data = True  # stdout is the event stream: everything else to stderr

    from cea.cli.progress import JsonEventsProgress, PlainProgress, RichProgress
    from cea.progress import FanOut

    with ExitStack() as stack:
        sinks: list[Any] = []
        if show_progress():
            sinks.append(stack.enter_context(RichProgress()))
        elif not (mode.json or mode.quiet):
            sinks.append(PlainProgress())
        if json_events is not None and dist.is_main:
            stream = (
                sys.stdout
                if str(json_events) == "-"
                else stack.enter_context(json_events.open("a", encoding="utf-8"))
            )
            sinks.append(JsonEventsProgress(stream))
        info(f"run folder: {run_dir}" + (" (resuming)" if resume else ""))
        tracker: Any = NullTracker()
        if cfg.tracking.enabled and not no_track and dist.is_main:
            tracker = BestEffortTracker(
                open_tracker(cfg, run_dir, resume=resume is not None, uri_flag=tracking_uri),
                strict=strict_tracking,
            )
        should_stop = stack.enter_context(graceful_stop())
        try:
            summary = run_training(
                cfg,
                run_dir,
                resume=resume is not None,
                progress=FanOut(*sinks),
                tracker=tracker,
                dist=dist,
                should_stop=should_stop,
            )
        except (Interrupted, KeyboardInterrupt):
            _end_tracking(tracker, "KILLED")
            raise
        except BaseException:
            _end_tracking(tracker, "FAILED")  # (never hides the error that ended training)
            raise
        _end_tracking(tracker, "FINISHED")
        failures = getattr(tracker, "failures", [])
        if failures:
            from cea.tracking.redact import redact_text

            warn(
                f"tracking: {len(failures)} logging call(s) failed; the run finished, its MLflow "
                f"record is incomplete (first: {redact_text(failures[0])[:160]})"
            )
    if dist.world_size > 1:
        import torch.distributed

        torch.distributed.destroy_process_group()
    if not dist.is_main:
        return
    meta = summary.meta
    if mode.json:
        emit_json(
            {
                "run_dir": str(summary.run_dir),
                "metrics": meta["metrics"],
                "thresholds": meta["thresholds"],
                "best_epoch": meta["best_epoch"],
                "epochs_run": meta["epochs_run"],
                "truncation": meta["truncation"],
                "train_samples_per_s": meta["train_samples_per_s"],
            }
        )
        return
    if not mode.quiet:
        human().print(render_metrics(meta))
    final = meta["metrics"][meta["final_split"]]
    human().print(
        f"macro-F1 {final['macro_f1']:.3f}, micro-F1 {final['micro_f1']:.3f} on {meta['final_split']} "
        f"(best epoch {meta['best_epoch']} of {meta['epochs_run']}); model in {summary.run_dir}"
    )


def _end_tracking(tracker: Any, status: str) -> None:
    """Close the tracking run; a failure to do so is a warning, not a second error."""
    try:
        tracker.end(status)
    except Exception as exc:
        from cea.tracking.redact import redact_text

        warn(f"tracking: could not mark the run {status} ({redact_text(str(exc))[:160]})")


def _dist_from_env() -> Any:
    """torchrun sets RANK / WORLD_SIZE / LOCAL_RANK (+ MASTER_ADDR/PORT): join the process
    group (nccl on GPUs, gloo on CPU). One process: a plain single-rank context."""
    import os

    from cea.train.loop import DistContext

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch
    import torch.distributed

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local)


def _same_on_all_ranks(value: Any, dist: Any) -> Any:
    """Rank 0's value (e.g. the run folder, named by a timestamp) on every rank."""
    if dist.world_size <= 1:
        return value
    import torch.distributed

    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
