"""Security helpers, backbone resolution, batching, schedule, RNG capture."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cea.errors import IntegrityError, MissingResourceError, UsageError
from cea.model.backbone import resolve_backbone
from cea.model.features import BucketBatchSampler, collate
from cea.security.io import atomic_path, atomic_write_json, sha256_file
from cea.security.manifest import check_manifest, verify_manifest, write_manifest
from cea.security.paths import safe_child, safe_name
from cea.train.checkpoint import capture_rng, restore_rng
from cea.train.schedule import build_scheduler


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "a" * 200, "x\ny", "..", "a..b"])
def test_unsafe_names_refused(name: str) -> None:
    with pytest.raises(UsageError):
        safe_name(name)


def test_safe_child_stays_inside(tmp_path: Path) -> None:
    assert safe_child(tmp_path, "run-1.a_b") == (tmp_path / "run-1.a_b").resolve()


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_manifest_changed_missing_extra(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b")
    files = write_manifest(tmp_path)
    assert files["sub/b.txt"] == sha256_file(tmp_path / "sub" / "b.txt")
    verify_manifest(tmp_path)
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "sub" / "b.txt").unlink()
    (tmp_path / "c.txt").write_text("c")
    res = check_manifest(tmp_path)
    assert (res.changed, res.missing, res.extra) == (("a.txt",), ("sub/b.txt",), ("c.txt",))
    with pytest.raises(IntegrityError, match=r"changed: a\.txt"):
        verify_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(IntegrityError):
        check_manifest(tmp_path)


def test_backbone_resolution(tmp_path: Path, tiny_backbone: Path) -> None:
    mini = resolve_backbone("minilm")
    assert mini.kind == "packaged" and (mini.path / "model.safetensors").is_file()
    assert resolve_backbone(str(tiny_backbone)).kind == "local"
    with pytest.raises(MissingResourceError) as err:
        resolve_backbone("sentence-transformers/paraphrase-MiniLM-L3-v2")
    assert "never downloads" in err.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingResourceError, match=r"config\.json"):
        resolve_backbone(str(tmp_path / "empty"))


def test_tiny_is_deterministic(tmp_path: Path) -> None:
    from cea.model.tiny import build_tiny_bert

    a = build_tiny_bert(tmp_path / "a", seed=1)
    b = build_tiny_bert(tmp_path / "b", seed=1)
    assert sha256_file(a / "model.safetensors") == sha256_file(b / "model.safetensors")


def test_bucket_sampler_is_seeded_per_epoch_and_buckets() -> None:
    lengths = [random.Random(i).randint(5, 100) for i in range(500)]
    s = BucketBatchSampler(lengths, 16, seed=3)
    s.set_epoch(0)
    e0 = list(s)
    assert e0 == list(s)  # same epoch, same order
    s.set_epoch(1)
    assert list(s) != e0
    assert sorted(i for b in e0 for i in b) == list(range(500))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in e0])
    assert spread < 20  # similar lengths per batch
    ranks = [BucketBatchSampler(lengths, 16, seed=3, rank=r, num_replicas=2) for r in range(2)]
    assert len(list(ranks[0])) == len(list(ranks[1])) == len(ranks[0])
    covered = {i for r in ranks for b in r for i in b}
    assert covered == set(range(500))  # the ranks together see every row


def test_collate_pads_dynamically() -> None:
    batch = [
        {
            "input_ids": [2, 5, 3],
            "token_type_ids": None,
            "labels": (1.0, 0.0),
            "crit": -1,
            "row": 0,
        },
        {"input_ids": [2, 3], "token_type_ids": None, "labels": (0.0, 1.0), "crit": -1, "row": 1},
    ]
    out = collate(batch)
    assert out["input_ids"].shape == (2, 3)
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_schedule_warmup_then_linear_decay() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = build_scheduler(opt, kind="linear", total_steps=10, warmup_steps=2)
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
    assert lrs[-1] < lrs[2] and all(a >= b for a, b in itertools.pairwise(lrs[1:]))


def test_rng_capture_restore_round_trip() -> None:
    state = capture_rng()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    # what weights_only loading accepts: tensors and plain containers
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    torch.load(buf, weights_only=True)
