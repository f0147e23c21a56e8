"""What every command shares: one Console, output modes, JSON emission, Rich progress."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleDimensions

NON_TTY_WIDTH = 200  # columns of text written to a file, a pipe, a CI log


class _Console(Console):
    """Rich's Console, but wide when it writes to no terminal: logs and CI keep whole names in
    tables (`DEPRESSED_MOOD`, not `DEPRESSE…`) instead of Rich's 80-column default. A COLUMNS
    variable or an explicit width still decides."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and "COLUMNS" not in self._environ:
            return ConsoleDimensions(max(size.width, NON_TTY_WIDTH), size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)


@dataclass
class OutputMode:
    json: bool = False
    quiet: bool = False
    stdout_is_data: bool = False  # e.g. `--json-events -`: human text goes to stderr


STATE = OutputMode()

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, only results.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present) | cpu | cuda.")]
BatchSizeOpt = Annotated[
    int, typer.Option("--batch-size", min=1, max=65536, help="Examples per forward pass.")
]
# the same key.path=value overrides on every command that takes a config (train and augment
# also take them as plain arguments)
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="key.path=value config override (repeatable).")
]


def set_mode(json_out: bool, quiet: bool) -> OutputMode:
    STATE.json = STATE.json or json_out
    STATE.quiet = STATE.quiet or quiet
    return STATE


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def show_progress() -> bool:
    """Rich progress only for people: not with --json/--quiet, not when stderr is no TTY."""
    return not (STATE.json or STATE.quiet) and err_console.is_terminal


def debug_enabled() -> bool:
    return os.environ.get("CEA_DEBUG", "") not in ("", "0")


def info(message: str) -> None:
    """A human note (stderr in --json mode so stdout stays parseable)."""
    if STATE.quiet:
        return
    human().print(message)


def human() -> Console:
    """Where text for people goes: stdout, unless stdout carries data (--json, events)."""
    return err_console if STATE.json or STATE.stdout_is_data else console


def warn(message: str) -> None:
    """A warning on stderr, whatever the output mode."""
    from rich.markup import escape

    err_console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def graceful_stop(*, immediate: bool = False) -> Any:
    """`cea.progress.graceful_stop`, saying on stderr that a signal came. `immediate`: a
    signal outside the work's safe points (setup) stops at once."""
    from cea.progress import graceful_stop as stop

    return stop(
        lambda name: err_console.print(
            f"{name}: stopping after the current step (send it again to stop now)"
        ),
        immediate=immediate,
    )


def check_out(path: Path, *, force: bool, kind: str) -> None:
    """Refuse (exit 2) an output `path` that would replace something, unless `force`:
    `kind` "file" (a folder there is always refused) or "folder" (one that holds anything)."""
    from cea.errors import UsageError

    if kind == "file":
        if path.is_dir():
            raise UsageError(f"--out {path} is a folder", hint="give the path of a file")
        if path.exists() and not force:
            raise UsageError(f"--out {path} exists", hint="give --force to replace it")
    else:
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {path} is a file", hint="give the path of a folder")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise UsageError(
                f"--out {path} is not empty", hint="give --force to write into it anyway"
            )
