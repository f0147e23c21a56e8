"""`cea eval`: score a finished run on a split of its data, with intervals, plots and reports.

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
from cea.evaluate.metrics import bootstrap_intervals, compute_metrics

__all__ = ["bootstrap_intervals", "evaluate_run", "expected_calibration_error"]

N_BINS = 10


def expected_calibration_error(target: np.ndarray, prob: np.ndarray, bins: int = N_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width probability bins, weighted by bin size."""
    keep = ~np.isnan(target)  # unknown labels are no evidence either way
    target, prob = target[keep], prob[keep]
    if len(prob) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            ece += mask.mean() * abs(float(target[mask].mean()) - float(prob[mask].mean()))
    return float(round(ece, 6))


EVIDENCE_KS = (1, 3, 5)


def evidence_recall(
    keys: list[tuple[str, str]],
    target: np.ndarray,
    prob: np.ndarray,
    ks: tuple[int, ...] = EVIDENCE_KS,
) -> dict[str, Any]:
    """Evidence retrieval per (post, criterion) with at least one gold sentence: recall@k is
    the share of its gold sentences among its k most probable sentences (averaged), hit@k the
    share of pairs with at least one gold sentence in the top k."""
    by_pair: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(keys):
        by_pair.setdefault(key, []).append(i)
    recall: dict[int, list[float]] = {k: [] for k in ks}
    hit: dict[int, list[float]] = {k: [] for k in ks}
    for idx in by_pair.values():
        rows = np.array(idx)
        rows = rows[~np.isnan(target[rows])]  # unknown targets rank nothing
        gold = target[rows] >= 0.5
        if not gold.any():
            continue
        order = rows[np.argsort(-prob[rows], kind="stable")]
        gold_set = set(rows[gold].tolist())
        for k in ks:
            found = len(gold_set.intersection(order[:k].tolist()))
            recall[k].append(found / len(gold_set))
            hit[k].append(float(found > 0))
    return {
        "pairs_with_evidence": len(recall[ks[0]]),
        "recall_at_k": {
            str(k): round(float(np.mean(v)), 6) if v else 0.0 for k, v in recall.items()
        },
        "hit_at_k": {str(k): round(float(np.mean(v)), 6) if v else 0.0 for k, v in hit.items()},
    }


@dataclass(frozen=True)
class EvalOutput:
    folder: Path
    report: dict[str, Any]


def _plots(
    folder: Path,
    crit: np.ndarray,
    target: np.ndarray,
    prob: np.ndarray,
    labels: tuple[str, ...],
    thresholds: np.ndarray,
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    keep = ~np.isnan(target)  # unknown (masked) labels are left out, as in the metrics
    crit, target, prob = crit[keep], target[keep], prob[keep]
    written = []
    n = len(labels)
    cols = 5
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.8 * rows), squeeze=False)
    for i, lab in enumerate(labels):
        ax = axes[i // cols][i % cols]
        m = crit == i
        y, p = target[m] >= 0.5, prob[m] >= thresholds[i]
        cm = np.array([[np.sum(~y & ~p), np.sum(~y & p)], [np.sum(y & ~p), np.sum(y & p)]])
        ax.imshow(cm, cmap="Blues")
        for (r, c), v in np.ndenumerate(cm):
            dark = v > cm.max() / 2
            ax.text(c, r, str(v), ha="center", va="center", color="white" if dark else "black")
        ax.set_title(lab, fontsize=8)
        ax.set_xticks([0, 1], ["pred 0", "pred 1"], fontsize=7)
        ax.set_yticks([0, 1], ["true 0", "true 1"], fontsize=7)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle("Confusion matrices at the run's thresholds")
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrices.png", dpi=110)
    plt.close(fig)
    written.append("confusion_matrices.png")

    fig, ax = plt.subplots(figsize=(6, 5))
    for i, lab in enumerate(labels):
        m = crit == i
        y = target[m] >= 0.5
        if 0 < y.sum() < len(y):
            pr, rc, _ = precision_recall_curve(y, prob[m])
            ax.plot(rc, pr, label=lab, lw=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall per criterion")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(folder / "precision_recall.png", dpi=110)
    plt.close(fig)
    written.append("precision_recall.png")

    fig, ax = plt.subplots(figsize=(5, 5))
    edges = np.linspace(0, 1, N_BINS + 1)
    idx = np.clip(np.digitize(prob, edges[1:-1]), 0, N_BINS - 1)
    conf = [prob[idx == b].mean() if (idx == b).any() else np.nan for b in range(N_BINS)]
    acc = [target[idx == b].mean() if (idx == b).any() else np.nan for b in range(N_BINS)]
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.plot(conf, acc, "o-")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("Reliability (all criteria)")
    fig.tight_layout()
    fig.savefig(folder / "reliability.png", dpi=110)
    plt.close(fig)
    written.append("reliability.png")
    return written


def fmt_optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _markdown(report: dict[str, Any]) -> str:
    m, ci = report["metrics"], report["intervals"]
    lines = [
        f"# Evaluation `{report['name']}` of `{report['run_dir']}`",
        "",
        f"Split **{report['split']}**: {report['examples']} examples from {report['posts']} posts. "
        f"Thresholds tuned on validation at training time. 95 % intervals: bootstrap over posts "
        f"({ci['n_boot']} resamples).",
        "",
        f"- macro-F1 **{m['macro_f1']:.3f}** [{ci['macro_f1'][0]:.3f}, {ci['macro_f1'][1]:.3f}]",
        f"- micro-F1 **{m['micro_f1']:.3f}** [{ci['micro_f1'][0]:.3f}, {ci['micro_f1'][1]:.3f}]",
        f"- expected calibration error {report['ece']:.3f}",
        *(
            [
                "- left out of the macro averages (no positive item in this split): "
                + ", ".join(m["labels_without_positives"])
            ]
            if m.get("labels_without_positives")
            else []
        ),
        *(
            [
                "- evidence (per post and criterion with gold sentences, "
                f"{report['evidence']['pairs_with_evidence']} pairs): "
                + ", ".join(
                    f"recall@{k} {v:.3f}" for k, v in report["evidence"]["recall_at_k"].items()
                )
            ]
            if report.get("evidence")
            else []
        ),
        "",
        "| criterion | support | precision | recall | F1 [95 % CI] | AUROC | AUPRC | ECE | threshold |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lab, lm in m["per_label"].items():
        lo, hi = ci["per_label_f1"][lab]
        lines.append(
            f"| {lab} | {lm['support']} | {lm['precision']:.3f} | {lm['recall']:.3f} | "
            f"{lm['f1']:.3f} [{lo:.3f}, {hi:.3f}] | {fmt_optional(lm['auroc'])} | {fmt_optional(lm['auprc'])} | "
            f"{report['ece_per_label'][lab]:.3f} | {lm['threshold']:.3f} |"
        )
    lines += [
        "",
        "![confusion](confusion_matrices.png)",
        "![pr](precision_recall.png)",
        "![reliability](reliability.png)",
    ]
    return "\n".join(lines) + "\n"


def evaluate_run(
    run_dir: Path,
    *,
    split: str,
    name: str,
    n_boot: int = 1000,
    seed: int = 13,
    data_path: str | None = None,
    out_root: Path | None = None,
    source: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
) -> EvalOutput:
    """Score the run on `split`; outputs in `out_root/name` (default `RUN_DIR/eval/name`)."""
    from cea.data.criteria import load_criteria
    from cea.data.examples import build_examples
    from cea.data.readers import ensure_usable, load_dataset
    from cea.data.splits import load_split
    from cea.evaluate.predictor import load_run_model, predict_examples
    from cea.security.paths import safe_child
    from cea.train.run import saved_config

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
    if split == "all":
        groups: set[str] | None = None
    else:
        sp = load_split(run_dir / "split.json", ds)  # refuses other data (hash differs)
        if split not in sp.groups:
            raise UsageError(f"split {split!r} not in this run ({', '.join(sp.groups)})")
        groups = set(sp.groups[split])
    exs = build_examples(
        ds,
        level=cfg.task.level,
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
    post_of_example = np.array([e.group_id for e in exs])
    item_groups = post_of_example if lm.pair else np.repeat(post_of_example, len(lm.labels))
    intervals = bootstrap_intervals(
        pred.crit, pred.target, pred.prob, item_groups, lm.thresholds, lm.labels, n_boot, seed
    )
    ece_per = {
        lab: expected_calibration_error(pred.target[pred.crit == i], pred.prob[pred.crit == i])
        for i, lab in enumerate(lm.labels)
    }
    root = out_root if out_root is not None else run_dir / "eval"
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
                           intervals, ece_per, ds, lm)  # fmt: skip
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # a crash, a full disk, Ctrl-C: nothing left
        raise


def _write_eval(
    stage: Path, folder: Path, name: str, split: str, source: str | None, run_dir: Path,
    exs: list[Any], pred: Any, metrics: Any, intervals: Any, ece_per: dict[str, float],
    ds: Any, lm: Any,
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
    atomic_write_text(stage / "predictions.jsonl", "\n".join(lines) + "\n")
    report["plots"] = _plots(stage, pred.crit, pred.target, pred.prob, lm.labels, lm.thresholds)
    atomic_write_json(stage / "metrics.json", report, sort_keys=False)
    atomic_write_text(stage / "report.md", _markdown(report))
    write_manifest(stage)
    stage.rename(folder)
    return EvalOutput(folder, report)
