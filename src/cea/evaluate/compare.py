"""`cea eval --compare A B`: did B (e.g. with augmentation) beat A, beyond the noise?

A and B are runs or groups of runs (several seeds each). Every run is scored on the posts that
all runs hold out in their test split; the difference of the groups' mean macro-F1 gets a
paired bootstrap interval (the same resampled posts for every run), and the spread across
seeds within each group is reported next to it.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cea.errors import DataError, MissingResourceError, UsageError


def expand_group(spec: str) -> list[Path]:
    """`runs/a,runs/b` or a glob `runs/aug-*` -> run folders (sorted)."""
    out: list[Path] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        matches = sorted(glob.glob(part))  # noqa: PTH207 - patterns may be absolute if any(ch in part for ch in "*?[") else [part]
        out += [Path(m) for m in matches]
    runs = [p for p in out if (p / "cea_meta.json").is_file()]
    if not runs:
        raise MissingResourceError(f"no finished run matches {spec!r}")
    return runs


@dataclass(frozen=True)
class RunScores:
    run_dir: Path
    pred: np.ndarray  # (posts, labels) decisions at the run's thresholds
    target: np.ndarray


def _macro_f1(pred: np.ndarray, target: np.ndarray) -> float:
    tp = (pred & target).sum(0)
    fp = (pred & ~target).sum(0)
    fn = (~pred & target).sum(0)
    d = 2 * tp + fp + fn
    return float(np.where(d > 0, 2 * tp / np.maximum(d, 1), 0.0).mean())


def _score(run: Path, post_ids: list[str]) -> RunScores:
    import yaml

    from cea.config import CeaConfig
    from cea.data.criteria import load_criteria
    from cea.data.examples import build_post_examples
    from cea.data.readers import ensure_usable, load_dataset
    from cea.evaluate.predictor import load_run_model, score_posts

    lm = load_run_model(run)
    if lm.pair:
        raise UsageError(f"{run}: --compare handles post-level runs only")
    cfg = CeaConfig.model_validate(
        yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    )
    result = load_dataset(
        cfg.data.format, cfg.data.path, tuple(load_criteria(cfg.data.criteria_file))
    )
    ensure_usable(result, strict=False)
    by_id = {e.post_id: e for e in build_post_examples(result.dataset, lm.labels)}
    exs = [by_id[p] for p in post_ids]
    probs = score_posts(lm, [e.text for e in exs])
    return RunScores(run, probs >= lm.thresholds, np.array([e.labels for e in exs]) >= 0.5)


def _test_posts(run: Path) -> tuple[set[str], list[str], str]:
    split = json.loads((run / "split.json").read_text(encoding="utf-8"))
    meta = json.loads((run / "cea_meta.json").read_text(encoding="utf-8"))
    return set(split["groups"].get("test", [])), list(meta["labels"]), str(split["data_hash"])


def compare_groups(
    a: list[Path], b: list[Path], *, n_boot: int = 2000, seed: int = 13
) -> dict[str, Any]:
    info = [_test_posts(r) for r in a + b]
    if len({tuple(i[1]) for i in info}) != 1 or len({i[2] for i in info}) != 1:
        raise UsageError("runs to compare must share labels and data (data hash)")
    common = sorted(set.intersection(*(i[0] for i in info)))
    if len(common) < 5:
        raise DataError(
            f"the runs share only {len(common)} test posts",
            hint="train the runs with one saved split (data.split_file) so they are scored on the same posts",
        )
    sa = [_score(r, common) for r in a]
    sb = [_score(r, common) for r in b]
    full_a = [_macro_f1(s.pred, s.target) for s in sa]
    full_b = [_macro_f1(s.pred, s.target) for s in sb]
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    n = len(common)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        ma = np.mean([_macro_f1(s.pred[idx], s.target[idx]) for s in sa])
        mb = np.mean([_macro_f1(s.pred[idx], s.target[idx]) for s in sb])
        diffs[i] = mb - ma
    diff = float(np.mean(full_b) - np.mean(full_a))
    lo, hi = (float(x) for x in np.percentile(diffs, [2.5, 97.5]))
    if lo > 0:
        verdict = "B is better than A"
    elif hi < 0:
        verdict = "A is better than B"
    else:
        verdict = "no reliable difference (the interval includes 0)"
    sentence = (
        f"B − A macro-F1 = {diff:+.3f} [95% paired bootstrap over {n} test posts: {lo:+.3f}, {hi:+.3f}]; "
        f"{verdict}. Spread across seeds (sd of macro-F1): A {np.std(full_a):.3f} over {len(a)} runs, "
        f"B {np.std(full_b):.3f} over {len(b)} runs."
    )
    return {
        "a": {
            "runs": [str(r) for r in a],
            "macro_f1": full_a,
            "mean": float(np.mean(full_a)),
            "sd": float(np.std(full_a)),
        },
        "b": {
            "runs": [str(r) for r in b],
            "macro_f1": full_b,
            "mean": float(np.mean(full_b)),
            "sd": float(np.std(full_b)),
        },
        "posts": n,
        "difference": diff,
        "interval": [lo, hi],
        "n_boot": n_boot,
        "verdict": verdict,
        "sentence": sentence,
    }
