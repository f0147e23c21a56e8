"""`cea register-model`: models from code (no pickle), tags, aliases, the promotion gate, and
`models:/NAME@ALIAS` as a source for `cea predict` / `cea eval`; the model card."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cea.evaluate.metrics import evidence_recall
from cea.security.io import sha256_file
from cea.security.manifest import write_manifest

TEXTS = [
    "I feel so sad and empty every single day.",
    "I can't sleep at night and I'm exhausted.",
    "Nothing interests me anymore, not even games.",
    "Had a great time hiking with my friends today!",
]


@pytest.fixture(scope="module")
def store(tracked_run: Path) -> dict[str, str]:
    uri = json.loads((tracked_run / "tracking.json").read_text())["uri"]
    return {"uri": uri, "work": str(tracked_run.parent.parent)}


def _register(cli, run: Path, store: dict[str, str], *args: str) -> tuple[int, dict, str]:
    res = cli("register-model", str(run), "--json", "--tracking-uri", store["uri"], *args)
    return res.exit_code, (json.loads(res.stdout) if res.exit_code == 0 else {}), res.stderr


def _inputs(tmp: Path) -> Path:
    path = tmp / "in.jsonl"
    path.write_text(
        "".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(TEXTS))
    )
    return path


def _probs(path: Path) -> np.ndarray:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return np.array([list(r["probs"].values()) for r in rows])


def test_register_tags_alias_and_no_pickle(cli, tracked_run: Path, store) -> None:
    code, out, err = _register(cli, tracked_run, store, "--name", "crit", "--alias", "staging")
    assert code == 0, err
    assert out["load_with"] == "models:/crit@staging"
    tags = out["tags"]
    assert tags["cea.weights_sha256"] == sha256_file(tracked_run / "model.safetensors")
    meta = json.loads((tracked_run / "cea_meta.json").read_text())
    assert tags["cea.data_hash"] == meta["data_hash"]
    assert tags["cea.config_hash"] == meta["config_hash"]
    assert float(tags["cea.eval.macro_f1"]) == pytest.approx(meta["metrics"]["test"]["macro_f1"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["uri"], registry_uri=store["uri"])
    mv = client.get_model_version_by_alias("crit", "staging")
    assert mv.tags["cea.loader_sha256"] == tags["cea.loader_sha256"]
    assert mv.tags["cea.git_sha"]
    # the logged model: MLmodel, yaml/json/txt, the loader .py, safetensors, tokenizer; no pickle
    from cea.audit.artifacts import scan_path

    logged = [p for p in Path(store["work"], "mlartifacts").rglob("*") if p.is_file()]
    names = {p.name for p in logged}
    assert {"MLmodel", "pyfunc_model.py", "model.safetensors", "MODEL_CARD.md"} <= names
    assert not [p for p in logged if p.suffix in {".pkl", ".pickle", ".joblib", ".pt", ".bin"}]
    _, findings, _ = scan_path(logged)
    assert findings == []


def test_pyfunc_in_fresh_process_matches_cea_predict(
    cli, tracked_run: Path, store, tmp_path: Path
) -> None:
    code, _, err = _register(cli, tracked_run, store, "--name", "fresh", "--alias", "candidate")
    assert code == 0, err
    inp = _inputs(tmp_path)
    out_run = tmp_path / "run.jsonl"
    assert cli("predict", str(tracked_run), "-i", str(inp), "-o", str(out_run), "-q").exit_code == 0
    out_reg = tmp_path / "reg.jsonl"
    res = cli(
        "predict", "models:/fresh@candidate", "-i", str(inp), "-o", str(out_reg), "-q",
        "--tracking-uri", store["uri"],
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    script = (
        "import json, sys, mlflow.pyfunc, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/fresh@candidate')\n"
        "df = m.predict(pd.DataFrame({'text': json.loads(sys.argv[1])}))\n"
        "print(json.dumps(df.values.tolist()))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"], "MLFLOW_REGISTRY_URI": store["uri"]}
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(TEXTS)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    pyfunc = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(pyfunc, _probs(out_run), atol=1e-5)
    np.testing.assert_allclose(_probs(out_reg), _probs(out_run), atol=1e-6)


def test_protected_alias_gate(cli, tracked_run: Path, store, tmp_path: Path) -> None:
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("registry:\n  protected_aliases: [champion]\n  gate_min: 0.0\n")
    strict = tmp_path / "strict.yaml"
    strict.write_text("registry:\n  protected_aliases: [champion]\n  gate_min: 0.999\n")
    code, _, err = _register(
        cli, tracked_run, store, "--name", "gated", "--alias", "champion", "--config", str(lenient)
    )
    assert code == 0, err
    code, _, err = _register(
        cli, tracked_run, store, "--name", "gated", "--alias", "champion", "--config", str(strict)
    )
    assert code == 1
    assert "macro_f1" in err and "minimum 0.999" in err
    # weights changed after training (and the manifest re-written to hide it): refused
    copy = tmp_path / "changed"
    shutil.copytree(tracked_run, copy, ignore=shutil.ignore_patterns("eval"))
    blob = bytearray((copy / "model.safetensors").read_bytes())
    blob[-1] ^= 0x01
    (copy / "model.safetensors").write_bytes(bytes(blob))
    write_manifest(copy)
    code, _, err = _register(
        cli, copy, store, "--name", "gated", "--alias", "champion", "--config", str(lenient)
    )
    assert code == 1
    assert "weights changed after training" in err
    # an unprotected alias is not gated
    code, _, err = _register(cli, copy, store, "--name", "gated", "--alias", "dev")
    assert code == 0, err


def test_eval_of_a_registered_model_and_tampered_store(
    cli, tracked_run: Path, store, tmp_path: Path
) -> None:
    code, _, err = _register(cli, tracked_run, store, "--name", "evalme", "--alias", "staging")
    assert code == 0, err
    res = cli(
        "eval", "models:/evalme@staging", "--json", "--n-boot", "200", "--name", "reg",
        "--tracking-uri", store["uri"], "--output-dir", str(tmp_path / "ev"),
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    meta = json.loads((tracked_run / "cea_meta.json").read_text())
    assert out["metrics"]["macro_f1"] == meta["metrics"]["test"]["macro_f1"]
    assert out["run_dir"] == "models:/evalme@staging"
    assert (tmp_path / "ev" / "reg" / "metrics.json").is_file()
    # change the stored weights behind the registry's back: refused with exit 8
    version = json.loads(
        cli("register-model", str(tracked_run), "--json", "--tracking-uri", store["uri"],
            "--name", "tamper").stdout
    )["version"]  # fmt: skip
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["uri"], registry_uri=store["uri"])
    source = client.get_model_version("tamper", version).source
    stored = [
        p
        for p in Path(store["work"], "mlartifacts").rglob("artifacts/run/model.safetensors")
        if source.split("/")[-1] in str(p)
    ]
    assert len(stored) == 1
    stored[0].write_bytes(stored[0].read_bytes()[:-1] + b"\x00")
    res = cli("predict", f"models:/tamper/{version}", "-i", str(_inputs(tmp_path)),
              "-o", str(tmp_path / "x.jsonl"), "--tracking-uri", store["uri"])  # fmt: skip
    assert res.exit_code == 8
    assert "does not match its cea.weights_sha256 tag" in res.stderr
    assert not (tmp_path / "x.jsonl").exists()
    assert cli("predict", "models:/nope@x", "-i", str(_inputs(tmp_path)), "-o",
               str(tmp_path / "y.jsonl"), "--tracking-uri", store["uri"]).exit_code == 4  # fmt: skip


def test_register_refuses_bad_names_and_unfinished_runs(
    cli, tracked_run: Path, store, tmp_path
) -> None:
    assert _register(cli, tracked_run, store, "--name", "a/b")[0] == 2
    assert _register(cli, tracked_run, store, "--name", "ok", "--alias", "3")[0] == 2
    assert _register(cli, tmp_path, store, "--name", "ok")[0] == 2


def test_model_card(cli, tracked_run: Path, tmp_path: Path) -> None:
    res = cli("runs", "card", str(tracked_run))
    assert res.exit_code == 0, res.stderr
    text = res.stdout
    assert "not a diagnostic device" in text
    assert "DEPRESSED_MOOD" in text and "threshold" in text
    assert cli("eval", str(tracked_run), "--name", "forcard", "--no-track", "-q").exit_code == 0
    out = tmp_path / "card.md"
    assert cli("runs", "card", str(tracked_run), "-o", str(out)).exit_code == 0
    assert "95 % bootstrap intervals" in out.read_text()
    assert "`forcard`" in out.read_text()


def test_quiet_model_card(cli, tracked_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "quiet.md"
    res = cli("runs", "card", str(tracked_run), "-o", str(out), "--quiet")
    assert res.exit_code == 0 and res.stdout == ""  # written, nothing said
    assert "not a diagnostic device" in out.read_text()
    res = cli("runs", "card", str(tracked_run), "-q")  # no -o: the card is the result
    assert res.stdout == out.read_text()


def test_evidence_recall_at_k() -> None:
    keys = [("p1", "A")] * 4 + [("p2", "A")] * 3 + [("p3", "A")] * 2
    target = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1], dtype=float)
    prob = np.array([0.9, 0.8, 0.1, 0.2, 0.5, 0.4, 0.3, 0.9, 0.1])
    out = evidence_recall(keys, target, prob, ks=(1, 2, 4))
    assert out["pairs_with_evidence"] == 2  # p2 has no gold sentence
    # p1: gold {0, 3}; order 0,1,3,2 -> recall@1 .5, @2 .5, @4 1; p3: gold {8}, order 7,8
    assert out["recall_at_k"] == {"1": 0.25, "2": 0.75, "4": 1.0}
    assert out["hit_at_k"] == {"1": 0.5, "2": 1.0, "4": 1.0}


# ---- issue #16: the gate reads the right number, from the gatekeeper's policy ---------------


def test_gate_ignores_an_eval_of_other_data_and_can_gate_on_the_lower_bound(
    cli, tracked_run: Path, store, tmp_path: Path
) -> None:
    from cea.tracking.registry import gate_metric

    run = tmp_path / "run"
    shutil.copytree(tracked_run, run, ignore=shutil.ignore_patterns("eval"))
    meta = json.loads((run / "cea_meta.json").read_text())
    res = cli("eval", str(run), "--name", "real", "--n-boot", "200", "--no-track", "--json")
    assert res.exit_code == 0, res.stderr
    real = json.loads(res.stdout)
    point = gate_metric(run, meta, "macro_f1")
    assert point.source == "eval/real" and point.value == real["metrics"]["macro_f1"]
    lower = gate_metric(run, meta, "macro_f1", "lower")
    assert lower.value == real["intervals"]["macro_f1"][0] <= point.value
    # a newer evaluation of other data (hash differs), manifest rewritten: passed over
    fake = run / "eval" / "fake"
    shutil.copytree(run / "eval" / "real", fake)
    report = json.loads((fake / "metrics.json").read_text())
    report.update(name="fake", data_hash="0" * 64)
    report["metrics"]["macro_f1"] = 0.99
    (fake / "metrics.json").write_text(json.dumps(report))
    write_manifest(fake)
    chosen = gate_metric(run, meta, "macro_f1")
    assert chosen.source == "eval/real" and chosen.value != 0.99
    assert any("other data" in n for n in chosen.notes)


def test_gate_on_lower_without_an_interval_and_a_run_without_test_split_are_refused(
    cli, train_tracked, tmp_path: Path
) -> None:
    work = tmp_path / "w"
    work.mkdir()
    # the run's own config tries to unprotect champion and lower the bar: ignored
    run = train_tracked(work, "self", "registry.protected_aliases=[]",
                   "registry.gate_min=0.0")  # fmt: skip
    store = {"uri": json.loads((run / "tracking.json").read_text())["uri"]}
    code, _, err = _register(cli, run, store, "--name", "g", "--alias", "champion",
                             "--set", "registry.gate_on=lower", "--set", "registry.gate_min=0")  # fmt: skip
    assert code == 1 and "needs an interval" in err
    no_test = train_tracked(work, "notest", "data.split.test=0",
                       "data.split.validation=0.3")  # fmt: skip
    meta = json.loads((no_test / "cea_meta.json").read_text())
    assert meta["final_split"] == "validation" and meta["test_split"] is False
    code, _, err = _register(cli, no_test, store, "--name", "g", "--alias", "champion",
                             "--set", "registry.gate_min=0")  # fmt: skip
    assert code == 1 and "no test split" in err


# ---- issue #30: models:/ against a real tracking server ---------------------------------------


SERVER_START_S = 120


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` (sqlite backend, served artifacts) on 127.0.0.1, one per module."""
    import time
    import urllib.request

    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    exe = Path(sys.executable).with_name("mlflow")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "mlflow"]
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [*cmd, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=root,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    # a minute, doubled: on 2 shared cores under load (load average 17 seen) its start-up
    # alone took over 60 s
    deadline = time.monotonic() + SERVER_START_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.skip(f"mlflow server exited ({proc.returncode}): see {root / 'server.log'}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.skip(f"mlflow server did not answer /health within {SERVER_START_S} s")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def served_run(mlflow_server: str, tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny run trained with `--tracking-uri http://...` in experiment `served`, and what its
    `cea train --json` printed."""
    import contextlib
    import io

    from cea.cli import main

    work = tmp_path_factory.mktemp("served")
    old = Path.cwd()
    os.chdir(work)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
            main(
                ["train", "--config", "tiny", "--backbone", str(tiny_backbone), "--run-name",
                 "srv", "--json", "--tracking-uri", mlflow_server, "--experiment", "served",
                 "train.epochs=1", "tracking.system_metrics=false"]
            )  # fmt: skip
    finally:
        os.chdir(old)
    assert exc.value.code == 0
    return work / "runs" / "srv", json.loads(out.getvalue())


def _cea(cwd: Path, *args: str, env_uri: str | None = None) -> subprocess.CompletedProcess[str]:
    """`cea ARGS` in a fresh process (no MLflow state shared with this one) in `cwd`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if env_uri is not None:
        env["MLFLOW_TRACKING_URI"] = env_uri
    return subprocess.run(
        [sys.executable, "-m", "cea", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.service
def test_train_json_names_its_mlflow_run_on_the_server(mlflow_server: str, served_run) -> None:
    from mlflow.tracking import MlflowClient

    run_dir, summary = served_run
    recorded = json.loads((run_dir / "tracking.json").read_text())
    assert summary["mlflow_run_id"] == recorded["run_id"]
    assert summary["tracking"] == recorded
    run = MlflowClient(mlflow_server).get_run(summary["mlflow_run_id"])
    assert run.data.tags["cea.run_name"] == "srv"
    assert run.data.metrics["test/macro_f1"] == pytest.approx(
        summary["metrics"]["test"]["macro_f1"]
    )


@pytest.mark.service
def test_runs_show_finds_a_run_in_any_experiment(
    cli, mlflow_server: str, served_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, summary = served_run
    run_id = summary["mlflow_run_id"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # MLflow's variable, no flag
    res = cli("runs", "list", "--experiment", "served", "--json")
    assert res.exit_code == 0, res.stderr
    assert [r["run_id"] for r in json.loads(res.stdout)["runs"]] == [run_id]
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    res = cli("runs", "show", run_id[:10], "--tracking-uri", mlflow_server, "--json")
    assert res.exit_code == 0, res.stderr  # no --experiment: the run is in "served", not "cea"
    shown = json.loads(res.stdout)
    assert shown["run_id"] == run_id and shown["name"] == "srv"
    assert shown["params"]["tracking.experiment"] == "served"
    res = cli("runs", "show", run_id, "--tracking-uri", mlflow_server, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["run_id"] == run_id
    res = cli("runs", "show", run_id[:10], "--tracking-uri", mlflow_server, "--experiment", "cea")
    assert res.exit_code == 4  # told where to look, it looks only there


@pytest.mark.service
def test_predict_and_eval_of_models_uri_on_a_tracking_server(
    cli, mlflow_server: str, served_run, tmp_path: Path
) -> None:
    run_dir, _ = served_run
    reg = _cea(run_dir.parent.parent, "register-model", str(run_dir), "--name", "dsm5-criteria",
               "--alias", "candidate", "--tracking-uri", mlflow_server, "--json")  # fmt: skip
    assert reg.returncode == 0, reg.stderr[-2000:]
    assert json.loads(reg.stdout)["load_with"] == "models:/dsm5-criteria@candidate"
    inp = _inputs(tmp_path)
    expected = tmp_path / "expected.jsonl"
    assert cli("predict", str(run_dir), "-i", str(inp), "-o", str(expected), "-q").exit_code == 0
    res = cli("eval", str(run_dir), "--name", "local", "--n-boot", "200", "--no-track", "--json")
    assert res.exit_code == 0, res.stderr
    local = json.loads(res.stdout)

    # --tracking-uri, from an empty folder: found on the server; no mlflow.db appears
    flag_dir = tmp_path / "flag"
    flag_dir.mkdir()
    out = tmp_path / "flag.jsonl"
    proc = _cea(flag_dir, "predict", "models:/dsm5-criteria@candidate", "-i", str(inp),
                "-o", str(out), "--tracking-uri", mlflow_server)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(_probs(out), _probs(expected), atol=1e-6)
    assert not (flag_dir / "mlflow.db").exists()
    proc = _cea(flag_dir, "eval", "models:/dsm5-criteria@candidate", "--json", "--n-boot",
                "200", "--tracking-uri", mlflow_server)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["metrics"]["macro_f1"] == local["metrics"]["macro_f1"]
    assert report["intervals"]["macro_f1"] == local["intervals"]["macro_f1"]
    assert {p.name for p in flag_dir.iterdir()} == {"eval"}  # the evaluation, no store

    # MLFLOW_TRACKING_URI instead of the flag: the same model, alias and version forms
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    out = tmp_path / "env.jsonl"
    proc = _cea(env_dir, "predict", "models:/dsm5-criteria/1", "-i", str(inp), "-o", str(out),
                env_uri=mlflow_server)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(_probs(out), _probs(expected), atol=1e-6)
    proc = _cea(env_dir, "eval", "models:/dsm5-criteria@candidate", "--n-boot", "200",
                env_uri=mlflow_server)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    m, ci = local["metrics"], local["intervals"]
    assert (
        f"macro-F1 {m['macro_f1']:.3f} [{ci['macro_f1'][0]:.3f}, {ci['macro_f1'][1]:.3f}]"
        in proc.stdout
    )
    # human output to a pipe is not cut at 80 columns: whole criterion names in the table
    assert "DEPRESSED_MOOD" in proc.stdout and "SUICIDAL_THOUGHTS" in proc.stdout
    assert not (env_dir / "mlflow.db").exists()

    # neither: the local default store, which is not there; a read creates none
    none_dir = tmp_path / "none"
    none_dir.mkdir()
    proc = _cea(none_dir, "predict", "models:/dsm5-criteria@candidate", "-i", str(inp),
                "-o", str(tmp_path / "none.jsonl"))  # fmt: skip
    assert proc.returncode == 4
    assert "no tracking store" in proc.stderr and "MLFLOW_TRACKING_URI" in proc.stderr
    assert list(none_dir.iterdir()) == []
    # a wrong alias or name: exit 4, saying what the store does hold
    res = cli("predict", "models:/dsm5-criteria@nope", "-i", str(inp), "-o",
              str(tmp_path / "nope.jsonl"), "--tracking-uri", mlflow_server)  # fmt: skip
    assert res.exit_code == 4
    assert "'dsm5-criteria' has versions 1, aliases @candidate" in res.stderr
    res = cli("eval", "models:/dsm5-criterias@candidate", "--tracking-uri", mlflow_server)
    assert res.exit_code == 4 and "no registered model 'dsm5-criterias'" in res.stderr
