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
max_waiver_days = 365               # no waiver may expire further ahead than this
[[tool.cea.audit.waivers]]
id = "B404"                         # rule / advisory id (exact; a pattern needs match = "glob")
check = "sast"                      # optional: only for this check
location = "src/cea/train/run.py*"  # optional: fnmatch pattern on the finding's location
reason = "git rev-parse with a fixed argument list"
expires = 2027-06-30                # required: an expired waiver fails the audit
```

The policy belongs to whoever runs the gate: `--policy FILE`, else the pyproject.toml of the
folder the command runs in — never a file inside a folder being scanned for artifacts (a
downloaded model would otherwise waive its own findings).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from cea.audit.model import SEVERITIES, CheckResult, Finding, Severity, Waiver
from cea.errors import ConfigError


@dataclass(frozen=True)
class Policy:
    fail_on: Severity = "medium"
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    waivers: tuple[Waiver, ...] = ()
    source: str = "defaults"
    max_waiver_days: int = 365
    notes: tuple[str, ...] = ()

    @property
    def glob_waivers(self) -> tuple[Waiver, ...]:
        return tuple(w for w in self.waivers if w.match == "glob")

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


def load_policy(path: Path | None, today: date | None = None, *, required: bool = False) -> Policy:
    """Read `[tool.cea.audit]` from a pyproject.toml (or a TOML file holding that table).

    Every waiver needs an id, a reason and an expiry date at most `max_waiver_days` ahead;
    anything else is a ConfigError (exit 3), so a bad policy never half-applies."""
    today = today or date.today()
    if path is None or not path.is_file():
        if required and path is not None:
            from cea.errors import MissingResourceError

            raise MissingResourceError(f"policy file {path} not found")
        return Policy()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply to read") from exc
    table: Any = data
    for depth, key in enumerate(("tool", "cea", "audit")):
        table = table.get(key, {})
        if not isinstance(table, dict):
            name = ".".join(("tool", "cea", "audit")[: depth + 1])
            raise ConfigError(
                f"{path}: {name} must be a table, not {type(table).__name__}",
                hint="the policy lives in [tool.cea.audit] (see security/POLICY.md)",
            )
    max_days = table.get("max_waiver_days", 365)
    if not isinstance(max_days, int) or isinstance(max_days, bool) or not 1 <= max_days <= 3650:
        raise ConfigError(f"{path}: max_waiver_days must be a whole number of days from 1 to 3650")
    raw_waivers = table.get("waivers", [])
    if not isinstance(raw_waivers, list):
        raise ConfigError(f"{path}: waivers must be an array of tables")
    waivers = [
        _waiver(raw, f"{path}: [[tool.cea.audit.waivers]] #{i + 1}", today, max_days)
        for i, raw in enumerate(raw_waivers)
    ]
    checks = {k: v for k, v in table.items() if isinstance(v, dict)}
    if "licenses" in checks:  # per-package license exceptions are waivers too
        from cea.audit.licenses import load_license_policy

        lic = checks["licenses"]
        where = f"{path}: [tool.cea.audit.licenses]"
        for key in ("allow", "deny", "exceptions"):
            if key in lic and not isinstance(lic[key], list):
                raise ConfigError(f"{where}: {key} must be an array")
        for i, raw in enumerate(lic.get("exceptions", [])):
            if isinstance(raw, dict) and raw.get("expires"):
                _expiry(raw["expires"], f"{where} exception #{i + 1}")
        try:
            exceptions = load_license_policy(lic)[1]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        for w in exceptions:
            _check_expiry(w.expires, f"{path}: license exception ({w.location})", today, max_days)
            waivers.append(w)
    fail_on = _severity(table.get("fail_on", "medium"), "fail_on")
    for name, conf in checks.items():
        if "fail_on" in conf:
            _severity(conf["fail_on"], f"{name}.fail_on")
    return Policy(fail_on, checks, tuple(waivers), str(path), max_days)


def _check_expiry(expires: date, where: str, today: date, max_days: int) -> None:
    if expires > today + timedelta(days=max_days):
        raise ConfigError(
            f"{where}: expires {expires.isoformat()}, more than {max_days} days ahead",
            hint="waivers are reviewed: give an expiry within max_waiver_days",
        )


def _expiry(value: Any, where: str) -> date:
    """A waiver's expiry: a TOML date or a "YYYY-MM-DD" string (a date-time is refused: it
    cannot be compared with today's date, and the day is what a waiver runs to)."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: expires {value!r} is not a date (YYYY-MM-DD)") from exc
    if isinstance(value, datetime):
        raise ConfigError(
            f"{where}: expires {value.isoformat()} is a date and time; give a date (YYYY-MM-DD)"
        )
    if not isinstance(value, date):
        raise ConfigError(f"{where}: expires must be a date (YYYY-MM-DD)")
    return value


def _waiver(raw: Any, where: str, today: date, max_days: int) -> Waiver:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    missing = [k for k in ("id", "reason", "expires") if not raw.get(k)]
    if missing:
        raise ConfigError(
            f"{where} lacks {', '.join(missing)}",
            hint="every waiver needs id, reason and expires",
        )
    if (
        not isinstance(raw["id"], str)
        or not isinstance(raw["reason"], str)
        or not raw["reason"].strip()
    ):
        raise ConfigError(f"{where}: id and reason must be non-empty strings")
    unknown = sorted(set(raw) - {"id", "reason", "expires", "check", "location", "match"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    match = raw.get("match", "exact")
    if match not in ("exact", "glob"):
        raise ConfigError(f"{where}: match must be 'exact' or 'glob'")
    if match == "exact" and any(c in raw["id"] for c in "*?["):
        raise ConfigError(
            f"{where}: id {raw['id']!r} is a pattern", hint='ids are exact; add match = "glob"'
        )
    expires = _expiry(raw["expires"], where)
    _check_expiry(expires, where, today, max_days)
    for key in ("check", "location"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ConfigError(f"{where}: {key} must be a string")
    return Waiver(
        raw["id"], raw["reason"], expires, raw.get("check"), raw.get("location"), str(match)
    )


def apply_policy(result: CheckResult, policy: Policy, today: date) -> CheckResult:
    """Waive what valid waivers cover; an expired waiver that matches is itself a finding."""
    findings: list[Finding] = []
    notes = list(result.notes)
    for f in result.findings:
        covering = [w for w in policy.waivers if w.covers(f)]
        valid = [w for w in covering if w.expires >= today]
        if valid:
            findings.append(f.waive(valid[0].reason))
            if valid[0].match == "glob" and valid[0].check != "licenses":
                note = f"waived by the glob waiver {valid[0].id!r} ({policy.source})"
                if note not in notes:
                    notes.append(note)
        else:
            findings.append(f)
    return CheckResult(
        result.check,
        tuple(findings),
        result.incomplete,
        tuple(notes),
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
        notes = [f"{len(policy.waivers)} waivers in {policy.source}", *policy.notes]
        globs = [w.id for w in policy.glob_waivers if w.check != "licenses"]
        if globs:
            notes.append(f"glob waivers (match any id like them): {', '.join(globs)}")
        return CheckResult(self.name, findings, (), tuple(notes), "low")
