"""`cea register-model RUN_DIR --name NAME [--alias ALIAS]` and `cea runs card RUN_DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cea.cli._common import JsonOpt, QuietOpt, SetOpt, emit_json, info, set_mode


def register_model(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    name: Annotated[str, typer.Option("--name", help="Registered model name.")],
    alias: Annotated[
        str | None,
        typer.Option("--alias", help="Alias to point at the new version (e.g. champion)."),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Config whose `registry` section (protected aliases, gate) applies "
            "(default: cea's defaults — never the gated run's own config).",
        ),
    ] = None,
    sets: SetOpt = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="Registry / tracking URI (default: the run's)."),
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Register a run's model in the MLflow registry (models from code, no pickle) with hashes,
    lineage and eval metrics as tags; a protected alias passes the promotion gate first."""
    from cea import api

    mode = set_mode(json_out, quiet)
    reg = api.register(
        run_dir, name, alias, config=config, overrides=sets or [], tracking_uri=tracking_uri
    )
    out = reg.to_dict()
    if mode.json:
        emit_json(out)
    else:
        info(
            (
                f"{reg.name} version {reg.version} already holds these weights: reused"
                if reg.reused
                else f"registered {reg.name} version {reg.version}"
            )
            + (f" as @{reg.alias}" if reg.alias else "")
            + f"; load with {out['load_with']}"
        )


def card(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the card here (default: stdout).")
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Model card (Markdown) of a run: data, metrics with intervals, thresholds, intended use."""
    import sys

    from cea.evaluate.card import model_card
    from cea.run_folder import verify_run_folder
    from cea.security.io import atomic_write_text

    mode = set_mode(json_out, quiet)
    text = model_card(run_dir, verify_run_folder(run_dir))
    if output is not None:
        atomic_write_text(output, text)
    if mode.json:
        emit_json(
            {"run_dir": str(run_dir), "output": str(output) if output else None, "card": text}
        )
    elif output is None:
        sys.stdout.write(text)
    else:
        info(f"model card written to {output}")
