"""A post's criteria read off a multi-label sentence model: one model, both tasks.

A post meets a criterion when one of its sentences is evidence for it, so a post's probability
for a criterion pools its sentences' (calibrated) probabilities:

- `max`: the largest one (the default: measured on the hard profile, README "Models");
- `noisy_or`: 1 - prod(1 - p), as if each sentence were independent evidence (it grows with
  the number of weakly positive sentences, so long posts score higher).

The pooled scores get their own calibration map (fitted on validation posts, when the run
calibrates) and their own thresholds (chosen on validation posts with the run's threshold
rule), apart from the sentence (evidence) ones; all are stored in `cea_meta.json` (`posts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

POOLINGS = ("max", "noisy_or")


def pool_sentences(
    post_ids: Sequence[str], example_prob: np.ndarray, pooling: str = "max"
) -> tuple[list[str], np.ndarray]:
    """(posts in order of first appearance, (n_posts, n_labels) pooled probabilities)."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r} (one of {', '.join(POOLINGS)})")
    prob = np.asarray(example_prob, dtype=np.float64)
    index: dict[str, int] = {}
    rows = np.empty(len(post_ids), dtype=np.int64)
    for i, pid in enumerate(post_ids):
        rows[i] = index.setdefault(pid, len(index))
    n_labels = prob.shape[1] if prob.ndim == 2 else 0
    if pooling == "max":
        out = np.zeros((len(index), n_labels))
        np.maximum.at(out, rows, prob)
    else:  # 1 - prod(1 - p), summed in log space (no underflow over many sentences)
        log_miss = np.zeros((len(index), n_labels))
        np.add.at(log_miss, rows, np.log1p(-np.clip(prob, 0.0, 1.0 - 1e-12)))
        out = -np.expm1(log_miss)
    return list(index), out


@dataclass(frozen=True)
class PostItems:
    """Post-level items in cea's long format (one per post and criterion)."""

    post_ids: list[str]
    crit: np.ndarray
    target: np.ndarray
    prob: np.ndarray
    groups: np.ndarray  # the group of each item (bootstrap unit)


def post_items(
    dataset: Any,
    labels: tuple[str, ...],
    post_ids: Sequence[str],
    example_prob: np.ndarray,
    pooling: str = "max",
    calibration: dict[str, Any] | None = None,
) -> PostItems:
    """The pooled post probabilities beside the posts' own labels (`build_post_examples`:
    unknown labels stay NaN, masked by the metrics), through the run's post-level
    `calibration` (`cea_meta.json` `posts.calibration`) when it has one."""
    from cea.data.examples import build_post_examples
    from cea.evaluate.calibration import calibrate

    posts, pooled = pool_sentences(post_ids, example_prob, pooling)
    row = {p: i for i, p in enumerate(posts)}
    exs = [e for e in build_post_examples(dataset, labels, None) if e.post_id in row]
    n = len(labels)
    crit = np.tile(np.arange(n, dtype=np.int64), len(exs))
    target = np.array([y for e in exs for y in e.labels], dtype=np.float64)
    prob = (np.concatenate([pooled[row[e.post_id]] for e in exs]) if exs else np.zeros(0)).astype(
        np.float64
    )
    prob = calibrate(prob, crit, calibration, labels)
    groups = np.repeat(np.array([e.group_id for e in exs], dtype=object), n)
    return PostItems([e.post_id for e in exs], crit, target, prob, groups)
