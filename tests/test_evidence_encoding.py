"""Evidence with a multi-label sentence head (task.encoding: multilabel) against pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cea.config import load_config
from cea.data.criteria import DSM5_LABELS
from cea.data.examples import build_sentence_examples
from cea.data.readers import read_redsm5, sample_data_path
from cea.train.run import run_training


@pytest.mark.parametrize("negatives", ["annotated", "all"])
def test_multilabel_examples_are_the_pairs_regrouped(negatives: str) -> None:
    ds = read_redsm5(sample_data_path(), DSM5_LABELS).dataset
    pairs = build_sentence_examples(ds, DSM5_LABELS, negatives)  # type: ignore[arg-type]
    multi = build_sentence_examples(ds, DSM5_LABELS, negatives, encoding="multilabel")  # type: ignore[arg-type]
    by_key = {(e.post_id, e.sentence_id): e for e in multi}
    assert len(by_key) == len(multi)  # one example per sentence
    assert len(multi) == len({(e.post_id, e.sentence_id) for e in pairs})
    for p in pairs:  # every known pair target is the same in the multi-label example
        assert (
            by_key[(p.post_id, p.sentence_id)].labels[DSM5_LABELS.index(p.criterion or "")]
            == p.labels[0]
        )
    known = sum(1 for e in multi for y in e.labels if not math.isnan(y))
    assert known == len(pairs)  # and nothing else is known (annotated: the rest is masked)
    if negatives == "all":
        assert len(pairs) == len(multi) * len(DSM5_LABELS)


def test_multilabel_evidence_model_trains_evaluates_and_predicts(
    cli, tiny_backbone: Path, small_sample: Path, tmp_path: Path
) -> None:
    runs = {}
    for enc in ("multilabel", "pair"):
        cfg = load_config("tiny", [
            f"model.backbone={tiny_backbone}", f"data.path={small_sample}",
            f"output.runs_dir={tmp_path}", f"output.run_name={enc}", "train.epochs=1",
            "task.level=sentence", "task.negatives=all", f"task.encoding={enc}",
        ])  # fmt: skip
        runs[enc] = run_training(cfg, tmp_path / enc).meta
    ml, pr = runs["multilabel"], runs["pair"]
    assert ml["pair_encoding"] is False and pr["pair_encoding"] is True
    n = len(ml["labels"])
    assert pr["examples"]["train"] == n * ml["examples"]["train"]  # a tenth of the inputs
    res = cli("eval", str(tmp_path / "multilabel"), "--json", "--n-boot", "100", "--no-track")
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    ev = report["evidence"]
    assert ev["pairs_with_evidence"] > 0 and 0 <= ev["recall_at_k"]["3"] <= 1
    _check_posts_from_sentences(report, tmp_path / "multilabel", small_sample)
    post = cli("train", "--config", "tiny", "--backbone", str(tiny_backbone), "--data",
               str(small_sample), "--no-track", "-q", "--run-name", "post", "train.epochs=1")  # fmt: skip
    assert post.exit_code == 0, post.stderr
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        json.dumps({"id": "a", "text": "I cannot sleep. I feel so sad. The bus was late."}) + "\n"
    )
    out = tmp_path / "out.jsonl"
    res = cli("predict", "runs/post", "-i", str(inp), "-o", str(out),
              "--evidence-model", str(tmp_path / "multilabel"), "--top-k", "2")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    evidence = json.loads(out.read_text())["evidence"]
    assert set(evidence) == set(ml["labels"]) and all(len(v) == 2 for v in evidence.values())
    from cea.evaluate.predictor import load_run_model, score_sentences

    lm = load_run_model(tmp_path / "multilabel", device="cpu")
    probs = score_sentences(lm, ["I cannot sleep.", "I feel so sad.", "The bus was late."])
    for j, lab in enumerate(lm.labels):  # the top sentence is the most probable one
        assert evidence[lab][0]["prob"] == pytest.approx(float(probs[:, j].max()), abs=1e-5)
    # the multi-label sentence model alone answers both: criteria pooled from its sentences
    both = cli("predict", str(tmp_path / "multilabel"), "-i", str(inp), "-o", str(tmp_path / "x"))
    assert both.exit_code == 0, both.stderr
    row = json.loads((tmp_path / "x").read_text())
    assert ml["posts"]["calibration"] is None  # (the tiny config does not calibrate)
    for lab in lm.labels:  # max pooling: the post's probability is its top sentence's
        assert row["probs"][lab] == pytest.approx(row["evidence"][lab][0]["prob"], abs=1e-6)
        assert row["decisions"][lab] == (row["probs"][lab] >= ml["posts"]["thresholds"][lab])
    # a pair model gives no post answer on its own
    wrong = cli("predict", str(tmp_path / "pair"), "-i", str(inp), "-o", str(tmp_path / "y"))
    assert wrong.exit_code == 2 and "sentence-level" in wrong.stderr


def _check_posts_from_sentences(report: dict, run: Path, data: Path) -> None:
    """The one sentence model's post-level criteria (a post's probability: the max of its
    sentences'), recomputed with scikit-learn from the eval's own predictions file."""
    import numpy as np
    from sklearn.metrics import f1_score

    from cea.data.criteria import load_criteria
    from cea.data.examples import build_post_examples
    from cea.data.readers import load_dataset

    pf = report["posts_from_sentences"]
    labels = list(report["thresholds"])
    thr = np.array([report["thresholds"][lab] for lab in labels])
    best: dict[str, np.ndarray] = {}
    folder = run / "eval" / report["name"]
    for line in (folder / "predictions.jsonl").read_text().splitlines():
        row = json.loads(line)
        p = np.array([row["probs"][lab] for lab in labels])
        best[row["post_id"]] = np.maximum(best.get(row["post_id"], p), p)
    ds = load_dataset("redsm5", str(data), tuple(load_criteria(None))).dataset
    posts = [p for p in build_post_examples(ds, tuple(labels)) if p.post_id in best]
    assert pf["posts"] == len(posts) == report["posts"]
    y = np.array([p.labels for p in posts])
    pred = np.array([best[p.post_id] >= thr for p in posts]).astype(int)
    known_pos = [j for j in range(len(labels)) if np.nansum(y[:, j]) > 0]
    f1s = []
    for j in known_pos:
        keep = ~np.isnan(y[:, j])
        f1s.append(f1_score(y[keep, j].astype(int), pred[keep, j], zero_division=0))
    assert pf["metrics"]["macro_f1"] == pytest.approx(float(np.mean(f1s)), abs=1e-6)
    lo, hi = pf["intervals"]["macro_f1"]
    assert lo <= pf["metrics"]["macro_f1"] <= hi
