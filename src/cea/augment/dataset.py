"""The training dataset with augmentation: base rows tokenized once, only the examples an epoch
augments are re-tokenized (in one batched tokenizer call per batch, via `__getitems__`).

A post cut into chunks is augmented as a whole (one decision per example and epoch); its row
k takes chunk k of the re-tokenized text (the last one when the text got shorter). Each row
of chunk 0 carries the outcome (augmenter names and changed-word counts; no text) so the
training loop can aggregate statistics even when workers do the augmenting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from torch.utils.data import Dataset as TorchDataset

from cea.augment.policy import Augmentation, Outcome
from cea.data.examples import Example
from cea.train.features import Features, featurize


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
        first: dict[int, int] = {}
        for row, e in enumerate(features.example_index):
            first.setdefault(e, row)
        self.chunk = [row - first[e] for row, e in enumerate(features.example_index)]

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
        for i in indices:
            e = f.example_index[i]
            if e not in outcomes:
                out = self.outcome(e)
                if out is not None:
                    outcomes[e] = out
        fresh: dict[int, tuple[list[list[int]], list[list[int]] | None]] = {}
        if outcomes:
            order = sorted(outcomes)
            exs = [replace(self.examples[e], text=outcomes[e].text) for e in order]
            feats = featurize(exs, self.tokenizer, **self.kwargs)
            for row, j in enumerate(feats.example_index):
                ids, types = fresh.setdefault(order[j], ([], [] if feats.token_type_ids else None))
                ids.append(feats.input_ids[row])
                if types is not None and feats.token_type_ids is not None:
                    types.append(feats.token_type_ids[row])
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
