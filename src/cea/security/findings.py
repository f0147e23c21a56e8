"""A finding of a security check (a scan of model files, an audit check): the unit of every
report. Lives here, under the checks that produce findings, so that the run-folder verification
and `cea audit` share it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")


def severity_rank(sev: str) -> int:
    return SEVERITIES.index(sev) if sev in SEVERITIES else SEVERITIES.index("medium")


@dataclass(frozen=True)
class Finding:
    id: str  # rule or advisory id: B602, GHSA-..., SBOM-DRIFT, WAIVER-EXPIRED
    check: str
    severity: Severity
    location: str  # file:line, package==version, a path
    message: str
    hint: str = ""
    waived_by: str | None = None  # the waiver's reason when a valid waiver covers it
    extra: dict[str, Any] = field(default_factory=dict)

    def waive(self, reason: str) -> Finding:
        return replace(self, waived_by=reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "severity": self.severity,
            "location": self.location,
            "message": self.message,
            "hint": self.hint,
            "waived_by": self.waived_by,
            **({"extra": self.extra} if self.extra else {}),
        }


def printable(text: str) -> str:
    """`text` for a terminal or a Markdown page: every control, format (bidi overrides,
    zero-width), surrogate, private-use or line/paragraph separator character shown as its
    escape (`\\x1b`, `\\u202e`), so a file name cannot move the cursor, recolour or rewrite
    the report. Machine formats (JSON, SARIF) carry the exact text instead."""
    if text.isprintable():  # (the common case: nothing to do)
        return text
    import unicodedata

    out = []
    for ch in text:
        if ch == " " or unicodedata.category(ch) not in _UNPRINTABLE:
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    return "".join(out)


_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
