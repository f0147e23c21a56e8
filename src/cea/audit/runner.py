"""Run the chosen checks, apply the policy, consolidate."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cea.audit.base import AuditContext, Check
from cea.audit.model import AuditReport, CheckResult
from cea.audit.policy import Policy, PolicyCheck, apply_policy, load_policy
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


def resolve_policy(
    policy_file: Path | None,
    *,
    cwd: Path,
    scanned: list[Path],
    today: date,
) -> Policy:
    """The gatekeeper's policy: `--policy FILE`, else `cwd/pyproject.toml` — but never a file
    inside a folder scanned for artifacts (a scanned model must not waive its own findings)."""
    if policy_file is not None:
        return load_policy(policy_file, today, required=True)
    candidate = cwd / "pyproject.toml"
    if not candidate.is_file():
        return Policy()
    real = candidate.resolve()
    for root in scanned:
        base = root.resolve()
        if real == base or real.is_relative_to(base):
            return Policy(
                notes=(
                    f"{candidate} lies inside a scanned path and is not used as policy "
                    "(give --policy)",
                )
            )
    return load_policy(candidate, today)


def run_audit(
    root: Path,
    checks: tuple[str, ...],
    *,
    options: dict[str, Any] | None = None,
    policy_file: Path | None = None,
    today: date | None = None,
    on_check: Any = None,
    cwd: Path | None = None,
) -> AuditReport:
    """Run each check isolated: one that raises becomes an incomplete result with the cause,
    and every other check still reports."""
    options = options or {}
    today = today or date.today()
    scanned = [Path(p) for p in (options.get("artifact_paths") or [])]
    if "artifacts" in checks and not scanned:
        scanned = [root]
    policy = resolve_policy(policy_file, cwd=cwd or Path.cwd(), scanned=scanned, today=today)
    ctx = AuditContext(root=root, policy=policy, today=today, options=options)
    results: list[CheckResult] = []
    for name in checks:
        check = build_check(name)
        if on_check is not None:
            on_check(name)
        try:
            result = check.run(ctx)
        except Exception as exc:  # a broken check is incomplete; the others still run
            result = CheckResult(
                name, incomplete=(f"the check failed: {exc.__class__.__name__}: {str(exc)[:200]}",)
            )
        results.append(apply_policy(result, policy, ctx.today) if name != "policy" else result)
    return AuditReport(str(root), tuple(results), datetime.now(UTC).isoformat(timespec="seconds"))
