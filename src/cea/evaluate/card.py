"""A model card (Markdown) for a finished run: data, metrics per criterion with intervals,
thresholds, intended use and limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cea.evaluate.markdown import fmt_optional
from cea.run_folder import EVAL_DIR
from cea.security.manifest import check_manifest


def verified_evals(run_dir: Path, split: str = "test") -> list[dict[str, Any]]:
    """`cea eval` reports of `split` whose manifest still verifies, newest first."""
    found = []
    for path in (run_dir / EVAL_DIR).glob("*/metrics.json"):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        ok = isinstance(report, dict) and report.get("split") == split
        if ok and check_manifest(path.parent).ok:
            found.append((path.stat().st_mtime, report))
    return [r for _, r in sorted(found, key=lambda f: -f[0])]


def newest_eval(run_dir: Path, split: str = "test") -> dict[str, Any] | None:
    """The newest `cea eval` report of `split` whose manifest still verifies."""
    found = verified_evals(run_dir, split)
    return found[0] if found else None


def _metric_rows(per_label: dict[str, Any], ci: dict[str, list[float]] | None) -> list[str]:
    """The per-criterion table; F1 with its 95 % interval when there is one."""
    f1_head = "F1 [95 % CI]" if ci else "F1"
    rows = [
        f"| criterion | support | precision | recall | {f1_head} | AUROC | AUPRC |",
        "|---|---|---|---|---|---|---|",
    ]
    for lab, lm in per_label.items():
        f1 = f"{lm['f1']:.3f}" + (f" [{ci[lab][0]:.3f}, {ci[lab][1]:.3f}]" if ci else "")
        rows.append(
            f"| {lab} | {lm['support']} | {lm['precision']:.3f} | {lm['recall']:.3f} | {f1} | "
            f"{fmt_optional(lm['auroc'])} | {fmt_optional(lm['auprc'])} |"
        )
    return rows


def model_card(run_dir: Path, meta: dict[str, Any]) -> str:
    report = newest_eval(run_dir)
    level = meta["task"]["level"]
    lines = [
        f"# Model card: `{run_dir.name}`",
        "",
        "## Intended use and limits",
        "",
        "- **Research use only.** This model flags whether a text meets a criterion "
        f"({meta['task']['name']}, {level} level) and is **not a diagnostic device**: it must not "
        "be used to diagnose, triage or treat anyone, nor to decide about a person without a "
        "qualified clinician.",
        "- Trained on a small dataset; the intervals below show how uncertain the metrics are. "
        "Performance on other populations, platforms or writing styles is unknown.",
        "- Texts may be sensitive: run it where the data is allowed to be processed.",
        "",
        "## Model",
        "",
        f"- backbone: `{meta['backbone']['name']}` ({meta['backbone']['kind']}); max length "
        f"{meta['max_length']} tokens; cea {meta['cea_version']}",
        f"- seed {meta['seed']}; best epoch {meta['best_epoch']} of {meta['epochs_run']}"
        + (" (stopped early)" if meta.get("stopped_early") else ""),
        f"- config hash `{meta['config_hash']}`",
        "",
        "## Data",
        "",
        f"- data hash `{meta['data_hash']}`; examples per split: "
        + ", ".join(f"{k} {v}" for k, v in meta["examples"].items()),
        "",
        "| criterion | description | threshold |",
        "|---|---|---|",
    ]
    for lab in meta["labels"]:
        desc = str(meta["criteria"].get(lab, "")).replace("|", "/")
        lines.append(f"| {lab} | {desc} | {meta['thresholds'][lab]:.3f} |")
    lines += ["", "## Metrics", ""]
    if report is not None:
        m, ci = report["metrics"], report["intervals"]
        lines += [
            f"From `cea eval` `{report['name']}` on the **{report['split']}** split "
            f"({report['examples']} examples, {report['posts']} posts), 95 % bootstrap intervals "
            f"over posts. macro-F1 **{m['macro_f1']:.3f}** [{ci['macro_f1'][0]:.3f}, "
            f"{ci['macro_f1'][1]:.3f}], micro-F1 {m['micro_f1']:.3f}, ECE {report['ece']:.3f}.",
            "",
            *_metric_rows(m["per_label"], ci["per_label_f1"]),
        ]
        if report.get("evidence"):
            ev = report["evidence"]
            lines += [
                "",
                "Evidence retrieval: "
                + ", ".join(f"recall@{k} {v:.3f}" for k, v in ev["recall_at_k"].items()),
            ]
    else:
        split = meta["final_split"]
        m = meta["metrics"][split]
        lines += [
            f"Training-time metrics on the **{split}** split (no intervals: run "
            f"`cea eval {run_dir} --split test` for bootstrap intervals). "
            f"macro-F1 **{m['macro_f1']:.3f}**, micro-F1 {m['micro_f1']:.3f}.",
            "",
            *_metric_rows(m["per_label"], None),
        ]
    return "\n".join(lines) + "\n"
