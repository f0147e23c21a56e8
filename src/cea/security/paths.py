"""Safe names and paths for everything a user names (run names, output folders)."""

from __future__ import annotations

import re
from pathlib import Path

from cea.errors import UsageError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def safe_name(name: str, *, what: str = "name") -> str:
    """Return `name` if it is a plain file/folder name (no separators, no `..`, no control chars)."""
    if not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise UsageError(
            f"unsafe {what} {name!r}",
            hint="use letters, digits, '.', '_' and '-' only (1-128 chars, no leading dot)",
        )
    return name


def safe_child(root: Path, name: str, *, what: str = "name") -> Path:
    """`root / name` for a safe `name`, guaranteed to stay inside `root`."""
    child = (root / safe_name(name, what=what)).resolve()
    if not child.is_relative_to(root.resolve()):
        raise UsageError(f"{what} {name!r} escapes {root}")
    return child
