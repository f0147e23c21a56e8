"""Progress sinks for the terminal: Rich bars for people, JSON lines for tools."""

from __future__ import annotations

import json
import time
from typing import IO, Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cea.cli._common import err_console


class RichProgress:
    """One bar per task (epoch), with loss, learning rate and throughput."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  {task.fields[sps]:.0f} samples/s"
            ),
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
        self.tasks[task] = self.progress.add_task(task, total=total, loss=0.0, lr=0.0, sps=0.0)

    def advance(self, task: str, n: int = 1, **fields: Any) -> None:
        if task in self.tasks:
            self.progress.update(
                self.tasks[task],
                advance=n,
                loss=fields.get("loss", 0.0),
                lr=fields.get("lr", 0.0),
                sps=fields.get("samples_per_s", 0.0),
            )

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "epoch":
            f1 = payload.get("val_macro_f1")
            auprc = payload.get("val_macro_auprc")
            self.progress.console.print(
                f"epoch {payload['epoch']}: train loss {payload['train_loss']:.4f}, "
                f"val loss {payload['val_loss']:.4f}, val macro-F1 {f1:.3f}, "
                f"val macro-AUPRC {auprc if auprc is None else round(auprc, 3)}"
                + ("  [green]best[/]" if payload.get("improved") else ""),
                markup=True,
            )
        elif kind == "resume":
            self.progress.console.print(
                f"resuming after epoch {payload['epoch']} (step {payload['global_step']})"
            )

    def finish(self, task: str) -> None:
        return None


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


class FanOut:
    def __init__(self, *sinks: Any) -> None:
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
