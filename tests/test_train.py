"""Training with the tiny backbone: run folder, HF loading, safe state, manifest, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cea.config import load_config
from cea.security.manifest import check_manifest
from cea.train.run import run_training


def _cfg(tiny: Path, data: str, runs: Path, name: str, *extra: str):
    return load_config(
        "tiny",
        [
            f"model.backbone={tiny}",
            f"data.path={data}",
            f"output.runs_dir={runs}",
            f"output.run_name={name}",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def trained_run(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory):
    runs = tmp_path_factory.mktemp("runs")
    cfg = _cfg(tiny_backbone, "sample", runs, "r1", "train.epochs=2")
    summary = run_training(cfg, runs / "r1")
    return summary


def test_run_folder_layout(trained_run) -> None:
    root = trained_run.run_dir
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "cea_meta.json",
        "manifest.json",
        "config.yaml",
        "split.json",
    ):
        assert (root / name).is_file(), name
    assert (root / "checkpoints" / "last" / "trainer_state.pt").is_file()
    assert (root / "checkpoints" / "last" / "model.safetensors").is_file()
    assert not list(root.glob(".*")), "no temp files left behind"
    meta = json.loads((root / "cea_meta.json").read_text())
    assert meta["labels"] == list(meta["thresholds"])
    assert set(meta["metrics"]) == {"validation", "test"}
    assert meta["data_hash"] and meta["config_hash"] and meta["versions"]["torch"]
    assert len(meta["history"]) == meta["epochs_run"] == 2
    assert meta["truncation"]["train"]["chunked"] > 0  # long posts were chunked, not cut


def test_hf_loads_root_with_no_missing_keys_and_same_logits(trained_run) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cea.model.backbone import Backbone
    from cea.model.build import build_model
    from cea.train.checkpoint import load_weights

    root = trained_run.run_dir
    hf, info = AutoModelForSequenceClassification.from_pretrained(root, output_loading_info=True)
    assert info["missing_keys"] == set() or not info["missing_keys"]
    assert not info["unexpected_keys"]
    meta = json.loads((root / "cea_meta.json").read_text())
    ours = build_model(Backbone("run", "local", root), labels=tuple(meta["labels"]), pair=False)
    load_weights(root / "checkpoints" / "best", ours)
    tok = AutoTokenizer.from_pretrained(root)
    batch = tok(
        ["I feel empty and sad lately.", "I sleep fine."], padding=True, return_tensors="pt"
    )
    hf.eval(), ours.eval()
    with torch.no_grad():
        diff = (hf(**batch).logits - ours(**batch).logits).abs().max().item()
    assert diff < 1e-5


def test_weights_and_state_load_safely(trained_run) -> None:
    from safetensors.torch import load_file

    root = trained_run.run_dir
    tensors = load_file(str(root / "model.safetensors"))
    assert any(k.startswith("classifier") for k in tensors)
    state = torch.load(root / "checkpoints" / "last" / "trainer_state.pt", weights_only=True)
    assert state["trainer"]["epoch"] == 2
    assert isinstance(state["rng"]["numpy"][1], list)


def test_manifest_matches_and_detects_one_changed_byte(trained_run, tmp_path: Path) -> None:
    import shutil

    root = trained_run.run_dir
    assert check_manifest(root).ok
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    result = check_manifest(copy)
    assert result.changed == ("model.safetensors",)


def test_thresholds_record_their_rule_per_criterion(trained_run) -> None:
    meta = json.loads((trained_run.run_dir / "cea_meta.json").read_text())
    assert set(meta["threshold_rules"]) == set(meta["labels"])
    for lab, m in meta["metrics"]["validation"]["per_label"].items():
        assert m["threshold"] == meta["thresholds"][lab]
        rule = meta["threshold_rules"][lab]
        assert rule["rule"] in ("bagged", "default")
        if rule["rule"] == "default":  # the fallback is 0.5, and it says why
            assert meta["thresholds"][lab] == 0.5 and rule["reason"]
        else:
            assert rule["oob_win_share"] >= 0.75 and rule["oob_gain"] > 0


def test_sentence_pair_training(tiny_backbone: Path, small_sample: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        tiny_backbone,
        str(small_sample),
        tmp_path,
        "pairs",
        "task.level=sentence",
        "task.negatives=all",
        "train.epochs=1",
    )
    summary = run_training(cfg, tmp_path / "pairs")
    meta = summary.meta
    assert meta["pair_encoding"] is True
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(summary.run_dir).num_labels == 1
    per = meta["metrics"]["validation"]["per_label"]
    assert set(per) == set(meta["labels"])
    assert sum(m["n"] for m in per.values()) == meta["examples"]["validation"]


def test_early_stopping_stops(tiny_backbone: Path, small_sample: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        tiny_backbone,
        str(small_sample),
        tmp_path,
        "es",
        "train.epochs=6",
        "train.lr=1e-12",
        "train.early_stopping.metric=val_loss",
        "train.early_stopping.patience=1",
        "train.early_stopping.min_delta=0.01",
    )
    meta = run_training(cfg, tmp_path / "es").meta
    assert meta["stopped_early"] is True
    assert meta["epochs_run"] == 2
    assert meta["best_epoch"] == 1


def test_gradient_accumulation_and_max_steps(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path
) -> None:
    cfg = _cfg(
        tiny_backbone,
        str(small_sample),
        tmp_path,
        "acc",
        "train.grad_accum=2",
        "train.max_steps=3",
        "train.epochs=5",
    )
    meta = run_training(cfg, tmp_path / "acc").meta
    assert meta["global_step"] == 3


# ---- through the CLI -----------------------------------------------------------------------


def _cea(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cea", *args], check=check, capture_output=True, text=True
    )


def _tiny_cli(cli, tiny: Path, data: Path, runs: Path, name: str, *extra: str):
    from tests.conftest import tiny_train_args

    return cli(*tiny_train_args(tiny, data, name), "--runs-dir", str(runs), *extra)


def test_cli_train_json_and_events(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path, cli
) -> None:
    events = tmp_path / "events.jsonl"
    res = _tiny_cli(
        cli,
        tiny_backbone,
        small_sample,
        tmp_path,
        "c1",
        "--json",
        "--json-events",
        str(events),
        "train.epochs=1",
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert Path(out["run_dir"]).name == "c1"
    assert "macro_f1" in out["metrics"]["test"]
    kinds = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    assert "step" in kinds and "epoch" in kinds and kinds[-1] == "done"
    again = cli("train", "--config", "tiny", "--runs-dir", str(tmp_path), "--run-name", "c1")
    assert again.exit_code == 2 and "already exists" in again.stderr
    resumed = cli("train", "--resume", str(tmp_path / "c1"))
    assert resumed.exit_code == 2 and "already complete" in resumed.stderr


def test_cli_refuses_unsafe_run_name(cli, tmp_path: Path) -> None:
    res = cli("train", "--config", "tiny", "--runs-dir", str(tmp_path), "--run-name", "../escape")
    assert res.exit_code == 2
    assert not (tmp_path.parent / "escape").exists()


def test_cli_missing_backbone_exit_4(cli, tmp_path: Path) -> None:
    res = cli(
        "train", "--config", "tiny", "--backbone", "bert-base-uncased", "--runs-dir", str(tmp_path)
    )
    assert res.exit_code == 4
    assert "never downloads" in res.stderr


def test_sigkill_after_first_checkpoint_then_resume_matches(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    common = [
        "train",
        "--config",
        "tiny",
        "--backbone",
        str(tiny_backbone),
        "--runs-dir",
        str(tmp_path),
        "train.epochs=4",
        "train.threads=1",
    ]
    full = _cea(*common, "--run-name", "full", "--json", check=True)
    expected = json.loads(full.stdout)

    events = tmp_path / "killed.events"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cea",
            *common,
            "--run-name",
            "killed",
            "--json-events",
            str(events),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if events.exists() and '"event": "checkpoint"' in events.read_text():
                break
            if proc.poll() is not None:
                pytest.fail("training ended before its first checkpoint was seen")
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    run = tmp_path / "killed"
    assert not (run / "manifest.json").exists(), "the run finished before it could be killed"
    state = torch.load(run / "checkpoints" / "last" / "trainer_state.pt", weights_only=True)
    assert 1 <= state["trainer"]["epoch"] < 4
    resumed = _cea("train", "--resume", str(run), "--json")
    assert resumed.returncode == 0, resumed.stderr
    got = json.loads(resumed.stdout)
    assert got["metrics"] == expected["metrics"]
    assert got["thresholds"] == expected["thresholds"]
    assert got["best_epoch"] == expected["best_epoch"]


def test_resume_refuses_tampered_state(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path, cli
) -> None:
    cfg = _cfg(tiny_backbone, str(small_sample), tmp_path, "t", "train.epochs=1")
    run_training(cfg, tmp_path / "t")
    run = tmp_path / "t"
    (run / "manifest.json").unlink()  # pretend it was killed before completion
    weights = run / "checkpoints" / "last" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    res = cli("train", "--resume", str(run))
    assert res.exit_code == 8
    assert "sha256" in res.stderr


def test_resume_refuses_pickled_code_in_state(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path, cli
) -> None:
    import pickle

    cfg = _cfg(tiny_backbone, str(small_sample), tmp_path, "p", "train.epochs=1")
    run_training(cfg, tmp_path / "p")
    run = tmp_path / "p"
    (run / "manifest.json").unlink()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save(
        {"format_version": 1, "x": Payload()},
        run / "checkpoints" / "last" / "trainer_state.pt",
        pickle_module=pickle,
    )
    res = cli("train", "--resume", str(run))
    assert res.exit_code == 8
    assert not marker.exists()


def test_crash_between_renames_falls_back_to_old_checkpoint(trained_run, tmp_path: Path) -> None:
    import shutil

    from cea.run_folder import resolve_checkpoint
    from cea.train.checkpoint import load_trainer_state

    ckpts = tmp_path / "checkpoints"
    shutil.copytree(trained_run.run_dir / "checkpoints", ckpts)
    (ckpts / "last").rename(ckpts / ".last.old")  # killed after the first rename
    folder = resolve_checkpoint(ckpts / "last")
    assert folder.name == ".last.old"
    assert load_trainer_state(folder)["trainer"]["epoch"] == 2


def test_cli_plain_progress_when_not_a_terminal(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path, cli
) -> None:
    res = _tiny_cli(
        cli,
        tiny_backbone,
        small_sample,
        tmp_path,
        "plain",
        "train.epochs=2",
    )
    assert res.exit_code == 0, res.stderr
    assert "epoch 1: train loss" in res.stderr and "epoch 2: train loss" in res.stderr
    assert "data: train" in res.stderr and "truncated" in res.stderr
    assert "macro" in res.stdout and "DEPRESSED_MOOD" in res.stdout
