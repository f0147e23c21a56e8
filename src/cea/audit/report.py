"""Machine formats of an audit report: JSON, SARIF 2.1.0, Markdown."""

from __future__ import annotations

import json
import re
from typing import Any

from cea._version import __version__
from cea.audit.model import AuditReport
from cea.security.findings import printable

_SARIF_LEVEL = {
    "info": "note",
    "low": "note",
    "medium": "warning",
    "high": "error",
    "critical": "error",
}


def to_json(report: AuditReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"


def _location(loc: str) -> dict[str, Any]:
    m = re.match(r"^(?P<file>[^:]+):(?P<line>\d+)$", loc)
    if m:
        return {
            "physicalLocation": {
                "artifactLocation": {"uri": m.group("file")},
                "region": {"startLine": int(m.group("line"))},
            }
        }
    return {"logicalLocations": [{"name": loc}]}


def to_sarif(report: AuditReport) -> str:
    runs = []
    for result in report.results:
        rules: dict[str, dict[str, Any]] = {}
        items = []
        for f in result.findings:
            rules.setdefault(
                f.id,
                {
                    "id": f.id,
                    "shortDescription": {"text": f.message[:200]},
                    "help": {"text": f.hint or f.message},
                },
            )
            item: dict[str, Any] = {
                "ruleId": f.id,
                "level": _SARIF_LEVEL.get(f.severity, "warning"),
                "message": {"text": f.message},
                "locations": [_location(f.location)],
                "properties": {"severity": f.severity},
            }
            if f.waived_by:
                item["suppressions"] = [{"kind": "external", "justification": f.waived_by}]
            items.append(item)
        runs.append(
            {
                "tool": {
                    "driver": {
                        "name": f"cea-audit-{result.check}",
                        "version": __version__,
                        "rules": list(rules.values()),
                    }
                },
                "results": items,
                "invocations": [
                    {
                        "executionSuccessful": not result.incomplete,
                        "toolExecutionNotifications": [
                            {"message": {"text": t}, "level": "warning"} for t in result.incomplete
                        ],
                    }
                ],
            }
        )
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": runs,
    }
    return json.dumps(doc, indent=2) + "\n"


def _md(text: str) -> str:
    """A cell of a Markdown table: control and escape characters shown escaped (a file name
    cannot rewrite the page or the terminal it is shown in), pipes escaped."""
    return printable(text).replace("|", "\\|").replace("`", "\\x60")


def to_markdown(report: AuditReport) -> str:
    lines = [
        f"# cea audit — {report.status.upper()} (exit {report.exit_code()})",
        "",
        f"Target `{_md(report.target)}`, {report.created}.",
        "",
        "| check | status | failing | waived | notes |",
        "|---|---|---|---|---|",
    ]
    for r in report.results:
        waived = sum(1 for f in r.findings if f.waived_by)
        lines.append(
            f"| {r.check} | {r.status} | {len(r.failing())} | {waived} | {_md('; '.join(r.notes))} |"
        )
    for r in report.results:
        if r.findings or r.incomplete:
            lines += ["", f"## {r.check}", ""]
            for reason in r.incomplete:
                lines.append(f"- **incomplete**: {_md(reason)}")
            if r.findings:
                lines += [
                    "| id | severity | location | message | waived |",
                    "|---|---|---|---|---|",
                ]
                for f in r.findings:
                    lines.append(
                        f"| {f.id} | {f.severity} | `{_md(f.location)}` | {_md(f.message)} | {_md(f.waived_by or '')} |"
                    )
    return "\n".join(lines) + "\n"


def render(report: AuditReport, fmt: str) -> str:
    return {"json": to_json, "sarif": to_sarif, "markdown": to_markdown}[fmt](report)
