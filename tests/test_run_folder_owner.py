"""One owner per run folder, no half-made folders, no silent overwrites (issue 29).

Real processes: two `cea train` started on one run name, a lock held by another process, a
stale lock left by a killed one, a signal before the first checkpoint, `--resume` of a folder
that never reached one; `cea data split/sample --out` onto existing outputs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _cea(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cea", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
        check=False,
    )


def _popen(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cea", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def _train(tiny: Path, data: Path, name: str, *extra: str) -> list[str]:
    return [
        "train", "--config", "tiny", "--backbone", str(tiny), "--data", str(data),
        "--runs-dir", "runs", "--run-name", name, "--no-track", "-q", "train.threads=1", *extra,
    ]  # fmt: skip


def _one_line_error(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    assert sum(line.startswith("error:") for line in stderr.splitlines()) == 1, stderr


def _wait_until(cond, proc: subprocess.Popen[str], what: str, limit: float = 300) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return
        if proc.poll() is not None:
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}")
        time.sleep(0.02)
    pytest.fail(f"{what}: not seen in time")


def test_two_trainings_of_one_run_name_one_is_refused_naming_the_holder(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path
) -> None:
    args = _train(tiny_backbone, small_sample, "same", "train.epochs=1")
    first = _popen(*args, cwd=tmp_path)
    lock = tmp_path / "runs" / "same" / ".cea-lock"
    try:
        _wait_until(lock.is_file, first, "the first run's lock")
        second = _cea(*args, cwd=tmp_path)
        _, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert second.returncode == 2, second.stderr
    _one_line_error(second.stderr)
    assert f"in use by pid {first.pid} on {socket.gethostname()}" in second.stderr
    run = tmp_path / "runs" / "same"
    assert not lock.exists()  # released on exit
    # the folder is one run's: the manifest verifies and the split is the one its meta hashes
    from cea.data.splits import Split
    from cea.security.manifest import verify_manifest

    verify_manifest(run, exclude_dirs=("eval",))
    meta = json.loads((run / "cea_meta.json").read_text())
    saved = json.loads((run / "split.json").read_text())
    split = Split(saved["seed"], saved["fractions"], {k: tuple(v) for k, v in saved["groups"].items()}, saved["data_hash"])  # fmt: skip
    assert split.hashes() == meta["split_hashes"]


def test_resume_refused_while_another_process_holds_the_run(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path
) -> None:
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 13\n")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom cea.run_folder import lock_run_folder\n"
            "with lock_run_folder(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        res = _cea("train", "--resume", str(run), cwd=tmp_path)
        fresh = _cea(*_train(tiny_backbone, small_sample, "r"), cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    for r in (res, fresh):
        assert r.returncode == 2, r.stderr
        _one_line_error(r.stderr)
        assert f"in use by pid {holder.pid}" in r.stderr
    assert (run / "config.yaml").read_text() == "seed: 13\n"  # nothing touched


def test_sigint_before_the_first_checkpoint_removes_the_half_made_folder(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path
) -> None:
    proc = _popen(*_train(tiny_backbone, small_sample, "half", "train.epochs=3"), cwd=tmp_path)
    run = tmp_path / "runs" / "half"
    try:
        _wait_until((run / "split.json").is_file, proc, "split.json")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    if (run / "checkpoints").exists():  # pragma: no cover - an epoch finished first
        pytest.skip("the first epoch finished before the signal arrived")
    assert proc.returncode == 130, err
    _one_line_error(err)
    assert "before its first checkpoint" in err and "was removed" in err
    assert not run.exists()
    again = _cea(*_train(tiny_backbone, small_sample, "half", "train.epochs=1"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the name is free again


def test_resume_of_a_killed_run_without_checkpoint_starts_it_again(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path
) -> None:
    proc = _popen(*_train(tiny_backbone, small_sample, "killed", "train.epochs=3"), cwd=tmp_path)
    run = tmp_path / "runs" / "killed"
    try:
        _wait_until((run / "split.json").is_file, proc, "split.json")
        proc.kill()  # SIGKILL: no handler runs; the stale lock stays
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    if (run / "checkpoints").exists():  # pragma: no cover
        pytest.skip("the first epoch finished before the kill")
    assert (run / ".cea-lock").is_file()
    assert json.loads((run / ".cea-lock").read_text())["pid"] == proc.pid
    split_before = (run / "split.json").read_text()
    fresh = _cea(*_train(tiny_backbone, small_sample, "killed"), cwd=tmp_path)
    assert fresh.returncode == 2 and "--resume" in fresh.stderr, fresh.stderr  # never mixed
    res = _cea("train", "--resume", str(run), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["epochs_run"] == 3
    assert (run / "manifest.json").is_file() and not (run / ".cea-lock").exists()
    assert (run / "split.json").read_text() == split_before


def test_a_lock_whose_holder_is_gone_is_taken_over(tmp_path: Path) -> None:
    from cea.errors import UsageError
    from cea.run_folder import lock_run_folder

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = tmp_path / "r"
    run.mkdir()
    stale = {"pid": gone.pid, "host": socket.gethostname(), "started": "earlier"}
    (run / ".cea-lock").write_text(json.dumps(stale))
    with lock_run_folder(run) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with lock_run_folder(run):  # re-entrant in one process
            pass
        assert path.is_file()
    assert not (run / ".cea-lock").exists()
    # a record from another host is that host's to release: refused, and said so
    (run / ".cea-lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with (
        pytest.raises(UsageError, match=r"in use by pid 1 on elsewhere\.example"),
        lock_run_folder(run),
    ):
        pass


def test_data_outputs_are_not_overwritten_without_force(tmp_path: Path) -> None:
    out = tmp_path / "split.json"
    out.write_text("keep me")
    res = _cea("data", "split", "--out", str(out), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    _one_line_error(res.stderr)
    assert str(out) in res.stderr and "--force" in res.stderr
    assert out.read_text() == "keep me"
    forced = _cea("data", "split", "--out", str(out), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "groups" in json.loads(out.read_text())

    folder = tmp_path / "a-folder"
    folder.mkdir()
    res = _cea("data", "split", "-o", str(folder), cwd=tmp_path)
    assert res.returncode == 2 and f"--out {folder} is a folder" in res.stderr, res.stderr

    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "notes.txt").write_text("mine")
    res = _cea("data", "sample", "--out", str(sample), "-n", "5", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    _one_line_error(res.stderr)
    assert sorted(p.name for p in sample.iterdir()) == ["notes.txt"]
    forced = _cea("data", "sample", "--out", str(sample), "-n", "5", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (sample / "redsm5_posts.csv").is_file() and (sample / "notes.txt").is_file()
