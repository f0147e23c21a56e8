"""How much of the data a maximum length cuts off, with and without chunking."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TruncationStats:
    max_length: int
    examples: int
    truncated: int  # examples longer than max_length (whole text does not fit one window)
    mean_tokens: float
    max_tokens: int
    p95_tokens: int
    chunked_examples_lost_tokens: int = 0  # with chunking: examples that even max_chunks cut

    @property
    def truncated_share(self) -> float:
        return self.truncated / self.examples if self.examples else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "truncated_share": round(self.truncated_share, 4)}


def token_lengths(tokenizer: Any, texts: list[str], batch: int = 512) -> list[int]:
    lengths: list[int] = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i : i + batch], add_special_tokens=True, truncation=False)
        lengths.extend(len(ids) for ids in enc["input_ids"])
    return lengths


def truncation_stats(
    lengths: list[int], max_length: int, *, stride: int = 0, max_chunks: int | None = None
) -> TruncationStats:
    if not lengths:
        return TruncationStats(max_length, 0, 0, 0.0, 0, 0)
    ordered = sorted(lengths)
    truncated = sum(1 for n in lengths if n > max_length)
    lost = 0
    if max_chunks is not None:
        body = max_length - 2
        covered = body + (max_chunks - 1) * max(body - stride, 1)
        lost = sum(1 for n in lengths if n - 2 > covered)
    return TruncationStats(
        max_length=max_length,
        examples=len(lengths),
        truncated=truncated,
        mean_tokens=round(sum(lengths) / len(lengths), 2),
        max_tokens=ordered[-1],
        p95_tokens=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        chunked_examples_lost_tokens=lost,
    )
