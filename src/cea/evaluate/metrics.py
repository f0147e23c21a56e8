"""The one definition of every classification number cea reports (DESIGN §12).

Train (early stopping, final metrics), eval (point estimates and bootstrap intervals),
`eval --compare`, HPO and the registry gate all read their numbers from here.

Items come in one "long" format that serves both task levels: (criterion index, target 0/1,
probability). A post-level multi-label prediction contributes one item per (post, criterion),
a sentence-level pair one item. A target of NaN is an item whose label is unknown (an
annotation row that could not be used): it is left out of every number.

**The rule for labels without positives.** A criterion with no positive item in the evaluated
set has no defined recall (and so no defined F1 or AUPRC). It is reported (support 0, F1 0,
`in_macro: false`) and left out of macro-F1 and macro-AUPRC alike — in a point estimate and in
every bootstrap resample (where the set of such labels is that resample's). Micro-F1 counts
every item, as scikit-learn's `average="micro"` does.

Point estimates use scikit-learn; the bootstrap uses `f1_from_counts`, a vectorised count of the
same quantities (thousands of resamples), and a property test holds the two equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

DEFAULT_THRESHOLD = 0.5
# the bootstrap every report uses (`cea eval`, `cea train`'s final report): the same resamples
# of the same posts, so a verdict reads the same after training and in a later evaluation
N_BOOT = 1000
BOOT_SEED = 13


@dataclass(frozen=True)
class LabelMetrics:
    label: str
    support: int  # positives
    n: int  # items scored
    precision: float
    recall: float
    f1: float
    threshold: float
    auprc: float | None  # None when the label has no positive (or no negative) item
    auroc: float | None
    in_macro: bool = True  # False: no positive item, left out of the macro averages

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MetricReport:
    labels: tuple[LabelMetrics, ...]
    macro_f1: float
    micro_f1: float
    macro_auprc: float | None
    loss: float | None = None
    excluded: tuple[str, ...] = field(default=())  # labels left out of the macro averages

    def to_dict(self) -> dict[str, Any]:
        return {
            "macro_f1": self.macro_f1,
            "micro_f1": self.micro_f1,
            "macro_auprc": self.macro_auprc,
            "loss": self.loss,
            "labels_without_positives": list(self.excluded),
            "per_label": {m.label: m.to_dict() for m in self.labels},
        }


def _r(x: float) -> float:
    return float(round(x, 6))


def known(target: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Items whose label is known (NaN marks an annotation that could not be used)."""
    return ~np.isnan(np.asarray(target, dtype=np.float64))


def label_counts(
    crit: NDArray[np.int64], y: NDArray[np.bool_], pred: NDArray[np.bool_], n_labels: int
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """(tp, fp, fn, positives) per label, by counting (items with a known label only)."""
    tp = np.bincount(crit, weights=(pred & y).astype(float), minlength=n_labels)
    fp = np.bincount(crit, weights=(pred & ~y).astype(float), minlength=n_labels)
    fn = np.bincount(crit, weights=(~pred & y).astype(float), minlength=n_labels)
    return tp, fp, fn, tp + fn


def f1_from_counts(
    tp: NDArray[Any], fp: NDArray[Any], fn: NDArray[Any]
) -> tuple[Any, Any, NDArray[np.float64]]:
    """(macro-F1 over labels with positives, micro-F1, per-label F1) — the module's rule.
    Works on the last axis, so a (resamples, labels) stack gives one macro per resample."""
    denom = 2 * tp + fp + fn
    per = np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 0.0)
    present = (tp + fn) > 0
    n_present = present.sum(axis=-1)
    macro = np.where(n_present > 0, (per * present).sum(axis=-1) / np.maximum(n_present, 1), 0.0)
    micro_d = 2 * tp.sum(axis=-1) + fp.sum(axis=-1) + fn.sum(axis=-1)
    micro = np.where(micro_d > 0, 2 * tp.sum(axis=-1) / np.maximum(micro_d, 1e-12), 0.0)
    return macro, micro, per


def macro_micro_f1(
    crit: NDArray[np.int64], target: NDArray[np.float64], pred: NDArray[np.bool_], n_labels: int
) -> tuple[float, float, NDArray[np.float64]]:
    """Macro- and micro-F1 of decisions `pred` (items with NaN targets left out)."""
    keep = known(target)
    y = target[keep] >= 0.5
    tp, fp, fn, _ = label_counts(crit[keep], y, pred[keep], n_labels)
    macro, micro, per = f1_from_counts(tp, fp, fn)
    return float(macro), float(micro), per


def compute_metrics(
    crit: NDArray[np.int64],
    target: NDArray[np.float64],
    prob: NDArray[np.float64],
    label_names: tuple[str, ...],
    thresholds: NDArray[np.float64] | None = None,
    loss: float | None = None,
) -> MetricReport:
    """Per-label and averaged metrics at `thresholds` (default 0.5), with scikit-learn."""
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    thr = thresholds if thresholds is not None else np.full(len(label_names), DEFAULT_THRESHOLD)
    keep = known(target)
    crit, target, prob = crit[keep], target[keep], prob[keep]
    per: list[LabelMetrics] = []
    all_y: list[NDArray[np.bool_]] = []
    all_pred: list[NDArray[np.bool_]] = []
    for c, name in enumerate(label_names):
        mask = crit == c
        y = target[mask] >= 0.5
        p = prob[mask]
        pred = p >= thr[c]
        all_y.append(y)
        all_pred.append(pred)
        if len(y):
            precision, recall, f1, _ = precision_recall_fscore_support(
                y, pred, average="binary", pos_label=True, zero_division=0.0
            )
        else:
            precision = recall = f1 = 0.0
        both = 0 < int(y.sum()) < len(y)
        per.append(
            LabelMetrics(
                name,
                int(y.sum()),
                int(mask.sum()),
                _r(float(precision)),
                _r(float(recall)),
                _r(float(f1)),
                _r(float(thr[c])),
                _r(float(average_precision_score(y, p))) if both else None,
                _r(float(roc_auc_score(y, p))) if both else None,
                in_macro=bool(y.any()),
            )
        )
    scored = [m for m in per if m.in_macro]
    auprcs = [m.auprc for m in scored if m.auprc is not None]
    y_all = np.concatenate(all_y) if all_y else np.zeros(0, dtype=bool)
    p_all = np.concatenate(all_pred) if all_pred else np.zeros(0, dtype=bool)
    micro = (
        float(f1_score(y_all, p_all, average="binary", zero_division=0.0)) if len(y_all) else 0.0
    )
    return MetricReport(
        labels=tuple(per),
        macro_f1=_r(sum(m.f1 for m in scored) / len(scored)) if scored else 0.0,
        micro_f1=_r(micro),
        macro_auprc=_r(sum(auprcs) / len(auprcs)) if auprcs else None,
        loss=None if loss is None or not math.isfinite(loss) else _r(loss),
        excluded=tuple(m.label for m in per if not m.in_macro),
    )


def metric_value(report: MetricReport | dict[str, Any], metric: str) -> float | None:
    """The named number of a report (`loss`/`val_loss`, `macro_f1`, `micro_f1`, `macro_auprc`)."""
    data = report.to_dict() if isinstance(report, MetricReport) else report
    key = "loss" if metric in ("loss", "val_loss") else metric
    value = data.get(key)
    return None if value is None else float(value)


# ---- intervals ------------------------------------------------------------------------------


def percentile_interval(values: NDArray[np.float64], estimate: float) -> tuple[list[float], bool]:
    """The 2.5–97.5 % percentiles of a bootstrap distribution, extended to contain the point
    estimate when a small or lopsided sample puts it outside (the flag says so)."""
    lo, hi = (float(x) for x in np.percentile(values, [2.5, 97.5]))
    extended = estimate < lo or estimate > hi
    return [_r(min(lo, estimate)), _r(max(hi, estimate))], extended


def item_groups(examples: Any, n_outputs: int) -> NDArray[Any]:
    """The group (post) of each item, in the long format's order: one item per example and
    output (a multi-label head's criteria), or one per example for a pair model
    (`n_outputs` 1). What the bootstrap resamples."""
    ids = np.array([e.group_id for e in examples], dtype=object)
    return ids if n_outputs == 1 else np.repeat(ids, n_outputs)


def group_members(groups: NDArray[Any]) -> list[NDArray[np.int64]]:
    """Item indices of each distinct group (post, or the data's group id)."""
    _, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    return list(np.split(order, bounds))


def bootstrap_intervals(
    crit: NDArray[np.int64],
    target: NDArray[np.float64],
    prob: NDArray[np.float64],
    groups: NDArray[Any],
    thresholds: NDArray[np.float64],
    labels: tuple[str, ...],
    n_boot: int,
    seed: int,
    *,
    draws: bool = False,
) -> dict[str, Any]:
    """95 % intervals of macro/micro F1 and per-label F1, resampling groups (posts), not items:
    a post's criteria are correlated. Each interval contains its own point estimate.

    `draws`: also the resamples' macro-F1 values (`macro_f1_draws`) and a digest of the groups
    (`groups_digest`). The resamples depend only on the sorted groups, `n_boot` and `seed`, so
    two systems scored on the same posts get the same resamples: their draws are paired, and
    the difference of two such lists is a paired bootstrap of the difference (`paired_ci`)."""
    keep = known(target)
    crit, target, prob, groups = crit[keep], target[keep], prob[keep], groups[keep]
    n_labels = len(labels)
    y = target >= 0.5
    pred = prob >= thresholds[crit]
    members = group_members(groups)
    # counts per group once; a resample is then a weighted sum of group counts
    counts = np.zeros((len(members), 3, n_labels))
    for g, idx in enumerate(members):
        counts[g] = label_counts(crit[idx], y[idx], pred[idx], n_labels)[:3]
    rng = np.random.default_rng(seed)
    weights = np.stack(
        [np.bincount(rng.integers(0, len(members), len(members)), minlength=len(members))
         for _ in range(n_boot)]
    ).astype(float)  # fmt: skip
    tp, fp, fn = (weights @ counts[:, k, :] for k in range(3))
    macro, micro, per = f1_from_counts(tp, fp, fn)
    est_macro, est_micro, est_per = f1_from_counts(*(counts.sum(0)[k] for k in range(3)))
    macro_ci, macro_ext = percentile_interval(macro, float(est_macro))
    micro_ci, micro_ext = percentile_interval(micro, float(est_micro))
    per_ci = {
        lab: percentile_interval(per[:, i], float(est_per[i]))[0] for i, lab in enumerate(labels)
    }
    out: dict[str, Any] = {
        "n_boot": n_boot,
        "resampled": "posts",
        "groups": len(members),
        "macro_f1": macro_ci,
        "micro_f1": micro_ci,
        "per_label_f1": per_ci,
        "extended_to_estimate": macro_ext or micro_ext,
    }
    if draws:
        out["macro_f1_draws"] = [_r(float(x)) for x in macro]
        out["groups_digest"] = groups_digest(groups)
    return out


def groups_digest(groups: NDArray[Any]) -> str:
    """sha256 of the sorted distinct group ids: equal digests, equal resamples."""
    import hashlib

    ids = sorted({str(g) for g in groups})
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def paired_ci(a: dict[str, Any], b: dict[str, Any]) -> list[float] | None:
    """95 % interval of macro-F1(a) − macro-F1(b) from their paired bootstrap draws (the same
    resamples of the same posts: `bootstrap_intervals(draws=True)` of both, equal digests and
    counts); None when they are not paired."""
    da, db = a.get("macro_f1_draws"), b.get("macro_f1_draws")
    if (
        not da
        or not db
        or len(da) != len(db)
        or a.get("groups_digest") is None
        or a.get("groups_digest") != b.get("groups_digest")
    ):
        return None
    diff = np.asarray(da, dtype=np.float64) - np.asarray(db, dtype=np.float64)
    lo, hi = (float(x) for x in np.percentile(diff, [2.5, 97.5]))
    return [_r(lo), _r(hi)]


def without_draws(obj: Any) -> Any:
    """`obj` with every `macro_f1_draws` / `groups_digest` left out (reports print intervals,
    not a thousand resamples)."""
    if isinstance(obj, dict):
        return {
            k: without_draws(v)
            for k, v in obj.items()
            if k not in ("macro_f1_draws", "groups_digest")
        }
    if isinstance(obj, list):
        return [without_draws(v) for v in obj]
    return obj


# ---- thresholds -----------------------------------------------------------------------------


def best_threshold(p: NDArray[np.float64], y: NDArray[np.bool_], default: float) -> float:
    """The threshold maximising F1 on these items, by one sort (O(n log n)).

    Candidates are midpoints between consecutive distinct probabilities (and just below the
    lowest); ties go to the candidate closest to `default`. Without positives: `default`.
    """
    n_pos = int(y.sum())
    if n_pos == 0 or len(p) == 0:
        return default
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    last = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])  # last index of each distinct value
    tp = np.cumsum(ys)[last]
    predicted = last + 1
    f1 = 2 * tp / (predicted + n_pos)
    below = np.r_[ps[last[1:]], ps[-1] - 1e-6]  # the next distinct value down
    cands = (ps[last] + below) / 2
    # F1 of the default itself competes too (predicting none scores 0)
    f1_default = 2 * np.sum(ys & (ps >= default)) / (np.sum(ps >= default) + n_pos)
    cands = np.r_[cands, default]
    f1 = np.r_[f1, f1_default]
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(cands[best[np.argmin(np.abs(cands[best] - default))]])


def tune_thresholds(
    crit: NDArray[np.int64],
    target: NDArray[np.float64],
    prob: NDArray[np.float64],
    n_labels: int,
    default: float = DEFAULT_THRESHOLD,
) -> NDArray[np.float64]:
    """Per-criterion threshold maximising F1 on these items (raw, no regularisation)."""
    keep = known(target)
    crit, target, prob = crit[keep], target[keep], prob[keep]
    out = np.full(n_labels, default, dtype=np.float64)
    for c in range(n_labels):
        mask = crit == c
        out[c] = best_threshold(prob[mask], target[mask] >= 0.5, default)
    return out


def _f1_at(p: NDArray[np.float64], y: NDArray[np.bool_], t: float) -> float:
    pred = p >= t
    d = int(pred.sum()) + int(y.sum())
    return 2 * int(np.sum(pred & y)) / d if d else 0.0


def half_f1_point(p: NDArray[np.float64], y: NDArray[np.bool_], start: float = 0.5) -> float:
    """For calibrated probabilities the F1-optimal threshold is half the F1 it reaches
    (Lipton, Elkan & Naryanaswamy 2014): the fixed point of t = F1(t) / 2, found from `start`
    by iteration. It depends on the F1 level, a steadier quantity on a small validation set
    than the location of the F1 maximum, and it is below 0.5 whenever F1 < 1: a calibrated
    model of rare evidence rarely reaches 0.5."""
    t = start
    for _ in range(50):
        nxt = max(_f1_at(p, y, t) / 2.0, 1e-6)
        if abs(nxt - t) < 1e-6:
            break
        t = nxt
    return float(t)


@dataclass(frozen=True)
class ThresholdChoice:
    values: NDArray[np.float64]
    rules: dict[str, dict[str, Any]]  # per criterion: which rule chose its threshold, and why
    # the calibration fitted before the rule (cea.evaluate.calibration), None: none
    calibration: dict[str, Any] | None = None


SHRINK_K = 10.0  # positives at which the tuned threshold moves half-way from the default
KEEP_SHARE = 0.75  # out-of-bag resamples in which tuning must beat the default


def choose_thresholds(
    crit: NDArray[np.int64],
    target: NDArray[np.float64],
    prob: NDArray[np.float64],
    labels: tuple[str, ...],
    *,
    rule: str = "bagged",
    default: float = DEFAULT_THRESHOLD,
    n_boot: int = 200,
    seed: int = 0,
    calibrated: bool = False,
) -> ThresholdChoice:
    """Thresholds that generalise from a small validation set.

    `rule="bagged"` (default), per criterion: the F1-optimal threshold of each of `n_boot`
    bootstrap resamples, their median, shrunk toward `default` by n_pos / (n_pos + 10); the
    same procedure is scored out of bag (tuned on the resample, judged on the items it left
    out) against `default`, and the tuned threshold is kept only when it beats the default in
    at least 75 % of those resamples — otherwise the default stays ("gain below its noise").
    `rule="raw"`: the plain F1-optimal threshold (overfits small sets). `rule="fixed"`: 0.5.
    `calibrated`: the probabilities were calibrated on these items, so each criterion's
    default is its F1/2 point (`half_f1_point`) instead of 0.5, for every rule.
    """
    keep = known(target)
    crit, target, prob = crit[keep], target[keep], prob[keep]
    fixed = default
    values = np.full(len(labels), default, dtype=np.float64)
    rules: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(seed)
    for c, lab in enumerate(labels):
        mask = crit == c
        p, y = prob[mask], target[mask] >= 0.5
        n_pos = int(y.sum())
        default = fixed
        prior: dict[str, Any] = {}
        if calibrated and 0 < n_pos < len(y):
            default = half_f1_point(p, y, fixed)
            values[c] = default
            prior = {"default": _r(default), "default_rule": "F1/2 point (calibrated)"}
        if rule == "fixed":
            rules[lab] = {"rule": "fixed", "threshold": _r(default), **prior}
            continue
        if n_pos == 0 or n_pos == len(y):
            rules[lab] = {"rule": "default", "reason": "no positive (or no negative) item"}
            continue
        raw = best_threshold(p, y, default)
        if rule == "raw":
            values[c] = raw
            rules[lab] = {"rule": "raw", "threshold": _r(raw), "positives": n_pos, **prior}
            continue
        lam = n_pos / (n_pos + SHRINK_K)
        boot_t, gains = [], []
        n = len(y)
        for _ in range(n_boot):
            idx = rng.integers(0, n, n)
            if not y[idx].any():
                continue
            t_b = default + lam * (best_threshold(p[idx], y[idx], default) - default)
            boot_t.append(t_b)
            oob = np.ones(n, dtype=bool)
            oob[idx] = False
            if y[oob].any():
                gains.append(_f1_at(p[oob], y[oob], t_b) - _f1_at(p[oob], y[oob], default))
        tuned = float(np.median(boot_t)) if boot_t else default
        gain = np.asarray(gains)
        share = float(np.mean(gain > 0)) if len(gain) else 0.0
        info = {
            "positives": n_pos,
            "raw": _r(raw),
            "bagged": _r(tuned),
            "shrink": _r(lam),
            "oob_gain": _r(float(gain.mean())) if len(gain) else None,
            "oob_gain_sd": _r(float(gain.std())) if len(gain) else None,
            "oob_win_share": _r(share),
        }
        if len(gain) and share >= KEEP_SHARE and gain.mean() > 0:
            values[c] = tuned
            rules[lab] = {"rule": "bagged", "threshold": _r(tuned), **info, **prior}
        else:
            rules[lab] = {"rule": "default", "reason": "gain below its noise", **info, **prior}
    return ThresholdChoice(values, rules)


def score(pred: Any, labels: tuple[str, ...], thresholds: np.ndarray | None = None) -> MetricReport:
    """The metrics of `Predictions` (cea.model.inference) at these thresholds (None: tuned)."""
    return compute_metrics(pred.crit, pred.target, pred.prob, labels, thresholds, loss=pred.loss)


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


def evidence_found(
    keys: list[tuple[str, str]],
    target: np.ndarray,
    prob: np.ndarray,
    ks: tuple[int, ...] = EVIDENCE_KS,
) -> list[tuple[tuple[str, str], dict[int, tuple[int, int]]]]:
    """Per (post, criterion) key with at least one gold sentence (unknown targets rank
    nothing): for each k, (gold sentences among its k most probable sentences, gold sentences).
    Ties keep the input order."""
    by_pair: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(keys):
        by_pair.setdefault(key, []).append(i)
    out = []
    for key, idx in by_pair.items():
        rows = np.array(idx)
        rows = rows[~np.isnan(target[rows])]
        gold = target[rows] >= 0.5
        if not gold.any():
            continue
        order = rows[np.argsort(-prob[rows], kind="stable")]
        gold_set = set(rows[gold].tolist())
        out.append(
            (key, {k: (len(gold_set.intersection(order[:k].tolist())), len(gold_set)) for k in ks})
        )
    return out


def evidence_recall(
    keys: list[tuple[str, str]],
    target: np.ndarray,
    prob: np.ndarray,
    ks: tuple[int, ...] = EVIDENCE_KS,
) -> dict[str, Any]:
    """Evidence retrieval per (post, criterion) with at least one gold sentence: recall@k is
    the share of its gold sentences among its k most probable sentences (averaged), hit@k the
    share of pairs with at least one gold sentence in the top k."""
    recall: dict[int, list[float]] = {k: [] for k in ks}
    hit: dict[int, list[float]] = {k: [] for k in ks}
    for _key, found in evidence_found(keys, target, prob, ks):
        for k, (n_found, n_gold) in found.items():
            recall[k].append(n_found / n_gold)
            hit[k].append(float(n_found > 0))
    return {
        "pairs_with_evidence": len(recall[ks[0]]),
        "recall_at_k": {
            str(k): round(float(np.mean(v)), 6) if v else 0.0 for k, v in recall.items()
        },
        "hit_at_k": {str(k): round(float(np.mean(v)), 6) if v else 0.0 for k, v in hit.items()},
    }
