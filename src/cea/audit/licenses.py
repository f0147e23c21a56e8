"""`cea audit licenses`: the license of every installed distribution, as SPDX where possible.

Sources, in order: `License-Expression` (PEP 639), a short `License` field, license text
(the `License` field when it holds the whole text, then the distribution's license files),
trove classifiers. What none of them settles is "unknown" — a finding, never a silent pass.
Policy (`[tool.cea.audit.licenses]`): `allow` / `deny` lists of SPDX ids (fnmatch patterns) and
per-package `exceptions` with reason and expiry, like waivers.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata as md
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from cea.audit.base import AuditContext
from cea.audit.model import CheckResult, Finding, Severity, Waiver
from cea.errors import ConfigError

UNKNOWN = "unknown"
THIRD_PARTY_FILE = "THIRD_PARTY_LICENSES.md"

_ALIASES = {
    "mit": "MIT",
    "mit license": "MIT",
    "the mit license": "MIT",
    "mit-0": "MIT-0",
    "expat": "MIT",
    "apache 2.0": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache 2.0 license": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache license version 2.0": "Apache-2.0",
    "apache": "Apache-2.0",
    "apache2": "Apache-2.0",
    "bsd": "BSD-3-Clause",
    "bsd license": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "3-clause bsd license": "BSD-3-Clause",
    "bsd 3-clause": "BSD-3-Clause",
    "bsd 3-clause license": "BSD-3-Clause",
    "modified bsd": "BSD-3-Clause",
    "bsd-2-clause": "BSD-2-Clause",
    "simplified bsd": "BSD-2-Clause",
    "bsd 2-clause": "BSD-2-Clause",
    "psf": "PSF-2.0",
    "psfl": "PSF-2.0",
    "psf-2.0": "PSF-2.0",
    "psf license": "PSF-2.0",
    "python software foundation license": "PSF-2.0",
    "mpl-2.0": "MPL-2.0",
    "mpl 2.0": "MPL-2.0",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "isc": "ISC",
    "isc license": "ISC",
    "isc license (iscl)": "ISC",
    "unlicense": "Unlicense",
    "the unlicense (unlicense)": "Unlicense",
    "cc0 1.0 universal (cc0 1.0) public domain dedication": "CC0-1.0",
    "zlib": "Zlib",
    "hpnd": "HPND",
    "historical permission notice and disclaimer (hpnd)": "HPND",
    "gnu general public license v3 (gplv3)": "GPL-3.0-only",
    "gplv3": "GPL-3.0-only",
    "gnu general public license v2 (gplv2)": "GPL-2.0-only",
    "gplv2": "GPL-2.0-only",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0-only",
    "gnu lesser general public license v2 or later (lgplv2+)": "LGPL-2.0-or-later",
    "gnu affero general public license v3": "AGPL-3.0-only",
    "gnu library or lesser general public license (lgpl)": "LGPL-2.0-or-later",
    "boost software license 1.0 (bsl-1.0)": "BSL-1.0",
}
_NOT_A_LICENSE = {
    "",
    "unknown",
    "none",
    "dual license",
    "other/proprietary license",
    "osi approved",
    "free",
}


def _spdx(expr: str) -> str | None:
    """Normalise an SPDX expression with license-expression (ships with cyclonedx-python-lib)."""
    try:
        from license_expression import get_spdx_licensing

        licensing = get_spdx_licensing()
        parsed = licensing.parse(expr, validate=False)
        if parsed is None:
            return None
        unknown = licensing.unknown_license_keys(parsed)
        return None if unknown else str(parsed.render())
    except Exception:
        return None


def _from_short(text: str) -> str | None:
    key = " ".join(text.strip().lower().split())
    if key in _NOT_A_LICENSE:
        return None
    if key in _ALIASES:
        return _ALIASES[key]
    return _spdx(text.strip()) if len(text) < 120 else None


_TEXT_MARKERS: tuple[tuple[str, str], ...] = (
    ("gnu affero general public license", "AGPL-3.0-only"),
    ("gnu lesser general public license", "LGPL"),
    ("gnu library general public license", "LGPL-2.0-only"),
    ("gnu general public license", "GPL"),
    ("apache license", "Apache-2.0"),
    ("mozilla public license", "MPL-2.0"),
    ("permission is hereby granted, free of charge", "MIT"),
    ("redistribution and use in source and binary forms", "BSD"),
    ("permission to use, copy, modify, and/or distribute this software for any purpose", "ISC"),
    ("python software foundation license", "PSF-2.0"),
)


def _from_text(text: str, window: int = 600) -> str | None:
    """The license whose marker comes first, within the opening `window` characters.

    Bundled notices later in a file (an MPL text listing the GPL as a "secondary license",
    third-party notices appended to a BSD text) must not decide.
    """
    low = " ".join(text.split()).lower()
    hits = sorted(
        (low.find(marker), spdx) for marker, spdx in _TEXT_MARKERS if 0 <= low.find(marker) < window
    )
    if not hits:
        return None
    spdx = hits[0][1]
    if spdx == "GPL":
        return "GPL-3.0-only" if "version 3" in low[:window] else "GPL-2.0-only"
    if spdx == "LGPL":
        return "LGPL-3.0-only" if "version 3" in low[:window] else "LGPL-2.1-only"
    if spdx == "BSD":
        return (
            "BSD-3-Clause"
            if ("neither the name" in low or "names of its contributors" in low)
            else "BSD-2-Clause"
        )
    if spdx == "Apache-2.0" and "version 2.0" not in low[: window + 200]:
        return None
    return spdx


_CLASSIFIERS = {
    "MIT License": "MIT",
    "Apache Software License": "Apache-2.0",
    "BSD License": "BSD-3-Clause",
    "Python Software Foundation License": "PSF-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "ISC License (ISCL)": "ISC",
    "The Unlicense (Unlicense)": "Unlicense",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "zlib/libpng License": "Zlib",
}


@dataclass(frozen=True)
class PackageLicense:
    name: str
    version: str
    spdx: str  # SPDX id/expression, or "unknown"
    source: str  # where it came from

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def _license_files(dist: md.Distribution) -> list[str]:
    texts = []
    for f in dist.files or []:
        name = f.name.upper()
        if (
            name.startswith(("LICENSE", "LICENCE", "COPYING"))
            and f.parent.name.endswith((".dist-info", "licenses"))
        ) or "/licenses/" in str(f):
            try:
                texts.append(
                    Path(str(dist.locate_file(f))).read_text(encoding="utf-8", errors="replace")[
                        :20000
                    ]
                )
            except OSError:
                continue
    return texts


def resolve(dist: md.Distribution) -> PackageLicense:
    meta: Any = dist.metadata  # email.message.Message at run time
    name, version = str(meta["Name"]), dist.version
    expr = meta.get("License-Expression")
    if expr:
        return PackageLicense(name, version, _spdx(expr) or expr.strip(), "License-Expression")
    field = meta.get("License") or ""
    if field and "\n" not in field.strip() and len(field) < 120:
        found = _from_short(field)
        if found:
            return PackageLicense(name, version, found, "License")
    elif field:
        found = _from_text(field)
        if found:
            return PackageLicense(name, version, found, "License (text)")
    classifiers = [
        c.split("::")[-1].strip()
        for c in (meta.get_all("Classifier") or [])
        if c.startswith("License ::") and c.split("::")[-1].strip() in _CLASSIFIERS
    ]
    texts = _license_files(dist)
    for text in texts:
        found = _from_text(text)
        if found and (not classifiers or len(classifiers) == 1):
            return PackageLicense(name, version, found, "license file")
    if classifiers:
        ids = sorted({_CLASSIFIERS[c] for c in classifiers})
        return PackageLicense(name, version, " OR ".join(ids), "classifier")
    return PackageLicense(name, version, UNKNOWN, "none")


def installed_licenses(paths: list[str] | None = None) -> dict[str, PackageLicense]:
    """Every distribution of this environment, or of the import path `paths` (another
    environment's, read as metadata only)."""
    out: dict[str, PackageLicense] = {}
    for dist in md.distributions() if paths is None else md.distributions(path=paths):
        if dist.metadata["Name"]:
            pl = resolve(dist)
            out.setdefault(canonicalize_name(pl.name), pl)
    return out


def license_ids(expr: str) -> list[list[str]]:
    """`A OR (B AND C)` -> alternatives [[A], [B, C]] (WITH exceptions kept with their id)."""
    flat = expr.replace("(", " ").replace(")", " ")
    alternatives = re.split(r"\s+OR\s+", flat.strip())
    return [[p.strip() for p in re.split(r"\s+AND\s+", alt) if p.strip()] for alt in alternatives]


@dataclass(frozen=True)
class LicensePolicy:
    allow: tuple[str, ...]
    deny: tuple[str, ...]

    def verdict(self, expr: str) -> tuple[str, str]:
        """('ok'|'denied'|'not-allowed'|'unknown', reason)."""
        if expr == UNKNOWN:
            return "unknown", "no license information"
        best = None
        for alt in license_ids(expr):
            ids = [i.split(" WITH ")[0] for i in alt]
            denied = [i for i in ids if any(fnmatch.fnmatch(i, d) for d in self.deny)]
            if denied:
                best = best or ("denied", f"{', '.join(denied)} is denied")
                continue
            if self.allow and not all(any(fnmatch.fnmatch(i, a) for a in self.allow) for i in ids):
                missing = [i for i in ids if not any(fnmatch.fnmatch(i, a) for a in self.allow)]
                best = (
                    ("not-allowed", f"{', '.join(missing)} not on the allow list")
                    if not best or best[0] == "denied"
                    else best
                )
                continue
            return "ok", ""
        return best or ("unknown", "empty expression")


def load_license_policy(conf: dict[str, Any]) -> tuple[LicensePolicy, list[Any]]:

    allow = tuple(str(x) for x in conf.get("allow", []))
    deny = tuple(str(x) for x in conf.get("deny", []))
    waivers = []
    for i, raw in enumerate(conf.get("exceptions", [])):
        if not isinstance(raw, dict) or not all(
            raw.get(k) for k in ("package", "reason", "expires")
        ):
            raise ConfigError(
                f"[tool.cea.audit.licenses] exception #{i + 1} needs package, reason and expires"
            )
        expires = raw["expires"]
        if isinstance(expires, str):
            expires = date.fromisoformat(expires)
        waivers.append(
            Waiver(
                "LICENSE-*",
                str(raw["reason"]),
                expires,
                "licenses",
                f"{canonicalize_name(str(raw['package']))}==*",
                "glob",
            )
        )
    return LicensePolicy(allow, deny), waivers


class LicensesCheck:
    name = "licenses"

    def run(self, ctx: AuditContext) -> CheckResult:
        policy, _ = load_license_policy(ctx.policy.for_check(self.name))
        from cea.audit.vulns import environment_paths

        rows = installed_licenses(environment_paths(ctx.options.get("python")))
        findings = []
        ids: dict[str, tuple[str, Severity]] = {
            "denied": ("LICENSE-DENIED", "high"),
            "not-allowed": ("LICENSE-NOT-ALLOWED", "medium"),
            "unknown": ("LICENSE-UNKNOWN", "medium"),
        }
        for key, pl in sorted(rows.items()):
            verdict, reason = policy.verdict(pl.spdx)
            if verdict == "ok":
                continue
            fid, sev = ids[verdict]
            findings.append(
                Finding(
                    fid,
                    self.name,
                    sev,
                    f"{key}=={pl.version}",
                    f"{pl.name} {pl.version}: {pl.spdx} ({reason}; from {pl.source})",
                    hint="replace the dependency, or add an exception with reason and expiry",
                    extra={"license": pl.spdx, "source": pl.source},
                )
            )
        write_to = ctx.options.get("write_third_party")
        if write_to:
            from cea.audit.vulns import pinned_requirements

            pins, _ = pinned_requirements(ctx.root / "requirements.lock")
            Path(write_to).write_text(third_party_markdown(pins, rows), encoding="utf-8")
        unknown = sum(1 for p in rows.values() if p.spdx == UNKNOWN)
        notes = (f"{len(rows)} installed distributions, {unknown} with unknown license",)
        return CheckResult(
            self.name,
            tuple(findings),
            (),
            notes,
            data={"packages": [p.to_dict() for _, p in sorted(rows.items())]},
        )


def third_party_markdown(lock_pins: dict[str, str], licenses: dict[str, PackageLicense]) -> str:
    lines = [
        "# Third-party licenses",
        "",
        "Generated by `make licenses` from `requirements.lock` and the installed metadata; "
        "a test fails when it drifts from the lock or from `SBOM.json`.",
        "",
        "| package | version | license (SPDX) | source |",
        "|---|---|---|---|",
    ]
    for name, version in sorted(lock_pins.items()):
        pl = licenses.get(name)
        if pl is None or pl.version != version:
            lines.append(
                f"| {name} | {version} | {UNKNOWN} | not installed at the locked version |"
            )
        else:
            lines.append(f"| {name} | {version} | {pl.spdx} | {pl.source} |")
    return "\n".join(lines) + "\n"


def sbom_licenses(lock_pins: dict[str, str], licenses: dict[str, PackageLicense]) -> dict[str, str]:
    """name -> SPDX (or unknown) for the SBOM's components: the same data as the markdown."""
    out = {}
    for name, version in lock_pins.items():
        pl = licenses.get(name)
        out[name] = pl.spdx if pl is not None and pl.version == version else UNKNOWN
    return out


def parse_third_party(text: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("package", "---"):
            out[cells[0]] = (cells[1], cells[2])
    return out
