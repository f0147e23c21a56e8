"""The training dataset with augmentation: base rows tokenized once, only the examples an epoch
augments are re-tokenized (in one batched tokenizer call per batch, via `__getitems__`).

A post cut into chunks is augmented as a whole (one decision per example and epoch); its row
k takes chunk k of the re-tokenized text (the last one when the text got shorter). Each row
of chunk 0 carries the outcome (augmenter names and changed-word counts; no text) so the
training loop can aggregate statistics even when workers do the augmenting.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from torch.utils.data import Dataset as TorchDataset

from cea.augment.policy import Augmentation, Outcome
from cea.data.examples import Example
from cea.model.features import Features, featurize


def _backend_copy(tokenizer: Any, kwargs: dict[str, Any]) -> Any:
    """An independent copy of the fast tokenizer's Rust backend, set up like `featurize`
    (truncation to max_length; with chunking, overflow windows with the stride); None when
    the tokenizer has no backend."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_padding()
    if kwargs["chunking"] and kwargs["descriptions"] is None:
        copy.enable_truncation(kwargs["max_length"], stride=kwargs["stride"])
    else:
        copy.enable_truncation(kwargs["max_length"], strategy="longest_first")
    return copy


class AugmentedDataset(TorchDataset[dict[str, Any]]):
    def __init__(
        self,
        features: Features,
        examples: Sequence[Example],
        tokenizer: Any,
        augmentation: Augmentation,
        featurize_kwargs: dict[str, Any],
    ) -> None:
        self.f = features
        self.examples = examples
        self.tokenizer = tokenizer
        self.aug = augmentation
        self.kwargs = featurize_kwargs
        self.epoch = 0
        self._backend = _backend_copy(tokenizer, featurize_kwargs)
        first: dict[int, int] = {}
        for row, e in enumerate(features.example_index):
            first.setdefault(e, row)
        self.chunk = [row - first[e] for row, e in enumerate(features.example_index)]
        # seconds spent augmenting and re-tokenizing (in this process: with DataLoader workers
        # the counts stay in the workers) — what `cea bench pipeline --data` reports
        self.timing = {"augment_s": 0.0, "retokenize_s": 0.0}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.f)

    def _row(
        self, i: int, ids: list[int], types: list[int] | None, out: Outcome | None
    ) -> dict[str, Any]:
        return {
            "input_ids": ids,
            "token_type_ids": types,
            "labels": self.f.labels[i],
            "crit": self.f.crit_index[i],
            "row": i,
            "aug": out if (out is not None and self.chunk[i] == 0) else None,
        }

    def outcome(self, index: int) -> Outcome | None:
        """What this epoch does to example `index` (None: left as it is)."""
        rng = self.aug.rng_for(self.epoch, index)
        return None if rng is None else self.aug.augment(self.examples[index].text, rng)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        f = self.f
        outcomes: dict[int, Outcome] = {}
        t0 = time.perf_counter()
        for i in indices:
            e = f.example_index[i]
            if e not in outcomes:
                out = self.outcome(e)
                if out is not None:
                    outcomes[e] = out
        t1 = time.perf_counter()
        fresh: dict[int, tuple[list[list[int]], list[list[int]] | None]] = {}
        if outcomes:
            order = sorted(outcomes)
            if self._backend is not None:
                fresh = self._encode_backend(order, outcomes)
            else:
                fresh = self._encode_featurize(order, outcomes)
        self.timing["augment_s"] += t1 - t0
        self.timing["retokenize_s"] += time.perf_counter() - t1
        rows = []
        for i in indices:
            e = f.example_index[i]
            types_i = f.token_type_ids[i] if f.token_type_ids else None
            if e in fresh and fresh[e][0]:
                ids_list, types_list = fresh[e]
                k = min(self.chunk[i], len(ids_list) - 1)
                rows.append(
                    self._row(i, ids_list[k], types_list[k] if types_list else types_i, outcomes[e])
                )
            else:
                rows.append(self._row(i, f.input_ids[i], types_i, None))
        return rows

    def _encode_featurize(
        self, order: list[int], outcomes: dict[int, Outcome]
    ) -> dict[int, tuple[list[list[int]], list[list[int]] | None]]:
        fresh: dict[int, tuple[list[list[int]], list[list[int]] | None]] = {}
        exs = [replace(self.examples[e], text=outcomes[e].text) for e in order]
        feats = featurize(exs, self.tokenizer, **self.kwargs)
        for row, j in enumerate(feats.example_index):
            ids, types = fresh.setdefault(order[j], ([], [] if feats.token_type_ids else None))
            ids.append(feats.input_ids[row])
            if types is not None and feats.token_type_ids is not None:
                types.append(feats.token_type_ids[row])
        return fresh

    def _encode_backend(
        self, order: list[int], outcomes: dict[int, Outcome]
    ) -> dict[int, tuple[list[list[int]], list[list[int]] | None]]:
        """The same rows `featurize` makes, from the Rust tokenizer directly (the Python
        wrapper costs more than the tokenization of a handful of texts)."""
        kw = self.kwargs
        if kw["descriptions"] is not None:
            batch: list[Any] = [
                (kw["descriptions"][self.examples[e].criterion or ""], outcomes[e].text)
                for e in order
            ]
        else:
            batch = [outcomes[e].text for e in order]
        fresh: dict[int, tuple[list[list[int]], list[list[int]] | None]] = {}
        for e, enc in zip(order, self._backend.encode_batch(batch), strict=True):
            parts = [enc, *enc.overflowing] if kw["chunking"] else [enc]
            parts = parts[: kw["max_chunks"]] if kw["chunking"] else parts
            fresh[e] = ([p.ids for p in parts], [p.type_ids for p in parts])
        return fresh
