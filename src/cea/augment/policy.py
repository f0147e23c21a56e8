"""The augmentation policy, compiled: which examples an epoch augments, with which augmenters,
how much of a text may change; deterministic per (seed, epoch, example).

Each example's draw comes from a hash of (seed, epoch, index) (stable across processes), so the augmented epoch is the same whatever the number of
DataLoader workers, the batch order or the process that computes it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cea.augment.base import Augmenter, Protection, Tokens

_MASK = (1 << 64) - 1
_TO_UNIT = 1.0 / (1 << 53)


def _mix(x: int) -> int:
    """splitmix64: a well-spread 64-bit hash of an integer (same in every process)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


@dataclass(frozen=True)
class Outcome:
    text: str
    ops: tuple[tuple[str, int], ...]  # (augmenter, words changed)
    words: int  # words in the original text
    # criteria-lexicon words the augmenters tried to write: refused candidates, and the words
    # of a whole outcome refused because it still gained one (then `text` is the original)
    near_misses: tuple[str, ...] = ()
    refused: bool = False


@dataclass
class Augmentation:
    prob: float
    ops_per_example: int
    max_replace_ratio: float
    augmenters: list[Augmenter]
    weights: list[float]
    protection: Protection
    seed: int
    lexicon: Any = None  # cea.augment.lexicon.Lexicon: outcomes that gain or lose one are refused

    def rng_for(self, epoch: int, index: int) -> random.Random | None:
        """The example's rng when this epoch augments it, else None. The decision is a
        splitmix64 hash of (seed, epoch, index): no generator is seeded for the ~85 % of
        examples an epoch leaves alone."""
        h = _mix(_mix(_mix(self.seed) ^ epoch) ^ index)
        if (h >> 11) * _TO_UNIT >= self.prob:
            return None
        return random.Random(h)  # noqa: S311 - augmentation, not secrets

    def augment(self, text: str, rng: random.Random) -> Outcome:
        tokens = Tokens.of(text, self.protection)
        n = len(tokens.words)
        budget = max(1, math.floor(self.max_replace_ratio * n))
        ops: list[tuple[str, int]] = []
        for _ in range(self.ops_per_example):
            if budget <= 0:
                break
            aug = rng.choices(self.augmenters, weights=self.weights)[0]
            changed = aug.apply(tokens, rng, budget)
            ops.append((aug.name, changed))
            budget -= changed
        new = tokens.text()
        if not new.strip():
            new = text
        misses = tuple(tokens.refused)
        if self.lexicon is not None and new != text:
            moved = self.lexicon.changed(text, new)
            if moved:  # whatever the augmenter: the label must not change with the text
                return Outcome(text, tuple((name, 0) for name, _ in ops), n,
                               misses + moved, refused=True)  # fmt: skip
        return Outcome(new, tuple(ops), n, misses)


@dataclass
class AugmentStats:
    """Counts per augmenter and changed-word ratios (what goes to the tracker; no text)."""

    examples: int = 0
    augmented: int = 0
    per_augmenter: Counter[str] = field(default_factory=Counter)
    changed_words: int = 0
    words: int = 0
    refused: int = 0  # outcomes refused for gaining a criteria-lexicon word

    def add(self, outcome: Outcome) -> None:
        self.augmented += 1
        self.refused += int(outcome.refused)
        for name, changed in outcome.ops:
            self.per_augmenter[name] += 1
            self.changed_words += changed
        self.words += outcome.words

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "augmented": self.augmented,
            "per_augmenter": dict(sorted(self.per_augmenter.items())),
            "changed_word_ratio": round(self.changed_words / max(1, self.words), 6),
            "refused_for_lexicon": self.refused,
        }
