"""The training loop, top to bottom: setup -> epochs -> evaluate -> checkpoint -> cleanup.

No Trainer base class. Data parallelism (torchrun) enters through `DistContext`: a
DistributedDataParallel wrap, a per-rank batch sampler and "only rank 0 writes"; the loop itself
does not change.
"""

from __future__ import annotations

import collections
import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from cea.augment.policy import AugmentStats
from cea.config import CeaConfig
from cea.errors import Interrupted, RuntimeFailure
from cea.evaluate.metrics import MetricReport, score
from cea.model.features import (
    BucketBatchSampler,
    ExampleBatchSampler,
    FeatureDataset,
    Features,
    SampledBatchSampler,
    collate,
)
from cea.model.inference import (
    autocast,
    masked_bce,
    model_inputs,
    pool_logits,
    predict,
)
from cea.progress import NullProgress, ProgressSink
from cea.run_folder import CHECKPOINTS_DIR, resolve_checkpoint
from cea.train.checkpoint import (
    load_trainer_state,
    load_weights,
    restore_rng,
    save_checkpoint,
    save_weights,
)
from cea.train.prefetch import Prefetcher
from cea.train.schedule import build_scheduler


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float
    epochs_run: int
    global_step: int
    stopped_early: bool
    resumed_from_epoch: int | None
    train_seconds: float
    train_samples: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Interval:
    """What the steps since the last loss sync add up to (the loss stays on the device)."""

    loss: torch.Tensor
    rows: int = 0
    wait: float = 0.0
    step: float = 0.0
    steps: int = 0  # micro-steps (batches)
    optimizer_steps: int = 0

    def reset(self) -> None:
        self.loss = torch.zeros((), device=self.loss.device)
        self.rows, self.wait, self.step, self.steps, self.optimizer_steps = 0, 0.0, 0.0, 0, 0

    def per_step(self) -> tuple[float, float]:
        """Seconds per optimizer step over the interval: (data wait, compute)."""
        n = max(self.optimizer_steps, 1)
        return self.wait / n, self.step / n


class NonFiniteLoss(RuntimeFailure):
    """The loss became NaN or infinite (exit 6): a learning rate too high, bad inputs."""


def _nonfinite_hint(ckpt_dir: Path, history: list[dict[str, Any]]) -> str:
    kept = (
        f"the best checkpoint so far is kept in {ckpt_dir / 'best'}; "
        if (ckpt_dir / "best").is_dir() and history
        else ""
    )
    return kept + "lower train.lr (or set train.max_grad_norm) and train again"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    # each worker's seed derives from the loader's seeded generator: reproducible per epoch
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def resolve_device(choice: str, dist: DistContext) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from cea.errors import MissingResourceError

            raise MissingResourceError("train.device=cuda but no CUDA device is available")
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(
            p
        )
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused where the build supports it: on 2 CPU cores the fused step of MiniLM takes
    ~15 ms against ~110 ms for the default per-parameter loop (benchmarks/trainer_comparison.py).
    """
    groups = _param_groups(model, weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - builds without fused kernels
        return torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr, foreach=True)


def pos_weights(
    features: Features,
    n_labels: int,
    pair: bool,
    cap: float,
    *,
    per_example: bool = True,
    row_weight: np.ndarray | None = None,
) -> torch.Tensor:
    """neg/pos per criterion over the training examples (each post once, however many windows
    it has; per window with `per_example=False`), clipped to [1, cap]. Unknown labels (NaN)
    count neither way. `row_weight`: how often each row is drawn per epoch (negative
    sampling), so the weights balance what an epoch actually holds."""
    pos = np.zeros(n_labels)
    tot = np.zeros(n_labels)
    seen: set[int] = set()
    rows = zip(features.labels, features.crit_index, features.example_index, strict=True)
    for row, (y, c, e) in enumerate(rows):
        if per_example:
            if e in seen:
                continue
            seen.add(e)
        v = np.asarray(y, dtype=np.float64)
        ok = ~np.isnan(v)
        share = 1.0 if row_weight is None else float(row_weight[row])
        if pair:
            if ok[0]:
                pos[c] += v[0] * share
                tot[c] += share
        else:
            pos += np.where(ok, v, 0.0) * share
            tot += ok * share
    w = np.where(pos > 0, (tot - pos) / np.maximum(pos, 1e-12), 1.0)
    return torch.tensor(np.clip(w, 1.0, cap), dtype=torch.float32)


@dataclass(frozen=True)
class NegativePlan:
    """Which training rows an epoch draws (`train.negative_sampling`)."""

    positives: list[int]
    negatives: list[int]  # hardest first
    n_negatives: int
    n_hard: int

    def row_weight(self, n_rows: int) -> np.ndarray:
        """Each row's expected draws per epoch: 1 for positives, the draw rate for negatives."""
        w = np.zeros(n_rows)
        w[self.positives] = 1.0
        if self.negatives:
            w[self.negatives] = self.n_negatives / len(self.negatives)
        return w

    def to_dict(self) -> dict[str, int]:
        return {
            "positive_rows": len(self.positives),
            "negative_rows": len(self.negatives),
            "negatives_per_epoch": self.n_negatives,
            "hard_negatives_per_epoch": self.n_hard,
        }


def negative_plan(
    config: CeaConfig, features: Features, hardness: np.ndarray | None
) -> NegativePlan:
    """Positive rows (evidence for some criterion) and the negatives ordered hardest first
    (`hardness` per example; without it, no hard share)."""
    ns = config.train.negative_sampling
    labels = np.asarray(features.labels, dtype=np.float64).reshape(len(features), -1)
    positive = np.nan_to_num(labels, nan=0.0).max(axis=1) >= 0.5
    positives = [int(r) for r in np.flatnonzero(positive)]
    negatives = [int(r) for r in np.flatnonzero(~positive)]
    n_hard_share = ns.hard_share
    if hardness is not None:
        row_hardness = np.asarray(hardness, dtype=np.float64)[
            np.asarray(features.example_index, dtype=np.int64)
        ]
        # hardest first; ties in row order (stable), so the plan is deterministic
        negatives.sort(key=lambda r: -row_hardness[r])
    else:
        n_hard_share = 0.0
    n_neg = min(len(negatives), round(ns.per_positive * max(len(positives), 1)))
    return NegativePlan(positives, negatives, n_neg, round(n_hard_share * n_neg))


def _loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    crit: torch.Tensor,
    pw: torch.Tensor | None,
    pair: bool,
) -> torch.Tensor:
    weight = None
    if pw is not None:
        weight = pw[crit].unsqueeze(1) if pair else pw
    return masked_bce(logits, labels, weight)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _averaged(model: torch.nn.Module, states: list[dict[str, torch.Tensor]]) -> torch.nn.Module:
    """A copy of `model` holding the mean of `states` (integer buffers from the last)."""
    import copy

    avg = copy.deepcopy(model).to("cpu")
    merged = {
        k: (
            torch.stack([st[k].float() for st in states]).mean(0).to(v.dtype)
            if v.is_floating_point()
            else v
        )
        for k, v in states[-1].items()
    }
    avg.load_state_dict(merged)
    return avg


def _metric_value(report: MetricReport, metric: str) -> tuple[float, bool]:
    """(value, higher is better)."""
    if metric == "val_loss":
        return (report.loss if report.loss is not None else math.inf), False
    if metric == "macro_auprc":
        return (report.macro_auprc if report.macro_auprc is not None else 0.0), True
    return float(getattr(report, metric)), True


def is_per_post(config: CeaConfig, pair: bool) -> bool:
    """Multi-instance training: a post's windows pooled into one logit in the step."""
    return not pair and config.task.level == "post" and config.model.chunking.train_unit == "post"


def sampling_applies(config: CeaConfig, pair: bool) -> bool:
    """`train.negative_sampling` is for multi-label sentence training (a row is a sentence);
    post-level runs (windows of a post share its labels) train on every row."""
    return config.train.negative_sampling.enabled and config.task.level == "sentence" and not pair


def training_loader(
    config: CeaConfig,
    train_features: Features,
    train_dataset: Any = None,
    *,
    pad_id: int = 0,
    dist: DistContext | None = None,
    device: torch.device | None = None,
    pair: bool = False,
    plan: NegativePlan | None = None,
) -> tuple[DataLoader[Any], BucketBatchSampler | ExampleBatchSampler, Any]:
    """The training input pipeline: (augmented) dataset -> batch sampler (length buckets, or
    whole posts packed up to `batch_size` windows for multi-instance training, or a new draw
    of negatives each epoch with `plan`; a share per rank) -> collate, through a torch
    DataLoader. `fit` and `cea bench pipeline` use this."""
    tc = config.train
    dist = dist or DistContext()
    # one logical batch size: each rank takes batch_size / world_size rows
    per_rank = max(1, tc.batch_size // dist.world_size)
    per_post = is_per_post(config, pair)
    sampler_kw: dict[str, Any] = {
        "seed": config.seed,
        "bucket": tc.bucket_by_length,
        "rank": dist.rank,
        "num_replicas": dist.world_size,
    }
    sampler: BucketBatchSampler | ExampleBatchSampler
    if per_post:
        sampler = ExampleBatchSampler(train_features, per_rank, **sampler_kw)
    elif plan is not None:
        sampler = SampledBatchSampler(
            train_features.lengths(), per_rank, positives=plan.positives,
            negatives=plan.negatives, n_negatives=plan.n_negatives, n_hard=plan.n_hard,
            **sampler_kw,
        )  # fmt: skip
    else:
        sampler = BucketBatchSampler(train_features.lengths(), per_rank, **sampler_kw)
    generator = torch.Generator()
    generator.manual_seed(config.seed)
    dataset: Any = train_dataset if train_dataset is not None else FeatureDataset(train_features)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=lambda b: collate(b, pad_id),
        num_workers=tc.num_workers,
        worker_init_fn=_worker_init if tc.num_workers else None,
        generator=generator,
        pin_memory=device is not None and device.type == "cuda",
        persistent_workers=False,
    )
    return loader, sampler, dataset


def fit(
    model: torch.nn.Module,
    config: CeaConfig,
    *,
    train_features: Features,
    val_features: Features,
    labels: tuple[str, ...],
    pair: bool,
    run_dir: Path,
    resume: bool = False,
    progress: ProgressSink | None = None,
    dist: DistContext | None = None,
    pad_id: int = 0,
    train_dataset: Any = None,
    should_stop: Callable[[], str | None] | None = None,
    hardness: np.ndarray | None = None,
) -> FitResult:
    """The training loop. `train_dataset` replaces the plain dataset of `train_features` (an
    augmenting one: it has `set_epoch`, and its batches carry augmentation outcomes).
    `should_stop()` is asked after every step and after every checkpoint; a reason stops the
    loop (Interrupted) without writing a half-finished epoch. `hardness` (per training
    example) orders the negatives for `train.negative_sampling`."""
    tc = config.train
    progress = progress or NullProgress()
    dist = dist or DistContext()
    ckpt_dir = run_dir / CHECKPOINTS_DIR

    # ---- setup -----------------------------------------------------------------------------
    device = resolve_device(tc.device, dist)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    model.to(device)
    net: torch.nn.Module = model
    if dist.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    use_types = train_features.token_type_ids is not None
    n_outputs = 1 if pair else len(labels)
    # multi-instance: the windows of a post are one training example (pooled in the step)
    per_post = is_per_post(config, pair)
    plan = (
        negative_plan(config, train_features, hardness) if sampling_applies(config, pair) else None
    )
    loader, sampler, dataset = training_loader(
        config, train_features, train_dataset, pad_id=pad_id, dist=dist, device=device,
        pair=pair, plan=plan,
    )  # fmt: skip
    example_of_row = torch.as_tensor(train_features.example_index, dtype=torch.int64)
    aggregate = config.model.chunking.aggregate
    augmenting = hasattr(dataset, "set_epoch")
    optimizer = build_optimizer(model, lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = math.ceil(len(sampler) / tc.grad_accum)
    total_steps = steps_per_epoch * tc.epochs
    if tc.max_steps is not None:
        total_steps = min(total_steps, tc.max_steps)
    scheduler = build_scheduler(
        optimizer,
        kind=tc.schedule,
        total_steps=total_steps,
        warmup_steps=round(tc.warmup_ratio * total_steps),
    )
    use_amp = tc.amp and device.type == "cuda"
    scaler = (
        torch.amp.GradScaler("cuda") if use_amp and not torch.cuda.is_bf16_supported() else None
    )
    pw = None
    if tc.class_weighting != "none":
        cap = tc.max_pos_weight if tc.class_weighting == "pos_weight" else math.inf
        row_weight = plan.row_weight(len(train_features)) if plan is not None else None
        pw = pos_weights(
            train_features, len(labels), pair, cap, per_example=per_post, row_weight=row_weight
        ).to(device)
    es = tc.early_stopping
    # checkpoint averaging (early_stopping.average = k): the last k epochs' weights and values
    recent: collections.deque[tuple[float, dict[str, torch.Tensor]]] = collections.deque(
        maxlen=es.average
    )
    history: list[dict[str, Any]] = []
    start_epoch = 0
    global_step = 0
    best_metric = -math.inf
    best_epoch = -1
    bad_epochs = 0
    stopped = False
    resumed_from: int | None = None
    train_seconds = 0.0
    train_samples = 0

    if resume:
        last = resolve_checkpoint(ckpt_dir / "last")
        state = load_trainer_state(last)
        load_weights(last, model)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        t = state["trainer"]
        start_epoch, global_step = int(t["epoch"]), int(t["global_step"])
        best_metric, best_epoch = float(t["best_metric"]), int(t["best_epoch"])
        bad_epochs, stopped = int(t["bad_epochs"]), bool(t["stopped"])
        history = list(t["history"])
        train_seconds, train_samples = float(t["train_seconds"]), int(t["train_samples"])
        resumed_from = start_epoch
        restore_rng(state["rng"])
        progress.event("resume", {"epoch": start_epoch, "global_step": global_step})

    def _stop(epoch: int) -> None:
        reason = should_stop() if should_stop is not None else None
        if not reason:
            return
        finished = history[-1]["epoch"] if history else 0
        if finished:
            kept = f"kept {ckpt_dir / 'last'} (epoch {finished} of {tc.epochs})"
            hint = f"resume with `cea train --resume {run_dir}`"
        else:
            kept = "no epoch had finished, so there is nothing to resume from"
            hint = f"start again (the folder {run_dir} can be deleted)"
        raise Interrupted(f"{reason}: training stopped at step {global_step}; {kept}", hint=hint)

    def flush(acc: _Interval, epoch: int, step: int, t_step: float) -> tuple[float, int]:
        """Sync an interval's loss (the current step's time includes the sync), check it and
        report it; returns (loss sum, rows) for the epoch's mean."""
        total = float(acc.loss)  # the sync
        acc.step += time.perf_counter() - t_step
        rows = acc.rows
        value = total / max(rows, 1)
        if not math.isfinite(value):
            raise NonFiniteLoss(
                f"the training loss became {value} at epoch {epoch + 1}, step "
                f"{step} (learning rate {scheduler.get_last_lr()[0]:.3g}); "
                "training stopped, the weights of the last steps are not kept",
                hint=_nonfinite_hint(ckpt_dir, history),
            )
        busy = acc.wait + acc.step
        rows_global = rows * dist.world_size
        wait_per_step, step_per_step = acc.per_step()
        progress.event(
            "step",
            {
                "epoch": epoch + 1,
                "step": step,
                "steps": acc.steps,  # micro-steps this event covers
                "optimizer_steps": acc.optimizer_steps,
                "loss": round(value, 6),
                "lr": scheduler.get_last_lr()[0],
                "samples_per_s": round(rows_global / max(busy, 1e-9), 2),
                # per optimizer step (the mean over this event's steps), not their sum
                "data_wait_s": round(wait_per_step, 6),
                "step_s": round(step_per_step, 6),
            },
        )
        acc.reset()
        return total, rows

    # ---- epochs ----------------------------------------------------------------------------
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, tc.epochs):
            if stopped or (tc.max_steps is not None and global_step >= tc.max_steps):
                break
            sampler.set_epoch(epoch)
            if augmenting:
                dataset.set_epoch(epoch)
            aug_stats = AugmentStats(examples=train_features.n_examples)
            net.train()
            progress.start(f"epoch {epoch + 1}/{tc.epochs}", len(sampler))
            epoch_start = time.perf_counter()
            loss_sum, loss_n, wait_sum = 0.0, 0, 0.0
            # what the bar shows: the mean loss of the epoch's batches seen so far, and the
            # epoch's throughput so far (None until known: shown as "-", never nan or 0)
            shown_loss: float | None = None
            epoch_rows, epoch_busy = 0, 0.0
            # the loss stays on the device between syncs: one sync per `log_every` optimizer
            # steps (and at the end of the epoch), where it is checked and reported
            acc = _Interval(torch.zeros((), device=device))

            optimizer.zero_grad(set_to_none=True)
            t_wait = time.perf_counter()
            batches = Prefetcher(loader, tc.prefetch) if tc.prefetch else loader
            n_micro = len(sampler)
            for micro, batch in enumerate(batches, start=1):
                wait = time.perf_counter() - t_wait
                wait_sum += wait
                for outcome in batch.get("aug", ()):
                    aug_stats.add(outcome)
                t_step = time.perf_counter()
                boundary = micro % tc.grad_accum == 0 or micro == n_micro
                # under DDP, gradients are all-reduced only on the step that uses them
                no_sync = dist.world_size > 1 and not boundary and hasattr(net, "no_sync")
                with net.no_sync() if no_sync else contextlib.nullcontext():  # type: ignore[operator]
                    with autocast(device, use_amp):
                        logits = net(**model_inputs(batch, device, use_types)).logits
                    labels_b = batch["labels"].to(device, non_blocking=True)
                    if per_post:  # one logit and one target per post
                        posts, local = torch.unique(
                            example_of_row[batch["row"]], return_inverse=True
                        )
                        n_posts = len(posts)
                        local = local.to(device, non_blocking=True)
                        logits = pool_logits(logits.float(), local, n_posts, aggregate)
                        labels_b = torch.zeros(
                            (n_posts, labels_b.shape[1]), device=device, dtype=labels_b.dtype
                        ).index_copy(0, local, labels_b)
                    loss = _loss(logits, labels_b, batch["crit"].to(device), pw, pair)
                    scaled = loss / tc.grad_accum
                    if scaler is not None:
                        scaler.scale(scaled).backward()  # type: ignore[no-untyped-call]
                    else:
                        scaled.backward()  # type: ignore[no-untyped-call]
                n_rows = len(batch["row"])
                acc.loss += loss.detach() * n_rows
                acc.rows += n_rows
                if boundary:
                    if scaler is not None:
                        scaler.unscale_(optimizer)
                    if tc.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    global_step += 1
                    acc.optimizer_steps += 1
                last_step = tc.max_steps is not None and global_step >= tc.max_steps
                acc.wait += wait
                acc.steps += 1
                if micro == n_micro or last_step or (boundary and global_step % tc.log_every == 0):
                    total, rows = flush(acc, epoch, global_step, t_step)
                    loss_sum += total
                    loss_n += rows
                    shown_loss = loss_sum / max(loss_n, 1)
                else:
                    if device.type == "cpu" or micro == 1:
                        # a sync: free on the CPU; elsewhere once an epoch, so the bar has a
                        # number from the first step (then it follows the interval syncs)
                        shown_loss = (loss_sum + float(acc.loss)) / max(loss_n + acc.rows, 1)
                    acc.step += time.perf_counter() - t_step
                step_time = time.perf_counter() - t_step
                rows_global = n_rows * dist.world_size
                train_samples += rows_global
                train_seconds += wait + step_time
                epoch_rows += rows_global
                epoch_busy += wait + step_time
                progress.advance(
                    f"epoch {epoch + 1}/{tc.epochs}",
                    1,
                    loss=shown_loss,
                    lr=scheduler.get_last_lr()[0],
                    samples_per_s=epoch_rows / max(epoch_busy, 1e-9),
                )
                _stop(epoch)
                if last_step:
                    break
                t_wait = time.perf_counter()
            progress.finish(f"epoch {epoch + 1}/{tc.epochs}")

            # ---- evaluate ----------------------------------------------------------------------
            val_pred = predict(
                model,
                val_features,
                device=device,
                batch_size=tc.eval_batch_size,
                pair=pair,
                n_outputs=n_outputs,
                aggregate=config.model.chunking.aggregate,
                amp=use_amp,
                pad_id=pad_id,
            )
            if not (np.isfinite(val_pred.prob).all() and math.isfinite(val_pred.loss)):
                # the last optimizer step made the weights non-finite (a finite loss, then an
                # overflowing update): these weights must never become the model
                raise NonFiniteLoss(
                    f"the model's validation outputs became non-finite after epoch {epoch + 1} "
                    f"(step {global_step}); training stopped",
                    hint=_nonfinite_hint(ckpt_dir, history),
                )
            val = score(val_pred, labels)
            value, higher = _metric_value(val, es.metric)
            signed = value if higher else -value
            if es.average > 1:  # selected on the mean of the last k epochs, kept as their mean
                recent.append((signed, _cpu_state(model)))
                signed = float(np.mean([v for v, _ in recent]))
            improved = signed > best_metric + es.min_delta
            if improved:
                best_metric, best_epoch, bad_epochs = signed, epoch + 1, 0
            else:
                bad_epochs += 1
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": round(loss_sum / max(loss_n, 1), 6),
                "val_loss": val.loss,
                "val_macro_f1": val.macro_f1,
                "val_micro_f1": val.micro_f1,
                "val_macro_auprc": val.macro_auprc,
                "duration_s": round(time.perf_counter() - epoch_start, 3),
                "data_wait_s": round(wait_sum, 4),
                "improved": improved,
            }
            if es.average > 1:
                record["selection_value"] = round(signed if higher else -signed, 6)
                record["averaged_epochs"] = len(recent)
            if augmenting:
                record["augment"] = aug_stats.to_dict()
            history.append(record)
            progress.event("epoch", record)
            if es.patience and bad_epochs >= es.patience:
                stopped = True

            # ---- checkpoint (rank 0 writes) ----------------------------------------------------
            if dist.is_main:
                if improved and es.average > 1 and len(recent) > 1:
                    save_weights(ckpt_dir / "best", _averaged(model, [st for _, st in recent]))
                elif improved:
                    save_weights(ckpt_dir / "best", model)
                save_checkpoint(
                    ckpt_dir / "last",
                    model,
                    optimizer,
                    scheduler,
                    {
                        "epoch": epoch + 1,
                        "global_step": global_step,
                        "best_metric": best_metric,
                        "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs,
                        "stopped": stopped,
                        "history": history,
                        "train_seconds": train_seconds,
                        "train_samples": train_samples,
                    },
                    scaler,
                )
                progress.event("checkpoint", {"epoch": epoch + 1, "path": str(ckpt_dir / "last")})
            if dist.world_size > 1:
                torch.distributed.barrier()
            if epoch + 1 < tc.epochs:
                _stop(epoch + 1)
    except Interrupted:
        raise
    except Exception:
        _stop(epoch)  # a DataLoader worker killed by the same Ctrl-C: report the interrupt
        raise

    # ---- cleanup: the best weights go back into the model ----------------------------------
    best = resolve_checkpoint(ckpt_dir / "best")
    if best.is_dir():
        load_weights(best, model)
    elif dist.is_main and history:  # no epoch was ever better than nothing: no model to keep
        raise RuntimeFailure(
            f"no epoch produced a usable model ({es.metric} was never a number)",
            hint="check the data (every validation label unknown?) and the learning rate",
        )
    extra: dict[str, Any] = {
        "selection": {
            "metric": es.metric,
            "average_last": es.average,
            "rule": (
                f"the epoch where the mean of the last {es.average} epochs' validation "
                f"{es.metric} was best; the model kept is the mean of those epochs' weights"
                if es.average > 1
                else f"the epoch with the best validation {es.metric}"
            ),
        },
        "class_weights": None if pw is None else [round(float(w), 4) for w in pw.cpu()],
    }
    if plan is not None:
        extra["negative_sampling"] = plan.to_dict()
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        best_metric=best_metric if best_metric != -math.inf else float("nan"),
        epochs_run=len(history),
        global_step=global_step,
        stopped_early=stopped,
        resumed_from_epoch=resumed_from,
        train_seconds=train_seconds,
        train_samples=train_samples,
        extra=extra,
    )
