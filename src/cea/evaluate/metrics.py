"""Classification metrics in one "long" format that serves both task levels.

Every scored item is (criterion index, target 0/1, probability): a post-level multi-label
prediction contributes one item per (post, criterion), a sentence-level pair one item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MetricReport:
    labels: tuple[LabelMetrics, ...]
    macro_f1: float
    micro_f1: float
    macro_auprc: float | None
    loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "macro_f1": self.macro_f1,
            "micro_f1": self.micro_f1,
            "macro_auprc": self.macro_auprc,
            "loss": self.loss,
            "per_label": {m.label: m.to_dict() for m in self.labels},
        }


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _r(x: float) -> float:
    return float(round(x, 6))


def compute_metrics(
    crit: NDArray[np.int64],
    target: NDArray[np.float64],
    prob: NDArray[np.float64],
    label_names: tuple[str, ...],
    thresholds: NDArray[np.float64] | None = None,
    loss: float | None = None,
) -> MetricReport:
    from sklearn.metrics import average_precision_score, roc_auc_score

    thr = thresholds if thresholds is not None else np.full(len(label_names), 0.5)
    per: list[LabelMetrics] = []
    tp_all = fp_all = fn_all = 0
    for c, name in enumerate(label_names):
        mask = crit == c
        y = target[mask] >= 0.5
        p = prob[mask]
        pred = p >= thr[c]
        tp = int(np.sum(pred & y))
        fp = int(np.sum(pred & ~y))
        fn = int(np.sum(~pred & y))
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        precision, recall, f1 = _prf(tp, fp, fn)
        both = 0 < int(y.sum()) < len(y)
        auprc = _r(float(average_precision_score(y, p))) if both else None
        auroc = _r(float(roc_auc_score(y, p))) if both else None
        per.append(
            LabelMetrics(
                name,
                int(y.sum()),
                int(mask.sum()),
                _r(precision),
                _r(recall),
                _r(f1),
                _r(float(thr[c])),
                auprc,
                auroc,
            )
        )
    scored = [m for m in per if m.n > 0]
    macro_f1 = _r(sum(m.f1 for m in scored) / len(scored)) if scored else 0.0
    auprcs = [m.auprc for m in per if m.auprc is not None]
    return MetricReport(
        labels=tuple(per),
        macro_f1=macro_f1,
        micro_f1=_r(_prf(tp_all, fp_all, fn_all)[2]),
        macro_auprc=_r(sum(auprcs) / len(auprcs)) if auprcs else None,
        loss=None if loss is None or math.isnan(loss) else _r(loss),
    )


def tune_thresholds(
    crit: NDArray[np.int64],
    target: NDArray[np.float64],
    prob: NDArray[np.float64],
    n_labels: int,
    default: float = 0.5,
) -> NDArray[np.float64]:
    """Per-criterion threshold maximising F1 on these items (validation).

    Candidates are midpoints between sorted distinct probabilities; ties go to the threshold
    closest to `default`. A criterion without positives keeps `default`.
    """
    out = np.full(n_labels, default, dtype=np.float64)
    for c in range(n_labels):
        mask = crit == c
        y = target[mask] >= 0.5
        p = prob[mask]
        if not y.any():
            continue
        values = np.unique(p)
        cands = np.concatenate([[default], (values[:-1] + values[1:]) / 2, [values[0] - 1e-6]])
        best_key: tuple[float, float] | None = None
        for t in cands:
            pred = p >= t
            tp = int(np.sum(pred & y))
            fp = int(np.sum(pred & ~y))
            fn = int(np.sum(~pred & y))
            key = (_prf(tp, fp, fn)[2], -abs(float(t) - default))
            if best_key is None or key > best_key:
                best_key, out[c] = key, float(t)
    return out
