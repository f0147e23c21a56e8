"""MLflow tracking: what a run records, resume into the same run, and no secret anywhere."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from cea.config import load_config
from cea.tracking.redact import (
    MASK,
    flatten,
    redact_mapping,
    redact_text,
    register_secret,
    strip_url_credentials,
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _train(cli, tiny: Path, data: Path, name: str, *extra: str):
    from tests.conftest import tiny_train_args

    return cli(
        *tiny_train_args(tiny, data, name),
        "--json",
        "train.epochs=2",
        "tracking.system_metrics_interval_s=0.2",
        *extra,
    )


def _client(workdir: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")


def test_train_records_params_metrics_system_artifacts_tags(
    cli, workdir, tiny_backbone, small_sample
) -> None:
    res = _train(cli, tiny_backbone, small_sample, "t1")
    assert res.exit_code == 0, res.stderr
    assert (workdir / "mlflow.db").is_file() and (workdir / "mlartifacts").is_dir()
    assert not (workdir / "mlruns").exists()
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    run_id = json.loads((run_dir / "tracking.json").read_text())["run_id"]
    client = _client(workdir)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["train.epochs"] == "2" and p["model.max_length"] == "64" and p["seed"] == "13"
    assert int(p["derived.n_train"]) > 0
    steps = client.get_metric_history(run_id, "train/loss")
    assert len(steps) > 2 and len({m.step for m in steps}) == len(steps)
    for key in ("train/lr", "train/samples_per_s", "train/data_wait_s"):
        assert client.get_metric_history(run_id, key)
    epochs = client.get_metric_history(run_id, "epoch/val_loss")
    assert sorted(m.step for m in epochs) == [1, 2]
    assert client.get_metric_history(run_id, "epoch/duration_s")
    assert client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert client.get_metric_history(run_id, "system/process_memory_rss_megabytes")
    m = run.data.metrics
    assert "test/macro_f1" in m and "validation/DEPRESSED_MOOD/f1" in m
    t = run.data.tags
    meta = json.loads((run_dir / "cea_meta.json").read_text())
    assert t["cea.data_hash"] == meta["data_hash"]
    assert t["cea.config_hash"] == meta["config_hash"]
    assert t["cea.run_dir"] == str(run_dir.resolve())
    assert t["cea.version.torch"] and t["cea.git_sha"]
    arts = {a.path for a in client.list_artifacts(run_id, "run")}
    assert {"run/config.yaml", "run/cea_meta.json"} <= arts
    assert meta["tracking"]["run_id"] == run_id
    # no example text by default
    assert not client.list_artifacts(run_id, "examples")


def test_log_examples_is_opt_in(cli, workdir, tiny_backbone, small_sample) -> None:
    res = _train(
        cli, tiny_backbone, small_sample, "ex", "tracking.log_examples=true", "train.epochs=1"
    )
    assert res.exit_code == 0, res.stderr
    run_id = json.loads((workdir / "runs" / "ex" / "tracking.json").read_text())["run_id"]
    arts = [a.path for a in _client(workdir).list_artifacts(run_id, "examples")]
    assert arts == ["examples/train_examples.jsonl"]


def test_no_track_writes_no_store(cli, workdir, tiny_backbone, small_sample) -> None:
    res = _train(cli, tiny_backbone, small_sample, "nt", "--no-track")
    assert res.exit_code == 0, res.stderr
    assert not (workdir / "mlflow.db").exists() and not (workdir / "mlruns").exists()
    assert not (workdir / "runs" / "nt" / "tracking.json").exists()


def test_resume_continues_the_same_mlflow_run(cli, workdir, tiny_backbone, small_sample) -> None:
    from cea.progress import NullProgress
    from cea.tracking.targets import open_tracker
    from cea.train.run import run_training

    class Crash(NullProgress):
        def event(self, kind: str, payload: dict) -> None:
            if kind == "checkpoint" and payload["epoch"] == 1:
                raise KeyboardInterrupt

    cfg = load_config(
        "tiny",
        [
            f"model.backbone={tiny_backbone}",
            f"data.path={small_sample}",
            "output.run_name=rs",
            "train.epochs=3",
            "tracking.system_metrics=false",
        ],
    )
    run_dir = workdir / "runs" / "rs"
    tracker = open_tracker(cfg, run_dir, resume=False, uri_flag=None)
    from cea.errors import Interrupted

    with pytest.raises(Interrupted, match="kept"):  # a kill after epoch 1's checkpoint
        run_training(cfg, run_dir, progress=Crash(), tracker=tracker)
    tracker.end("KILLED")
    run_id = tracker.run_id
    assert _client(workdir).get_run(run_id).info.status == "KILLED"
    res = cli("train", "--resume", str(run_dir), "--json")
    assert res.exit_code == 0, res.stderr
    client = _client(workdir)
    assert len(client.search_runs([client.get_experiment_by_name("cea").experiment_id])) == 1
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run_id, "epoch/val_loss")) == [1, 2, 3]


def test_runs_list_and_show(cli, workdir, tiny_backbone, small_sample) -> None:
    assert _train(cli, tiny_backbone, small_sample, "l1", "train.epochs=1").exit_code == 0
    res = cli("runs", "list", "--json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)["runs"]
    assert [r["name"] for r in rows] == ["l1"]
    assert rows[0]["status"] == "FINISHED" and rows[0]["test_macro_f1"] is not None
    shown = cli("runs", "show", rows[0]["run_id"][:8], "--json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["params"]["train.epochs"] == "1"
    assert "l1" in cli("runs", "list").stdout
    assert cli("runs", "show", "nope").exit_code == 4
    assert cli("runs", "list", "--experiment", "missing").exit_code == 4


# ---- redaction ---------------------------------------------------------------------------


def test_redaction_helper() -> None:
    assert redact_text("postgresql://u:pw123@h:5432/db") == f"postgresql://u:{MASK}@h:5432/db"
    assert (
        redact_text("https://user:abc%40d@host/x?token=zzzz99")
        == f"https://user:{MASK}@host/x?token={MASK}"
    )
    assert redact_text("password = 'hunter22'") == f"password = '{MASK}'"
    register_secret("s3cr3t-value-xyz")
    assert "s3cr3t" not in redact_text("the key is s3cr3t-value-xyz, ok")
    red = redact_mapping({"tracking": {"uri": "http://a:b-secret@h"}, "api_key": "k-1234", "n": 3})
    assert red == {"tracking": {"uri": f"http://a:{MASK}@h"}, "api_key": MASK, "n": 3}
    assert strip_url_credentials("https://me:pw@h:1/p") == ("https://h:1/p", "me", "pw")
    assert strip_url_credentials("sqlite:///x.db") == ("sqlite:///x.db", None, None)
    assert flatten({"a": {"b": 1, "c": {"d": [1]}}}) == {"a.b": 1, "a.c.d": [1]}


def test_redaction_in_key_value_text() -> None:
    out = redact_text("connect failed: password=hunter22 host=db")
    assert "hunter22" not in out and "host=db" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path):
    port = _free_port()
    srv = tmp_path / "server"
    srv.mkdir()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{srv / 'store.db'}",
            "--artifacts-destination",
            str(srv / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not start on 127.0.0.1")
    yield port, srv
    proc.terminate()
    proc.wait(timeout=30)


def _cea_train(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cea", "train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.service
def test_secrets_never_written_or_printed(
    tmp_path: Path, tiny_backbone: Path, small_sample: Path, mlflow_server
) -> None:
    port, _ = mlflow_server
    flag_pw, cfg_pw, env_tok = "PWsecret4242flag", "PWsecret5353config", "TOKsecret9191env"
    work = tmp_path / "work"
    work.mkdir()
    cfg = work / "cfg.yaml"
    cfg.write_text(
        f"model:\n  backbone: {tiny_backbone}\n"
        f"data:\n  path: {small_sample}\n"
        "train:\n  epochs: 1\n"
        "tracking:\n"
        f"  uri: http://cea:{cfg_pw}@127.0.0.1:{port}\n"  # a password in a config value
        "  experiment: secret-test\n"
        "  system_metrics_interval_s: 0.2\n"
    )
    env = {**os.environ, "HF_TOKEN": env_tok, "MLFLOW_TRACKING_TOKEN": env_tok}
    printed = ""
    run_ids = []
    for name, extra in (
        ("from-config", []),
        ("from-flag", ["--tracking-uri", f"http://cea:{flag_pw}@127.0.0.1:{port}"]),
    ):
        out = _cea_train(work, env, "--config", str(cfg), "--run-name", name, "--json", *extra)
        assert out.returncode == 0, out.stderr
        json.loads(out.stdout)  # --json stays parseable (MLflow's "View run" line suppressed)
        printed += out.stdout + out.stderr
        run_ids.append(json.loads((work / "runs" / name / "tracking.json").read_text())["run_id"])
    # an error message that would carry the URL is redacted too
    bad = _cea_train(
        work,
        env,
        "--config",
        str(cfg),
        "--run-name",
        "bad",
        "--tracking-uri",
        f"http://cea:{flag_pw}@127.0.0.1:1",
    )
    assert bad.returncode == 6
    printed += bad.stdout + bad.stderr
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["tracking.uri"].startswith(f"http://cea:{MASK}@127.0.0.1")
        assert client.list_artifacts(run_id, "run")
    secrets = [flag_pw, cfg_pw, env_tok]
    for secret in secrets:
        assert secret not in printed
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != cfg:  # the user's own config file holds its own secret
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{secret} found in {path}"


def test_gpu_telemetry_through_nvml_warns_once_on_throttling_and_full_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NVML cannot run on this CPU host: a stand-in module with NVML's API (nvidia-ml-py's
    names) gives one throttling device at 97 % memory."""
    import types

    from cea.tracking.system import SystemMetrics

    fake = types.ModuleType("pynvml")
    fake.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]
    fake.nvmlInit = lambda: None  # type: ignore[attr-defined]
    fake.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    fake.nvmlDeviceGetCount = lambda: 1  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    fake.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=88)  # type: ignore[attr-defined]
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=97, total=100)  # type: ignore[attr-defined]
    fake.nvmlDeviceGetTemperature = lambda h, kind: 91  # type: ignore[attr-defined]
    fake.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0x1 | 0x40  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    warnings: list[str] = []
    sm = SystemMetrics(lambda m, i: None, warn=warnings.append)
    first = sm.sample()
    sm.sample()
    assert first["system/gpu_0_utilization_percentage"] == 88.0
    assert first["system/gpu_0_temperature_celsius"] == 91.0
    assert first["system/gpu_0_throttling"] == 1.0
    assert len(warnings) == 2  # once per device and kind, not once per sample
    assert "throttling" in warnings[0] and "0x40" in warnings[0] and "97 %" in warnings[1]
    fake.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0x1  # type: ignore[attr-defined]
    assert sm.sample()["system/gpu_0_throttling"] == 0.0  # idle is no throttling


def test_no_nvml_means_no_gpu_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    from cea.tracking.system import SystemMetrics

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: a CPU host
    sample = SystemMetrics(lambda m, i: None).sample()
    assert not [k for k in sample if "utilization" in k and "gpu" in k]


# ---- issue #30: the progress bar tells the truth -----------------------------------------------


class _AdvanceRecorder:
    """A ProgressSink that keeps what the loop reports: every advance's fields, every event."""

    def __init__(self) -> None:
        self.advances: list[tuple[str, dict]] = []
        self.events: list[tuple[str, dict]] = []

    def start(self, task: str, total: int | None) -> None:
        return None

    def advance(self, task: str, n: int = 1, **fields) -> None:
        self.advances.append((task, dict(fields)))

    def event(self, kind: str, payload: dict) -> None:
        self.events.append((kind, dict(payload)))

    def finish(self, task: str) -> None:
        return None


def test_progress_shows_the_running_mean_loss_and_dashes_until_known(
    workdir, tiny_backbone
) -> None:
    import math

    import torch

    from cea import api
    from cea.cli.progress import RichProgress
    from cea.train.loop import _Interval

    rec = _AdvanceRecorder()
    run = api.train(
        "tiny",
        [f"model.backbone={tiny_backbone}", "train.epochs=2", "train.log_every=1000",
         "train.grad_accum=2"],
        track=False,
        observer=rec,
    )  # fmt: skip
    epochs = [p for k, p in rec.events if k == "epoch"]
    assert len(epochs) == 2 == run.meta["epochs_run"]
    for e in epochs:
        shown = [f for t, f in rec.advances if t == f"epoch {e['epoch']}/2"]
        assert len(shown) > 2  # more batches than one interval sync (log_every=1000)
        # a number from the first batch on (no nan while the interval's loss is not synced)
        assert all(f["loss"] is not None and math.isfinite(f["loss"]) for f in shown)
        assert all(f["lr"] is not None and f["samples_per_s"] > 0 for f in shown)
        # the running mean of the epoch's losses: at its end, the epoch's train loss
        assert shown[-1]["loss"] == pytest.approx(e["train_loss"], abs=1e-5)
    # the bar: "-" before the first step, never nan / 0.00e+00 / 0 samples/s
    bar = RichProgress()
    bar.start("epoch 1/2", 10)
    column = bar.progress.columns[3]
    task = bar.progress.tasks[0]
    assert str(column.render(task)) == "loss -  lr -  - samples/s"
    first = next(f for t, f in rec.advances if t == "epoch 1/2")
    bar.advance("epoch 1/2", 1, **first)
    text = str(column.render(task))
    assert text == (
        f"loss {first['loss']:.4f}  lr {first['lr']:.2e}  {first['samples_per_s']:.0f} samples/s"
    )
    assert "nan" not in text and "0.00e+00" not in text

    # train/step_s: seconds per optimizer step, not the sum over the steps an event covers
    acc = _Interval(torch.zeros(()), wait=0.5, step=2.0, steps=20, optimizer_steps=10)
    assert acc.per_step() == (0.05, 0.2)
    steps = [p for k, p in rec.events if k == "step"]
    assert len(steps) == 2  # one sync per epoch here: at its end
    for p, e in zip(steps, epochs, strict=True):
        batches = len([t for t, _ in rec.advances if t == f"epoch {e['epoch']}/2"])
        assert p["steps"] == batches and p["optimizer_steps"] == math.ceil(batches / 2)
        assert p["step_s"] > 0 and p["data_wait_s"] >= 0
