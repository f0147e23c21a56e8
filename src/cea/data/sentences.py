"""Offline rule-based sentence splitting with character spans.

Robust to what Reddit posts contain: missing capitals, ellipses, emoticons, line breaks used as
sentence ends, bullet lists and common abbreviations. No model, no download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ABBREVIATIONS = frozenset(
    [
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "approx",
        "dept",
        "est",
        "fig",
        "inc",
        "ltd",
        "mt",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "mg",
        "ml",
    ]
)
# English words that are abbreviations only before a number ("No. 5", "no. 3")
_BEFORE_A_NUMBER = frozenset(["no"])
# A candidate boundary: terminal punctuation (and closing quotes/brackets) followed by space, or
# a blank line / line break.
_BOUNDARY = re.compile(r"(?:[.!?…]+[\"')\]]*)(?=\s)|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)|\n")


@dataclass(frozen=True)
class Sentence:
    index: int
    start: int
    end: int
    text: str


def _is_abbreviation(text: str, end: int) -> bool:
    """True when the '.' ending at `end` closes a known abbreviation or a single initial."""
    match = re.search(r"([A-Za-z.]+)\.$", text[:end])
    if not match:
        return False
    word = match.group(1).lower().rstrip(".")
    if word in _BEFORE_A_NUMBER:  # "No. 5", but "I said no. Then ..." ends a sentence
        return text[end:].lstrip()[:1].isdigit()
    if word == "i":  # "so am I. Then ...": the pronoun, not an initial
        return False
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_sentences(text: str) -> list[Sentence]:
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        token = match.group(0)
        if token.endswith(".") and not token.endswith("..") and _is_abbreviation(text, end):
            continue
        spans.append((start, end))
        start = end
    spans.append((start, len(text)))
    out: list[Sentence] = []
    for begin, finish in spans:
        # trim whitespace but keep exact offsets into the original text
        s, e = begin, finish
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s and any(ch.isalnum() for ch in text[s:e]):
            out.append(Sentence(len(out), s, e, text[s:e]))
    return out
