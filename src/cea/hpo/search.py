"""A search from start to summary: open (or resume) the study, the parent MLflow run, the local
workers, the summary, the best config, the parent's logging, the outcome check — and reading a
finished study back (`show`). `cea hpo` and `cea.api.search` are thin wrappers over this.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cea.config import CeaConfig
from cea.errors import (
    GateRefused,
    Interrupted,
    MissingResourceError,
    RuntimeFailure,
    UsageError,
)
from cea.progress import NullProgress, ProgressSink, graceful_stop

STORAGE_ENV = "CEA_HPO_STORAGE"  # how the launcher hands a storage URL to its local workers
JOURNAL_NAME = "optuna-journal.log"


def storage_of(url: str | None, cfg: CeaConfig) -> Any:
    """The study store: `url`, else $CEA_HPO_STORAGE, else the journal file under
    hpo.runs_dir (a password in the URL is masked in every later message)."""
    from cea.hpo.storage import parse_storage
    from cea.tracking.targets import register_url_password

    url = url or os.environ.get(STORAGE_ENV)
    if url:
        register_url_password(url)
    return parse_storage(url, Path(cfg.hpo.runs_dir) / JOURNAL_NAME)


def open_study_of(
    spec: Any, cfg: CeaConfig, name: str, *, create: bool, notes: list[str] | None = None
) -> Any:
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
            notes=notes,
        )
    except KeyError as exc:
        raise MissingResourceError(
            f"no study {name!r} in {spec.display}", hint="check --study-name and --storage"
        ) from exc


def _parent_run(study: Any, cfg: CeaConfig, name: str, uri: str | None) -> tuple[Any, str]:
    """The study's parent MLflow run: created by the first worker, its id kept in the study's
    user attributes so workers on other hosts attach to it."""
    from cea.hpo.study import PARENT_ATTR
    from cea.tracking.mlflow_tracker import MlflowTracker
    from cea.tracking.targets import resolve_target

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


def search(
    cfg: CeaConfig,
    *,
    n_trials: int,
    storage: str | None = None,
    study_name: str = "cea-hpo",
    workers: int = 1,
    resume: bool = False,
    track: bool = True,
    tracking_uri: str | None = None,
    timeout: float | None = None,
    worker: bool = False,
    worker_index: int = 0,
    launch: Sequence[str] = (),
    progress: ProgressSink | None = None,
    should_stop: Callable[[], str | None] | None = None,
) -> dict[str, Any] | None:
    """Run (or continue) a study until `n_trials` trials of it are finished; its summary
    (None for a worker process). Whether enough trials completed is `check_outcome`'s to say. `launch`: the `--config`/`--set` arguments local worker
    processes are started with (`workers` > 1)."""
    from cea.hpo.study import TrialContext, make_objective, reseed_sampler
    from cea.hpo.study import validate_space as check_space
    from cea.hpo.worker import WorkerLimits, run_worker
    from cea.security.paths import safe_name
    from cea.tracking.base import NullTracker
    from cea.tracking.mlflow_tracker import MlflowTracker

    progress = progress or NullProgress()
    _quiet_optuna()
    safe_name(study_name, what="study name")
    study_dir = Path(cfg.hpo.runs_dir) / study_name
    check_space(cfg, cfg.hpo.space, study_dir)  # before any study or trial exists
    spec = storage_of(storage, cfg)
    if workers > 1 and not spec.parallel_safe:
        raise UsageError(
            "sqlite is not safe for parallel workers",
            hint="use the default journal file, or PostgreSQL for many hosts",
        )
    notes: list[str] = []
    study = open_study_of(spec, cfg, study_name, create=not resume, notes=notes)
    check_same_objective(study, cfg.hpo.metric, spec.display)
    reseed_sampler(study, cfg.seed, cfg.hpo, worker_index)
    if "cea_metric" not in study.user_attrs:  # for `cea hpo show`, which has no config
        study.set_user_attr("cea_metric", cfg.hpo.metric)
    track = track and cfg.tracking.enabled
    target: Any = None
    parent_id: str | None = None
    if track:
        target, parent_id = _parent_run(study, cfg, study_name, tracking_uri)
    if not worker:
        progress.event("study", {"name": study_name, "storage": spec.display, "n_trials": n_trials})
    codes: list[int] = []
    if workers > 1:
        extra = [*launch, *(["--no-track"] if not track else [])]
        extra += ["--tracking-uri", tracking_uri] if tracking_uri else []
        codes = spawn_workers(workers, extra, spec, study_name, n_trials, timeout)
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

        ctx = TrialContext(cfg, study_dir, tracker_for, progress, should_stop or (lambda: None))
        limits = WorkerLimits(n_trials, timeout, cfg.hpo.max_failed)
        try:
            run_worker(study, make_objective(ctx), limits, progress)
        finally:
            for note in notes:
                progress.event("note", {"text": note})
    if worker:
        return None
    summary = summarize(study, cfg.hpo.metric, spec)
    summary["n_trials"] = n_trials
    if workers > 1:
        summary["worker_exit_codes"] = codes
    if summary["best"]:
        summary["best_config"] = export_best(study, cfg, study_dir)
    if track and parent_id is not None:
        _log_parent(target, parent_id, summary)
    return summary


def _quiet_optuna() -> None:
    """Optuna logs every failed trial with its traceback and an INFO line per trial; cea
    reports one line per event (CEA_DEBUG=1 keeps optuna's own logging)."""
    import optuna

    if not os.environ.get("CEA_DEBUG"):
        optuna.logging.set_verbosity(optuna.logging.ERROR)


def check_same_objective(study: Any, metric: str, where: str) -> None:
    """A study keeps the metric and direction it was created with: continuing it under
    another would rank the trials by two yardsticks (and call the highest loss best)."""
    from cea.errors import ConfigError
    from cea.hpo.study import direction_of

    had = study.user_attrs.get("cea_metric")
    direction = study.direction.name.lower()
    if (had is not None and had != metric) or direction != direction_of(metric):
        raise ConfigError(
            f"study {study.study_name!r} in {where} optimises {had or 'its value'} "
            f"({direction}); this config asks for hpo.metric={metric} "
            f"({direction_of(metric)})",
            hint="use the study's metric, or another --study-name",
        )


def outcome_counts(summary: dict[str, Any]) -> str:
    c = summary["counts"]
    wanted = summary.get("n_trials")
    return (
        f"{c['finished']}{'' if wanted is None else f' of {wanted}'} trials finished "
        f"({c['complete']} complete, {c['pruned']} pruned), {c['failed']} failed, "
        f"{c['stale_retried']} stale and retried, {c['stale_not_retried']} stale and not "
        f"retried, {c['waiting']} waiting, {c['running']} running"
    )


def check_outcome(summary: dict[str, Any], min_complete: int) -> None:
    """No completed trial: exit 6 with the first failure's error (a data or config error
    fails every trial alike). Fewer finished trials than asked for, or fewer complete than
    hpo.min_complete: exit 1 with the counts."""
    complete = summary["states"].get("COMPLETE", 0)
    failed = [t for t in summary["trials"] if t["state"] == "FAIL" and not t.get("stale")]
    if complete == 0 and failed:
        first = next((t for t in failed if t.get("error")), None)
        cause = f": trial {first['number']} failed with: {first['error']}" if first else ""
        raise RuntimeFailure(
            f"no trial completed ({len(failed)} failed){cause}",
            hint="fix the cause and run again (with --resume to keep the study)",
        )
    wanted = summary.get("n_trials")
    if wanted is not None and summary["counts"]["finished"] < wanted:
        codes = summary.get("worker_exit_codes") or []
        dead = f"; worker exit codes {codes}" if any(codes) else ""
        raise GateRefused(
            f"the study is short: {outcome_counts(summary)}{dead}",
            hint="continue it with the same command and --resume",
        )
    if complete < min_complete:
        raise GateRefused(
            f"only {complete} trial(s) completed, fewer than hpo.min_complete={min_complete}",
            hint="run more trials with --resume, or lower hpo.min_complete",
        )


def spawn_workers(
    k: int, launch: Sequence[str], spec: Any, name: str, n: int, timeout: float | None
) -> list[int]:
    """K local worker processes on the same study (the URL travels in the environment, not
    on a command line that `ps` shows)."""
    cmd = [sys.executable, "-m", "cea", "hpo", "--worker", "--quiet", "--study-name", name]
    cmd += ["--n-trials", str(n), *launch]
    if timeout:
        cmd += ["--timeout", str(timeout)]
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
    if forwarded:
        raise Interrupted(
            f"the search was interrupted (worker exit codes {codes})",
            hint="continue with the same command and --resume",
        )
    # a worker that died (killed, out of memory) leaves its trial to the others; whether the
    # study got its trials is the summary's to say (check_outcome), not the exit codes'
    return codes


def summarize(study: Any, metric: str, spec: Any) -> dict[str, Any]:
    """What the study holds (reads only)."""
    from optuna.trial import TrialState

    from cea.hpo.study import trials_table

    trials = trials_table(study)
    states: dict[str, int] = {}
    for t in trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    from cea.hpo.worker import count

    c = count(study)
    stale = [t for t in trials if t["stale"]]
    retried = {t["retry_of"] for t in trials if t.get("retry_of") is not None}
    out: dict[str, Any] = {
        "study": study.study_name,
        "storage": spec.display,
        "direction": study.direction.name.lower(),
        "metric": metric,
        "states": states,
        "finished": c.finished,
        "counts": {
            "finished": c.finished,
            "complete": states.get("COMPLETE", 0),
            "pruned": states.get("PRUNED", 0),
            "failed": c.failed,
            "stale_retried": sum(1 for t in stale if t["number"] in retried),
            "stale_not_retried": sum(1 for t in stale if t["number"] not in retried),
            "waiting": c.waiting,
            "running": c.running,
        },
        "trials": trials,
        "best": None,
        "best_config": None,
    }
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best = study.best_trial
        out["best"] = {"number": best.number, "value": best.value, "params": best.params}
    return out


def export_best(study: Any, cfg: CeaConfig, study_dir: Path) -> str:
    """best_config.yaml: the base config this search ran on, with the best parameters."""
    import yaml

    from cea.hpo.study import best_config
    from cea.security.io import atomic_write_text

    path = study_dir / "best_config.yaml"
    study_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(best_config(cfg, study), sort_keys=False))
    return str(path)


def _log_parent(target: Any, parent_id: str, summary: dict[str, Any]) -> None:
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


def show(
    cfg: CeaConfig, study_name: str, *, storage: str | None = None, out: Path | None = None
) -> dict[str, Any]:
    """A study's summary, parameter importances (two or more completed trials) and plots
    (optimisation history, importances) written to `out` (default hpo.runs_dir/STUDY)."""
    import optuna

    spec = storage_of(storage, cfg)
    local = spec.url if spec.kind == "journal" else spec.url.split("sqlite:///", 1)[-1]
    if spec.kind in ("journal", "sqlite") and not Path(local).is_file():
        raise MissingResourceError(  # (reading must not create an empty study store)
            f"no study store at {spec.display}", hint="give the --storage the search used"
        )
    study = open_study_of(spec, cfg, study_name, create=False)
    folder = out or Path(cfg.hpo.runs_dir) / study_name
    summary = summarize(study, str(study.user_attrs.get("cea_metric", "value")), spec)
    complete = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    importances: dict[str, float] = {}
    if len(complete) >= 2:
        import warnings

        try:
            with warnings.catch_warnings():  # "regimes with < 2 trials" of conditional params
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(study)
            importances = {k: round(float(v), 4) for k, v in found.items()}
        except (RuntimeError, ValueError):
            importances = {}
    summary["importances"] = importances
    summary["plots"] = _plots(study, folder, bool(importances)) if complete else []
    return summary


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
