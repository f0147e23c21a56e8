"""Inference: a model's probabilities for featurized examples, the windows of a post pooled the
way the model was trained. Training (validation passes) and evaluation (eval, predict, compare)
both call `predict`; nothing here knows about run folders or metrics."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from cea.errors import MissingResourceError, UsageError
from cea.model.features import BucketBatchSampler, FeatureDataset, Features, collate

DEVICES = ("auto", "cpu", "cuda")


def inference_device(choice: str = "auto") -> torch.device:
    """`auto`: the first CUDA device when there is one, else the CPU; `cuda` without one is
    a missing resource (exit 4)."""
    if choice not in DEVICES:
        raise UsageError(f"--device must be one of {', '.join(DEVICES)}, not {choice!r}")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise MissingResourceError("--device cuda, but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class Predictions:
    """Scored items in long format (see cea.evaluate.metrics) plus per-example probabilities."""

    crit: np.ndarray
    target: np.ndarray
    prob: np.ndarray
    example_prob: np.ndarray  # (n_examples, n_outputs)
    loss: float


def masked_bce(
    logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean BCE over the targets that are known (NaN marks a label that could not be used:
    masked out of the loss, never taken as negative)."""
    mask = ~torch.isnan(labels)
    per = F.binary_cross_entropy_with_logits(
        logits.float(), torch.nan_to_num(labels), pos_weight=weight, reduction="none"
    )
    return (per * mask).sum() / mask.sum().clamp(min=1)


def pool_logits(logits: torch.Tensor, index: torch.Tensor, n: int, rule: str) -> torch.Tensor:
    """One logit per example from the logits of its windows (`index`: example of each row,
    0..n-1). `max`: the most confident window; `mean`: the average logit; `lse`: log of the
    mean of exp(logit) — a smooth max that lies between the two. Training and inference both
    call this, so a model is used the way it was trained."""
    width = logits.shape[1]
    idx = index.unsqueeze(1).expand(-1, width)
    count = torch.zeros(n, 1, device=logits.device, dtype=logits.dtype).index_add_(
        0, index, torch.ones(len(index), 1, device=logits.device, dtype=logits.dtype)
    )
    if rule == "mean":
        total = torch.zeros(n, width, device=logits.device, dtype=logits.dtype)
        return total.scatter_add(0, idx, logits) / count.clamp(min=1)
    top = torch.full((n, width), -math.inf, device=logits.device, dtype=logits.dtype)
    top = top.scatter_reduce(0, idx, logits, reduce="amax", include_self=True)
    if rule == "max":
        return top
    shift = top.detach()
    total = torch.zeros(n, width, device=logits.device, dtype=logits.dtype)
    total = total.scatter_add(0, idx, torch.exp(logits - shift[index]))
    return shift + torch.log(total) - torch.log(count.clamp(min=1))


def autocast(device: torch.device, enabled: bool) -> Any:
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def model_inputs(
    batch: dict[str, torch.Tensor], device: torch.device, use_types: bool
) -> dict[str, torch.Tensor]:
    inputs = {
        "input_ids": batch["input_ids"].to(device, non_blocking=True),
        "attention_mask": batch["attention_mask"].to(device, non_blocking=True),
    }
    if use_types:
        inputs["token_type_ids"] = batch["token_type_ids"].to(device, non_blocking=True)
    return inputs


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    features: Features,
    *,
    device: torch.device,
    batch_size: int,
    pair: bool,
    n_outputs: int,
    aggregate: str = "max",
    amp: bool = False,
    pad_id: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> Predictions:
    """Probabilities per example and the items to score. The windows of a chunked post are
    pooled into one logit per post by `aggregate` (max / mean / lse, as in training); the loss
    is per example (per post), over the targets that are known."""
    model.eval()
    use_types = features.token_type_ids is not None
    sampler = BucketBatchSampler(features.lengths(), batch_size, seed=0, shuffle=False)
    loader = DataLoader(
        FeatureDataset(features), batch_sampler=sampler, collate_fn=lambda b: collate(b, pad_id)
    )
    row_logits = torch.zeros((len(features), n_outputs), dtype=torch.float32)
    for batch in loader:
        with autocast(device, amp):
            logits = model(**model_inputs(batch, device, use_types)).logits.float()
        row_logits[batch["row"]] = logits.cpu()
        if on_batch is not None:
            on_batch(len(batch["row"]))
    n_ex = features.n_examples
    ex_index = torch.as_tensor(features.example_index, dtype=torch.int64)
    pooled = pool_logits(row_logits, ex_index, n_ex, aggregate) if len(ex_index) else row_logits
    # targets per example (every row of an example carries them)
    targets = np.zeros((n_ex, n_outputs))
    crit_of = np.full(n_ex, -1, dtype=np.int64)
    for row, e in enumerate(features.example_index):
        targets[e] = features.labels[row]
        crit_of[e] = features.crit_index[row]
    loss = float(masked_bce(pooled, torch.as_tensor(targets, dtype=torch.float32))) if n_ex else 0.0
    example_prob = torch.sigmoid(pooled).double().numpy()
    if pair:
        crit, target, prob = crit_of, targets[:, 0], example_prob[:, 0]
    else:
        crit = np.tile(np.arange(n_outputs, dtype=np.int64), n_ex)
        target, prob = targets.reshape(-1), example_prob.reshape(-1)
    return Predictions(crit, target, prob, example_prob, loss)
