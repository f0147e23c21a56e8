"""`cea hpo --config FILE --n-trials N [...]` and `cea hpo show STUDY`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cea.cli._common import (
    JsonOpt,
    QuietOpt,
    SetOpt,
    console,
    emit_json,
    graceful_stop,
    info,
    set_mode,
    warn,
)
from cea.progress import NullProgress

app = typer.Typer(
    help="Optuna studies over the train config: local journal, PostgreSQL workers, recovery.",
    invoke_without_command=True,
)

ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-c", help="Train config with an `hpo` section (search space)."),
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Journal file (default HPO_RUNS_DIR/optuna-journal.log), postgresql://..., "
        "sqlite:///... (or $CEA_HPO_STORAGE).",
    ),
]
StudyOpt = Annotated[str, typer.Option("--study-name", help="Study name.")]


class TrialPrinter(NullProgress):
    """One line per trial start and per epoch (the trials themselves run quietly)."""

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "study":
            info(
                f"study {payload['name']} in {payload['storage']}: "
                f"{payload['n_trials']} finished trials wanted"
            )
        elif kind == "trial":
            params = ", ".join(f"{k}={_short(v)}" for k, v in payload["params"].items())
            info(f"trial {payload['number']}: {params}")
        elif kind == "trial_failed":
            info(f"  trial {payload['number']} failed: {payload['error']}")
        elif kind == "stale":
            retry = (
                f"its retry is trial {payload['retry']}"
                if payload.get("retry") is not None
                else "it was not queued again"
            )
            warn(  # (workers run --quiet: this one is said all the same)
                f"trial {payload['number']} was declared stale by another worker (its "
                f"heartbeat came too late); its result is discarded and {retry}"
            )
        elif kind == "note":
            warn(payload["text"])
        elif kind == "duplicate":
            info(f"  trial {payload['number']}: same parameters as trial {payload['of']}, skipped")
        elif kind == "epoch":
            info(
                f"  epoch {payload['epoch']}: val macro-F1 {payload.get('val_macro_f1', 0):.4f}, "
                f"val loss {payload.get('val_loss') or 0:.4f}"
            )


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


@app.callback()
def hpo(
    ctx: typer.Context,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", min=1, help="Finished trials of the whole study.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1, help="Seconds per worker.")
    ] = None,
    storage: StorageOpt = None,
    study_name: StudyOpt = "cea-hpo",
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Local worker processes.")
    ] = 1,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an existing study (error if missing).")
    ] = False,
    no_track: Annotated[bool, typer.Option("--no-track", help="No MLflow runs.")] = False,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri")] = None,
    worker: Annotated[bool, typer.Option("--worker", hidden=True)] = False,
    worker_index: Annotated[int, typer.Option("--worker-index", hidden=True)] = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Search the train config with Optuna (TPE, multivariate; median/hyperband pruning on the
    per-epoch validation metric). Trials are real runs under hpo.runs_dir/STUDY/."""
    if ctx.invoked_subcommand is not None:
        return
    from cea import api
    from cea.errors import UsageError

    mode = set_mode(json_out, quiet)
    if n_trials is None:
        raise UsageError("give --n-trials N (or a subcommand: cea hpo show STUDY)")
    with graceful_stop() as should_stop:
        summary = api.search(
            config, n_trials, storage, overrides=sets or [], study_name=study_name,
            workers=workers, resume=resume, track=not no_track, tracking_uri=tracking_uri,
            timeout=timeout, check=False, observer=TrialPrinter(), should_stop=should_stop,
            worker_index=worker_index, worker=worker,
        )  # fmt: skip
    if summary is None:  # a worker process: the launcher reports
        return
    if mode.json:
        emit_json(summary.to_dict())
    else:
        _print_summary(summary.to_dict())
    summary.check()


def _print_summary(summary: dict[str, Any]) -> None:
    from cea.hpo.search import outcome_counts

    console.print(_trials_table(summary["trials"], summary["study"]))
    info(outcome_counts(summary))
    b = summary["best"]
    if b:
        console.print(
            f"best: trial {b['number']} {summary['metric']} {b['value']:.4f} {b['params']}"
            + (f"; config in {summary['best_config']}" if summary["best_config"] else "")
        )


def _trials_table(trials: list[dict[str, Any]], name: str) -> Table:
    table = Table(title=f"study {name}: {len(trials)} trials")
    for col in ("#", "state", "value", "epochs", "seconds", "params"):
        table.add_column(col, justify="left" if col in ("state", "params") else "right")
    for t in trials:
        table.add_row(
            str(t["number"]),
            "STALE" if t.get("stale") else t["state"],
            "-" if t["value"] is None else f"{t['value']:.4f}",
            str(t["epochs_reported"]),
            "-" if t["seconds"] is None else f"{t['seconds']:.1f}",
            ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in t["params"].items()),
        )
    return table


@app.command("show")
def show(
    study_name: Annotated[str, typer.Argument(help="Study name.")],
    config: ConfigOpt = None,
    storage: StorageOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the plots (default: HPO_RUNS_DIR/STUDY)."),
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Trials, the best one, parameter importances; optimisation-history and importance plots."""
    from cea import api

    mode = set_mode(json_out, quiet)
    summary = api.study(study_name, config=config, storage=storage, out=out).to_dict()
    importances = summary["importances"]
    if mode.json:
        emit_json(summary)
        return
    _print_summary(summary)
    if importances:
        console.print("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
    if summary["plots"]:
        info("plots: " + ", ".join(summary["plots"]))
