"""The baseline in every report: TF-IDF + class-balanced logistic regression.

A transformer has to beat what a user writes in 30 lines. `cea eval` (and `cea train`'s final
report) fits that baseline on the run's own train split (`split.json`) and scores the split
being evaluated with cea's own metrics (`cea.evaluate.metrics`: the same F1s, the same bootstrap
over posts), so the two sets of numbers are comparable item for item.

The method, fixed (documented in the report):

- features: `TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)`, fitted on the
  training texts only;
- one `LogisticRegression(class_weight="balanced", max_iter=1000)` per criterion (one-vs-rest),
  on the items whose label is known; a criterion without both classes in training predicts
  its one class (probability 1 or 0);
- decisions at 0.5 on `predict_proba`: balanced weights already move the decision boundary
  toward the rare class, and nothing of the evaluated split (or of validation) is used to set
  it, so the baseline is not tuned where the model's thresholds are not either.

Levels: posts always (one item per post and criterion); for a sentence-level run also
sentences (the run's `negatives` rule, one item per sentence and criterion with a known
target: the very items the model is scored on).

**The verdict** compares macro-F1, the headline number, at each level the model reports:
`behind` when the model's point estimate is below the baseline's; `not clearly ahead` when it
is not below but the 95 % interval of the difference (model − baseline) holds 0; `ahead`
otherwise. The difference's interval is a paired bootstrap: both systems are scored on the same
posts, and the same resamples of those posts (the same seed over the same sorted post ids)
give both their macro-F1s, so the resample-to-resample difference keeps what the two share (a
hard post is hard for both). Two separate intervals that overlap were the earlier rule; it is
far more conservative than its 95 % suggests (two equal-width intervals that just touch are a
difference at p ≈ 0.006) and called a 0.80-vs-0.69 model on 220 posts "not clearly ahead". It
remains the fallback where no paired draws exist (a run folder from before they were
recorded: without a model interval, the model's estimate inside the baseline's interval).
`cea train` records the model's intervals and draws on its final split with the same bootstrap
as `cea eval` (`cea_meta.json` `intervals`, `posts.intervals`), so the verdict after training
is the one `cea eval` gives. Unless the model is ahead, one sentence says so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from cea.evaluate.metrics import (
    BOOT_SEED,
    N_BOOT,
    bootstrap_intervals,
    compute_metrics,
    paired_ci,
    without_draws,
)

NAME = "TF-IDF + balanced logistic regression"
THRESHOLD = 0.5
TFIDF_PARAMS: dict[str, Any] = {"sublinear_tf": True, "ngram_range": (1, 2), "min_df": 2}
METHOD = (
    "TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2) + one "
    "LogisticRegression(class_weight='balanced', max_iter=1000) per criterion, fitted on the "
    "run's train split; decisions at 0.5 on predict_proba"
)


def fit_predict(
    train_texts: list[str],
    train_targets: NDArray[np.float64],
    eval_texts: list[str],
) -> NDArray[np.float64]:
    """(n_eval, n_labels) probabilities; NaN training targets (unknown) are left out."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(**TFIDF_PARAMS)
    x_train = vectorizer.fit_transform(train_texts)
    x_eval = vectorizer.transform(eval_texts)
    prob = np.zeros((len(eval_texts), train_targets.shape[1]), dtype=np.float64)
    for c in range(train_targets.shape[1]):
        known = ~np.isnan(train_targets[:, c])
        y = train_targets[known, c] >= 0.5
        if not known.any() or y.all() or not y.any():
            prob[:, c] = 1.0 if known.any() and y.all() else 0.0
            continue
        clf = LogisticRegression(class_weight="balanced", max_iter=1000)
        clf.fit(x_train[known], y)
        prob[:, c] = clf.predict_proba(x_eval)[:, 1]
    return prob


def negative_hardness(train: list[Any], n_labels: int) -> NDArray[np.float64]:
    """Per training example, how much it looks like evidence it is not: the largest
    probability the baseline (fitted on these very examples) gives it for a criterion whose
    target is 0. Negations, other senses and a neighbour criterion's words score high; plain
    filler scores low. `cea.train`'s negative sampling draws the hardest more often."""
    y = np.array([e.labels for e in train], dtype=np.float64).reshape(-1, n_labels)
    if not len(train):
        return np.zeros(0)
    try:
        prob = fit_predict([e.text for e in train], y, [e.text for e in train])
    except ValueError:  # an empty vocabulary: no order, every negative alike
        return np.zeros(len(train))
    negative = np.nan_to_num(y, nan=1.0) < 0.5
    return np.asarray(np.where(negative, prob, 0.0).max(axis=1), dtype=np.float64)


def _score(
    train: list[Any],
    evaluated: list[Any],
    labels: tuple[str, ...],
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    y_train = np.array([e.labels for e in train], dtype=np.float64).reshape(-1, len(labels))
    y_eval = np.array([e.labels for e in evaluated], dtype=np.float64).reshape(-1, len(labels))
    prob = fit_predict([e.text for e in train], y_train, [e.text for e in evaluated])
    n = len(evaluated)
    crit = np.tile(np.arange(len(labels), dtype=np.int64), n)
    thresholds = np.full(len(labels), THRESHOLD)
    target, p = y_eval.reshape(-1), prob.reshape(-1)
    groups = np.repeat(np.array([e.group_id for e in evaluated]), len(labels))
    metrics = compute_metrics(crit, target, p, labels, thresholds)
    intervals = bootstrap_intervals(
        crit, target, p, groups, thresholds, labels, n_boot, seed, draws=True
    )
    return {
        "train_items": len(train),
        "items": n,
        "metrics": metrics.to_dict(),
        "intervals": intervals,
    }


def run_baseline(
    dataset: Any,
    train_groups: set[str],
    eval_groups: set[str] | None,
    *,
    labels: tuple[str, ...],
    level: Literal["post", "sentence"],
    negatives: Literal["annotated", "all"] = "annotated",
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> dict[str, Any]:
    """The baseline's numbers on `eval_groups` (None: every post), fitted on `train_groups`:
    `post` always, `sentence` too for a sentence-level run."""
    from cea.data.examples import build_examples

    start = time.perf_counter()
    out: dict[str, Any] = {
        "name": NAME, "method": METHOD, "threshold": THRESHOLD, "model_level": level,
    }  # fmt: skip
    levels: list[Literal["post", "sentence"]] = (
        ["post", "sentence"] if level == "sentence" else ["post"]
    )
    for lev in levels:

        def examples(groups: set[str] | None, lev: Literal["post", "sentence"] = lev) -> list[Any]:
            return build_examples(
                dataset, level=lev, labels=labels, negatives=negatives, groups=groups,
                encoding="multilabel",
            )  # fmt: skip

        train, evaluated = examples(train_groups), examples(eval_groups)
        if not train or not evaluated:
            continue
        try:
            out[lev] = _score(train, evaluated, labels, n_boot, seed)
        except ValueError as exc:  # e.g. an empty vocabulary: no baseline, said why
            out[lev] = {"skipped": str(exc)}
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


def baseline_for_run(
    run_dir: Path,
    split: str,
    *,
    data_path: str | None = None,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> dict[str, Any]:
    """`run_baseline` for a finished run folder (its config, data, split file and labels),
    without loading the model: what `cea train` shows beside its final metrics."""
    import json

    from cea.data.criteria import load_criteria
    from cea.data.readers import ensure_usable, load_dataset
    from cea.data.splits import load_split
    from cea.run_folder import META_FILE, SPLIT_FILE, saved_config

    cfg = saved_config(run_dir)
    meta = json.loads((run_dir / META_FILE).read_text(encoding="utf-8"))
    criteria = load_criteria(cfg.data.criteria_file)
    result = load_dataset(
        cfg.data.format, data_path or cfg.data.path, tuple(criteria),
        aliases=cfg.data.label_aliases,
    )  # fmt: skip
    ensure_usable(result, strict=False)
    sp = load_split(run_dir / SPLIT_FILE, result.dataset)
    return run_baseline(
        result.dataset, set(sp.groups["train"]),
        None if split == "all" else set(sp.groups[split]),
        labels=tuple(meta["labels"]), level=cfg.task.unit, negatives=cfg.task.negatives,
        n_boot=n_boot, seed=seed,
    )  # fmt: skip


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def verdict(
    model: dict[str, tuple[dict[str, Any], dict[str, Any] | None]], baseline: dict[str, Any]
) -> dict[str, Any]:
    """Per level the model reports ({level: (metrics, intervals or None)}) and the baseline
    has: `behind`, `not clearly ahead` or `ahead` on macro-F1 (module docstring); `sentence`
    is the one sentence a report prints, or None when the model is ahead everywhere."""
    levels: dict[str, dict[str, Any]] = {}
    for level, (metrics, intervals) in model.items():
        base = baseline.get(level)
        if not base or "metrics" not in base:
            continue
        m, b = float(metrics["macro_f1"]), float(base["metrics"]["macro_f1"])
        b_ci = base["intervals"]["macro_f1"]
        m_ci = intervals["macro_f1"] if intervals else None
        diff = paired_ci(intervals, base["intervals"]) if intervals else None
        entry: dict[str, Any] = {"model_macro_f1": m, "baseline_macro_f1": b}
        if m < b:
            status = "behind"
        elif diff is not None:  # the same posts resampled for both: a paired bootstrap
            status = "not clearly ahead" if diff[0] <= 0 else "ahead"
        elif (m_ci is not None and _overlap(m_ci, b_ci)) or (m_ci is None and m <= b_ci[1]):
            status = "not clearly ahead"
        else:
            status = "ahead"
        entry["status"] = status
        if diff is not None:
            entry["difference_ci"] = diff
            entry["test"] = "paired bootstrap over the same posts"
        else:
            entry["test"] = "95 % intervals overlap" if m_ci is not None else "baseline interval"
        levels[level] = entry
    weak = {lev: v for lev, v in levels.items() if v["status"] != "ahead"}
    sentence = None
    if weak:
        parts = [f"{lev} macro-F1 {v['model_macro_f1']:.3f} vs {v['baseline_macro_f1']:.3f} ("
                 + _why(v) + ")" for lev, v in weak.items()]  # fmt: skip
        sentence = f"The model does not beat the {NAME} baseline here: " + "; ".join(parts) + "."
    return {"levels": levels, "sentence": sentence}


def _why(v: dict[str, Any]) -> str:
    if v["status"] == "behind":
        return "behind"
    if "difference_ci" in v:
        lo, hi = v["difference_ci"]
        return f"not clearly ahead: the difference's 95 % interval [{lo:+.3f}, {hi:+.3f}] holds 0"
    return "not clearly ahead: the intervals overlap"


def with_verdict(
    base: dict[str, Any],
    metrics: dict[str, Any],
    intervals: dict[str, Any] | None,
    posts: tuple[dict[str, Any], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """`base` with the verdict on the model's `metrics` (at the run's level) added; `posts`:
    a sentence model's post-level answer (pooled), judged against the post baseline too."""
    level = base.get("model_level", "post")
    model = {level: (metrics, intervals)}
    if posts is not None and level != "post":
        model = {"post": posts, **model}
    out: dict[str, Any] = without_draws({**base, "verdict": verdict(model, base)})
    return out
