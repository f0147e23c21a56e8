"""`cea register-model RUN_DIR --name NAME [--alias ALIAS]` and `cea runs card RUN_DIR`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from cea.cli._common import JsonOpt, QuietOpt, SetOpt, emit_json, info, set_mode


def _tracking_of(run_dir: Path, uri_flag: str | None, experiment: str) -> tuple[Any, str | None]:
    """The run's own tracking store (tracking.json) unless --tracking-uri is given."""
    from cea.cli._tracking import recorded_tracking, resolve_target, usable_uri

    recorded = recorded_tracking(run_dir)
    uri = usable_uri(recorded, uri_flag)
    target = resolve_target(uri, None, recorded.get("experiment", experiment))
    return target, recorded.get("run_id")


def resolve_model_source(
    source: str, tracking_uri: str | None, work_dir: Path
) -> tuple[Path, dict[str, str] | None]:
    """A run folder as given, or a registered `models:/NAME@ALIAS` fetched into `work_dir` and
    verified against its version's sha256 tags (its loader file is never run by cea)."""
    from cea.cli._tracking import resolve_target
    from cea.tracking.registry import fetch_registered

    if not source.startswith("models:/"):
        return Path(source), None
    target = resolve_target(tracking_uri, None, "cea")
    return fetch_registered(source, target, work_dir)


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
    from cea.config import load_config
    from cea.errors import UsageError
    from cea.evaluate.card import model_card
    from cea.evaluate.predictor import verify_run_folder
    from cea.security.paths import safe_name
    from cea.tracking.registry import register_run
    from cea.train.run import saved_config

    mode = set_mode(json_out, quiet)
    safe_name(name, what="model name")
    if alias is not None and safe_name(alias, what="alias").isdigit():
        raise UsageError("--alias must not be a number (it would read as a version)")
    meta = verify_run_folder(run_dir)
    # the gate's policy comes from the gatekeeper (--config/--set, else cea's defaults), never
    # from the run being gated: a run trained with registry.gate_min=0 must not pass itself
    gate = load_config(config, sets or [], {}).registry if (config or sets) else None
    cfg = saved_config(run_dir)
    if gate is not None:
        cfg = cfg.model_copy(update={"registry": gate})
    else:
        from cea.config import RegistryConfig

        cfg = cfg.model_copy(update={"registry": RegistryConfig()})
    target, run_id = _tracking_of(run_dir, tracking_uri, cfg.tracking.experiment)
    with tempfile.TemporaryDirectory(prefix="cea-register-") as tmp:
        reg = register_run(
            run_dir,
            name=name,
            alias=alias,
            target=target,
            training_run_id=run_id,
            protected=cfg.registry.protected_aliases,
            metric_name=cfg.registry.gate_metric,
            gate_on=cfg.registry.gate_on,
            minimum=cfg.registry.gate_min,
            card=model_card(run_dir, meta),
            work_dir=Path(tmp),
        )
    out = {
        "name": reg.name,
        "version": reg.version,
        "alias": reg.alias,
        "model_uri": reg.model_uri,
        "run_id": reg.run_id,
        "tags": reg.tags,
        "reused": reg.reused,
        "load_with": f"models:/{reg.name}@{reg.alias}"
        if reg.alias
        else f"models:/{reg.name}/{reg.version}",
    }
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
    from cea.evaluate.predictor import verify_run_folder
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
