"""`cea eval --compare A B`: paired bootstrap difference of groups of runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cea.config import load_config
from cea.data.criteria import DSM5_LABELS
from cea.data.readers import read_redsm5, sample_data_path
from cea.data.splits import make_split, save_split
from cea.train.run import run_training


def _saved_split(root: Path) -> Path:
    """One split of the bundled sample saved with its hashes: runs trained on it share tests."""
    ds = read_redsm5(sample_data_path(), DSM5_LABELS).dataset
    split = root / "split.json"
    save_split(make_split(ds, {"train": 0.7, "validation": 0.15, "test": 0.15}, 13), split)
    return split


@pytest.fixture(scope="module")
def groups(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cmp")
    split = _saved_split(root)
    for group, lr in (("base", "1e-3"), ("aug", "3e-3")):
        for seed in (1, 2):
            cfg = load_config(
                "tiny",
                [
                    f"model.backbone={tiny_backbone}",
                    f"output.runs_dir={root}",
                    f"output.run_name={group}-{seed}",
                    f"data.split_file={split}",
                    f"seed={seed}",
                    f"train.lr={lr}",
                    "train.epochs=1",
                ],
            )
            run_training(cfg, root / f"{group}-{seed}")
    # a run on its own split: shares (almost) no test posts with the others
    cfg = load_config(
        "tiny",
        [
            f"model.backbone={tiny_backbone}",
            f"output.runs_dir={root}",
            "output.run_name=other",
            "seed=99",
            "train.epochs=1",
            "data.split.test=0.05",
            "data.split.train=0.8",
        ],
    )
    run_training(cfg, root / "other")
    return root


def test_compare_groups_gives_difference_interval_and_sentence(cli, groups: Path) -> None:
    res = cli(
        "eval",
        "--compare",
        str(groups / "base-*"),
        str(groups / "aug-*"),
        "--json",
        "--n-boot",
        "300",
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["a"]["runs"]) == 2 and len(out["b"]["runs"]) == 2
    assert out["difference"] == pytest.approx(out["b"]["mean"] - out["a"]["mean"])
    lo, hi = out["interval"]
    assert lo <= hi
    assert lo <= out["difference"] <= hi
    assert out["posts"] == out["test_groups"] == 42
    assert out["interval_method"] == "two-level"
    s = out["sentence"]
    assert (
        s.startswith("B − A macro-F1 =")
        and "two-level bootstrap over 2+2 seeds and 42 test posts" in s
    )
    assert out["verdict"] != "one seed: no verdict"
    folder = Path(out["files"][0]).parent
    assert json.loads((folder / "comparison.json").read_text())["difference"] == out["difference"]
    assert (folder / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    human = cli(
        "eval", "--compare", str(groups / "base-*"), str(groups / "aug-*"), "--n-boot", "200",
        "--out", "cmp2",
    )  # fmt: skip
    assert "B − A macro-F1" in human.stdout and Path("cmp2/comparison.png").is_file()
    again = cli("eval", "--compare", str(groups / "base-*"), str(groups / "aug-*"), "--out", "cmp2")
    assert again.exit_code == 2  # never overwritten


def test_a_group_against_itself_shows_no_difference(cli, groups: Path) -> None:
    runs = f"{groups / 'base-1'},{groups / 'base-2'}"
    out = json.loads(cli("eval", "--compare", runs, runs, "--json", "--n-boot", "200").stdout)
    assert out["difference"] == 0.0 and out["posts_only_interval"] == [0.0, 0.0]
    lo, hi = out["interval"]  # seeds drawn independently for A and B: the seed spread shows
    assert lo <= 0.0 <= hi
    assert out["verdict"].startswith("no reliable difference")


def test_one_seed_per_group_gives_no_verdict_unless_accepted(cli, groups: Path) -> None:
    a, b = str(groups / "base-1"), str(groups / "aug-1")
    out = json.loads(cli("eval", "--compare", a, b, "--json", "--n-boot", "200").stdout)
    assert out["verdict"] == "one seed: no verdict"
    assert "one seed: no verdict" in out["sentence"] and "1 seed" in out["sentence"]
    ok = json.loads(
        cli("eval", "--compare", a, b, "--json", "--n-boot", "200", "--single-seed-ok").stdout
    )
    assert ok["verdict"] != "one seed: no verdict" and "--single-seed-ok" in ok["sentence"]


def test_changed_data_is_refused(cli, groups: Path, tmp_path: Path) -> None:
    import shutil

    import yaml

    data = tmp_path / "data"
    shutil.copytree(sample_data_path(), data, ignore=shutil.ignore_patterns("__*"))
    copies = []
    for name in ("base-1", "base-2"):
        dest = tmp_path / name
        shutil.copytree(groups / name, dest)
        cfg = yaml.safe_load((dest / "config.yaml").read_text())
        cfg["data"]["path"] = str(data)  # the copy of the data the runs were trained on
        (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
        copies.append(str(dest))
    posts = data / "redsm5_posts.csv"
    posts.write_text(posts.read_text().replace("I", "i", 1))
    res = cli("eval", "--compare", copies[0], copies[1], "--single-seed-ok")
    assert res.exit_code == 5, res.stderr
    assert "changed since training" in res.stderr


def test_two_level_interval_carries_seed_variance() -> None:
    from cea.evaluate.compare import bootstrap_difference

    rng = np.random.default_rng(0)
    g, labels = 60, 3
    y = rng.random((g, labels)) < 0.4

    def counts_for(err: float) -> np.ndarray:
        pred = np.where(rng.random((g, labels)) < err, ~y, y)
        return np.stack([(pred & y), (pred & ~y), (~pred & y)], axis=1).astype(float)

    # seeds that disagree: A has one good and one poor seed, B two middling ones
    counts = np.stack([counts_for(0.05), counts_for(0.45), counts_for(0.25), counts_for(0.25)])
    two, posts = bootstrap_difference(counts, 2, n_boot=2000, seed=1)
    width = lambda v: np.subtract(*np.percentile(v, [97.5, 2.5]))  # noqa: E731
    assert width(two) > 1.5 * width(posts)
    # seeds that agree: about the same width
    same = np.stack([counts_for(0.2)] * 2 + [counts_for(0.2)] * 2)
    two_s, posts_s = bootstrap_difference(same, 2, n_boot=2000, seed=1)
    assert width(two_s) == pytest.approx(width(posts_s), rel=0.35)


def test_generic_data_with_groups_is_resampled_by_group(
    cli, tiny_backbone: Path, tmp_path: Path
) -> None:
    """Generic data whose `group` holds several records (a patient's notes): no KeyError, the
    groups (not the records) are resampled and counted."""
    rng = np.random.default_rng(3)
    lines = []
    for i in range(240):
        sad = bool(rng.random() < 0.4)
        text = ("I feel sad and empty." if sad else "The weather was fine.") + f" Note {i}."
        labels = ["DEPRESSED_MOOD"] if sad else []
        lines.append(
            json.dumps({"id": f"n{i}", "text": text, "labels": labels, "group": f"p{i // 3}"})
        )
    data = tmp_path / "notes.jsonl"
    data.write_text("\n".join(lines) + "\n")
    split = tmp_path / "split.json"
    assert cli("data", "split", str(data), "-o", str(split), "-q").exit_code == 0
    for seed in (1, 2):
        for group in ("a", "b"):
            cfg = load_config("tiny", [
                f"model.backbone={tiny_backbone}", f"data.path={data}", f"output.runs_dir={tmp_path}",
                f"output.run_name={group}-{seed}", f"data.split_file={split}", f"seed={seed}",
                "train.epochs=1", "task.labels=[DEPRESSED_MOOD, FATIGUE]",
            ])  # fmt: skip
            run_training(cfg, tmp_path / f"{group}-{seed}")
    res = cli("eval", "--compare", str(tmp_path / "a-*"), str(tmp_path / "b-*"), "--json",
              "--n-boot", "200")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["posts"] == 3 * out["test_groups"]
    assert f"{out['test_groups']} test groups" in out["sentence"]


def test_runs_without_a_shared_test_set_are_refused(cli, groups: Path) -> None:
    res = cli("eval", "--compare", str(groups / "base-1"), str(groups / "other"))
    assert res.exit_code == 5
    assert "split_file" in res.stderr


def test_eval_needs_a_run_or_compare(cli) -> None:
    assert cli("eval").exit_code == 2
    assert cli("eval", "--compare", "nope-*", "nada").exit_code == 4  # nothing matches


@pytest.fixture(scope="module")
def evidence_runs(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sentence-level runs on one saved split: pairs and the multi-label head, two seeds."""
    root = tmp_path_factory.mktemp("cmp-ev")
    split = _saved_split(root)
    for encoding in ("pair", "multilabel"):
        for seed in (1, 2):
            cfg = load_config("tiny", [
                f"model.backbone={tiny_backbone}", f"output.runs_dir={root}",
                f"output.run_name={encoding}-{seed}", f"data.split_file={split}",
                f"seed={seed}", "train.epochs=1", "train.max_steps=8", "task.level=sentence",
                f"task.encoding={encoding}", "task.negatives=all",
            ])  # fmt: skip
            run_training(cfg, root / f"{encoding}-{seed}")
    return root


def test_sentence_level_runs_are_compared_on_evidence_recall_at_3(
    cli, evidence_runs: Path, groups: Path
) -> None:
    res = cli("eval", "--compare", str(evidence_runs / "pair-*"),
              str(evidence_runs / "multilabel-*"), "--json", "--n-boot", "300")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["metric"] == "evidence_recall@3"
    assert out["sentence"].startswith("B − A evidence_recall@3 =")
    lo, hi = out["interval"]
    assert lo <= out["difference"] <= hi
    # each run's value is the recall@3 that `cea eval` computes on the same test posts
    # (trained with negatives=all: eval ranks the same candidates as the comparison)
    for side in ("a", "b"):
        for run, value in zip(out[side]["runs"], out[side]["scores"], strict=True):
            ev = cli("eval", run, "--split", "test", "--json", "--n-boot", "100", "--no-track")
            assert ev.exit_code == 0, ev.stderr
            recall = json.loads(ev.stdout)["evidence"]["recall_at_k"]["3"]
            assert value == pytest.approx(recall, abs=1e-6)  # the report rounds to 6 places
    mixed = cli("eval", "--compare", str(groups / "base-1"), str(evidence_runs / "pair-1"),
                "--single-seed-ok")  # fmt: skip
    assert mixed.exit_code == 2 and "one level" in mixed.stderr


def test_recall_resampling_is_the_weighted_mean_of_recalls() -> None:
    from cea.evaluate.compare import _recall_per_resample, bootstrap_difference

    # 4 test groups: (sum of recall@3, keys with evidence); A's mean recall 0.5, B's 0.75
    a = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[2.0, 2.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    # each group once: the plain mean; group 2 twice, 1 and 3 never; only group 3 (no evidence)
    weights = np.array([[1.0, 1, 1, 1], [1, 0, 2, 0], [0, 0, 0, 4]])
    assert _recall_per_resample(a, weights).tolist() == [0.5, 0.75, 0.0]
    assert _recall_per_resample(b, weights[:1]).tolist() == [0.75]
    two, posts = bootstrap_difference(
        np.stack([a, b]), 1, n_boot=4000, seed=3, metric="evidence_recall@3"
    )
    assert np.median(posts) == pytest.approx(0.25, abs=0.1)
    assert posts.min() >= -1.0 and posts.max() <= 1.0
    assert np.array_equal(two, posts)  # one run per side: no seed to resample
