"""The Augmenter protocol and the token view every augmenter edits.

An augmenter edits a `Tokens` view of a text (whitespace words, each with a lock flag) with a
`random.Random` it is given, and reports how many words it changed. Locked words — negations
and user-given protected terms — are never replaced, changed or dropped, and never moved by a
swap. Determinism comes from the caller: the rng is seeded per (seed, epoch, example).
"""

from __future__ import annotations

import random
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Protocol

# Words whose loss or replacement flips the meaning of a clinical statement.
NEGATIONS = frozenset(
    {
        "no", "not", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere",
        "without", "cannot", "can't", "cant", "don't", "dont", "doesn't", "doesnt", "didn't",
        "didnt", "won't", "wont", "isn't", "isnt", "aren't", "arent", "wasn't", "wasnt",
        "weren't", "werent", "haven't", "havent", "hasn't", "hasnt", "hadn't", "hadnt",
        "shouldn't", "wouldn't", "couldn't", "couldnt", "wouldnt", "shouldnt", "mustn't",
        "ain't", "n't", "barely", "hardly", "scarcely", "denies", "denied", "deny", "absent",
    }
)  # fmt: skip

_EDGE = re.compile(r"^\W+|\W+$")


def bare(word: str) -> str:
    """Lower-case word without surrounding punctuation ("Never," -> "never")."""
    return _EDGE.sub("", word).lower()


@dataclass(frozen=True)
class Protection:
    """Negations (unless turned off) and protected terms; multi-word terms lock every word."""

    terms: frozenset[str] = frozenset()
    phrases: tuple[tuple[str, ...], ...] = ()
    negations: bool = True
    lexicon: Container[str] = frozenset()  # criteria lexicon (cea.augment.lexicon)

    @classmethod
    def build(
        cls, terms: Iterable[str], negations: bool = True, lexicon: Container[str] | None = None
    ) -> Protection:
        single, multi = set(), []
        for term in terms:
            parts = tuple(bare(p) for p in term.split() if bare(p))
            if len(parts) == 1:
                single.add(parts[0])
            elif parts:
                multi.append(parts)
        return cls(frozenset(single), tuple(multi), negations, lexicon or frozenset())

    def _locked(self, w: str) -> bool:
        return (
            w in self.terms
            or (self.negations and (w in NEGATIONS or w.endswith("n't")))
            or (bool(w) and w in self.lexicon)
        )

    def locks(self, word: str) -> bool:
        """Would this word be locked? (An augmenter must not introduce a negation or a
        criteria-lexicon word either; a multi-word candidate is judged word by word.)"""
        return any(self._locked(bare(part)) for part in word.replace("_", " ").split() or [""])

    def mask(self, words: list[str]) -> list[bool]:
        low = [bare(w) for w in words]
        locked = [self._locked(w) for w in low]
        for phrase in self.phrases:
            n = len(phrase)
            for i in range(len(low) - n + 1):
                if tuple(low[i : i + n]) == phrase:
                    for j in range(i, i + n):
                        locked[j] = True
        return locked


@dataclass
class Tokens:
    """Whitespace words of a text and which of them are locked."""

    words: list[str]
    locked: list[bool]
    protect: Protection = field(default_factory=Protection)
    refused: list[str] = field(default_factory=list)  # candidates the protection turned down

    def allows(self, new: str) -> bool:
        """May an augmenter write this word? (Refusals are kept: `augment preview` shows
        them as near-misses.)"""
        if self.protect.locks(new):
            self.refused.append(new)
            return False
        return True

    @classmethod
    def of(cls, text: str, protect: Protection) -> Tokens:
        words = text.split()
        return cls(words, protect.mask(words), protect)

    def text(self) -> str:
        return " ".join(self.words)

    def free(self) -> list[int]:
        """Indices of words an augmenter may change (unlocked, with a letter in them)."""
        return [
            i
            for i, (w, lock) in enumerate(zip(self.words, self.locked, strict=True))
            if not lock and any(c.isalpha() for c in w)
        ]

    def insert(self, i: int, word: str) -> None:
        self.words.insert(i, word)
        self.locked.insert(i, False)

    def delete(self, i: int) -> None:
        del self.words[i]
        del self.locked[i]


class Augmenter(Protocol):
    """One augmentation operation. `apply` edits `tokens` in place (at most `budget` words)."""

    name: str
    kind: str  # "char" | "word" | "eda" | "model"

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int: ...


@dataclass
class IdentityAugmenter:
    """Changes nothing (tests, and the baseline of a comparison)."""

    name: str = "identity"
    kind: str = "word"
    calls: list[int] = field(default_factory=list)

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        self.calls.append(budget)
        return 0
