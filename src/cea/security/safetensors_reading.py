"""safetensors as its loader reads it: an 8-byte header length, a JSON header (validated:
dtypes, shapes, offsets that tile the data exactly); the tensors themselves are never read.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from cea.security.findings import Finding
from cea.security.scan_base import _finding

MAX_SAFETENSORS_HEADER = 100 * 2**20

SAFETENSORS_DTYPES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "C64": 8,
    "F4": 1,
    "F6_E2M3": 1,
    "F6_E3M2": 1,
}


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    # a header length past the end of the file is still a (broken) safetensors file
    return n > 0 and head[8:9] == b"{"


def check_safetensors(path: Path | str, data: bytes, size: int | None = None) -> list[Finding]:
    """Validate the header. `data` must hold at least the 8-byte length and the header;
    `size` is the whole file's size (default: len(data)) — the tensors themselves are not read."""
    fmt = "safetensors"
    where = str(path)
    bad: list[str] = []
    size = len(data) if size is None else size
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_SAFETENSORS_HEADER or n > size - 8 or len(data) < 8 + n:
        return [
            _finding(
                where,
                fmt,
                "SAFETENSORS-HEADER",
                f"header length {n} exceeds the limit ({MAX_SAFETENSORS_HEADER}) or the file",
            )
        ]
    raw = data[8 : 8 + n]
    dup: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for k, v in items:
            if k in seen:
                dup.append(k)
            seen[k] = v
        return seen

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return [
            _finding(
                where,
                fmt,
                "SAFETENSORS-HEADER",
                f"header is not valid JSON ({exc.__class__.__name__})",
            )
        ]
    if dup:
        bad.append(f"duplicate keys: {', '.join(sorted(set(dup))[:5])}")
    if not isinstance(header, dict):
        return [_finding(where, fmt, "SAFETENSORS-HEADER", "header is not a JSON object")]
    body = size - 8 - n
    spans = []
    for key, info in header.items():
        if key == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                bad.append("__metadata__ must map strings to strings")
            continue
        if not isinstance(info, dict):
            bad.append(f"{key}: entry is not an object")
            continue
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in SAFETENSORS_DTYPES:
            bad.append(f"{key}: unknown dtype {str(dtype)[:20]!r}")
            continue
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            bad.append(f"{key}: bad shape")
            continue
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            bad.append(f"{key}: bad data_offsets")
            continue
        if offsets[1] > body:
            bad.append(f"{key}: data_offsets end {offsets[1]} beyond the data ({body} bytes)")
            continue
        count = 1
        for d in shape:
            count *= d
        if (
            dtype not in ("F4", "F6_E2M3", "F6_E3M2")
            and count * SAFETENSORS_DTYPES[dtype] != offsets[1] - offsets[0]
        ):
            bad.append(f"{key}: {offsets[1] - offsets[0]} bytes for shape {shape} of {dtype}")
        spans.append((offsets[0], offsets[1], key))
    spans.sort()
    pos = 0
    for start, end, key in spans:
        if start < pos:
            bad.append(f"{key}: overlaps the previous tensor")
        elif start > pos:
            bad.append(f"{key}: gap of {start - pos} bytes before it")
        pos = max(pos, end)
    if pos != body:  # (no tensors at all: no data may follow the header either)
        bad.append(f"{body - pos} bytes after the last tensor")
    return [
        _finding(where, fmt, "SAFETENSORS-HEADER", b, hint="re-export the weights")
        for b in bad[:20]
    ]


def _read_safetensors_header(path: Path) -> tuple[bytes, int] | None:
    """(length + header bytes, file size) when the file starts like safetensors, else None:
    weights are validated without reading gigabytes of tensor data."""
    with path.open("rb") as fh:
        head = fh.read(16)
        if not _is_safetensors(head):
            return None
        (n,) = struct.unpack("<Q", head[:8])
        fh.seek(0)
        data = fh.read(8 + min(n, MAX_SAFETENSORS_HEADER))
    return data, path.stat().st_size
