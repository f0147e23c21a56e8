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

One module per loader holds its reading (see `cea.security.scan_base`); this one identifies
the file, hands it to every reading that applies and walks files and folders.
"""

from __future__ import annotations

import gc
import io
import os
import stat
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cea.security import scan_base as limits
from cea.security.archive_formats import _container_kind, _container_kinds, _data_kind
from cea.security.archives import ArchiveReading
from cea.security.configs import ConfigReading
from cea.security.findings import Finding, severity_rank
from cea.security.manifest import MANIFEST_NAME, check_manifest
from cea.security.numpy_reading import NumpyReading
from cea.security.pickles import SAFE_GLOBALS, analyze_pickle
from cea.security.safetensors_reading import _read_safetensors_header, check_safetensors
from cea.security.scan_base import CHECK, MAX_DEPTH, _finding
from cea.security.signed_cache import CACHE_MARKER, verify
from cea.security.torch_reading import LEGACY_TORCH_MAGIC

__all__ = [
    "CHECK",
    "ArtifactScan",
    "ScanResult",
    "check_safetensors",
    "failing",
    "identify",
    "scan_artifacts",
    "scan_file",
    "scan_path",
]


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


def identify(data: bytes) -> str:
    """The format of `data` as the scan names it (a pickle whatever it may also look like)."""
    report = analyze_pickle(data)
    if report.is_pickle:
        return "pickle"
    return _container_kind(data) or _data_kind(data)


class _Scanner(ArchiveReading, NumpyReading, ConfigReading):
    """Scans one top-level file (and everything inside it): every reading that applies."""

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


@contextmanager
def unraisable_recorded(sink: list[str]) -> Iterator[None]:
    """Errors Python cannot raise (in a finalizer: "deallocated bytearray object has exported
    buffers") are printed and forgotten by default; during a scan they are recorded, so the
    file is incomplete (exit 7) rather than passed with noise on stderr."""
    previous = sys.unraisablehook

    def hook(u: Any) -> None:
        sink.append(f"{getattr(u.exc_type, '__name__', 'error')}: {u.exc_value}")

    sys.unraisablehook = hook
    try:
        yield
    finally:
        # the young generation only: finalizers of cycles the scan just left behind run here,
        # inside the hook (a full collection per file cost more than the scan itself)
        gc.collect(0)
        sys.unraisablehook = previous


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
        if size > limits.MAX_FILE_BYTES:
            return ScanResult(
                path,
                fmt,
                (),
                (
                    f"{path}: byte budget exhausted (limit {limits.MAX_FILE_BYTES} bytes per file read)",
                ),
            )
        data = path.read_bytes()
    except OSError as exc:
        return ScanResult(path, fmt, (), (f"{path}: cannot read ({exc.strerror or exc})",))
    swallowed: list[str] = []
    with unraisable_recorded(swallowed):
        try:
            fmt = s.blob(data, str(path), path.name, 0)
        except RecursionError:
            s.incomplete.append(f"{path}: nested too deeply to scan")
        except Exception as exc:  # a scanner bug on hostile bytes is incomplete, never a pass
            s.incomplete.append(
                f"{path}: the scan failed ({exc.__class__.__name__}: {str(exc)[:80]})"
            )
    for text in swallowed[:1]:  # an error Python could only print (in a __del__, say)
        s.incomplete.append(f"{path}: the scan hit an error it could not finish ({text[:80]})")
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
