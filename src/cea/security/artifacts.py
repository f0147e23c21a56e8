"""The model-file scanner behind `cea audit artifacts PATH...` and the verification of run
folders: find pickles by content and check them without loading.

Fail closed on identification: every file and every archive member — whatever its name — is
first read as a pickle the way `pickle.load` and `joblib.load` read it (`cea.security.pickles`);
only what neither reading can take for a pickle (it breaks before importing anything) is then
identified as something else. Containers are opened by content and scanned member by member:
zip (any member names, nested, damaged ones read from their local headers), tar,
gzip/bz2/xz/lzma/zlib streams, numpy `.npy`/`.npz`; safetensors headers are validated. Limits
on depth, member count and expanded size make a bomb a finding. What cannot be opened here
(7z, rar, zstd, lz4, encrypted members, unreadable files, an empty folder) makes the check
*incomplete* (exit 7), never a pass. Folders with a `manifest.json` are verified against it; in
a cache folder (`.cea-cache` marker) every pickle must carry a valid HMAC. Symlinks are followed
inside the scanned roots and are findings when they leave them.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import os
import re
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cea.security.findings import Finding, severity_rank
from cea.security.manifest import MANIFEST_NAME, check_manifest
from cea.security.pickles import (
    SAFE_GLOBALS,
    PickleReport,
    analyze_pickle,
    read_value,
    stub_name,
)
from cea.security.signed_cache import CACHE_MARKER, verify

MAX_SAFETENSORS_HEADER = 100 * 2**20
MAX_DEPTH = 6  # archives inside archives
# Budgets per scanned file; spending one makes the scan of that file incomplete (exit 7), with
# the file and the limit named — never a silent pass, never an endless scan.
FILE_SECONDS = 120.0  # wall time for everything read in one file (all readings, all members)
MAX_FILE_BYTES = 16 * 2**30  # size of a file that is read at all
MAX_MEMBERS = 20_000  # per scanned file, all archive levels together (hidden entries too)
MAX_EXPANDED = 2 * 2**30  # bytes decompressed per scanned file
BOMB_FINDING_RATIO = 100  # past the byte budget at this expansion ratio: also a bomb finding
BOMB_RATIO = 1_000  # expansion ratio that is a bomb once past BOMB_MIN bytes
BOMB_MIN = 64 * 2**20
_CHUNK = 1 << 16
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
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
# names under which a pickle is expected (no "misleading extension" for these)
PICKLE_SUFFIXES = frozenset(
    {
        ".pkl",
        ".pickle",
        ".p",
        ".pk",
        ".pck",
        ".pcl",
        ".dill",
        ".joblib",
        ".cloudpickle",
        ".pt",
        ".pth",
        ".bin",
        ".ckpt",
        ".tar",
        ".data",
        ".sav",
        ".npy",
        ".gz",
        ".bz2",
        ".xz",
        ".lzma",
        ".z",
        ".zlib",
    }
)
# names that promise a format no loader unpickles: pickle content under them is a disguise
NON_PICKLE_SUFFIXES = frozenset(
    {
        ".safetensors",
        ".json",
        ".txt",
        ".yaml",
        ".yml",
        ".md",
        ".csv",
        ".tsv",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".onnx",
        ".h5",
        ".hdf5",
        ".gguf",
        ".tflite",
        ".model",
        ".msgpack",
        ".xml",
        ".html",
        ".toml",
        ".cfg",
        ".ini",
        ".py",
    }
)


@dataclass(frozen=True)
class ScanResult:
    path: Path
    format: str  # what the content is
    findings: tuple[Finding, ...]
    incomplete: tuple[str, ...] = ()
    pickled: bool = False  # a pickle somewhere in it (the file or a member)


@dataclass
class ArtifactScan:
    results: list[ScanResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _finding(
    location: str,
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
        location=location,
        message=f"[{fmt}] {message}",
        hint=hint,
        extra={"format": fmt, **(extra or {})},
    )


# ---- identification ----------------------------------------------------------------------


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    # a header length past the end of the file is still a (broken) safetensors file
    return n > 0 and head[8:9] == b"{"


def _is_tar(data: bytes) -> bool:
    if len(data) < 512:
        return False
    if data[257:262] == b"ustar":
        return True
    try:
        tarfile.TarInfo.frombuf(data[:512], "utf-8", "surrogateescape")
    except (tarfile.TarError, ValueError):
        return False
    return data[:1] != b"\0"


def _is_bz2(data: bytes) -> bool:
    return data[:3] == b"BZh" and data[3:4] in b"123456789" and data[4:10] == b"1AY&SY"


def _is_zlib(data: bytes) -> bool:
    return len(data) > 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


# formats cea cannot open: the scan of such a file is incomplete
_UNSUPPORTED = (
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"Rar!\x1a\x07", "rar archive"),
    (b"\x28\xb5\x2f\xfd", "zstd stream"),
    (b"\x04\x22\x4d\x18", "lz4 frame"),
    (b"\x02\x21\x4c\x18", "lz4 legacy stream"),
    (b"MSCF", "cab archive"),
)
# formats that are data for every loader (named in the report only)
_KNOWN_DATA = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF8", "gif"),
    (b"%PDF", "pdf"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"GGUF", "gguf"),
)


def identify(data: bytes) -> str:
    """The format of `data` as the scan names it (a pickle whatever it may also look like)."""
    report = analyze_pickle(data)
    if report.is_pickle:
        return "pickle"
    return _container_kind(data) or _data_kind(data)


def _container_kind(data: bytes) -> str | None:
    kinds = _container_kinds(data)
    return kinds[0] if kinds else None


def _container_kinds(data: bytes) -> list[str]:
    """Every container format whose loader would accept `data` by its own first-bytes test
    (zip as torch and numpy test it, npy, safetensors, the compressors of joblib's table, tar
    as tarfile reads a header), strongest first."""
    kinds = []
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        kinds.append("zip")
    if data[:6] == b"\x93NUMPY":
        kinds.append("npy")
    if _is_safetensors(data[:16]):
        kinds.append("safetensors")
    if data[:2] == b"ZF" and len(data) > 18:
        kinds.append("joblib-zfile")
    kinds += _compressor_kinds(data)
    if _is_tar(data):
        kinds.append("tar")
    for magic, kind in _UNSUPPORTED:
        if data.startswith(magic):
            kinds.append(kind)
    return kinds


# joblib's own compressor table (joblib.compressor._COMPRESSORS) when joblib is here: the name
# of the compressor and the prefix joblib._detect_compressor tests; the copy below (joblib
# 1.x) only when joblib cannot be imported
_JOBLIB_PREFIXES_COPY = (
    ("zlib", b"x"),
    ("gzip", b"\x1f\x8b"),
    ("bz2", b"BZ"),
    ("lzma", b"]\x00"),
    ("xz", b"\xfd7zXZ"),
    ("lz4", b'\x04"M\x18'),
)
_JOBLIB_FIRST_BYTES = b"x\x1fB]\xfd\x04"
_joblib_prefixes_cache: list[tuple[str, bytes]] = []


def _joblib_prefixes() -> list[tuple[str, bytes]]:
    if not _joblib_prefixes_cache:
        try:
            from joblib import compressor

            table = [
                (str(name), bytes(c.prefix))
                for name, c in compressor._COMPRESSORS.items()
                if getattr(c, "prefix", b"")
            ]
        except Exception:  # joblib missing or changed: its 1.x table
            table = list(_JOBLIB_PREFIXES_COPY)
        _joblib_prefixes_cache.extend(table)
    return _joblib_prefixes_cache


def _compressor_kinds(data: bytes) -> list[str]:
    """The compressed-stream formats that apply: joblib's table (it decompresses whatever
    starts with one of its prefixes), gzip/bz2/xz by their own magic, zlib and lzma-alone as
    the other loaders (pandas, torch readers of compressed files) take them."""
    kinds: list[str] = []
    if data[:1] and data[:1] in _JOBLIB_FIRST_BYTES:  # (joblib imported only for these)
        for name, prefix in _joblib_prefixes():
            if name in ("zlib", "gzip", "bz2", "lzma", "xz") and data.startswith(prefix):
                kinds.append(name)  # (lz4 and any other: cannot be opened here, see below)
    if data[:2] == b"\x1f\x8b" and "gzip" not in kinds:
        kinds.append("gzip")
    if _is_bz2(data) and "bz2" not in kinds:
        kinds.append("bz2")
    if data[:6] == b"\xfd7zXZ\x00" and "xz" not in kinds:
        kinds.append("xz")
    if _is_zlib(data) and "zlib" not in kinds:
        kinds.append("zlib")
    if data[:1] == b"\x5d" and "lzma" not in kinds and len(data) > 13:
        kinds.append("lzma")
    return kinds


def _data_kind(data: bytes) -> str:
    for magic, kind in _KNOWN_DATA:
        if data.startswith(magic):
            return kind
    head = data[:65536]
    if any(b < 0x20 and b not in (9, 10, 12, 13, 27) for b in head):
        return "other"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # (a multi-byte character cut at the 64 KiB boundary is still text)
        if exc.reason != "unexpected end of data":
            return "other"
    return "text"


# ---- numpy ---------------------------------------------------------------------------


def npy_header(data: bytes) -> tuple[tuple[int, int], Any, int]:
    """(version, dtype, offset of the array data) as `numpy.lib.format.read_array` reads them
    under `numpy.load(allow_pickle=True)` (no header size limit there). Raises what numpy
    raises on a header it refuses."""
    import importlib
    import warnings

    import numpy as np
    from numpy.lib import format as npy_format

    try:
        impl: Any = importlib.import_module("numpy.lib._format_impl")  # numpy 2
    except ImportError:  # pragma: no cover - numpy 1
        impl = npy_format
    read_header: Any = impl._read_array_header
    fp = io.BytesIO(data)
    version = npy_format.read_magic(fp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (python-2 headers: numpy warns and reads them)
        _shape, _fortran, dtype = read_header(fp, version, max_header_size=2**64)
    if not isinstance(dtype, np.dtype):  # pragma: no cover - numpy always gives a dtype
        raise ValueError("no dtype")
    return version, dtype, fp.tell()


# ---- safetensors -----------------------------------------------------------------------


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


# ---- decompression -----------------------------------------------------------------------


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(31)
    if kind in ("zlib", "joblib-zfile"):
        return zlib.decompressobj(15)
    if kind == "deflate":
        return zlib.decompressobj(-15)
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ)
    if kind == "lzma":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE)
    if kind == "zip-lzma":
        return zipfile._LZMADecompressor()  # type: ignore[attr-defined]
    raise ValueError(kind)


_ZLIB = type(zlib.decompressobj())


def inflate(
    kind: str, data: bytes | memoryview, budget: int, chunk: int = _CHUNK
) -> tuple[bytes, str | None]:
    """Decompress with a cap. Returns (output, problem): problem is None, "bomb after N bytes
    of input" (more than `budget` bytes of output from N of input), or why the stream broke — the output read before the break is kept,
    because a streaming loader has already handed it to the unpickler by then (a broken
    stream is read again in small pieces to recover as much of that output as possible)."""
    out, problem = _inflate(kind, data, budget, chunk)
    if problem and problem.startswith("corrupt") and chunk > 64:
        small = 64 if len(data) <= 16 * 2**20 else 4096
        if small < chunk:
            again, problem2 = _inflate(kind, data, budget, small)
            if len(again) > len(out):
                return again, problem2
    return out, problem


def _inflate(
    kind: str, data: bytes | memoryview, budget: int, chunk: int
) -> tuple[bytes, str | None]:
    out = bytearray()
    rest = memoryview(data)
    members = 0

    def bomb(d: Any, pos: int) -> tuple[bytes, str]:
        # (how much input gave that much output: the ratio that makes it a bomb)
        used = len(data) - len(rest) + pos - len(getattr(d, "unconsumed_tail", b""))
        return bytes(out), f"bomb after {max(used, 1)} bytes of input"

    while rest:
        d = _decompressor(kind)
        members += 1
        before = len(out)
        pos = 0
        try:
            while pos < len(rest):
                piece = rest[pos : pos + chunk]
                pos += len(piece)
                room = budget + 1 - len(out)
                if isinstance(d, _ZLIB):
                    out += d.decompress(piece, room)
                    if d.unconsumed_tail:
                        return bomb(d, pos)
                elif kind == "zip-lzma":  # (no max_length: pieces are small)
                    out += d.decompress(bytes(piece))
                else:
                    out += d.decompress(bytes(piece), room)
                    if not d.eof and not getattr(d, "needs_input", True):
                        return bomb(d, pos)
                if len(out) > budget:
                    return bomb(d, pos)
                if d.eof:
                    break
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            if members > 1 and len(out) == before:
                break  # trailing bytes that are no stream: the loaders stop there too
            return bytes(out), f"corrupt stream ({str(exc)[:60]})"
        if not d.eof:
            if members > 1 and len(out) == before:
                break
            return bytes(out), "truncated stream"
        if kind in ("deflate", "zip-lzma", "joblib-zfile"):
            break  # (one stream; no copy of what follows it)
        # joblib's and Python's compressed files read every stream that follows, whatever it
        # looks like: so are they read here (a view: a file of many streams stays linear)
        used = pos - len(d.unused_data)
        if used <= 0:
            break
        rest = rest[used:]
    return bytes(out), None


def _is_bomb(problem: str | None) -> bool:
    return bool(problem) and str(problem).startswith("bomb")


def _bomb_input(problem: str | None) -> int | None:
    """The input that expanded past the budget ("bomb after N bytes of input"), if known."""
    m = re.match(r"bomb after (\d+) bytes", problem or "")
    return int(m.group(1)) if m else None


# ---- the scanner ---------------------------------------------------------------------------


class _Scanner:
    """Scans one top-level file (and everything inside it)."""

    def __init__(self, top: str, allowed: frozenset[str]) -> None:
        self.top = top
        self.allowed = allowed
        self.findings: list[Finding] = []
        self.incomplete: list[str] = []
        self.expanded = 0
        self.members = 0
        self.pickled = False
        self.deadline = time.monotonic() + FILE_SECONDS
        self.spent: set[str] = set()

    # -- budgets ---------------------------------------------------------------------------
    def exhausted(self, what: str) -> None:
        """A budget of this file ran out: what was not read is named, once per budget."""
        if what in self.spent:
            return
        self.spent.add(what)
        limit = {
            "time": f"{FILE_SECONDS:g} s per file",
            "members": f"{MAX_MEMBERS} archive members per file",
            "bytes": f"{MAX_EXPANDED} bytes expanded per file",
        }[what]
        self.incomplete.append(
            f"{self.top}: {what} budget exhausted (limit {limit}); the rest was not scanned"
        )

    def out_of_time(self) -> bool:
        if time.monotonic() > self.deadline:
            self.exhausted("time")
            return True
        return False

    def one_more_member(self) -> bool:
        """Count a member; False (and incomplete) past the member budget."""
        self.members += 1
        if self.members > MAX_MEMBERS:
            self.exhausted("members")
            return False
        return not self.out_of_time()

    def too_big(self, where: str, fmt: str, compressed: int | None, expanded: int) -> None:
        """A member or stream expands past the byte budget: incomplete, and a bomb finding when
        it does so from a small input."""
        self.exhausted("bytes")
        if compressed is not None and expanded >= BOMB_FINDING_RATIO * max(compressed, 1):
            self.find(
                where,
                fmt,
                "ARCHIVE-BOMB",
                f"{compressed} bytes expand past the scanner's limit ({expanded}+ bytes)",
            )

    def find(self, where: str, fmt: str, fid: str, msg: str, sev: str = "high", **kw: Any) -> None:
        self.findings.append(_finding(where, fmt, fid, msg, sev, **kw))

    def budget(self) -> int:
        return max(MAX_EXPANDED - self.expanded, 0)

    # -- one blob of bytes: a file or an archive member --------------------------------
    def blob(self, data: bytes, where: str, name: str, depth: int, raw: bool = False) -> str:
        if depth > MAX_DEPTH:
            self.find(where, "archive", "ARCHIVE-DEPTH", f"nested deeper than {MAX_DEPTH}")
            return "archive"
        if self.out_of_time():
            return "unscanned"
        legacy = data.startswith(LEGACY_TORCH_MAGIC)
        report = analyze_pickle(
            data, sequence=True, allowed=self.allowed, raw=raw, deadline=self.deadline
        )
        self.incomplete += [f"{where}: {text}" for text in report.incomplete]
        if report.timed_out:
            self.out_of_time()
        fmt = ""
        if report.is_pickle:
            self.pickled = True
            fmt = "torch-legacy" if legacy else "pickle"
            self._pickle_findings(where, fmt, report)
            if report.complete and report.end < len(data) and not (legacy and report.streams >= 5):
                tail = data[report.end :]
                if _container_kind(tail) is None:
                    self.find(
                        where,
                        fmt,
                        "PICKLE-TRAILING",
                        f"{len(tail)} bytes after the pickle stream (no loader runs them)",
                        "low",
                    )
                else:
                    self.blob(tail, f"{where}@{report.end}", name, depth + 1, raw)
            self._extension(where, name, fmt)
        if raw:  # tensor storage: bytes, never opened as anything by its loader
            return fmt or "raw"
        # every format that could apply is read, not the first label that fits (a tar whose
        # first member is named like a zip or npy header is still a tar to tarfile)
        kinds = _container_kinds(data)
        if "zip" not in kinds and not fmt and zipfile.is_zipfile(io.BytesIO(data)):
            kinds.append("zip")  # a zip appended to something else: zipfile still reads it
        opened_as = []
        for kind in kinds:
            opened = self._container(kind, data, where, name, depth)
            if opened:
                opened_as.append(opened)
        if report.is_pickle and opened_as and report.problems:
            opened_as.insert(0, "pickle")
        if len(opened_as) > 1:
            self.find(
                where,
                "+".join(opened_as),
                "POLYGLOT",
                f"the content is valid as {' and as '.join(opened_as)}: each loader reads "
                "its own (all were scanned)",
                "medium",
            )
        fmt = fmt or (opened_as[0] if opened_as else "")
        self._model_code(data, where, name, fmt or (kinds[0] if kinds else ""))
        if not fmt:
            fmt = _data_kind(data)
            suffix = Path(name).suffix.lower()
            if suffix == ".safetensors" or (suffix in PICKLE_SUFFIXES and depth == 0 and data):
                self.find(
                    where,
                    fmt,
                    "MISLEADING-EXTENSION",
                    f"named {suffix} but the content is {fmt}",
                    "medium" if suffix == ".safetensors" else "low",
                )
        return fmt

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
        elif _has_keras_lambda(data):
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

    def _extension(self, where: str, name: str, fmt: str) -> None:
        suffix = Path(name).suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            return
        sev = "medium" if suffix in NON_PICKLE_SUFFIXES else "low"
        self.find(
            where,
            fmt,
            "MISLEADING-EXTENSION",
            f"a {fmt} file named {suffix or '(no extension)'!r}",
            sev,
            hint="give pickles a pickle extension (or better: store safetensors)",
        )

    def _pickle_findings(self, where: str, fmt: str, report: PickleReport) -> None:
        for kind, message, sev in report.problems:
            if kind in ("global", "nested-global"):
                dotted = message.split(" ", 1)[0] if kind == "global" else message
                self.find(
                    where,
                    fmt,
                    "PICKLE-GLOBAL",
                    f"imports {message}, which is not on the allowlist"
                    if sev != "low"
                    else f"imports {message} (a harmless constructor, not on the allowlist)",
                    sev,
                    hint="do not load this file; re-save weights as safetensors",
                    extra={"globals": [dotted]},
                )
            else:
                self.find(
                    where, fmt, f"PICKLE-{kind.upper()}", message, sev, hint="do not load this file"
                )

    # -- containers --------------------------------------------------------------------------
    def _container(self, kind: str, data: bytes, where: str, name: str, depth: int) -> str:
        if kind == "zip":
            return self._zip(data, where, depth)
        if kind == "npy":
            self._npy(data, where)
            return "npy"
        if kind == "safetensors":
            self.findings += check_safetensors(where, data)
            return "safetensors"
        if kind == "tar":
            return self._tar(data, where, depth)
        if kind in ("gzip", "bz2", "xz", "zlib", "lzma", "joblib-zfile"):
            return self._compressed(kind, data, where, name, depth)
        self.incomplete.append(f"{where}: {kind} cannot be opened here (not scanned)")
        return kind

    def _compressed(self, kind: str, data: bytes, where: str, name: str, depth: int) -> str:
        payload = data[18:] if kind == "joblib-zfile" else data
        out, problem = inflate(kind, payload, self.budget())
        weak = kind in ("zlib", "lzma", "joblib-zfile") or (kind == "bz2" and not _is_bz2(data))
        if problem and not _is_bomb(problem) and not out and weak:
            return ""  # only looked like one: not compressed after all
        self.expanded += len(out)
        if _is_bomb(problem):
            self.too_big(where, kind, _bomb_input(problem), len(out))
            return kind
        if len(out) > BOMB_MIN and len(out) > BOMB_RATIO * len(data):
            self.find(where, kind, "ARCHIVE-BOMB", "expands past the scanner's limits")
            return kind
        if problem:
            self.find(
                where,
                kind,
                "COMPRESSED-CORRUPT",
                f"{problem}; the {len(out)} bytes before it were scanned",
                "medium",
            )
        suffix = Path(name).suffix.lower()
        compressed = suffix in (".gz", ".bz2", ".xz", ".lzma", ".z", ".zlib", ".tgz")
        inner = name[: -len(suffix)] + (".tar" if suffix == ".tgz" else "") if compressed else name
        inner_fmt = self.blob(out, f"{where}!{kind}", inner, depth + 1)
        return f"{kind}+{inner_fmt}"

    def _npy(self, data: bytes, where: str) -> None:
        """Read the header with numpy's own parser (`numpy.load` reads it so): an object dtype
        anywhere in it (`descr_to_dtype(...).hasobject`) means a pickle follows the header."""
        try:
            _version, dtype, start = npy_header(data)
        except Exception as exc:  # numpy's parser refuses it: numpy.load refuses it too
            self.find(
                where,
                "npy",
                "NUMPY-HEADER",
                f"unreadable .npy header ({exc.__class__.__name__}: {str(exc)[:80]})",
            )
            return
        if not dtype.hasobject:
            return
        report = analyze_pickle(data, start, allowed=self.allowed)
        report = analyze_pickle(data, start, allowed=self.allowed)
        if not report.is_pickle:
            self.find(where, "npy", "NUMPY-OBJECT", "object array whose pickle does not parse")
            return
        self._pickle_findings(where, "npy", report)
        if not [p for p in report.problems if severity_rank(p[2]) >= severity_rank("medium")]:
            self.find(
                where,
                "npy",
                "NUMPY-OBJECT",
                "object array (a pickle) with allowlisted globals only; loads only with "
                "allow_pickle",
                "info",
            )

    def _tar(self, data: bytes, where: str, depth: int) -> str:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                for member in tf:
                    if not self.one_more_member():
                        break
                    mwhere = f"{where}!{member.name}"
                    parts = Path(member.name).parts
                    if member.name.startswith("/") or ".." in parts:
                        self.find(
                            mwhere, "tar", "TAR-PATH", "member path leaves the archive", "medium"
                        )
                    if member.issym() or member.islnk():
                        self.find(
                            mwhere,
                            "tar",
                            "TAR-LINK",
                            f"link to {member.linkname[:80]!r} (not followed)",
                            "low",
                        )
                        continue
                    if not member.isfile():
                        continue
                    if member.size > self.budget():
                        self.too_big(mwhere, "tar", None, member.size)
                        break
                    fh = tf.extractfile(member)
                    content = fh.read() if fh is not None else b""
                    self.blob(content, mwhere, member.name, depth + 1)
                if "pickle" in tf.getnames():  # torch's legacy tar layout, as torch reads it
                    self._torch_legacy_tar(tf, where)
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            self.find(where, "tar", "TAR-BROKEN", f"tar archive cannot be read ({exc})", "medium")
            self.incomplete.append(
                f"{where}: damaged tar archive, members after the damage not scanned"
            )
        return "tar"

    def _torch_legacy_tar(self, tf: tarfile.TarFile, where: str) -> None:
        """torch.load's legacy_load: "storages" (a count, then per storage a pickle and the raw
        bytes it sizes, then the views), "tensors" (a count, then per tensor a pickle and raw
        sizes and strides), then "pickle". Every pickle is read where torch reads it: those
        after raw bytes are out of reach of a reading that stops at the first raw byte."""
        for name, reader in (("storages", _legacy_storages), ("tensors", _legacy_tensors)):
            try:
                member = tf.getmember(name)  # (the last member of that name, as torch takes)
                fh = tf.extractfile(member)
                data = fh.read() if fh is not None else b""
            except KeyError:
                continue
            mwhere = f"{where}!{name}"
            starts, problem = reader(data, self.deadline)
            for start in starts[1:]:  # (the first is read with the member itself)
                report = analyze_pickle(data, start, allowed=self.allowed, deadline=self.deadline)
                self.incomplete += [f"{mwhere}@{start}: {t}" for t in report.incomplete]
                self._pickle_findings(f"{mwhere}@{start}", "torch-legacy-tar", report)
            if problem:
                self.find(
                    mwhere,
                    "torch-legacy-tar",
                    "TORCH-LEGACY-LAYOUT",
                    f"not the layout torch writes ({problem}); torch.load stops there",
                    "medium",
                )

    # -- zip -------------------------------------------------------------------------------
    def _zip(self, data: bytes, where: str, depth: int) -> str:
        infos: list[zipfile.ZipInfo] = []
        zf: zipfile.ZipFile | None = None
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
            infos = zf.infolist()
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            OSError,
            ValueError,
            EOFError,
            struct.error,
        ) as exc:
            self.find(
                where,
                "zip",
                "ZIP-BROKEN",
                f"the central directory cannot be read ({exc}); members read from local headers",
                "medium",
            )
        names = [i.filename for i in infos]
        fmt = "zip"
        # torch.load's own dispatch: a zip whose records (names below the archive's folder)
        # hold constants.pkl goes to torch.jit.load, which runs the TorchScript code in code/
        records = {n.split("/", 1)[-1] for n in names}
        if "constants.pkl" in records or any(r.startswith("code/") for r in records):
            fmt = "torchscript"
            self.find(
                where,
                fmt,
                "TORCHSCRIPT",
                "a TorchScript archive (constants.pkl or code/): torch.load hands it to "
                "torch.jit.load, which runs its code",
                "high",
                hint="load only TorchScript you trust; ship weights as safetensors",
            )
        elif names and any(n.endswith("data.pkl") for n in names):
            fmt = "torch-zip"
        elif names and all(n.endswith(".npy") for n in names):
            fmt = "npz"
        covered: list[tuple[int, int]] = []
        seen: dict[str, int] = {}  # record name (below the archive folder) -> CRC of the bytes
        for info in infos:
            if info.is_dir():
                continue
            if not self.one_more_member():
                break
            mwhere = f"{where}!{info.filename}"
            covered.append(_member_span(data, info))
            if stat.S_ISLNK(info.external_attr >> 16):
                self.find(
                    mwhere, fmt, "ZIP-LINK", "member is a symbolic link (not followed)", "low"
                )
            if info.file_size > BOMB_MIN and info.file_size > BOMB_RATIO * max(
                info.compress_size, 1
            ):
                self.find(mwhere, fmt, "ARCHIVE-BOMB", "expands past the scanner's limits")
                self.incomplete.append(f"{mwhere}: a bomb, not expanded (not scanned)")
                continue
            content = self._zip_member(data, zf, info, mwhere, fmt)
            if content is None:
                continue
            seen[info.filename.split("/", 1)[-1]] = zlib.crc32(content)
            raw = fmt in ("torch-zip", "torchscript") and _is_torch_storage(info.filename)
            self.blob(content, mwhere, info.filename, depth + 1, raw=raw)
        self._hidden_members(data, covered, where, fmt, depth, broken=zf is None)
        if data[:4] == b"PK\x03\x04" and (b"data.pkl" in data or b"constants.pkl" in data):
            self._torch_records(data, where, seen, depth)
        return fmt

    def _torch_records(self, data: bytes, where: str, seen: dict[str, int], depth: int) -> None:
        """The archive as torch.load reads it: torch's own zip reader (miniz), whose central
        directory can differ from Python's zipfile. Every record it sees that zipfile did not
        see with the same bytes is a finding and is scanned (tensor storages excepted)."""
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return
        try:
            reader = torch._C.PyTorchFileReader(io.BytesIO(data))
            records = list(reader.get_all_records())
        except Exception:  # torch cannot open it: torch.load stops there
            return
        for record in records:
            if _is_torch_storage(f"x/{record}"):
                continue
            if not self.one_more_member():
                return
            try:
                content = bytes(reader.get_record(record))
            except Exception as exc:  # torch fails on it too: nothing read, but say so
                self.incomplete.append(f"{where}!{record}: torch's reader fails ({exc})"[:200])
                continue
            if seen.get(record) == zlib.crc32(content):
                continue
            rwhere = f"{where}!torch:{record}"
            self.find(
                rwhere,
                "torch-zip",
                "ZIP-PARSER-DIFFERENCE",
                "torch's zip reader sees this record "
                + ("with other bytes than zipfile" if record in seen else "where zipfile does not"),
                "medium",
            )
            self.expanded += len(content)
            self.blob(content, rwhere, record, depth + 1)

    def _zip_member(
        self, data: bytes, zf: zipfile.ZipFile | None, info: zipfile.ZipInfo, where: str, fmt: str
    ) -> bytes | None:
        encrypted = bool(info.flag_bits & 0x41)
        if zf is not None and not encrypted:
            try:
                if info.file_size > self.budget():
                    raise OverflowError
                with zf.open(info) as fh:
                    content: bytes = fh.read(self.budget() + 1)
                if len(content) > self.budget():
                    raise OverflowError
                self.expanded += len(content)
                return content
            except OverflowError:
                self.too_big(where, fmt, info.compress_size, max(info.file_size, self.budget()))
                return None
            except zipfile.BadZipFile as exc:
                msg = str(exc)
                if "CRC" in msg:
                    self.find(
                        where,
                        fmt,
                        "ZIP-CRC",
                        "CRC mismatch: the member was changed after it was written",
                    )
                else:
                    self.find(where, fmt, "ZIP-HEADER", f"{msg[:120]}: read from its local header")
            except (
                NotImplementedError,
                RuntimeError,
                zlib.error,
                EOFError,
                lzma.LZMAError,
                OSError,
                ValueError,
            ) as exc:
                self.find(
                    where,
                    fmt,
                    "ZIP-MEMBER",
                    f"member cannot be read normally ({str(exc)[:100]})",
                    "medium",
                )
        raw, problem = _raw_member(
            data, info.header_offset, info.compress_size, info.compress_type, self.budget()
        )
        if raw is not None:
            self.expanded += len(raw)
        if encrypted:
            self.incomplete.append(f"{where}: encrypted member, its content cannot be checked")
            if raw is None or info.compress_type != zipfile.ZIP_STORED:
                return None
            return raw  # stored with the flag set: the bytes may well be a plain pickle
        if _is_bomb(problem):
            self.too_big(where, fmt, _bomb_input(problem), self.budget())
            return None
        if raw is None:
            self.incomplete.append(f"{where}: {problem}")
            return None
        if problem:
            self.find(
                where, fmt, "ZIP-CORRUPT", f"{problem}; the bytes before it were scanned", "medium"
            )
        return raw

    def _hidden_members(
        self,
        data: bytes,
        covered: list[tuple[int, int]],
        where: str,
        fmt: str,
        depth: int,
        broken: bool,
    ) -> None:
        """Local entries the central directory does not list: relaxed readers still find them.

        Linear in the file: one pass finds every local-header signature, and one walk over the
        signatures and the sorted spans of the listed members sets each aside or reads it (an
        entry whose size is in a data descriptor ends at the next signature)."""
        signatures = []
        pos = data.find(b"PK\x03\x04")
        while pos != -1:
            signatures.append(pos)
            pos = data.find(b"PK\x03\x04", pos + 4)
        spans = sorted(covered)
        i = 0
        skip_until = -1
        shown = 0
        for n, pos in enumerate(signatures):
            if pos < skip_until:
                continue
            while i < len(spans) and spans[i][1] <= pos:
                i += 1
            if i < len(spans) and spans[i][0] <= pos:
                skip_until = spans[i][1]  # inside a listed member (and the spans it overlaps)
                continue
            header = _local_header(data, pos)
            if header is None:
                continue
            name, method, csize, start = header
            if not self.one_more_member():
                return
            if csize < 0 and method == zipfile.ZIP_STORED:
                # (sizes in a data descriptor: stored bytes end at the next signature; a
                # compressed stream ends by itself)
                nxt = signatures[n + 1] if n + 1 < len(signatures) else len(data)
                csize = max(nxt - start, 0)
            mwhere = f"{where}!{name or '?'}@{pos}"
            if not broken:
                shown += 1
                if shown <= 20:
                    self.find(
                        mwhere,
                        fmt,
                        "ZIP-HIDDEN-MEMBER",
                        "a local entry the central directory does not list",
                        "medium",
                    )
            content, problem = _raw_member(data, pos, csize, method, self.budget())
            if _is_bomb(problem):
                self.too_big(mwhere, fmt, _bomb_input(problem), self.budget())
            elif content is None:
                self.incomplete.append(f"{mwhere}: {problem}")
            else:
                self.expanded += len(content)
                self.blob(content, mwhere, name, depth + 1)
                skip_until = start + max(csize, 0)
        if shown > 20:
            self.find(
                where,
                fmt,
                "ZIP-HIDDEN-MEMBER",
                f"{shown} local entries the central directory does not list ({shown - 20} "
                "not shown one by one)",
                "medium",
            )


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


def _has_keras_lambda(data: bytes) -> bool:
    """A Lambda layer in a model config stored inside a binary (an HDF5 attribute): every
    "key": "value" pair of string literals there, escapes decoded as json decodes them."""
    if b"Lambda" in data and _KERAS_LAMBDA.search(data):  # (a fast find first: GB/s)
        return True
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


_STORAGE_ELEMENT_SIZE = {
    "Float": 4,
    "Double": 8,
    "Half": 2,
    "BFloat16": 2,
    "Long": 8,
    "Int": 4,
    "Short": 2,
    "Char": 1,
    "Byte": 1,
    "Bool": 1,
    "ComplexFloat": 8,
    "ComplexDouble": 16,
    "QInt8": 1,
    "QUInt8": 1,
    "QInt32": 4,
}
_LEGACY_MAX_RECORDS = 1_000_000


def _legacy_stream(data: bytes, pos: int, deadline: float) -> tuple[Any, int]:
    reading = read_value(data, pos, deadline)
    if not reading.complete:
        raise ValueError(f"a pickle at byte {pos} does not read ({reading.error[:60]})")
    return reading.value, reading.end


def _legacy_storages(data: bytes, deadline: float) -> tuple[list[int], str]:
    """Where torch's legacy_load reads pickles in "storages", and why it stops early (if)."""
    starts = [0]
    try:
        count, pos = _legacy_stream(data, 0, deadline)
        if not isinstance(count, int) or not 0 <= count <= _LEGACY_MAX_RECORDS:
            return starts, "the storage count is not a count"
        for _ in range(count):
            starts.append(pos)
            args, pos = _legacy_stream(data, pos, deadline)
            if not (isinstance(args, tuple) and len(args) == 3):
                return starts, f"storage record at byte {starts[-1]} is not (key, location, type)"
            kind = (stub_name(args[2]) or "").removeprefix("torch.").removesuffix("Storage")
            if kind not in _STORAGE_ELEMENT_SIZE:
                return starts, f"storage type {stub_name(args[2]) or args[2]!r:.60} is unknown"
            if pos + 8 > len(data):
                return starts, "storage bytes run past the end"
            n = int.from_bytes(data[pos : pos + 8], "little", signed=True)
            pos += 8 + n * _STORAGE_ELEMENT_SIZE[kind]
            if n < 0 or pos > len(data):
                return starts, "storage bytes run past the end"
        starts.append(pos)  # the storage views
        _legacy_stream(data, pos, deadline)
    except ValueError as exc:
        return starts, str(exc)
    return starts, ""


def _legacy_tensors(data: bytes, deadline: float) -> tuple[list[int], str]:
    """Where torch's legacy_load reads pickles in "tensors", and why it stops early (if)."""
    starts = [0]
    try:
        count, pos = _legacy_stream(data, 0, deadline)
        if not isinstance(count, int) or not 0 <= count <= _LEGACY_MAX_RECORDS:
            return starts, "the tensor count is not a count"
        for _ in range(count):
            starts.append(pos)
            _args, pos = _legacy_stream(data, pos, deadline)
            if pos + 8 > len(data):
                return starts, "tensor sizes run past the end"
            ndim = int.from_bytes(data[pos : pos + 4], "little", signed=True)
            pos += 8 + 16 * ndim + 8
            if ndim < 0 or pos > len(data):
                return starts, "tensor sizes run past the end"
    except ValueError as exc:
        return starts, str(exc)
    return starts, ""


def _is_torch_storage(name: str) -> bool:
    parts = name.split("/")
    return len(parts) >= 2 and parts[-2] == "data" and parts[-1].isdigit()


def _local_header(data: bytes, offset: int) -> tuple[str, int, int, int] | None:
    """(name, method, compressed size, data start) of the local header at `offset`."""
    head = data[offset : offset + 30]
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return None
    _v, flag, method, _t, _d, _crc, csize, _usize, nlen, xlen = struct.unpack(
        "<HHHHHIIIHH", head[4:]
    )
    start = offset + 30 + nlen + xlen
    if start > len(data) or method > 99 or nlen > 4096:
        return None
    name = data[offset + 30 : offset + 30 + nlen].decode("utf-8", "replace")
    if flag & 0x08 and csize == 0:
        csize = -1  # sizes in a data descriptor: read to the end of the stream
    return name, method, csize, start


def _member_span(data: bytes, info: zipfile.ZipInfo) -> tuple[int, int]:
    header = _local_header(data, info.header_offset)
    start = header[3] if header else info.header_offset + 30
    return info.header_offset, start + info.compress_size


def _raw_member(
    data: bytes, offset: int, csize: int, method: int, budget: int
) -> tuple[bytes | None, str | None]:
    """A member's bytes straight from its local header, flags and CRC ignored (as lenient
    readers do). Returns (content, problem)."""
    header = _local_header(data, offset)
    if header is None:
        return None, "no readable local header"
    _name, _method, local_size, start = header
    size = csize if csize >= 0 else local_size
    view = memoryview(data)
    raw = view[start:] if size < 0 else view[start : start + size]
    if method == zipfile.ZIP_STORED:
        if len(raw) > budget:
            return None, "bomb (stored)"
        return bytes(raw), None
    kinds = {
        zipfile.ZIP_DEFLATED: "deflate",
        zipfile.ZIP_BZIP2: "bz2",
        zipfile.ZIP_LZMA: "zip-lzma",
    }
    if method not in kinds:
        return None, f"compression method {method} cannot be opened here"
    out, problem = inflate(kinds[method], raw, budget)
    if problem == "truncated stream" and size < 0:
        problem = None
    return out, problem


# ---- files and folders ------------------------------------------------------------------


def scan_file(path: Path, *, allowed: frozenset[str] = SAFE_GLOBALS) -> ScanResult:
    """Scan one file (and whatever it contains). Never raises on the file's content."""
    s = _Scanner(str(path), allowed)
    fmt = "unreadable"
    try:
        header = _read_safetensors_header(path)
        if header is not None and _only_safetensors(path, s.deadline):
            s.findings += check_safetensors(path, *header)
            if zipfile.is_zipfile(path):  # a zip hidden at the end: zip readers still find it
                s.find(str(path), "safetensors", "POLYGLOT", "the file is also a zip archive")
                s._zip(path.read_bytes(), f"{path}!zip", 1)
            return ScanResult(
                path, "safetensors", tuple(s.findings), tuple(s.incomplete), s.pickled
            )

        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return ScanResult(
                path,
                fmt,
                (),
                (f"{path}: byte budget exhausted (limit {MAX_FILE_BYTES} bytes per file read)",),
            )
        data = path.read_bytes()
    except OSError as exc:
        return ScanResult(path, fmt, (), (f"{path}: cannot read ({exc.strerror or exc})",))
    try:
        fmt = s.blob(data, str(path), path.name, 0)
    except RecursionError:
        s.incomplete.append(f"{path}: nested too deeply to scan")
    except Exception as exc:  # a scanner bug on hostile bytes is incomplete, never a pass
        s.incomplete.append(f"{path}: the scan failed ({exc.__class__.__name__}: {str(exc)[:80]})")
    if s.pickled and fmt in ("zip", "tar", "other", "text"):
        fmt = f"{fmt}+pickle"
    findings = list({(f.id, f.location, f.message): f for f in s.findings}.values())
    incomplete = list(dict.fromkeys(s.incomplete))
    return ScanResult(path, fmt, tuple(findings), tuple(incomplete), s.pickled)


def _only_safetensors(path: Path, deadline: float) -> bool:
    """Whether a file that starts like safetensors is nothing else: no other container format
    accepts its first bytes and the pickle reading at offset 0 reaches nothing. Then only its
    header is read (not gigabytes of tensors); otherwise it is read whole, every way."""
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    if _container_kinds(head) != ["safetensors"]:
        return False
    report = analyze_pickle(head, deadline=deadline)
    # (a header length whose bytes happen to read as "N." imports nothing: not a pickle that
    # does anything; one that reaches a global or a gadget is)
    return not any(kind != "unparsable" for kind, _m, _s in report.problems)


def _collect(roots: list[Path], scan: ArtifactScan) -> list[Path]:
    """The files to scan: regular files under the roots, symlinks followed inside them and
    findings where they lead outside; special files and empty folders reported."""
    bases = [r.resolve() for r in roots if r.exists()]

    def inside(target: Path) -> bool:
        return any(target == b or target.is_relative_to(b) for b in bases)

    files: list[Path] = []
    for root in roots:
        if not root.exists() and not root.is_symlink():
            scan.incomplete.append(f"{root}: not found")
            continue
        if root.is_file():
            files.append(root)
            continue
        if not root.is_dir():
            scan.incomplete.append(f"{root}: neither a file nor a folder")
            continue
        count = 0
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for entry in sorted([*dirnames, *filenames]):
                p = Path(dirpath) / entry
                if p.is_symlink():
                    target = p.resolve()
                    if not target.exists():
                        scan.findings.append(
                            _finding(str(p), "symlink", "SYMLINK-DANGLING", "points nowhere", "low")
                        )
                        continue
                    if not inside(target):
                        scan.findings.append(
                            _finding(
                                str(p),
                                "symlink",
                                "SYMLINK-OUTSIDE",
                                f"points outside the scanned folder ({target})",
                                hint="ship the file itself; a loader follows the link",
                            )
                        )
                    if inside(target):
                        scan.notes.append(f"{p}: symlink to {target} (inside the scan; followed)")
                    if target.is_file():
                        files.append(p)
                        count += 1
                    elif target.is_dir() and not inside(target):
                        scan.notes.append(f"{p}: linked folder outside the scan not walked")
                    continue
                if entry in filenames:
                    mode = p.lstat().st_mode
                    if stat.S_ISREG(mode):
                        files.append(p)
                        count += 1
                    else:
                        scan.incomplete.append(f"{p}: not a regular file (not read)")
        if count == 0:
            scan.incomplete.append(f"{root}: no files to scan")
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def scan_artifacts(
    paths: Iterable[Path],
    *,
    cache_key: bytes | None = None,
    allowed: frozenset[str] = SAFE_GLOBALS,
    on_file: Callable[[Path], None] | None = None,
) -> ArtifactScan:
    """Scan files and folders: per-file results, findings, what could not be checked, notes."""
    roots = [Path(p) for p in paths]
    scan = ArtifactScan()
    for f in _collect(roots, scan):
        if on_file is not None:
            on_file(f)
        res = scan_file(f, allowed=allowed)
        in_cache = any((parent / CACHE_MARKER).is_file() for parent in f.parents)
        if in_cache and res.pickled:
            res = _cache_entry(f, res, cache_key, scan.notes)
        scan.results.append(res)
        scan.findings += res.findings
        scan.incomplete += res.incomplete
    _manifests(roots, scan)
    kinds: dict[str, int] = {}
    for r in scan.results:
        kinds[r.format] = kinds.get(r.format, 0) + 1
    scan.notes.insert(
        0,
        f"{len(scan.results)} files: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
    )
    return scan


def _cache_entry(f: Path, res: ScanResult, cache_key: bytes | None, notes: list[str]) -> ScanResult:
    if cache_key is None:
        extra = _finding(
            str(f),
            res.format,
            "CACHE-UNVERIFIED",
            "cache entry cannot be verified (no cache key)",
            hint="give --cache-key",
        )
    elif verify(f, cache_key):
        notes.append(f"{f}: HMAC verified")
        return ScanResult(f, res.format, (), res.incomplete, True)  # signed by this user's cea
    else:
        extra = _finding(
            str(f),
            res.format,
            "CACHE-UNVERIFIED",
            "cache entry has no valid HMAC: never loaded",
            hint="delete it, or rebuild the cache (--refit)",
        )
    return ScanResult(f, res.format, (*res.findings, extra), res.incomplete, True)


def _manifests(roots: list[Path], scan: ArtifactScan) -> None:
    folders = sorted({m.parent for r in roots if r.is_dir() for m in r.rglob(MANIFEST_NAME)})
    for folder in folders:
        try:
            nested = tuple(
                d.name for d in folder.iterdir() if d.is_dir() and (d / MANIFEST_NAME).is_file()
            )
            mc = check_manifest(folder, exclude_dirs=(*nested, "eval"))
        except Exception as exc:  # IntegrityError (unreadable manifest) or an OSError
            scan.findings.append(
                _finding(str(folder / MANIFEST_NAME), "manifest", "MANIFEST-UNREADABLE", str(exc))
            )
            continue
        for label, names in (("changed", mc.changed), ("missing", mc.missing), ("extra", mc.extra)):
            for name in names:
                scan.findings.append(
                    _finding(
                        str(folder / name),
                        "manifest",
                        "MANIFEST-MISMATCH",
                        f"{label} since {folder / MANIFEST_NAME} was written",
                    )
                )
        scan.notes.append(f"{folder}: manifest {'verified' if mc.ok else 'MISMATCH'}")


def scan_path(
    paths: Iterable[Path], *, cache_key: bytes | None = None, allowed: frozenset[str] = SAFE_GLOBALS
) -> tuple[list[ScanResult], list[Finding], list[str]]:
    """(per-file results, findings, notes); what could not be checked is a SCAN-INCOMPLETE
    finding here, so a caller that refuses on findings also refuses on it."""
    scan = scan_artifacts(paths, cache_key=cache_key, allowed=allowed)
    findings = list(scan.findings) + [
        _finding(text.split(":", 1)[0], "scan", "SCAN-INCOMPLETE", text, "high")
        for text in scan.incomplete
    ]
    return scan.results, findings, scan.notes


def failing(findings: Iterable[Finding], floor: str = "medium") -> list[Finding]:
    return [f for f in findings if severity_rank(f.severity) >= severity_rank(floor)]
