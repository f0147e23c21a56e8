"""`cea eval`: score a finished run on a split of its data, with intervals, plots and reports.

The orchestration only: the numbers are `metrics`, the figures `plots`, the text `markdown`.

Metrics at the thresholds stored with the run; bootstrap 95 % intervals resample posts (groups),
not items, because a post's criteria are correlated. Outputs go to `RUN_DIR/eval/<name>/` with
their own manifest: training outputs are never modified.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cea.errors import DataError, UsageError
from cea.evaluate.baseline import run_baseline, with_verdict
from cea.evaluate.markdown import eval_markdown
from cea.evaluate.metrics import (
    BOOT_SEED,
    N_BOOT,
    bootstrap_intervals,
    compute_metrics,
    evidence_recall,
    expected_calibration_error,
    item_groups,
    without_draws,
)
from cea.evaluate.plots import write_plots

__all__ = [
    "EvalOutput",
    "bootstrap_intervals",
    "evaluate_run",
    "evidence_recall",
    "expected_calibration_error",
]


@dataclass(frozen=True)
class EvalOutput:
    """Where an evaluation was written, and its report (the content of `metrics.json`)."""

    folder: Path
    report: dict[str, Any]


def evaluate_run(
    run_dir: Path,
    *,
    split: str,
    name: str,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    data_path: str | None = None,
    out_root: Path | None = None,
    source: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    baseline: bool = True,
) -> EvalOutput:
    """Score the run on `split`; outputs in `out_root/name` (default `RUN_DIR/eval/name`).
    `baseline`: also fit TF-IDF + balanced logistic regression on the run's train split and
    score it on the same items (`cea.evaluate.baseline`; the report's `baseline` key)."""
    from cea.data.criteria import load_criteria
    from cea.data.examples import build_examples
    from cea.data.readers import ensure_usable, load_dataset
    from cea.data.splits import load_split
    from cea.evaluate.predictor import load_run_model, predict_examples
    from cea.run_folder import EVAL_DIR, SPLIT_FILE, saved_config
    from cea.security.paths import safe_child

    lm = load_run_model(run_dir, device=device, batch_size=batch_size)
    cfg = saved_config(run_dir)
    criteria = load_criteria(cfg.data.criteria_file)
    result = load_dataset(
        cfg.data.format,
        data_path or cfg.data.path,
        tuple(criteria),
        aliases=cfg.data.label_aliases,
    )
    ensure_usable(result, strict=False)
    ds = result.dataset
    train_groups: set[str] | None = None
    if split == "all":
        groups: set[str] | None = None
        if baseline:
            try:
                train_groups = set(load_split(run_dir / SPLIT_FILE, ds).groups["train"])
            except (DataError, OSError, KeyError):
                train_groups = None  # other data than the run's: no train split to fit on
    else:
        sp = load_split(run_dir / SPLIT_FILE, ds)  # refuses other data (hash differs)
        if split not in sp.groups:
            raise UsageError(f"split {split!r} not in this run ({', '.join(sp.groups)})")
        groups = set(sp.groups[split])
        train_groups = set(sp.groups.get("train", ()))
    exs = build_examples(
        ds,
        level=cfg.task.unit,
        labels=lm.labels,
        negatives=cfg.task.negatives,
        groups=groups,
        encoding=cfg.task.encoding,
    )
    if not exs:
        raise DataError(f"no examples in split {split!r}")
    pred = predict_examples(lm, exs)
    metrics = compute_metrics(
        pred.crit, pred.target, pred.prob, lm.labels, lm.thresholds, loss=pred.loss
    )
    intervals = bootstrap_intervals(
        pred.crit, pred.target, pred.prob, item_groups(exs, 1 if lm.pair else len(lm.labels)),
        lm.thresholds, lm.labels, n_boot, seed, draws=True,
    )  # fmt: skip
    ece_per = {
        lab: expected_calibration_error(pred.target[pred.crit == i], pred.prob[pred.crit == i])
        for i, lab in enumerate(lm.labels)
    }
    pfs = None
    if lm.sentence_level and not lm.pair:  # the same model's answer for the posts
        pfs = posts_from_sentences(ds, exs, pred.example_prob, lm, n_boot, seed)
    base = None
    if baseline:
        base = _baseline(ds, train_groups, groups, lm.labels, cfg, n_boot, seed)
        posts = (pfs["metrics"], pfs["intervals"]) if pfs is not None else None
        base = with_verdict(base, metrics.to_dict(), intervals, posts)
    # the draws served the verdict's paired bootstrap; the report keeps the intervals
    intervals = without_draws(intervals)
    pfs = without_draws(pfs)
    root = out_root if out_root is not None else run_dir / EVAL_DIR
    folder = safe_child(root, name, what="evaluation name")
    if folder.exists():
        raise UsageError(
            f"{folder} exists; evaluations are immutable", hint="choose another --name"
        )
    stage = root / f".{name}.tmp"
    if stage.exists():  # left by an evaluation that was killed: never blocks the next one
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=False)
    try:
        return _write_eval(stage, folder, name, split, source, run_dir, exs, pred, metrics,
                           intervals, ece_per, ds, lm, base, pfs)  # fmt: skip
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # a crash, a full disk, Ctrl-C: nothing left
        raise


def posts_from_sentences(
    ds: Any, exs: list[Any], example_prob: Any, lm: Any, n_boot: int, seed: int
) -> dict[str, Any]:
    """The criteria of the evaluated posts, read off a multi-label sentence model: its
    sentences' probabilities pooled per post (`cea.evaluate.posts`), through the post
    calibration and at the post thresholds the run chose on validation (`cea_meta.json`
    `posts`; a run from before those existed: max pooling at its sentence thresholds), judged
    against the post labels with intervals over posts. One model, both tasks; the same numbers
    as a post-level run's, so the two can be set side by side (and beside the post baseline)."""
    from cea.evaluate.posts import post_items

    posts_meta = lm.meta.get("posts") or {}
    pooling = str(posts_meta.get("pooling", "max"))
    thresholds = np.asarray(
        [float((posts_meta.get("thresholds") or {}).get(lab, t)) for lab, t in
         zip(lm.labels, lm.thresholds, strict=True)],
        dtype=np.float64,
    )  # fmt: skip
    items = post_items(
        ds, lm.labels, [e.post_id for e in exs], example_prob, pooling,
        posts_meta.get("calibration"),
    )  # fmt: skip
    metrics = compute_metrics(items.crit, items.target, items.prob, lm.labels, thresholds)
    intervals = bootstrap_intervals(
        items.crit, items.target, items.prob, items.groups, thresholds, lm.labels, n_boot, seed,
        draws=True,
    )  # fmt: skip
    return {
        "pooling": pooling,
        "posts": len(items.post_ids),
        "thresholds": {lab: float(t) for lab, t in zip(lm.labels, thresholds, strict=True)},
        "metrics": metrics.to_dict(),
        "intervals": intervals,
    }


def _write_eval(
    stage: Path, folder: Path, name: str, split: str, source: str | None, run_dir: Path,
    exs: list[Any], pred: Any, metrics: Any, intervals: Any, ece_per: dict[str, float],
    ds: Any, lm: Any, base: dict[str, Any] | None = None,
    pfs: dict[str, Any] | None = None,
) -> EvalOutput:  # fmt: skip
    from cea.security.io import atomic_write_json, atomic_write_text
    from cea.security.manifest import write_manifest

    post_of_example = np.array([e.group_id for e in exs])
    report = {
        "name": name,
        "run_dir": source or str(run_dir),
        "split": split,
        "examples": len(exs),
        "posts": len(set(post_of_example)),
        "data_hash": ds.content_hash(),
        "metrics": metrics.to_dict(),
        "intervals": intervals,
        "ece": expected_calibration_error(pred.target, pred.prob),
        "ece_per_label": ece_per,
        "thresholds": {lab: float(t) for lab, t in zip(lm.labels, lm.thresholds, strict=True)},
        "device": str(lm.device),
    }
    lines = []
    for i, e in enumerate(exs):  # ids and numbers only: no text in the predictions file
        row: dict[str, Any] = {"id": e.example_id, "post_id": e.post_id}
        if lm.pair:
            row.update(
                criterion=e.criterion,
                target=e.labels[0],
                prob=float(pred.example_prob[i, 0]),  # full precision: metrics reproduce exactly
            )
        else:
            row.update(  # an unknown (masked) target is null, not NaN: valid JSON
                targets={
                    lab: (None if math.isnan(y) else y)
                    for lab, y in zip(lm.labels, e.labels, strict=True)
                },
                probs={
                    lab: float(p) for lab, p in zip(lm.labels, pred.example_prob[i], strict=True)
                },
            )
        lines.append(json.dumps(row))
    if lm.pair:
        report["evidence"] = evidence_recall(
            [(e.post_id, e.criterion or "") for e in exs],
            np.array([e.labels[0] for e in exs], dtype=np.float64),
            pred.example_prob[:, 0],
        )
    elif lm.sentence_level:  # multi-label sentences: one item per (sentence, criterion)
        report["evidence"] = evidence_recall(
            [(e.post_id, lab) for e in exs for lab in lm.labels],
            np.array([y for e in exs for y in e.labels], dtype=np.float64),
            pred.example_prob.reshape(-1),
        )
    if pfs is not None:
        report["posts_from_sentences"] = pfs
    if base is not None:
        report["baseline"] = base
    atomic_write_text(stage / "predictions.jsonl", "\n".join(lines) + "\n")
    report["plots"] = write_plots(
        stage, pred.crit, pred.target, pred.prob, lm.labels, lm.thresholds
    )
    atomic_write_json(stage / "metrics.json", report, sort_keys=False)
    atomic_write_text(stage / "report.md", eval_markdown(report))
    write_manifest(stage)
    stage.rename(folder)
    return EvalOutput(folder, report)


def _baseline(
    ds: Any, train_groups: set[str] | None, groups: set[str] | None, labels: tuple[str, ...],
    cfg: Any, n_boot: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """The TF-IDF baseline on the evaluated items, or why there is none."""
    if not train_groups:
        return {"skipped": "no train split of this data in the run folder to fit on"}
    return run_baseline(
        ds, train_groups, groups, labels=labels, level=cfg.task.unit,
        negatives=cfg.task.negatives, n_boot=n_boot, seed=seed,
    )  # fmt: skip
