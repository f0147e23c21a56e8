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
