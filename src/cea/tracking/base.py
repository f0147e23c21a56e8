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
