"""The Check protocol and what every check receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from cea.audit.model import CheckResult


@dataclass(frozen=True)
class AuditContext:
    root: Path  # the project / folder being audited
    policy: Any  # cea.audit.policy.Policy
    today: date
    options: dict[str, Any] = field(default_factory=dict)  # per-check CLI options


class Check(Protocol):
    name: str

    def run(self, ctx: AuditContext) -> CheckResult: ...
