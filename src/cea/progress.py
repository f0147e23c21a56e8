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


class FanOut:
    def __init__(self, *sinks: ProgressSink) -> None:
        self.sinks = sinks

    def start(self, task: str, total: int | None) -> None:
        for s in self.sinks:
            s.start(task, total)

    def advance(self, task: str, n: int = 1, **fields: Any) -> None:
        for s in self.sinks:
            s.advance(task, n, **fields)

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        for s in self.sinks:
            s.event(kind, payload)

    def finish(self, task: str) -> None:
        for s in self.sinks:
            s.finish(task)
