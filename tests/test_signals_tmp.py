"""Signals and temp files (issue 29): one handler for every command from main()'s first line
— SIGINT/SIGTERM give exit 130 and one line saying what was kept, whenever they come (start-up
and setup included) — and every temp file under one `cea-` folder that is gone afterwards,
on failures and signals too. Real processes, real signals, TMPDIR set to an empty folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _env(tmpdir: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmpdir)}


def _cea(*args: str, cwd: Path, tmpdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cea", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(tmpdir),
        timeout=600,
        check=False,
    )


def _interrupt(
    args: list[str], cwd: Path, tmpdir: Path, sig: int, after: float
) -> tuple[int, str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cea", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=_env(tmpdir),
    )
    try:
        _wait_for_cea(proc)
        time.sleep(after)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def _wait_for_cea(proc: subprocess.Popen[str]) -> None:
    """Until cea's own code runs: the process catches SIGTERM (Python's start-up, before any
    of cea is imported, is the interpreter's business, not cea's)."""
    status = Path(f"/proc/{proc.pid}/status")
    if not status.exists():  # pragma: no cover - no procfs
        time.sleep(0.5)
        return
    for _ in range(3000):
        if proc.poll() is not None:
            return
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        if int(fields.get("SigCgt", "0").strip(), 16) & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.005)


def _one_interrupt_line(rc: int, err: str) -> None:
    assert rc == 130, (rc, err)
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and ("interrupted" in lines[0] or "SIG" in lines[0]), err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_any_moment_of_start_up_and_setup(
    tiny_backbone: Path, small_sample: Path, tmp_path: Path, sig: int
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    args = [
        "train", "--config", "tiny", "--data", str(small_sample), "--no-track", "--run-name",
        "r", "train.threads=1",
    ]  # fmt: skip
    for after in (0.0, 0.3, 1.0, 2.5):  # cea's imports, config, data, tiny backbone, ...
        rc, _, err = _interrupt(args, tmp_path, tmpdir, sig, after)
        if rc == 0:  # pragma: no cover - finished before the signal
            continue
        _one_interrupt_line(rc, err)
        run = tmp_path / "runs" / "r"
        assert not run.exists() or (run / "checkpoints").is_dir(), err  # no half-made folder
        assert sorted(os.listdir(tmpdir)) == [], (after, err)
        if run.exists():  # pragma: no cover - an epoch finished: the checkpoint is kept
            assert "kept" in err
            break


def test_interrupted_read_commands_say_so(tmp_path: Path) -> None:
    """Typer turns KeyboardInterrupt into Exit(130): the one line must survive that."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    data = tmp_path / "big.jsonl"
    line = {"id": "x", "text": "I cannot sleep. " * 40, "labels": ["SLEEP_ISSUES"]}
    data.write_text("".join(json.dumps({**line, "id": str(i)}) + "\n" for i in range(60_000)))
    seen = 0
    for after in (0.6, 1.5, 3.0):
        rc, out, err = _interrupt(
            ["data", "validate", str(data)], tmp_path, tmpdir, signal.SIGINT, after
        )
        if rc in (0, 5) or "OK " in out or "FAILED" in out:  # pragma: no cover
            continue  # done before the signal (or it came as the interpreter shut down)
        _one_interrupt_line(rc, err)
        assert "SIGINT" in err
        seen += 1
    assert seen, "validate always finished before the signal"
    assert sorted(os.listdir(tmpdir)) == []


def test_failures_leave_nothing_in_tmpdir(tiny_backbone: Path, tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("seed: 1\nseed: 2\n")
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"id": 1, "text": "\\ud800", "labels": []}\n')
    cases = [
        (["train", "--config", str(cfg)], 3),
        (["train", "--config", "tiny", "--data", str(bad_jsonl), "--no-track"], 5),
        (["data", "validate", "sample-long"], 0),
        (["eval", str(tmp_path / "no-such-run")], 4),
        (["runs", "list"], 4),
    ]
    for args, code in cases:
        res = _cea(*args, cwd=tmp_path, tmpdir=tmpdir)
        assert res.returncode == code, (args, res.stderr)
        assert "internal error" not in res.stderr
        assert sorted(os.listdir(tmpdir)) == [], (args, os.listdir(tmpdir))
    assert not (tmp_path / "mlflow.db").exists()  # a read never creates a store


def test_the_library_uses_one_cea_folder_for_temp_files(tmp_path: Path) -> None:
    """In-process: while a command runs every temp file goes under one cea-PID- folder."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import tempfile, sys\n"
        "from cea.cli import _common\n"
        "import cea.cli as cli\n"
        "seen = []\n"
        "orig = cli._run\n"
        "def spy(argv, signals):\n"
        "    seen.append(tempfile.gettempdir())\n"
        "    return orig(argv, signals)\n"
        "cli._run = spy\n"
        "try:\n"
        "    cli.main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(seen[0])\n"
        "print(tempfile.gettempdir())\n"
    )
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = subprocess.run(
        [sys.executable, str(probe)], capture_output=True, text=True, env=_env(tmpdir), check=True
    ).stdout.split()
    during, after = Path(out[-2]), Path(out[-1])
    assert during.parent == tmpdir and during.name.startswith("cea-")
    assert after == tmpdir and not during.exists()
