"""Tokenize once, pad per batch: features, dataset, length-bucketing sampler, collate.

Post-level texts longer than the window are cut into overlapping chunks (`stride` tokens of
overlap, at most `max_chunks`); every chunk carries its example index, so predictions are
aggregated back per post (max or mean). Sentence-level pairs are (criterion description,
sentence), truncating only the sentence.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler

from cea.data.examples import Example


@dataclass
class Features:
    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    example_index: list[int]  # which Example each row (chunk) belongs to
    labels: list[tuple[float, ...]]
    crit_index: list[int]  # criterion of a pair row; -1 for post-level rows
    n_examples: int
    truncated_examples: int  # examples whose text did not fit (after chunking, if enabled)
    chunked_examples: int  # examples split into more than one chunk
    truncated_index: list[int] = field(default_factory=list)  # which examples did not fit

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]


def featurize(
    examples: Sequence[Example],
    tokenizer: Any,
    *,
    max_length: int,
    labels: tuple[str, ...],
    descriptions: dict[str, str] | None = None,
    chunking: bool = True,
    stride: int = 32,
    max_chunks: int = 8,
) -> Features:
    pair = descriptions is not None
    ids: list[list[int]] = []
    types: list[list[int]] = []
    ex_index: list[int] = []
    targets: list[tuple[float, ...]] = []
    crit: list[int] = []
    truncated = chunked = 0
    cut: list[int] = []
    batch = 256
    label_pos = {lab: i for i, lab in enumerate(labels)}
    for start in range(0, len(examples), batch):
        part = examples[start : start + batch]
        if pair:
            firsts = [(descriptions or {})[e.criterion or ""] for e in part]
            enc = tokenizer(
                firsts,
                [e.text for e in part],
                truncation="longest_first",  # "only_second" fails when a description alone is too long
                max_length=max_length,
                return_overflowing_tokens=False,
            )
            full = tokenizer(firsts, [e.text for e in part], truncation=False)
            for j, e in enumerate(part):
                ids.append(list(enc["input_ids"][j]))
                types.append(list(enc["token_type_ids"][j]) if "token_type_ids" in enc else [])
                ex_index.append(start + j)
                targets.append(e.labels)
                crit.append(label_pos[e.criterion or ""])
                if len(full["input_ids"][j]) > max_length:
                    truncated += 1
                    cut.append(start + j)
            continue
        texts = [e.text for e in part]
        if chunking:
            enc = tokenizer(
                texts,
                truncation=True,
                max_length=max_length,
                stride=stride,
                return_overflowing_tokens=True,
            )
            mapping = enc["overflow_to_sample_mapping"]
        else:
            enc = tokenizer(texts, truncation=True, max_length=max_length)
            mapping = list(range(len(texts)))
            lengths = tokenizer(texts, truncation=False)["input_ids"]
            truncated += sum(1 for x in lengths if len(x) > max_length)
            cut.extend(start + j for j, x in enumerate(lengths) if len(x) > max_length)
        per_example: dict[int, int] = {}
        for row, j in enumerate(mapping):
            per_example[j] = per_example.get(j, 0) + 1
            if per_example[j] > max_chunks:
                continue
            ids.append(list(enc["input_ids"][row]))
            types.append(list(enc["token_type_ids"][row]) if "token_type_ids" in enc else [])
            ex_index.append(start + j)
            targets.append(part[j].labels)
            crit.append(-1)
        if chunking:
            chunked += sum(1 for n in per_example.values() if n > 1)
            truncated += sum(1 for n in per_example.values() if n > max_chunks)
            cut.extend(start + j for j, n in sorted(per_example.items()) if n > max_chunks)
    has_types = bool(types) and all(types)
    return Features(
        input_ids=ids,
        token_type_ids=types if has_types else None,
        example_index=ex_index,
        labels=targets,
        crit_index=crit,
        n_examples=len(examples),
        truncated_examples=truncated,
        chunked_examples=chunked,
        truncated_index=cut,
    )


class FeatureDataset(TorchDataset[dict[str, Any]]):
    def __init__(self, features: Features) -> None:
        self.f = features

    def __len__(self) -> int:
        return len(self.f)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "input_ids": self.f.input_ids[i],
            "token_type_ids": self.f.token_type_ids[i] if self.f.token_type_ids else None,
            "labels": self.f.labels[i],
            "crit": self.f.crit_index[i],
            "row": i,
        }


def collate(batch: list[dict[str, Any]], pad_id: int = 0) -> dict[str, Any]:
    """Dynamic padding to the longest row of the batch (plus augmentation outcomes, if any).
    Filled in NumPy and handed to torch without a copy: one tensor per field, not per row."""
    n = len(batch)
    width = max(len(b["input_ids"]) for b in batch)
    input_ids = np.full((n, width), pad_id, dtype=np.int64)
    attention = np.zeros((n, width), dtype=np.int64)
    types = np.zeros((n, width), dtype=np.int64)
    for i, b in enumerate(batch):
        k = len(b["input_ids"])
        input_ids[i, :k] = b["input_ids"]
        attention[i, :k] = 1
        if b["token_type_ids"] is not None:
            types[i, :k] = b["token_type_ids"]
    out: dict[str, Any] = {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention),
        "token_type_ids": torch.from_numpy(types),
        "labels": torch.from_numpy(np.array([b["labels"] for b in batch], dtype=np.float32)),
        "crit": torch.from_numpy(np.array([b["crit"] for b in batch], dtype=np.int64)),
        "row": torch.from_numpy(np.array([b["row"] for b in batch], dtype=np.int64)),
    }
    if "aug" in batch[0]:
        out["aug"] = [b["aug"] for b in batch if b["aug"] is not None]
    return out


def for_rank(batches: list[list[int]], rank: int, num_replicas: int) -> list[list[int]]:
    """Every num_replicas-th batch, after padding to equal counts on every rank (repeats)."""
    if num_replicas <= 1:
        return batches
    while len(batches) % num_replicas:
        batches.append(batches[len(batches) % max(1, len(batches))])
    return batches[rank::num_replicas]


class BucketBatchSampler(Sampler[list[int]]):
    """Seeded batches of similar length: shuffle, sort within pools of 50 batches, shuffle batches.

    The order depends only on (seed, epoch), never on global RNG state, so a resumed run sees
    the same batches. With `num_replicas > 1` each rank takes every num_replicas-th batch.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        bucket: bool = True,
        pool_batches: int = 50,
        rank: int = 0,
        num_replicas: int = 1,
    ) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.bucket = bucket
        self.pool = batch_size * pool_batches
        self.rank = rank
        self.num_replicas = num_replicas
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rows(self, rng: random.Random) -> list[int]:
        """The rows of this epoch (all of them; a sampling subclass draws a subset)."""
        return list(range(len(self.lengths)))

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)  # noqa: S311 - data order only
        idx = self._rows(rng)
        if self.shuffle:
            rng.shuffle(idx)
        if self.bucket:
            pools = [idx[i : i + self.pool] for i in range(0, len(idx), self.pool)]
            idx = [j for pool in pools for j in sorted(pool, key=lambda k: self.lengths[k])]
        batches = [idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return for_rank(batches, self.rank, self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        n = math.ceil(self.rows_per_epoch / self.batch_size)
        return math.ceil(n / self.num_replicas)

    @property
    def rows_per_epoch(self) -> int:
        return len(self.lengths)


class SampledBatchSampler(BucketBatchSampler):
    """`BucketBatchSampler` over a new draw of rows each epoch (seeded by seed and epoch):
    every positive row, and `n_negatives` of the negative rows: `n_hard` drawn from the
    2 * n_hard hardest (`negatives` is ordered hardest first), the rest at random from the
    others. Multi-label sentence training with 1-3 % evidence per criterion: the positives
    are seen every epoch, the negatives that look like evidence often, and an epoch costs a
    fraction of a pass over every sentence."""

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        *,
        positives: list[int],
        negatives: list[int],
        n_negatives: int,
        n_hard: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(lengths, batch_size, **kwargs)
        self.positives = list(positives)
        self.negatives = list(negatives)
        self.n_negatives = max(0, min(n_negatives, len(self.negatives)))
        self.n_hard = max(0, min(n_hard, self.n_negatives))

    @property
    def rows_per_epoch(self) -> int:
        return len(self.positives) + self.n_negatives

    def _rows(self, rng: random.Random) -> list[int]:
        pool = min(len(self.negatives), 2 * self.n_hard)
        hard = rng.sample(self.negatives[:pool], self.n_hard)
        chosen = set(hard)
        rest = [r for r in self.negatives if r not in chosen]
        drawn = rng.sample(rest, self.n_negatives - self.n_hard)
        return sorted(self.positives + hard + drawn)


def rows_by_example(features: Features) -> list[list[int]]:
    """The rows (windows) of each example, in order."""
    out: list[list[int]] = [[] for _ in range(features.n_examples)]
    for row, e in enumerate(features.example_index):
        out[e].append(row)
    return out


class ExampleBatchSampler(Sampler[list[int]]):
    """Batches of whole examples for multi-instance training: every window of a post lands in
    the same batch, so the model step can pool them into one post logit. Posts are packed until
    the batch holds `batch_size` windows (a longer post goes alone), so a step costs what a
    per-window step costs and an epoch has as many steps. Seeded by (seed, epoch) only; with
    `bucket`, posts of similar total length are packed together."""

    def __init__(
        self,
        features: Features,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        bucket: bool = True,
        pool_batches: int = 50,
        rank: int = 0,
        num_replicas: int = 1,
    ) -> None:
        self.rows = rows_by_example(features)
        self.tokens = [sum(len(features.input_ids[r]) for r in rows) for rows in self.rows]
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.bucket = bucket
        self.pool = batch_size * pool_batches  # windows per sorting pool
        self.rank = rank
        self.num_replicas = num_replicas
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _example_batches(self) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        idx = [e for e in range(len(self.rows)) if self.rows[e]]
        rng = random.Random(self.seed * 100_003 + self.epoch)  # noqa: S311 - data order only
        if self.shuffle:
            rng.shuffle(idx)
        if self.bucket:
            pools, current, windows = [], [], 0
            for e in idx:
                current.append(e)
                windows += len(self.rows[e])
                if windows >= self.pool:
                    pools.append(current)
                    current, windows = [], 0
            pools.append(current)
            idx = [e for pool in pools for e in sorted(pool, key=lambda k: self.tokens[k])]
        batches: list[list[int]] = []
        current, windows = [], 0
        for e in idx:
            k = len(self.rows[e])
            if current and windows + k > self.batch_size:
                batches.append(current)
                current, windows = [], 0
            current.append(e)
            windows += k
        if current:
            batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        batches = for_rank(batches, self.rank, self.num_replicas)
        self._cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._example_batches():
            yield [r for e in batch for r in self.rows[e]]

    def __len__(self) -> int:
        return len(self._example_batches())
