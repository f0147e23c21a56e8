"""The run folder: its layout, and how a run is saved, verified and loaded.

One module owns the layout so training, evaluation, tracking and the registry agree on it:

    RUN_DIR/
      model.safetensors, config.json, tokenizer files   the best model (root; plain transformers)
      cea_meta.json      labels, thresholds, metrics, hashes, versions (META_FILE)
      config.yaml        the resolved config, secrets redacted (CONFIG_FILE)
      split.json         the split, by post id (SPLIT_FILE)
      tracking.json      the MLflow run to resume (TRACKING_FILE; tracked runs only)
      manifest.json      sha256 of every file (written last: a run with one is finished)
      .cea-lock          pid and host of the one process writing the folder (LOCK_FILE)
      checkpoints/last/  resume state; checkpoints/best/ the best weights so far
      eval/              evaluations (not in the manifest)

Nothing in a finished folder is loaded before `verify_run_folder` (manifest + artifact scan)
passes, and the model is built from the verified bytes, never from the file read again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cea.config import CeaConfig
from cea.errors import ConfigError, IntegrityError, MissingResourceError, UsageError
from cea.security.io import atomic_write_json, move_tree_atomically
from cea.security.manifest import MANIFEST_NAME, write_manifest
from cea.security.paths import safe_name

META_FILE = "cea_meta.json"
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.json"
TRACKING_FILE = "tracking.json"
WEIGHTS_FILE = "model.safetensors"  # the best weights, at the root of a finished run
LOCK_FILE = ".cea-lock"  # hidden: never in the manifest
CHECKPOINTS_DIR = "checkpoints"
EVAL_DIR = "eval"

__all__ = [
    "CONFIG_FILE",
    "EVAL_DIR",
    "LOCK_FILE",
    "MANIFEST_NAME",
    "META_FILE",
    "SPLIT_FILE",
    "TRACKING_FILE",
    "WEIGHTS_FILE",
    "LoadedModel",
    "is_finished",
    "load_run_model",
    "lock_run_folder",
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


# ---- one writer per run folder --------------------------------------------------------------

_HELD: dict[str, list[int]] = {}  # resolved lock path -> [fd, depth] held by this process


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OSError, ValueError, OverflowError):
        return False
    return True


def _holder(path: Path) -> dict[str, Any]:
    """What a lock file says about its holder ({} when it is empty or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _in_use(run_dir: Path, holder: dict[str, Any]) -> UsageError:
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    started = f" since {holder['started']}" if holder.get("started") else ""
    return UsageError(
        f"run folder {run_dir} is in use by {who}{started}",
        hint="wait for that process to finish, or choose another --run-name; if it is gone "
        f"(another host), delete {run_dir / LOCK_FILE}",
    )


@contextmanager
def lock_run_folder(run_dir: Path) -> Iterator[Path]:
    """Hold `run_dir` as its one writer: `.cea-lock` holds our pid and host, under an
    exclusive `flock` that the kernel drops when the process dies. A second writer gets
    `UsageError` (exit 2) naming the holder. A lock whose holder is gone (flock free, or its
    pid dead on this host) is taken over. Re-entrant within one process; released (file
    removed) on exit. Creates `run_dir` if needed."""
    import errno
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield path
        finally:
            _HELD[key][1] -= 1
        return
    host = socket.gethostname()
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    # no flock on this file system: the pid in the file decides
                    holder = _holder(path)
                    got = not holder or (
                        holder.get("host") == host and not _pid_alive(int(holder.get("pid", 0)))
                    )
                else:
                    got = False
            if not got:
                raise _in_use(run_dir, _holder(path))
            try:  # the file we locked must still be the one at the path (not unlinked)
                same = os.fstat(fd).st_ino == path.stat().st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            holder = _holder(path)
            other_host = holder.get("host") not in (None, host)
            if other_host and holder.get("pid"):  # a network disk: that host's process decides
                raise _in_use(run_dir, holder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        break
    else:  # pragma: no cover - the file kept being replaced under us
        raise _in_use(run_dir, _holder(path))
    record = {
        "pid": os.getpid(),
        "host": host,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
    _HELD[key] = [fd, 1]
    try:
        yield path
    finally:
        _HELD.pop(key, None)
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == path.stat().st_ino:
                path.unlink()
        with contextlib.suppress(OSError):
            os.close(fd)


def run_dir_contents(run_dir: Path) -> list[str]:
    """The names in a run folder other than its lock file."""
    try:
        return sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_FILE)
    except FileNotFoundError:
        return []


def new_run_dir(config: CeaConfig) -> Path:
    runs = Path(config.output.runs_dir)
    name = config.output.run_name or (
        f"{config.task.name}-{config.task.level}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    )
    run_dir = runs / safe_name(name, what="run name")
    holder = _holder(run_dir / LOCK_FILE)
    if holder and _held_by_other(run_dir):
        raise _in_use(run_dir, holder)
    if run_dir.exists() and run_dir_contents(run_dir):
        raise UsageError(
            f"run folder {run_dir} already exists",
            hint="choose another output.run_name, or continue it with `cea train --resume RUN_DIR`",
        )
    return run_dir


def _held_by_other(run_dir: Path) -> bool:
    """Whether another live process holds the run folder's lock (checked without taking it)."""
    import fcntl

    path = run_dir / LOCK_FILE
    if str(path.resolve()) in _HELD:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def saved_config(run_dir: Path) -> CeaConfig:
    """The resolved config a run saved (finished or not)."""
    from pydantic import ValidationError

    from cea.config import safe_load_yaml

    path = run_dir / CONFIG_FILE
    hint = "the run's saved config was changed or damaged; start a new run instead"
    try:
        tree = safe_load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(
            f"{path}: unreadable run config ({exc.__class__.__name__})", hint=hint
        ) from exc
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", hint=hint) from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the run config is empty or not a mapping", hint=hint)
    try:
        return CeaConfig.model_validate(tree)
    except (ValidationError, RecursionError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) if first else ""
        what = f"{where}: {first['msg']}" if first else "too deeply nested"
        raise ConfigError(f"{path}: invalid run config ({what})", hint=hint) from exc


def read_run_config(run_dir: Path) -> CeaConfig:
    path = run_dir / CONFIG_FILE
    if not run_dir.exists():
        raise MissingResourceError(f"run folder {run_dir} not found")
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a cea run folder (no {CONFIG_FILE})")
    if (run_dir / MANIFEST_NAME).is_file():
        raise UsageError(f"run {run_dir} is already complete; training outputs are immutable")
    # no checkpoints/last (it failed or was killed before its first epoch ended): the run
    # starts again from its saved config and split
    return saved_config(run_dir)


def recorded_tracking(run_dir: Path) -> dict[str, Any]:
    """What training recorded in the run's tracking.json ({} for an untracked run)."""
    path = run_dir / TRACKING_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(
            f"{path}: unreadable ({exc.__class__.__name__})",
            hint="delete it to track the resumed run as a new MLflow run, or give --no-track",
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("run_id", ""), str | None):
        raise ConfigError(
            f"{path}: not a tracking record (a JSON object with run_id)",
            hint="delete it to track the resumed run as a new MLflow run, or give --no-track",
        )
    return dict(data)


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
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IntegrityError(f"{meta_path}: not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(meta, dict):
        raise IntegrityError(f"{meta_path}: not a JSON object")
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
    try:
        labels = tuple(str(lab) for lab in meta["labels"])
        thresholds = np.array([float(meta["thresholds"][lab]) for lab in labels], dtype=np.float64)
        pair = bool(meta["pair_encoding"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(
            f"{run_dir / META_FILE}: labels, thresholds or pair_encoding missing or malformed "
            f"({exc.__class__.__name__}: {exc})"
        ) from exc
    expected = 1 if pair else len(labels)
    if int(getattr(model.config, "num_labels", expected)) != expected:
        raise IntegrityError(
            f"{run_dir / 'config.json'}: num_labels {model.config.num_labels} does not match "
            f"the {expected} output(s) {META_FILE} describes"
        )
    model.to(target)
    return LoadedModel(
        run_dir, meta, model, tokenizer, labels, thresholds, pair, batch_size,
    )  # fmt: skip
