"""Values of the data layer: posts, annotations, datasets and the problems found in them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cea.security.io import canonical_json, sha256_bytes

Severity = Literal["warning", "error"]
ANY_CRITERION = "*"
# the two files of a ReDSM5 folder
POSTS_FILE = "redsm5_posts.csv"
ANNOTATIONS_FILE = "redsm5_annotations.csv"


@dataclass(frozen=True)
class Post:
    post_id: str
    text: str
    group_id: str  # split grouping: no two splits share a group (== post_id for ReDSM5)
    labels: frozenset[str]  # criteria the post meets (any status-1 annotation)
    row: int | None = None
    # criteria whose target is unknown for this post (an annotation row that could not be
    # used named it; ANY_CRITERION when even the criterion is unknown): masked, never negative
    unknown: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Annotation:
    post_id: str
    sentence_id: str
    sentence_text: str
    criterion: str
    status: int  # 1 = evidence, 0 = clinician-marked absence
    row: int | None = None


@dataclass(frozen=True)
class DataIssue:
    """One problem in a data file. `value` holds only non-sensitive values (labels, statuses)."""

    code: str
    severity: Severity
    file: str
    message: str
    row: int | None = None  # 1-based line number in the file (the header is line 1)
    ids: tuple[tuple[str, str], ...] = ()
    column: str | None = None
    value: str | None = None
    excerpt: str | None = None  # a short, truncated excerpt of text; only with --show-text

    def format(self) -> str:
        where = self.file + (f":{self.row}" if self.row is not None else "")
        ids = " ".join(f"{k}={v}" for k, v in self.ids)
        parts = [where, f"[{self.code}]"]
        if ids:
            parts.append(ids)
        head = " ".join(parts)
        col = f"column {self.column}: " if self.column else ""
        text = f"{head}: {col}{self.message}"
        if self.excerpt is not None:
            text += f" (text: {self.excerpt!r})"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "file": self.file,
            "row": self.row,
            "ids": dict(self.ids),
            "column": self.column,
            "value": self.value,
            "message": self.message,
            **({"excerpt": self.excerpt} if self.excerpt is not None else {}),
        }


@dataclass(frozen=True)
class Dataset:
    source: str
    format: str
    criteria: tuple[str, ...]
    posts: tuple[Post, ...]
    annotations: tuple[Annotation, ...] = ()
    _hash: list[str] = field(default_factory=list, repr=False, compare=False)

    def content_hash(self) -> str:
        """sha256 over ids, texts and labels: what a model trained on this data depends on."""
        if not self._hash:
            payload = {
                "criteria": list(self.criteria),
                "posts": [
                    [p.post_id, p.group_id, p.text, sorted(p.labels)]
                    + ([sorted(p.unknown)] if p.unknown else [])  # (old hashes unchanged)
                    for p in self.posts
                ],
                "annotations": [
                    [a.post_id, a.sentence_id, a.sentence_text, a.criterion, a.status]
                    for a in self.annotations
                ],
            }
            self._hash.append(sha256_bytes(canonical_json(payload).encode()))
        return self._hash[0]

    def post_by_id(self) -> dict[str, Post]:
        return {p.post_id: p for p in self.posts}


@dataclass(frozen=True)
class LoadResult:
    dataset: Dataset
    issues: tuple[DataIssue, ...]

    @property
    def errors(self) -> tuple[DataIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[DataIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")
