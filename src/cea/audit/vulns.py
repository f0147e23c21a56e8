"""Known vulnerabilities of the installed distributions or of a pinned requirements/lock file.

With an offline OSV database (`--osv-db`), our own matcher decides (OSV range semantics, local
version labels matched by their public version). Without one, pip-audit is asked; here its
vulnerability service is unreachable, and pip-audit then marks every package "could not be
audited" while still saying "No known vulnerabilities found": cea reports that as
**incomplete** (exit 7), never as a pass.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

from cea.audit.base import AuditContext
from cea.audit.model import CheckResult, Finding
from cea.audit.osv import OsvDatabase
from cea.errors import DataError

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;#\\]+)")


def installed_distributions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            out[canonicalize_name(name)] = dist.version
    return out


def pinned_requirements(path: Path) -> tuple[dict[str, str], list[str]]:
    """`name==version` pins of a requirements/lock file; unpinned lines are returned apart."""
    pins: dict[str, str] = {}
    unpinned: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"requirements file {path} is unreadable ({exc.__class__.__name__})"
        ) from exc
    for line in lines:
        text = line.strip()
        if not text or text.startswith(("#", "-", "--")):
            continue
        m = _PIN.match(text)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
        elif re.match(r"^[A-Za-z0-9]", text):
            unpinned.append(text.split()[0])
    return pins, unpinned


class VulnsCheck:
    name = "vulns"

    def run(self, ctx: AuditContext) -> CheckResult:
        req = ctx.options.get("requirements")
        osv_path = ctx.options.get("osv_db")
        incomplete: list[str] = []
        if req:
            packages, unpinned = pinned_requirements(Path(req))
            source = str(req)
            incomplete += [
                f"{name}: not pinned to one version, cannot be audited" for name in unpinned
            ]
        else:
            packages = installed_distributions()
            source = "installed distributions"
        if osv_path:
            return self._with_osv(Path(osv_path), packages, source, incomplete)
        return self._with_pip_audit(ctx, req, source, incomplete)

    def _with_osv(
        self, path: Path, packages: dict[str, str], source: str, incomplete: list[str]
    ) -> CheckResult:
        db = OsvDatabase.load(path)
        findings = []
        for name, version in sorted(packages.items()):
            for adv in db.lookup(name, version):
                aliases = f" ({', '.join(adv.aliases)})" if adv.aliases else ""
                findings.append(
                    Finding(
                        id=adv.id,
                        check=self.name,
                        severity=adv.severity,  # type: ignore[arg-type]
                        location=f"{name}=={version}",
                        message=f"{adv.summary}{aliases}",
                        hint=f"upgrade {name} past the fixed version named in {adv.id}",
                        extra={"aliases": list(adv.aliases)},
                    )
                )
        notes = (
            f"{len(packages)} packages from {source} against the OSV database {path} "
            f"({db.records} records, newest {db.date()})",
        )
        return CheckResult(self.name, tuple(findings), tuple(incomplete), notes)

    def _with_pip_audit(
        self, ctx: AuditContext, req: str | None, source: str, incomplete: list[str]
    ) -> CheckResult:
        cmd = [sys.executable, "-m", "pip_audit", "-f", "json", "--progress-spinner", "off"]
        if req:
            cmd += ["-r", str(req), "--no-deps", "--disable-pip"]
        try:
            proc = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments, no shell
                cmd,
                capture_output=True,
                text=True,
                timeout=int(ctx.options.get("timeout", 300)),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return CheckResult(
                self.name,
                incomplete=(
                    *incomplete,
                    f"pip-audit did not finish ({exc.__class__.__name__}); give --osv-db to audit offline",
                ),
            )
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            tail = (proc.stderr or "no output").strip().splitlines()[-1:]
            return CheckResult(
                self.name,
                incomplete=(
                    *incomplete,
                    f"pip-audit failed: {tail[0][:200] if tail else ''}; give --osv-db to audit offline",
                ),
            )
        deps = data.get("dependencies", [])
        skipped = [d for d in deps if d.get("skip_reason")]
        findings = [
            Finding(
                id=v["id"],
                check=self.name,
                severity="high",
                location=f"{d['name']}=={d.get('version', '?')}",
                message=(v.get("description") or "")[:300],
                hint=f"upgrade to {', '.join(v.get('fix_versions', [])) or 'a fixed version'}",
                extra={"aliases": v.get("aliases", [])},
            )
            for d in deps
            for v in d.get("vulns", [])
        ]
        if skipped:
            reasons = sorted({str(d["skip_reason"])[:120] for d in skipped})
            incomplete.append(
                f"{len(skipped)} of {len(deps)} packages could not be audited by pip-audit "
                f"({'; '.join(reasons[:2])}); give --osv-db to audit offline"
            )
        if not deps:
            incomplete.append("pip-audit audited no package; give --osv-db to audit offline")
        notes = (
            f"pip-audit over {source}: {len(deps) - len(skipped)} of {len(deps)} packages audited",
        )
        return CheckResult(self.name, tuple(findings), tuple(incomplete), notes)
