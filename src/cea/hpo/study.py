"""An Optuna study over the train config: objective, workers, recovery, export.

Each trial is a real `cea train` run (its own run folder under `hpo.runs_dir/<study>/`) with
the trial's parameters applied as config keys; the validation metric is reported after every
epoch, so the pruner can stop a bad trial early. `n_trials` counts the finished (complete or
pruned) trials of the whole study across all workers: a worker starts a trial only while fewer
than N are finished, so the study can overshoot by at most (workers - 1) trials that were
already running when the N-th finished.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cea.config import CeaConfig, HpoConfig, ParamSpec
from cea.errors import Interrupted
from cea.progress import FanOut, NullProgress, ProgressSink

PARENT_ATTR = "mlflow_parent_run_id"
WORKER_ATTR = "cea_worker"


def direction_of(metric: str) -> str:
    return "minimize" if metric == "loss" else "maximize"


def build_sampler(seed: int, hpo: HpoConfig) -> Any:
    import optuna

    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, n_startup_trials=hpo.n_startup_trials
    )


def build_pruner(hpo: HpoConfig) -> Any:
    import optuna

    if hpo.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=hpo.pruner_startup_trials, n_warmup_steps=hpo.pruner_warmup_epochs
        )
    if hpo.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def suggest(trial: Any, space: dict[str, ParamSpec]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, spec in space.items():
        if spec.type == "categorical":
            out[key] = trial.suggest_categorical(key, spec.choices)
        elif spec.type == "int":
            out[key] = trial.suggest_int(
                key, int(spec.low or 0), int(spec.high or 0), step=int(spec.step or 1), log=spec.log
            )
        else:
            out[key] = trial.suggest_float(
                key, float(spec.low or 0), float(spec.high or 0), step=spec.step, log=spec.log
            )
    return out


def _metric_of(record: dict[str, Any], metric: str) -> float | None:
    value = record.get(f"val_{metric}")
    return None if value is None else float(value)


class PruningSink(NullProgress):
    """Progress observer: reports the validation metric after every epoch, prunes on demand."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.values: list[float] = []

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind != "epoch":
            return
        value = _metric_of(payload, self.metric)
        if value is None:
            return
        import optuna

        self.values.append(value)
        self.trial.report(value, int(payload["epoch"]))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {payload['epoch']} ({value:.4f})")


def _pid_alive(pid: int, started: float | None) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return started is None or abs(proc.create_time() - started) < 1.0  # not a reused pid
    except psutil.Error:
        return False


def worker_identity() -> dict[str, Any]:
    import psutil

    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": psutil.Process(pid).create_time()}


def recover_dead_trials(study: Any, *, requeue: bool = True) -> list[int]:
    """Trials RUNNING on this host whose worker process is gone: FAIL them and (optionally)
    enqueue their parameters again. Optuna's journal storage has no heartbeats; on PostgreSQL
    heartbeats also catch workers of other hosts."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get(WORKER_ATTR)
        if not w or w.get("host") != host or _pid_alive(int(w["pid"]), w.get("started")):
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except Exception:  # noqa: S112 - someone else recovered it first
            continue
        recovered.append(t.number)
        if requeue:
            study.enqueue_trial(t.params, user_attrs={"cea_retry_of": t.number})
    return recovered


def finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


@dataclass
class TrialContext:
    """What every trial of this worker shares."""

    base: CeaConfig
    study_dir: Path
    tracker_for: Callable[[int, dict[str, Any]], Any]  # (trial number, params) -> Tracker
    progress: ProgressSink
    should_stop: Callable[[], str | None] | None = None  # a signal came: stop the search


class StopSearch(BaseException):
    """Raised out of the objective when the search was interrupted: Optuna lets it through
    (it catches Exception and KeyboardInterrupt only) and logs no traceback; `run_worker`
    marks the trial failed and turns it into `Interrupted`."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(reason)
        self.number = number
        self.reason = reason


def trial_config(
    base: CeaConfig, params: dict[str, Any], run_name: str, runs_dir: Path
) -> CeaConfig:
    """The base config with the trial's parameters at their dotted keys (validated again)."""
    from cea.config import apply_override
    from cea.errors import ConfigError

    tree = base.model_dump(mode="json")
    for key, value in params.items():
        apply_override(tree, key.split("."), value)
    tree["output"]["run_name"] = run_name
    tree["output"]["runs_dir"] = str(runs_dir)
    try:
        return CeaConfig.model_validate(tree)
    except Exception as exc:
        raise ConfigError(f"hpo: trial parameters make an invalid config ({exc})") from exc


def make_objective(ctx: TrialContext) -> Callable[[Any], float]:
    from cea.train.run import run_training

    metric = ctx.base.hpo.metric
    higher = direction_of(metric) == "maximize"

    def objective(trial: Any) -> float:
        import optuna

        trial.set_user_attr(WORKER_ATTR, worker_identity())
        recover_dead_trials(trial.study)
        params = suggest(trial, ctx.base.hpo.space)
        name = f"trial-{trial.number:04d}"
        cfg = trial_config(ctx.base, params, name, ctx.study_dir)
        run_dir = ctx.study_dir / name
        trial.set_user_attr("run_dir", str(run_dir))
        tracker = ctx.tracker_for(trial.number, params)
        sink = PruningSink(trial, metric)
        ctx.progress.event("trial", {"number": trial.number, "params": params})
        try:
            summary = run_training(
                cfg,
                run_dir,
                progress=FanOut(ctx.progress, sink),
                tracker=tracker,
                should_stop=ctx.should_stop,
            )
        except Interrupted as exc:
            tracker.log(tags={"cea.hpo.state": "INTERRUPTED"})
            tracker.end("KILLED")
            raise StopSearch(trial.number, str(exc).split(":", 1)[0]) from exc
        except optuna.TrialPruned:
            tracker.log(tags={"cea.hpo.state": "PRUNED"})
            tracker.end("KILLED")
            raise
        except BaseException:
            tracker.log(tags={"cea.hpo.state": "FAIL"})
            tracker.end("FAILED")
            raise
        values = [v for h in summary.meta["history"] if (v := _metric_of(h, metric)) is not None]
        best = (max(values) if higher else min(values)) if values else float("nan")
        tracker.log(metrics={f"hpo/{metric}": best}, tags={"cea.hpo.state": "COMPLETE"})
        tracker.end("FINISHED")
        return best

    return objective


def run_worker(
    study: Any, objective: Callable[[Any], float], *, n_trials: int, timeout: float | None,
    max_failed: int,
) -> None:  # fmt: skip
    """Optimize until the study has `n_trials` finished trials (all workers together), the
    timeout passes, or too many trials failed; then fail what died on this host."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    def too_many_failures(study: Any, trial: Any) -> None:
        if len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))) >= max_failed:
            study.stop()

    recover_dead_trials(study)
    if finished(study) < n_trials:
        try:
            study.optimize(
                objective,
                timeout=timeout,
                callbacks=[
                    MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                    too_many_failures,
                ],
                catch=(Exception,),
                gc_after_trial=True,
            )
        except StopSearch as stop:
            study.tell(stop.number, state=TrialState.FAIL)
            done = finished(study)
            raise Interrupted(
                f"{stop.reason}: the search stopped during trial {stop.number} (marked failed); "
                f"{done} of {n_trials} trials finished",
                hint="continue with the same command and --resume",
            ) from None
    recover_dead_trials(study, requeue=False)


def best_config(base: CeaConfig, study: Any) -> dict[str, Any]:
    """A ready-to-run train config: the base with the best trial's parameters (no secrets:
    configs never hold storage URLs, and tracking URIs are redacted)."""
    from cea.config import apply_override
    from cea.tracking.redact import redact_mapping

    tree = base.model_dump(mode="json")
    for key, value in study.best_trial.params.items():
        apply_override(tree, key.split("."), value)
    tree["output"]["run_name"] = None
    tree.pop("hpo", None)
    return dict(redact_mapping(tree))


def trials_table(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "epochs_reported": len(t.intermediate_values),
                "seconds": t.duration.total_seconds() if t.duration else None,
                "run_dir": t.user_attrs.get("run_dir"),
            }
        )
    return rows
