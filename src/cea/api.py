"""cea as a library: every command of the CLI as a typed function.

    import cea

    run = cea.train("tiny", ["train.epochs=1"], track=False)
    report = cea.evaluate(run.run_dir, split="test")
    preds = cea.predict(run.run_dir, ["I can't sleep and nothing feels worth doing."])
    audit = cea.audit(["runs"], checks=["artifacts"])

The CLI (`cea train`, `cea eval`, ...) parses its options, calls these and renders what they
return; a test per command holds the two to the same result. The functions

- raise `cea.errors.CeaError` subclasses (each with the CLI's exit code as `exit_code`), never
  exit the interpreter;
- print nothing: progress goes to an optional `observer` — a callable `(kind, payload)` that
  receives events (`"step"`, `"epoch"`, `"trial"`, `"warning"`, ...), or a
  `cea.progress.ProgressSink` (start / advance / event / finish);
- import the heavy libraries (torch, transformers, MLflow, Optuna) only when called.

A config is a packaged name (`"default"`, `"tiny"`), a YAML path, or a `cea.config.CeaConfig`;
`overrides` are `key.path=value` strings, exactly as `--set` takes them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cea.errors import CeaError, UsageError
from cea.progress import NullProgress, ProgressSink

if TYPE_CHECKING:
    from cea.audit.model import AuditReport
    from cea.config import CeaConfig
    from cea.evaluate.batch_predict import Prediction
    from cea.tracking.registry import Registration

__all__ = [
    "AuditReport",
    "BenchResult",
    "CeaError",
    "Comparison",
    "EvalReport",
    "Observer",
    "Prediction",
    "Registration",
    "RunResult",
    "StudySummary",
    "audit",
    "bench_augment",
    "bench_pipeline",
    "bench_step",
    "bench_train",
    "compare",
    "evaluate",
    "load_config",
    "predict",
    "register",
    "search",
    "study",
    "train",
]

Observer = Callable[[str, dict[str, Any]], None] | ProgressSink

# result types defined next to the code that makes them, imported on first use (Prediction's
# module imports torch): `from cea.api import Prediction` works, `import cea.api` stays light
_RESULT_TYPES = {
    "AuditReport": "cea.audit.model",
    "Prediction": "cea.evaluate.batch_predict",
    "Registration": "cea.tracking.registry",
}


def __getattr__(name: str) -> Any:
    if name in _RESULT_TYPES:
        import importlib

        return getattr(importlib.import_module(_RESULT_TYPES[name]), name)
    raise AttributeError(f"module 'cea.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_RESULT_TYPES})


class _CallbackSink(NullProgress):
    """A plain callable as an observer: it hears every event."""

    def __init__(self, fn: Callable[[str, dict[str, Any]], None]) -> None:
        self.fn = fn

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        self.fn(kind, payload)


def _sink(observer: Observer | None) -> ProgressSink:
    if observer is None:
        return NullProgress()
    if hasattr(observer, "event") and hasattr(observer, "advance"):
        return observer  # type: ignore[return-value]
    if callable(observer):
        return _CallbackSink(observer)
    raise UsageError("observer must be a callable (kind, payload) or a ProgressSink")


def load_config(
    config: str | Path | CeaConfig | None = None,
    overrides: Sequence[str] = (),
    settings: Mapping[str, Any] | None = None,
) -> CeaConfig:
    """A validated config: `config` (packaged name, YAML path, a CeaConfig, None = default)
    with `overrides` (`key.path=value`) and `settings` (`{"key.path": value}`; None values are
    left out) applied. Bad keys or values raise `ConfigError` (exit 3)."""
    from cea.config import load_config as _load

    return _load(config, tuple(overrides), dict(settings or {}))


# ---- train --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """A finished training run: its folder and its `cea_meta.json`."""

    run_dir: Path
    meta: dict[str, Any]
    tracking_warnings: tuple[str, ...] = ()
    # the MLflow run it was logged to: {"run_id", "experiment", "uri"} ({} when untracked)
    tracking: dict[str, Any] = field(default_factory=dict)

    @property
    def mlflow_run_id(self) -> str | None:
        """The MLflow run this training was logged to (None: not tracked)."""
        return self.tracking.get("run_id")

    @property
    def final_split(self) -> str:
        """ "test", or "validation" for a run without a test split."""
        return str(self.meta["final_split"])

    @property
    def metrics(self) -> dict[str, Any]:
        """The final split's metrics at the stored thresholds (macro_f1, micro_f1, per_label)."""
        return dict(self.meta["metrics"][self.final_split])

    @property
    def macro_f1(self) -> float:
        return float(self.metrics["macro_f1"])

    @property
    def micro_f1(self) -> float:
        return float(self.metrics["micro_f1"])

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(self.meta["thresholds"])

    def summary(self) -> dict[str, Any]:
        """What `cea train --json` prints."""
        from cea.evaluate.metrics import without_draws

        m = self.meta
        return {
            "run_dir": str(self.run_dir),
            "metrics": m["metrics"],
            "thresholds": m["thresholds"],
            "best_epoch": m["best_epoch"],
            "epochs_run": m["epochs_run"],
            "truncation": m["truncation"],
            "train_samples_per_s": m["train_samples_per_s"],
            "mlflow_run_id": self.mlflow_run_id,
            "tracking": self.tracking or None,
            # a multi-label sentence model's criteria for whole posts (pooled; None otherwise)
            "posts": without_draws(m.get("posts")),
        }


def train(
    config: str | Path | CeaConfig | None = None,
    overrides: Sequence[str] = (),
    *,
    settings: Mapping[str, Any] | None = None,
    resume: str | Path | None = None,
    track: bool = True,
    strict_tracking: bool = False,
    tracking_uri: str | None = None,
    observer: Observer | None = None,
    should_stop: Callable[[], str | None] | None = None,
) -> RunResult:
    """Fine-tune a classifier and write its run folder (best model, metadata, manifest,
    checkpoints); `cea train`.

    `resume`: continue a killed run from its `checkpoints/last` (no config or overrides then).
    `track`: log to MLflow as the config's `tracking` section says (False: `--no-track`); a
    failing tracking store is a warning in `tracking_warnings` unless `strict_tracking`.
    `should_stop()` returning a reason stops at the next step boundary (`Interrupted`).
    Under torchrun every rank calls this; rank 0 writes and returns the result."""
    from cea.errors import Interrupted
    from cea.progress import FanOut
    from cea.run_folder import new_run_dir, read_run_config, recorded_tracking
    from cea.tracking.base import BestEffortTracker, NullTracker
    from cea.tracking.targets import end_tracking, open_tracker
    from cea.train.dist import dist_from_env, leave, same_on_all_ranks
    from cea.train.run import run_training

    dist = dist_from_env()
    if resume is not None:
        if config is not None or overrides or settings:
            raise UsageError("--resume takes the run's saved config; give no --config or overrides")
        run_dir = Path(resume)
        cfg = read_run_config(run_dir)
    else:
        cfg = load_config(config, overrides, settings)
        run_dir = same_on_all_ranks(new_run_dir(cfg) if dist.is_main else None, dist)
    progress = _sink(observer) if dist.is_main else NullProgress()
    tracker: Any = NullTracker()
    if cfg.tracking.enabled and track and dist.is_main:
        tracker = BestEffortTracker(
            open_tracker(cfg, run_dir, resume=resume is not None, uri_flag=tracking_uri),
            strict=strict_tracking,
        )
    warnings: list[str] = []
    progress.event("run_dir", {"run_dir": str(run_dir), "resume": resume is not None})
    try:
        summary = run_training(
            cfg, run_dir, resume=resume is not None, progress=FanOut(progress), tracker=tracker,
            dist=dist, should_stop=should_stop,
        )  # fmt: skip
    except (Interrupted, KeyboardInterrupt):
        _note(end_tracking(tracker, "KILLED"), progress)
        raise
    except BaseException:
        _note(end_tracking(tracker, "FAILED"), progress)  # (never hides the error)
        raise
    closed = end_tracking(tracker, "FINISHED")
    if closed:
        warnings.append(closed)
    failures = getattr(tracker, "failures", [])
    if failures:
        from cea.tracking.redact import redact_text

        warnings.append(
            f"tracking: {len(failures)} logging call(s) failed; the run finished, its MLflow "
            f"record is incomplete (first: {redact_text(failures[0])[:160]})"
        )
    leave(dist)
    return RunResult(
        summary.run_dir, summary.meta, tuple(warnings), recorded_tracking(summary.run_dir)
    )


def _note(message: str | None, progress: ProgressSink) -> None:
    if message:
        progress.event("warning", {"message": message})


# ---- evaluate, compare ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalReport:
    """An evaluation: the folder it was written to and its report (`metrics.json`)."""

    folder: Path
    report: dict[str, Any]
    tracking: str | None = None  # what happened with the run's MLflow run, in one line

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.report["metrics"])

    @property
    def intervals(self) -> dict[str, Any]:
        """95 % bootstrap intervals (resampling posts): macro_f1, micro_f1, per_label_f1."""
        return dict(self.report["intervals"])

    @property
    def macro_f1(self) -> float:
        return float(self.report["metrics"]["macro_f1"])

    def to_dict(self) -> dict[str, Any]:
        """What `cea eval --json` prints."""
        return {"folder": str(self.folder), "tracking": self.tracking, **self.report}


def evaluate(
    source: str | Path,
    *,
    split: str = "test",
    name: str | None = None,
    data: str | None = None,
    n_boot: int = 1000,
    seed: int = 13,
    output_dir: Path | None = None,
    tracking_uri: str | None = None,
    track: bool = True,
    device: str = "auto",
    batch_size: int = 64,
    baseline: bool = True,
) -> EvalReport:
    """Score a finished run (a folder, or a registered `models:/NAME@ALIAS`) on a split:
    F1 (macro, micro, per criterion) with 95 % bootstrap intervals, AUROC, AUPRC, calibration
    error, plots; written to RUN_DIR/eval/NAME with its own manifest; `cea eval`. The run
    folder is verified (manifest, artifact scan) before anything in it is loaded. `baseline`:
    TF-IDF + balanced logistic regression fitted on the run's train split, scored on the same
    items (`report["baseline"]`, with a verdict; `cea.evaluate.baseline`)."""
    from cea.evaluate.evaluation import evaluate_run
    from cea.tracking.targets import log_evaluation, resolve_model_source

    label = name or f"{split}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    with tempfile.TemporaryDirectory(prefix="cea-model-") as tmp:
        run_dir, registered = resolve_model_source(str(source), tracking_uri, Path(tmp))
        out_root = None
        if registered is not None:
            out_root = output_dir or Path("eval") / f"{registered['name']}-v{registered['version']}"
        out = evaluate_run(
            run_dir, split=split, name=label, n_boot=n_boot, seed=seed, data_path=data,
            out_root=out_root, source=str(source) if registered is not None else None,
            device=device, batch_size=batch_size, baseline=baseline,
        )  # fmt: skip
    tracked = None
    if track and registered is None:
        tracked = log_evaluation(run_dir, label, out.report, out.folder)
    return EvalReport(out.folder, out.report, tracked)


@dataclass(frozen=True)
class Comparison:
    """Two groups of runs on the same test data: the difference in macro-F1 (B − A; evidence
    recall@3 for sentence-level runs, `result["metric"]`) with its two-level bootstrap
    interval (seeds × test posts) and the verdict in one sentence."""

    result: dict[str, Any]
    folder: Path | None = None

    @property
    def sentence(self) -> str:
        return str(self.result["sentence"])

    @property
    def difference(self) -> float:
        return float(self.result["difference"])

    @property
    def interval(self) -> tuple[float, float]:
        lo, hi = self.result["interval"]
        return float(lo), float(hi)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.result)


def compare(
    a: str | Sequence[str | Path],
    b: str | Sequence[str | Path],
    *,
    n_boot: int = 1000,
    seed: int = 13,
    single_seed_ok: bool = False,
    out: Path | None = None,
    write: bool = True,
    device: str = "auto",
    batch_size: int = 64,
    metric: str = "auto",
) -> Comparison:
    """Compare run groups A and B (each: a run folder, a comma list or glob such as
    `'runs/base-*'`, or a list of folders); `cea eval --compare A B`. With one run per group
    there is no verdict unless `single_seed_ok`. `write`: comparison.json and the plot go to
    `out` (default `compare-<time>`; never overwritten). `metric`: "auto" (macro-F1 of posts
    when any run is post-level, else evidence recall@3), "macro_f1" (a multi-label sentence
    run answers for posts by pooling) or "evidence_recall@3"."""
    from cea.evaluate.compare import compare_groups, expand_group, write_comparison

    def group(spec: str | Sequence[str | Path]) -> list[Path]:
        return expand_group(spec) if isinstance(spec, str) else [Path(p) for p in spec]

    folder = None
    if write:
        folder = out or _fresh(f"compare-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")
        if folder.exists():  # an explicit --out is never overwritten
            raise UsageError(f"{folder} exists; comparisons are not overwritten", hint="give --out")
    result = compare_groups(
        group(a), group(b), n_boot=max(n_boot, 200), seed=seed, single_seed_ok=single_seed_ok,
        device=device, batch_size=batch_size, metric=metric,
    )  # fmt: skip
    if folder is not None:
        result["files"] = write_comparison(result, folder)
    return Comparison(result, folder)


def _fresh(stem: str) -> Path:
    """`stem`, or `stem-2`, `stem-3`, ... when two comparisons start in the same second."""
    path, n = Path(stem), 1
    while path.exists():
        n += 1
        path = Path(f"{stem}-{n}")
    return path


# ---- predict ------------------------------------------------------------------------------------


def predict(
    source: str | Path,
    texts: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    evidence_model: str | Path | None = None,
    top_k: int = 3,
    device: str = "auto",
    batch_size: int = 64,
    tracking_uri: str | None = None,
) -> list[Prediction]:
    """Criteria probabilities and decisions (at the run's thresholds) for `texts`, from a
    post-level run folder or `models:/NAME@ALIAS`; with a sentence-level `evidence_model`,
    the `top_k` evidence sentences per criterion. `cea predict` does this for a JSONL file."""
    from cea.evaluate.batch_predict import predict_texts

    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        from cea.errors import DataError

        raise DataError(f"text {bad[0]} is empty or not a string ({len(bad)} such texts)")
    lm, ev, _ = load_models(source, evidence_model, device, batch_size, tracking_uri)
    return predict_texts(lm, texts, ids, evidence=ev, top_k=top_k)


def load_models(
    source: str | Path,
    evidence_model: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    tracking_uri: str | None = None,
) -> tuple[Any, Any, dict[str, str] | None]:
    """(the post-level model, the evidence model or None, the registry entry or None), each
    verified before it is loaded; a bad or absent device is said before anything is loaded."""
    from cea.evaluate.predictor import inference_device, load_run_model
    from cea.tracking.targets import resolve_model_source

    inference_device(device)
    with tempfile.TemporaryDirectory(prefix="cea-model-") as fetched:
        run_dir, registered = resolve_model_source(str(source), tracking_uri, Path(fetched))
        lm = load_run_model(run_dir, device=device, batch_size=batch_size)
    ev = None
    if evidence_model is not None:
        ev = load_run_model(Path(evidence_model), device=device, batch_size=batch_size)
        if not ev.sentence_level:
            raise UsageError(f"{evidence_model} is not a sentence-level (evidence) model")
    return lm, ev, registered


# ---- search -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySummary:
    """What a study holds: trials (state, value, parameters), the best trial and the exported
    best config (`best_config.yaml`)."""

    data: dict[str, Any]
    min_complete: int = 1

    @property
    def best(self) -> dict[str, Any] | None:
        best = self.data["best"]
        return dict(best) if best else None

    @property
    def best_config(self) -> str | None:
        path = self.data["best_config"]
        return str(path) if path else None

    @property
    def trials(self) -> list[dict[str, Any]]:
        return list(self.data["trials"])

    def check(self) -> None:
        """No completed trial: `RuntimeFailure` (exit 6, the first failure's error); fewer
        finished trials than asked for, or fewer complete than `hpo.min_complete`:
        `GateRefused` (exit 1, with the counts)."""
        from cea.hpo.search import check_outcome

        check_outcome(self.data, self.min_complete)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


def search(
    config: str | Path | CeaConfig | None,
    n_trials: int,
    storage: str | None = None,
    *,
    overrides: Sequence[str] = (),
    study_name: str = "cea-hpo",
    workers: int = 1,
    resume: bool = False,
    track: bool = True,
    tracking_uri: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    observer: Observer | None = None,
    should_stop: Callable[[], str | None] | None = None,
    worker_index: int = 0,
    worker: bool = False,
) -> StudySummary | None:
    """An Optuna search over the config's `hpo.space` until `n_trials` trials of the study
    are finished (TPE, pruning on the per-epoch validation metric; each trial a real run under
    hpo.runs_dir/STUDY); `cea hpo`. `storage`: a journal file (default), postgresql://... or
    sqlite:///...; `resume` continues an existing study. Local `workers` > 1 need the config
    as a file path. `check`: raise when no (or too few) trials completed. Returns None for a
    worker process (`worker`)."""
    from cea.hpo.search import search as run_search

    cfg = load_config(config, overrides)
    launch: list[str] = []
    if workers > 1:
        if config is not None and not isinstance(config, str | Path):
            raise UsageError("local workers need the config as a name or file path")
        launch = [*(["--config", str(config)] if config is not None else [])]
        for s in overrides:
            launch += ["--set", s]
    data = run_search(
        cfg, n_trials=n_trials, storage=storage, study_name=study_name, workers=workers,
        resume=resume, track=track, tracking_uri=tracking_uri, timeout=timeout, worker=worker,
        worker_index=worker_index, launch=launch, progress=_sink(observer),
        should_stop=should_stop,
    )  # fmt: skip
    if data is None:
        return None
    summary = StudySummary(data, cfg.hpo.min_complete)
    if check:
        summary.check()
    return summary


def study(
    study_name: str,
    *,
    config: str | Path | CeaConfig | None = None,
    storage: str | None = None,
    out: Path | None = None,
) -> StudySummary:
    """A study read back: trials, the best, parameter importances, plots; `cea hpo show`."""
    from cea.hpo.search import show

    cfg = load_config(config)
    return StudySummary(show(cfg, study_name, storage=storage, out=out), cfg.hpo.min_complete)


# ---- bench --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchResult:
    """A measurement of `cea bench` (`data` is its JSON) and, with a baseline, the verdict."""

    data: dict[str, Any]
    comparison: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {**self.data, "comparison": self.comparison}


def _bench_gate(
    out: dict[str, Any],
    gated: dict[str, Any],
    save_baseline: Path | None,
    baseline: Path | None,
    max_regression: str,
    check: bool,
) -> BenchResult:
    from cea.bench.run import gate, raise_if_regressed

    verdict = gate(
        out["kind"], out["params"], gated, save=save_baseline, baseline=baseline,
        max_regression=max_regression,
    )  # fmt: skip
    result = BenchResult(out, verdict)
    if check:
        raise_if_regressed(verdict)
    return result


def bench_pipeline(
    config: str | Path | CeaConfig | None = None,
    *,
    data: str | None = None,
    overrides: Sequence[str] = (),
    save_baseline: Path | None = None,
    baseline: Path | None = None,
    max_regression: str = "10%",
    check: bool = True,
    repeats: int = 3,
    inject_delay_ms: float = 0.0,
    **synthetic: Any,
) -> BenchResult:
    """Input-pipeline throughput (samples/s, batch p50/p95); `cea bench pipeline`. With a
    `config` or `data`: the configured run's pipeline on that data (read, split, tokenize +
    chunk, augment, re-tokenize, collate, each timed). Otherwise the fixed synthetic corpus;
    `synthetic` takes `cea.bench.run.bench_pipeline`'s settings (batch_size, workers, prob,
    augmenters, n, words, max_length, backbone, compare_naive, seed). A regression beyond
    `max_regression` vs. `baseline` raises `GateRefused` (unless `check=False`)."""
    from cea.bench import run as bench

    delay = inject_delay_ms / 1000.0
    if config is not None or data is not None:
        cfg = load_config(config, overrides, {"data.path": data})
        out = bench.bench_pipeline_on(cfg, repeats=repeats, delay_s=delay)
    else:
        out = bench.bench_pipeline(repeats=repeats, delay_s=delay, **synthetic)
    return _bench_gate(out, out["cea"], save_baseline, baseline, max_regression, check)


def bench_step(
    config: str | Path | CeaConfig | None = None,
    *,
    data: str | None = None,
    overrides: Sequence[str] = (),
    steps: int | None = None,
    save_baseline: Path | None = None,
    baseline: Path | None = None,
    max_regression: str = "10%",
    check: bool = True,
    inject_delay_ms: float = 0.0,
    **synthetic: Any,
) -> BenchResult:
    """Data-wait/step ratio and its band; `cea bench step`. With a `config` or `data`: the
    configured run's own loop around its real steps on that data. Otherwise the synthetic
    corpus around a real or simulated step (`synthetic`: `cea.bench.run.bench_step`'s
    settings, e.g. simulate_step_ms, device, backbone, batch_size, prefetch)."""
    from cea.bench import run as bench

    if config is not None or data is not None:
        cfg = load_config(config, overrides, {"data.path": data})
        out = bench.bench_step_on(cfg, steps=steps or 20)
    else:
        out = bench.bench_step(steps=steps or 200, delay_s=inject_delay_ms / 1000.0, **synthetic)
    gated = {k: v for k, v in out.items() if k not in ("kind", "params")}
    return _bench_gate(out, gated, save_baseline, baseline, max_regression, check)


def bench_train(
    config: str | Path | CeaConfig | None = None,
    *,
    data: str | None = None,
    overrides: Sequence[str] = (),
    steps: int = 20,
    warmup: int = 3,
) -> dict[str, Any]:
    """A few real training steps of the configured run on its data (task, lengths, chunking,
    augmentation), where the time goes, and estimates of an epoch and of the run;
    `cea bench train`."""
    from cea.bench.run import bench_train as run_bench

    cfg = load_config(config, overrides, {"data.path": data})
    return run_bench(cfg, steps=steps, warmup=warmup)


def bench_augment(
    augmenters: Sequence[str] | None = None,
    *,
    n: int = 200,
    words: int = 25,
    repeats: int = 3,
    seed: int = 13,
    save_baseline: Path | None = None,
    baseline: Path | None = None,
    max_regression: str = "10%",
    check: bool = True,
    inject_delay_ms: float = 0.0,
) -> BenchResult:
    """Latency per example (p50, p95) of each augmenter on a fixed corpus; `cea bench augment`."""
    from cea.bench.run import bench_augment as run_bench

    out = run_bench(
        augmenters=augmenters, n=n, words=words, repeats=repeats, seed=seed,
        delay_s=inject_delay_ms / 1000.0,
    )  # fmt: skip
    gated = {k: v for k, v in out.items() if k not in ("kind", "params")}
    return _bench_gate(out, gated, save_baseline, baseline, max_regression, check)


# ---- audit, register ----------------------------------------------------------------------------


def audit(
    paths: Sequence[str | Path] = (".",),
    checks: Sequence[str] | None = None,
    policy: str | Path | None = None,
    *,
    root: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    on_check: Callable[[str], None] | None = None,
) -> AuditReport:
    """The release gate; `cea audit`. `checks`: any of sast, vulns, sbom, licenses, policy,
    artifacts (default: all but artifacts; with only `artifacts`, `paths` are the files and
    folders to scan). `policy`: a TOML with `[tool.cea.audit]` — by default the pyproject.toml
    of the current folder, never one inside a scanned folder. The report's `status` is
    passed / findings / incomplete and `exit_code()` what the CLI exits with; what cannot be
    checked is incomplete, never passed. `root`: the project folder the report names (with
    only `artifacts`; default: the one folder scanned, else the current one). `options`:
    per-check settings (osv_db, requirements, python, write_sbom, write_third_party,
    cache_key, on_file)."""
    from cea.audit.runner import CHECK_NAMES, DEFAULT_CHECKS, run_audit

    selected = tuple(checks) if checks else DEFAULT_CHECKS
    unknown = [c for c in selected if c not in CHECK_NAMES]
    if unknown:
        raise UsageError(
            f"unknown check(s) {', '.join(unknown)}", hint="choose from " + ", ".join(CHECK_NAMES)
        )
    opts: dict[str, Any] = dict(options or {})
    given = [str(p) for p in paths]
    if selected == ("artifacts",):
        missing = [p for p in given if not Path(p).exists() and not Path(p).is_symlink()]
        if missing:
            from cea.errors import MissingResourceError

            raise MissingResourceError(f"not found: {', '.join(missing)}")
        opts["artifact_paths"] = given
        if root is not None:
            folder = Path(root)
        else:
            folder = Path(given[0]) if len(given) == 1 and Path(given[0]).is_dir() else Path()
    else:
        folder = Path(root) if root is not None else Path(given[0] if given else ".")
    folder = folder.resolve()
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    return run_audit(
        folder,
        selected,
        options=opts,
        policy_file=Path(policy) if policy is not None else None,
        on_check=on_check,
    )


def register(
    run: str | Path,
    name: str,
    alias: str | None = None,
    *,
    config: str | Path | CeaConfig | None = None,
    overrides: Sequence[str] = (),
    tracking_uri: str | None = None,
) -> Registration:
    """Register a finished run's model in the MLflow registry (models from code, no pickle)
    with hashes, lineage and eval metrics as tags; `cea register-model`. A protected alias
    (e.g. champion) passes the promotion gate first (`GateRefused`, exit 1, when it fails).
    The gate's policy is `config`'s `registry` section (or cea's defaults) — never the gated
    run's own config."""
    from cea.config import RegistryConfig
    from cea.evaluate.card import model_card
    from cea.run_folder import saved_config, verify_run_folder
    from cea.security.paths import safe_name
    from cea.tracking.registry import register_run
    from cea.tracking.targets import tracking_of

    run_dir = Path(run)
    safe_name(name, what="model name")
    if alias is not None and safe_name(alias, what="alias").isdigit():
        raise UsageError("--alias must not be a number (it would read as a version)")
    meta = verify_run_folder(run_dir)
    gate = (
        load_config(config, overrides).registry
        if (config is not None or overrides)
        else RegistryConfig()
    )
    cfg = saved_config(run_dir).model_copy(update={"registry": gate})
    target, run_id = tracking_of(run_dir, tracking_uri, cfg.tracking.experiment)
    with tempfile.TemporaryDirectory(prefix="cea-register-") as tmp:
        return register_run(
            run_dir,
            name=name,
            alias=alias,
            target=target,
            training_run_id=run_id,
            protected=gate.protected_aliases,
            metric_name=gate.gate_metric,
            gate_on=gate.gate_on,
            minimum=gate.gate_min,
            card=model_card(run_dir, meta),
            work_dir=Path(tmp),
        )
