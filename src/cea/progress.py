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


class StopFlag:
    """What `graceful_stop` yields: calling it returns the name of the signal that asked the
    work to stop (None until one came). With `immediate=True` a signal outside `safe_points()`
    stops the work at once (KeyboardInterrupt); inside, it asks for a stop at the next safe
    point."""

    def __init__(self, immediate: bool) -> None:
        self.reason: list[str] = []
        self.immediate = immediate
        self.depth = 0

    def __call__(self) -> str | None:
        return self.reason[0] if self.reason else None

    @contextmanager
    def safe_points(self) -> Iterator[None]:
        """The work inside checks this flag at its safe points (a training loop's steps)."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


@contextmanager
def safe_points(should_stop: Any) -> Iterator[None]:
    """`should_stop.safe_points()` when it has them (a `StopFlag`), else nothing."""
    enter = getattr(should_stop, "safe_points", None)
    if enter is None:
        yield
        return
    with enter():
        yield


@contextmanager
def graceful_stop(
    on_signal: Callable[[str], None] | None = None,
    *,
    immediate: bool = False,
) -> Iterator[StopFlag]:
    """SIGINT / SIGTERM ask the work to stop at its next safe point (the callable yielded
    returns the signal's name once one came; `on_signal` hears it); a second signal stops at
    once. `immediate`: outside the flag's `safe_points()` the first signal already stops at
    once (setup that checks no flag). Outside the main thread (no signal handlers there) it
    never asks."""
    import signal
    import threading

    flag = StopFlag(immediate)
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if flag.reason or (flag.immediate and flag.depth == 0):
            flag.reason.append(name)
            # the command's own handler (it records which signal it was)
            before = old.get(signal.Signals(signum))
            if callable(before) and before is not signal.default_int_handler:
                before(signum, frame)  # type: ignore[arg-type]
            raise KeyboardInterrupt(name)
        flag.reason.append(name)
        if on_signal is not None:
            on_signal(name)

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)
