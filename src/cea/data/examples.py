"""One example builder for both levels.

- post level: one example per post, a multi-hot vector over the task's labels;
- sentence level: (criterion description, sentence) pairs with a 0/1 target, where negatives
  are the clinician-marked status-0 rows (`annotated`) or, in addition, every sentence of the
  post not marked as evidence for that criterion (`all`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from cea.data.readers import normalize_ws
from cea.data.schema import ANY_CRITERION, Annotation, Dataset
from cea.data.sentences import split_sentences


@dataclass(frozen=True)
class Example:
    example_id: str
    post_id: str
    group_id: str
    text: str
    labels: tuple[float, ...]
    criterion: str | None = None  # sentence level: which criterion the pair asks about
    sentence_id: str | None = None


def build_post_examples(
    dataset: Dataset, labels: tuple[str, ...], groups: set[str] | None = None
) -> list[Example]:
    out = []
    for post in dataset.posts:
        if groups is not None and post.group_id not in groups:
            continue
        masked = post.unknown
        target = tuple(
            1.0
            if lab in post.labels
            else (math.nan if (lab in masked or ANY_CRITERION in masked) else 0.0)
            for lab in labels
        )
        out.append(Example(post.post_id, post.post_id, post.group_id, post.text, target))
    return out


def build_sentence_examples(
    dataset: Dataset,
    labels: tuple[str, ...],
    negatives: Literal["annotated", "all"],
    groups: set[str] | None = None,
    encoding: Literal["pair", "multilabel"] = "pair",
) -> list[Example]:
    if encoding == "multilabel":
        return _multilabel_sentence_examples(dataset, labels, negatives, groups)
    label_set = set(labels)
    posts = dataset.post_by_id()
    out: list[Example] = []
    by_post: dict[str, list[int]] = {}
    for i, ann in enumerate(dataset.annotations):
        by_post.setdefault(ann.post_id, []).append(i)
    for post_id in (
        sorted(by_post) if negatives == "annotated" else [p.post_id for p in dataset.posts]
    ):
        post = posts.get(post_id)
        if post is None or (groups is not None and post.group_id not in groups):
            continue
        anns = [dataset.annotations[i] for i in by_post.get(post_id, [])]
        anns = [a for a in anns if a.criterion in label_set]
        if negatives == "annotated":
            for a in anns:
                out.append(
                    Example(
                        f"{post_id}:{a.sentence_id}:{a.criterion}",
                        post_id,
                        post.group_id,
                        a.sentence_text,
                        (float(a.status),),
                        a.criterion,
                        a.sentence_id,
                    )
                )
            continue
        positive = {(normalize_ws(a.sentence_text), a.criterion) for a in anns if a.status == 1}
        sentences: list[tuple[str, str]] = [
            (f"{post_id}_s{s.index}", s.text) for s in split_sentences(post.text)
        ]
        known = {normalize_ws(t) for _, t in sentences}
        overlapping = _overlapping_evidence(sentences, anns, known)
        for a in anns:  # annotated sentences the splitter did not reproduce are kept too
            if normalize_ws(a.sentence_text) not in known:
                sentences.append((a.sentence_id, a.sentence_text))
                known.add(normalize_ws(a.sentence_text))
        for sid, text in sentences:
            norm = normalize_ws(text)
            for crit in labels:
                y = 1.0 if (norm, crit) in positive else 0.0
                if not y and (crit in post.unknown or ANY_CRITERION in post.unknown):
                    y = math.nan  # an unusable row named it: unknown, not negative
                if not y and (sid, crit) in overlapping:
                    y = math.nan  # part of (or holds) evidence cut differently: not a negative
                out.append(
                    Example(
                        f"{post_id}:{sid}:{crit}", post_id, post.group_id, text, (y,), crit, sid
                    )
                )
    return out


def _overlapping_evidence(
    sentences: list[tuple[str, str]], anns: list[Annotation], known: set[str]
) -> set[tuple[str, str]]:
    """(sentence id, criterion) of the splitter's sentences that overlap an evidence sentence
    the annotators cut differently (theirs holds ours, or ours holds theirs). Such a sentence
    is neither a clean positive nor a negative: teaching it as a negative would teach the
    evidence's own words as "not evidence". The annotated text is added as its own sentence."""
    cut = [
        (normalize_ws(a.sentence_text).casefold(), a.criterion)
        for a in anns
        if a.status == 1 and normalize_ws(a.sentence_text) not in known
    ]
    out: set[tuple[str, str]] = set()
    for sid, text in sentences if cut else ():
        ours = normalize_ws(text).casefold()
        if not ours:
            continue
        for theirs, crit in cut:
            if theirs and (ours in theirs or theirs in ours):
                out.add((sid, crit))
    return out


def _multilabel_sentence_examples(
    dataset: Dataset,
    labels: tuple[str, ...],
    negatives: Literal["annotated", "all"],
    groups: set[str] | None,
) -> list[Example]:
    """One example per sentence with a target per criterion (multi-label head): 1 where the
    sentence is evidence for it; 0 where it is known not to be (`all`: every other sentence;
    `annotated`: a clinician's status-0 row); unknown (NaN, masked) otherwise. The pair
    examples of the same data, regrouped: the same sentences and the same known targets."""
    pairs = build_sentence_examples(dataset, labels, negatives, groups, "pair")
    index = {lab: i for i, lab in enumerate(labels)}
    merged: dict[tuple[str, str], list[float]] = {}
    first: dict[tuple[str, str], Example] = {}
    for e in pairs:
        key = (e.post_id, e.sentence_id or "")
        if key not in merged:
            merged[key] = [math.nan] * len(labels)
            first[key] = e
        merged[key][index[e.criterion or ""]] = e.labels[0]
    return [
        Example(
            f"{e.post_id}:{e.sentence_id}",
            e.post_id,
            e.group_id,
            e.text,
            tuple(merged[key]),
            None,
            e.sentence_id,
        )
        for key, e in first.items()
    ]


def build_examples(
    dataset: Dataset,
    *,
    level: Literal["post", "sentence"],
    labels: tuple[str, ...],
    negatives: Literal["annotated", "all"] = "annotated",
    groups: set[str] | None = None,
    encoding: Literal["pair", "multilabel"] = "pair",
) -> list[Example]:
    if level == "post":
        return build_post_examples(dataset, labels, groups)
    return build_sentence_examples(dataset, labels, negatives, groups, encoding)
