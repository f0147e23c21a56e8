"""`cea eval RUN_DIR --split test`: metrics with bootstrap intervals, plots, reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
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
    compare_metric: Annotated[
        str,
        typer.Option(
            "--metric",
            help="With --compare: auto (macro-F1 of posts when a run is post-level, else "
            "evidence recall@3), macro_f1 (sentence models answer for posts by pooling) or "
            "evidence_recall@3.",
        ),
    ] = "auto",
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
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Bootstrap seed.")] = 13,
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
            "--tracking-uri",
            envvar="MLFLOW_TRACKING_URI",
            help="Registry for models:/ sources (default: $MLFLOW_TRACKING_URI, else the "
            "sqlite mlflow.db here; never created by a read).",
        ),
    ] = None,
    no_track: Annotated[
        bool, typer.Option("--no-track", help="Do not log to the run's MLflow run.")
    ] = False,
    no_baseline: Annotated[
        bool,
        typer.Option(
            "--no-baseline",
            help="Do not fit the TF-IDF + balanced logistic regression baseline on the run's "
            "train split (shown beside the model's numbers by default).",
        ),
    ] = False,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 64,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score a run on a split: F1 (macro, micro, per criterion) with 95 % bootstrap intervals,
    AUROC, AUPRC, calibration error, plots; written to RUN_DIR/eval/NAME with its own manifest.
    Beside them, a TF-IDF + balanced logistic regression baseline fitted on the run's train
    split, and one sentence when the model does not beat it."""
    from cea import api
    from cea.errors import UsageError

    mode = set_mode(json_out, quiet)
    if compare is not None:
        comparison = api.compare(
            compare[0], compare[1], n_boot=n_boot, seed=seed, single_seed_ok=single_seed_ok,
            out=compare_out, device=device, batch_size=batch_size, metric=compare_metric,
        )  # fmt: skip
        if mode.json:
            emit_json(comparison.to_dict())
        else:
            console.print(comparison.sentence)
            info(f"comparison and plot in {comparison.folder}")
        return
    if source is None:
        raise UsageError("give a run folder or models:/NAME@ALIAS, or --compare A B")
    if name is not None and not source.startswith("models:/"):
        from cea.run_folder import EVAL_DIR

        existing = Path(source) / EVAL_DIR / name
        if existing.exists():  # said before the evaluation, not after it
            raise UsageError(
                f"{existing} exists; evaluations are immutable", hint="choose another --name"
            )
    out = api.evaluate(
        source, split=split, name=name, data=data, n_boot=n_boot, seed=seed,
        output_dir=output_dir, tracking_uri=tracking_uri, track=not no_track, device=device,
        batch_size=batch_size, baseline=not no_baseline,
    )  # fmt: skip
    tracked = out.tracking
    if mode.json:
        emit_json(out.to_dict())
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
    if r.get("posts_from_sentences"):
        pf = r["posts_from_sentences"]
        pm, pci = pf["metrics"], pf["intervals"]
        console.print(
            f"posts ({pf['pooling']} of their sentences, {pf['posts']} posts): macro-F1 "
            f"{pm['macro_f1']:.3f} [{pci['macro_f1'][0]:.3f}, {pci['macro_f1'][1]:.3f}], "
            f"micro-F1 {pm['micro_f1']:.3f} [{pci['micro_f1'][0]:.3f}, {pci['micro_f1'][1]:.3f}]"
        )
    print_baseline(r.get("baseline"))
    info(f"report, predictions and plots in {out.folder}" + (f"; {tracked}" if tracked else ""))


def print_baseline(base: dict[str, Any] | None, out: Console | None = None) -> None:
    """The baseline's numbers, one line per level, and the verdict's sentence (if any)."""
    if not base:
        return
    out = out or console
    if "skipped" in base:
        info(f"no baseline: {base['skipped']}")
        return
    for level in ("post", "sentence"):
        b = base.get(level)
        if not b or "metrics" not in b:
            continue
        m, ci = b["metrics"], b["intervals"]
        out.print(
            f"baseline ({base['name']}, threshold {base['threshold']}), {level}s: "
            f"macro-F1 {m['macro_f1']:.3f} [{ci['macro_f1'][0]:.3f}, {ci['macro_f1'][1]:.3f}], "
            f"micro-F1 {m['micro_f1']:.3f} [{ci['micro_f1'][0]:.3f}, {ci['micro_f1'][1]:.3f}]"
        )
    sentence = base.get("verdict", {}).get("sentence")
    if sentence:
        out.print(sentence)
