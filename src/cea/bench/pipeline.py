"""Input-pipeline throughput and the data-wait/step ratio (DESIGN §8).

The measured pipeline is the one `cea train` uses: `AugmentedDataset` (base rows tokenized
once, outside the timing; augmented examples re-tokenized per batch) → `BucketBatchSampler` →
`collate`, through a torch `DataLoader`. The naive pipeline is the common pattern it replaces:
nlpaug in `__getitem__`, the tokenizer in the collate function, with the same augmentation
probability and the nlpaug equivalents of the same augmenters.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cea.data.examples import Example

# cea augmenter -> nlpaug equivalent (class, keyword arguments), for the naive pipeline
NLPAUG_EQUIVALENT: dict[str, tuple[str, str, dict[str, Any]]] = {
    "char_keyboard": ("char", "KeyboardAug", {}),
    "char_ocr": ("char", "OcrAug", {}),
    "char_insert": ("char", "RandomCharAug", {"action": "insert"}),
    "char_substitute": ("char", "RandomCharAug", {"action": "substitute"}),
    "char_swap": ("char", "RandomCharAug", {"action": "swap"}),
    "char_delete": ("char", "RandomCharAug", {"action": "delete"}),
    "word_swap": ("word", "RandomWordAug", {"action": "swap"}),
    "word_delete": ("word", "RandomWordAug", {"action": "delete"}),
    "word_crop": ("word", "RandomWordAug", {"action": "crop"}),
    "word_split": ("word", "SplitAug", {}),
    "spelling": ("word", "SpellingAug", {}),
    "eda_random_swap": ("word", "RandomWordAug", {"action": "swap"}),
    "eda_random_deletion": ("word", "RandomWordAug", {"action": "delete"}),
}


def examples_from(texts: list[str], n_labels: int = 10) -> list[Example]:
    zeros = tuple(0.0 for _ in range(n_labels))
    return [Example(str(i), str(i), str(i), t, zeros) for i, t in enumerate(texts)]


LABELS = tuple(f"L{i}" for i in range(10))  # benchmark rows carry ten (zero) targets


def augmented_dataset(
    texts: list[str], tokenizer: Any, names: list[str], prob: float, max_length: int, seed: int
) -> Any:
    """The training dataset `cea train` builds, over `texts`, with these augmenters (equal
    weights) at this probability; the base rows are tokenized here, outside any timing."""
    from cea.augment.build import build_augmentation, resources_for
    from cea.augment.dataset import AugmentedDataset
    from cea.config import AugmentConfig
    from cea.model.features import featurize

    cfg = AugmentConfig(enabled=True, prob=prob, augmenters=dict.fromkeys(names, 1.0))
    res, _ = resources_for(cfg, texts)
    aug = build_augmentation(cfg, seed, res)
    kwargs: dict[str, Any] = {
        "max_length": max_length,
        "labels": LABELS,
        "descriptions": None,
        "chunking": False,
        "stride": 16,
        "max_chunks": 1,
    }
    exs = examples_from(texts, len(LABELS))
    feats = featurize(exs, tokenizer, **kwargs)
    return AugmentedDataset(feats, exs, tokenizer, aug, kwargs)


@dataclass(frozen=True)
class LoaderRun:
    samples: int
    batches: int
    seconds: float
    batch_ms: list[float]  # time to get each batch (the loop's wait)

    @property
    def samples_per_s(self) -> float:
        return self.samples / max(self.seconds, 1e-9)


def time_loader(loader: Iterable[dict[str, Any]], delay_s: float = 0.0) -> LoaderRun:
    """Iterate one epoch; `delay_s` sleeps per batch (test-only: a regression to detect)."""
    waits: list[float] = []
    samples = 0
    start = last = time.perf_counter()
    for batch in loader:
        if delay_s:
            time.sleep(delay_s)
        now = time.perf_counter()
        waits.append((now - last) * 1000.0)
        samples += len(batch["input_ids"])
        last = now
    return LoaderRun(samples, len(waits), time.perf_counter() - start, waits)


def cea_loader(
    dataset: Any, batch_size: int, workers: int, seed: int, epoch: int = 0
) -> Iterable[dict[str, Any]]:
    from torch.utils.data import DataLoader

    from cea.model.features import BucketBatchSampler, collate

    pad = int(getattr(dataset.tokenizer, "pad_token_id", 0) or 0)
    sampler = BucketBatchSampler(dataset.f.lengths(), batch_size, seed=seed)
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=lambda b: collate(b, pad),
        num_workers=workers,
        persistent_workers=False,
    )


class NaiveDataset:
    """nlpaug in `__getitem__` (each item: draw, maybe augment); raw text out."""

    def __init__(self, texts: list[str], augmenters: list[Any], prob: float, seed: int) -> None:
        self.texts = texts
        self.augmenters = augmenters
        self.prob = prob
        self.seed = seed

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> str:
        rng = random.Random(f"{self.seed}:{i}")  # noqa: S311 - augmentation draw
        text = self.texts[i]
        if rng.random() < self.prob:
            random.seed(rng.getrandbits(32))  # nlpaug draws from the global generators
            np.random.seed(rng.getrandbits(32))
            out = rng.choice(self.augmenters).augment(text)
            text = out[0] if isinstance(out, list) else out
        return str(text)


def naive_augmenters(names: list[str], max_ratio: float) -> list[Any]:
    import nlpaug.augmenter.char as nac
    import nlpaug.augmenter.word as naw

    out = []
    for name in names:
        if name not in NLPAUG_EQUIVALENT:
            continue
        module, cls, kwargs = NLPAUG_EQUIVALENT[name]
        mod = nac if module == "char" else naw
        key = "aug_word_p" if module == "char" else "aug_p"
        out.append(getattr(mod, cls)(**{key: max_ratio}, **kwargs))
    return out


def naive_loader(
    texts: list[str],
    tokenizer: Any,
    augmenters: list[Any],
    *,
    prob: float,
    batch_size: int,
    workers: int,
    max_length: int,
    seed: int,
) -> Iterable[dict[str, Any]]:
    import torch
    from torch.utils.data import DataLoader

    def collate(batch: list[str]) -> dict[str, Any]:
        return dict(
            tokenizer(
                batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
        )

    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(
        NaiveDataset(texts, augmenters, prob, seed),  # type: ignore[arg-type]
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collate,
        num_workers=workers,
        generator=gen,
    )


def summarize(runs: list[LoaderRun]) -> dict[str, Any]:
    """Medians over repeated runs (machines are noisy), and every run."""
    sps = [r.samples_per_s for r in runs]
    p50 = [float(np.percentile(r.batch_ms, 50)) for r in runs if r.batch_ms]
    p95 = [float(np.percentile(r.batch_ms, 95)) for r in runs if r.batch_ms]
    return {
        "samples_per_s": round(float(np.median(sps)), 1),
        "batch_p50_ms": round(float(np.median(p50)), 4),
        "batch_p95_ms": round(float(np.median(p95)), 4),
        "runs_samples_per_s": [round(x, 1) for x in sps],
        "samples": runs[0].samples,
        "batches": runs[0].batches,
    }


def repeat(measure: Callable[[int], LoaderRun], repeats: int) -> list[LoaderRun]:
    return [measure(r) for r in range(repeats)]


BANDS = ((0.05, "not input-bound"), (0.20, "moderately input-bound"))


def band(ratio: float) -> str:
    for limit, name in BANDS:
        if ratio < limit:
            return name
    return "highly input-bound"


@dataclass(frozen=True)
class StepRun:
    steps: int
    wait_s: float
    step_s: float

    @property
    def ratio(self) -> float:
        return self.wait_s / max(self.wait_s + self.step_s, 1e-12)


def time_steps(
    loader: Iterable[dict[str, Any]],
    step: Callable[[dict[str, Any]], None],
    *,
    max_steps: int,
    skip: int = 2,
) -> StepRun:
    """Data-wait/step ratio the way the training loop measures it: time waiting for the next
    batch vs. time in the step. The first `skip` steps (worker start-up, warm-up) are left out."""
    wait = busy = 0.0
    n = 0
    t_wait = time.perf_counter()
    for i, batch in enumerate(loader):
        got = time.perf_counter()
        step(batch)
        done = time.perf_counter()
        if i >= skip:
            wait += got - t_wait
            busy += done - got
            n += 1
        if n >= max_steps:
            break
        t_wait = time.perf_counter()
    return StepRun(n, wait, busy)


def pipeline_on_data(cfg: Any, *, repeats: int = 3, delay_s: float = 0.0) -> dict[str, Any]:
    """The training input pipeline of `cfg` on its data, every part timed: read + split +
    examples, tokenizer load, tokenize + chunk (the tokenizer cuts the windows), augmentation
    setup, then `repeats` epochs through the loader training uses (its sampler, augmentation,
    re-tokenization, collate) — with `train.num_workers` 0 the augment and re-tokenize shares
    of an epoch are measured apart from collate."""
    from cea.train.loop import negative_plan, sampling_applies, training_loader
    from cea.train.run import load_inputs

    times: dict[str, float] = {}
    start = time.perf_counter()
    inputs = load_inputs(cfg, times=times)
    cfg = inputs.data.config  # task.level "auto" resolved from the data
    setup_s = time.perf_counter() - start
    feats = inputs.feats["train"]
    plan = (
        negative_plan(cfg, feats, inputs.hardness) if sampling_applies(cfg, cfg.task.pair) else None
    )
    loader, sampler, dataset = training_loader(
        cfg, feats, inputs.train_dataset, pad_id=inputs.pad_id, pair=cfg.task.pair, plan=plan
    )
    runs: list[LoaderRun] = []
    parts: list[dict[str, float]] = []
    for r in range(repeats):
        sampler.set_epoch(r)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(r)
        before = dict(getattr(dataset, "timing", {}))
        runs.append(time_loader(loader, delay_s))
        after = getattr(dataset, "timing", {})
        parts.append({k: after[k] - before.get(k, 0.0) for k in after})
    inputs.release()
    summary = summarize(runs)
    epoch_s = float(np.median([r.seconds for r in runs]))
    measured = cfg.train.num_workers == 0  # (worker processes keep their own counts)
    aug_s = float(np.median([p.get("augment_s", 0.0) for p in parts])) if measured else None
    retok_s = float(np.median([p.get("retokenize_s", 0.0) for p in parts])) if measured else None
    lengths = feats.lengths()
    out: dict[str, Any] = {
        "task": f"{cfg.task.name}/{cfg.task.level}",
        "backbone": cfg.model.backbone,
        "examples": feats.n_examples,
        "rows": len(feats),  # windows (chunked posts) or pairs
        "windows_per_example": round(len(feats) / max(feats.n_examples, 1), 3),
        "mean_tokens_per_row": round(float(np.mean(lengths)) if len(lengths) else 0.0, 1),
        "truncated_share": round(feats.truncated_examples / max(feats.n_examples, 1), 4),
        "batches_per_epoch": len(sampler),
        "augment": bool(cfg.augment.enabled),
        "time_s": {
            **{k: round(v, 4) for k, v in times.items()},
            "setup_total_s": round(setup_s, 4),
            "epoch_s": round(epoch_s, 4),
            "augment_per_epoch_s": None if aug_s is None else round(aug_s, 4),
            "retokenize_per_epoch_s": None if retok_s is None else round(retok_s, 4),
            "collate_per_epoch_s": None
            if aug_s is None or retok_s is None
            else round(max(epoch_s - aug_s - retok_s, 0.0), 4),
        },
        **summary,
        "examples_per_s": round(feats.n_examples / max(epoch_s, 1e-9), 1),
    }
    return out
