"""Values of an audit: findings, per-check results, the consolidated report."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from cea.security.findings import SEVERITIES, Finding, Severity, severity_rank

__all__ = ["SEVERITIES", "CheckResult", "Finding", "Severity", "Waiver", "severity_rank"]

Status = Literal["passed", "findings", "incomplete"]


@dataclass(frozen=True)
class CheckResult:
    check: str
    findings: tuple[Finding, ...] = ()
    incomplete: tuple[str, ...] = ()  # why (parts of) the check could not run
    notes: tuple[str, ...] = ()  # what was checked (counts, database date, ...)
    fail_on: Severity = "medium"
    data: dict[str, Any] = field(default_factory=dict)  # check-specific listing (e.g. licenses)

    def failing(self) -> tuple[Finding, ...]:
        floor = severity_rank(self.fail_on)
        return tuple(
            f for f in self.findings if f.waived_by is None and severity_rank(f.severity) >= floor
        )

    @property
    def status(self) -> Status:
        if self.failing():
            return "findings"
        if self.incomplete:
            return "incomplete"
        return "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "fail_on": self.fail_on,
            "findings": [f.to_dict() for f in self.findings],
            "incomplete": list(self.incomplete),
            "notes": list(self.notes),
            **({"data": self.data} if self.data else {}),
        }


@dataclass(frozen=True)
class AuditReport:
    target: str
    results: tuple[CheckResult, ...]
    created: str

    @property
    def status(self) -> Status:
        statuses = {r.status for r in self.results}
        if "findings" in statuses:
            return "findings"  # findings win over incomplete (DESIGN §3)
        if "incomplete" in statuses:
            return "incomplete"
        return "passed"

    def exit_code(self) -> int:
        return {"passed": 0, "findings": 1, "incomplete": 7}[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "created": self.created,
            "status": self.status,
            "exit_code": self.exit_code(),
            "results": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True)
class Waiver:
    id: str
    reason: str
    expires: date
    check: str | None = None
    location: str | None = None
    match: str = "exact"  # "glob": `id` is an fnmatch pattern (noted in every report)

    def covers(self, finding: Finding) -> bool:
        if self.match == "glob":
            if not fnmatch.fnmatchcase(finding.id, self.id):
                return False
        elif finding.id != self.id:
            return False
        if self.check and self.check != finding.check:
            return False
        return self.location is None or fnmatch.fnmatch(finding.location, self.location)
