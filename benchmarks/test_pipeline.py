"""Input-pipeline targets (issue #10, DESIGN §8), measured on 2 cores, no GPU, 25-word
sentences, batch 32, augmentation probability 0.15 with the cheap augmenters:

- the training input pipeline at least 27,600 samples/s and at least 3x the naive pipeline
  (nlpaug in __getitem__, tokenizer in collate) at the same probability and augmenters;
- data-wait/step ratio at most 0.05 around a simulated 15 ms accelerator step.

Plus pytest-benchmark timings of the hot functions (collate, a batch of the augmented dataset).
"""

from __future__ import annotations

import numpy as np
import pytest

from cea.bench.augment import corpus
from cea.bench.pipeline import (
    augmented_dataset,
    cea_loader,
    naive_augmenters,
    naive_loader,
    summarize,
    time_loader,
    time_steps,
)
from cea.bench.run import CHEAP
from cea.model.backbone import resolve_backbone
from cea.model.build import load_tokenizer
from cea.model.features import collate
from cea.train.prefetch import Prefetcher

NAMES = list(CHEAP)
TEXTS = corpus(8000, 25, seed=13)
TOK = load_tokenizer(resolve_backbone("minilm"))
DS = augmented_dataset(TEXTS, TOK, NAMES, 0.15, 64, 13)


@pytest.mark.benchmark(group="pipeline-hot")
def test_getitems_batch_of_32(benchmark) -> None:
    state = {"i": 0}

    def one() -> list:
        state["i"] = (state["i"] + 32) % (len(DS) - 32)
        return DS.__getitems__(list(range(state["i"], state["i"] + 32)))

    rows = benchmark(one)
    assert len(rows) == 32


@pytest.mark.benchmark(group="pipeline-hot")
def test_collate_batch_of_32(benchmark) -> None:
    rows = DS.__getitems__(list(range(32)))
    batch = benchmark(collate, rows, 0)
    assert batch["input_ids"].shape[0] == 32


def test_pipeline_throughput_and_speedup_over_naive() -> None:
    ours = summarize([time_loader(cea_loader(DS, 32, 0, 13, r)) for r in range(3)])
    augs = naive_augmenters(NAMES, 0.15)
    naive = summarize(
        [
            time_loader(
                naive_loader(TEXTS[:4000], TOK, augs, prob=0.15, batch_size=32, workers=0,
                             max_length=64, seed=r)
            )
            for r in range(3)
        ]
    )  # fmt: skip
    print(f"\ncea {ours['samples_per_s']:,.0f} samples/s; naive {naive['samples_per_s']:,.0f}")
    assert ours["samples_per_s"] >= 27_600
    assert ours["samples_per_s"] >= 3 * naive["samples_per_s"]


def test_data_wait_ratio_around_a_simulated_15ms_step() -> None:
    import time

    def step(batch) -> None:
        time.sleep(0.015)

    ratios = [
        time_steps(Prefetcher(cea_loader(DS, 32, 0, 13, r), 2), step, max_steps=100).ratio
        for r in range(3)
    ]
    print(f"\ndata-wait/step ratios {ratios}")
    assert float(np.median(ratios)) <= 0.05
