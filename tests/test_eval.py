"""`cea eval`: metrics equal an independent scikit-learn computation on the saved predictions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from cea.evaluate.metrics import bootstrap_intervals, expected_calibration_error
from cea.security.manifest import check_manifest


def _eval(cli, run: Path, *args: str) -> dict:
    res = cli("eval", str(run), "--json", "--n-boot", "200", *args)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_eval_metrics_match_sklearn_on_saved_predictions(cli, tracked_run: Path) -> None:
    out = _eval(cli, tracked_run, "--name", "sk")
    folder = Path(out["folder"])
    rows = [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]
    labels = list(out["thresholds"])
    y = np.array([[r["targets"][lab] for lab in labels] for r in rows]) >= 0.5
    p = np.array([[r["probs"][lab] for lab in labels] for r in rows])
    thr = np.array([out["thresholds"][lab] for lab in labels])
    pred = p >= thr
    m = out["metrics"]
    assert m["macro_f1"] == pytest.approx(
        f1_score(y, pred, average="macro", zero_division=0), abs=1e-5
    )
    assert m["micro_f1"] == pytest.approx(
        f1_score(y, pred, average="micro", zero_division=0), abs=1e-5
    )
    for i, lab in enumerate(labels):
        lm = m["per_label"][lab]
        assert lm["precision"] == pytest.approx(
            precision_score(y[:, i], pred[:, i], zero_division=0), abs=1e-5
        )
        assert lm["recall"] == pytest.approx(
            recall_score(y[:, i], pred[:, i], zero_division=0), abs=1e-5
        )
        assert lm["support"] == int(y[:, i].sum())
        if 0 < y[:, i].sum() < len(y):
            assert lm["auprc"] == pytest.approx(average_precision_score(y[:, i], p[:, i]), abs=1e-5)
            assert lm["auroc"] == pytest.approx(roc_auc_score(y[:, i], p[:, i]), abs=1e-5)
    lo, hi = out["intervals"]["macro_f1"]
    assert lo <= m["macro_f1"] <= hi
    assert 0.0 <= out["ece"] <= 1.0


def test_eval_reproduces_training_test_metrics_and_writes_its_own_folder(
    cli, tracked_run: Path
) -> None:
    out = _eval(cli, tracked_run, "--name", "again")
    meta = json.loads((tracked_run / "cea_meta.json").read_text())
    assert out["metrics"]["macro_f1"] == meta["metrics"]["test"]["macro_f1"]
    assert out["metrics"]["micro_f1"] == meta["metrics"]["test"]["micro_f1"]
    folder = Path(out["folder"])
    for png in ("confusion_matrices.png", "precision_recall.png", "reliability.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "report.md").read_text().startswith("# Evaluation")
    assert check_manifest(folder).ok
    assert check_manifest(tracked_run, exclude_dirs=("eval",)).ok  # training outputs untouched
    assert "logged to MLflow run" in out["tracking"]
    from mlflow.tracking import MlflowClient

    run_id = json.loads((tracked_run / "tracking.json").read_text())["run_id"]
    client = MlflowClient(json.loads((tracked_run / "tracking.json").read_text())["uri"])
    assert client.get_run(run_id).data.metrics["eval/again/macro_f1"] == out["metrics"]["macro_f1"]
    assert {a.path for a in client.list_artifacts(run_id, "eval/again")} >= {
        "eval/again/metrics.json"
    }


def test_predictions_file_holds_no_text(cli, tracked_run: Path) -> None:
    from cea.data.criteria import DSM5_LABELS
    from cea.data.readers import read_redsm5, sample_data_path

    out = _eval(cli, tracked_run, "--name", "notext", "--split", "validation", "--no-track")
    blob = (Path(out["folder"]) / "predictions.jsonl").read_text()
    posts = read_redsm5(sample_data_path(), DSM5_LABELS).dataset.posts
    assert not any(p.text[:40] in blob for p in posts)


def test_eval_refuses_existing_name_and_tampered_runs(
    cli, tracked_run: Path, tmp_path: Path
) -> None:
    _eval(cli, tracked_run, "--name", "dup", "--no-track")
    assert cli("eval", str(tracked_run), "--name", "dup", "--no-track").exit_code == 2
    assert cli("eval", str(tracked_run), "--name", "../x", "--no-track").exit_code == 2
    copy = tmp_path / "run"
    shutil.copytree(tracked_run, copy)
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    assert cli("eval", str(copy), "--no-track").exit_code == 8


def test_bootstrap_and_ece_units() -> None:
    crit = np.tile(np.arange(2), 50)
    target = np.tile([1.0, 0.0], 50)
    prob = np.where(target > 0, 0.9, 0.1)
    groups = np.repeat(np.arange(50), 2)
    ci = bootstrap_intervals(crit, target, prob, groups, np.array([0.5, 0.5]), ("A", "B"), 200, 0)
    assert ci["micro_f1"] == [1.0, 1.0]
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    assert expected_calibration_error(np.array([0.0, 0.0]), np.array([0.9, 0.9])) == pytest.approx(
        0.9
    )
