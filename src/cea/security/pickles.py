"""Read a pickle the way its victims' loaders read it, without running any of it.

Nothing here imports or calls what a pickle names. Each *reading* drives a real unpickler over
the bytes with `find_class` and `persistent_load` replaced by stubs that only record what was
asked for, so the stream is parsed exactly as that loader parses it (frames, memo, marks,
argument formats, the point where it fails) — a home-made opcode walker can be fooled by any
place where it reads differently from CPython's:

- `pickle.load` / `torch.load` / `pandas.read_pickle` / `numpy.load(allow_pickle=True)`: the C
  unpickler (`_pickle.Unpickler`), which ignores FRAME boundaries and would execute "array
  bytes" that joblib skips;
- `joblib.load`: the pure-Python unpickler (`pickle._Unpickler`, strict about frames) with
  joblib's NumpyArrayWrapper handling: the raw array bytes are skipped, object arrays are a
  nested stream.

Every global either reading reaches is checked against the allowlist; both readings must agree
that the stream holds nothing else. A third pass over the opcodes validates FRAME lengths (an
opcode that straddles a frame, a frame inside a frame, a frame past the end are findings,
because the two unpicklers then read different streams) and walks `bytes` constants that are
themselves pickles. Severity: the allowlist passes silently; a small list of harmless
constructors is low (shown, not failing); anything else fails, critical where it can execute
code or reach the OS, the network or the file system.

The readings live one per loader: `pickle_reading` (the C unpickler), `joblib_reading`;
`pickle_policy` rates the globals they reach. This module combines them.
"""

from __future__ import annotations

import io
import pickletools
import time
from dataclasses import dataclass, field
from typing import Any

from cea.security.joblib_reading import ALLOWED_PICKLE_DEPTH, _joblib_reading
from cea.security.pickle_policy import (
    CRITICAL_CALLABLES,
    DANGEROUS_MODULES,
    HARMLESS_GLOBALS,
    SAFE_GLOBALS,
    canonical_global,
    critical_reason,
    severity_of,
)
from cea.security.pickle_reading import (
    SCAN_SECONDS,
    Reading,
    Unmodelled,
    _c_reading,
    _importable,
    read_value,
    stub_name,
)

__all__ = [
    "ALLOWED_PICKLE_DEPTH",
    "CRITICAL_CALLABLES",
    "DANGEROUS_MODULES",
    "HARMLESS_GLOBALS",
    "SAFE_GLOBALS",
    "SCAN_SECONDS",
    "PickleReport",
    "Reading",
    "Unmodelled",
    "analyze_pickle",
    "canonical_global",
    "critical_reason",
    "looks_like_pickle",
    "read_value",
    "severity_of",
    "stub_name",
]


@dataclass
class PickleReport:
    """What is wrong with a pickle stream (or a run of them). `problems` are (kind, message,
    severity); kind "global" messages are the dotted global."""

    problems: list[tuple[str, str, str]] = field(default_factory=list)
    streams: int = 0
    end: int = 0
    is_pickle: bool = False
    complete: bool = False
    incomplete: list[str] = field(default_factory=list)  # what could not be read to the end
    timed_out: bool = False

    def problem(self, kind: str, message: str, severity: str = "high") -> None:
        if all((k, m) != (kind, message) for k, m, _ in self.problems):
            self.problems.append((kind, message, severity))


def _structure(
    data: bytes | memoryview,
    start: int,
    report: PickleReport,
    depth: int,
    deadline: float | None = None,
) -> None:
    """Opcode pass: FRAME consistency, bytes constants that hold pickles, uncheckable opcodes."""
    f = io.BytesIO(data)
    f.seek(start)
    frame_end = -1
    try:
        for op, arg_, pos in pickletools.genops(f):
            arg: Any = arg_
            end = f.tell()
            if pos is None:  # (genops on a file always gives positions)
                return
            if op.name == "FRAME":
                if pos < frame_end:
                    report.problem(
                        "frame", "a FRAME starts inside another frame (loaders disagree)"
                    )
                if end + int(arg) > len(data):
                    report.problem("frame", "a FRAME length runs past the end of the data")
                frame_end = end + int(arg)
                continue
            if pos < frame_end < end:
                report.problem(
                    "frame",
                    f"{op.name} at byte {pos} straddles a frame boundary (loaders disagree)",
                )
            if op.name in ("EXT1", "EXT2", "EXT4"):
                report.problem("extension", f"{op.name} (copyreg extension code) cannot be checked")
            elif op.name in ("NEXT_BUFFER", "READONLY_BUFFER"):
                report.problem("buffer", "out-of-band buffers cannot be checked", "medium")
            elif op.name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"):
                blob = bytes(arg)
                if len(blob) > 2 and blob[0] == 0x80 and blob[1] in (2, 3, 4, 5):
                    if depth >= ALLOWED_PICKLE_DEPTH:
                        report.problem("nested", "pickles nested in bytes too deeply")
                        continue
                    inner = analyze_pickle(blob, depth=depth + 1, deadline=deadline)
                    for kind, message, sev in inner.problems:
                        if kind == "global":
                            report.problem(
                                "nested-global", f"a bytes constant holds a pickle: {message}", sev
                            )
                        elif sev in ("high", "critical"):
                            report.problem(kind, f"in a pickle inside a bytes constant: {message}")
            if op.name == "STOP":
                return
    except Exception:  # the readings report broken streams; this pass only adds to them
        return


def analyze_pickle(
    data: bytes | memoryview,
    start: int = 0,
    *,
    allowed: frozenset[str] = SAFE_GLOBALS,
    sequence: bool = False,
    depth: int = 0,
    raw: bool = False,
    deadline: float | None = None,
) -> PickleReport:
    """Read the stream at `start` as the C unpickler and as joblib would; with `sequence`, go on
    with the streams that follow (legacy torch files, pickles written one after another).

    A stream that imports nothing before it breaks runs nothing under any loader; it is still
    reported (medium) when it starts like a pickle (PROTO 2-5) — a broken pickle file — unless
    `raw` says the bytes are data no loader unpickles (tensor storages)."""
    report = PickleReport()
    pos = start
    while pos < len(data):
        if deadline is not None and time.monotonic() > deadline:
            report.incomplete.append(
                f"the time budget ran out at byte {pos} (the streams after it are not read)"
            )
            report.timed_out = True
            break
        c = _c_reading(data, pos, deadline)
        j = _joblib_reading(data, pos, deadline=deadline)
        if c.timed_out or j.timed_out:
            report.incomplete.append(f"a pickle stream at byte {pos} takes too long to read")
            report.timed_out = True
        for r in (c, j):
            if r.unmodelled:  # (the loader reads on where this reading cannot: never dropped)
                report.incomplete.append(
                    f"the {r.loader} reading of the stream at byte {pos} stopped at byte "
                    f"{r.end} on a shape cea does not model ({r.error})"
                )
        reached = [*c.imports, *(g for g in j.imports if g not in c.imports)]
        if not (c.complete or j.complete or reached):
            if (
                pos == start
                and not raw
                and data[pos : pos + 1] == b"\x80"
                and (data[pos + 1 : pos + 2] in (b"\x02", b"\x03", b"\x04", b"\x05"))
            ):
                report.is_pickle = True
                _structure(data, pos, report, depth, deadline)
                report.problem(
                    "unparsable",
                    f"truncated or unparsable pickle stream ({c.error}); it imports nothing "
                    "before it breaks",
                    "medium",
                )
            break  # not a pickle (at this offset): nothing in it can run
        report.is_pickle = True
        report.streams += 1
        if report.streams == 1 or c.complete or j.complete:
            _structure(data, pos, report, depth, deadline)
        for g in reached:
            sev = severity_of(g, allowed)
            if sev == "info":
                continue
            if g not in j.imports and j.complete and j.joblib_arrays and not _importable(g):
                # pickle.load reading joblib's array/object-array bytes as opcodes picks up
                # names like "NumpyArrayWrapper.dtype": no such module, the import fails there
                continue
            note = ""
            if g not in j.imports and j.joblib_arrays:
                note = " (in bytes that joblib skips as array data: pickle.load runs them)"
            elif g not in c.imports:
                note = " (only as joblib reads it)"
            report.problem("global", f"{g}{note}", sev)
        for gadget in {*c.gadgets, *j.gadgets}:
            report.problem("gadget", gadget)
        if not (c.complete or j.complete):
            if not report.timed_out:  # (out of time: incomplete, said above)
                report.problem(
                    "unparsable",
                    f"truncated or unparsable pickle stream ({c.error or j.error})",
                    "high",
                )
            report.end = max(c.end, j.end)
            break
        report.complete = True
        report.end = max(c.end if c.complete else 0, j.end if j.complete else 0)
        if (
            sequence
            and c.complete
            and j.complete
            and c.end < j.end
            and depth < ALLOWED_PICKLE_DEPTH
        ):
            # the C reading stopped inside what joblib reads as array data: a victim calling
            # pickle.load again starts there — read that continuation too
            inner = analyze_pickle(
                data,
                c.end,
                allowed=allowed,
                sequence=True,
                depth=depth + 1,
                raw=True,
                deadline=deadline,
            )
            report.incomplete += inner.incomplete
            for kind, message, sev in inner.problems:
                if kind == "global":
                    report.problem(kind, f"{message} (a stream after the first STOP)", sev)
        if not sequence or report.end <= pos:
            break
        pos = report.end
    return report


def looks_like_pickle(data: bytes) -> bool:
    """True when a loader would read `data` as a pickle far enough to import or finish."""
    return analyze_pickle(data[: 1 << 20] if len(data) > 1 << 20 else data).is_pickle
