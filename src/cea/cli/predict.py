"""`cea predict MODEL --input FILE.jsonl --output FILE.jsonl`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

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
)


def _read_inputs(path: Path) -> tuple[list[tuple[int, str, str]], list[dict[str, Any]]]:
    """Good lines as (line, id, text); bad lines reported by number (never their text)."""
    from cea.errors import DataError

    good: list[tuple[int, str, str]] = []
    bad: list[dict[str, Any]] = []
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        from cea.errors import MissingResourceError

        raise MissingResourceError(f"input file {path} not found") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror})") from exc
    seen: set[str] = set()
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            bad.append({"line": lineno, "reason": "not valid UTF-8 JSON"})
            continue
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("text"), str)
            or not rec["text"].strip()
        ):
            bad.append({"line": lineno, "reason": 'needs an object with a non-empty "text"'})
            continue
        rid = str(rec.get("id", lineno))
        if rid in seen:
            bad.append({"line": lineno, "reason": f"duplicate id {rid!r}"})
            continue
        seen.add(rid)
        good.append((lineno, rid, rec["text"]))
    return good, bad


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
            "--tracking-uri", help="Registry for models:/ sources (default: sqlite here)."
        ),
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Criteria probabilities and decisions (thresholds of the run) for new texts."""
    import time

    from cea.cli.register import resolve_model_source
    from cea.errors import DataError, UsageError
    from cea.evaluate.predictor import (
        inference_device,
        load_run_model,
        score_posts,
        top_evidence_batch,
    )
    from cea.security.io import atomic_path

    mode = set_mode(json_out, quiet)
    if output.resolve() == input_file.resolve():
        raise UsageError("--output must not be the input file")
    good, bad = _read_inputs(input_file)
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
    inference_device(device)  # a bad or absent device is said before anything is loaded
    with tempfile.TemporaryDirectory(prefix="cea-model-") as fetched:
        run_dir, registered = resolve_model_source(model, tracking_uri, Path(fetched))
        lm = load_run_model(run_dir, device=device, batch_size=batch_size)
    ev = (
        load_run_model(evidence_model, device=device, batch_size=batch_size)
        if evidence_model
        else None
    )
    if ev is not None and not ev.sentence_level:
        raise UsageError(f"{evidence_model} is not a sentence-level (evidence) model")
    progress = None
    if show_progress():
        from rich.progress import Progress

        progress = Progress(console=err_console)
        progress.start()
        task = progress.add_task("scoring", total=len(good))
    started = time.perf_counter()
    try:
        with atomic_path(output) as tmp, tmp.open("w", encoding="utf-8") as fh:
            for start in range(0, len(good), batch):
                part = good[start : start + batch]
                probs = score_posts(lm, [t for _, _, t in part])
                evidence = top_evidence_batch(ev, [t for _, _, t in part], top_k) if ev else None
                for j, ((_, rid, _text), row) in enumerate(zip(part, probs, strict=True)):
                    # decided on the value written (6 decimals, like the stored thresholds),
                    # so every output line is consistent with itself
                    shown = [round(float(p), 6) for p in row]
                    rec: dict[str, Any] = {
                        "id": rid,
                        "probs": dict(zip(lm.labels, shown, strict=True)),
                        "decisions": {
                            lab: bool(p >= t)
                            for lab, p, t in zip(lm.labels, shown, lm.thresholds, strict=True)
                        },
                    }
                    if evidence is not None:
                        rec["evidence"] = evidence[j]
                    fh.write(json.dumps(rec) + "\n")
                if progress is not None:
                    progress.update(task, advance=len(part))
    finally:
        if progress is not None:
            progress.stop()
    seconds = time.perf_counter() - started
    summary = {
        "output": str(output),
        "scored": len(good),
        "device": str(lm.device),
        "seconds": round(seconds, 3),
        "posts_per_s": round(len(good) / max(seconds, 1e-9), 2),
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
