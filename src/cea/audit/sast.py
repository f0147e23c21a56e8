"""SAST with bandit, run with the gatekeeper's settings only.

The audited project does not configure its own gate: bandit gets no `-c` from the target,
an empty `--ini` (so a `.bandit` file in the target sets nothing) and `--ignore-nosec`. A
finding on a line marked `# nosec` is still a finding — an unreasoned waiver in the source,
which fails the gate unless the policy waives that id; the target's own bandit settings are
listed in the notes as not honoured.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from cea.audit.base import AuditContext
from cea.audit.model import CheckResult, Finding, severity_rank

_LEVELS = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high", "UNDEFINED": "low"}
_NOSEC = re.compile(r"#\s*nosec\b", re.IGNORECASE)


def _target_settings(root: Path, targets: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """What the target's own bandit configuration would have changed (not honoured): notes,
    and (test id, config file) for every test it skips — an unreasoned waiver."""
    notes: list[str] = []
    skips: list[tuple[str, str]] = []
    pyproject = root / "pyproject.toml"
    try:
        conf = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("bandit")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        conf = None
    if isinstance(conf, dict) and conf:
        keys = ", ".join(f"{k}={conf[k]!r}"[:80] for k in sorted(conf))
        notes.append(f"{pyproject} [tool.bandit] ({keys}) is the target's: not honoured")
        raw = conf.get("skips", [])
        for test in raw if isinstance(raw, list) else []:
            skips.append((str(test), str(pyproject)))
    for t in targets:
        for dirpath, _dirs, files in os.walk(t):
            if ".bandit" in files:
                ini = Path(dirpath) / ".bandit"
                notes.append(f"{ini} is the target's: not honoured")
                try:
                    text = ini.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                for m in re.finditer(r"^\s*skips\s*[=:]\s*(.+)$", text, re.MULTILINE):
                    skips += [
                        (x.strip(" '\"[]"), str(ini))
                        for x in m.group(1).split(",")
                        if x.strip(" '\"[]")
                    ]
    return notes, skips


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
        with tempfile.TemporaryDirectory() as tmp:
            ini = Path(tmp) / "bandit.ini"
            ini.write_text("[bandit]\n", encoding="utf-8")
            cmd = [
                sys.executable,
                "-m",
                "bandit",
                "-r",
                *targets,
                "-f",
                "json",
                "-q",
                "--ignore-nosec",
                "--ini",
                str(ini),
            ]
            exclude = conf.get("exclude")
            if exclude:
                cmd += ["-x", ",".join(str(ctx.root / e) for e in exclude)]
            try:
                proc = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments, no shell
                    cmd, capture_output=True, text=True, timeout=600, check=False, cwd=tmp
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
        lines_cache: dict[str, list[str]] = {}
        nosec = 0
        root = ctx.root.resolve()
        for r in data.get("results", []):
            sev = _LEVELS.get(r.get("issue_severity", "LOW"), "low")
            confidence = _LEVELS.get(r.get("issue_confidence", "LOW"), "low")
            if severity_rank(sev) < severity_rank(min_sev) or severity_rank(
                confidence
            ) < severity_rank(min_conf):
                continue
            path = Path(r["filename"]).resolve()
            rel = path.relative_to(root) if path.is_relative_to(root) else path
            suppressed = _marked_nosec(path, r, lines_cache)
            message = f"{r['issue_text']} (confidence {confidence})"
            extra: dict[str, Any] = {}
            if suppressed:
                nosec += 1
                message += " — marked '# nosec' in the source: an unreasoned waiver"
                extra = {"nosec": True}
            findings.append(
                Finding(
                    id=r["test_id"],
                    check=self.name,
                    severity=sev,  # type: ignore[arg-type]
                    location=f"{rel}:{r['line_number']}",
                    message=message,
                    hint="waive it in the gate's policy by id, with a reason and an expiry"
                    if suppressed
                    else r.get("more_info", ""),
                    extra=extra,
                )
            )
        errors = data.get("errors", [])
        totals = data.get("metrics", {}).get("_totals", {})
        target_notes, skips = _target_settings(ctx.root, targets)
        for test, where in skips:
            findings.append(
                Finding(
                    id=test,
                    check=self.name,
                    severity="medium",
                    location=where,
                    message=f"the target's bandit configuration skips {test}: an unreasoned "
                    "waiver (not honoured; its findings are reported)",
                    hint="waive it in the gate's policy by id, with a reason and an expiry",
                    extra={"skip": True},
                )
            )
        notes = [
            f"bandit scanned {totals.get('loc', '?')} lines in {', '.join(paths)}; "
            f"{len(findings) - len(skips)} findings at or above severity {min_sev}, confidence "
            f"{min_conf}; {nosec} on '# nosec' lines (not honoured)",
            *target_notes,
        ]
        incomplete = tuple(f"bandit could not parse {e.get('filename')}" for e in errors)
        return CheckResult(self.name, tuple(findings), incomplete, tuple(notes))


def _marked_nosec(path: Path, result: dict[str, Any], cache: dict[str, list[str]]) -> bool:
    key = str(path)
    if key not in cache:
        try:
            cache[key] = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            cache[key] = []
    lines = cache[key]
    numbers = result.get("line_range") or [result.get("line_number", 0)]
    return any(0 < n <= len(lines) and _NOSEC.search(lines[n - 1]) for n in numbers)
