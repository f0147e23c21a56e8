"""Calibration per criterion (temperature or Platt), fitted on validation before the
threshold rule, recorded in cea_meta.json and applied by eval and predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cea.evaluate.calibration import apply_calibration, calibrate, fit_calibration, logit
from cea.model.inference import Predictions


def _items(rng: np.random.Generator, n: int, truth) -> tuple[np.ndarray, np.ndarray]:
    z = rng.normal(0.0, 3.0, n)
    y = (rng.random(n) < truth(z)).astype(float)
    return z, y


def _sig(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def test_temperature_and_platt_recover_the_map_they_were_drawn_from() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    z0, y0 = _items(rng, n, lambda z: _sig(z / 3.0))  # over-confident: T = 3
    z1, y1 = _items(rng, n, lambda z: _sig(z - 2.0))  # shifted, as pos_weight does: b = -2
    z2, y2 = _items(rng, 40, _sig)
    y2[:] = 0.0
    y2[:3] = 1.0  # three positives: too few for a map
    crit = np.repeat(np.arange(3), [n, n, 40])
    target = np.concatenate([y0, y1, y2])
    prob = _sig(np.concatenate([z0, z1, z2]))
    labels = ("A", "B", "C")
    temp = fit_calibration(crit, target, prob, labels, "temperature")["per_label"]
    assert temp["A"]["temperature"] == pytest.approx(3.0, rel=0.15)
    assert temp["A"]["nll_after"] < temp["A"]["nll_before"]
    assert temp["C"] == {**temp["C"], "a": 1.0, "b": 0.0, "fitted": False}
    platt = fit_calibration(crit, target, prob, labels, "platt")
    assert platt["per_label"]["B"]["a"] == pytest.approx(1.0, abs=0.15)
    assert platt["per_label"]["B"]["b"] == pytest.approx(-2.0, abs=0.3)
    # the map keeps each criterion's order of items, and 0.5 moves only with platt
    cal = calibrate(prob, crit, platt, labels)
    for c in range(2):
        m = crit == c
        assert np.array_equal(np.argsort(cal[m], kind="stable"), np.argsort(prob[m], kind="stable"))
    at_half = calibrate(np.array([0.5, 0.5]), np.array([0, 1]), platt, labels)
    assert at_half[1] < 0.2
    t_half = calibrate(np.array([0.5]), np.array([0]), fit_calibration(
        crit, target, prob, labels, "temperature"), labels)  # fmt: skip
    assert t_half[0] == pytest.approx(0.5)
    none = fit_calibration(crit, target, prob, labels, "none")
    assert np.array_equal(calibrate(prob, crit, none, labels), prob)


def test_apply_calibration_to_multilabel_and_pair_predictions() -> None:
    labels = ("A", "B")
    cal = {"method": "platt", "per_label": {"A": {"a": 2.0, "b": 0.5}, "B": {"a": 1.0, "b": 0.0}}}
    ex = np.array([[0.2, 0.7], [0.9, 0.4]])
    multi = Predictions(np.tile([0, 1], 2), np.zeros(4), ex.reshape(-1), ex, 0.1)
    out = apply_calibration(multi, cal, labels)
    expect_a = _sig(2.0 * logit(ex[:, 0]) + 0.5)
    assert np.allclose(out.example_prob[:, 0], expect_a)
    assert np.allclose(out.example_prob[:, 1], ex[:, 1])
    assert np.allclose(out.prob, out.example_prob.reshape(-1)) and out.loss == 0.1
    pair = Predictions(
        np.array([1, 0]), np.zeros(2), np.array([0.3, 0.3]), np.array([[0.3], [0.3]]), 0.0
    )
    out = apply_calibration(pair, cal, labels)
    assert out.prob[0] == pytest.approx(0.3) and out.prob[1] == pytest.approx(
        _sig(2 * logit(np.array([0.3]))[0] + 0.5)
    )
    assert np.allclose(out.example_prob[:, 0], out.prob)


def test_a_calibrated_run_records_its_map_and_eval_and_predict_apply_it(
    cli, tiny_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = cli("train", "--config", "tiny", "--backbone", str(tiny_backbone), "--run-name", "c",
              "--no-track", "-q", "--no-baseline", "train.epochs=1",
              "train.calibration=platt")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    run = tmp_path / "runs" / "c"
    meta = json.loads((run / "cea_meta.json").read_text())
    cal = meta["calibration"]
    assert cal["method"] == "platt" and set(cal["per_label"]) == set(meta["labels"])
    assert any(v.get("fitted") for v in cal["per_label"].values())
    res = cli("eval", str(run), "--no-track", "--name", "e", "--no-baseline", "--json")
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    # eval applies the recorded map before the stored thresholds: the training's numbers
    assert report["metrics"]["macro_f1"] == meta["metrics"]["test"]["macro_f1"]
    assert report["metrics"]["micro_f1"] == meta["metrics"]["test"]["micro_f1"]
    # predict gives the probabilities eval scored
    from cea import api
    from cea.data.readers import load_dataset

    rows = [
        json.loads(x) for x in (run / "eval" / "e" / "predictions.jsonl").read_text().splitlines()
    ]
    rows = rows[:3]
    texts = {
        p.post_id: p.text
        for p in load_dataset("redsm5", "sample", tuple(meta["labels"])).dataset.posts
    }
    got = api.predict(run, [texts[r["post_id"]] for r in rows])
    for r, g in zip(rows, got, strict=True):
        for lab in meta["labels"]:
            assert g.probs[lab] == pytest.approx(r["probs"][lab], abs=1e-6)
