"""`cea eval RUN_DIR --split test`: metrics with bootstrap intervals, plots, reports."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cea.cli._common import (
    BatchSizeOpt,
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    console,
    emit_json,
    info,
    set_mode,
)


def _log_to_mlflow(run_dir: Path, name: str, report: dict[str, Any], folder: Path) -> str | None:
    """Attach the evaluation to the run's MLflow run (if it was tracked and reachable)."""
    from cea.cli._tracking import recorded_tracking, resolve_target, usable_uri
    from cea.errors import ConfigError
    from cea.tracking.mlflow_tracker import MlflowTracker

    recorded = recorded_tracking(run_dir)
    if not recorded:
        return None
    try:
        uri = usable_uri(recorded, None)
    except ConfigError:
        return (
            "not logged to MLflow: the run's tracking URI held a secret, which cea does not store"
        )
    m = report["metrics"]
    metrics = {
        f"eval/{name}/macro_f1": m["macro_f1"],
        f"eval/{name}/micro_f1": m["micro_f1"],
        f"eval/{name}/ece": report["ece"],
    }
    for lab, lm in m["per_label"].items():
        metrics[f"eval/{name}/{lab}/f1"] = lm["f1"]
    try:  # best effort: the evaluation is written and complete whatever the store does
        tracker = MlflowTracker.resume(
            resolve_target(uri, None, recorded["experiment"]), recorded["run_id"]
        )
        tracker.log(metrics=metrics)
        for f in sorted(folder.iterdir()):
            tracker.log_artifact(f, f"eval/{name}")
        tracker.end("FINISHED")
    except Exception as exc:
        from cea.tracking.redact import redact_text

        return f"not logged to MLflow ({redact_text(str(exc))[:160]})"
    return f"logged to MLflow run {recorded['run_id']}"


def _fresh(stem: str) -> Path:
    """`stem`, or `stem-2`, `stem-3`, ... when two comparisons start in the same second."""
    path, n = Path(stem), 1
    while path.exists():
        n += 1
        path = Path(f"{stem}-{n}")
    return path


def eval_command(
    source: Annotated[
        str | None, typer.Argument(help="A finished run folder, or models:/NAME@ALIAS.")
    ] = None,
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--compare",
            help="A B: two runs or groups (comma lists or globs, e.g. 'runs/base-*' 'runs/aug-*').",
        ),
    ] = None,
    single_seed_ok: Annotated[
        bool,
        typer.Option(
            "--single-seed-ok",
            help="With --compare: give a verdict even with one run per group (no seed variance).",
        ),
    ] = False,
    compare_out: Annotated[
        Path | None,
        typer.Option("--out", help="With --compare: folder for comparison.json and the plot."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="test | validation | train | all.")
    ] = "test",
    name: Annotated[
        str | None, typer.Option("--name", help="Output folder name under RUN_DIR/eval/.")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="Dataset path (default: the run's).")
    ] = None,
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=100, max=100_000, help="Bootstrap resamples.")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 13,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            help="Where evaluations of a models:/ source go (default: ./eval/NAME-vVERSION).",
        ),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri", help="Registry for models:/ sources (default: sqlite here)."
        ),
    ] = None,
    no_track: Annotated[
        bool, typer.Option("--no-track", help="Do not log to the run's MLflow run.")
    ] = False,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 64,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score a run on a split: F1 (macro, micro, per criterion) with 95 % bootstrap intervals,
    AUROC, AUPRC, calibration error, plots; written to RUN_DIR/eval/NAME with its own manifest."""
    from cea.cli.register import resolve_model_source
    from cea.errors import UsageError
    from cea.evaluate.evaluation import evaluate_run

    mode = set_mode(json_out, quiet)
    if compare is not None:
        from cea.evaluate.compare import compare_groups, expand_group, write_comparison

        folder = compare_out or _fresh(f"compare-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")
        if folder.exists():  # an explicit --out is never overwritten
            raise UsageError(f"{folder} exists; comparisons are not overwritten", hint="give --out")
        result = compare_groups(
            expand_group(compare[0]),
            expand_group(compare[1]),
            n_boot=max(n_boot, 200),
            seed=seed,
            single_seed_ok=single_seed_ok,
            device=device,
            batch_size=batch_size,
        )
        result["files"] = write_comparison(result, folder)
        if mode.json:
            emit_json(result)
        else:
            console.print(result["sentence"])
            info(f"comparison and plot in {folder}")
        return
    if source is None:
        raise UsageError("give a run folder or models:/NAME@ALIAS, or --compare A B")
    label = name or f"{split}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    with tempfile.TemporaryDirectory(prefix="cea-model-") as tmp:
        run_dir, registered = resolve_model_source(source, tracking_uri, Path(tmp))
        out_root = None
        if registered is not None:
            out_root = output_dir or Path("eval") / f"{registered['name']}-v{registered['version']}"
        out = evaluate_run(
            run_dir,
            split=split,
            name=label,
            n_boot=n_boot,
            seed=seed,
            data_path=data,
            out_root=out_root,
            source=source if registered is not None else None,
            device=device,
            batch_size=batch_size,
        )
    tracked = None
    if not no_track and registered is None:
        tracked = _log_to_mlflow(run_dir, label, out.report, out.folder)
    if mode.json:
        emit_json({"folder": str(out.folder), "tracking": tracked, **out.report})
        return
    r = out.report
    m, ci = r["metrics"], r["intervals"]
    table = Table(title=f"{split}: {r['examples']} examples from {r['posts']} posts")
    for col in ("criterion", "support", "precision", "recall", "F1", "95% CI", "AUPRC", "ECE"):
        table.add_column(col, justify="left" if col == "criterion" else "right")
    for lab, lm in m["per_label"].items():
        lo, hi = ci["per_label_f1"][lab]
        table.add_row(
            lab,
            str(lm["support"]),
            f"{lm['precision']:.3f}",
            f"{lm['recall']:.3f}",
            f"{lm['f1']:.3f}",
            f"[{lo:.3f}, {hi:.3f}]",
            "-" if lm["auprc"] is None else f"{lm['auprc']:.3f}",
            f"{r['ece_per_label'][lab]:.3f}",
        )
    console.print(table)
    console.print(
        f"macro-F1 {m['macro_f1']:.3f} [{ci['macro_f1'][0]:.3f}, {ci['macro_f1'][1]:.3f}], "
        f"micro-F1 {m['micro_f1']:.3f} [{ci['micro_f1'][0]:.3f}, {ci['micro_f1'][1]:.3f}], ECE {r['ece']:.3f}"
    )
    if r.get("evidence"):
        ev = r["evidence"]
        console.print(
            "evidence: "
            + ", ".join(f"recall@{k} {v:.3f}" for k, v in ev["recall_at_k"].items())
            + f" over {ev['pairs_with_evidence']} (post, criterion) pairs with gold sentences"
        )
    info(f"report, predictions and plots in {out.folder}" + (f"; {tracked}" if tracked else ""))
