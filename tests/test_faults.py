"""Faults a user, a disk, a signal or a network cause, provoked for real: a full tmpfs, a
read-only mount, SIGTERM/SIGINT sent to a training process, a tracking server that is killed, a
flipped byte in the resume state. Each gets its documented exit code and one line, no
"internal error", no traceback, nothing half-written left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _cea(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "cea", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
        check=False,
    )


def _one_line_error(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    assert any(line.startswith("error:") for line in stderr.splitlines()), stderr


@contextlib.contextmanager
def _tmpfs(path: Path, *options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join(options)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, check=False
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip()[:80]})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _train_args(tiny: Path, runs: Path, name: str, *extra: str) -> list[str]:
    return [
        "train",
        "--config",
        "tiny",
        "--backbone",
        str(tiny),
        "--runs-dir",
        str(runs),
        "--run-name",
        name,
        "train.threads=1",
        *extra,
    ]


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".old"))]


def test_full_disk_during_training(tiny_backbone: Path, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "full", "size=160k") as full:
        res = _cea(*_train_args(tiny_backbone, full, "r", "train.epochs=1"), "--no-track")
        assert res.returncode == 6, res.stderr
        _one_line_error(res.stderr)
        assert "No space left on device" in res.stderr
        assert not _leftovers(full), _leftovers(full)


def test_read_only_output_folder(tiny_backbone: Path, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "ro", "size=1m") as ro:
        res = _cea(*_train_args(tiny_backbone, ro, "r", "train.epochs=1"), "--no-track")
        assert res.returncode == 6, res.stderr
        _one_line_error(res.stderr)
        assert "Read-only file system" in res.stderr
        res = _cea("data", "sample", "--out", str(ro / "sample"))
        assert res.returncode == 6, res.stderr
        _one_line_error(res.stderr)


def test_output_in_a_missing_folder(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    res = _cea(
        "audit",
        "policy",
        str(repo),
        "--format",
        "sarif",
        "--output",
        str(tmp_path / "no" / "such" / "a.sarif"),
    )
    assert res.returncode == 4, res.stderr
    _one_line_error(res.stderr)
    assert "not found" in res.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dead_tracking_server_and_no_stray_store(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there any more
    res = _cea("runs", "list", "--tracking-uri", f"http://127.0.0.1:{port}", cwd=tmp_path)
    assert res.returncode == 4, res.stderr
    _one_line_error(res.stderr)
    assert "unreachable" in res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) <= 2  # error + hint
    # a read-only command where nothing was tracked creates no store
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _cea("runs", "list", cwd=empty)
    assert res.returncode == 4, res.stderr
    assert "no tracking store" in res.stderr
    assert list(empty.iterdir()) == []


def _wait_for(events: Path, needle: str, proc: subprocess.Popen[str], limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if events.exists() and needle in events.read_text():
            return
        if proc.poll() is not None:
            pytest.fail(f"the process ended before {needle!r} was seen")
        time.sleep(0.01)
    pytest.fail(f"{needle!r} not seen in time")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_marks_killed_and_resume_matches(
    tiny_backbone: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    common = _train_args(tiny_backbone, tmp_path, "full", "train.epochs=4")
    full = _cea(*common, "--json", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    expected = json.loads(full.stdout)

    events = tmp_path / "events.jsonl"
    args = _train_args(tiny_backbone, tmp_path, "cut", "train.epochs=4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cea", *args, "--json-events", str(events)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        _wait_for(events, '"event": "checkpoint"', proc)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    run = tmp_path / "cut"
    if not (run / "manifest.json").exists():  # (it may have finished before the signal)
        assert proc.returncode == 130, stderr
        _one_line_error(stderr)
        assert f"resume with `cea train --resume {run}`" in stderr
        assert not _leftovers(run)
        from mlflow.tracking import MlflowClient

        tracking = json.loads((run / "tracking.json").read_text())
        status = MlflowClient(tracking["uri"]).get_run(tracking["run_id"]).info.status
        assert status == "KILLED"
        resumed = _cea("train", "--resume", str(run), "--json", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        got = json.loads(resumed.stdout)
        assert got["metrics"] == expected["metrics"]
        assert got["thresholds"] == expected["thresholds"]


def test_flipped_byte_in_trainer_state_is_refused(tiny_backbone: Path, tmp_path: Path) -> None:
    res = _cea(*_train_args(tiny_backbone, tmp_path, "r", "train.epochs=1"), "--no-track")
    assert res.returncode == 0, res.stderr
    run = tmp_path / "r"
    (run / "manifest.json").unlink()  # as if it had been killed before the end
    state = run / "checkpoints" / "last" / "trainer_state.pt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0x01
    state.write_bytes(bytes(data))
    res = _cea("train", "--resume", str(run))
    assert res.returncode == 8, res.stderr
    _one_line_error(res.stderr)
    assert "trainer_state.pt" in res.stderr and "sha256" in res.stderr


def test_tracking_server_killed_mid_training_is_a_warning(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'srv.db'}",
            "--default-artifact-root",
            str(tmp_path / "srv-art"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import urllib.request

        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the MLflow server did not start")
                time.sleep(0.5)
        events = tmp_path / "events.jsonl"
        args = _train_args(tiny_backbone, tmp_path, "t", "train.epochs=3")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cea",
                *args,
                "--tracking-uri",
                f"http://127.0.0.1:{port}",
                "--json-events",
                str(events),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        _wait_for(events, '"event": "checkpoint"', proc)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        _, stderr = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert (tmp_path / "t" / "manifest.json").is_file()
    assert "warning: tracking" in stderr and "Traceback" not in stderr


def test_sigint_stops_hpo_without_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _cea("data", "sample", "--out", str(data)).returncode == 0
    err = tmp_path / "stderr.txt"
    with err.open("w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cea",
                "hpo",
                "--config",
                "tiny",
                "--n-trials",
                "50",
                "--no-track",
                "--set",
                f"data.path={data}",
                "--set",
                "train.epochs=4",
            ],
            stdout=fh,
            stderr=fh,
            text=True,
            cwd=tmp_path,
        )
        _wait_for(err, "trial 1:", proc, limit=300)  # trial 0 finished, trial 1 running
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
    stderr = err.read_text()
    assert proc.returncode == 130, stderr
    _one_line_error(stderr)
    assert "the search stopped during trial" in stderr and "--resume" in stderr


def test_an_aborted_eval_does_not_block_the_next(tiny_backbone: Path, tmp_path: Path) -> None:
    res = _cea(*_train_args(tiny_backbone, tmp_path, "r", "train.epochs=1"), "--no-track")
    assert res.returncode == 0, res.stderr
    run = tmp_path / "r"
    stale = run / "eval" / ".again.tmp"  # what a killed evaluation leaves
    stale.mkdir(parents=True)
    (stale / "predictions.jsonl").write_text("{}\n")
    res = _cea("eval", str(run), "--name", "again", "--n-boot", "100", "--json")
    assert res.returncode == 0, res.stderr
    assert (run / "eval" / "again" / "metrics.json").is_file()
    assert not stale.exists()


def test_postgresql_that_does_not_answer(tmp_path: Path) -> None:
    port = _free_port()
    res = _cea(
        "hpo", "--config", "tiny", "--n-trials", "1", "--no-track",
        "--storage", f"postgresql+psycopg://cea@127.0.0.1:{port}/cea",
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 4, res.stderr
    _one_line_error(res.stderr)
    assert "unreachable" in res.stderr


def test_os_errors_map_to_one_line_and_a_documented_code() -> None:
    import errno

    from cea.errors import ExitCode, os_error_message

    cases = {
        errno.ENOSPC: (ExitCode.RUNTIME, "free disk space"),
        errno.EROFS: (ExitCode.RUNTIME, "folder you can write to"),
        errno.EACCES: (ExitCode.RUNTIME, "folder you can write to"),
        errno.ENOENT: (ExitCode.MISSING, "create the folder"),
        errno.ECONNREFUSED: (ExitCode.MISSING, "start the service"),
    }
    for err, (code, hint) in cases.items():
        message, got_hint, got = os_error_message(OSError(err, os.strerror(err), "/x/y"))
        assert got == code and hint in got_hint and "/x/y" in message


def test_best_effort_tracking_queues_and_retries_in_order(tmp_path: Path) -> None:
    from cea.tracking.base import BestEffortTracker, RecordingTracker

    class Flaky(RecordingTracker):
        """A store that is down while `down` is set (as a server that went away)."""

        run_id = "r"
        down = False

        def log(self, **kw):  # type: ignore[no-untyped-def]
            if self.down:
                raise ConnectionError("store down")
            super().log(**kw)

        def end(self, status: str = "FINISHED") -> None:
            if self.down:
                raise ConnectionError("store down")
            super().end(status)

    inner = Flaky()
    t = BestEffortTracker(inner)
    t.log(metrics={"a": 1.0}, step=1)
    inner.down = True
    t.log(metrics={"b": 2.0}, step=2)  # fails: queued, training goes on
    t.log(metrics={"c": 3.0}, step=3)  # store marked down: queued without waiting
    assert len(t.pending) == 2 and t.failures
    inner.down = False
    t.end("FINISHED")
    assert [m[0] for m in inner.metrics] == ["a", "b", "c"] and inner.status == "FINISHED"
    assert t.failures == []
    strict = BestEffortTracker(Flaky(), strict=True)
    strict.inner.down = True
    with pytest.raises(ConnectionError):
        strict.log(metrics={"x": 1.0})


def test_missing_things_are_exit_4_and_reading_creates_nothing(
    cli, tracked_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PWD", str(tmp_path))  # the working folder is no secret
    cases = [
        ("predict", str(tracked_run), "-i", "missing.jsonl", "-o", "o.jsonl"),
        ("bench", "pipeline", "--baseline", "missing.json"),
        ("hpo", "show", "nope", "--storage", "missing.log"),
        ("eval", str(tmp_path / "no-run")),
        ("train", "--resume", str(tmp_path / "no-run")),
        ("data", "validate", str(tmp_path / "no-data")),
        ("runs", "show", "abc"),
    ]
    for args in cases:
        res = cli(*args)
        assert res.exit_code == 4, (args, res.stderr)
        assert "***" not in res.stderr, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, no journal, no output
