"""A training run from config to run folder.

Layout (DESIGN §5): the root is the best model (`model.safetensors`, HF `config.json`,
tokenizer files), `cea_meta.json`, `config.yaml` (resolved), `split.json`, `manifest.json`;
`checkpoints/last/` holds the resume state and `checkpoints/best/` the best weights so far.
The root files and the manifest are written last, atomically: a run folder with a
`manifest.json` is complete and is never modified by training again.
"""

from __future__ import annotations

import contextlib
import platform
import shutil
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from cea._version import __version__
from cea.config import CeaConfig
from cea.data.examples import Example
from cea.data.prepare import PreparedData, prepare_data
from cea.data.splits import save_split
from cea.errors import Interrupted, UsageError
from cea.progress import FanOut, NullProgress, ProgressSink, safe_points
from cea.run_folder import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    LOCK_FILE,
    META_FILE,
    SPLIT_FILE,
    TRACKING_FILE,
    WEIGHTS_FILE,
    is_finished,
    lock_run_folder,
    resolve_checkpoint,
    run_dir_contents,
    save_final_model,
)
from cea.security.io import atomic_write_json, atomic_write_text
from cea.security.manifest import MANIFEST_NAME
from cea.tracking.base import NullTracker, Tracker, TrackerSink
from cea.tracking.redact import flatten, redact_mapping, redact_text
from cea.tracking.system import SystemMetrics


@dataclass(frozen=True)
class TrainSummary:
    run_dir: Path
    meta: dict[str, Any]


def featurize_kwargs(config: CeaConfig, data: PreparedData) -> dict[str, Any]:
    """How this run's examples become model inputs (`cea.model.features.featurize`)."""
    ch = config.model.chunking
    config = data.config  # the task as resolved from the data (level "auto")
    return {
        "max_length": config.model.max_length,
        "labels": data.labels,
        "descriptions": data.descriptions if config.task.pair else None,
        "chunking": ch.enabled and config.task.level == "post",  # windows are for posts
        "stride": ch.stride,
        "max_chunks": ch.max_chunks,
    }


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """{"test": report} -> {"test/macro_f1": .., "test/ANHEDONIA/f1": ..} (numbers only)."""
    out: dict[str, float] = {}
    for split, rep in metrics.items():
        for key in ("macro_f1", "micro_f1", "macro_auprc", "loss"):
            if rep.get(key) is not None:
                out[f"{split}/{key}"] = float(rep[key])
        for label, lm in rep["per_label"].items():
            for key in ("precision", "recall", "f1", "auprc", "auroc", "threshold"):
                if lm.get(key) is not None:
                    out[f"{split}/{label}/{key}"] = float(lm[key])
    return out


def git_sha() -> str:
    """The commit of cea's source tree when it is a git checkout, else "unknown"."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            ["git", "-C", str(here), "rev-parse", "HEAD"],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else "unknown"


def _log_examples(tracker: Tracker, examples: list[Example], run_dir: Path) -> None:
    """Opt-in (tracking.log_examples): a small sample of training texts as an MLflow artifact."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cea-examples-") as tmp:
        path = Path(tmp) / "train_examples.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for e in examples:
                fh.write(
                    json.dumps({"id": e.example_id, "text": e.text, "labels": e.labels}) + "\n"
                )
        tracker.log_artifact(path, "examples")


def _augmented_dataset(
    config: CeaConfig, data: PreparedData, tokenizer: Any, train: Any, feat_kwargs: dict[str, Any]
) -> Any:
    from cea.augment.build import build_augmentation, lexicon_for, resources_for
    from cea.augment.dataset import AugmentedDataset

    train_examples = data.examples["train"]
    res, _ = resources_for(config.augment, [e.text for e in train_examples])
    lexicon = lexicon_for(config.augment, data.descriptions, data.labels, train_examples)
    augmentation = build_augmentation(config.augment, config.seed, res, lexicon)
    return AugmentedDataset(train, train_examples, tokenizer, augmentation, feat_kwargs)


def _log_augmented_examples(tracker: Tracker, dataset: Any, limit: int = 20) -> None:
    """Opt-in: (original, augmented) pairs of the first epoch as an MLflow artifact."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cea-examples-") as tmp:
        path = Path(tmp) / "augmented_examples.jsonl"
        written = 0
        with path.open("w", encoding="utf-8") as fh:
            for i, e in enumerate(dataset.examples):
                out = dataset.outcome(i)
                if out is None:
                    continue
                rec = {"id": e.example_id, "original": e.text, "augmented": out.text}
                fh.write(json.dumps({**rec, "ops": out.ops}) + "\n")
                written += 1
                if written >= limit:
                    break
        tracker.log_artifact(path, "examples")


def _versions() -> dict[str, str]:
    out = {"cea": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "tokenizers", "safetensors", "numpy", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[dist] = "missing"
    return out


@dataclass
class RunInputs:
    """What a run trains on: the data, the backbone and its tokenizer, the featurized splits
    (windows cut, tokens counted) and the training dataset (augmented, when configured)."""

    data: PreparedData
    backbone: Any  # cea.model.backbone.Backbone
    tokenizer: Any
    feat_kwargs: dict[str, Any]
    feats: dict[str, Any]  # split -> cea.model.features.Features
    train_dataset: Any | None  # an AugmentedDataset, or None (the plain features)
    # per training example: how much a negative looks like evidence (negative sampling)
    hardness: Any | None = None

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    def truncation(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "examples": f.n_examples,
                "rows": len(f),
                "chunked": f.chunked_examples,
                "truncated": f.truncated_examples,
                "truncated_share": round(f.truncated_examples / max(f.n_examples, 1), 4),
            }
            for name, f in self.feats.items()
        }

    def release(self) -> None:
        """The tiny backbone is built in a temporary folder for the run: removed at its end."""
        if self.backbone.kind == "tiny":
            shutil.rmtree(self.backbone.path, ignore_errors=True)


@contextlib.contextmanager
def _timed(times: dict[str, float] | None, key: str) -> Any:
    start = time.perf_counter()
    try:
        yield
    finally:
        if times is not None:
            times[key] = times.get(key, 0.0) + time.perf_counter() - start


def load_inputs(
    config: CeaConfig,
    *,
    split_override: Path | None = None,
    times: dict[str, float] | None = None,
) -> RunInputs:
    """Read and split the data, load the tokenizer, featurize every split, set up the
    augmented training dataset. `times` (if given) receives the seconds of each step:
    read_split_examples_s, tokenizer_s, tokenize_chunk_s, augment_setup_s."""
    from cea.model.backbone import resolve_backbone
    from cea.model.build import load_tokenizer
    from cea.model.features import featurize
    from cea.train.loop import sampling_applies, seed_everything

    with _timed(times, "read_split_examples_s"):
        data = prepare_data(config, split_override=split_override)
    config = data.config  # task.level "auto" resolved from the data
    seed_everything(config.seed)
    with _timed(times, "tokenizer_s"):
        # "tiny" is built in a temporary folder (deterministic per seed), removed by release()
        backbone = resolve_backbone(config.model.backbone, seed=config.seed)
    try:
        with _timed(times, "tokenizer_s"):
            tokenizer = load_tokenizer(backbone)
        kwargs = featurize_kwargs(config, data)
        with _timed(times, "tokenize_chunk_s"):
            feats = {n: featurize(exs, tokenizer, **kwargs) for n, exs in data.examples.items()}
        hardness = None
        if sampling_applies(config, config.task.pair):
            from cea.evaluate.baseline import negative_hardness

            with _timed(times, "hard_negatives_s"):
                hardness = negative_hardness(data.examples["train"], len(data.labels))
        train_dataset = None
        if config.augment.enabled:  # the training split only; validation and test as they are
            with _timed(times, "augment_setup_s"):
                train_dataset = _augmented_dataset(config, data, tokenizer, feats["train"], kwargs)
    except BaseException:
        if backbone.kind == "tiny":  # built for this run in a temporary folder
            shutil.rmtree(backbone.path, ignore_errors=True)
        raise
    return RunInputs(data, backbone, tokenizer, kwargs, feats, train_dataset, hardness)


def build_run_model(config: CeaConfig, inputs: RunInputs) -> Any:
    """The classifier over the backbone, seeded (a head per label, or one for pairs)."""
    from cea.model.build import build_model, check_vocabulary
    from cea.train.loop import seed_everything

    seed_everything(config.seed)
    model = build_model(
        inputs.backbone,
        labels=inputs.data.labels,
        pair=config.task.pair,
        dropout=config.model.dropout,
    )
    check_vocabulary(inputs.tokenizer, model, inputs.backbone.path)
    return model


def start_run_folder(config: CeaConfig, run_dir: Path, inputs: RunInputs, tracker: Tracker) -> None:
    """The run folder's first files (config, split, tracking.json) and the run's params and
    tags in the tracker, before the first step."""
    data = inputs.data
    config_tree = redact_mapping(config.model_dump(mode="json"))  # no secret reaches a file
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(config_tree, sort_keys=False))
    save_split(data.split, run_dir / SPLIT_FILE)
    if tracker.run_id is not None:
        atomic_write_json(
            run_dir / TRACKING_FILE,
            {
                "run_id": tracker.run_id,
                "uri": getattr(tracker, "effective_uri", None)
                or redact_text(config.tracking.uri or "default"),
                "experiment": config.tracking.experiment,
            },
        )
    tracker.log(
        params={
            **flatten(config_tree),
            "derived.labels": ",".join(data.labels),
            "derived.n_train": len(data.examples["train"]),
            "derived.n_validation": len(data.examples["validation"]),
            "derived.n_test": len(data.examples.get("test", [])),
        },
        tags={
            "cea.data_hash": data.dataset.content_hash(),
            "cea.config_hash": config.config_hash(),
            "cea.run_dir": str(run_dir.resolve()),
            "cea.task": f"{config.task.name}/{config.task.level}",
            "cea.backbone": config.model.backbone,
            "cea.git_sha": git_sha(),
            **{f"cea.version.{k}": v for k, v in _versions().items()},
        },
    )
    if config.tracking.log_examples:
        _log_examples(tracker, data.examples["train"][:20], run_dir)
        if inputs.train_dataset is not None:
            _log_augmented_examples(tracker, inputs.train_dataset)


def train_model(
    config: CeaConfig,
    model: Any,
    inputs: RunInputs,
    run_dir: Path,
    *,
    resume: bool,
    progress: ProgressSink,
    dist: Any,
    tracker: Tracker,
    should_stop: Any,
) -> Any:
    """The epochs (`cea.train.loop.fit`), with system metrics sampled while they run."""
    from cea.train.loop import fit

    monitor: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if tracker.run_id is not None and config.tracking.system_metrics:
        monitor = SystemMetrics(
            lambda m, i: tracker.log(metrics=m, step=i),
            config.tracking.system_metrics_interval_s,
            warn=lambda message: progress.event("warning", {"message": message}),
        )
    with monitor:
        return fit(
            model,
            config,
            train_features=inputs.feats["train"],
            val_features=inputs.feats["validation"],
            labels=inputs.data.labels,
            pair=config.task.pair,
            run_dir=run_dir,
            resume=resume,
            progress=progress,
            dist=dist,
            pad_id=inputs.pad_id,
            train_dataset=inputs.train_dataset,
            should_stop=should_stop,
            hardness=inputs.hardness,
        )


def final_evaluation(
    config: CeaConfig, model: Any, inputs: RunInputs, progress: ProgressSink
) -> tuple[Any, dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """Thresholds chosen on validation (`train.thresholds`), the metrics of validation and
    test at them: (ThresholdChoice with values rounded as stored, metrics per split, a
    sentence model's post answer, the final split's intervals)."""
    import numpy as np

    from cea.evaluate.calibration import apply_calibration, fit_calibration
    from cea.evaluate.metrics import (
        BOOT_SEED,
        N_BOOT,
        bootstrap_intervals,
        choose_thresholds,
        item_groups,
        score,
    )
    from cea.model.inference import predict

    pair = config.task.pair
    labels = inputs.data.labels
    device = next(model.parameters()).device

    def _pred(name: str) -> Any:
        return predict(
            model,
            inputs.feats[name],
            device=device,
            batch_size=config.train.eval_batch_size,
            pair=pair,
            n_outputs=1 if pair else len(labels),
            aggregate=config.model.chunking.aggregate,
            pad_id=inputs.pad_id,
        )

    raw_val = _pred("validation")
    # calibrated first (train.calibration; identity for "none"), then thresholded
    calibration = fit_calibration(
        raw_val.crit, raw_val.target, raw_val.prob, labels, config.train.calibration
    )
    val_pred = apply_calibration(raw_val, calibration, labels)
    choice = choose_thresholds(
        val_pred.crit, val_pred.target, val_pred.prob, labels,
        rule=config.train.thresholds, seed=config.seed,
        calibrated=config.train.calibration != "none",
    )  # fmt: skip
    # rounded as stored in cea_meta.json, so later evaluations reproduce these metrics exactly
    choice = replace(choice, values=np.round(choice.values, 6), calibration=calibration)
    metrics = {"validation": score(val_pred, labels, choice.values).to_dict()}
    test_pred = None
    if inputs.feats.get("test") is not None and len(inputs.feats["test"]):
        test_pred = apply_calibration(_pred("test"), calibration, labels)
        metrics["test"] = score(test_pred, labels, choice.values).to_dict()
    final, last = ("test", test_pred) if test_pred is not None else ("validation", val_pred)
    # the model's 95 % intervals on the final split, as `cea eval` computes them (same items,
    # resamples and seed): the baseline's verdict after training reads as it will in eval
    groups = item_groups(inputs.data.examples[final], 1 if pair else len(labels))
    intervals = {
        final: bootstrap_intervals(
            last.crit, last.target, last.prob, groups, choice.values, labels, N_BOOT, BOOT_SEED,
            draws=True,
        )
    }  # fmt: skip
    posts = None
    if config.task.level == "sentence" and not pair:  # one model, both tasks
        posts = _post_answer(config, inputs, val_pred, test_pred)
    if "test" not in metrics:  # said, recorded, and refused by the registry gate
        progress.event(
            "warning",
            {
                "message": "no test split: the final metrics are on validation, which chose "
                "the epoch and the thresholds (optimistic); the registry gate refuses this run"
            },
        )
    return choice, metrics, posts, intervals


def _post_answer(config: CeaConfig, inputs: RunInputs, val_pred: Any, test_pred: Any) -> Any:
    """A multi-label sentence model's criteria for whole posts: its calibrated sentence
    probabilities pooled per post (`task.post_pooling`), thresholds chosen on validation posts
    with the run's rule; the post metrics of validation and test at them."""
    import numpy as np

    from cea.evaluate.calibration import fit_calibration
    from cea.evaluate.metrics import (
        BOOT_SEED,
        N_BOOT,
        bootstrap_intervals,
        choose_thresholds,
        compute_metrics,
    )
    from cea.evaluate.posts import post_items

    labels, pooling = inputs.data.labels, config.task.post_pooling
    ds = inputs.data.dataset
    method = config.train.calibration
    calibration: dict[str, Any] | None = None

    def items(name: str, pred: Any) -> Any:
        ids = [e.post_id for e in inputs.data.examples[name]]
        return post_items(ds, labels, ids, pred.example_prob, pooling, calibration)

    val = items("validation", val_pred)
    if method != "none":  # pooled scores are not probabilities of the post: calibrated too
        calibration = fit_calibration(val.crit, val.target, val.prob, labels, method)
        val = items("validation", val_pred)
    choice = choose_thresholds(
        val.crit, val.target, val.prob, labels, rule=config.train.thresholds, seed=config.seed,
        calibrated=method != "none",
    )  # fmt: skip
    values = np.round(choice.values, 6)
    metrics = {
        "validation": compute_metrics(val.crit, val.target, val.prob, labels, values).to_dict()
    }
    final, last = "validation", val
    if test_pred is not None:
        final, last = "test", items("test", test_pred)
        metrics["test"] = compute_metrics(
            last.crit, last.target, last.prob, labels, values
        ).to_dict()
    intervals = bootstrap_intervals(
        last.crit, last.target, last.prob, last.groups, values, labels, N_BOOT, BOOT_SEED,
        draws=True,
    )  # fmt: skip
    return {
        "pooling": pooling,
        "calibration": calibration,
        "thresholds": {lab: float(t) for lab, t in zip(labels, values, strict=True)},
        "threshold_rules": choice.rules,
        "metrics": metrics,
        "intervals": {final: intervals},
    }


def run_meta(
    config: CeaConfig,
    inputs: RunInputs,
    result: Any,
    choice: Any,
    metrics: dict[str, Any],
    *,
    world_size: int,
    tracker: Tracker,
    posts: dict[str, Any] | None = None,
    intervals: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`cea_meta.json`: what the run is (labels, thresholds and their rules, encoding), how
    it went (metrics, history), and what it came from (hashes, versions, tracking)."""
    data = inputs.data
    final_split = "test" if "test" in metrics else "validation"
    meta = {
        "cea_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": config.task.model_dump(mode="json"),
        "labels": list(data.labels),
        "criteria": {lab: data.descriptions[lab] for lab in data.labels},
        "pair_encoding": config.task.pair,
        "max_length": config.model.max_length,
        "chunking": config.model.chunking.model_dump(mode="json"),
        "thresholds": {
            lab: float(round(t, 6)) for lab, t in zip(data.labels, choice.values, strict=True)
        },
        "threshold_rules": choice.rules,
        "calibration": choice.calibration,
        "metrics": metrics,
        # 95 % bootstrap over posts on the final split, with its macro-F1 draws (a later
        # paired comparison against the baseline on the same posts: `cea.evaluate.baseline`)
        "intervals": intervals or {},
        "final_split": final_split,
        "test_split": final_split == "test",
        "history": result.history,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "global_step": result.global_step,
        "early_stopping_metric": config.train.early_stopping.metric,
        "seed": config.seed,
        "world_size": world_size,
        "data_hash": data.dataset.content_hash(),
        "config_hash": config.config_hash(),
        "split_hashes": data.split.hashes(),
        "examples": {k: len(v) for k, v in data.examples.items()},
        "truncation": inputs.truncation(),
        "data_warnings": data.warnings,
        "backbone": {"name": inputs.backbone.name, "kind": inputs.backbone.kind},
        "versions": _versions(),
        "train_samples_per_s": round(result.train_samples / max(result.train_seconds, 1e-9), 2),
        "tracking": {"run_id": tracker.run_id, "experiment": config.tracking.experiment}
        if tracker.run_id
        else None,
        # which rule chose the kept epoch, what an epoch drew, the loss's class weights
        **result.extra,
    }
    if posts is not None:  # a multi-label sentence model's answer for posts (its criteria)
        meta["posts"] = posts
    return meta


def finish_run_folder(
    run_dir: Path,
    model: Any,
    inputs: RunInputs,
    meta: dict[str, Any],
    result: Any,
    tracker: Tracker,
) -> None:
    """The finished folder (model, meta, manifest last) and the final metrics, tags and
    artifacts in the tracker."""
    files = save_final_model(run_dir, model, inputs.tokenizer, meta)
    logged = final_metrics(meta["metrics"])
    if meta.get("posts"):  # a sentence model's criteria for whole posts: posts_test/macro_f1
        logged.update(final_metrics({f"posts_{k}": v for k, v in meta["posts"]["metrics"].items()}))
    tracker.log(metrics=logged, step=result.global_step)
    tracker.log(
        metrics={"final/best_epoch": result.best_epoch, "final/epochs_run": result.epochs_run},
        # what `cea register-model`'s promotion gate compares the weights with
        tags={"cea.final_split": meta["final_split"], "cea.weights_sha256": files[WEIGHTS_FILE]},
    )
    for name in (CONFIG_FILE, META_FILE, SPLIT_FILE, MANIFEST_NAME):
        tracker.log_artifact(run_dir / name, "run")


def run_training(
    config: CeaConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: ProgressSink | None = None,
    dist: Any = None,
    tracker: Tracker | None = None,
    should_stop: Any = None,
) -> TrainSummary:
    """Train, evaluate, write the run folder. `tracker` receives params, step/epoch/final
    metrics, system metrics, tags and artifacts (only ever redacted values). `should_stop()`
    returning a reason (a signal's name) stops training at the next step boundary with
    `Interrupted`; the last finished epoch's checkpoint stays the resume point.

    The main process holds the folder's lock (`cea.run_folder.lock_run_folder`) throughout: a
    second writer is refused (exit 2). A new run that fails before its first checkpoint
    leaves no half-made folder behind; `resume` of a folder without a checkpoint starts it
    again from its saved config and split."""
    from cea.train.loop import DistContext

    dist = dist or DistContext()
    if not dist.is_main:
        return _run_training(config, run_dir, resume, progress, dist, tracker, should_stop)
    existed = run_dir.exists()
    with lock_run_folder(run_dir):
        if is_finished(run_dir):
            raise UsageError(f"run {run_dir} is already complete; training outputs are immutable")
        if not resume and run_dir_contents(run_dir):
            raise UsageError(
                f"run folder {run_dir} already exists",
                hint="choose another output.run_name, or continue it with "
                "`cea train --resume RUN_DIR`",
            )
        try:
            return _run_training(config, run_dir, resume, progress, dist, tracker, should_stop)
        except KeyboardInterrupt as exc:  # a signal outside the loop's safe points
            reason = str(exc) or "interrupted"
            if _has_checkpoint(run_dir):
                raise Interrupted(
                    f"{reason}: training stopped; kept {run_dir / CHECKPOINTS_DIR / 'last'}",
                    hint=f"resume with `cea train --resume {run_dir}`",
                ) from None
            if resume:
                raise Interrupted(
                    f"{reason}: training stopped before its first checkpoint; {run_dir} "
                    "is as it was",
                    hint=f"start it again with `cea train --resume {run_dir}`",
                ) from None
            _discard(run_dir, existed)
            raise Interrupted(
                f"{reason}: training stopped before its first checkpoint; the half-made run "
                f"folder {run_dir} was removed",
                hint="start the run again",
            ) from None
        except BaseException as exc:
            if resume or _has_checkpoint(run_dir):
                raise
            _discard(run_dir, existed)  # no epoch finished: nothing in it is worth keeping
            if isinstance(exc, Interrupted):
                reason = str(exc).split(":", 1)[0]
                raise Interrupted(
                    f"{reason}: training stopped before its first checkpoint; the half-made "
                    f"run folder {run_dir} was removed",
                    hint="start the run again",
                ) from None
            raise


def _discard(run_dir: Path, existed: bool) -> None:
    if existed:
        _empty(run_dir)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)


def _has_checkpoint(run_dir: Path) -> bool:
    return resolve_checkpoint(run_dir / CHECKPOINTS_DIR / "last").is_dir()


def _empty(run_dir: Path) -> None:
    """Remove what a failed first attempt wrote into a folder that existed (empty) before."""
    for item in run_dir.iterdir():
        if item.name == LOCK_FILE:
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                item.unlink()


def _run_training(
    config: CeaConfig,
    run_dir: Path,
    resume: bool,
    progress: ProgressSink | None,
    dist: Any,
    tracker: Tracker | None,
    should_stop: Any,
) -> TrainSummary:
    tracker = tracker or NullTracker()
    progress = FanOut(progress or NullProgress(), TrackerSink(tracker))
    started = time.perf_counter()
    from_checkpoint = resume and _has_checkpoint(run_dir)  # else: resume starts it again
    split_file = run_dir / SPLIT_FILE
    inputs = load_inputs(
        config, split_override=split_file if resume and split_file.is_file() else None
    )
    config = inputs.data.config  # task.level "auto" resolved: what config.yaml records
    try:
        progress.event(
            "data",
            {
                "examples": {k: len(v) for k, v in inputs.data.examples.items()},
                "truncation": inputs.truncation(),
                "warnings": inputs.data.warnings,
            },
        )
        if dist.is_main and not resume:
            start_run_folder(config, run_dir, inputs, tracker)
        elif dist.is_main and not split_file.is_file():
            save_split(inputs.data.split, split_file)
        model = build_run_model(config, inputs)
        if from_checkpoint:
            from cea.train.checkpoint import check_fits

            last = resolve_checkpoint(run_dir / CHECKPOINTS_DIR / "last")
            check_fits(last, model, run_dir / CONFIG_FILE)
        with safe_points(should_stop):  # a signal in the loop stops at its next safe point
            result = train_model(
                config, model, inputs, run_dir, resume=from_checkpoint, progress=progress,
                dist=dist, tracker=tracker, should_stop=should_stop,
            )  # fmt: skip
        reason = should_stop() if should_stop is not None else None
        if reason:  # came during the last epoch's evaluation: its checkpoint is written
            raise Interrupted(
                f"{reason}: training stopped after its last epoch; kept "
                f"{run_dir / CHECKPOINTS_DIR / 'last'}",
                hint=f"finish it with `cea train --resume {run_dir}`",
            )
        choice, metrics, posts, intervals = final_evaluation(config, model, inputs, progress)
        meta = run_meta(
            config, inputs, result, choice, metrics, world_size=dist.world_size,
            tracker=tracker, posts=posts, intervals=intervals,
        )  # fmt: skip
        if dist.is_main:
            finish_run_folder(run_dir, model, inputs, meta, result, tracker)
    finally:
        inputs.release()
    progress.event(
        "done", {"run_dir": str(run_dir), "seconds": round(time.perf_counter() - started, 2)}
    )
    return TrainSummary(run_dir, meta)
