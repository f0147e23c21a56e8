"""Dataset summaries: label counts per split, lengths, overlap check."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from cea.data.schema import Dataset
from cea.data.splits import Split


@dataclass(frozen=True)
class Description:
    source: str
    format: str
    posts: int
    annotations: int
    groups: int
    criteria: tuple[str, ...]
    label_counts: dict[str, dict[str, int]]  # split -> label -> posts meeting it
    split_posts: dict[str, int]
    symptom_free: dict[str, int]
    words_mean: float
    words_max: int
    overlap: tuple[str, ...]  # groups found in more than one split (must be empty)
    data_hash: str
    split_hashes: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def describe(dataset: Dataset, split: Split) -> Description:
    where = split.split_of()
    counts: dict[str, Counter[str]] = {name: Counter() for name in split.groups}
    n_posts: Counter[str] = Counter()
    free: Counter[str] = Counter()
    seen_in: dict[str, set[str]] = {}
    for post in dataset.posts:
        name = where.get(post.group_id, "unassigned")
        seen_in.setdefault(post.post_id, set()).add(name)
        n_posts[name] += 1
        counts.setdefault(name, Counter()).update(post.labels)
        if not post.labels:
            free[name] += 1
    membership: dict[str, list[str]] = {}
    for name, gids in split.groups.items():
        for gid in gids:
            membership.setdefault(gid, []).append(name)
    overlap = tuple(sorted(g for g, names in membership.items() if len(names) > 1))
    words = [len(p.text.split()) for p in dataset.posts]
    return Description(
        source=dataset.source,
        format=dataset.format,
        posts=len(dataset.posts),
        annotations=len(dataset.annotations),
        groups=len({p.group_id for p in dataset.posts}),
        criteria=dataset.criteria,
        label_counts={
            name: {lab: counts[name].get(lab, 0) for lab in dataset.criteria} for name in counts
        },
        split_posts=dict(n_posts),
        symptom_free={name: free.get(name, 0) for name in counts},
        words_mean=round(sum(words) / len(words), 1) if words else 0.0,
        words_max=max(words, default=0),
        overlap=overlap,
        data_hash=dataset.content_hash(),
        split_hashes=split.hashes(),
    )
