"""One redaction helper, used everywhere text or values leave the process.

Masks: credentials in URLs (`scheme://user:PASSWORD@host`), values of keys that name a secret
(password, token, secret, api key, credential), `key=value` pairs of such keys inside text, and
every literal secret registered with `register_secret` (the CLI registers the values of
environment variables whose names look secret, e.g. MLFLOW_TRACKING_TOKEN, HF_TOKEN).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_URL_CREDENTIALS = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<secret>[^@/\s]+)@"
)
_SECRET_PARTS = frozenset(
    {
        "pass", "passwd", "password", "secret", "secrets", "token", "credential",
        "credentials", "auth", "authorization", "apikey", "privatekey", "accesskey",
    }
)  # fmt: skip
_SECRET_SUFFIXES = ("password", "passwd", "secret", "token", "apikey")


def is_secret_name(name: str) -> bool:
    """Whether a key or variable name names a secret, judged on its words: TOKEN, HF_TOKEN,
    PGPASSWORD, aws_secret_access_key, apiKey are; tokenizers, max_tokens, author are not."""
    parts = [p.lower() for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    joined = "".join(parts)
    if any(p in _SECRET_PARTS or p.endswith(_SECRET_SUFFIXES) for p in parts):
        return True
    return any(w in joined for w in ("apikey", "privatekey", "accesskey"))


_KV_IN_TEXT = re.compile(
    r"(?P<key>\b[\w.-]*(?:pass(?:word|wd)?|secret|token|api[_-]?key|credential)[\w.-]*)"
    r"(?P<sep>\s*[=:]\s*)(?P<q>['\"]?)(?P<value>[^\s'\",;&]+)",
    re.I,
)
_MIN_SECRET = 4

_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    if value and len(value) >= _MIN_SECRET:
        _registered.add(value)


def register_secrets_from_env(environ: Mapping[str, str]) -> int:
    """Register the values of variables whose names look secret; return how many."""
    n = 0
    for name, value in environ.items():
        if is_secret_name(name) and value and len(value) >= _MIN_SECRET:
            _registered.add(value)
            n += 1
    return n


def registered_count() -> int:
    return len(_registered)


def redact_text(text: str, extra: Iterable[str] = ()) -> str:
    out = _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    out = _KV_IN_TEXT.sub(
        lambda m: (
            f"{m.group('key')}{m.group('sep')}{m.group('q')}{MASK}"
            if is_secret_name(m.group("key"))
            else m.group(0)
        ),
        out,
    )
    for secret in sorted({*_registered, *extra}, key=len, reverse=True):
        if secret and len(secret) >= _MIN_SECRET:
            out = out.replace(secret, MASK)
    return out


def redact_value(key: str, value: Any) -> Any:
    """A config/param value: masked whole when its key names a secret, else text-redacted."""
    if isinstance(value, str):
        leaf = key.rsplit(".", 1)[-1]
        if is_secret_name(leaf) and value:
            return MASK
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(f"{key}.{k}" if key else str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    return value


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: redact_value(str(k), v) for k, v in data.items()}


def strip_url_credentials(url: str) -> tuple[str, str | None, str | None]:
    """`https://user:pw@host/x` -> (`https://host/x`, user, pw). Other URLs come back unchanged."""
    m = re.match(
        r"^(?P<scheme>https?://)(?P<user>[^:/@\s]*)(?::(?P<pw>[^@/\s]*))?@(?P<rest>.*)$", url
    )
    if not m:
        return url, None, None
    return m.group("scheme") + m.group("rest"), m.group("user") or None, m.group("pw")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {"a.b.c": value}; lists are kept as values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out
