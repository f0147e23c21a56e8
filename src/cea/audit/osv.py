"""An offline OSV database (zip or folder of OSV JSON records) and OSV range semantics.

Ranges (https://ossf.github.io/osv-schema/): events `introduced`, `fixed`, `last_affected`
(and `limit`) in order; type ECOSYSTEM compares PyPI versions (PEP 440), SEMVER compares
semantic versions, GIT ranges cannot be evaluated for a PyPI version and are skipped (with a
note). Explicit `versions` lists count too. Versions with a local label (`2.13.0+cpu`) are
matched by their public version.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from cea.errors import DataError


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str  # low|medium|high|critical (from database_specific / CVSS score), or medium
    affected: tuple[dict[str, Any], ...]
    modified: str


_OSV_HINT = "give --osv-db a zip or folder of OSV JSON records (e.g. the PyPI all.zip export)"


def _iter_records(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for f in sorted(path.rglob("*.json")):
            yield str(f), f.read_bytes()
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".json") and not info.is_dir():
                    if info.file_size > 50 * 2**20:
                        raise DataError(
                            f"{path}!{info.filename}: record larger than 50 MiB", hint=_OSV_HINT
                        )
                    yield f"{path}!{info.filename}", zf.read(info)
    else:
        raise DataError(f"OSV database {path} is neither a folder nor a zip file", hint=_OSV_HINT)


def cvss_score(kind: str, vector: str) -> float | None:
    """The base score of a CVSS v2/v3/v4 vector (None when it does not parse)."""
    import cvss

    try:
        if kind == "CVSS_V4" or vector.startswith("CVSS:4"):
            return float(cvss.CVSS4(vector).base_score)
        if kind == "CVSS_V3" or vector.startswith("CVSS:3"):
            return float(cvss.CVSS3(vector).scores()[0])
        if kind == "CVSS_V2":
            return float(cvss.CVSS2(vector).scores()[0])
    except (cvss.CVSSError, ValueError, KeyError, IndexError, TypeError):
        return None
    try:
        return float(vector)  # some databases put the number itself
    except ValueError:
        return None


def _band(score: float) -> str:
    return "critical" if score >= 9 else "high" if score >= 7 else "medium" if score >= 4 else "low"


def _severity(rec: dict[str, Any]) -> str:
    """From the record's CVSS vectors (the newest version given), else its qualitative rating
    (GitHub's database_specific.severity), else medium."""
    order = {"CVSS_V4": 3, "CVSS_V3": 2, "CVSS_V2": 1}
    entries = [
        *(rec.get("severity") or []),
        *(
            s
            for a in rec.get("affected") or []
            if isinstance(a, dict)
            for s in a.get("severity") or []
        ),
    ]
    scored = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kind, vector = str(entry.get("type", "")), str(entry.get("score", ""))
        score = cvss_score(kind, vector)
        if score is not None:
            scored.append((order.get(kind, 0), score))
    if scored:
        return _band(max(scored)[1])
    for holder in (
        rec.get("database_specific") or {},
        *[
            (a.get("database_specific") or {})
            for a in rec.get("affected", [])
            if isinstance(a, dict)
        ],
    ):
        sev = str(holder.get("severity", "")).lower() if isinstance(holder, dict) else ""
        if sev in ("low", "medium", "moderate", "high", "critical"):
            return "medium" if sev == "moderate" else sev
    return "medium"


@dataclass(frozen=True)
class OsvDatabase:
    path: Path
    by_package: dict[str, tuple[Advisory, ...]]
    records: int
    newest: str  # the latest `modified` timestamp: the database's date
    withdrawn: int = 0  # retracted advisories, not used

    @classmethod
    def load(cls, path: Path) -> OsvDatabase:
        if not path.exists():
            raise DataError(f"OSV database {path} not found", hint=_OSV_HINT)
        by_pkg: dict[str, list[Advisory]] = {}
        n = 0
        withdrawn = 0
        newest = ""
        for where, raw in _iter_records(path):
            try:
                rec = json.loads(raw)
            except ValueError as exc:
                raise DataError(f"{where}: not valid JSON", hint=_OSV_HINT) from exc
            if not isinstance(rec, dict) or "id" not in rec:
                raise DataError(f"{where}: not an OSV record (no id)", hint=_OSV_HINT)
            if rec.get("withdrawn"):  # the advisory was retracted: it matches nothing
                withdrawn += 1
                continue
            n += 1
            newest = max(newest, str(rec.get("modified", "")))
            adv = Advisory(
                id=str(rec["id"]),
                aliases=tuple(rec.get("aliases", []) or []),
                summary=str(rec.get("summary") or rec.get("details", "")[:120]),
                severity=_severity(rec),
                affected=tuple(rec.get("affected", []) or []),
                modified=str(rec.get("modified", "")),
            )
            for aff in adv.affected:
                pkg = aff.get("package") or {}
                if str(pkg.get("ecosystem", "")).lower() == "pypi" and pkg.get("name"):
                    by_pkg.setdefault(canonicalize_name(pkg["name"]), []).append(adv)
        return cls(path, {k: tuple(v) for k, v in by_pkg.items()}, n, newest, withdrawn)

    def date(self) -> str:
        if not self.newest:
            return "unknown"
        try:
            return datetime.fromisoformat(self.newest.replace("Z", "+00:00")).date().isoformat()
        except ValueError:
            return self.newest[:10]

    def lookup(self, name: str, version: str) -> list[Advisory]:
        hits = []
        for adv in self.by_package.get(canonicalize_name(name), ()):
            for aff in adv.affected:
                pkg = aff.get("package") or {}
                if canonicalize_name(str(pkg.get("name", ""))) != canonicalize_name(name):
                    continue
                if affects(aff, version):
                    hits.append(adv)
                    break
        return hits


def public_version(version: str) -> str:
    """`2.13.0+cpu` -> `2.13.0` (a local label never changes which advisories apply)."""
    return version.split("+", 1)[0]


def _semver_key(v: str) -> tuple[Any, ...]:
    core, _, pre = v.lstrip("v").partition("-")
    core = core.split("+", 1)[0]
    nums = tuple(int(x) if x.isdigit() else 0 for x in [*core.split("."), "0", "0"][:3])
    # a pre-release sorts before its release
    return (
        *nums,
        0 if pre else 1,
        tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".")) if pre else (),
    )


def _in_range(events: list[dict[str, str]], version: Any, parse: Any) -> bool:
    """OSV's algorithm: walk the sorted events; introduced opens, fixed/limit close before,
    last_affected closes after."""

    def key(e: dict[str, str]) -> Any:
        value = next(iter(e.values()))
        return parse("0") if value == "0" else parse(value)

    affected = False
    for event in sorted(events, key=key):
        kind, value = next(iter(event.items()))
        bound = parse("0") if value == "0" else parse(value)
        if kind == "introduced" and version >= bound:
            affected = True
        elif (kind in ("fixed", "limit") and version >= bound) or (
            kind == "last_affected" and version > bound
        ):
            affected = False
    return affected


def affects(affected: dict[str, Any], version: str) -> bool:
    public = public_version(version)
    if public in {public_version(str(v)) for v in affected.get("versions", []) or []}:
        return True
    for rng in affected.get("ranges", []) or []:
        kind = rng.get("type")
        events = [e for e in rng.get("events", []) if isinstance(e, dict) and len(e) == 1]
        try:
            if kind == "ECOSYSTEM" and _in_range(events, Version(public), Version):
                return True
            if kind == "SEMVER" and _in_range(events, _semver_key(public), _semver_key):
                return True
        except InvalidVersion:
            continue
    return False
