"""Model configs read with `json`, as Keras and transformers read them (escapes decoded):
Keras Lambda layers (marshalled Python run on load, also inside an HDF5 file), `auto_map` in
a transformers config (code run by `from_pretrained(trust_remote_code=True)`), TensorFlow
graphs that read or write files.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cea.security.scan_base import Reader


def _json_document(data: bytes) -> list[tuple[str, Any]] | None:
    """Every (key, value) pair of every object in `data` when it is a JSON document (as
    `json.loads` reads it, duplicates kept), else None."""
    head = data[:64].removeprefix(b"\xef\xbb\xbf").lstrip()
    if head[:1] not in (b"{", b"["):
        return None
    pairs: list[tuple[str, Any]] = []

    def hook(items: list[tuple[str, Any]]) -> dict[str, Any]:
        pairs.extend(items)
        return dict(items)

    try:
        text = data.decode("utf-8-sig")
        json.loads(text, object_pairs_hook=hook)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    for _k, v in list(pairs):  # a config serialised into a string inside the config
        if isinstance(v, str) and v[:1] in ("{", "[") and len(v) > 2:
            inner = _json_document(v.encode("utf-8", "surrogatepass"))
            if inner:
                pairs.extend(inner)
    return pairs


def _auto_map_refs(value: Any) -> list[str]:
    """The code an `auto_map` entry names: "module.Class" or "repo--module.Class" (a list
    for tokenizers), as the module file "module.py"."""
    refs: list[str] = []
    items = value.values() if isinstance(value, dict) else [value]
    for item in items:
        for ref in item if isinstance(item, list) else [item]:
            if isinstance(ref, str) and ref:
                module = ref.split("--")[-1].rsplit(".", 1)[0]
                refs.append(f"{module}.py")
    return refs


_JSON_STRING = rb'"((?:[^"\\\x00-\x1f]|\\.){1,80})"'

_JSON_PAIR = re.compile(_JSON_STRING + rb"\s*:\s*" + _JSON_STRING)


def _has_keras_lambda(data: bytes, escapes: bool = True) -> bool:
    """A Lambda layer in a model config stored inside a binary (an HDF5 attribute): every
    "key": "value" pair of string literals there, escapes decoded as json decodes them (not
    with `escapes=False`: a pickle is no Keras config, its globals are checked instead)."""
    if b"Lambda" in data and _KERAS_LAMBDA.search(data):  # (a fast find first: GB/s)
        return True
    if not escapes:
        return False
    if b"\\u" not in data and b"\\/" not in data:
        return False  # (no escape: the plain search above is the whole answer)
    for m in _JSON_PAIR.finditer(data):
        if b"\\" not in m.group(0):
            continue
        try:
            key = json.loads(b'"' + m.group(1) + b'"')
            value = json.loads(b'"' + m.group(2) + b'"')
        except ValueError:
            continue
        if key in ("class_name", "registered_name") and value == "Lambda":
            return True
    return False


_KERAS_LAMBDA = re.compile(rb'\\?"class_name\\?"\s*:\s*\\?"Lambda\\?"')

# op names in a GraphDef NodeDef (field 2, length-prefixed); SaveV2/RestoreV2 of the saver are
# in every SavedModel and are not listed
_TF_FILE_OPS = re.compile(rb"\x12(?:\x08(ReadFile)|\t(WriteFile))")


class ConfigReading(Reader):
    """Code that model configs make their loaders run."""

    def _model_code(self, data: bytes, where: str, name: str, fmt: str) -> None:
        """Code that other model formats run on load: Keras Lambda layers (marshalled Python in
        the model config of .h5/.keras/SavedModel files), TensorFlow file-system ops."""
        if fmt in ("zip", "torch-zip", "torchscript", "npz", "tar") or fmt.startswith(
            ("gzip", "bz2", "xz")
        ):
            return  # (their members are scanned on their own)
        config = _json_document(data) if fmt in ("text", "") else None
        if config is not None:
            self._config(config, where)
        elif _has_keras_lambda(data, escapes=fmt not in ("pickle", "torch-legacy")):
            self.find(
                where,
                fmt or "model",
                "KERAS-LAMBDA",
                "a Keras Lambda layer: its marshalled Python code runs when the model loads",
                "high",
                hint="rebuild the model without Lambda layers, or load with safe_mode",
            )
        if name.endswith(".pb") and (b"ReadFile" in data or b"WriteFile" in data):
            ops = sorted({(m.group(1) or m.group(2)).decode() for m in _TF_FILE_OPS.finditer(data)})
            if ops:
                self.find(
                    where,
                    "savedmodel",
                    "TF-FILE-OP",
                    f"graph uses {', '.join(ops)} (reads or writes files when it runs)",
                    "high",
                )

    def _config(self, pairs: list[tuple[str, Any]], where: str) -> None:
        """A JSON document read with `json` as Keras and transformers read it (escapes decoded):
        Lambda layers (marshalled Python run by Keras), `auto_map` (modules of the model folder
        that `from_pretrained(trust_remote_code=True)` imports and runs)."""
        lambdas = [v for k, v in pairs if k in ("class_name", "registered_name") and v == "Lambda"]
        lambdas += [v for k, v in pairs if k == "function_type" and v == "lambda"]
        if lambdas:
            self.find(
                where,
                "keras-config",
                "KERAS-LAMBDA",
                "a Keras Lambda layer: its marshalled Python code runs when the model loads",
                "high",
                hint="rebuild the model without Lambda layers, or load with safe_mode",
            )
        code = sorted({ref for k, v in pairs if k == "auto_map" for ref in _auto_map_refs(v)})
        if code:
            self.find(
                where,
                "hf-config",
                "HF-REMOTE-CODE",
                f"auto_map names Python code ({', '.join(code[:5])}) that "
                "from_pretrained(trust_remote_code=True) imports and runs",
                "high",
                hint="load without trust_remote_code, or review and pin the code",
            )
