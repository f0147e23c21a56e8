"""Median latency of every available non-model augmenter on 25-word sentences (target: at most
0.5 ms per example on 2 cores; DESIGN §7/§8). `cea bench augment --json` prints the same
measurement with p50/p95 per augmenter."""

from __future__ import annotations

import random

import pytest

from cea.augment.base import Protection, Tokens
from cea.augment.registry import SPECS, availability, build
from cea.bench.augment import corpus, latency_resources

TEXTS = corpus(200)
_RES = latency_resources(200, 25, seed=0)
NAMES = [s.name for s in SPECS if s.kind != "model" and availability(s.name, _RES).available]


@pytest.mark.benchmark(group="augmenters", min_rounds=200)
@pytest.mark.parametrize("name", NAMES)
def test_augmenter_latency(benchmark, name: str) -> None:
    aug = build(name, _RES)
    protect = Protection.build([])
    state = {"i": 0}

    def one() -> str:
        i = state["i"] = (state["i"] + 1) % len(TEXTS)
        tokens = Tokens.of(TEXTS[i], protect)
        aug.apply(tokens, random.Random(i), max(1, int(0.15 * len(tokens.words))))
        return tokens.text()

    for _ in range(len(TEXTS)):  # warm-up: word caches filled
        one()
    benchmark.pedantic(one, rounds=1000, iterations=1, warmup_rounds=10)
    median_ms = benchmark.stats.stats.median * 1000
    assert median_ms <= 0.5, f"{name}: median {median_ms:.3f} ms"
