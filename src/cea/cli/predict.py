"""`cea predict MODEL --input FILE.jsonl --output FILE.jsonl`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cea.cli._common import (
    BatchSizeOpt,
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    emit_json,
    err_console,
    info,
    set_mode,
    show_progress,
    warn,
)


def predict(
    model: Annotated[
        str,
        typer.Argument(help="A finished run folder (post-level model) or models:/NAME@ALIAS."),
    ],
    input_file: Annotated[
        Path, typer.Option("--input", "-i", help='JSONL: {"id", "text"} per line.')
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="JSONL with probabilities and decisions.")
    ],
    evidence_model: Annotated[
        Path | None,
        typer.Option(
            "--evidence-model", help="A sentence-level run folder: adds top evidence sentences."
        ),
    ] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", min=1, max=50, help="Evidence sentences per criterion.")
    ] = 3,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=4096, help="Texts scored per batch.")
    ] = 256,
    strict: Annotated[
        bool, typer.Option("--strict", help="Any bad line: exit 5, write nothing.")
    ] = False,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 64,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            envvar="MLFLOW_TRACKING_URI",
            help="Registry for models:/ sources (default: $MLFLOW_TRACKING_URI, else the "
            "sqlite mlflow.db here; never created by a read).",
        ),
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Criteria probabilities and decisions (thresholds of the run) for new texts."""
    from cea.api import load_models
    from cea.errors import DataError, UsageError
    from cea.evaluate.batch_predict import predict_file, read_inputs

    mode = set_mode(json_out, quiet)
    if output.resolve() == input_file.resolve():
        raise UsageError("--output must not be the input file")
    if output.is_dir():
        raise UsageError(f"--output {output} is a folder", hint="give the path of a file")
    good, bad = read_inputs(input_file)
    for b in bad:
        err_console.print(
            f"[yellow]warning[/] {input_file}:{b['line']}: {b['reason']}; line skipped"
        )
    if strict and bad:
        raise DataError(
            f"{input_file}: {len(bad)} bad lines (first: line {bad[0]['line']})",
            hint="fix them or drop --strict",
        )
    if not good:
        raise DataError(f"{input_file}: no line to score")
    lm, ev, registered = load_models(model, evidence_model, device, batch_size, tracking_uri)
    progress = None
    if show_progress():
        from rich.progress import Progress

        progress = Progress(console=err_console)
        progress.start()
        task = progress.add_task("scoring", total=len(good))
    try:
        summary = predict_file(
            lm, good, output, evidence=ev, top_k=top_k, batch=batch,
            on_batch=(lambda n: progress.update(task, advance=n)) if progress else None,
        )  # fmt: skip
    finally:
        if progress is not None:
            progress.stop()
    cut = summary["truncated"]
    if cut:
        ch = lm.meta.get("chunking", {})
        reach = (
            f"{ch.get('max_chunks')} windows of {lm.meta.get('max_length')} tokens"
            if ch.get("enabled")
            else f"{lm.meta.get('max_length')} tokens"
        )
        warn(
            f"{len(cut)} text(s) longer than the model reads ({reach}): only their first part "
            f'was scored (first id: {cut[0]}; marked "truncated": true in {output})'
        )
    summary |= {
        "bad_lines": bad,
        "model": model,
        "registered": registered and {k: registered[k] for k in ("name", "version")},
    }
    if mode.json:
        emit_json(summary)
    else:
        info(
            f"scored {len(good)} texts into {output} on {summary['device']} "
            f"({summary['posts_per_s']:.1f} posts/s)"
            + (f"; {len(bad)} bad lines skipped" if bad else "")
        )
