"""Progress as an observer: the core reports, the CLI decides how (or whether) to show it."""

from __future__ import annotations

from typing import Any, Protocol


class ProgressSink(Protocol):
    def start(self, task: str, total: int | None) -> None: ...
    def advance(self, task: str, n: int = 1, **fields: Any) -> None: ...
    def event(self, kind: str, payload: dict[str, Any]) -> None: ...
    def finish(self, task: str) -> None: ...


class NullProgress:
    """Reports nowhere (tests, --quiet, library use)."""

    def start(self, task: str, total: int | None) -> None:
        return None

    def advance(self, task: str, n: int = 1, **fields: Any) -> None:
        return None

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        return None

    def finish(self, task: str) -> None:
        return None


class RecordingProgress(NullProgress):
    """Keeps every event: for tests and for --json summaries."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))
