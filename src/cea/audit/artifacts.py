"""`cea audit artifacts PATH...`: find pickles by content and check them without loading.

Formats are identified by content, never by extension: raw pickle (protocols 0-5), torch zip,
legacy torch (sequential pickles), joblib (plain and gzip/bz2/xz/lzma/zlib compressed), numpy
`.npy`/`.npz` (object arrays hold pickles), safetensors (header validated). Folders with a
`manifest.json` are verified against it; in a cache folder (`.cea-cache` marker) every pickle
must carry a valid HMAC. `scan_path` is the Python API for the registry gate and the cache.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import io
import json
import lzma
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cea.audit.base import AuditContext
from cea.audit.model import CheckResult, Finding
from cea.audit.pickles import (
    SAFE_GLOBALS,
    PickleReport,
    looks_like_pickle,
    scan_pickle_bytes,
    severity_of,
)
from cea.security.manifest import MANIFEST_NAME, check_manifest
from cea.security.signed_cache import CACHE_MARKER, SIDE, verify

MAX_SAFETENSORS_HEADER = 100 * 2**20
MAX_DECOMPRESSED = 4 * 2**30
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
CHECK = "artifacts"
_EXT_FORMATS = {
    ".safetensors": "safetensors",
    ".pt": "torch",
    ".pth": "torch",
    ".bin": "torch",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".joblib": "joblib",
    ".npy": "numpy",
    ".npz": "numpy",
}


@dataclass(frozen=True)
class ScanResult:
    path: Path
    format: str  # what the content is
    findings: tuple[Finding, ...]


def _finding(
    path: Path,
    fmt: str,
    fid: str,
    message: str,
    severity: str = "high",
    hint: str = "",
    extra: dict[str, Any] | None = None,
) -> Finding:
    return Finding(
        id=fid,
        check=CHECK,
        severity=severity,  # type: ignore[arg-type]
        location=str(path),
        message=f"[{fmt}] {message}",
        hint=hint,
        extra={"format": fmt, **(extra or {})},
    )


def _pickle_findings(path: Path, fmt: str, report: PickleReport, where: str = "") -> list[Finding]:
    out = []
    inside = f" in {where}" if where else ""
    for kind, message in report.problems:
        if kind == "global":
            out.append(
                _finding(
                    path,
                    fmt,
                    "PICKLE-GLOBAL",
                    f"imports {message}{inside}, which is not on the allowlist",
                    severity_of(kind, message),
                    "do not load this file; re-save weights as safetensors",
                    {"globals": [message]},
                )
            )
        else:
            out.append(
                _finding(
                    path,
                    fmt,
                    f"PICKLE-{kind.upper()}",
                    f"{message}{inside}",
                    "high",
                    "do not load this file",
                )
            )
    return out


# ---- identification ----------------------------------------------------------------------


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    # a header length past the end of the file is still a (broken) safetensors file
    return n > 0 and head[8:9] == b"{"


def identify(data: bytes) -> str:
    if data[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            return "zip-broken"
        if any(n.endswith(".pkl") for n in names):
            return "torch-zip"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "zip"
    if data[:6] == b"\x93NUMPY":
        return "npy"
    if _is_safetensors(data[:16], len(data)):
        return "safetensors"
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if data[:3] == b"BZh":
        return "bz2"
    if data[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if data[:3] == b"\x5d\x00\x00":
        return "lzma"
    if data[:1] == b"\x78" and data[1:2] in (b"\x01", b"\x5e", b"\x9c", b"\xda"):
        return "zlib"
    if data[:4] == b"\x04\x22\x4d\x18":
        return "lz4"
    if looks_like_pickle(data):
        return "pickle"
    return "other"


# ---- per-format scanners -----------------------------------------------------------------


def check_safetensors(path: Path, data: bytes, size: int | None = None) -> list[Finding]:
    """Validate the header. `data` must hold at least the 8-byte length and the header;
    `size` is the whole file's size (default: len(data)) — the tensors themselves are not read."""
    fmt = "safetensors"
    bad: list[str] = []
    size = len(data) if size is None else size
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_SAFETENSORS_HEADER or n > size - 8 or len(data) < 8 + n:
        return [
            _finding(
                path,
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
    except (UnicodeDecodeError, ValueError) as exc:
        return [
            _finding(
                path,
                fmt,
                "SAFETENSORS-HEADER",
                f"header is not valid JSON ({exc.__class__.__name__})",
            )
        ]
    if dup:
        bad.append(f"duplicate keys: {', '.join(sorted(set(dup))[:5])}")
    if not isinstance(header, dict):
        return [_finding(path, fmt, "SAFETENSORS-HEADER", "header is not a JSON object")]
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
    if spans and pos != body:
        bad.append(f"{body - pos} bytes after the last tensor")
    return [
        _finding(path, fmt, "SAFETENSORS-HEADER", b, hint="re-export the weights") for b in bad[:20]
    ]


def _npy_findings(path: Path, data: bytes, where: str, allowed: frozenset[str]) -> list[Finding]:
    fmt = "npy"
    try:
        major = data[6]
        if major == 1:
            (hlen,) = struct.unpack("<H", data[8:10])
            start = 10
        else:
            (hlen,) = struct.unpack("<I", data[8:12])
            start = 12
        header = ast.literal_eval(data[start : start + hlen].decode("latin1"))
        descr = str(header["descr"])
    except (ValueError, SyntaxError, KeyError, IndexError, struct.error, TypeError) as exc:
        return [
            _finding(
                path,
                fmt,
                "NUMPY-HEADER",
                f"unreadable .npy header{where} ({exc.__class__.__name__})",
            )
        ]
    if "O" in descr:
        report, _ = scan_pickle_bytes(data[start + hlen :], allowed=allowed)
        found = _pickle_findings(path, fmt, report, f"the object array{where}")
        return found or [
            _finding(
                path,
                fmt,
                "NUMPY-OBJECT",
                f"object array{where} (a pickle) — loads only with allow_pickle",
                "medium",
            )
        ]
    return []


def _decompress(kind: str, data: bytes) -> bytes:
    """Decompress with a size cap (a small bomb must not exhaust memory)."""
    if kind == "zlib":
        out = zlib.decompressobj().decompress(data, MAX_DECOMPRESSED + 1)
    elif kind == "gzip":
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            out = gz.read(MAX_DECOMPRESSED + 1)
    elif kind == "bz2":
        with bz2.BZ2File(io.BytesIO(data)) as bz:
            out = bz.read(MAX_DECOMPRESSED + 1)
    else:
        with lzma.LZMAFile(io.BytesIO(data)) as xz:
            out = xz.read(MAX_DECOMPRESSED + 1)
    if len(out) > MAX_DECOMPRESSED:
        raise ValueError("decompressed size over the limit")
    return out


def _read_safetensors_header(path: Path) -> tuple[bytes, int] | None:
    """(length + header bytes, file size) when the file starts like safetensors, else None:
    weights are validated without reading gigabytes of tensor data."""
    with path.open("rb") as fh:
        head = fh.read(16)
        if not _is_safetensors(head, 0):
            return None
        (n,) = struct.unpack("<Q", head[:8])
        fh.seek(0)
        data = fh.read(8 + min(n, MAX_SAFETENSORS_HEADER))
    return data, path.stat().st_size


def scan_file(path: Path, *, allowed: frozenset[str] = SAFE_GLOBALS) -> ScanResult:
    try:
        header = _read_safetensors_header(path)
        if header is not None:
            return ScanResult(path, "safetensors", tuple(check_safetensors(path, *header)))
        data = path.read_bytes()
    except OSError as exc:
        return ScanResult(
            path,
            "unreadable",
            (_finding(path, "unreadable", "UNREADABLE", f"cannot read ({exc.strerror})"),),
        )
    fmt = identify(data)
    findings: list[Finding] = []
    if fmt == "pickle":  # (safetensors content returned above, header-only)
        report, end = scan_pickle_bytes(data, allowed=allowed, sequence=True)
        # legacy torch.save: magic, protocol, sys info, object, storage keys, then raw storages
        legacy_torch = data[:4] == b"\x80\x02\x8a\x0a" and report.streams >= 5
        if end < len(data) and not legacy_torch and not report.problems:
            report.problem("trailing", f"{len(data) - end} bytes after the pickle stream")
        findings += _pickle_findings(
            path, "torch-legacy" if data[:4] == b"\x80\x02\x8a\x0a" else "pickle", report
        )
    elif fmt == "torch-zip":
        zf = zipfile.ZipFile(io.BytesIO(data))
        for name in zf.namelist():
            if name.endswith(".pkl"):
                report, _ = scan_pickle_bytes(zf.read(name), allowed=allowed)
                findings += _pickle_findings(path, fmt, report, name)
    elif fmt == "npy":
        findings += _npy_findings(path, data, "", allowed)
    elif fmt == "npz":
        zf = zipfile.ZipFile(io.BytesIO(data))
        for name in zf.namelist():
            findings += _npy_findings(path, zf.read(name), f" {name}", allowed)
    elif fmt in ("gzip", "bz2", "xz", "lzma", "zlib"):
        try:
            inner = _decompress(fmt, data)
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            findings.append(
                _finding(
                    path,
                    fmt,
                    "COMPRESSED-UNREADABLE",
                    f"cannot decompress ({str(exc)[:80]})",
                    "medium",
                )
            )
        else:
            if looks_like_pickle(inner):
                report, _ = scan_pickle_bytes(inner, allowed=allowed)
                findings += _pickle_findings(path, f"{fmt}+joblib", report)
                fmt = f"{fmt}+pickle"
    elif fmt == "lz4":
        findings.append(
            _finding(
                path, fmt, "COMPRESSED-UNSUPPORTED", "lz4-compressed file cannot be scanned here"
            )
        )
    elif fmt == "zip-broken":
        findings.append(_finding(path, fmt, "ZIP-BROKEN", "zip file cannot be read"))
    declared = _EXT_FORMATS.get(path.suffix.lower())
    pickled = fmt in ("pickle", "torch-zip") or fmt.endswith("+pickle")
    if declared == "safetensors" and fmt != "safetensors":
        findings.append(
            _finding(
                path, fmt, "MISLEADING-EXTENSION", f"named .safetensors but the content is {fmt}"
            )
        )
    elif pickled and declared is None and fmt != "other":
        findings.append(
            _finding(
                path,
                fmt,
                "MISLEADING-EXTENSION",
                f"a {fmt} file with extension {path.suffix or '(none)'!r}",
                "medium",
            )
        )
    return ScanResult(path, fmt, tuple(findings))


def _walk(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(x for x in p.rglob("*") if x.is_file() and not x.is_symlink())
        elif p.is_file():
            files.append(p)
    return files


def scan_path(
    paths: Iterable[Path], *, cache_key: bytes | None = None, allowed: frozenset[str] = SAFE_GLOBALS
) -> tuple[list[ScanResult], list[Finding], list[str]]:
    """Scan files and folders. Returns (per-file results, all findings, notes)."""
    roots = [Path(p) for p in paths]
    results: list[ScanResult] = []
    findings: list[Finding] = []
    notes: list[str] = []
    files = _walk(roots)
    for f in files:
        if f.name.endswith(SIDE) or f.name == CACHE_MARKER:
            continue
        res = scan_file(f, allowed=allowed)
        in_cache = any((parent / CACHE_MARKER).is_file() for parent in f.parents)
        pickled = res.format in ("pickle", "torch-zip") or res.format.endswith("+pickle")
        if in_cache and pickled:
            if cache_key is None:
                res = ScanResult(
                    f,
                    res.format,
                    (
                        *res.findings,
                        _finding(
                            f,
                            res.format,
                            "CACHE-UNVERIFIED",
                            "cache entry cannot be verified (no cache key)",
                            hint="give --cache-key",
                        ),
                    ),
                )
            elif verify(f, cache_key):
                res = ScanResult(f, res.format, ())  # HMAC-verified: written by this user's cea
                notes.append(f"{f}: HMAC verified")
            else:
                res = ScanResult(
                    f,
                    res.format,
                    (
                        *res.findings,
                        _finding(
                            f,
                            res.format,
                            "CACHE-UNVERIFIED",
                            "cache entry has no valid HMAC: never loaded",
                            hint="delete it, or rebuild the cache (--refit)",
                        ),
                    ),
                )
        results.append(res)
        findings += res.findings
    manifests = sorted({m.parent for r in roots if r.is_dir() for m in r.rglob(MANIFEST_NAME)})
    for folder in manifests:
        nested = tuple(
            d.name for d in folder.iterdir() if d.is_dir() and (d / MANIFEST_NAME).is_file()
        )
        try:
            mc = check_manifest(folder, exclude_dirs=(*nested, "eval"))
        except Exception as exc:  # IntegrityError: unreadable manifest
            findings.append(
                _finding(folder / MANIFEST_NAME, "manifest", "MANIFEST-UNREADABLE", str(exc))
            )
            continue
        for label, names in (("changed", mc.changed), ("missing", mc.missing), ("extra", mc.extra)):
            for name in names:
                findings.append(
                    _finding(
                        folder / name,
                        "manifest",
                        "MANIFEST-MISMATCH",
                        f"{label} since {folder / MANIFEST_NAME} was written",
                    )
                )
        notes.append(f"{folder}: manifest {'verified' if mc.ok else 'MISMATCH'}")
    kinds: dict[str, int] = {}
    for r in results:
        kinds[r.format] = kinds.get(r.format, 0) + 1
    notes.insert(
        0, f"{len(results)} files: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    )
    return results, findings, notes


class ArtifactsCheck:
    name = CHECK

    def run(self, ctx: AuditContext) -> CheckResult:
        paths = [Path(p) for p in (ctx.options.get("artifact_paths") or [ctx.root])]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            return CheckResult(self.name, incomplete=(f"not found: {', '.join(missing)}",))
        key = ctx.options.get("cache_key")
        _, findings, notes = scan_path(paths, cache_key=key)
        return CheckResult(self.name, tuple(findings), (), tuple(notes[:20]), "medium")
