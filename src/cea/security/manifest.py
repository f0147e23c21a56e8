"""`manifest.json`: the sha256 of every file a command wrote into its folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cea.errors import IntegrityError
from cea.security.io import atomic_write_json, sha256_file

MANIFEST_NAME = "manifest.json"


def build_manifest(root: Path, *, exclude_dirs: tuple[str, ...] = ()) -> dict[str, str]:
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == MANIFEST_NAME:
            continue
        rel = path.relative_to(root)
        if rel.parts[0] in exclude_dirs or any(part.startswith(".") for part in rel.parts):
            continue
        files[rel.as_posix()] = sha256_file(path)
    return files


def write_manifest(root: Path, *, exclude_dirs: tuple[str, ...] = ()) -> dict[str, str]:
    files = build_manifest(root, exclude_dirs=exclude_dirs)
    atomic_write_json(root / MANIFEST_NAME, {"algorithm": "sha256", "files": files})
    return files


@dataclass(frozen=True)
class ManifestCheck:
    changed: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)


def check_manifest(root: Path, *, exclude_dirs: tuple[str, ...] = ()) -> ManifestCheck:
    path = root / MANIFEST_NAME
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path}: unreadable manifest ({exc.__class__.__name__})") from exc
    actual = build_manifest(root, exclude_dirs=exclude_dirs)
    changed = tuple(sorted(k for k in recorded if k in actual and actual[k] != recorded[k]))
    missing = tuple(sorted(k for k in recorded if k not in actual))
    extra = tuple(sorted(k for k in actual if k not in recorded))
    return ManifestCheck(changed=changed, missing=missing, extra=extra)


def verify_manifest(root: Path, *, exclude_dirs: tuple[str, ...] = ()) -> None:
    result = check_manifest(root, exclude_dirs=exclude_dirs)
    if not result.ok:
        parts = []
        for label, names in (
            ("changed", result.changed),
            ("missing", result.missing),
            ("extra", result.extra),
        ):
            if names:
                parts.append(f"{label}: {', '.join(names[:5])}")
        raise IntegrityError(f"{root}: manifest mismatch ({'; '.join(parts)})")
