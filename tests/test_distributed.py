"""`torchrun --nproc_per_node 2 -m cea train` on CPU (gloo): one run folder that loads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_process_torchrun_training_writes_one_run_that_loads(
    tmp_path: Path, small_sample: Path, tiny_backbone: Path
) -> None:
    from cea.evaluate.predictor import load_run_model, score_posts

    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "cea", "train", "--config", "tiny",
        "--backbone", str(tiny_backbone), "--data", str(small_sample), "--no-track",
        "--runs-dir", str(tmp_path / "runs"), "--json", "train.epochs=2", "train.batch_size=8",
        "train.grad_accum=2",  # no_sync() on the accumulation steps
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)  # rank 0 alone prints (one JSON document)
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and Path(out["run_dir"]).name == runs[0].name
    assert not list(runs[0].glob(".*"))  # no staging left behind
    lm = load_run_model(runs[0])  # manifest verified, weights loaded
    assert lm.meta["world_size"] == 2
    probs = score_posts(lm, ["I feel empty and cannot sleep."])
    assert probs.shape == (1, len(lm.labels))
