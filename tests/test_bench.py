"""`cea bench`: JSON shapes, bands, and the baseline gate (fires on an injected delay).
Timing targets themselves live in benchmarks/, not here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cea.bench.pipeline import band


def _json(cli, *args: str) -> dict:
    res = cli("bench", *args, "--json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_pipeline_with_naive_comparison(cli, tiny_backbone: Path) -> None:
    out = _json(
        cli, "pipeline", "--compare-naive", "--n", "256", "--repeats", "1",
        "--backbone", str(tiny_backbone), "--prob", "0.5",
    )  # fmt: skip
    assert out["cea"]["samples"] == 256 == out["naive"]["samples"]
    assert out["cea"]["samples_per_s"] > 0 and out["naive"]["samples_per_s"] > 0
    assert out["speedup"] == pytest.approx(
        out["cea"]["samples_per_s"] / out["naive"]["samples_per_s"], rel=0.01
    )
    assert out["cea"]["batch_p50_ms"] <= out["cea"]["batch_p95_ms"]
    # the naive side uses the nlpaug equivalents of the same augmenters
    assert set(out["naive"]["augmenters"]) <= {
        "KeyboardAug",
        "RandomCharAug",
        "RandomWordAug",
        "SpellingAug",
    }


def test_step_with_a_simulated_accelerator(cli, tiny_backbone: Path) -> None:
    out = _json(
        cli, "step", "--simulate-step-ms", "3", "--steps", "10", "--repeats", "1",
        "--workers", "0", "--backbone", str(tiny_backbone),
    )  # fmt: skip
    assert 0.0 <= out["data_wait_ratio"] < 1.0
    assert out["band"] == band(out["data_wait_ratio"])
    assert out["step_ms"] >= 3.0
    assert out["steps"] == 10


def test_step_with_a_real_training_step(cli, tiny_backbone: Path) -> None:
    out = _json(
        cli, "step", "--steps", "5", "--repeats", "1", "--workers", "0", "--device", "cpu",
        "--backbone", str(tiny_backbone),
    )  # fmt: skip
    assert out["params"]["step"] == "real step on cpu"
    assert out["step_ms"] > 0


def test_bands() -> None:
    assert band(0.0) == "not input-bound"
    assert band(0.049) == "not input-bound"
    assert band(0.05) == "moderately input-bound"
    assert band(0.2) == "highly input-bound"


def test_baseline_gate_fires_on_injected_delay(cli, tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    common = ["augment", "--augmenters", "char_keyboard,word_swap", "--n", "30", "--repeats", "3"]
    first = _json(cli, *common, "--save-baseline", str(base))
    assert json.loads(base.read_text())["result"]["augmenters"].keys() == first["augmenters"].keys()
    ok = cli("bench", *common, "--baseline", str(base), "--max-regression", "900%", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["comparison"]["regressed"] is False
    slow = cli("bench", *common, "--baseline", str(base), "--inject-delay-ms", "3", "--json")
    assert slow.exit_code == 1
    verdict = json.loads(slow.stdout)["comparison"]
    assert verdict["regressed"] is True
    assert all(c["regressed"] for c in verdict["checks"])
    assert "regression" in slow.stderr


def test_baseline_must_match_settings(cli, tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    _json(
        cli,
        "augment",
        "--augmenters",
        "word_swap",
        "--n",
        "20",
        "--repeats",
        "1",
        "--save-baseline",
        str(base),
    )
    res = cli(
        "bench",
        "augment",
        "--augmenters",
        "char_swap",
        "--n",
        "20",
        "--repeats",
        "1",
        "--baseline",
        str(base),
    )
    assert res.exit_code == 2
    assert "other settings" in res.stderr
    res = cli("bench", "augment", "--n", "20", "--baseline", str(base), "--max-regression", "lots")
    assert res.exit_code == 2


def test_bench_train_on_the_users_data_counts_the_steps_training_takes(
    cli, tiny_backbone: Path, tmp_path: Path
) -> None:
    """`cea bench train --data`: the real task (long posts, chunking, post packing); its steps
    per epoch are the steps a real run of the same config takes."""
    import json

    data = tmp_path / "long"
    assert (
        cli("data", "sample", "-o", str(data), "-n", "80", "--profile", "long", "-q").exit_code == 0
    )
    sets = ["--set", f"model.backbone={tiny_backbone}", "--set", "train.epochs=2"]
    res = cli("bench", "train", "--config", "tiny", "--data", str(data), *sets, "--steps", "4",
              "--warmup", "1", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    est = json.loads(res.stdout)
    assert est["kind"] == "train" and est["steps_measured"] >= 3
    assert est["rows"]["train"] > est["examples"]["train"]  # long posts: several windows each
    for key in ("startup_s", "read_split_examples_s", "tokenize_chunk_s", "step",
                "data_wait_per_step", "validation_pass"):  # fmt: skip
        assert est["time_s"][key] >= 0
    assert est["estimate_s"]["run"] > 2 * est["estimate_s"]["epoch"] * 0.99
    run = cli("train", "--config", "tiny", "--data", str(data), "--no-track", "-q", "--json",
              "--run-name", "real", *sets, "train.early_stopping.patience=0")  # fmt: skip
    assert run.exit_code == 0, run.stderr
    meta = json.loads((Path("runs") / "real" / "cea_meta.json").read_text())
    assert meta["global_step"] == 2 * est["steps_per_epoch"]
    human = cli("bench", "train", "--config", "tiny", "--data", str(data), *sets, "--steps", "2")
    assert "where the time goes" in human.stdout and "the run (2 epochs)" in human.stdout


@pytest.fixture(scope="module")
def long_posts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cea.data.sample import write_sample

    dest = tmp_path_factory.mktemp("long") / "long"
    write_sample(dest, 60, seed=3, profile="long")
    return dest


def test_bench_pipeline_on_the_users_data_times_every_part(
    cli, tiny_backbone: Path, long_posts: Path
) -> None:
    """`--data`: the run's own pipeline — reading, chunking and tokenizing are timed, and the
    epoch goes through training's own loader (its rows are the chunked windows)."""
    from cea.config import load_config
    from cea.train.run import load_inputs

    sets = ["--set", f"model.backbone={tiny_backbone}", "--set", "augment.enabled=true"]
    out = _json(cli, "pipeline", "-c", "tiny", "--data", str(long_posts), *sets, "--repeats", "2")
    got = out["cea"]
    cfg = load_config("tiny", [f"model.backbone={tiny_backbone}", f"data.path={long_posts}"])
    inputs = load_inputs(cfg)
    inputs.release()
    feats = inputs.feats["train"]
    assert got["examples"] == feats.n_examples
    assert got["rows"] == len(feats) > got["examples"]  # long posts: several windows each
    assert got["samples"] == len(feats)  # one epoch sees every window once
    assert got["truncated_share"] == round(feats.truncated_examples / feats.n_examples, 4)
    t = got["time_s"]
    for key in ("read_split_examples_s", "tokenize_chunk_s", "epoch_s", "augment_per_epoch_s"):
        assert t[key] > 0, key
    assert t["augment_per_epoch_s"] + t["retokenize_per_epoch_s"] <= t["epoch_s"]
    assert out["params"]["data"] == str(long_posts) and out["params"]["augment"] is True
    human = cli(
        "bench", "pipeline", "-c", "tiny", "--data", str(long_posts), *sets, "--repeats", "1"
    )
    assert human.exit_code == 0 and "where the time goes" in human.stdout


def test_bench_step_on_the_users_data_measures_the_runs_own_loop(
    cli, tiny_backbone: Path, long_posts: Path
) -> None:
    sets = ["--set", f"model.backbone={tiny_backbone}"]
    out = _json(cli, "step", "-c", "tiny", "--data", str(long_posts), *sets, "--steps", "5")
    assert out["params"]["step"].startswith("real training step on cpu")
    assert 0 <= out["data_wait_ratio"] < 1 and out["band"] == band(out["data_wait_ratio"])
    assert out["steps"] >= 5 and out["step_ms"] > 0


def test_cli_default_augmenters_are_the_benchmarks_cheap_set() -> None:
    from cea.bench.run import CHEAP
    from cea.cli.bench import CHEAP as SHOWN

    assert SHOWN.split(",") == list(CHEAP)
