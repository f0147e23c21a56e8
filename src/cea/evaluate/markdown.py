"""The Markdown of an evaluation's report."""

from __future__ import annotations

from typing import Any


def fmt_optional(value: float | None) -> str:
    """A metric that may be undefined (None): three decimals or "-"."""
    return "-" if value is None else f"{value:.3f}"


def eval_markdown(report: dict[str, Any]) -> str:
    """The human-readable report (`report.md`) of an evaluation's `metrics.json`."""
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
    lines += baseline_lines(report)
    lines += [
        "",
        "![confusion](confusion_matrices.png)",
        "![pr](precision_recall.png)",
        "![reliability](reliability.png)",
    ]
    return "\n".join(lines) + "\n"


def _ci(values: list[float]) -> str:
    return f"[{values[0]:.3f}, {values[1]:.3f}]"


def baseline_lines(report: dict[str, Any]) -> list[str]:
    """The report's baseline section: the model's and the baseline's macro/micro-F1 with
    intervals, per level, and the verdict's sentence when the model is not ahead."""
    base = report.get("baseline")
    if not base:
        return []
    lines = ["", "## Baseline", ""]
    if "skipped" in base:
        return [*lines, f"No baseline: {base['skipped']}."]
    model_level = base.get("model_level", "post")
    lines += [
        f"{base['name']} ({base['method']}), fitted in {base['seconds']:.1f} s, "
        "scored on the same items with the same bootstrap.",
        "",
        "| level | system | macro-F1 [95 % CI] | micro-F1 [95 % CI] |",
        "|---|---|---|---|",
    ]
    for level in ("post", "sentence"):
        b = base.get(level)
        if not b or "metrics" not in b:
            continue
        if level == model_level:
            m, ci = report["metrics"], report["intervals"]
            lines.append(
                f"| {level} | model | {m['macro_f1']:.3f} {_ci(ci['macro_f1'])} | "
                f"{m['micro_f1']:.3f} {_ci(ci['micro_f1'])} |"
            )
        bm, bci = b["metrics"], b["intervals"]
        lines.append(
            f"| {level} | baseline | {bm['macro_f1']:.3f} {_ci(bci['macro_f1'])} | "
            f"{bm['micro_f1']:.3f} {_ci(bci['micro_f1'])} |"
        )
    sentence = base.get("verdict", {}).get("sentence")
    if sentence:
        lines += ["", f"**{sentence}**"]
    return lines
