"""What every command shares: one Console, output modes, JSON emission, Rich progress."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@dataclass
class OutputMode:
    json: bool = False
    quiet: bool = False


STATE = OutputMode()

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, only results.")]


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
    (err_console if STATE.json else console).print(message)
