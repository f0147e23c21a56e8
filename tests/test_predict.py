"""`cea predict`: scores good lines, reports bad ones by number, refuses tampered runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cea.config import load_config
from cea.train.run import run_training

TEXTS = [
    "I feel empty and sad lately. I cannot sleep at night.",
    "My mood has been fine and I sleep well.",
    "I keep thinking about ending my life. Nothing is fun anymore.",
]


@pytest.fixture(scope="module")
def runs(
    tiny_backbone: Path, small_sample_module: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, extra in (("post", []), ("pairs", ["task.level=sentence", "task.negatives=all"])):
        cfg = load_config(
            "tiny",
            [
                f"model.backbone={tiny_backbone}",
                f"data.path={small_sample_module}",
                f"output.runs_dir={root}",
                f"output.run_name={name}",
                "train.epochs=1",
                *extra,
            ],
        )
        out[name] = run_training(cfg, root / name).run_dir
    return out


@pytest.fixture(scope="module")
def small_sample_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cea.data.sample import write_sample

    dest = tmp_path_factory.mktemp("data") / "small"
    write_sample(dest, 60, seed=5)
    return dest


def _inputs(path: Path) -> Path:
    lines = [json.dumps({"id": f"t{i}", "text": t}) for i, t in enumerate(TEXTS)]
    lines.insert(1, "{broken json")
    lines.append(json.dumps({"id": "empty", "text": "  "}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _predict(cli, run: Path, tmp_path: Path, out: Path, *extra: str):
    return cli(
        "predict", str(run), "-i", str(_inputs(tmp_path / "in.jsonl")), "-o", str(out), *extra
    )


def test_predict_scores_good_lines_and_reports_bad_ones(cli, runs, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    res = _predict(
        cli,
        runs["post"],
        tmp_path,
        out,
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["scored"] == 3
    assert [b["line"] for b in summary["bad_lines"]] == [2, 5]
    assert "in.jsonl:2" in res.stderr and "{broken" not in res.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["t0", "t1", "t2"]
    meta = json.loads((runs["post"] / "cea_meta.json").read_text())
    for r in rows:
        assert list(r["probs"]) == meta["labels"]
        for lab, p in r["probs"].items():
            assert 0.0 <= p <= 1.0
            assert r["decisions"][lab] == (p >= meta["thresholds"][lab])


def test_predict_matches_plain_transformers(cli, runs, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "out.jsonl"
    assert (
        _predict(
            cli,
            runs["post"],
            tmp_path,
            out,
        ).exit_code
        == 0
    )
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    model = AutoModelForSequenceClassification.from_pretrained(runs["post"]).eval()
    tok = AutoTokenizer.from_pretrained(runs["post"])
    with torch.no_grad():  # short texts: one chunk each, so the HF forward pass is the whole story
        probs = torch.sigmoid(model(**tok(TEXTS, padding=True, return_tensors="pt")).logits).numpy()
    got = np.array([[r["probs"][lab] for lab in model.config.id2label.values()] for r in rows])
    assert np.abs(got - probs).max() < 1e-5


def test_predict_with_evidence_model(cli, runs, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    res = _predict(
        cli,
        runs["post"],
        tmp_path,
        out,
        "--evidence-model",
        str(runs["pairs"]),
        "--top-k",
        "2",
    )
    assert res.exit_code == 0, res.stderr
    first = json.loads(out.read_text().splitlines()[0])
    ev = first["evidence"]
    assert set(ev) == set(first["probs"])
    assert all(len(v) == 2 for v in ev.values())
    assert all(TEXTS[0][s["start"] : s["end"]] for v in ev.values() for s in v)
    probs = [s["prob"] for s in ev["DEPRESSED_MOOD"]]
    assert probs == sorted(probs, reverse=True)
    thresholds = json.loads((runs["pairs"] / "cea_meta.json").read_text())["thresholds"]
    for lab, sents in ev.items():  # flags agree with the probabilities as written
        assert all(s["evidence"] == (s["prob"] >= thresholds[lab]) for s in sents)


def test_predict_strict_writes_nothing(cli, runs, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    res = _predict(
        cli,
        runs["post"],
        tmp_path,
        out,
        "--strict",
    )
    assert res.exit_code == 5
    assert not out.exists()


def test_predict_refuses_a_tampered_run(cli, runs, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(runs["post"], copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    out = tmp_path / "out.jsonl"
    res = _predict(
        cli,
        copy,
        tmp_path,
        out,
    )
    assert res.exit_code == 8
    assert "manifest" in res.stderr and not out.exists()


def test_pair_model_is_not_a_post_model(cli, runs, tmp_path: Path) -> None:
    res = _predict(
        cli,
        runs["pairs"],
        tmp_path,
        tmp_path / "o.jsonl",
    )
    assert res.exit_code == 2


def test_eval_of_the_evidence_model_reports_recall_at_k(cli, runs) -> None:
    res = cli("eval", str(runs["pairs"]), "--json", "--n-boot", "100", "--no-track", "--name", "ev")
    assert res.exit_code == 0, res.stderr
    ev = json.loads(res.stdout)["evidence"]
    assert ev["pairs_with_evidence"] > 0
    r = [ev["recall_at_k"][k] for k in ("1", "3", "5")]
    assert 0.0 <= r[0] <= r[1] <= r[2] <= 1.0  # recall@k grows with k
    assert all(ev["hit_at_k"][k] >= ev["recall_at_k"][k] for k in ("1", "3", "5"))


# ---- issue #17: devices, batch sizes, batched evidence, posts/s ----------------------------


def test_evidence_batched_across_posts_equals_post_by_post(runs) -> None:
    from cea.evaluate.predictor import load_run_model, top_evidence, top_evidence_batch

    ev = load_run_model(runs["pairs"], device="cpu", batch_size=7)
    texts = [*TEXTS, "One sentence only", TEXTS[0]]
    batched = top_evidence_batch(ev, texts, 3)
    for text, got in zip(texts, batched, strict=True):
        want = top_evidence(ev, text, 3)
        assert {k: [s["sentence"] for s in v] for k, v in got.items()} == {
            k: [s["sentence"] for s in v] for k, v in want.items()
        }
        for lab in want:
            for a, b in zip(got[lab], want[lab], strict=True):
                assert a["prob"] == pytest.approx(b["prob"], abs=1e-5)


def test_device_and_batch_size_options(cli, runs, tmp_path: Path) -> None:
    import torch

    out = tmp_path / "o.jsonl"
    res = _predict(cli, runs["post"], tmp_path, out, "--device", "cpu", "--batch-size", "3",
                   "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["device"] == "cpu" and summary["posts_per_s"] > 0
    small = [json.loads(x)["probs"] for x in out.read_text().splitlines()]
    _predict(cli, runs["post"], tmp_path, tmp_path / "b.jsonl", "--batch-size", "64")
    big = [json.loads(x)["probs"] for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    for a, b in zip(small, big, strict=True):  # batching never changes a probability
        assert a == pytest.approx(b, abs=2e-6)
    assert "posts/s" in _predict(cli, runs["post"], tmp_path, tmp_path / "c.jsonl").stdout
    bogus = _predict(cli, runs["post"], tmp_path, tmp_path / "d.jsonl", "--device", "tpu")
    assert bogus.exit_code == 2
    if not torch.cuda.is_available():  # asked for a GPU that is not there: one line, exit 4
        res = _predict(cli, runs["post"], tmp_path, tmp_path / "e.jsonl", "--device", "cuda")
        assert res.exit_code == 4 and "no CUDA device" in res.stderr
        assert not (tmp_path / "e.jsonl").exists()
        res = cli("eval", str(runs["post"]), "--device", "cuda", "--no-track")
        assert res.exit_code == 4 and "Traceback" not in res.stderr
    res = cli("eval", str(runs["post"]), "--device", "cpu", "--batch-size", "5", "--json",
              "--n-boot", "100", "--no-track", "--name", "dev")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["device"] == "cpu"


def test_weights_swapped_after_verification_are_never_loaded(
    runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker's window: between the manifest check and the load, the weights (and the
    manifest) are replaced. The verified bytes are what is loaded, or nothing."""
    import shutil

    import cea.run_folder as run_folder
    from cea.errors import IntegrityError
    from cea.security.manifest import write_manifest

    run = tmp_path / "run"
    shutil.copytree(runs["post"], run)
    real = run_folder.verify_run_folder

    def verify_then_swap(folder: Path):  # type: ignore[no-untyped-def]
        meta = real(folder)
        blob = bytearray((folder / "model.safetensors").read_bytes())
        blob[-1] ^= 0x01
        (folder / "model.safetensors").write_bytes(bytes(blob))
        write_manifest(folder, exclude_dirs=("eval",))  # the swap covers its tracks
        return meta

    monkeypatch.setattr(run_folder, "verify_run_folder", verify_then_swap)
    with pytest.raises(IntegrityError, match="changed after it was verified"):
        run_folder.load_run_model(run, device="cpu")


def test_the_verified_bytes_give_the_same_model_as_the_file(runs) -> None:
    from transformers import AutoModelForSequenceClassification

    from cea.evaluate.predictor import load_run_model, score_posts

    lm = load_run_model(runs["post"], device="cpu")
    ref = AutoModelForSequenceClassification.from_pretrained(str(runs["post"]))
    for (name, a), (_, b) in zip(
        lm.model.state_dict().items(), ref.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert score_posts(lm, ["I feel empty."]).shape == (1, len(lm.labels))
