"""The baseline in every report: TF-IDF + balanced logistic regression on the run's own train
split, scored on the evaluated items with cea's metrics, and the sentence when the model does
not beat it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cea.evaluate.baseline import verdict


def _train(cli, tiny: Path, name: str, *overrides: str) -> Path:
    res = cli("train", "--config", "tiny", "--backbone", str(tiny), "--run-name", name,
              "--no-track", "-q", "train.epochs=1", *overrides)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    return Path("runs") / name


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


def _independent(train_texts, y_train, test_texts, y_test):
    """macro/micro-F1 of TF-IDF + LogisticRegression(class_weight='balanced') at 0.5, written
    here with scikit-learn alone (labels without positives in the test items left out of the
    macro average, unknown targets (NaN) left out everywhere)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    x_train, x_test = vec.fit_transform(train_texts), vec.transform(test_texts)
    per, ys, ps = [], [], []
    for c in range(y_train.shape[1]):
        known = ~np.isnan(y_train[:, c])
        clf = LogisticRegression(class_weight="balanced", max_iter=1000)
        clf.fit(x_train[known], y_train[known, c] >= 0.5)
        pred = clf.predict_proba(x_test)[:, 1] >= 0.5
        keep = ~np.isnan(y_test[:, c])
        y = y_test[keep, c] >= 0.5
        ys.append(y)
        ps.append(pred[keep])
        if y.any():
            per.append(f1_score(y, pred[keep], zero_division=0.0))
    micro = f1_score(np.concatenate(ys), np.concatenate(ps), zero_division=0.0)
    return float(np.mean(per)), float(micro)


def _split_examples(run: Path, level: str):
    from cea.data.criteria import load_criteria
    from cea.data.examples import build_examples
    from cea.data.readers import load_dataset

    meta = json.loads((run / "cea_meta.json").read_text())
    split = json.loads((run / "split.json").read_text())["groups"]
    ds = load_dataset("redsm5", "sample", tuple(load_criteria(None))).dataset
    labels = tuple(meta["labels"])

    def ex(name: str):
        return build_examples(ds, level=level, labels=labels, negatives="annotated",
                              groups=set(split[name]), encoding="multilabel")  # fmt: skip

    out = []
    for name in ("train", "test"):
        e = ex(name)
        out += [[x.text for x in e], np.array([x.labels for x in e], dtype=float)]
    return out


def test_post_baseline_equals_scikit_learn_and_a_bad_model_is_told(
    cli, tiny_backbone: Path, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work)
    run = _train(cli, tiny_backbone, "bad")  # tiny, one epoch: far behind TF-IDF
    res = cli("eval", str(run), "--split", "test", "--no-track", "--name", "e", "--json")
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    base = report["baseline"]
    assert "sentence" not in base  # a post-level run: posts only
    macro, micro = _independent(*_split_examples(run, "post"))
    assert base["post"]["metrics"]["macro_f1"] == pytest.approx(macro, abs=1e-6)
    assert base["post"]["metrics"]["micro_f1"] == pytest.approx(micro, abs=1e-6)
    for key in ("macro_f1", "micro_f1"):
        lo, hi = base["post"]["intervals"][key]
        assert lo <= base["post"]["metrics"][key] <= hi
    assert base["seconds"] < 30
    sentence = base["verdict"]["sentence"]
    assert base["verdict"]["levels"]["post"]["status"] == "behind"
    assert sentence.startswith("The model does not beat the TF-IDF")
    assert sentence in (run / "eval" / "e" / "report.md").read_text()
    saved = json.loads((run / "eval" / "e" / "metrics.json").read_text())
    assert saved["baseline"]["post"] == base["post"]
    # the human output: the baseline's numbers and the sentence
    res = cli("eval", str(run), "--split", "test", "--no-track", "--name", "h")
    assert res.exit_code == 0, res.stderr
    assert "baseline (TF-IDF" in res.stdout and "does not beat" in " ".join(res.stdout.split())
    # --no-baseline: none of it
    res = cli("eval", str(run), "--split", "test", "--no-track", "--name", "n", "--no-baseline")
    assert res.exit_code == 0 and "baseline (" not in res.stdout
    assert "does not beat" not in res.stdout
    res = cli("eval", str(run), "--no-track", "--name", "nj", "--no-baseline", "--json")
    assert "baseline" not in json.loads(res.stdout)
    assert "Baseline" not in (run / "eval" / "n" / "report.md").read_text()


def test_train_final_report_has_the_baseline(
    cli, tiny_backbone: Path, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work)
    res = cli("train", "--config", "tiny", "--backbone", str(tiny_backbone), "--run-name",
              "t", "--no-track", "train.epochs=1", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["baseline"]["verdict"]["levels"]["post"]["status"] == "behind"
    res = cli("train", "--config", "tiny", "--backbone", str(tiny_backbone), "--run-name",
              "t2", "--no-track", "train.epochs=1", "--no-baseline", "--json")  # fmt: skip
    assert "baseline" not in json.loads(res.stdout)


def test_sentence_level_run_reports_the_sentence_baseline(
    cli, tiny_backbone: Path, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work)
    run = _train(cli, tiny_backbone, "sent", "task.level=sentence", "task.encoding=multilabel")
    res = cli("eval", str(run), "--no-track", "--name", "s", "--json")
    assert res.exit_code == 0, res.stderr
    base = json.loads(res.stdout)["baseline"]
    assert base["model_level"] == "sentence" and {"post", "sentence"} <= set(base)
    macro, micro = _independent(*_split_examples(run, "sentence"))
    assert base["sentence"]["metrics"]["macro_f1"] == pytest.approx(macro, abs=1e-6)
    assert base["sentence"]["metrics"]["micro_f1"] == pytest.approx(micro, abs=1e-6)
    assert "sentence" in base["verdict"]["levels"]


def _base(macro: float, ci: list[float]) -> dict:
    return {"post": {"metrics": {"macro_f1": macro}, "intervals": {"macro_f1": ci}}}


def test_verdict_rule() -> None:
    base = _base(0.5, [0.4, 0.6])
    behind = verdict({"post": ({"macro_f1": 0.45}, {"macro_f1": [0.35, 0.55]})}, base)
    assert behind["levels"]["post"]["status"] == "behind" and "(behind)" in behind["sentence"]
    close = verdict({"post": ({"macro_f1": 0.55}, {"macro_f1": [0.45, 0.65]})}, base)
    assert close["levels"]["post"]["status"] == "not clearly ahead"
    assert "intervals overlap" in close["sentence"]
    ahead = verdict({"post": ({"macro_f1": 0.8}, {"macro_f1": [0.7, 0.9]})}, base)
    assert ahead["levels"]["post"]["status"] == "ahead" and ahead["sentence"] is None
    # without a model interval (after training): inside the baseline's interval is not ahead
    assert verdict({"post": ({"macro_f1": 0.58}, None)}, base)["sentence"] is not None
    assert verdict({"post": ({"macro_f1": 0.61}, None)}, base)["sentence"] is None


def _paired_case(seed: int, n_posts: int = 80, n_labels: int = 3):
    """Two systems on the same posts: B is A with a few of A's mistakes put right, so B is
    better on every resample that holds one of those posts, by a small margin."""
    rng = np.random.default_rng(seed)
    y = rng.random((n_posts, n_labels)) < 0.3
    a = np.where(rng.random((n_posts, n_labels)) < 0.25, ~y, y)
    b = a.copy()
    wrong = np.argwhere(a != y)
    fix = wrong[rng.choice(len(wrong), size=max(1, len(wrong) // 4), replace=False)]
    b[fix[:, 0], fix[:, 1]] = y[fix[:, 0], fix[:, 1]]
    return y, a.astype(float), b.astype(float)


def _sklearn_paired(y, a, b, n_boot: int, seed: int) -> list[float]:
    """The paired bootstrap written here: resample posts (the rule: `default_rng(seed)`,
    `integers(0, n, n)` per resample over the sorted post ids), macro-F1 of both systems on
    each resample with scikit-learn (labels without a positive left out), the 2.5/97.5 %
    percentiles of the differences."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    n = len(y)
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        macro = []
        for sys_ in (a, b):
            f1s = [f1_score(y[idx, j], sys_[idx, j] >= 0.5, zero_division=0.0)
                   for j in range(y.shape[1]) if y[idx, j].any()]  # fmt: skip
            macro.append(float(np.mean(f1s)))
        diffs.append(macro[1] - macro[0])
    return [float(x) for x in np.percentile(diffs, [2.5, 97.5])]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_paired_interval_is_a_paired_bootstrap_of_the_difference(seed: int) -> None:
    from cea.evaluate.metrics import bootstrap_intervals, paired_ci

    y, a, b = _paired_case(seed)
    n_posts, n_labels = y.shape
    labels = tuple(f"L{j}" for j in range(n_labels))
    crit = np.tile(np.arange(n_labels), n_posts)
    groups = np.repeat(np.array([f"p{i:03d}" for i in range(n_posts)], dtype=object), n_labels)
    thr = np.full(n_labels, 0.5)

    def ci(sys_):
        return bootstrap_intervals(crit, y.reshape(-1).astype(float), sys_.reshape(-1), groups,
                                   thr, labels, 300, 13, draws=True)  # fmt: skip

    ia, ib = ci(a), ci(b)
    ours = paired_ci(ib, ia)
    assert ours == pytest.approx(_sklearn_paired(y, a, b, 300, 13), abs=1e-5)
    assert ours[0] > 0  # B only ever fixes A's mistakes
    # and the verdict reads it: B is ahead of A, whether or not their own intervals overlap
    base = {"post": {"metrics": {"macro_f1": 0.0}, "intervals": ia}}
    base["post"]["metrics"]["macro_f1"] = float(np.mean(ia["macro_f1"]))
    out = verdict({"post": ({"macro_f1": float(np.mean(ib["macro_f1"]))}, ib)}, base)
    assert out["levels"]["post"]["test"] == "paired bootstrap over the same posts"
    assert out["levels"]["post"]["status"] == "ahead" and out["sentence"] is None
    assert out["levels"]["post"]["difference_ci"] == ours
    # other posts: not paired, the overlap rule again
    other = {**ib, "groups_digest": "x" * 64}
    assert paired_ci(other, ia) is None


def test_a_paired_difference_that_holds_zero_is_not_clearly_ahead() -> None:
    base = {"post": {"metrics": {"macro_f1": 0.50},
                     "intervals": {"macro_f1": [0.4, 0.6], "macro_f1_draws": [0.5, 0.45, 0.55],
                                   "groups_digest": "d"}}}  # fmt: skip
    model = {"macro_f1": [0.45, 0.65], "macro_f1_draws": [0.49, 0.5, 0.6], "groups_digest": "d"}
    out = verdict({"post": ({"macro_f1": 0.52}, model)}, base)
    assert out["levels"]["post"]["status"] == "not clearly ahead"
    assert "holds 0" in out["sentence"]
    clear = {"macro_f1": [0.45, 0.65], "macro_f1_draws": [0.6, 0.5, 0.6], "groups_digest": "d"}
    assert verdict({"post": ({"macro_f1": 0.56}, clear)}, base)["sentence"] is None
