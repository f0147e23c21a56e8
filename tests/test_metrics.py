from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_recall_fscore_support

from cea.evaluate.metrics import compute_metrics, tune_thresholds

LABELS = ("A", "B", "C")


def _random(seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    crit = np.tile(np.arange(3), n)
    target = (rng.random(3 * n) < 0.3).astype(float)
    prob = np.clip(target * 0.4 + rng.random(3 * n) * 0.6, 0, 1)
    return crit, target, prob


def test_matches_sklearn_per_label_macro_micro() -> None:
    crit, target, prob = _random(0)
    thr = np.array([0.5, 0.4, 0.6])
    rep = compute_metrics(crit, target, prob, LABELS, thr)
    y = target.reshape(-1, 3)
    pred = (prob.reshape(-1, 3) >= thr).astype(int)
    p, r, f, s = precision_recall_fscore_support(y, pred, zero_division=0)
    for i, m in enumerate(rep.labels):
        assert m.precision == pytest.approx(p[i], abs=1e-6)
        assert m.recall == pytest.approx(r[i], abs=1e-6)
        assert m.f1 == pytest.approx(f[i], abs=1e-6)
        assert m.support == s[i]
    assert rep.macro_f1 == pytest.approx(
        f1_score(y, pred, average="macro", zero_division=0), abs=1e-6
    )
    assert rep.micro_f1 == pytest.approx(
        f1_score(y, pred, average="micro", zero_division=0), abs=1e-6
    )


def test_label_without_positives_has_no_auprc() -> None:
    crit = np.array([0, 1, 0, 1])
    target = np.array([1.0, 0.0, 0.0, 0.0])
    prob = np.array([0.9, 0.2, 0.1, 0.3])
    rep = compute_metrics(crit, target, prob, ("A", "B"))
    assert rep.labels[0].auprc == 1.0
    assert rep.labels[1].auprc is None
    assert rep.macro_auprc == 1.0


def test_tuned_thresholds_never_worse_than_default() -> None:
    crit, target, prob = _random(1)
    tuned = tune_thresholds(crit, target, prob, 3)
    default = compute_metrics(crit, target, prob, LABELS)
    better = compute_metrics(crit, target, prob, LABELS, tuned)
    for d, b in zip(default.labels, better.labels, strict=True):
        assert b.f1 >= d.f1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=1, max_size=40))
def test_threshold_tuning_is_optimal_on_its_data(items) -> None:
    target = np.array([float(t) for t, _ in items])
    prob = np.array([p for _, p in items])
    crit = np.zeros(len(items), dtype=np.int64)
    thr = tune_thresholds(crit, target, prob, 1)
    best = compute_metrics(crit, target, prob, ("A",), thr).labels[0].f1
    for t in np.unique(np.concatenate([prob, [0.0, 0.5, 1.0]])):
        assert (
            compute_metrics(crit, target, prob, ("A",), np.array([t])).labels[0].f1 <= best + 1e-6
        )


# ---- one definition everywhere (issue #16): properties against scikit-learn ----------------

from cea.evaluate.metrics import (  # noqa: E402
    best_threshold,
    bootstrap_intervals,
    choose_thresholds,
    macro_micro_f1,
)


@st.composite
def _prediction_sets(draw):  # type: ignore[no-untyped-def]
    """Random post-level prediction sets: some labels with no positive, some posts masked."""
    n_posts = draw(st.integers(2, 40))
    n_labels = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rates = rng.choice([0.0, 0.1, 0.4, 0.9], size=n_labels)
    target = (rng.random((n_posts, n_labels)) < rates).astype(float)
    if draw(st.booleans()):
        target[rng.random((n_posts, n_labels)) < 0.1] = np.nan
    prob = rng.random((n_posts, n_labels))
    thr = rng.choice([0.3, 0.5, 0.7], size=n_labels)
    return target, prob, thr


@given(_prediction_sets())
@settings(max_examples=150, deadline=None)
def test_metrics_equal_sklearn_with_one_rule_for_absent_labels(case) -> None:  # type: ignore[no-untyped-def]
    target, prob, thr = case
    n_posts, n_labels = target.shape
    labels = tuple(f"L{i}" for i in range(n_labels))
    crit = np.tile(np.arange(n_labels), n_posts)
    rep = compute_metrics(crit, target.reshape(-1), prob.reshape(-1), labels, thr)
    ok = ~np.isnan(target)
    per, present = [], []
    for c in range(n_labels):
        y = target[ok[:, c], c] >= 0.5
        p = prob[ok[:, c], c] >= thr[c]
        f = f1_score(y, p, zero_division=0.0) if len(y) else 0.0
        per.append(f)
        assert rep.labels[c].f1 == pytest.approx(f, abs=1e-6)
        assert rep.labels[c].in_macro == bool(y.any())
        if y.any():
            present.append(c)
    macro = float(np.mean([per[c] for c in present])) if present else 0.0
    assert rep.macro_f1 == pytest.approx(macro, abs=1e-6)
    ys = np.concatenate([target[ok[:, c], c] >= 0.5 for c in range(n_labels)])
    ps = np.concatenate([prob[ok[:, c], c] >= thr[c] for c in range(n_labels)])
    # every target unknown: no item at all, micro-F1 0 (scikit-learn refuses empty arrays)
    micro = f1_score(ys, ps, zero_division=0.0) if len(ys) else 0.0
    assert rep.micro_f1 == pytest.approx(micro, abs=1e-6)
    if not np.isnan(target).any() and present and n_labels > 1:  # sklearn multilabel macro
        pred = prob >= thr
        want = f1_score(target >= 0.5, pred, average="macro", labels=present, zero_division=0.0)
        assert rep.macro_f1 == pytest.approx(want, abs=1e-6)
    # the bootstrap's counting agrees with the point estimate
    fast = macro_micro_f1(crit, target.reshape(-1), (prob >= thr).reshape(-1), n_labels)
    assert fast[0] == pytest.approx(rep.macro_f1, abs=1e-6)
    assert fast[1] == pytest.approx(rep.micro_f1, abs=1e-6)
    # ... and its interval contains the estimate
    groups = np.repeat(np.arange(n_posts), n_labels)
    ci = bootstrap_intervals(crit, target.reshape(-1), prob.reshape(-1), groups, thr, labels, 60, 0)
    assert ci["macro_f1"][0] - 1e-6 <= rep.macro_f1 <= ci["macro_f1"][1] + 1e-6
    assert ci["micro_f1"][0] - 1e-6 <= rep.micro_f1 <= ci["micro_f1"][1] + 1e-6
    for c, lab in enumerate(labels):
        lo, hi = ci["per_label_f1"][lab]
        assert lo - 1e-6 <= rep.labels[c].f1 <= hi + 1e-6


def test_a_criterion_without_test_items_does_not_inflate_the_macro() -> None:
    """The case of the issue: a criterion with no positive item scored 1.0 in the point
    estimate and its interval missed the estimate. Now it is left out of both."""
    crit = np.array([0, 1, 0, 1, 0, 1])
    target = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # label 1 has no positive
    prob = np.array([0.9, 0.1, 0.8, 0.2, 0.4, 0.3])
    rep = compute_metrics(crit, target, prob, ("A", "B"))
    assert rep.excluded == ("B",)
    assert rep.macro_f1 == pytest.approx(f1_score([1, 0, 1], [1, 1, 0]))
    ci = bootstrap_intervals(crit, target, prob, np.array([0, 0, 1, 1, 2, 2]),
                             np.array([0.5, 0.5]), ("A", "B"), 300, 1)  # fmt: skip
    assert ci["macro_f1"][0] <= rep.macro_f1 <= ci["macro_f1"][1]


@given(st.integers(0, 10_000), st.integers(1, 60))
@settings(max_examples=100, deadline=None)
def test_sort_based_threshold_is_the_brute_force_optimum(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.round(rng.random(n), 2)  # ties on purpose
    y = rng.random(n) < 0.4
    t = best_threshold(p, y, 0.5)
    if not y.any():
        assert t == 0.5
        return
    f1_at = lambda th: f1_score(y, p >= th, zero_division=0.0)  # noqa: E731
    brute = max(f1_at(th) for th in np.r_[np.unique(p), 0.5, 2.0])
    assert f1_at(t) == pytest.approx(brute, abs=1e-9)


def test_bagged_thresholds_fall_back_to_half_on_noise_and_keep_real_shifts() -> None:
    rng = np.random.default_rng(0)
    n = 150
    crit = np.tile(np.arange(2), n)
    y = np.zeros(2 * n)
    y[0::2] = rng.random(n) < 0.2  # label A: calibrated too low, a real shift to ~0.2
    y[1::2] = rng.random(n) < 0.2  # label B: probabilities unrelated to the label
    prob = np.empty(2 * n)
    prob[0::2] = np.where(y[0::2] > 0, 0.25, 0.05) + rng.random(n) * 0.1
    prob[1::2] = rng.random(n)
    choice = choose_thresholds(crit, y, prob, ("A", "B"), seed=0)
    assert choice.rules["A"]["rule"] == "bagged" and choice.values[0] < 0.5
    assert choice.rules["B"]["rule"] == "default" and choice.values[1] == 0.5
    raw = choose_thresholds(crit, y, prob, ("A", "B"), rule="raw")
    assert raw.values[1] != 0.5  # the raw optimum chases the noise
    fixed = choose_thresholds(crit, y, prob, ("A", "B"), rule="fixed")
    assert list(fixed.values) == [0.5, 0.5]
