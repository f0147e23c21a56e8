"""The default recipe on data with evidence annotations (#26): one multi-label sentence model,
trained on a new draw of negatives each epoch with balanced class weights, calibrated, its
checkpoint averaged; posts scored by pooling its sentences. References are hand computations
and scikit-learn, not cea's earlier output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from cea.config import load_config
from cea.data.prepare import prepare_data
from cea.train.run import run_training

RECIPE = [
    "task.level=auto", "task.encoding=multilabel", "task.negatives=all",
    "train.class_weighting=balanced", "train.negative_sampling.enabled=true",
    "train.calibration=platt", "train.early_stopping.average=2",
]  # fmt: skip


# ---- task.level: auto --------------------------------------------------------------------


def test_auto_level_is_sentence_with_evidence_annotations_and_post_without(
    tmp_path: Path,
) -> None:
    with_evidence = prepare_data(load_config("tiny", ["task.level=auto"]))
    assert with_evidence.config.task.level == "sentence"
    assert with_evidence.examples["train"][0].sentence_id is not None  # one per sentence
    generic = tmp_path / "posts.jsonl"
    rows = [
        {
            "id": f"p{i}",
            "text": f"post number {i} says little",
            "labels": ["FATIGUE"] if i % 2 else [],
        }
        for i in range(40)
    ]
    generic.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    without = prepare_data(load_config("tiny", ["task.level=auto", f"data.path={generic}"]))
    assert without.config.task.level == "post"
    assert without.examples["train"][0].sentence_id is None


def test_an_unresolved_level_is_refused_where_a_level_is_needed() -> None:
    from cea.errors import ConfigError

    with pytest.raises(ConfigError, match="auto"):
        _ = load_config("tiny", ["task.level=auto"]).task.unit


# ---- negative sampling ------------------------------------------------------------------


def _sampler(epoch: int, n_neg: int = 6, n_hard: int = 2):
    from cea.model.features import SampledBatchSampler

    s = SampledBatchSampler(
        [5] * 20, 4, seed=3, positives=[0, 1, 2], negatives=list(range(3, 20)),
        n_negatives=n_neg, n_hard=n_hard,
    )  # fmt: skip
    s.set_epoch(epoch)
    return s


def test_each_epoch_draws_every_positive_and_a_new_seeded_set_of_negatives() -> None:
    draws = []
    for epoch in range(4):
        s = _sampler(epoch)
        rows = sorted(r for batch in s for r in batch)
        assert len(rows) == len(set(rows)) == 3 + 6
        assert len(s) == math.ceil(9 / 4)
        assert {0, 1, 2} <= set(rows)
        negatives = set(rows) - {0, 1, 2}
        # n_hard of them from the 2 * n_hard hardest (rows 3..6), however the rest fall
        assert len(negatives & {3, 4, 5, 6}) >= 2
        draws.append(frozenset(negatives))
        assert rows == sorted(r for batch in _sampler(epoch) for r in batch)  # reproducible
    assert len(set(draws)) > 1  # a new draw each epoch


def test_negative_plan_orders_by_hardness_and_weights_count_what_an_epoch_holds() -> None:
    from cea.model.features import Features
    from cea.train.loop import negative_plan, pos_weights

    labels = [(1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, math.nan)]
    feats = Features(
        input_ids=[[1, 2]] * 6, token_type_ids=None, example_index=list(range(6)),
        labels=labels, crit_index=[-1] * 6, n_examples=6, truncated_examples=0,
        chunked_examples=0,
    )  # fmt: skip
    cfg = load_config(
        "tiny", ["task.level=sentence", "task.encoding=multilabel",
                 "train.negative_sampling.enabled=true",
                 "train.negative_sampling.per_positive=1", "train.negative_sampling.hard_share=0.5"],
    )  # fmt: skip
    plan = negative_plan(cfg, feats, np.array([0.0, 0.0, 0.1, 0.9, 0.5, 0.2]))
    assert plan.positives == [0, 1]
    assert plan.negatives == [3, 4, 5, 2]  # hardest first
    assert (plan.n_negatives, plan.n_hard) == (2, 1)
    w = pos_weights(feats, 2, False, math.inf, per_example=False, row_weight=plan.row_weight(6))
    # criterion 0: 1 positive; negatives: row 1 (drawn always) + 4 rows drawn at 2/4 = 3.0
    # criterion 1: 1 positive; negatives: row 0 + rows 2, 3, 4 at 2/4 (row 5 unknown) = 2.5
    assert w.tolist() == pytest.approx([3.0, 2.5])


# ---- pooling and thresholds -------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=30
    )
)
def test_pooling_is_the_max_or_the_noisy_or_of_each_posts_sentences(rows) -> None:
    from cea.evaluate.posts import pool_sentences

    ids = [f"p{r[0]}" for r in rows]
    prob = np.array([[r[1], r[2]] for r in rows])
    posts, pooled = pool_sentences(ids, prob, "max")
    assert posts == list(dict.fromkeys(ids))
    _, noisy = pool_sentences(ids, prob, "noisy_or")
    for i, pid in enumerate(posts):
        mine = prob[[j for j, x in enumerate(ids) if x == pid]]
        assert pooled[i] == pytest.approx(mine.max(axis=0))
        assert noisy[i] == pytest.approx(1 - np.prod(1 - mine, axis=0), abs=1e-9)
        assert np.all(noisy[i] >= pooled[i] - 1e-9)


def test_the_f1_half_point_is_a_fixed_point_near_the_best_f1_for_calibrated_scores() -> None:
    from cea.evaluate.metrics import half_f1_point

    rng = np.random.default_rng(0)
    p = rng.beta(0.3, 6.0, 20000)  # rare positives, calibrated by construction
    y = rng.random(20000) < p
    t = half_f1_point(p, y)
    assert t < 0.5
    f1_t = f1_score(y, p >= t)
    assert t == pytest.approx(f1_t / 2, abs=1e-3)
    best = max(f1_score(y, p >= c) for c in np.linspace(0.01, 0.99, 99))
    assert f1_t >= best - 0.01


def test_checkpoint_averaging_is_the_mean_of_the_kept_states() -> None:
    from cea.train.loop import _averaged

    model = torch.nn.Linear(3, 2)
    a = {k: v.clone() for k, v in model.state_dict().items()}
    b = {k: v.clone() + 1.0 for k, v in a.items()}
    avg = _averaged(model, [a, b]).state_dict()
    for k, value in a.items():
        assert torch.allclose(avg[k], value + 0.5)
    assert torch.allclose(model.state_dict()["weight"], a["weight"])  # the model is untouched


# ---- one model, both tasks, end to end (tiny) -------------------------------------------


@pytest.fixture(scope="module")
def runs(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two post-level and two default-recipe sentence runs on one saved split."""
    from cea.cli import main

    root = tmp_path_factory.mktemp("sent-default")
    split = root / "split.json"
    with pytest.raises(SystemExit):
        main(["data", "split", "sample", "-o", str(split), "-q"])
    for seed in (1, 2):
        common = [
            f"model.backbone={tiny_backbone}", f"output.runs_dir={root}", f"seed={seed}",
            f"data.split_file={split}", "train.epochs=2", "tracking.enabled=false",
        ]  # fmt: skip
        run_training(load_config("tiny", [*common, f"output.run_name=post-{seed}"]),
                     root / f"post-{seed}")  # fmt: skip
        run_training(load_config("tiny", [*common, *RECIPE, f"output.run_name=sent-{seed}"]),
                     root / f"sent-{seed}")  # fmt: skip
    return root


def test_the_run_records_how_it_trained_selected_calibrated_and_pooled(runs: Path) -> None:
    meta = json.loads((runs / "sent-1" / "cea_meta.json").read_text())
    assert meta["task"]["level"] == "sentence"  # auto, resolved and recorded
    ns = meta["negative_sampling"]
    assert ns["negatives_per_epoch"] == min(ns["negative_rows"], 4 * ns["positive_rows"])
    assert meta["selection"]["average_last"] == 2
    assert "mean of those epochs' weights" in meta["selection"]["rule"]
    assert all(h["averaged_epochs"] == min(h["epoch"], 2) for h in meta["history"])
    assert meta["calibration"]["method"] == "platt"
    posts = meta["posts"]
    assert posts["pooling"] == "max" and posts["calibration"]["method"] == "platt"
    assert set(posts["thresholds"]) == set(meta["labels"])
    assert {"validation", "test"} <= set(posts["metrics"])
    rules = [r for r in meta["threshold_rules"].values() if "default" in r]
    assert rules and all(r["default_rule"].startswith("F1/2") for r in rules)


def test_eval_reports_posts_and_evidence_and_both_baselines(cli, runs: Path) -> None:
    res = cli("eval", str(runs / "sent-1"), "--split", "test", "--json", "--n-boot", "100")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    meta = json.loads((runs / "sent-1" / "cea_meta.json").read_text())
    pf = rep["posts_from_sentences"]
    # eval's post numbers are the run's own, at the post thresholds chosen in training
    assert pf["thresholds"] == meta["posts"]["thresholds"]
    assert pf["metrics"]["macro_f1"] == pytest.approx(meta["posts"]["metrics"]["test"]["macro_f1"])
    assert "3" in rep["evidence"]["recall_at_k"]
    base = rep["baseline"]
    assert {"post", "sentence"} <= set(base) and {"post", "sentence"} <= set(
        base["verdict"]["levels"]
    )
    # the post macro-F1 again, independently: max of the predictions file's (calibrated)
    # sentence probabilities, the post calibration by hand, scikit-learn's F1 at the thresholds
    from cea.data.readers import load_dataset

    preds = [
        json.loads(x)
        for x in (Path(rep["folder"]) / "predictions.jsonl").read_text().split("\n")
        if x
    ]
    by_post: dict[str, dict[str, float]] = {}
    for row in preds:
        post = by_post.setdefault(row["post_id"], {})
        for lab, p in row["probs"].items():
            post[lab] = max(post.get(lab, 0.0), p)
    assert len(by_post) == pf["posts"]
    ds = load_dataset("redsm5", "sample", tuple(meta["labels"])).dataset
    truth = {p.post_id: p.labels for p in ds.posts}
    per = meta["posts"]["calibration"]["per_label"]
    f1s = []
    for lab in meta["labels"]:
        a, b = per[lab]["a"], per[lab]["b"]
        ys, ds_ = [], []
        for pid, probs in by_post.items():
            z = math.log(max(probs[lab], 1e-12)) - math.log(max(1 - probs[lab], 1e-12))
            p_cal = 1 / (1 + math.exp(-(a * z + b)))
            ys.append(lab in truth[pid])
            ds_.append(p_cal >= meta["posts"]["thresholds"][lab])
        if any(ys):
            f1s.append(f1_score(ys, ds_, zero_division=0.0))
    assert pf["metrics"]["macro_f1"] == pytest.approx(float(np.mean(f1s)), abs=2e-3)


def test_the_verdict_after_training_is_the_one_eval_gives(cli, runs: Path) -> None:
    """Training records the model's intervals on its final split with eval's bootstrap (same
    items, resamples and seed), so `cea train`'s baseline verdict cannot read "ahead" where
    `cea eval` later says "not clearly ahead" (it did when training had no model interval)."""
    from cea.cli.train import _train_baseline

    run = runs / "sent-2"
    meta = json.loads((run / "cea_meta.json").read_text())
    res = cli("eval", str(run), "--split", "test", "--json", "--name", "same-bootstrap")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    for ours, theirs in (
        (meta["intervals"]["test"], rep["intervals"]),
        (meta["posts"]["intervals"]["test"], rep["posts_from_sentences"]["intervals"]),
    ):
        assert ours["macro_f1"] == pytest.approx(theirs["macro_f1"], abs=1e-6)
        assert ours["micro_f1"] == pytest.approx(theirs["micro_f1"], abs=1e-6)
    assert _train_baseline(run, meta)["verdict"] == rep["baseline"]["verdict"]


def test_predict_gives_criteria_and_evidence_from_the_one_sentence_model(
    cli, runs: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in.jsonl"
    texts = ["I can't sleep at all. I wake at four every night.", "We went to the beach today."]
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.jsonl"
    res = cli("predict", str(runs / "sent-1"), "-i", str(src), "-o", str(out), "--json")
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    meta = json.loads((runs / "sent-1" / "cea_meta.json").read_text())
    th = meta["posts"]["thresholds"]
    for row in rows:
        assert set(row["probs"]) == set(meta["labels"])
        assert row["decisions"] == {lab: row["probs"][lab] >= th[lab] for lab in th}
        assert set(row["evidence"]) == set(meta["labels"])
        assert 1 <= len(row["evidence"]["SLEEP_ISSUES"]) <= 3


def test_compare_sets_post_runs_beside_sentence_runs_on_post_macro_f1(cli, runs: Path) -> None:
    res = cli("eval", "--compare", str(runs / "post-*"), str(runs / "sent-*"), "--json",
              "--n-boot", "200", "--out", str(runs / "cmp"))  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["metric"] == "macro_f1"
    lo, hi = out["interval"]
    assert lo <= out["difference"] <= hi
    for run, value in zip(out["b"]["runs"], out["b"]["scores"], strict=True):
        meta = json.loads((Path(run) / "cea_meta.json").read_text())
        assert value == pytest.approx(meta["posts"]["metrics"]["test"]["macro_f1"], abs=1e-6)
    ev = cli("eval", "--compare", str(runs / "sent-1"), str(runs / "sent-2"), "--json",
             "--single-seed-ok", "--n-boot", "200", "--out", str(runs / "cmp2"))  # fmt: skip
    assert ev.exit_code == 0 and json.loads(ev.stdout)["metric"] == "evidence_recall@3"
    bad = cli("eval", "--compare", str(runs / "post-1"), str(runs / "sent-1"),
              "--metric", "evidence_recall@3", "--single-seed-ok")  # fmt: skip
    assert bad.exit_code == 2 and "no evidence" in bad.stderr


def test_the_registered_loader_answers_for_posts_with_a_sentence_model(runs: Path) -> None:
    from cea.api import predict
    from cea.evaluate.predictor import load_run_model
    from cea.tracking.pyfunc_model import CeaCriteriaModel

    texts = ["I can't sleep at all. I wake at four every night.", "We went to the beach."]
    loader = CeaCriteriaModel()
    loader.lm = load_run_model(runs / "sent-2", device="cpu")
    frame = loader.predict(None, texts)
    mine = predict(runs / "sent-2", texts, device="cpu")
    for i, pred in enumerate(mine):
        for lab, p in pred.probs.items():
            assert float(frame[lab][i]) == pytest.approx(p, abs=1e-6)
