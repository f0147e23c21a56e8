"""Run the chosen checks, apply the policy, consolidate."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cea.audit.base import AuditContext, Check
from cea.audit.model import AuditReport, CheckResult
from cea.audit.policy import PolicyCheck, apply_policy, load_policy
from cea.errors import UsageError

CHECK_NAMES = ("sast", "vulns", "sbom", "licenses", "policy", "artifacts")
DEFAULT_CHECKS = ("sast", "vulns", "sbom", "licenses", "policy")


def build_check(name: str) -> Check:
    """Closed choice -> builder (nothing named in input is imported)."""
    if name == "sast":
        from cea.audit.sast import BanditCheck

        return BanditCheck()
    if name == "vulns":
        from cea.audit.vulns import VulnsCheck

        return VulnsCheck()
    if name == "sbom":
        from cea.audit.sbom import SbomCheck

        return SbomCheck()
    if name == "policy":
        return PolicyCheck()
    if name == "licenses":
        from cea.audit.licenses import LicensesCheck

        return LicensesCheck()
    if name == "artifacts":
        from cea.audit.artifacts import ArtifactsCheck

        return ArtifactsCheck()
    raise UsageError(f"unknown check {name!r}", hint=f"choose from {', '.join(CHECK_NAMES)}")


def run_audit(
    root: Path,
    checks: tuple[str, ...],
    *,
    options: dict[str, Any] | None = None,
    policy_file: Path | None = None,
    today: date | None = None,
    on_check: Any = None,
) -> AuditReport:
    policy = load_policy(policy_file or root / "pyproject.toml")
    ctx = AuditContext(root=root, policy=policy, today=today or date.today(), options=options or {})
    results: list[CheckResult] = []
    for name in checks:
        if on_check is not None:
            on_check(name)
        result = build_check(name).run(ctx)
        results.append(apply_policy(result, policy, ctx.today) if name != "policy" else result)
    return AuditReport(str(root), tuple(results), datetime.now(UTC).isoformat(timespec="seconds"))
