"""The run folder: its layout, and how a run is saved, verified and loaded.

One module owns the layout so training, evaluation, tracking and the registry agree on it:

    RUN_DIR/
      model.safetensors, config.json, tokenizer files   the best model (root; plain transformers)
      cea_meta.json      labels, thresholds, metrics, hashes, versions (META_FILE)
      config.yaml        the resolved config, secrets redacted (CONFIG_FILE)
      split.json         the split, by post id (SPLIT_FILE)
      tracking.json      the MLflow run to resume (TRACKING_FILE; tracked runs only)
      manifest.json      sha256 of every file (written last: a run with one is finished)
      checkpoints/last/  resume state; checkpoints/best/ the best weights so far
      eval/              evaluations (not in the manifest)

Nothing in a finished folder is loaded before `verify_run_folder` (manifest + artifact scan)
passes, and the model is built from the verified bytes, never from the file read again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cea.config import CeaConfig
from cea.errors import IntegrityError, MissingResourceError, UsageError
from cea.security.io import atomic_write_json, move_tree_atomically
from cea.security.manifest import MANIFEST_NAME, write_manifest
from cea.security.paths import safe_name

META_FILE = "cea_meta.json"
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.json"
TRACKING_FILE = "tracking.json"
WEIGHTS_FILE = "model.safetensors"  # the best weights, at the root of a finished run
CHECKPOINTS_DIR = "checkpoints"
EVAL_DIR = "eval"

__all__ = [
    "CONFIG_FILE",
    "EVAL_DIR",
    "MANIFEST_NAME",
    "META_FILE",
    "SPLIT_FILE",
    "TRACKING_FILE",
    "WEIGHTS_FILE",
    "LoadedModel",
    "is_finished",
    "load_run_model",
    "new_run_dir",
    "read_run_config",
    "recorded_tracking",
    "resolve_checkpoint",
    "save_final_model",
    "saved_config",
    "verify_run_folder",
]


def is_finished(run_dir: Path) -> bool:
    """A run folder with a manifest is complete and never modified by training again."""
    return (run_dir / MANIFEST_NAME).is_file()


def resolve_checkpoint(folder: Path) -> Path:
    """A checkpoint folder, or the previous one if a crash came between the two renames."""
    old = folder.parent / f".{folder.name}.old"
    return old if not folder.exists() and old.is_dir() else folder


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
    if not resolve_checkpoint(run_dir / CHECKPOINTS_DIR / "last").is_dir():
        raise UsageError(f"run {run_dir} has no checkpoint to resume from (checkpoints/last)")
    return saved_config(run_dir)


def recorded_tracking(run_dir: Path) -> dict[str, Any]:
    """What training recorded in the run's tracking.json ({} for an untracked run)."""
    path = run_dir / TRACKING_FILE
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}


def save_final_model(
    run_dir: Path, model: Any, tokenizer: Any, meta: dict[str, Any]
) -> dict[str, str]:
    """Write the finished run: the model and tokenizer at the root (staged, moved in
    atomically), `cea_meta.json`, then the manifest last. Returns the manifest's hashes."""
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
    return write_manifest(run_dir)


@dataclass
class LoadedModel:
    run_dir: Path
    meta: dict[str, Any]
    model: Any
    tokenizer: Any
    labels: tuple[str, ...]
    thresholds: np.ndarray
    pair: bool
    batch_size: int = 64  # examples per forward pass

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def sentence_level(self) -> bool:
        """An evidence model: sentence inputs (pair or multi-label encoding)."""
        return bool(self.pair or self.meta.get("task", {}).get("level") == "sentence")

    @property
    def descriptions(self) -> dict[str, str]:
        return dict(self.meta["criteria"])


def verify_run_folder(run_dir: Path) -> dict[str, Any]:
    """Manifest + artifact scan of a finished run folder; its `cea_meta.json` when both pass.
    Nothing in the folder is loaded before this returns."""
    from cea.security.artifacts import failing, scan_path
    from cea.security.manifest import verify_manifest

    meta_path = run_dir / META_FILE
    if not run_dir.exists():
        raise MissingResourceError(f"run folder {run_dir} not found")
    if not meta_path.is_file() or not (run_dir / MANIFEST_NAME).is_file():
        raise UsageError(
            f"{run_dir} is not a finished cea run folder (cea_meta.json, manifest.json)"
        )
    verify_manifest(run_dir, exclude_dirs=(EVAL_DIR,))
    _, found, _ = scan_path([p for p in run_dir.iterdir() if p.is_file()])
    findings = failing(found)  # (low/info notes such as an unusual extension do not refuse)
    if findings:
        raise IntegrityError(
            f"{run_dir}: refused by the artifact scan ({findings[0].id}: {findings[0].message})"
        )
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    return meta


def load_run_model(run_dir: Path, *, device: str = "auto", batch_size: int = 64) -> LoadedModel:
    """Verify the run folder (manifest + artifact scan) before anything in it is loaded; the
    model goes to `device` (auto: CUDA when present)."""
    from cea.model.build import load_trained
    from cea.model.inference import inference_device  # torch: only when a model is loaded
    from cea.security.io import sha256_bytes

    target = inference_device(device)
    try:  # the hashes as they were before the check (a later swap of both is caught below)
        recorded = json.loads((run_dir / MANIFEST_NAME).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = {}  # verify_run_folder says what is wrong
    meta = verify_run_folder(run_dir)
    weights = (run_dir / WEIGHTS_FILE).read_bytes()
    if not isinstance(recorded, dict) or sha256_bytes(weights) != recorded.get(WEIGHTS_FILE):
        raise IntegrityError(f"{run_dir / WEIGHTS_FILE}: changed after it was verified; not loaded")
    model, tokenizer = load_trained(run_dir, weights)
    model.to(target)
    labels = tuple(meta["labels"])
    thresholds = np.array([meta["thresholds"][lab] for lab in labels], dtype=np.float64)
    return LoadedModel(
        run_dir, meta, model, tokenizer, labels, thresholds, bool(meta["pair_encoding"]),
        batch_size,
    )  # fmt: skip
