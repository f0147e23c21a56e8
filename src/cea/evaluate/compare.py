"""`cea eval --compare A B`: did B (e.g. with augmentation) beat A, beyond the noise?

A and B are runs or groups of runs (one per seed). Every run is scored on the test groups that
all runs hold out (posts, or the data's `group` ids), at its own thresholds, with the one
macro-F1 of `cea.evaluate.metrics`. The interval of the difference of the groups' mean
macro-F1 is a two-level bootstrap: each resample draws runs within each group (seed variance)
and test groups (data variance), so one lucky seed cannot read as "B beats A". With fewer than
two runs per group there is no seed variance to resample: the difference is reported with
"one seed: no verdict" unless the caller accepts a single seed. The post-only interval (every
run held fixed) is reported next to it, to show what the seeds add.

Sentence-level runs (evidence: pairs or the multi-label head) are compared on evidence
recall@3 instead: every sentence of every test post is ranked for every criterion (the same
candidates for either encoding), and recall@3 is the mean over (post, criterion) with
evidence of the share of its gold sentences among its 3 most probable — the same resampling.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cea.errors import DataError, MissingResourceError, UsageError
from cea.evaluate.metrics import (
    evidence_found,
    f1_from_counts,
    label_counts,
    percentile_interval,
)
from cea.run_folder import META_FILE, SPLIT_FILE

EVIDENCE_K = 3  # recall@3: what a reader checks first


def expand_group(spec: str) -> list[Path]:
    """`runs/a,runs/b` or a glob `runs/aug-*` -> run folders (sorted)."""
    out: list[Path] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        matches = sorted(glob.glob(part))  # noqa: PTH207 - patterns may be absolute if any(ch in part for ch in "*?[") else [part]
        out += [Path(m) for m in matches]
    runs = [p for p in out if (p / META_FILE).is_file()]
    if not runs:
        raise MissingResourceError(f"no finished run matches {spec!r}")
    return runs


@dataclass(frozen=True)
class RunInfo:
    run_dir: Path
    labels: tuple[str, ...]
    test_groups: frozenset[str]
    data_hash: str
    level: str  # "post" or "sentence"
    pair: bool = False  # sentence level, (criterion, sentence) pair encoding: no post answer


def _run_info(run: Path) -> RunInfo:
    try:
        split = json.loads((run / SPLIT_FILE).read_text(encoding="utf-8"))
        meta = json.loads((run / META_FILE).read_text(encoding="utf-8"))
        return RunInfo(
            run,
            tuple(meta["labels"]),
            frozenset(split["groups"].get("test", [])),
            str(split["data_hash"]),
            "sentence" if (meta.get("task") or {}).get("level") == "sentence" else "post",
            bool(meta.get("pair_encoding", False)),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{run}: unreadable split.json or cea_meta.json ({exc})") from exc


def _load_data(run: Path, expected_hash: str, cache: dict[str, Any]) -> Any:
    """The run's dataset, checked against the hash its split recorded; a dataset that several
    runs name (same format, path, criteria and aliases) is read once."""
    from cea.data.criteria import load_criteria
    from cea.data.readers import ensure_usable, load_dataset
    from cea.run_folder import saved_config

    cfg = saved_config(run)
    d = cfg.data
    key = json.dumps([d.format, d.path, d.criteria_file, d.label_aliases], sort_keys=True)
    if key not in cache:
        result = load_dataset(
            d.format, d.path, tuple(load_criteria(d.criteria_file)), aliases=d.label_aliases
        )
        ensure_usable(result, strict=False)
        cache[key] = result.dataset
    ds = cache[key]
    if ds.content_hash() != expected_hash:
        raise DataError(
            f"{run}: its data ({d.path}) changed since training "
            f"(split hash {expected_hash[:12]}…, data now {ds.content_hash()[:12]}…)",
            hint="compare runs on the data they were trained on",
        )
    return ds


def _group_counts(
    run: Path,
    ds: Any,
    labels: tuple[str, ...],
    groups: list[str],
    device: str,
    batch_size: int,
    level: str,
) -> tuple[np.ndarray, float, int, bool]:
    """(the run's statistics per test group, its value on all of them, posts, whether groups
    hold several posts). `level` "post" (the criteria of posts): tp/fp/fn per label at the
    run's post thresholds (G, 3, L), macro-F1 — a multi-label sentence run answers through
    its pooled sentences. "sentence": (sum of recall@3, (post, criterion) keys with
    evidence) (G, 2)."""
    from cea.data.examples import build_post_examples
    from cea.evaluate.predictor import load_run_model, post_probabilities

    lm = load_run_model(run, device=device, batch_size=batch_size)
    if level == "sentence":
        return _evidence_counts(lm, ds, labels, groups)
    exs = build_post_examples(ds, labels, set(groups))
    texts = [e.text for e in exs]
    probs, thresholds = post_probabilities(lm, texts)  # (compare_groups refuses pair runs)
    target = np.array([e.labels for e in exs], dtype=np.float64)
    pred = probs >= thresholds
    index = {g: i for i, g in enumerate(groups)}
    counts = np.zeros((len(groups), 3, len(labels)))
    n_labels = len(labels)
    crit = np.arange(n_labels)
    for row, e in enumerate(exs):
        keep = ~np.isnan(target[row])
        y = target[row][keep] >= 0.5
        counts[index[e.group_id]] += np.stack(
            label_counts(crit[keep], y, pred[row][keep], n_labels)[:3]
        )
    macro = float(f1_from_counts(*counts.sum(0))[0])
    return counts, macro, len(exs), any(e.group_id != e.post_id for e in exs)


def _evidence_counts(
    lm: Any, ds: Any, labels: tuple[str, ...], groups: list[str]
) -> tuple[np.ndarray, float, int, bool]:
    from cea.data.examples import build_examples
    from cea.evaluate.predictor import predict_examples

    # every sentence of every test post, for every criterion: the same candidates whichever
    # encoding (and `negatives`) the run was trained with
    exs = build_examples(
        ds, level="sentence", labels=labels, negatives="all", groups=set(groups),
        encoding="pair" if lm.pair else "multilabel",
    )  # fmt: skip
    if not exs:
        raise DataError("no sentences in the shared test posts")
    prob = predict_examples(lm, exs).example_prob
    if lm.pair:
        keys = [(e.post_id, e.criterion or "") for e in exs]
        target = np.array([e.labels[0] for e in exs], dtype=np.float64)
        scores = prob[:, 0]
    else:
        keys = [(e.post_id, lab) for e in exs for lab in labels]
        target = np.array([y for e in exs for y in e.labels], dtype=np.float64)
        scores = prob.reshape(-1)
    group_of = {e.post_id: e.group_id for e in exs}
    index = {g: i for i, g in enumerate(groups)}
    counts = np.zeros((len(groups), 2))
    for (post_id, _crit), found in evidence_found(keys, target, scores, (EVIDENCE_K,)):
        n_found, n_gold = found[EVIDENCE_K]
        counts[index[group_of[post_id]]] += (n_found / n_gold, 1.0)
    if not counts[:, 1].any():
        raise DataError("no evidence sentence in the shared test posts: nothing to rank")
    value = float(counts[:, 0].sum() / counts[:, 1].sum())
    posts = len(group_of)
    return counts, value, posts, any(g != p for p, g in group_of.items())


def _macro_per_resample(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 of one run in each resample of test groups (weights: resamples x groups)."""
    tp, fp, fn = (weights @ counts[:, k, :] for k in range(3))
    return np.asarray(f1_from_counts(tp, fp, fn)[0])


def _recall_per_resample(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean recall@k of one run in each resample (0 where a resample drew no evidence)."""
    total, n = weights @ counts[:, 0], weights @ counts[:, 1]
    return np.asarray(np.divide(total, n, out=np.zeros_like(total), where=n > 0))


def bootstrap_difference(
    counts: np.ndarray, na: int, *, n_boot: int, seed: int, metric: str = "macro_f1"
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap distributions of mean macro-F1(B) − mean macro-F1(A) (or of evidence
    recall@3, `metric="evidence_recall@3"`, from `_evidence_counts`' statistics).

    `counts` (runs, groups, 3, labels) holds each run's tp/fp/fn per test group; the first `na`
    runs are A. Two-level: every resample draws test groups, and runs within A and within B
    (with replacement), so the spread between seeds widens the interval. Posts only: the same
    test groups, every run kept (what a single split's bootstrap sees)."""
    runs, g = counts.shape[:2]
    nb = runs - na
    rng = np.random.default_rng(seed)
    weights = np.stack(
        [np.bincount(rng.integers(0, g, g), minlength=g) for _ in range(n_boot)]
    ).astype(float)
    stat = _macro_per_resample if metric == "macro_f1" else _recall_per_resample
    macro = np.stack([stat(counts[r], weights) for r in range(runs)])
    cols = np.arange(n_boot)[:, None]
    pick_a = rng.integers(0, na, (n_boot, na))
    pick_b = na + rng.integers(0, nb, (n_boot, nb))
    two_level = macro[pick_b, cols].mean(1) - macro[pick_a, cols].mean(1)
    posts_only = macro[na:].mean(0) - macro[:na].mean(0)
    return two_level, posts_only


def _verdict(lo: float, hi: float) -> str:
    if lo > 0:
        return "B is better than A"
    if hi < 0:
        return "A is better than B"
    return "no reliable difference (the interval includes 0)"


def compare_groups(
    a: list[Path],
    b: list[Path],
    *,
    n_boot: int = 2000,
    seed: int = 13,
    single_seed_ok: bool = False,
    device: str = "auto",
    batch_size: int = 64,
    metric: str = "auto",
) -> dict[str, Any]:
    """The difference B − A of mean test macro-F1 of posts or of evidence recall@3, with a
    two-level bootstrap interval. `metric` "auto": macro-F1 when any run is post-level (a
    multi-label sentence run answers for posts by pooling its sentences), evidence recall@3
    when all are sentence-level; "macro_f1" or "evidence_recall@3" to choose."""
    info = [_run_info(r) for r in a + b]
    if len({i.labels for i in info}) != 1 or len({i.data_hash for i in info}) != 1:
        raise UsageError("runs to compare must share labels and data (data hash)")
    if metric not in ("auto", "macro_f1", f"evidence_recall@{EVIDENCE_K}"):
        raise UsageError(f"--metric must be macro_f1 or evidence_recall@{EVIDENCE_K}")
    levels = {i.level for i in info}
    if metric == "auto":
        metric = "macro_f1" if "post" in levels else f"evidence_recall@{EVIDENCE_K}"
    if metric == "macro_f1" and any(i.pair for i in info):
        raise UsageError(
            "a (criterion, sentence) pair run gives no answer for posts: compare runs of one "
            "level (post-level runs, with multi-label sentence runs, on macro-F1; "
            "sentence-level runs on evidence recall@3)"
        )
    if metric != "macro_f1" and "post" in levels:
        raise UsageError(
            "a post-level run has no evidence to rank: compare runs of one level on evidence "
            "recall@3, or give --metric macro_f1"
        )
    labels = info[0].labels
    common = sorted(frozenset.intersection(*(i.test_groups for i in info)))
    if len(common) < 5:
        raise DataError(
            f"the runs share only {len(common)} test groups",
            hint="train the runs with one saved split (data.split_file) so they are scored on the same posts",
        )
    datasets: dict[str, Any] = {}
    per_run = []
    level = "post" if metric == "macro_f1" else "sentence"
    metric_name = "macro-F1" if metric == "macro_f1" else metric
    for i in info:  # every run's own data checked against its split's hash
        ds = _load_data(i.run_dir, i.data_hash, datasets)
        per_run.append(_group_counts(i.run_dir, ds, labels, common, device, batch_size, level))
    counts = np.stack([r[0] for r in per_run])  # (runs, groups, 3, labels)
    full = [r[1] for r in per_run]
    posts = per_run[0][2]
    na, nb = len(a), len(b)
    full_a, full_b = full[:na], full[na:]
    diff = float(np.mean(full_b) - np.mean(full_a))

    g = len(common)
    two_level, posts_only = bootstrap_difference(
        counts, na, n_boot=n_boot, seed=seed, metric=metric
    )
    (lo, hi), extended = percentile_interval(two_level, diff)
    (plo, phi), _ = percentile_interval(posts_only, diff)
    seeds = min(na, nb)
    unit = "test groups" if per_run[0][3] else "test posts"
    if seeds < 2 and not single_seed_ok:
        verdict = "one seed: no verdict"
        method = f"bootstrap over {g} {unit} only (one run per group carries no seed variance)"
    else:
        verdict = _verdict(lo, hi)
        method = (
            f"two-level bootstrap over {na}+{nb} seeds and {g} {unit}"
            if seeds >= 2
            else f"bootstrap over {g} {unit}, single seed accepted (--single-seed-ok)"
        )
    sentence = (
        f"B − A {metric_name} = {diff:+.3f} [95% {method}: {lo:+.3f}, {hi:+.3f}]; {verdict}. "
        f"A: {np.mean(full_a):.3f} (sd {np.std(full_a):.3f} over {na} seed{'s' * (na != 1)}), "
        f"B: {np.mean(full_b):.3f} (sd {np.std(full_b):.3f} over {nb} seed{'s' * (nb != 1)}); "
        f"posts-only interval {plo:+.3f}, {phi:+.3f}."
    )

    def side(runs: list[Path], values: list[float]) -> dict[str, Any]:
        return {
            "runs": [str(r) for r in runs],
            metric: values,
            "scores": values,
            "mean": float(np.mean(values)),
            "sd": float(np.std(values)),
            "seeds": len(runs),
        }

    return {
        "metric": metric,
        "a": side(a, full_a),
        "b": side(b, full_b),
        "labels": list(labels),
        "test_groups": g,
        "posts": posts,
        "difference": diff,
        "interval": [lo, hi],
        "interval_method": "two-level" if seeds >= 2 else "posts",
        "posts_only_interval": [plo, phi],
        "extended_to_estimate": extended,
        "n_boot": n_boot,
        "verdict": verdict,
        "sentence": sentence,
        "data_hash": info[0].data_hash,
    }


def write_comparison(result: dict[str, Any], folder: Path) -> list[str]:
    """`comparison.json` and `comparison.png` (per-seed points and the difference's interval),
    written together: a staging folder renamed into place."""
    import shutil

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cea.security.io import atomic_write_json

    if folder.exists():
        raise UsageError(f"{folder} exists; comparisons are not overwritten", hint="give --out")
    stage = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        atomic_write_json(stage / "comparison.json", result, sort_keys=False)
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), width_ratios=[1.3, 1])
        for x, key in ((0, "a"), (1, "b")):
            vals = result[key]["scores"]
            jitter = np.linspace(-0.08, 0.08, len(vals)) if len(vals) > 1 else [0.0]
            left.scatter(x + np.asarray(jitter), vals, zorder=3)
            left.hlines(result[key]["mean"], x - 0.2, x + 0.2, color="black")
        left.set_xticks([0, 1], ["A", "B"])
        left.set_ylabel(f"test {result['metric']} (one point per seed)")
        left.set_title("runs")
        d, (lo, hi), (plo, phi) = (
            result["difference"], result["interval"], result["posts_only_interval"],
        )  # fmt: skip
        right.errorbar([0], [d], yerr=[[d - lo], [hi - d]], fmt="o", capsize=6,
                       label=result["interval_method"])  # fmt: skip
        right.errorbar([1], [d], yerr=[[d - plo], [phi - d]], fmt="s", capsize=6, color="grey",
                       label="posts only")  # fmt: skip
        right.axhline(0, color="grey", lw=1, ls="--")
        right.set_xticks([0, 1], [result["interval_method"], "posts only"])
        right.set_xlim(-0.6, 1.6)
        right.set_title(f"B − A: {result['verdict']}", fontsize=8)
        fig.tight_layout()
        fig.savefig(stage / "comparison.png", dpi=110)
        plt.close(fig)
        stage.rename(folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return [str(folder / "comparison.json"), str(folder / "comparison.png")]
