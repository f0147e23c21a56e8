"""cea's own augmenters: character noise, word operations, spelling mistakes, dictionary-based
synonym/antonym replacement, TF-IDF-guided replacement/insertion and the four EDA operations.

Pure Python over a word list: tens of microseconds for a 25-word sentence (benchmarks/), where
nlpaug's equivalents cost milliseconds and its word module takes ~5 s to import.
"""

from __future__ import annotations

import random
import string
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cea.augment.base import Tokens, bare

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "so",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "am",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "i",
        "me",
        "my",
        "myself",
        "we",
        "our",
        "you",
        "your",
        "he",
        "him",
        "his",
        "she",
        "her",
        "it",
        "its",
        "they",
        "them",
        "their",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "whom",
        "there",
        "here",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "only",
        "own",
        "same",
        "than",
        "too",
        "very",
        "just",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "will",
        "would",
        "should",
        "could",
        "can",
        "may",
        "might",
        "must",
        "shall",
        "up",
        "down",
        "out",
        "off",
        "over",
        "under",
        "again",
        "further",
        "once",
        "about",
        "into",
        "through",
        "during",
        "before",
        "after",
        "above",
        "below",
        "between",
    ]
)

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    pos = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    out = {}
    for c, (r, i) in pos.items():
        near = [
            d
            for d, (r2, i2) in pos.items()
            if d != c and abs(r2 - r) <= 1 and abs(i2 - i + (0.5 * (r2 - r))) <= 1
        ]
        out[c] = "".join(sorted(near))
    return out


KEYBOARD = _keyboard_neighbours()
OCR = {
    "o": "0", "0": "o", "l": "1", "1": "l", "i": "1", "s": "5", "5": "s", "b": "8", "8": "b",
    "g": "9", "9": "g", "z": "2", "2": "z", "e": "c", "c": "e", "a": "o", "m": "n", "n": "m",
    "t": "f", "f": "t", "h": "b", "u": "v", "v": "u",
}  # fmt: skip


def _pick(rng: random.Random, pool: Sequence[int], k: int) -> list[int]:
    return rng.sample(list(pool), min(k, len(pool)))


def _choose(options: Sequence[str], tokens: Tokens, rng: random.Random) -> str | None:
    """A candidate that is not itself protected (never introduce a negation); a few tries."""
    for _ in range(4):
        new = rng.choice(options)
        if tokens.allows(new):
            return new
    return None


def _keep_case(src: str, new: str) -> str:
    """Give `new` the capitalisation and surrounding punctuation of `src`."""
    core = bare(src)
    if not core:
        return new
    start = src.lower().find(core)
    if src[start : start + 1].isupper():
        new = new[:1].upper() + new[1:]
    return src[:start] + new + src[start + len(core) :]


# ---- character noise ----------------------------------------------------------------------
@dataclass
class CharNoise:
    """One character edit in each of up to `budget` words (letters only, words of 3+ chars)."""

    name: str
    mode: str  # keyboard | ocr | insert | substitute | swap | delete
    kind: str = "char"

    def _edit(self, w: str, rng: random.Random) -> str:
        letters = [i for i, c in enumerate(w) if c.isalpha()]
        if len(letters) < 3:
            return w
        i = rng.choice(letters[1:] if self.mode != "insert" else letters)
        c = w[i]
        if self.mode == "keyboard":
            near = KEYBOARD.get(c.lower())
            if not near:
                return w
            new = rng.choice(near)
            return w[:i] + (new.upper() if c.isupper() else new) + w[i + 1 :]
        if self.mode == "ocr":
            candidates = [j for j in letters if w[j].lower() in OCR]
            if not candidates:
                return w
            j = rng.choice(candidates)
            return w[:j] + OCR[w[j].lower()] + w[j + 1 :]
        if self.mode == "insert":
            return w[:i] + rng.choice(string.ascii_lowercase) + w[i:]
        if self.mode == "substitute":
            return w[:i] + rng.choice(string.ascii_lowercase) + w[i + 1 :]
        if self.mode == "swap":
            j = i - 1 if i == letters[-1] else i + 1
            if not w[j].isalpha():
                return w
            lo, hi = min(i, j), max(i, j)
            return w[:lo] + w[hi] + w[lo] + w[hi + 1 :]
        return w[:i] + w[i + 1 :]  # delete

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        changed = 0
        for i in _pick(rng, tokens.free(), budget):
            new = self._edit(tokens.words[i], rng)
            if new != tokens.words[i]:
                tokens.words[i] = new
                changed += 1
        return changed


# ---- word operations ------------------------------------------------------------------------
@dataclass
class WordSwap:
    """Swap pairs of unlocked words (EDA "random swap"); locked words never move."""

    name: str = "word_swap"
    kind: str = "word"

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        free = tokens.free()
        if len(free) < 2:
            return 0
        changed = 0
        for _ in range(max(1, budget // 2)):
            i, j = rng.sample(free, 2)
            w = tokens.words
            if w[i] != w[j]:
                w[i], w[j] = w[j], w[i]
                changed += 2
        return changed


@dataclass
class WordDelete:
    """Delete unlocked words: exactly `budget` of them, or (EDA "random deletion") each with
    probability budget / n, never leaving fewer than two words."""

    name: str = "word_delete"
    kind: str = "word"
    independent: bool = False

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        free = tokens.free()
        room = len(tokens.words) - 2
        if room <= 0 or not free:
            return 0
        if self.independent:
            p = budget / max(1, len(tokens.words))
            chosen = [i for i in free if rng.random() < p][:room]
        else:
            chosen = _pick(rng, free, min(budget, room))
        for i in sorted(chosen, reverse=True):
            tokens.delete(i)
        return len(chosen)


@dataclass
class WordCrop:
    """Delete one contiguous run of up to `budget` unlocked words."""

    name: str = "word_crop"
    kind: str = "word"

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        n = len(tokens.words)
        size = min(budget, n - 2)
        if size <= 0:
            return 0
        starts = [s for s in range(n - size + 1) if not any(tokens.locked[s : s + size])]
        if not starts:
            return 0
        s = rng.choice(starts)
        for _ in range(size):
            tokens.delete(s)
        return size


@dataclass
class WordSplit:
    """Split words of 4+ letters in two ("tired" -> "ti red")."""

    name: str = "word_split"
    kind: str = "word"

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        pool = [i for i in tokens.free() if len(tokens.words[i]) >= 4]
        chosen = sorted(_pick(rng, pool, budget), reverse=True)
        for i in chosen:
            w = tokens.words[i]
            cut = rng.randint(1, len(w) - 1)
            tokens.words[i] = w[:cut]
            tokens.insert(i + 1, w[cut:])
        return len(chosen)


@dataclass
class Replace:
    """Replace unlocked words with a candidate from `lookup` (synonyms, antonyms, misspellings,
    TF-IDF vocabulary). `weights` (optional) makes some words likelier to be picked."""

    name: str
    lookup: Callable[[str], Sequence[str]]
    kind: str = "word"
    skip_stopwords: bool = True
    weights: Callable[[str], float] | None = None

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        free = [
            i
            for i in tokens.free()
            if not (self.skip_stopwords and bare(tokens.words[i]) in STOPWORDS)
        ]
        if self.weights is None:
            # look words up in random order and stop at the budget: few lookups per text
            changed = 0
            for i in rng.sample(free, len(free)):
                options = self.lookup(bare(tokens.words[i]))
                new = _choose(options, tokens, rng) if options else None
                if new is not None:
                    tokens.words[i] = _keep_case(tokens.words[i], new)
                    changed += 1
                    if changed >= budget:
                        break
            return changed
        cands = [(i, o) for i in free if (o := self.lookup(bare(tokens.words[i])))]
        w = [self.weights(bare(tokens.words[i])) for i, _ in cands]
        changed = 0
        while cands and changed < budget and any(w):
            k = rng.choices(range(len(cands)), weights=w)[0]
            i, options = cands[k]
            w[k] = 0.0
            new = _choose(options, tokens, rng)
            if new is not None:
                tokens.words[i] = _keep_case(tokens.words[i], new)
                changed += 1
        return changed


@dataclass
class Insert:
    """Insert words at random positions; `source(word, rng)` proposes one for a random unlocked
    word (EDA "random insertion": a synonym of it) or from a vocabulary (TF-IDF)."""

    name: str
    source: Callable[[str, random.Random], str | None]
    kind: str = "word"

    def apply(self, tokens: Tokens, rng: random.Random, budget: int) -> int:
        free = [i for i in tokens.free() if bare(tokens.words[i]) not in STOPWORDS]
        added = 0
        for _ in range(budget):
            seed_word = bare(tokens.words[rng.choice(free)]) if free else ""
            new = self.source(seed_word, rng)
            if not new or not tokens.allows(new):
                continue
            tokens.insert(rng.randint(0, len(tokens.words)), new)
            added += 1
            free = [i for i in tokens.free() if bare(tokens.words[i]) not in STOPWORDS]
        return added


class WeightedVocabulary:
    """Draw words with given weights in O(log n) (cumulative weights + bisect)."""

    def __init__(self, words: Sequence[str], weights: Sequence[float]) -> None:
        self.words = list(words)
        total = 0.0
        self.cum = []
        for w in weights:
            total += max(float(w), 0.0)
            self.cum.append(total)

    def draw(self, rng: random.Random) -> str | None:
        if not self.words or self.cum[-1] <= 0:
            return None
        return self.words[min(bisect(self.cum, rng.random() * self.cum[-1]), len(self.words) - 1)]
