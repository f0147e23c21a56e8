"""The Tracker protocol (what training needs from experiment tracking) and its null version."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from cea.progress import NullProgress


class Tracker(Protocol):
    """Where params, metrics, tags and artifacts of one training run go."""

    run_id: str | None

    def log(
        self,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        step: int | None = None,
    ) -> None: ...

    def log_artifact(self, path: Path, folder: str | None = None) -> None: ...

    def end(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """`--no-track`, tests, library use: records nothing."""

    run_id: str | None = None

    def log(
        self,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        step: int | None = None,
    ) -> None:
        return None

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        return None

    def end(self, status: str = "FINISHED") -> None:
        return None


class RecordingTracker(NullTracker):
    """Keeps everything in memory (tests)."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.metrics: list[tuple[str, float, int | None]] = []
        self.tags: dict[str, str] = {}
        self.artifacts: list[tuple[str, str | None]] = []
        self.status: str | None = None

    def log(
        self,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        step: int | None = None,
    ) -> None:
        self.params.update(params or {})
        self.tags.update(tags or {})
        self.metrics.extend((k, v, step) for k, v in (metrics or {}).items())

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self.artifacts.append((path.name, folder))

    def end(self, status: str = "FINISHED") -> None:
        self.status = status


class TrackerSink(NullProgress):
    """Progress events -> tracker metrics: step metrics every step, epoch metrics per epoch."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "step":
            self.tracker.log(
                metrics={
                    "train/loss": payload["loss"],
                    "train/lr": payload["lr"],
                    "train/samples_per_s": payload["samples_per_s"],
                    "train/data_wait_s": payload["data_wait_s"],
                    "train/step_s": payload["step_s"],
                },
                step=int(payload["step"]),
            )
        elif kind == "epoch":
            epoch = int(payload["epoch"])
            metrics = {
                f"epoch/{k}": float(v)
                for k, v in payload.items()
                if k not in ("epoch", "improved") and isinstance(v, int | float) and v is not None
            }
            metrics["epoch/improved"] = 1.0 if payload.get("improved") else 0.0
            aug = payload.get("augment")
            if isinstance(aug, dict):  # counts and ratios only: never texts
                metrics["augment/examples"] = float(aug["examples"])
                metrics["augment/augmented"] = float(aug["augmented"])
                metrics["augment/changed_word_ratio"] = float(aug["changed_word_ratio"])
                for name, count in aug["per_augmenter"].items():
                    metrics[f"augment/count/{name.replace(':', '_')}"] = float(count)
            self.tracker.log(metrics=metrics, step=epoch)
            flush = getattr(self.tracker, "flush", None)
            if callable(flush):
                flush()


class BestEffortTracker:
    """Training goes on when tracking fails: a call that raises is kept, and while the store
    is down later calls are queued without waiting on it (one probe a minute); before the run
    is closed every queued call is tried again, in order, and what still fails is reported by
    `failures`. With `strict`, the first failure is raised (`cea train --strict-tracking`)."""

    MAX_PENDING = 10_000
    PROBE_S = 60.0

    def __init__(self, inner: Any, *, strict: bool = False) -> None:
        self.inner = inner
        self.strict = strict
        self.run_id: str | None = inner.run_id
        self.effective_uri = getattr(inner, "effective_uri", None)
        self.pending: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.failures: list[str] = []
        self._down_since: float | None = None

    def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        import time

        now = time.monotonic()
        if self._down_since is not None and now - self._down_since < self.PROBE_S:
            self._queue(name, args, kwargs)
            return
        try:
            getattr(self.inner, name)(*args, **kwargs)
        except Exception as exc:
            if self.strict:
                raise
            self.failures.append(f"{name}: {exc}"[:300])
            self._down_since = now
            self._queue(name, args, kwargs)
        else:
            self._down_since = None

    def _queue(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if len(self.pending) < self.MAX_PENDING:
            self.pending.append((name, args, kwargs))

    def log(self, **kwargs: Any) -> None:  # the Tracker.log keywords, passed through
        self._call("log", **kwargs)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self._call("log_artifact", path, folder)

    def flush(self) -> None:
        if callable(getattr(self.inner, "flush", None)):
            self._call("flush")

    def retry(self) -> None:
        """Try every queued call again, in order; stop at the first that fails (the store is
        still down): `failures` then says how many were lost."""
        pending, self.pending = self.pending, []
        self._down_since = None
        for i, (name, args, kwargs) in enumerate(pending):
            try:
                getattr(self.inner, name)(*args, **kwargs)
            except Exception as exc:
                self.failures = [f"{name}: {exc}"[:300], *self.failures]
                self.pending = pending[i:]
                self._down_since = 0.0
                return
        self.failures = []

    def end(self, status: str = "FINISHED") -> None:
        if self.pending:
            self.retry()
        if self.pending:  # still down: closing the run would fail the same way
            self.failures.append(f"end: the run could not be marked {status}")
            return
        self._call("end", status)
