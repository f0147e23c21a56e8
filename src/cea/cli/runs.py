"""`cea runs list|show`: training runs in the tracking store."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from cea.cli._common import JsonOpt, QuietOpt, console, emit_json, set_mode
from cea.cli.register import card

app = typer.Typer(
    help="List and show tracked training runs (MLflow); a run's model card.", no_args_is_help=True
)

UriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the sqlite mlflow.db here).",
    ),
]
ExpOpt = Annotated[str, typer.Option("--experiment", help="MLflow experiment name.")]


def _read_client(uri: str | None) -> Any:
    from cea.tracking.mlflow_tracker import _client
    from cea.tracking.targets import resolve_target

    target = resolve_target(uri or None, None, "cea")
    return _client(target.uri, create=False)  # read-only: never creates a store


def _client_and_experiment(uri: str | None, experiment: str) -> tuple[Any, Any]:
    from cea.errors import MissingResourceError

    client = _read_client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise MissingResourceError(
            f"no experiment {experiment!r} in the tracking store",
            hint="train a model first, or give --tracking-uri / --experiment",
        )
    return client, exp


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _summary(run: Any) -> dict[str, Any]:
    m = run.data.metrics
    return {
        "run_id": run.info.run_id,
        "name": run.info.run_name,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "test_macro_f1": m.get("test/macro_f1"),
        "validation_macro_f1": m.get("validation/macro_f1"),
        "run_dir": run.data.tags.get("cea.run_dir"),
        "data_hash": run.data.tags.get("cea.data_hash"),
    }


@app.command("list")
def list_runs(
    tracking_uri: UriOpt = None,
    experiment: ExpOpt = "cea",
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="Most recent N runs.")
    ] = 50,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """The most recent runs with their status and headline metrics."""
    from datetime import UTC, datetime

    mode = set_mode(json_out, quiet)
    client, exp = _client_and_experiment(tracking_uri, experiment)
    runs = client.search_runs(
        [exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
    )
    rows = [_summary(r) for r in runs]
    if mode.json:
        emit_json({"experiment": experiment, "runs": rows})
        return
    table = Table(title=f"runs in experiment {experiment!r}")
    for col in ("run id", "name", "status", "started (UTC)", "val macro-F1", "test macro-F1"):
        table.add_column(col)
    for r in rows:
        started = datetime.fromtimestamp(r["start_time"] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            r["run_id"][:12],
            r["name"],
            r["status"],
            started,
            _fmt(r["validation_macro_f1"]),
            _fmt(r["test_macro_f1"]),
        )
    console.print(table)


def _find_run(uri: str | None, run_id: str, experiment: str | None) -> Any:
    """The one run whose id is `run_id` or starts with it, in `experiment` or in any."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    from cea.errors import MissingResourceError, UsageError

    if experiment is not None:
        client, exp = _client_and_experiment(uri, experiment)
        ids = [exp.experiment_id]
    else:
        client = _read_client(uri)
        try:  # a whole run id: one lookup, wherever it is
            return client.get_run(run_id)
        except MlflowException:
            pass
        ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    where = f"experiment {experiment!r}" if experiment is not None else "any experiment"
    matches = []
    for i in range(0, len(ids), 100):  # a bounded number of experiments per request
        matches += [
            r
            for r in client.search_runs(
                ids[i : i + 100], run_view_type=ViewType.ALL, max_results=50_000
            )
            if r.info.run_id.startswith(run_id)
        ]
    if not matches:
        raise MissingResourceError(f"no run {run_id!r} in {where}", hint="see `cea runs list`")
    if len(matches) != 1:
        raise UsageError(
            f"{len(matches)} runs in {where} match {run_id!r}", hint="give more of the id"
        )
    return matches[0]


@app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    tracking_uri: UriOpt = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", help="Look only in this experiment (default: all)."),
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Params, final metrics and tags of one run (searched in every experiment)."""
    mode = set_mode(json_out, quiet)
    run = _find_run(tracking_uri, run_id, experiment)
    data = {
        **_summary(run),
        "experiment_id": run.info.experiment_id,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
    }
    if mode.json:
        emit_json(data)
        return
    console.print(f"[bold]{data['name']}[/] {data['run_id']} ({data['status']})")
    for title, section in (
        ("params", data["params"]),
        ("metrics", data["metrics"]),
        ("tags", data["tags"]),
    ):
        table = Table(title=title, show_header=False)
        table.add_column("key")
        table.add_column("value")
        for k in sorted(section):
            if title == "metrics" and k.count("/") > 1:
                continue  # per-criterion metrics: see --json
            v = section[k]
            table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
        console.print(table)


app.command("card")(card)
