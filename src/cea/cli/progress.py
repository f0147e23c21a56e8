"""Progress sinks for the terminal: Rich bars for people, JSON lines for tools."""

from __future__ import annotations

import json
import time
from typing import IO, Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from cea.cli._common import err_console
from cea.progress import NullProgress


def _shown(value: Any, spec: str) -> str:
    """A number as `spec`, or "-" while it is not known (never nan, never a made-up 0)."""
    if value is None or not isinstance(value, int | float):
        return "-"
    return format(value, spec)


def training_fields(fields: dict[str, Any]) -> str:
    """`loss 0.6931  lr 2.00e-05  1234 samples/s`; "-" for what is not known yet. The loss is
    the mean over the epoch's batches so far, the throughput the epoch's so far."""
    return (
        f"loss {_shown(fields.get('loss'), '.4f')}  lr {_shown(fields.get('lr'), '.2e')}  "
        f"{_shown(fields.get('sps'), '.0f')} samples/s"
    )


class _TrainingFieldsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(training_fields(task.fields))


class RichProgress:
    """One bar per task (epoch), with loss, learning rate and throughput."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _TrainingFieldsColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, task: str, total: int | None) -> None:
        self.tasks[task] = self.progress.add_task(task, total=total, loss=None, lr=None, sps=None)

    def advance(self, task: str, n: int = 1, **fields: Any) -> None:
        if task in self.tasks:
            self.progress.update(
                self.tasks[task],
                advance=n,
                loss=fields.get("loss"),
                lr=fields.get("lr"),
                sps=fields.get("samples_per_s"),
            )

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "epoch":
            self.progress.console.print(_epoch_line(payload), highlight=False)
        elif kind == "data":
            self.progress.console.print(_data_line(payload), highlight=False)
        elif kind == "resume":
            self.progress.console.print(
                f"resuming after epoch {payload['epoch']} (step {payload['global_step']})"
            )
        elif kind == "warning":
            self.progress.console.print(f"warning: {payload['message']}", highlight=False)

    def finish(self, task: str) -> None:
        return None


def _epoch_line(payload: dict[str, Any]) -> str:
    auprc = payload.get("val_macro_auprc")
    return (
        f"epoch {payload['epoch']}: train loss {payload['train_loss']:.4f}, "
        f"val loss {payload['val_loss']:.4f}, val macro-F1 {payload['val_macro_f1']:.3f}, "
        f"val macro-AUPRC {'-' if auprc is None else f'{auprc:.3f}'} "
        f"({payload['duration_s']:.1f} s)" + ("  best" if payload.get("improved") else "")
    )


def _data_line(payload: dict[str, Any]) -> str:
    parts = []
    for name, t in payload["truncation"].items():
        parts.append(
            f"{name} {t['examples']} examples -> {t['rows']} inputs"
            f" ({t['chunked']} chunked, {t['truncated']} truncated = {t['truncated_share']:.1%})"
        )
    warn = payload.get("warnings", 0)
    tail = f" — {warn} data warnings, see `cea data validate`" if warn else ""
    return "data: " + "; ".join(parts) + tail


class PlainProgress(NullProgress):
    """Not a terminal (CI logs, pipes): one line per epoch on stderr, no bars."""

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "epoch":
            err_console.print(_epoch_line(payload), highlight=False)
        elif kind == "data":
            err_console.print(_data_line(payload), highlight=False)
        elif kind == "resume":
            err_console.print(f"resuming after epoch {payload['epoch']}", highlight=False)
        elif kind == "warning":
            err_console.print(f"warning: {payload['message']}", highlight=False)


class JsonEventsProgress:
    """`--json-events`: one JSON object per line, per step / epoch / checkpoint."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def start(self, task: str, total: int | None) -> None:
        self.event("start", {"task": task, "total": total})

    def advance(self, task: str, n: int = 1, **fields: Any) -> None:
        return None

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        self.stream.write(
            json.dumps({"event": kind, "time": round(time.time(), 3), **payload}, default=str)
            + "\n"
        )
        self.stream.flush()

    def finish(self, task: str) -> None:
        return None
