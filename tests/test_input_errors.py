"""Classify by cause (issue 29): what a user or the world supplies — seeds, backbones, run
folders, JSONL, policies, baselines, a disk — is that input's error with one line naming the
file or value, never "internal error" (exit 6). Real files and real `cea` processes; a
hypothesis test feeds the readers damaged inputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _cea(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cea", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ.copy(),
        timeout=600,
        check=False,
    )


def _refused(res: subprocess.CompletedProcess[str], code: int, *names: str) -> None:
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    assert "internal error" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1, res.stderr
    for name in names:
        assert name in res.stderr.replace("\n", ""), (name, res.stderr)


# ---- seeds --------------------------------------------------------------------------------------


def test_seeds_out_of_range_are_usage_or_config_errors(tmp_path: Path) -> None:
    _refused(_cea("data", "split", "--seed", "-1", "-o", "s.json", cwd=tmp_path), 2, "--seed")
    _refused(_cea("train", "--config", "tiny", "--seed", str(2**64), cwd=tmp_path), 2, "--seed")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"seed: {2**64}\n")
    _refused(_cea("train", "--config", str(cfg), cwd=tmp_path), 3, str(cfg), "seed")
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "runs").exists()


def test_duplicate_yaml_keys_are_a_config_error_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("train:\n  epochs: 1\n  lr: 0.1\n  epochs: 5\n")
    _refused(_cea("train", "--config", str(cfg), cwd=tmp_path), 3, str(cfg), "'epochs'", "line 4")


# ---- backbones ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken_backbones(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("backbones")
    trunc = root / "truncated"
    shutil.copytree(tiny_backbone, trunc)
    weights = trunc / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    big = root / "bigtok"
    shutil.copytree(tiny_backbone, big)
    tok = AutoTokenizer.from_pretrained(str(big))
    tok.add_tokens([f"extra{i}" for i in range(2000)])
    tok.save_pretrained(str(big))
    return root


def test_truncated_backbone_weights_are_an_integrity_error(
    broken_backbones: Path, small_sample: Path, tmp_path: Path
) -> None:
    bb = broken_backbones / "truncated"
    res = _cea(
        "train", "--config", "tiny", "--backbone", str(bb), "--data", str(small_sample),
        "--no-track", cwd=tmp_path,
    )  # fmt: skip
    _refused(res, 8, str(bb))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_tokenizer_larger_than_the_embeddings_is_refused(
    broken_backbones: Path, small_sample: Path, tmp_path: Path
) -> None:
    bb = broken_backbones / "bigtok"
    res = _cea(
        "train", "--config", "tiny", "--backbone", str(bb), "--data", str(small_sample),
        "--no-track", cwd=tmp_path,
    )  # fmt: skip
    _refused(res, 8, str(bb), "embeddings")


# ---- run folders: resume and eval ---------------------------------------------------------------


@pytest.fixture(scope="module")
def unfinished_run(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run with a checkpoint and no manifest (as a run killed after its last epoch)."""
    from cea.data.sample import write_sample

    work = tmp_path_factory.mktemp("work")
    write_sample(work / "data", 60, seed=5)
    res = _cea(
        "train", "--config", "tiny", "--backbone", str(tiny_backbone), "--data", "data",
        "--run-name", "r", "--no-track", "-q", "train.epochs=1", "train.threads=1", cwd=work,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return work / "runs" / "r"


def _copy_unfinished(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    (dest / "manifest.json").unlink()
    return dest


@pytest.mark.parametrize("content", ["", "seed: [1, 2\n", "seed: -5\n", "- a list\n"])
def test_resume_with_a_damaged_config_is_a_config_error(
    unfinished_run: Path, tmp_path: Path, content: str
) -> None:
    run = _copy_unfinished(unfinished_run, tmp_path / "r")
    (run / "config.yaml").write_text(content)
    res = _cea("train", "--resume", str(run), "--no-track", cwd=unfinished_run.parent.parent)
    _refused(res, 3, str(run / "config.yaml"))
    assert (run / "checkpoints" / "last").is_dir()  # nothing lost


def test_resume_with_a_corrupt_tracking_record_is_a_config_error(
    unfinished_run: Path, tmp_path: Path
) -> None:
    run = _copy_unfinished(unfinished_run, tmp_path / "r")
    (run / "tracking.json").write_text('{"run_id": "abc", ')
    res = _cea("train", "--resume", str(run), cwd=tmp_path)
    _refused(res, 3, str(run / "tracking.json"))


def test_resume_with_a_config_that_no_longer_fits_the_checkpoint(
    unfinished_run: Path, tmp_path: Path
) -> None:
    import yaml

    run = _copy_unfinished(unfinished_run, tmp_path / "r")
    tree = yaml.safe_load((run / "config.yaml").read_text())
    tree["task"]["level"] = "sentence"  # pair encoding: one output instead of one per label
    (run / "config.yaml").write_text(yaml.safe_dump(tree))
    res = _cea("train", "--resume", str(run), "--no-track", cwd=unfinished_run.parent.parent)
    _refused(res, 3, str(run / "config.yaml"), "no longer fits")


@pytest.fixture(scope="module")
def finished_run(unfinished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("finished") / "r"
    shutil.copytree(unfinished_run, dest)
    return dest


def test_eval_of_a_rehashed_folder_with_a_swapped_tokenizer(
    finished_run: Path, broken_backbones: Path, tmp_path: Path
) -> None:
    from cea.security.manifest import write_manifest

    run = tmp_path / "r"
    shutil.copytree(finished_run, run)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(broken_backbones / "bigtok" / name, run / name)
    write_manifest(run)
    res = _cea("eval", str(run), "--no-track", "--n-boot", "100", cwd=tmp_path)
    _refused(res, 8, str(run), "tokenizer")
    assert not (run / "eval").exists()


def test_eval_of_a_rehashed_folder_with_other_num_labels(
    finished_run: Path, tmp_path: Path
) -> None:
    from cea.security.manifest import write_manifest

    run = tmp_path / "r"
    shutil.copytree(finished_run, run)
    conf = json.loads((run / "config.json").read_text())
    conf["id2label"] = {"0": "A", "1": "B"}
    conf["label2id"] = {"A": 0, "B": 1}
    conf.pop("num_labels", None)
    (run / "config.json").write_text(json.dumps(conf))
    write_manifest(run)
    res = _cea("eval", str(run), "--no-track", "--n-boot", "100", cwd=tmp_path)
    _refused(res, 8, str(run))


def test_eval_name_that_exists_is_refused_before_evaluating(
    finished_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "r"
    shutil.copytree(finished_run, run)
    (run / "eval" / "mine").mkdir(parents=True)
    (run / "eval" / "mine" / "metrics.json").write_text("{}")
    res = _cea("eval", str(run), "--name", "mine", "--no-track", cwd=tmp_path)
    _refused(res, 2, str(run / "eval" / "mine"))
    assert (run / "eval" / "mine" / "metrics.json").read_text() == "{}"


# ---- JSONL --------------------------------------------------------------------------------------


def _line(rid: str, text: str, labels: list[str]) -> str:
    return json.dumps({"id": rid, "text": text, "labels": labels})


def test_jsonl_nested_too_deeply_and_lone_surrogates_are_data_errors(
    finished_run: Path, tmp_path: Path
) -> None:
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"id": "a", "text": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    _refused(_cea("data", "validate", str(deep), cwd=tmp_path), 5, str(deep))
    surrogate = tmp_path / "surrogate.jsonl"
    surrogate.write_text(
        _line("ok", "I sleep all day.", ["SLEEP_ISSUES"]) + "\n"
        '{"id": "s", "text": "bad \\ud800 text", "labels": ["FATIGUE"]}\n'
    )
    res = _cea("data", "validate", str(surrogate), cwd=tmp_path)
    assert res.returncode == 5, res.stderr + res.stdout
    assert "internal error" not in res.stderr and "surrogate" in res.stdout
    # predict reads the same lines the same way: both are reported bad, by number
    res = _cea("predict", str(finished_run), "-i", str(surrogate), "-o", "o.jsonl", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"{surrogate}:2" in res.stderr and "surrogate" in res.stderr
    assert [json.loads(x)["id"] for x in (tmp_path / "o.jsonl").read_text().splitlines()] == ["ok"]
    res = _cea("predict", str(finished_run), "-i", str(deep), "-o", "d.jsonl", cwd=tmp_path)
    _refused(res, 5, str(deep))


def test_jsonl_lines_end_at_newline_only_and_keep_their_numbers(tmp_path: Path) -> None:
    from cea.data.readers import read_generic

    data = tmp_path / "d.jsonl"
    data.write_text(
        _line("a", "one\u2028two\u2029three\x85four", ["FATIGUE"]) + "\n"
        + _line("b", "fine", ["FATIGUE"]) + "\n"
        + "{broken\n",
        encoding="utf-8",
    )  # fmt: skip
    result = read_generic(data, ("FATIGUE",))
    assert [p.post_id for p in result.dataset.posts] == ["a", "b"]
    assert result.dataset.posts[0].text == "one\u2028two\u2029three\x85four"
    assert [(i.code, i.row) for i in result.issues] == [("malformed_line", 3)]


def test_predict_keeps_a_first_line_with_a_bom_and_says_what_it_truncated(
    finished_run: Path, tmp_path: Path
) -> None:
    inp = tmp_path / "in.jsonl"
    long_text = " ".join(["I cannot sleep and I feel tired every day."] * 3000)
    inp.write_bytes(
        b"\xef\xbb\xbf"
        + (json.dumps({"id": "first", "text": "I feel sad."}) + "\n").encode()
        + (json.dumps({"id": "long", "text": long_text}) + "\n").encode()
    )
    res = _cea(
        "predict", str(finished_run), "-i", str(inp), "-o", "out.jsonl", "--json", cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["first", "long"]
    assert rows[1].get("truncated") is True and "truncated" not in rows[0]
    assert json.loads(res.stdout)["truncated"] == ["long"]
    assert "longer than the model reads" in res.stderr and "first id: long" in res.stderr


def test_predict_output_naming_a_folder_is_refused_naming_it(
    finished_run: Path, tmp_path: Path
) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "x", "text": "I feel sad."}) + "\n")
    (tmp_path / "outdir").mkdir()
    res = _cea("predict", str(finished_run), "-i", str(inp), "-o", "outdir", cwd=tmp_path)
    _refused(res, 2, "outdir")
    assert ".tmp" not in res.stderr


def test_all_status_zero_annotations_fail_validation(sample_copy: Path, tmp_path: Path) -> None:
    ann = sample_copy / "redsm5_annotations.csv"
    lines = ann.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    col = header.index("status")
    import csv
    import io

    rows = list(csv.reader(io.StringIO(ann.read_text(encoding="utf-8"))))
    for row in rows[1:]:
        row[col] = "0"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    ann.write_text(buf.getvalue(), encoding="utf-8")
    _refused(_cea("data", "validate", str(sample_copy), cwd=tmp_path), 5, "status 0")


# ---- policy, baseline ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "toml",
    [
        "tool = 1\n",
        "[tool]\ncea = 'x'\n",
        "[tool.cea]\naudit = [1, 2]\n",
        '[[tool.cea.audit.waivers]]\nid = "B101"\nreason = "r"\nexpires = 2026-12-31T10:00:00\n',
        '[tool.cea.audit.licenses]\nexceptions = [{package = "x", reason = "r", expires = "soon"}]\n',
    ],
)
def test_policies_of_the_wrong_shape_are_config_errors(tmp_path: Path, toml: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(toml)
    res = _cea("audit", "--checks", "policy", "--policy", str(policy), cwd=tmp_path)
    _refused(res, 3, str(policy))


def test_a_bench_baseline_holding_a_list_is_refused_naming_it(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    base.write_text("[1, 2, 3]")
    res = _cea("bench", "augment", "--n", "20", "--baseline", str(base), cwd=tmp_path)
    _refused(res, 2, str(base))


# ---- hypothesis: damaged inputs to every reader ------------------------------------------------

_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _damaged(valid: str) -> st.SearchStrategy[bytes]:
    """Truncations of a valid file, random bytes, wrong-typed JSON, deep nesting, empty."""
    raw = valid.encode("utf-8")
    return st.one_of(
        st.integers(0, len(raw)).map(lambda n: raw[:n]),
        st.binary(max_size=64),
        _json.map(lambda v: json.dumps(v).encode()),
        st.integers(50, 5000).map(lambda d: ("[" * d + "]" * d).encode()),
        st.integers(1000, 200_000).map(lambda d: ('{"a":' * d + "1" + "}" * d).encode()),
        st.just(b""),
        st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )


def _no_internal_error(fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    from cea.errors import CeaError, ExitCode

    try:
        fn(*args, **kwargs)
    except CeaError as exc:
        assert exc.exit_code != ExitCode.RUNTIME, exc.message
        assert exc.message


_FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_VALID_POLICY = '[tool.cea.audit]\nfail_on = "medium"\n[[tool.cea.audit.waivers]]\nid = "B1"\nreason = "r"\nexpires = 2026-12-31\n'


@_FAST
@given(data=_damaged(_line("a", "I sleep badly.", ["SLEEP_ISSUES"]) + "\n"))
def test_damaged_jsonl_never_an_internal_error(tmp_path: Path, data: bytes) -> None:
    from cea.data.readers import ensure_usable, load_dataset
    from cea.evaluate.batch_predict import read_inputs

    path = tmp_path / "d.jsonl"
    path.write_bytes(data)
    _no_internal_error(
        lambda: ensure_usable(load_dataset("generic", str(path), ("SLEEP_ISSUES",)), strict=False)
    )
    _no_internal_error(read_inputs, path)


@_FAST
@given(data=_damaged(_VALID_POLICY))
def test_damaged_policies_never_an_internal_error(tmp_path: Path, data: bytes) -> None:
    from datetime import date

    from cea.audit.policy import load_policy

    path = tmp_path / "pyproject.toml"
    path.write_bytes(data)
    _no_internal_error(load_policy, path, date(2026, 1, 1))


@_FAST
@given(data=_damaged('{"kind": "augment", "params": {}, "result": {"augmenters": {}}}'))
def test_damaged_bench_baselines_never_an_internal_error(tmp_path: Path, data: bytes) -> None:
    from cea.bench.baseline import compare

    path = tmp_path / "base.json"
    path.write_bytes(data)
    result = {"augmenters": {"synonym": {"p50_ms": 1.0}}}
    _no_internal_error(compare, path, "augment", {}, result, 0.1)


@_FAST
@given(
    config=_damaged("seed: 13\ntrain:\n  epochs: 1\n"),
    tracking=_damaged('{"run_id": "abc", "uri": "sqlite:///x.db"}'),
)
def test_damaged_run_config_and_tracking_record_never_an_internal_error(
    tmp_path: Path, config: bytes, tracking: bytes
) -> None:
    from cea.run_folder import read_run_config, recorded_tracking

    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_bytes(config)
    (run / "tracking.json").write_bytes(tracking)
    _no_internal_error(read_run_config, run)
    _no_internal_error(recorded_tracking, run)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    meta=_damaged('{"labels": ["FATIGUE"], "thresholds": {"FATIGUE": 0.5}, "pair_encoding": false}')
)
def test_damaged_run_meta_never_an_internal_error(
    finished_run: Path, tmp_path_factory: pytest.TempPathFactory, meta: bytes
) -> None:
    from cea.run_folder import load_run_model
    from cea.security.manifest import write_manifest

    run = tmp_path_factory.mktemp("meta") / "r"
    shutil.copytree(finished_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    (run / "cea_meta.json").write_bytes(meta)
    write_manifest(run)
    _no_internal_error(load_run_model, run, device="cpu")


# ---- tracking store ------------------------------------------------------------------------------


def test_a_read_only_command_never_creates_or_migrates_a_store(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"")  # as a full disk leaves it while the store is being created
    _refused(_cea("runs", "list", cwd=tmp_path), 4, str(db), "empty")
    assert db.stat().st_size == 0  # not migrated
    db.write_bytes(b"not a database at all" * 10)
    _refused(_cea("runs", "list", cwd=tmp_path), 8, str(db))
    import sqlite3

    db.unlink()
    with sqlite3.connect(db) as con:  # a first write cut short: some tables, no schema version
        con.execute("CREATE TABLE experiments (experiment_id INTEGER)")
    before = db.read_bytes()
    _refused(_cea("runs", "list", cwd=tmp_path), 8, str(db), "half-created")
    assert db.read_bytes() == before


def test_a_dead_tracking_server_is_unreachable_not_a_missing_run(
    finished_run: Path, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    run = tmp_path / "r"
    shutil.copytree(finished_run, run)
    (run / "tracking.json").write_text(json.dumps({"run_id": "0" * 32, "uri": uri}))
    from cea.security.manifest import write_manifest

    write_manifest(run)
    res = _cea("register-model", str(run), "--name", "m", "--tracking-uri", uri, cwd=tmp_path)
    _refused(res, 4, uri, "unreachable")
    _refused(_cea("runs", "list", "--tracking-uri", uri, cwd=tmp_path), 4, uri, "unreachable")


@pytest.mark.parametrize("size", ["300k", "1300k", "2200k"])
def test_a_full_disk_is_reported_with_the_path(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path, size: str
) -> None:
    """Wherever the disk fills (best weights, trainer_state.pt via torch.save, the final
    model), the one line names a path under the full folder, not a temp name or nothing."""
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(full)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()[:80]})")
    try:
        res = _cea(
            "train", "--config", "tiny", "--backbone", str(tiny_backbone), "--data",
            str(small_sample), "--runs-dir", str(full), "--run-name", "r", "--no-track", "-q",
            "train.epochs=1", "train.threads=1", cwd=tmp_path,
        )  # fmt: skip
        if res.returncode == 0:  # pragma: no cover - it all fitted
            pytest.skip(f"the run fitted in {size}")
        _refused(res, 6, "No space left on device", f"{full}/r")
        assert ".tmp" not in res.stderr
        run = full / "r"
        assert not run.exists() or (run / "checkpoints" / "last").is_dir()
        assert not [p for p in full.rglob("*") if p.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", "-l", str(full)], check=False)
