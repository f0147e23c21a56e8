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


def environment_paths(python: str | None) -> list[str] | None:
    """The import path of another interpreter (`--python`): its distributions are then read
    from there (metadata only: nothing of that environment is imported here). None: ours."""
    if python is None:
        return None
    from cea.errors import MissingResourceError

    try:
        proc = subprocess.run(  # noqa: S603 - the interpreter the user named, fixed arguments
            [python, "-c", "import json, sys; print(json.dumps(sys.path))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        paths = [p for p in json.loads(proc.stdout) if p]
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise MissingResourceError(
            f"--python {python}: not a Python interpreter that runs ({exc.__class__.__name__})",
            hint="give the path of the environment's python (e.g. .venv/bin/python)",
        ) from exc
    return paths


def installed_distributions(paths: list[str] | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    dists = md.distributions() if paths is None else md.distributions(path=paths)
    for dist in dists:
        name = dist.metadata["Name"]
        if name and canonicalize_name(name) not in out:  # (the first on the path wins)
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
        python = ctx.options.get("python")
        paths = environment_paths(python)
        incomplete: list[str] = []
        extra_notes: list[str] = []
        if req:
            packages, unpinned = pinned_requirements(Path(req))
            source = str(req)
            incomplete += [
                f"{name}: not pinned to one version, cannot be audited" for name in unpinned
            ]
            env = installed_distributions(paths)
            for name in ("torch",):  # installed per platform, outside the hashed lock
                if name not in packages and name in env:
                    packages[name] = env[name]
                    extra_notes.append(
                        f"{name} is not in {req} (installed per platform): its installed "
                        f"version {env[name]} is audited"
                    )
                elif name not in packages:
                    extra_notes.append(f"{name} is neither in {req} nor installed: not audited")
        else:
            packages = installed_distributions(paths)
            source = f"the distributions of {python}" if python else "installed distributions"
        if osv_path:
            result = self._with_osv(Path(osv_path), packages, source, incomplete)
        else:
            result = self._with_pip_audit(ctx, req, source, incomplete, packages)
        return CheckResult(
            result.check,
            result.findings,
            result.incomplete,
            (*result.notes, *extra_notes),
            result.fail_on,
            result.data,
        )

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
            f"({db.records} records, newest {db.date()}; {db.withdrawn} withdrawn, ignored)",
        )
        return CheckResult(self.name, tuple(findings), tuple(incomplete), notes)

    def _with_pip_audit(
        self,
        ctx: AuditContext,
        req: str | None,
        source: str,
        incomplete: list[str],
        packages: dict[str, str],
    ) -> CheckResult:
        import tempfile

        cmd = [sys.executable, "-m", "pip_audit", "-f", "json", "--progress-spinner", "off"]
        pins: Path | None = None
        if req or ctx.options.get("python"):
            # the exact pins (lock + torch, or the other environment's distributions)
            with tempfile.NamedTemporaryFile(
                "w", suffix=".txt", delete=False, encoding="utf-8"
            ) as fh:
                fh.write("".join(f"{n}=={v}\n" for n, v in sorted(packages.items())))
            pins = Path(fh.name)
            cmd += ["-r", str(pins), "--no-deps", "--disable-pip"]
        try:
            proc = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments, no shell
                cmd,
                capture_output=True,
                text=True,
                timeout=int(ctx.options.get("timeout", 300)),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            if pins is not None:
                pins.unlink(missing_ok=True)
            return CheckResult(
                self.name,
                incomplete=(
                    *incomplete,
                    f"pip-audit did not finish ({exc.__class__.__name__}); give --osv-db to audit offline",
                ),
            )
        if pins is not None:
            pins.unlink(missing_ok=True)
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
