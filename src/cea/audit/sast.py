"""SAST with bandit (configured in pyproject.toml's [tool.bandit])."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cea.audit.base import AuditContext
from cea.audit.model import CheckResult, Finding, severity_rank

_LEVELS = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high", "UNDEFINED": "low"}


class BanditCheck:
    name = "sast"

    def run(self, ctx: AuditContext) -> CheckResult:
        conf = ctx.policy.for_check(self.name)
        paths = ctx.options.get("paths") or conf.get("paths") or ["src"]
        targets = [p if Path(p).is_absolute() else str(ctx.root / p) for p in paths]
        missing = [t for t in targets if not Path(t).exists()]
        if missing:
            return CheckResult(self.name, incomplete=(f"path not found: {', '.join(missing)}",))
        min_sev = str(conf.get("severity", "low")).lower()
        min_conf = str(conf.get("confidence", "low")).lower()
        cmd = [sys.executable, "-m", "bandit", "-r", *targets, "-f", "json", "-q"]
        pyproject = ctx.root / "pyproject.toml"
        if pyproject.is_file():
            cmd += ["-c", str(pyproject)]
        try:
            proc = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments, no shell
                cmd, capture_output=True, text=True, timeout=600, check=False, cwd=ctx.root
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return CheckResult(
                self.name, incomplete=(f"bandit did not run ({exc.__class__.__name__})",)
            )
        try:
            data: dict[str, Any] = json.loads(proc.stdout)
        except ValueError:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return CheckResult(self.name, incomplete=(f"bandit failed: {tail[0][:200]}",))
        findings = []
        for r in data.get("results", []):
            sev = _LEVELS.get(r.get("issue_severity", "LOW"), "low")
            confidence = _LEVELS.get(r.get("issue_confidence", "LOW"), "low")
            if severity_rank(sev) < severity_rank(min_sev) or severity_rank(
                confidence
            ) < severity_rank(min_conf):
                continue
            loc = f"{Path(r['filename']).resolve().relative_to(ctx.root.resolve()) if Path(r['filename']).resolve().is_relative_to(ctx.root.resolve()) else r['filename']}:{r['line_number']}"
            findings.append(
                Finding(
                    id=r["test_id"],
                    check=self.name,
                    severity=sev,  # type: ignore[arg-type]
                    location=loc,
                    message=f"{r['issue_text']} (confidence {confidence})",
                    hint=r.get("more_info", ""),
                )
            )
        errors = data.get("errors", [])
        totals = data.get("metrics", {}).get("_totals", {})
        notes = (
            f"bandit scanned {totals.get('loc', '?')} lines in {', '.join(paths)}; {len(findings)} findings at or above severity {min_sev}, confidence {min_conf}",
        )
        incomplete = tuple(f"bandit could not parse {e.get('filename')}" for e in errors)
        return CheckResult(self.name, tuple(findings), incomplete, notes)
