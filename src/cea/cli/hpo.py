"""`cea hpo --config FILE --n-trials N [...]` and `cea hpo show STUDY`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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
)
from cea.progress import NullProgress

STORAGE_ENV = "CEA_HPO_STORAGE"  # how the launcher hands a storage URL to its local workers

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
        f"sqlite:///... (or ${STORAGE_ENV}).",
    ),
]
StudyOpt = Annotated[str, typer.Option("--study-name", help="Study name.")]


def _storage(url: str | None, cfg: Any) -> Any:
    from cea.cli._tracking import register_url_password
    from cea.hpo.storage import parse_storage

    url = url or os.environ.get(STORAGE_ENV)
    if url:
        register_url_password(url)
    return parse_storage(url, Path(cfg.hpo.runs_dir) / "optuna-journal.log")


def _open(spec: Any, cfg: Any, name: str, *, create: bool) -> Any:
    from cea.hpo.storage import open_study
    from cea.hpo.study import build_pruner, build_sampler, direction_of

    try:
        return open_study(
            spec,
            name=name,
            direction=direction_of(cfg.hpo.metric),
            sampler=build_sampler(cfg.seed, cfg.hpo),
            pruner=build_pruner(cfg.hpo),
            heartbeat_interval=cfg.hpo.heartbeat_interval,
            grace_period=cfg.hpo.grace_period,
            create=create,
        )
    except KeyError as exc:
        from cea.errors import MissingResourceError

        raise MissingResourceError(
            f"no study {name!r} in {spec.display}", hint="check --study-name and --storage"
        ) from exc


class TrialPrinter(NullProgress):
    """One line per trial start and per epoch (the trials themselves run quietly)."""

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "trial":
            params = ", ".join(f"{k}={_short(v)}" for k, v in payload["params"].items())
            info(f"trial {payload['number']}: {params}")
        elif kind == "trial_failed":
            info(f"  trial {payload['number']} failed: {payload['error']}")
        elif kind == "duplicate":
            info(f"  trial {payload['number']}: same parameters as trial {payload['of']}, skipped")
        elif kind == "epoch":
            info(
                f"  epoch {payload['epoch']}: val macro-F1 {payload.get('val_macro_f1', 0):.4f}, "
                f"val loss {payload.get('val_loss') or 0:.4f}"
            )


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _parent_run(study: Any, cfg: Any, name: str, uri: str | None) -> tuple[Any, str | None]:
    """The study's parent MLflow run: created by the first worker, its id kept in the study's
    user attributes so workers on other hosts attach to it."""
    from cea.cli._tracking import resolve_target
    from cea.hpo.study import PARENT_ATTR
    from cea.tracking.mlflow_tracker import MlflowTracker

    target = resolve_target(
        uri or cfg.tracking.uri, cfg.tracking.artifact_location, cfg.tracking.experiment
    )
    parent_id = study.user_attrs.get(PARENT_ATTR)
    if parent_id is None:
        parent = MlflowTracker.start(target, run_name=f"hpo-{name}", tags={"cea.hpo.study": name})
        study.set_user_attr(PARENT_ATTR, parent.run_id)
        parent.log(
            params={
                "hpo.metric": cfg.hpo.metric,
                "hpo.pruner": cfg.hpo.pruner,
                "hpo.space": ",".join(cfg.hpo.space),
            }
        )
        return target, str(parent.run_id)
    return target, str(parent_id)


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
    from cea.config import load_config
    from cea.errors import UsageError
    from cea.hpo.study import (
        TrialContext,
        make_objective,
        reseed_sampler,
        run_worker,
        validate_space,
    )
    from cea.security.paths import safe_name
    from cea.tracking.base import NullTracker
    from cea.tracking.mlflow_tracker import MlflowTracker

    mode = set_mode(json_out, quiet)
    if n_trials is None:
        raise UsageError("give --n-trials N (or a subcommand: cea hpo show STUDY)")
    safe_name(study_name, what="study name")
    cfg = load_config(config, sets or [], {"tracking.uri": tracking_uri})
    study_dir = Path(cfg.hpo.runs_dir) / study_name
    validate_space(cfg, cfg.hpo.space, study_dir)  # before any study or trial exists
    spec = _storage(storage, cfg)
    if workers > 1 and not spec.parallel_safe:
        raise UsageError(
            "sqlite is not safe for parallel workers",
            hint="use the default journal file, or PostgreSQL for many hosts",
        )
    study = _open(spec, cfg, study_name, create=not resume)
    reseed_sampler(study, cfg.seed, cfg.hpo, worker_index)
    if "cea_metric" not in study.user_attrs:  # for `cea hpo show`, which has no config
        study.set_user_attr("cea_metric", cfg.hpo.metric)
    track = cfg.tracking.enabled and not no_track
    target: Any = None
    parent_id: str | None = None
    if track:
        target, parent_id = _parent_run(study, cfg, study_name, tracking_uri)
    if not worker:
        info(f"study {study_name} in {spec.display}: {n_trials} finished trials wanted")
    if workers > 1:
        _spawn_workers(
            workers, config, sets or [], spec, study_name, n_trials, timeout, no_track, tracking_uri
        )
    else:

        def tracker_for(number: int, params: dict[str, Any]) -> Any:
            if not track:
                return NullTracker()
            return MlflowTracker.start(
                target,
                run_name=f"{study_name}-trial-{number:04d}",
                tags={
                    "mlflow.parentRunId": str(parent_id),
                    "cea.hpo.study": study_name,
                    "cea.hpo.trial": str(number),
                },
            )

        with graceful_stop() as should_stop:
            ctx_ = TrialContext(cfg, study_dir, tracker_for, TrialPrinter(), should_stop)
            run_worker(
                study, make_objective(ctx_), n_trials=n_trials, timeout=timeout,
                max_failed=cfg.hpo.max_failed,
            )  # fmt: skip
    if worker:
        return
    summary = _summarize(study, cfg.hpo.metric, spec)
    if summary["best"]:
        summary["best_config"] = _export_best(study, cfg, study_dir)
    if track and parent_id is not None:
        _log_parent(target, parent_id, summary, study_dir)
    if mode.json:
        emit_json(summary)
    else:
        _print_summary(summary)
    _check_outcome(summary, cfg.hpo.min_complete)


def _check_outcome(summary: dict[str, Any], min_complete: int) -> None:
    """No completed trial: exit 6 with the first failure's error (a data or config error
    fails every trial alike). Fewer than hpo.min_complete: exit 1."""
    from cea.errors import GateRefused, RuntimeFailure

    complete = summary["states"].get("COMPLETE", 0)
    if complete == 0:
        failed = [t for t in summary["trials"] if t["state"] == "FAIL"]
        first = next((t for t in failed if t.get("error")), None)
        cause = f": trial {first['number']} failed with: {first['error']}" if first else ""
        raise RuntimeFailure(
            f"no trial completed ({len(failed)} failed){cause}",
            hint="fix the cause and run again (with --resume to keep the study)",
        )
    if complete < min_complete:
        raise GateRefused(
            f"only {complete} trial(s) completed, fewer than hpo.min_complete={min_complete}",
            hint="run more trials with --resume, or lower hpo.min_complete",
        )


def _spawn_workers(
    k: int, config: str | None, sets: list[str], spec: Any, name: str, n: int,
    timeout: float | None, no_track: bool, tracking_uri: str | None,
) -> None:  # fmt: skip
    """K local worker processes on the same study (the URL travels in the environment, not
    on a command line that `ps` shows)."""
    from cea.errors import Interrupted, RuntimeFailure

    cmd = [
        sys.executable,
        "-m",
        "cea",
        "hpo",
        "--worker",
        "--quiet",
        "--study-name",
        name,
        "--n-trials",
        str(n),
    ]
    if config:
        cmd += ["--config", config]
    for s in sets:
        cmd += ["--set", s]
    if timeout:
        cmd += ["--timeout", str(timeout)]
    if no_track:
        cmd.append("--no-track")
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    url = f"journal:{spec.url}" if spec.kind == "journal" else spec.url
    env = {**os.environ, STORAGE_ENV: url}
    procs = [
        subprocess.Popen([*cmd, "--worker-index", str(i + 1)], env=env)  # noqa: S603 - our own CLI
        for i in range(k)
    ]
    with graceful_stop() as should_stop:
        forwarded = False
        while any(p.poll() is None for p in procs):
            reason = should_stop()
            if reason and not forwarded:  # each worker stops its trial cleanly
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
                forwarded = True
            time.sleep(0.2)
    codes = [int(p.returncode) for p in procs]
    if forwarded or any(c == 130 for c in codes):
        raise Interrupted(
            f"the search was interrupted (worker exit codes {codes})",
            hint="continue with the same command and --resume",
        )
    if all(c != 0 for c in codes):
        raise RuntimeFailure(f"all {k} HPO workers failed (exit codes {codes})")


def _summarize(study: Any, metric: str, spec: Any) -> dict[str, Any]:
    """What the study holds (reads only)."""
    from optuna.trial import TrialState

    from cea.hpo.study import trials_table

    trials = trials_table(study)
    states: dict[str, int] = {}
    for t in trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    out: dict[str, Any] = {
        "study": study.study_name,
        "storage": spec.display,
        "direction": study.direction.name.lower(),
        "metric": metric,
        "states": states,
        "finished": states.get("COMPLETE", 0) + states.get("PRUNED", 0),
        "trials": trials,
        "best": None,
        "best_config": None,
    }
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best = study.best_trial
        out["best"] = {"number": best.number, "value": best.value, "params": best.params}
    return out


def _export_best(study: Any, cfg: Any, study_dir: Path) -> str:
    """best_config.yaml: the base config this search ran on, with the best parameters."""
    import yaml

    from cea.hpo.study import best_config
    from cea.security.io import atomic_write_text

    path = study_dir / "best_config.yaml"
    study_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(best_config(cfg, study), sort_keys=False))
    return str(path)


def _print_summary(summary: dict[str, Any]) -> None:
    console.print(_trials_table(summary["trials"], summary["study"]))
    b = summary["best"]
    if b:
        console.print(
            f"best: trial {b['number']} {summary['metric']} {b['value']:.4f} {b['params']}"
            + (f"; config in {summary['best_config']}" if summary["best_config"] else "")
        )


def _log_parent(target: Any, parent_id: str, summary: dict[str, Any], study_dir: Path) -> None:
    from cea.tracking.mlflow_tracker import MlflowTracker

    parent = MlflowTracker.resume(target, parent_id)
    if summary["best"]:
        parent.log(
            metrics={"hpo/best_value": float(summary["best"]["value"])},
            tags={f"best.{k}": str(v) for k, v in summary["best"]["params"].items()}
            | {"cea.hpo.best_trial": str(summary["best"]["number"])},
        )
    parent.log(metrics={f"hpo/{k.lower()}": float(v) for k, v in summary["states"].items()})
    if summary["best_config"]:
        parent.log_artifact(Path(summary["best_config"]), "hpo")
    parent.end("FINISHED")


def _trials_table(trials: list[dict[str, Any]], name: str) -> Table:
    table = Table(title=f"study {name}: {len(trials)} trials")
    for col in ("#", "state", "value", "epochs", "seconds", "params"):
        table.add_column(col, justify="left" if col in ("state", "params") else "right")
    for t in trials:
        table.add_row(
            str(t["number"]),
            t["state"],
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
    import optuna

    from cea.config import load_config

    mode = set_mode(json_out, quiet)
    cfg = load_config(config)
    spec = _storage(storage, cfg)
    local = spec.url if spec.kind == "journal" else spec.url.split("sqlite:///", 1)[-1]
    if spec.kind in ("journal", "sqlite") and not Path(local).is_file():
        from cea.errors import MissingResourceError

        raise MissingResourceError(  # (reading must not create an empty study store)
            f"no study store at {spec.display}", hint="give the --storage the search used"
        )
    study = _open(spec, cfg, study_name, create=False)
    folder = out or Path(cfg.hpo.runs_dir) / study_name
    summary = _summarize(study, str(study.user_attrs.get("cea_metric", "value")), spec)
    complete = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    importances: dict[str, float] = {}
    if len(complete) >= 2:
        try:
            importances = {
                k: round(float(v), 4)
                for k, v in optuna.importance.get_param_importances(study).items()
            }
        except (RuntimeError, ValueError):
            importances = {}
    summary["importances"] = importances
    summary["plots"] = _plots(study, folder, bool(importances)) if complete else []
    if mode.json:
        emit_json(summary)
        return
    _print_summary(summary)
    if importances:
        console.print("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
    if summary["plots"]:
        info("plots: " + ", ".join(summary["plots"]))


def _plots(study: Any, folder: Path, with_importance: bool) -> list[str]:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vm

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with warnings.catch_warnings():  # "experimental" warnings of optuna's matplotlib backend
        warnings.simplefilter("ignore")
        fig: Any = vm.plot_optimization_history(study).figure
        path = folder / "optimization_history.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(str(path))
        if with_importance:
            fig = vm.plot_param_importances(study).figure
            path = folder / "param_importances.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written.append(str(path))
    return written
