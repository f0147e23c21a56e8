"""Values of an audit: findings, per-check results, the consolidated report."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
Status = Literal["passed", "findings", "incomplete"]


def severity_rank(sev: str) -> int:
    return SEVERITIES.index(sev) if sev in SEVERITIES else SEVERITIES.index("medium")


@dataclass(frozen=True)
class Finding:
    id: str  # rule or advisory id: B602, GHSA-..., SBOM-DRIFT, WAIVER-EXPIRED
    check: str
    severity: Severity
    location: str  # file:line, package==version, a path
    message: str
    hint: str = ""
    waived_by: str | None = None  # the waiver's reason when a valid waiver covers it
    extra: dict[str, Any] = field(default_factory=dict)

    def waive(self, reason: str) -> Finding:
        return replace(self, waived_by=reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "severity": self.severity,
            "location": self.location,
            "message": self.message,
            "hint": self.hint,
            "waived_by": self.waived_by,
            **({"extra": self.extra} if self.extra else {}),
        }


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
