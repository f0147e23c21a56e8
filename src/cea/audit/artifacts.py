"""`cea audit artifacts PATH...`: the audit check over the model-file scanner.

The scanner itself (`cea.security.artifacts`) sits under the training and evaluation code, which
verifies run folders with it before loading them; this module is the check `cea audit` runs and
the public entry point `cea.audit.artifacts.scan_path` / `scan_artifacts`.
"""

from __future__ import annotations

from pathlib import Path

from cea.audit.base import AuditContext
from cea.audit.model import CheckResult
from cea.security.artifacts import (
    CHECK,
    ArtifactScan,
    ScanResult,
    failing,
    identify,
    scan_artifacts,
    scan_file,
    scan_path,
)

__all__ = [
    "ArtifactScan",
    "ArtifactsCheck",
    "ScanResult",
    "failing",
    "identify",
    "scan_artifacts",
    "scan_file",
    "scan_path",
]


class ArtifactsCheck:
    name = CHECK

    def run(self, ctx: AuditContext) -> CheckResult:
        paths = [Path(p) for p in (ctx.options.get("artifact_paths") or [ctx.root])]
        key = ctx.options.get("cache_key")
        scan = scan_artifacts(paths, cache_key=key, on_file=ctx.options.get("on_file"))
        notes = scan.notes[:20]
        if len(scan.notes) > 20:
            notes.append(f"... {len(scan.notes) - 20} more notes")
        return CheckResult(
            self.name, tuple(scan.findings), tuple(scan.incomplete), tuple(notes), "medium"
        )
