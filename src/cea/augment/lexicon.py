"""The criteria lexicon: words that carry a criterion, so augmentation must not write them.

An augmenter that replaces "fine" with "grieving" in a symptom-free post, or inserts "numb"
into it, makes a negative that reads as a positive while its label stays negative: the model
is taught the wrong lesson. The lexicon holds (1) the content words of the criteria
descriptions and (2) the words strongly associated with a criterion in the training split —
pointwise mutual information between "the text contains w" and "the text meets c", smoothed,
with a minimum count. Words are compared by a light stem, so "grieve", "grieving" and
"grieves" are one entry.

Augmentation uses it twice: lexicon words in a text are locked (never replaced or dropped),
and an outcome whose lexicon words differ from the original's (one gained, or one lost) is
refused whole, whatever the augmenter: typos that make "tried" into "tired" too.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cea.augment.builtin import STOPWORDS

_WORD = re.compile(r"[a-z][a-z']+")
_SUFFIXES = ("ingly", "fulness", "ness", "ment", "ings", "ing", "edly", "ed", "ly", "ful",
             "less", "ies", "es", "s", "y", "e")  # fmt: skip

# words of the descriptions' phrasing that carry no criterion
BOILERPLATE = frozenset(
    [
        "person",
        "describes",
        "described",
        "reports",
        "reported",
        "clear",
        "either",
        "used",
        "much",
        "well",
        "still",
        "making",
        "relevant",
        "content",
        "nine",
        "not",
        "usual",
        "unable",
        "carries",
        "recurring",
        "nearly",
        "every",
        "day",
        "feels",
    ]
)
MIN_COUNT = 3  # texts of the criterion that contain the word
MIN_RATIO = 3.0  # P(w | c) / P(w), smoothed
PER_CRITERION = 40  # most associated words kept per criterion


def stem(word: str) -> str:
    """A light, deterministic stem ("grieving" -> "griev", "tiredness" -> "tir")."""
    w = word.lower().strip("'")
    for _ in range(2):  # "tiredness" -> "tired" -> "tir"
        for suf in _SUFFIXES:
            if w.endswith(suf) and len(w) - len(suf) >= 3:
                w = w[: -len(suf)]
                break
        else:
            break
    return w


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 2]


@dataclass(frozen=True)
class Lexicon:
    stems: frozenset[str]
    by_criterion: dict[str, tuple[str, ...]]  # criterion -> words (for reports)

    def __contains__(self, word: str) -> bool:
        return any(stem(w) in self.stems for w in _WORD.findall(word.lower()))

    def counts(self, text: str) -> Counter[str]:
        """How often each lexicon stem occurs in `text`."""
        return Counter(s for w in _WORD.findall(text.lower()) if (s := stem(w)) in self.stems)

    def introduced(self, original: str, augmented: str) -> tuple[str, ...]:
        """Lexicon stems the augmented text has more of than the original."""
        return tuple(sorted((self.counts(augmented) - self.counts(original)).keys()))

    def changed(self, original: str, augmented: str) -> tuple[str, ...]:
        """Lexicon stems gained or lost (an augmenter that ignores locks can drop evidence)."""
        before, after = self.counts(original), self.counts(augmented)
        return tuple(sorted(((after - before) + (before - after)).keys()))


EMPTY = Lexicon(frozenset(), {})


def build_lexicon(
    descriptions: dict[str, str],
    texts: Sequence[str] = (),
    positives: Sequence[Iterable[str]] = (),
) -> Lexicon:
    """The lexicon of these criteria: description words plus the training split's words most
    associated (PMI) with each criterion. `positives[i]` names the criteria text i meets."""
    by: dict[str, set[str]] = {
        c: set(content_words(d)) - BOILERPLATE for c, d in descriptions.items()
    }
    if texts:
        docs = [set(content_words(t)) for t in texts]
        n = len(docs)
        df = Counter(w for d in docs for w in d)
        for crit in descriptions:
            idx = [i for i, labs in enumerate(positives) if crit in set(labs)]
            if not idx:
                continue
            joint = Counter(w for i in idx for w in docs[i])
            scored = []
            for w, k in joint.items():
                if k < MIN_COUNT:
                    continue
                ratio = ((k + 0.5) / (len(idx) + 1)) / ((df[w] + 0.5) / (n + 1))
                if ratio >= MIN_RATIO:
                    scored.append((math.log(ratio), k, w))
            scored.sort(reverse=True)
            by[crit] |= {w for _, _, w in scored[:PER_CRITERION]}
    return Lexicon(
        frozenset(stem(w) for words in by.values() for w in words),
        {c: tuple(sorted(ws)) for c, ws in by.items()},
    )
