"""Max vs noisy-or: how a multi-label sentence model's posts are best scored (README "The
default model").

For each finished sentence run given, the model scores every sentence of its validation and
test posts once; then, for each pooling, what training does is redone on validation (a Platt
map per criterion on the pooled scores, thresholds by the run's rule with the F1/2 default)
and the test posts are scored at them. Same model, same sentences: only the pooling differs.

    python benchmarks/post_pooling.py runs/new-s13 runs/new-s14 runs/new-s15
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(runs: list[str]) -> None:
    from cea.data.examples import build_examples
    from cea.data.readers import load_dataset
    from cea.data.splits import load_split
    from cea.evaluate.calibration import fit_calibration
    from cea.evaluate.metrics import choose_thresholds, compute_metrics
    from cea.evaluate.posts import POOLINGS, post_items
    from cea.evaluate.predictor import load_run_model, predict_examples
    from cea.run_folder import SPLIT_FILE, saved_config

    rows = []
    for run in map(Path, runs):
        cfg = saved_config(run)
        lm = load_run_model(run, device="cpu")
        ds = load_dataset(cfg.data.format, cfg.data.path, lm.labels).dataset
        split = load_split(run / SPLIT_FILE, ds)
        probs = {}
        for name in ("validation", "test"):
            exs = build_examples(ds, level="sentence", labels=lm.labels, negatives="all",
                                 groups=set(split.groups[name]), encoding="multilabel")  # fmt: skip
            probs[name] = ([e.post_id for e in exs], predict_examples(lm, exs).example_prob)
        for pooling in POOLINGS:
            val = post_items(ds, lm.labels, *probs["validation"], pooling)
            cal = fit_calibration(val.crit, val.target, val.prob, lm.labels, "platt")
            val = post_items(ds, lm.labels, *probs["validation"], pooling, cal)
            choice = choose_thresholds(val.crit, val.target, val.prob, lm.labels,
                                       rule=cfg.train.thresholds, seed=cfg.seed, calibrated=True)  # fmt: skip
            test = post_items(ds, lm.labels, *probs["test"], pooling, cal)
            m = compute_metrics(test.crit, test.target, test.prob, lm.labels, choice.values)
            rows.append({"run": str(run), "pooling": pooling, "test_macro_f1": m.macro_f1,
                         "test_micro_f1": m.micro_f1, "test_macro_auprc": m.macro_auprc})  # fmt: skip
    for pooling in POOLINGS:
        mine = [r for r in rows if r["pooling"] == pooling]
        print(json.dumps({
            "pooling": pooling,
            "macro_f1": [round(r["test_macro_f1"], 3) for r in mine],
            "mean_macro_f1": round(float(np.mean([r["test_macro_f1"] for r in mine])), 3),
            "mean_micro_f1": round(float(np.mean([r["test_micro_f1"] for r in mine])), 3),
            "mean_macro_auprc": round(float(np.mean([r["test_macro_auprc"] or 0 for r in mine])), 3),
        }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
