"""Progress as an observer: the core reports, the CLI decides how (or whether) to show it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def graceful_stop(
    on_signal: Callable[[str], None] | None = None,
) -> Iterator[Callable[[], str | None]]:
    """SIGINT / SIGTERM ask the work to stop at its next safe point (the callable yielded
    returns the signal's name once one came; `on_signal` hears it); a second signal stops at
    once. Outside the main thread (no signal handlers there) it never asks."""
    import signal
    import threading

    reason: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def handler(signum: int, frame: object) -> None:
        if reason:
            raise KeyboardInterrupt
        reason.append(signal.Signals(signum).name)
        if on_signal is not None:
            on_signal(reason[0])

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, handler)
    try:
        yield lambda: reason[0] if reason else None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
