"""Resume state: weights as safetensors, the rest in `trainer_state.pt` loadable with
`torch.load(..., weights_only=True)` (tensors and plain containers only: numpy's RNG state is
stored as a list of ints, never as an ndarray object).

A checkpoint folder is written next to its final place and renamed into it, so a crash leaves
either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from cea.errors import IntegrityError
from cea.run_folder import WEIGHTS_FILE
from cea.security.io import sha256_bytes, sha256_file

STATE_FILE = "trainer_state.pt"
HASH_FILE = "checkpoint.json"  # sha256 of trainer_state.pt and of the weights
FORMAT_VERSION = 1


def capture_rng() -> dict[str, Any]:
    py = random.getstate()
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            str(np_state[0]),
            [int(x) for x in np_state[1]],
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((int(py[0]), tuple(int(x) for x in py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(
        (kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached))
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def state_dict_for_save(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors with shared storage broken (safetensors refuses shared tensors)."""
    out: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}
    for name, tensor in model.state_dict().items():
        ptr = tensor.data_ptr()
        if ptr in seen:  # tied weights: store once, HF re-ties on load
            continue
        seen[ptr] = name
        out[name] = tensor.detach().to("cpu").contiguous().clone()
    return out


def _staging(folder: Path) -> Path:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def _swap_in(tmp: Path, folder: Path) -> None:
    """fsync the staged files, then replace `folder` by `tmp` with renames.

    A crash between the two renames leaves `.NAME.old` and no `NAME`: `resolve_checkpoint`
    falls back to it, so there is always one complete checkpoint.
    """
    for item in tmp.iterdir():
        with item.open("rb") as fh:
            os.fsync(fh.fileno())
    old = folder.parent / f".{folder.name}.old"
    if old.exists() and folder.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    if old.exists():
        shutil.rmtree(old)


def _torch_save(obj: Any, path: Path, shown: Path) -> None:
    """`torch.save`, whose writer reports a full disk as a RuntimeError with no errno
    ("file write failed"): that becomes the OSError it is, naming `shown` (the file's
    place once written, not its staging folder)."""
    import errno

    try:
        torch.save(obj, path)
    except RuntimeError as exc:
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError:
            free = 0
        if free < (1 << 20) or "write failed" in str(exc):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(shown)) from exc
        from cea.errors import RuntimeFailure

        raise RuntimeFailure(
            f"{shown}: could not be written ({str(exc).splitlines()[0][:160]})",
            hint="check the disk holding the run folder; nothing half-written was kept",
        ) from exc


def save_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    trainer: dict[str, Any],
    scaler: Any | None = None,
) -> None:
    tmp = _staging(folder)
    try:
        save_file(state_dict_for_save(model), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        weights_sha = sha256_file(tmp / WEIGHTS_FILE)
        state = {
            "format_version": FORMAT_VERSION,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": capture_rng(),
            "trainer": trainer,
            "weights_sha256": weights_sha,
        }
        _torch_save(state, tmp / STATE_FILE, folder / STATE_FILE)
        (tmp / HASH_FILE).write_text(
            json.dumps(
                {
                    "format_version": FORMAT_VERSION,
                    "trainer_state_sha256": sha256_file(tmp / STATE_FILE),
                    "weights_sha256": weights_sha,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        _swap_in(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk leaves no half checkpoint behind
        raise


def save_weights(folder: Path, model: torch.nn.Module) -> None:
    """Weights only (the best model so far), same atomic folder swap."""
    tmp = _staging(folder)
    try:
        save_file(state_dict_for_save(model), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        _swap_in(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_weights(folder: Path, model: torch.nn.Module) -> None:
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except Exception as exc:  # safetensors raises its own error types on malformed headers
        raise IntegrityError(
            f"{folder / WEIGHTS_FILE}: not a valid safetensors file ({exc.__class__.__name__})"
        ) from exc
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = {k for k in missing if k.endswith("decoder.weight") or k.endswith("lm_head.weight")}
    if set(missing) - tied or unexpected:
        raise IntegrityError(
            f"{folder / WEIGHTS_FILE}: weights do not match the model ({len(missing)} missing, {len(unexpected)} unexpected)"
        )


def check_fits(folder: Path, model: torch.nn.Module, config_file: Path) -> None:
    """Before resuming: the checkpoint's tensors must have the names and shapes of the model
    the run's saved config builds (else the config was edited after the run started)."""
    from safetensors import safe_open

    from cea.errors import ConfigError

    try:
        with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as fh:
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    except FileNotFoundError as exc:
        raise IntegrityError(f"{folder / WEIGHTS_FILE}: missing") from exc
    except Exception as exc:  # safetensors' own errors on a malformed header
        raise IntegrityError(
            f"{folder / WEIGHTS_FILE}: not a valid safetensors file ({exc.__class__.__name__})"
        ) from exc
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = sorted(k for k, shape in shapes.items() if k in own and own[k] != shape)
    unknown = sorted(k for k in shapes if k not in own)
    if wrong or unknown:
        first = wrong[0] if wrong else unknown[0]
        detail = (
            f"{first} is {list(shapes[first])} there, {list(own[first])} here"
            if wrong
            else f"{first} is not in the model"
        )
        raise ConfigError(
            f"{config_file} no longer fits the checkpoint {folder} ({detail}; "
            f"{len(wrong) + len(unknown)} tensor(s) differ)",
            hint="the saved config was edited after the run started (labels, backbone, "
            "task); restore it, or start a new run",
        )


def load_trainer_state(folder: Path) -> dict[str, Any]:
    """Check `trainer_state.pt` against the sha256 recorded beside it, then load those very
    bytes with weights_only=True, and check they belong to these weights."""
    path = folder / STATE_FILE
    try:
        recorded = json.loads((folder / HASH_FILE).read_text(encoding="utf-8"))
        expected = str(recorded["trainer_state_sha256"])
    except FileNotFoundError as exc:
        raise IntegrityError(
            f"{folder / HASH_FILE}: missing, so {STATE_FILE} cannot be verified",
            hint="the checkpoint is incomplete or from an older cea; start the run again",
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"{folder / HASH_FILE}: unreadable ({exc.__class__.__name__})"
        ) from exc
    try:
        blob = path.read_bytes()
    except FileNotFoundError as exc:
        raise IntegrityError(f"{path}: missing") from exc
    if sha256_bytes(blob) != expected:
        raise IntegrityError(
            f"{path}: does not match the sha256 recorded in {HASH_FILE}; refused, not loaded",
            hint="the resume state was changed or damaged; resume from an intact copy or start again",
        )
    try:
        state: dict[str, Any] = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling error means a forbidden global or a corrupt file
        raise IntegrityError(
            f"{path}: refused by weights-only loading ({exc.__class__.__name__})",
            hint="the file is corrupt or holds objects other than tensors and plain containers",
        ) from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise IntegrityError(f"{path}: unknown trainer state format")
    if state.get("weights_sha256") != sha256_file(folder / WEIGHTS_FILE):
        raise IntegrityError(
            f"{folder / WEIGHTS_FILE}: does not match the sha256 recorded in {STATE_FILE}"
        )
    return state
