"""Per-augmenter latency per example (p50/p95) on a fixed corpus of 25-word sentences."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

_VOCAB = [
    "i",
    "feel",
    "tired",
    "sad",
    "empty",
    "every",
    "day",
    "night",
    "sleep",
    "work",
    "friends",
    "family",
    "eat",
    "food",
    "lost",
    "weight",
    "energy",
    "cannot",
    "focus",
    "think",
    "worthless",
    "guilty",
    "hopeless",
    "move",
    "slow",
    "restless",
    "wake",
    "early",
    "late",
    "interest",
    "enjoy",
    "hobbies",
    "games",
    "music",
    "walk",
    "dog",
    "cat",
    "house",
    "job",
    "school",
    "mind",
    "thoughts",
    "heavy",
    "anxious",
    "cry",
    "alone",
    "talk",
    "doctor",
    "month",
    "week",
    "morning",
    "evening",
    "better",
    "worse",
    "nothing",
    "anymore",
    "because",
    "since",
    "really",
    "always",
    "never",
    "not",
    "hard",
    "tried",
    "stay",
    "bed",
    "hours",
    "weekend",
    "mother",
    "sister",
    "brother",
    "partner",
    "money",
    "rent",
    "city",
    "car",
    "drive",
    "read",
    "book",
    "write",
    "letter",
    "phone",
    "call",
    "message",
]


def corpus(n: int = 200, words: int = 25, seed: int = 7) -> list[str]:
    """`n` fixed pseudo-sentences of `words` words (domain vocabulary, some negations)."""
    rng = random.Random(seed)  # noqa: S311 - a fixed benchmark corpus
    out = []
    for _ in range(n):
        toks = [rng.choice(_VOCAB) for _ in range(words)]
        toks[0] = toks[0].capitalize()
        out.append(" ".join(toks) + ".")
    return out


@dataclass(frozen=True)
class Latency:
    name: str
    kind: str
    p50_ms: float
    p95_ms: float
    mean_ms: float
    samples: int
    changed_share: float  # share of calls that changed the text

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def augmenter_latency(
    augmenter: Any,
    texts: list[str],
    *,
    repeats: int = 3,
    max_replace_ratio: float = 0.15,
    seed: int = 13,
    delay_s: float = 0.0,
) -> Latency:
    """Time `Augmentation.augment` with this one augmenter per text (tokens view, edit, join),
    after one warm-up pass (dictionary caches filled, lazy imports done). `delay_s` adds a
    sleep per call: the test-only way to show a regression gate firing."""
    from cea.augment.base import Protection
    from cea.augment.policy import Augmentation

    aug = Augmentation(1.0, 1, max_replace_ratio, [augmenter], [1.0], Protection.build([]), seed)
    for i, t in enumerate(texts):  # warm-up
        aug.augment(t, random.Random(i))  # noqa: S311
    times: list[float] = []
    changed = 0
    for r in range(repeats):
        for i, t in enumerate(texts):
            rng = random.Random(r * 1_000_003 + i)  # noqa: S311
            start = time.perf_counter()
            out = aug.augment(t, rng)
            if delay_s:
                time.sleep(delay_s)
            times.append(time.perf_counter() - start)
            changed += out.text != t
    arr = np.array(times) * 1000.0
    return Latency(
        name=augmenter.name,
        kind=augmenter.kind,
        p50_ms=round(float(np.percentile(arr, 50)), 4),
        p95_ms=round(float(np.percentile(arr, 95)), 4),
        mean_ms=round(float(arr.mean()), 4),
        samples=len(times),
        changed_share=round(changed / max(1, len(times)), 4),
    )


def latency_resources(n: int = 200, words: int = 25, seed: int = 13) -> Any:
    """What the augmenters need for a latency run: WordNet if provisioned, and a TF-IDF model
    fitted on a second fixed corpus (no cache: nothing of the user's is read or written)."""
    from cea.augment.build import resources_for
    from cea.augment.tfidf import TfidfModel, TfidfParams, fit_idf
    from cea.config import AugmentConfig

    res, _ = resources_for(AugmentConfig(), None)
    res.tfidf = TfidfModel(
        fit_idf(corpus(max(n, 500), words, seed=seed + 1), TfidfParams(min_df=2))
    )
    return res
