"""HMAC-signed cache entries: a pickle/joblib file is loaded only after its HMAC verifies.

Each entry `NAME` has a sidecar `NAME.hmac` (JSON: algorithm, hex digest). The key lives in a
0600 file in the user's config folder (the CLI finds it; the core gets the bytes). A folder
holding a `.cea-cache` marker is a cache: every pickle in it must verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from cea.errors import IntegrityError
from cea.security.io import atomic_write_bytes, atomic_write_json

SIDE = ".hmac"
CACHE_MARKER = ".cea-cache"


def load_or_create_key(path: Path) -> bytes:
    """Read the key, creating a random one (0600) on first use; refuse a key others can read."""
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise IntegrityError(
                f"{path}: cache key is readable by others (mode {mode:o})", hint=f"chmod 600 {path}"
            )
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def digest(path: Path, key: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            mac.update(block)
    return mac.hexdigest()


def sign(path: Path, key: bytes) -> None:
    atomic_write_json(
        path.with_name(path.name + SIDE), {"algorithm": "hmac-sha256", "digest": digest(path, key)}
    )


def verify(path: Path, key: bytes) -> bool:
    side = path.with_name(path.name + SIDE)
    try:
        recorded = json.loads(side.read_text(encoding="utf-8"))
        expected = str(recorded["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return hmac.compare_digest(expected, digest(path, key))


def mark_cache(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / CACHE_MARKER
    if not marker.exists():
        atomic_write_bytes(marker, b"cea cache: every entry is HMAC-signed\n")
