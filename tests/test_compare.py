"""`cea eval --compare A B`: paired bootstrap difference of groups of runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cea.config import load_config
from cea.data.criteria import DSM5_LABELS
from cea.data.readers import read_redsm5, sample_data_path
from cea.data.splits import make_split, save_split
from cea.train.run import run_training


@pytest.fixture(scope="module")
def groups(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cmp")
    ds = read_redsm5(sample_data_path(), DSM5_LABELS).dataset
    split = root / "split.json"
    save_split(make_split(ds, {"train": 0.7, "validation": 0.15, "test": 0.15}, 13), split)
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
    assert out["posts"] == 42
    assert out["sentence"].startswith("B − A macro-F1 =") and "paired bootstrap" in out["sentence"]
    human = cli(
        "eval", "--compare", str(groups / "base-*"), str(groups / "aug-*"), "--n-boot", "200"
    )
    assert "B − A macro-F1" in human.stdout


def test_a_group_against_itself_shows_no_difference(cli, groups: Path) -> None:
    runs = f"{groups / 'base-1'},{groups / 'base-2'}"
    out = json.loads(cli("eval", "--compare", runs, runs, "--json", "--n-boot", "200").stdout)
    assert out["difference"] == 0.0 and out["interval"] == [0.0, 0.0]
    assert out["verdict"].startswith("no reliable difference")


def test_runs_without_a_shared_test_set_are_refused(cli, groups: Path) -> None:
    res = cli("eval", "--compare", str(groups / "base-1"), str(groups / "other"))
    assert res.exit_code == 5
    assert "split_file" in res.stderr


def test_eval_needs_a_run_or_compare(cli) -> None:
    assert cli("eval").exit_code == 2
    assert cli("eval", "--compare", "nope-*", "nada").exit_code == 4  # nothing matches
