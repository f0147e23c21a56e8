"""Calibration per criterion, fitted on validation before the threshold rule.

`pos_weight`, class weights and negative sampling push a model's probabilities away from the
frequencies they should mean, so that "0.5" decides nothing in particular. A calibration map per
criterion, fitted on the validation items by maximum likelihood, puts them back before the
threshold rule (`metrics.choose_thresholds`) runs; the same map is applied wherever the run's
probabilities are used afterwards (`cea eval`, `cea predict`, `--compare`, the registered
model), from the parameters recorded in `cea_meta.json` (`calibration`).

- `temperature`: p' = sigmoid(z / T), one T > 0 per criterion (z: the model's logit). It
  keeps the order and the 0.5 point (z = 0) and fixes over- or under-confidence.
- `platt`: p' = sigmoid(a z + b), a > 0: also moves the 0.5 point (what pos_weight shifted).
- `none`: identity.

A criterion with fewer than `MIN_EACH` positive or negative validation items keeps the
identity (recorded with the reason): a map fitted on three positives is noise.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cea.evaluate.metrics import known

METHODS = ("none", "temperature", "platt")
MIN_EACH = 5  # positive and negative validation items a criterion needs to get a map
_EPS = 1e-12


def logit(prob: NDArray[np.float64]) -> NDArray[np.float64]:
    p = np.clip(np.asarray(prob, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.asarray(np.log(p) - np.log1p(-p))


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))  # overflow-free


def _nll(z: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    # mean of log(1 + exp(-z)) for y = 1 and log(1 + exp(z)) for y = 0, stably
    return float(np.mean(np.logaddexp(0.0, np.where(y > 0.5, -z, z))))


def _fit_one(z: NDArray[np.float64], y: NDArray[np.float64], method: str) -> tuple[float, float]:
    """(a, b) of p' = sigmoid(a z + b) maximising the likelihood of `y` (a logistic regression
    on the logit, practically unpenalised; temperature: no intercept, a = 1/T)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1e6, fit_intercept=method == "platt", max_iter=1000)
    clf.fit(z.reshape(-1, 1), y.astype(int))
    a = float(clf.coef_[0, 0])
    b = float(clf.intercept_[0]) if method == "platt" else 0.0
    return a, b


def fit_calibration(
    crit: NDArray[np.int64],
    target: NDArray[np.float64],
    prob: NDArray[np.float64],
    labels: tuple[str, ...],
    method: str = "temperature",
) -> dict[str, Any]:
    """Per criterion (a, b) fitted on these (validation) items; what `cea_meta.json` records
    under `calibration` and `apply_calibration` reads."""
    if method not in METHODS:
        raise ValueError(f"calibration must be one of {', '.join(METHODS)}")
    keep = known(target)
    crit, target, prob = crit[keep], target[keep], prob[keep]
    z_all = logit(prob)
    per: dict[str, dict[str, Any]] = {}
    for c, lab in enumerate(labels):
        mask = crit == c
        y = (target[mask] >= 0.5).astype(np.float64)
        n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
        if method == "none":
            per[lab] = {"a": 1.0, "b": 0.0}
            continue
        if min(n_pos, n_neg) < MIN_EACH:
            per[lab] = {
                "a": 1.0, "b": 0.0, "fitted": False,
                "reason": f"{n_pos} positive / {n_neg} negative validation items "
                f"(fewer than {MIN_EACH})",
            }  # fmt: skip
            continue
        z = z_all[mask]
        a, b = _fit_one(z, y, method)
        if not 1e-3 < a < 1e3:  # ranks the wrong way round (or degenerate): not a calibration
            per[lab] = {"a": 1.0, "b": 0.0, "fitted": False, "reason": f"fitted slope {a:.3g}"}
            continue
        per[lab] = {
            "a": round(a, 6), "b": round(b, 6), "fitted": True, "positives": n_pos,
            "nll_before": round(_nll(z, y), 6), "nll_after": round(_nll(a * z + b, y), 6),
        }  # fmt: skip
        if method == "temperature":
            per[lab]["temperature"] = round(1.0 / a, 6)
    return {"method": method, "fitted_on": "validation", "per_label": per}


def calibrate(
    prob: NDArray[np.float64],
    crit: NDArray[np.int64],
    calibration: dict[str, Any] | None,
    labels: tuple[str, ...],
) -> NDArray[np.float64]:
    """Calibrated probabilities of items (`crit`: their criterion index)."""
    if not calibration or calibration.get("method", "none") == "none":
        return np.asarray(prob, dtype=np.float64)
    per = calibration["per_label"]
    a = np.array([float(per.get(lab, {}).get("a", 1.0)) for lab in labels])
    b = np.array([float(per.get(lab, {}).get("b", 0.0)) for lab in labels])
    if np.all(a == 1.0) and np.all(b == 0.0):
        return np.asarray(prob, dtype=np.float64)
    return _sigmoid(a[crit] * logit(prob) + b[crit])


def apply_calibration(
    pred: Any, calibration: dict[str, Any] | None, labels: tuple[str, ...]
) -> Any:
    """`Predictions` (cea.model.inference) with calibrated probabilities (items and examples;
    the loss stays the model's own)."""
    if not calibration or calibration.get("method", "none") == "none" or not len(pred.prob):
        return pred
    prob = calibrate(pred.prob, pred.crit, calibration, labels)
    # items are the examples' outputs in order (pair: one per example; multi-label: row-major)
    return replace(pred, prob=prob, example_prob=prob.reshape(pred.example_prob.shape))
