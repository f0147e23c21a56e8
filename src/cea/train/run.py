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
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from cea import __version__
from cea.config import CeaConfig
from cea.data.criteria import load_criteria
from cea.data.examples import Example, build_examples
from cea.data.readers import ensure_usable, load_dataset
from cea.data.schema import Dataset
from cea.data.splits import Split, load_split, make_split, save_split
from cea.errors import ConfigError, DataError, MissingResourceError, UsageError
from cea.progress import FanOut, NullProgress, ProgressSink
from cea.security.io import atomic_write_json, atomic_write_text, move_tree_atomically
from cea.security.manifest import MANIFEST_NAME, write_manifest
from cea.security.paths import safe_name
from cea.tracking.base import NullTracker, Tracker, TrackerSink
from cea.tracking.redact import flatten, redact_mapping, redact_text
from cea.tracking.system import SystemMetrics

META_FILE = "cea_meta.json"
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.json"
TRACKING_FILE = "tracking.json"
WEIGHTS_FILE = "model.safetensors"  # the best weights, at the root of a finished run


@dataclass(frozen=True)
class PreparedData:
    dataset: Dataset
    split: Split
    labels: tuple[str, ...]
    descriptions: dict[str, str]
    examples: dict[str, list[Example]]  # split name -> examples
    warnings: int


@dataclass(frozen=True)
class TrainSummary:
    run_dir: Path
    meta: dict[str, Any]


def prepare_data(config: CeaConfig, *, split_override: Path | None = None) -> PreparedData:
    criteria = load_criteria(config.data.criteria_file)
    all_labels = tuple(criteria)
    labels = tuple(config.task.labels) if config.task.labels else all_labels
    unknown = [lab for lab in labels if lab not in criteria]
    if unknown:
        raise ConfigError(f"task.labels: unknown criteria {', '.join(unknown)}")
    bad = sorted(v for v in config.data.label_aliases.values() if v not in criteria)
    if bad:
        raise ConfigError(f"data.label_aliases: unknown criteria {', '.join(bad)}")
    result = load_dataset(
        config.data.format, config.data.path, all_labels, aliases=config.data.label_aliases
    )
    ensure_usable(result, strict=config.data.strict)
    ds = result.dataset
    if config.task.level == "sentence" and ds.format != "redsm5":
        raise ConfigError("task.level=sentence needs sentence annotations (the redsm5 format)")
    split_path = split_override or (
        Path(config.data.split_file) if config.data.split_file else None
    )
    split = (
        load_split(split_path, ds)
        if split_path
        else make_split(ds, config.data.split.model_dump(), config.seed)
    )
    examples: dict[str, list[Example]] = {}
    for name, gids in split.groups.items():
        examples[name] = build_examples(
            ds,
            level=config.task.level,
            labels=labels,
            negatives=config.task.negatives,
            groups=set(gids),
            encoding=config.task.encoding,
        )
    for name in ("train", "validation"):
        if not examples.get(name):
            raise DataError(
                f"the {name} split has no examples for task {config.task.name}/{config.task.level}"
            )
    return PreparedData(ds, split, labels, criteria, examples, len(result.warnings))


def featurize_kwargs(config: CeaConfig, data: PreparedData) -> dict[str, Any]:
    """How this run's examples become model inputs (`cea.train.features.featurize`)."""
    ch = config.model.chunking
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


def new_run_dir(config: CeaConfig) -> Path:
    runs = Path(config.output.runs_dir)
    name = config.output.run_name or (
        f"{config.task.name}-{config.task.level}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    )
    run_dir = runs / safe_name(name, what="run name")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(
            f"run folder {run_dir} already exists",
            hint="choose another output.run_name, or continue it with `cea train --resume RUN_DIR`",
        )
    return run_dir


def saved_config(run_dir: Path) -> CeaConfig:
    """The resolved config a run saved (finished or not)."""
    path = run_dir / CONFIG_FILE
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: unreadable run config ({exc.__class__.__name__})") from exc
    return CeaConfig.model_validate(tree)


def read_run_config(run_dir: Path) -> CeaConfig:
    path = run_dir / CONFIG_FILE
    if not run_dir.exists():
        raise MissingResourceError(f"run folder {run_dir} not found")
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a cea run folder (no {CONFIG_FILE})")
    if (run_dir / MANIFEST_NAME).is_file():
        raise UsageError(f"run {run_dir} is already complete; training outputs are immutable")
    from cea.train.checkpoint import resolve_checkpoint

    if not resolve_checkpoint(run_dir / "checkpoints" / "last").is_dir():
        raise UsageError(f"run {run_dir} has no checkpoint to resume from (checkpoints/last)")
    return saved_config(run_dir)


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
    `Interrupted`; the last finished epoch's checkpoint stays the resume point."""
    import numpy as np

    from cea.evaluate.metrics import choose_thresholds
    from cea.model.backbone import resolve_backbone
    from cea.model.build import build_model, load_tokenizer
    from cea.train.features import featurize
    from cea.train.loop import DistContext, fit, predict, score, seed_everything

    tracker = tracker or NullTracker()
    progress = FanOut(progress or NullProgress(), TrackerSink(tracker))
    dist = dist or DistContext()
    started = time.perf_counter()
    split_file = run_dir / SPLIT_FILE if resume else None
    data = prepare_data(config, split_override=split_file)
    pair = config.task.pair
    seed_everything(config.seed)
    # "tiny" is built in a temporary folder (deterministic per seed) and removed at the end
    backbone = resolve_backbone(config.model.backbone, seed=config.seed)
    tokenizer = load_tokenizer(backbone)
    ch = config.model.chunking
    feat_kwargs = featurize_kwargs(config, data)
    feats = {name: featurize(exs, tokenizer, **feat_kwargs) for name, exs in data.examples.items()}
    train_dataset = None
    if config.augment.enabled:  # the training split only; validation and test stay as they are
        train_dataset = _augmented_dataset(config, data, tokenizer, feats["train"], feat_kwargs)
    truncation = {
        name: {
            "examples": f.n_examples,
            "rows": len(f),
            "chunked": f.chunked_examples,
            "truncated": f.truncated_examples,
            "truncated_share": round(f.truncated_examples / max(f.n_examples, 1), 4),
        }
        for name, f in feats.items()
    }
    progress.event(
        "data",
        {
            "examples": {k: len(v) for k, v in data.examples.items()},
            "truncation": truncation,
            "warnings": data.warnings,
        },
    )
    saved_config = redact_mapping(config.model_dump(mode="json"))  # no secret reaches a file
    if dist.is_main and not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(saved_config, sort_keys=False))
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
                **flatten(saved_config),
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
            if train_dataset is not None:
                _log_augmented_examples(tracker, train_dataset)
    seed_everything(config.seed)
    model = build_model(backbone, labels=data.labels, pair=pair, dropout=config.model.dropout)
    pad_id = int(tokenizer.pad_token_id or 0)
    monitor: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if tracker.run_id is not None and config.tracking.system_metrics:
        monitor = SystemMetrics(
            lambda m, i: tracker.log(metrics=m, step=i),
            config.tracking.system_metrics_interval_s,
            warn=lambda message: progress.event("warning", {"message": message}),
        )
    with monitor:
        result = fit(
            model,
            config,
            train_features=feats["train"],
            val_features=feats["validation"],
            labels=data.labels,
            pair=pair,
            run_dir=run_dir,
            resume=resume,
            progress=progress,
            dist=dist,
            pad_id=pad_id,
            train_dataset=train_dataset,
            should_stop=should_stop,
        )

    # ---- final evaluation: thresholds tuned on validation, applied to test --------------------
    device = next(model.parameters()).device
    n_out = 1 if pair else len(data.labels)

    def _pred(name: str) -> Any:
        return predict(
            model,
            feats[name],
            device=device,
            batch_size=config.train.eval_batch_size,
            pair=pair,
            n_outputs=n_out,
            aggregate=ch.aggregate,
            pad_id=pad_id,
        )

    val_pred = _pred("validation")
    choice = choose_thresholds(
        val_pred.crit,
        val_pred.target,
        val_pred.prob,
        data.labels,
        rule=config.train.thresholds,
        seed=config.seed,
    )
    # rounded as stored in cea_meta.json, so later evaluations reproduce these metrics exactly
    thresholds = np.round(choice.values, 6)
    metrics = {"validation": score(val_pred, data.labels, thresholds).to_dict()}
    if feats.get("test") is not None and len(feats["test"]):
        metrics["test"] = score(_pred("test"), data.labels, thresholds).to_dict()
    final_split = "test" if "test" in metrics else "validation"
    if final_split != "test":  # said, recorded, and refused by the registry gate
        progress.event(
            "warning",
            {
                "message": "no test split: the final metrics are on validation, which chose "
                "the epoch and the thresholds (optimistic); the registry gate refuses this run"
            },
        )
    meta: dict[str, Any] = {
        "cea_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": config.task.model_dump(mode="json"),
        "labels": list(data.labels),
        "criteria": {lab: data.descriptions[lab] for lab in data.labels},
        "pair_encoding": pair,
        "max_length": config.model.max_length,
        "chunking": ch.model_dump(mode="json"),
        "thresholds": {
            lab: float(round(t, 6)) for lab, t in zip(data.labels, thresholds, strict=True)
        },
        "threshold_rules": choice.rules,
        "metrics": metrics,
        "final_split": final_split,
        "test_split": final_split == "test",
        "history": result.history,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "global_step": result.global_step,
        "early_stopping_metric": config.train.early_stopping.metric,
        "seed": config.seed,
        "world_size": dist.world_size,
        "data_hash": data.dataset.content_hash(),
        "config_hash": config.config_hash(),
        "split_hashes": data.split.hashes(),
        "examples": {k: len(v) for k, v in data.examples.items()},
        "truncation": truncation,
        "data_warnings": data.warnings,
        "backbone": {"name": backbone.name, "kind": backbone.kind},
        "versions": _versions(),
        "train_samples_per_s": round(result.train_samples / max(result.train_seconds, 1e-9), 2),
        "tracking": {"run_id": tracker.run_id, "experiment": config.tracking.experiment}
        if tracker.run_id
        else None,
    }
    if dist.is_main:
        stage = run_dir / ".final"
        if stage.exists():
            shutil.rmtree(stage)
        model.save_pretrained(str(stage))
        limit = getattr(model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and not 0 < int(tokenizer.model_max_length) <= limit:
            tokenizer.model_max_length = limit  # plain transformers truncation works on it
        tokenizer.save_pretrained(str(stage))
        move_tree_atomically(stage, run_dir)
        shutil.rmtree(stage, ignore_errors=True)
        atomic_write_json(run_dir / META_FILE, meta, sort_keys=False)  # label order matters
        files = write_manifest(run_dir)
        tracker.log(metrics=final_metrics(metrics), step=result.global_step)
        tracker.log(
            metrics={"final/best_epoch": result.best_epoch, "final/epochs_run": result.epochs_run},
            # what `cea register-model`'s promotion gate compares the weights with
            tags={"cea.final_split": final_split, "cea.weights_sha256": files[WEIGHTS_FILE]},
        )
        for name in (CONFIG_FILE, META_FILE, SPLIT_FILE, MANIFEST_NAME):
            tracker.log_artifact(run_dir / name, "run")
    if backbone.kind == "tiny":
        shutil.rmtree(backbone.path, ignore_errors=True)
    progress.event(
        "done", {"run_dir": str(run_dir), "seconds": round(time.perf_counter() - started, 2)}
    )
    return TrainSummary(run_dir, meta)
