"""Does torch.compile speed up the training step here? Eager vs `model.compile(dynamic=True)`.

MiniLM (packaged), (criterion, sentence)-pair head, batch 16, random token ids of lengths drawn
from 40-128 (what a batch of real sentences pads to without bucketing), BCE loss, fused AdamW.
8 warm-up steps (compilation happens there), then 52 timed steps. One process per mode:

    python benchmarks/compile_step.py eager && python benchmarks/compile_step.py compile

Prints one line per mode: warm-up seconds, samples/s, median step. Timing claims live here.
"""

from __future__ import annotations

import random
import statistics
import sys
import time

import torch

from cea.model.backbone import resolve_backbone
from cea.model.build import build_model


def main(mode: str) -> None:
    torch.manual_seed(0)
    random.seed(0)
    model = build_model(resolve_backbone("minilm"), labels=("a",), pair=True)
    model.train()
    if mode == "compile":
        model.compile(dynamic=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    lengths = [random.randint(40, 128) for _ in range(60)]

    def step(length: int) -> None:
        ids = torch.randint(1000, 20000, (16, length))
        logits = model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            token_type_ids=torch.zeros_like(ids),
        ).logits
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits.squeeze(-1), torch.ones(16)
        )
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    for length in lengths[:8]:
        step(length)
    warm = time.perf_counter() - t0
    times = []
    for length in lengths[8:]:
        t = time.perf_counter()
        step(length)
        times.append(time.perf_counter() - t)
    print(
        mode,
        f"warmup_s={warm:.1f}",
        f"samples_per_s={16 * len(times) / sum(times):.1f}",
        f"median_step_ms={1000 * statistics.median(times):.1f}",
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "eager")
