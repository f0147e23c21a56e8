"""Criteria definitions: id -> short description (packaged DSM-5 set or the user's file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from cea.errors import ConfigError, MissingResourceError

DSM5_LABELS = (
    "DEPRESSED_MOOD",
    "ANHEDONIA",
    "APPETITE_CHANGE",
    "SLEEP_ISSUES",
    "PSYCHOMOTOR",
    "FATIGUE",
    "WORTHLESSNESS",
    "COGNITIVE_ISSUES",
    "SUICIDAL_THOUGHTS",
    "SPECIAL_CASE",
)


def load_criteria(path: str | Path | None = None) -> dict[str, str]:
    """Ordered mapping id -> description. Raises ConfigError on a malformed file."""
    if path is None:
        text = (resources.files("cea.resources") / "criteria.yaml").read_text(encoding="utf-8")
        origin = "packaged criteria.yaml"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise MissingResourceError(f"criteria file {path} not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"criteria file {path} is unreadable ({exc.__class__.__name__})"
            ) from exc
        origin = str(path)
    from cea.config import safe_load_yaml

    try:
        data = safe_load_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"criteria file {origin}: {exc.message}", hint=exc.hint) from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"criteria file {origin} is not valid YAML") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"criteria file {origin} must map criterion ids to descriptions")
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key.strip() or not isinstance(value, str):
            raise ConfigError(f"criteria file {origin}: entry {key!r} must be id: description")
        out[key.strip()] = value.strip()
    return out
