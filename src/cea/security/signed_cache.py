"""HMAC-signed cache entries: a pickle/joblib file is loaded only after its HMAC verifies, and
from the very bytes that were verified (read once, checked, then deserialised from memory — a
file swapped between the check and the load is never read).

Each entry `NAME` has a sidecar `NAME.hmac` (JSON: algorithm, entry name, hex digest). The MAC
covers the entry's name and its bytes, so a signed entry copied under another name (another
cache key) does not verify. The key lives in a file of the user's own, mode 0600, non-empty, in a
folder nobody else can write (the CLI finds it; the core gets the bytes). A folder holding a
`.cea-cache` marker is a cache: every pickle in it must verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

from cea.errors import IntegrityError
from cea.security.io import atomic_write_bytes, atomic_write_json

SIDE = ".hmac"
CACHE_MARKER = ".cea-cache"
MIN_KEY_BYTES = 16


def _check_key_file(path: Path) -> None:
    """Refuse a key that is not the user's own secret (IntegrityError, exit 8)."""
    try:
        st = path.lstat()
    except OSError as exc:
        raise IntegrityError(f"{path}: cache key cannot be read ({exc.strerror})") from exc
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise IntegrityError(f"{path}: cache key must be a regular file (not a link)")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise IntegrityError(f"{path}: cache key belongs to another user (uid {st.st_uid})")
    mode = st.st_mode & 0o777
    if mode & 0o077:
        raise IntegrityError(
            f"{path}: cache key is readable by others (mode {mode:o})", hint=f"chmod 600 {path}"
        )
    if st.st_size < MIN_KEY_BYTES:
        raise IntegrityError(
            f"{path}: cache key is empty or too short ({st.st_size} bytes)",
            hint="delete it: a new random key is made on next use",
        )
    folder = path.parent.lstat()
    if folder.st_mode & 0o022 and not folder.st_mode & stat.S_ISVTX:
        raise IntegrityError(
            f"{path.parent}: the cache key's folder is writable by others",
            hint=f"chmod go-w {path.parent}",
        )


def read_key(path: Path) -> bytes:
    """The key bytes, after the file passed every check."""
    _check_key_file(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"{path}: cache key cannot be read ({exc.strerror})") from exc


def load_or_create_key(path: Path) -> bytes:
    """Read the key, creating a random one (0600) on first use; refuse a key that others can
    read or write, an empty one, or one behind a link."""
    if path.exists() or path.is_symlink():
        return read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return read_key(path)


def digest_bytes(data: bytes, key: bytes, entry: str) -> str:
    """HMAC-SHA256 over (entry name, bytes): the name is length-prefixed, so no split of a
    name and a body can collide with another."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    name = entry.encode("utf-8")
    mac.update(len(name).to_bytes(4, "big") + name)
    mac.update(data)
    return mac.hexdigest()


def sign(path: Path, key: bytes, data: bytes | None = None) -> None:
    """Write the sidecar of `path` (over `data` when given: the bytes just written)."""
    body = path.read_bytes() if data is None else data
    atomic_write_json(
        path.with_name(path.name + SIDE),
        {
            "algorithm": "hmac-sha256",
            "entry": path.name,
            "digest": digest_bytes(body, key, path.name),
        },
    )


def verify_bytes(path: Path, data: bytes, key: bytes) -> bool:
    """Whether `data` (read from `path`) carries the HMAC its sidecar records for that name."""
    side = path.with_name(path.name + SIDE)
    try:
        recorded = json.loads(side.read_text(encoding="utf-8"))
        expected = str(recorded["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return hmac.compare_digest(expected, digest_bytes(data, key, path.name))


def verify(path: Path, key: bytes) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return verify_bytes(path, data, key)


def read_verified(path: Path, key: bytes) -> bytes | None:
    """The entry's bytes when they verify, else None. Load from what this returns, never from
    the file again."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if verify_bytes(path, data, key) else None


def mark_cache(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / CACHE_MARKER
    if not marker.exists():
        atomic_write_bytes(marker, b"cea cache: every entry is HMAC-signed\n")
