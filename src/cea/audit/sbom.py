"""CycloneDX 1.6 SBOM of the locked environment (cyclonedx-bom), validated offline.

The SBOM is generated from `requirements.lock` (reproducible: no timestamp, no serial
number), so it changes only when the lock does. The check validates it against the bundled
CycloneDX 1.6 JSON schema and compares `SBOM.json` at the top of the repository with the lock:
any package or version that differs is drift.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from cea.audit.base import AuditContext
from cea.audit.model import CheckResult, Finding
from cea.audit.vulns import pinned_requirements

LOCK_FILE = "requirements.lock"
SBOM_FILE = "SBOM.json"


def generate_sbom(lock: Path, pyproject: Path | None, out: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "cyclonedx_py",
        "requirements",
        str(lock),
        "--sv",
        "1.6",
        "--of",
        "JSON",
        "--output-reproducible",
        "-o",
        str(out),
    ]
    if pyproject is not None and pyproject.is_file():
        cmd += ["--pyproject", str(pyproject)]
    proc = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments, no shell
        cmd, capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"cyclonedx-py failed: {tail[0][:200]}")
    # stable formatting: sorted keys, one component per package; licenses from the installed
    # metadata of the locked versions (the same data as THIRD_PARTY_LICENSES.md)
    from cea.audit.licenses import UNKNOWN, installed_licenses, sbom_licenses

    data = json.loads(out.read_text(encoding="utf-8"))
    pins, _ = pinned_requirements(lock)
    known = sbom_licenses(pins, installed_licenses())
    for comp in data.get("components", []):
        spdx = known.get(canonicalize_name(comp.get("name", "")), UNKNOWN)
        comp["licenses"] = (
            [{"license": {"name": UNKNOWN}}] if spdx == UNKNOWN else [{"expression": spdx}]
        )
    out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def validate_sbom(text: str) -> str | None:
    """None when valid CycloneDX 1.6 JSON, else the validation error (offline schemas)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    return None if error is None else str(error)[:300]


def components(sbom: dict[str, Any]) -> dict[str, str]:
    return {
        canonicalize_name(c["name"]): str(c.get("version", ""))
        for c in sbom.get("components", [])
        if c.get("type") == "library"
    }


def drift(sbom: dict[str, Any], lock_pins: dict[str, str]) -> list[str]:
    have = components(sbom)
    out = [
        f"{n}: in the lock ({v}) but not in the SBOM"
        for n, v in sorted(lock_pins.items())
        if n not in have
    ]
    out += [
        f"{n}: in the SBOM ({v}) but not in the lock"
        for n, v in sorted(have.items())
        if n not in lock_pins
    ]
    out += [
        f"{n}: SBOM has {have[n]}, lock has {v}"
        for n, v in sorted(lock_pins.items())
        if n in have and have[n] != v
    ]
    return out


def _invalid(where: str, error: str) -> Finding:
    return Finding(
        "SBOM-INVALID",
        "sbom",
        "high",
        where,
        f"not valid CycloneDX 1.6: {error}",
        hint="run `make sbom`",
    )


class SbomCheck:
    name = "sbom"

    def run(self, ctx: AuditContext) -> CheckResult:
        lock = ctx.root / LOCK_FILE
        if not lock.is_file():
            return CheckResult(self.name, incomplete=(f"no {LOCK_FILE} in {ctx.root}",))
        pins, _ = pinned_requirements(lock)
        findings: list[Finding] = []
        notes: list[str] = []
        with tempfile.TemporaryDirectory(prefix="cea-sbom-") as tmp:
            fresh = Path(tmp) / SBOM_FILE
            try:
                generate_sbom(lock, ctx.root / "pyproject.toml", fresh)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                return CheckResult(self.name, incomplete=(f"SBOM generation failed: {exc}",))
            text = fresh.read_text(encoding="utf-8")
            error = validate_sbom(text)
            if error:
                findings.append(_invalid("(generated)", error))
            notes.append(
                f"generated CycloneDX 1.6 SBOM: {len(components(json.loads(text)))} components from {LOCK_FILE}"
            )
            write_to = ctx.options.get("write_sbom")
            if write_to:
                Path(write_to).write_text(text, encoding="utf-8")
                notes.append(f"wrote {write_to}")
        committed = ctx.root / SBOM_FILE
        if not committed.is_file():
            findings.append(
                Finding(
                    "SBOM-MISSING",
                    self.name,
                    "medium",
                    str(committed),
                    f"no {SBOM_FILE}",
                    hint="run `make sbom`",
                )
            )
        else:
            ctext = committed.read_text(encoding="utf-8")
            error = validate_sbom(ctext)
            if error:
                findings.append(_invalid(SBOM_FILE, error))
            else:
                diffs = drift(json.loads(ctext), pins)
                for d in diffs[:50]:
                    findings.append(
                        Finding(
                            "SBOM-DRIFT",
                            self.name,
                            "medium",
                            SBOM_FILE,
                            d,
                            hint="run `make sbom` after changing the lock",
                        )
                    )
                notes.append(f"{SBOM_FILE} valid; {len(diffs)} differences from {LOCK_FILE}")
        return CheckResult(self.name, tuple(findings), (), tuple(notes))
