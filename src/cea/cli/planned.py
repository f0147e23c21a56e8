"""Commands of later milestones: registered (so --help lists them), answering exit 4 for now."""

from __future__ import annotations

from collections.abc import Callable

import typer

from cea.errors import NotAvailableYetError

PLANNED = {
    "hpo": "Optuna study over the train config",
}


def _make(name: str, summary: str) -> Callable[..., None]:
    def command(
        args: list[str] | None = typer.Argument(None, hidden=True),
    ) -> None:
        raise NotAvailableYetError(f"`cea {name}` is not available yet in this version")

    command.__doc__ = f"{summary[0].upper()}{summary[1:]} (not available yet)."
    return command


def register(app: typer.Typer) -> None:
    for name, summary in PLANNED.items():
        app.command(
            name,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(_make(name, summary))
