"""An Optuna study over the train config: the search space, the objective, export.

Each trial is a real `cea train` run (its own run folder under `hpo.runs_dir/<study>/`) with
the trial's parameters applied as config keys; the validation metric is reported after every
epoch, so the pruner can stop a bad trial early. `n_trials` counts the finished (complete or
pruned) trials of the whole study across all workers; the worker loop (`cea.hpo.worker`)
starts a trial only while fewer than N are finished or running, so the study does not
overshoot (but for two workers asking at the same instant).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cea.config import CeaConfig, HpoConfig, ParamSpec
from cea.errors import Interrupted
from cea.hpo.worker import (
    DUPLICATE_ATTR,
    RETRY_OF_ATTR,
    TIMING_ATTR,
    WORKER_ATTR,
    Ledger,
    Objective,
    StopSearch,
    TrialWentStale,
    is_stale,
    worker_identity,
)
from cea.progress import FanOut, NullProgress, ProgressSink

PARENT_ATTR = "mlflow_parent_run_id"


def direction_of(metric: str) -> str:
    return "minimize" if metric == "loss" else "maximize"


def build_sampler(seed: int, hpo: HpoConfig) -> Any:
    import optuna

    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, n_startup_trials=hpo.n_startup_trials
    )


def sampler_seed(seed: int, worker: int, trials_so_far: int) -> int:
    """A sampler seed of its own for every worker and every (re)start of a study: two workers,
    or a resumed study, seeded alike would draw the same parameters (trials 0 and 1 equal, the
    first trial after --resume repeating trial 0)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, worker, trials_so_far]).generate_state(1)[0])


def reseed_sampler(study: Any, seed: int, hpo: HpoConfig, worker: int) -> int:
    n = len(study.get_trials(deepcopy=False))
    value = sampler_seed(seed, worker, n)
    study.sampler = build_sampler(value, hpo)
    return value


def validate_space(base: CeaConfig, space: dict[str, ParamSpec], runs_dir: Path) -> None:
    """Every dimension's bounds and choices make a valid config, before the first trial:
    a key that names no config field, or a value the schema refuses, is a config error
    (exit 3) naming the key, not N failed trials."""
    from cea.errors import ConfigError

    for key, spec in space.items():
        if spec.type == "categorical":
            values = list(spec.choices or [])
        elif spec.type == "int":
            values = [int(spec.low or 0), int(spec.high or 0)]
        else:
            values = [float(spec.low or 0), float(spec.high or 0)]
        for value in values:
            try:
                trial_config(base, {key: value}, "space-check", runs_dir)
            except ConfigError as exc:
                raise ConfigError(
                    f"hpo.space.{key}: the value {value!r} makes no valid config ({exc.message})",
                    hint="a search-space key is a dotted config path, e.g. train.lr",
                ) from exc


def build_pruner(hpo: HpoConfig) -> Any:
    import optuna

    if hpo.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=hpo.pruner_startup_trials, n_warmup_steps=hpo.pruner_warmup_epochs
        )
    if hpo.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def condition_of(key: str, spec: ParamSpec) -> dict[str, Any]:
    """When a dimension is searched at all: its `when` (other config keys and the value they
    must have), or, for an `augment.*` key, augmentation being on (a policy knob of disabled
    augmentation changes nothing: searching it wastes trials and ranks noise as important)."""
    if spec.when is not None:
        return dict(spec.when)
    if key.startswith("augment.") and key != "augment.enabled":
        return {"augment.enabled": True}
    return {}


def _value_at(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def suggest(
    trial: Any, space: dict[str, ParamSpec], base: CeaConfig | None = None
) -> dict[str, Any]:
    """The trial's parameters: unconditional dimensions first, then those whose condition
    holds (on a value drawn for this trial, else on the base config)."""
    tree = base.model_dump(mode="json") if base is not None else {}
    out: dict[str, Any] = {}
    ordered = sorted(space.items(), key=lambda kv: bool(condition_of(*kv)))
    for key, spec in ordered:
        cond = condition_of(key, spec)
        if any((out[k] if k in out else _value_at(tree, k)) != v for k, v in cond.items()):
            continue
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
    """Progress observer: reports the validation metric after every epoch, prunes on demand.
    A report the storage refuses (another worker finished the trial: declared it stale)
    ends the trial with `TrialWentStale`."""

    def __init__(self, trial: Any, metric: str, ledger: Ledger | None = None) -> None:
        self.trial = trial
        self.metric = metric
        self.ledger = ledger or Ledger()
        self.values: list[float] = []

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind != "epoch":
            return
        value = _metric_of(payload, self.metric)
        if value is None:
            return
        import optuna
        from optuna.exceptions import UpdateFinishedTrialError

        self.values.append(value)
        try:
            with self.ledger.call("pruning", pruning=True):
                self.trial.report(value, int(payload["epoch"]))
                prune = self.trial.should_prune()
        except UpdateFinishedTrialError as exc:
            raise TrialWentStale(str(exc)) from None
        if prune:
            raise optuna.TrialPruned(f"pruned after epoch {payload['epoch']} ({value:.4f})")


def _duplicate_of(trial: Any, params: dict[str, Any]) -> int | None:
    """A finished or running trial of the study with exactly these parameters."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    for t in trial.study.get_trials(deepcopy=False, states=states):
        if t.number != trial.number and DUPLICATE_ATTR not in t.user_attrs and t.params == params:
            return int(t.number)
    return None


def kept_model_value(meta: dict[str, Any], metric: str) -> float:
    """The trial's value: `metric` of the model the run keeps (its selected checkpoint), on
    validation, at the thresholds stored with it — the model a user of the best config gets,
    not the best per-epoch number at 0.5."""
    from cea.evaluate.metrics import metric_value

    value = metric_value(meta["metrics"]["validation"], metric)
    return float("nan") if value is None else value


@dataclass
class TrialContext:
    """What every trial of this worker shares."""

    base: CeaConfig
    study_dir: Path
    tracker_for: Callable[[int, dict[str, Any]], Any]  # (trial number, params) -> Tracker
    progress: ProgressSink
    should_stop: Callable[[], str | None] | None = None  # a signal came: stop the search


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
    from pydantic import ValidationError

    try:
        return CeaConfig.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{loc}: {first['msg']}") from exc


def make_objective(ctx: TrialContext) -> Objective:
    """The objective of `cea.hpo.worker.run_worker`: one real training run per trial. Every
    storage call is timed in the trial's ledger; a refused update (the trial was finished by
    another worker) becomes `TrialWentStale`."""
    from optuna.exceptions import UpdateFinishedTrialError

    def objective(trial: Any, ledger: Ledger) -> float:
        try:
            return _objective(ctx, trial, ledger)
        except UpdateFinishedTrialError as exc:
            raise TrialWentStale(str(exc)) from None

    return objective


def _objective(ctx: TrialContext, trial: Any, ledger: Ledger) -> float:
    import time

    import optuna

    from cea.train.run import run_training

    metric = ctx.base.hpo.metric
    with ledger.call("attrs"):
        trial.set_user_attr(WORKER_ATTR, worker_identity())
    with ledger.call("suggest"):
        params = suggest(trial, ctx.base.hpo.space, ctx.base)
    # the trial as `ask` read it (its system attributes do not change while it runs):
    # one storage round trip fewer per trial
    frozen = getattr(trial, "_cached_frozen_trial", None)
    if frozen is None:  # pragma: no cover - an optuna without the cache
        with ledger.call("get_trial"):
            frozen = trial.study._storage.get_trial(trial._trial_id)
    asked = "fixed_params" in frozen.system_attrs or "retry_history" in frozen.system_attrs
    with ledger.call("duplicates"):
        twin = None if asked else _duplicate_of(trial, params)
    if twin is not None:  # no second run of the same parameters (not counted as finished)
        with ledger.call("attrs"):
            trial.set_user_attr(DUPLICATE_ATTR, twin)
        ctx.progress.event("duplicate", {"number": trial.number, "of": twin})
        raise optuna.TrialPruned(f"same parameters as trial {twin}")
    name = f"trial-{trial.number:04d}"
    cfg = trial_config(ctx.base, params, name, ctx.study_dir)
    run_dir = ctx.study_dir / name
    with ledger.call("attrs"):
        trial.set_user_attr("run_dir", str(run_dir))
    tracker = ctx.tracker_for(trial.number, params)
    sink = PruningSink(trial, metric, ledger)
    ctx.progress.event("trial", {"number": trial.number, "params": params})
    t0 = time.perf_counter()
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
    except (optuna.TrialPruned, TrialWentStale) as exc:
        stale = isinstance(exc, TrialWentStale)
        tracker.log(tags={"cea.hpo.state": "STALE" if stale else "PRUNED"})
        tracker.end("KILLED")
        raise
    except BaseException as exc:
        _record_failure(ctx, trial, ledger, exc)
        tracker.log(tags={"cea.hpo.state": "FAIL"})
        tracker.end("FAILED")
        raise
    finally:
        ledger.train_s = time.perf_counter() - t0
    value = kept_model_value(summary.meta, metric)
    if math.isnan(value):  # NaN: optuna would fail the trial; say why, as cea's own failure
        from cea.errors import RuntimeFailure

        nan = RuntimeFailure(f"the kept model's validation {metric} is not a number")
        _record_failure(ctx, trial, ledger, nan)
        tracker.end("FAILED")
        raise nan
    with ledger.call("attrs"):
        trial.set_user_attr("best_epoch", summary.meta["best_epoch"])
        trial.set_user_attr(
            "value_source",
            f"validation {metric} of the kept checkpoint (epoch {summary.meta['best_epoch']}) "
            "at its stored thresholds",
        )
    tracker.log(metrics={f"hpo/{metric}": value}, tags={"cea.hpo.state": "COMPLETE"})
    tracker.end("FINISHED")
    return value


def _record_failure(ctx: TrialContext, trial: Any, ledger: Ledger, exc: BaseException) -> None:
    ctx.progress.event("trial_failed", {"number": trial.number, "error": _error_text(exc)})
    with ledger.call("attrs"):
        trial.set_user_attr("error", _error_text(exc))
        trial.set_user_attr("exit_code", int(getattr(exc, "exit_code", 6)))


def _error_text(exc: BaseException) -> str:
    from cea.errors import CeaError
    from cea.tracking.redact import redact_text

    text = exc.message if isinstance(exc, CeaError) else f"{exc.__class__.__name__}: {exc}"
    return redact_text(text)[:500]


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
                "error": t.user_attrs.get("error"),
                "duplicate_of": t.user_attrs.get(DUPLICATE_ATTR),
                # failed by another worker (stale heartbeat, dead process), not by its error
                "stale": is_stale(t),
                "retry_of": t.user_attrs.get(RETRY_OF_ATTR),
                "timing": t.system_attrs.get(TIMING_ATTR),
            }
        )
    return rows
