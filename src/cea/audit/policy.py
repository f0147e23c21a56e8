"""Policy from `[tool.cea.audit]` in pyproject.toml: thresholds per check and waivers.

```toml
[tool.cea.audit]
fail_on = "medium"                  # default threshold for every check
[tool.cea.audit.sast]
severity = "medium"                 # bandit: report from this severity ...
confidence = "medium"               # ... and confidence
paths = ["src"]
[tool.cea.audit.vulns]
fail_on = "low"                     # any known vulnerability fails
[[tool.cea.audit.waivers]]
id = "B404"                         # rule / advisory id (exact)
check = "sast"                      # optional: only for this check
location = "src/cea/train/run.py*"  # optional: fnmatch pattern on the finding's location
reason = "git rev-parse with a fixed argument list"
expires = 2027-06-30                # required: an expired waiver fails the audit
```
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cea.audit.model import SEVERITIES, CheckResult, Finding, Severity
from cea.errors import ConfigError


@dataclass(frozen=True)
class Waiver:
    id: str
    reason: str
    expires: date
    check: str | None = None
    location: str | None = None

    def covers(self, finding: Finding) -> bool:
        if not fnmatch.fnmatch(finding.id, self.id) or (self.check and self.check != finding.check):
            return False
        return self.location is None or fnmatch.fnmatch(finding.location, self.location)


@dataclass(frozen=True)
class Policy:
    fail_on: Severity = "medium"
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    waivers: tuple[Waiver, ...] = ()
    source: str = "defaults"

    def for_check(self, name: str) -> dict[str, Any]:
        return self.checks.get(name, {})

    def threshold(self, name: str) -> Severity:
        value = self.for_check(name).get("fail_on", self.fail_on)
        return _severity(value, f"{name}.fail_on")


def _severity(value: Any, where: str) -> Severity:
    if value not in SEVERITIES:
        raise ConfigError(
            f"[tool.cea.audit] {where}: {value!r} is not one of {', '.join(SEVERITIES)}"
        )
    return value  # type: ignore[no-any-return]


def load_policy(path: Path | None) -> Policy:
    """Read `[tool.cea.audit]` from a pyproject.toml (or a TOML file holding that table)."""
    if path is None or not path.is_file():
        return Policy()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    table = data.get("tool", {}).get("cea", {}).get("audit", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.cea.audit] must be a table")
    waivers = []
    for i, raw in enumerate(table.get("waivers", [])):
        where = f"{path}: [[tool.cea.audit.waivers]] #{i + 1}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a table")
        missing = [k for k in ("id", "reason", "expires") if not raw.get(k)]
        if missing:
            raise ConfigError(
                f"{where} lacks {', '.join(missing)}",
                hint="every waiver needs id, reason and expires",
            )
        expires = raw["expires"]
        if isinstance(expires, str):
            try:
                expires = date.fromisoformat(expires)
            except ValueError as exc:
                raise ConfigError(
                    f"{where}: expires {expires!r} is not a date (YYYY-MM-DD)"
                ) from exc
        if not isinstance(expires, date):
            raise ConfigError(f"{where}: expires must be a date (YYYY-MM-DD)")
        waivers.append(
            Waiver(
                str(raw["id"]), str(raw["reason"]), expires, raw.get("check"), raw.get("location")
            )
        )
    checks = {k: v for k, v in table.items() if isinstance(v, dict)}
    if "licenses" in checks:  # per-package license exceptions are waivers too
        from cea.audit.licenses import load_license_policy

        waivers += load_license_policy(checks["licenses"])[1]
    fail_on = _severity(table.get("fail_on", "medium"), "fail_on")
    return Policy(fail_on, checks, tuple(waivers), str(path))


def apply_policy(result: CheckResult, policy: Policy, today: date) -> CheckResult:
    """Waive what valid waivers cover; an expired waiver that matches is itself a finding."""
    findings: list[Finding] = []
    for f in result.findings:
        covering = [w for w in policy.waivers if w.covers(f)]
        valid = [w for w in covering if w.expires >= today]
        if valid:
            findings.append(f.waive(valid[0].reason))
        else:
            findings.append(f)
    return CheckResult(
        result.check,
        tuple(findings),
        result.incomplete,
        result.notes,
        policy.threshold(result.check),
        result.data,
    )


class PolicyCheck:
    """The policy itself: every expired waiver is a finding (high), whether or not it matches."""

    name = "policy"

    def run(self, ctx: Any) -> CheckResult:
        policy: Policy = ctx.policy
        findings = tuple(
            Finding(
                id="WAIVER-EXPIRED",
                check=self.name,
                severity="high",
                location=f"{policy.source}: waiver {w.id}",
                message=f"waiver for {w.id} expired on {w.expires.isoformat()} ({w.reason})",
                hint="fix the finding, or renew the waiver with a new reason and expiry date",
            )
            for w in policy.waivers
            if w.expires < ctx.today
        )
        notes = (f"{len(policy.waivers)} waivers in {policy.source}",)
        return CheckResult(self.name, findings, (), notes, "low")
