"""The one small interface every format's reading is written against (`Reader`): where
findings and incomplete reasons go, the per-file budgets (time, members, expanded bytes) and
the way a nested blob is handed back to the scanner. The readings, one module per loader:
`numpy_reading`, `torch_reading`, `archives` (zip, tar, compressed streams as joblib and
Python read them), `configs` (Keras and transformers configs), `safetensors_reading`; the
pickle readings are `cea.security.pickles`.
"""

from __future__ import annotations

import time
from typing import Any

from cea.security.findings import Finding
from cea.security.pickles import PickleReport

CHECK = "artifacts"
MAX_DEPTH = 6  # archives inside archives
# Budgets per scanned file; spending one makes the scan of that file incomplete (exit 7), with
# the file and the limit named — never a silent pass, never an endless scan.
FILE_SECONDS = 120.0  # wall time for everything read in one file (all readings, all members)
MAX_FILE_BYTES = 16 * 2**30  # size of a file that is read at all
MAX_MEMBERS = 20_000  # per scanned file, all archive levels together (hidden entries too)
MAX_EXPANDED = 2 * 2**30  # bytes decompressed per scanned file
BOMB_FINDING_RATIO = 100  # past the byte budget at this expansion ratio: also a bomb finding


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


class Reader:
    """The state of the scan of one top-level file, shared by every format's reading: findings,
    incomplete reasons, budgets. `blob` hands nested bytes back to the scanner."""

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

    def blob(self, data: bytes, where: str, name: str, depth: int, raw: bool = False) -> str:
        """Scan nested bytes (a member, a decompressed stream) as a file of its own."""
        raise NotImplementedError

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
