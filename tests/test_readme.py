"""The README's "Use from Python" example runs as written, in a fresh interpreter, and gives the
numbers the CLI gives for the same run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_registry import mlflow_server  # noqa: F401  (a module-scoped mlflow server)

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section holds one Python example"
    return blocks[0]


def test_readme_python_example_runs_and_matches_the_cli(cli, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _python_example()],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    m = re.search(r"eval macro-F1 ([\d.]+) \[([\d.]+), ([\d.]+)\]", out)
    assert m, out
    assert "predicted:" in out
    assert "artifact scan of the run folder: passed" in out
    run_dir = tmp_path / "runs" / "py-demo"
    assert (run_dir / "eval" / "py" / "metrics.json").is_file()
    os.chdir(tmp_path)
    res = cli("eval", str(run_dir), "--name", "cli", "--n-boot", "200", "--no-track", "--json")
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    lo, hi = report["intervals"]["macro_f1"]
    assert (f"{report['metrics']['macro_f1']:.4f}", f"{lo:.4f}", f"{hi:.4f}") == m.groups()


# ---- the README's shell commands that use the tiny config run as written (issue #30) --------

SERVER_IN_README = "127.0.0.1:5000"


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _runs_whole(block: str) -> bool:
    """A block that uses the tiny config and nothing heavier: every config it names is tiny and
    no `cea train` in it falls back to the default (MiniLM) config."""
    lines = [ln.split("  #", 1)[0].strip() for ln in block.splitlines()]
    configs = re.findall(r"--config (\S+)", block)
    trains = [ln for ln in lines if ln.startswith(("cea train", "torchrun"))]
    return bool(configs) and set(configs) == {"tiny"} and all("--config" in t for t in trains)


def _tiny_lines() -> list[str]:
    """Single commands with `--config tiny`: lines of the other bash blocks and inline code.
    torchrun lines are left to tests/test_distributed.py (several processes on 2 cores)."""
    text = README.read_text(encoding="utf-8")
    lines = [
        ln.split("  #", 1)[0].strip()
        for block in _bash_blocks()
        if not _runs_whole(block)
        for ln in block.splitlines()
        if "--config tiny" in ln and not ln.lstrip().startswith(("torchrun", "#"))
    ]
    inline = re.findall(r"`(cea [^`]*--config tiny[^`]*)`", text)
    return sorted({*lines, *inline})


def _shell_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def test_readme_tiny_shell_commands_are_found() -> None:
    whole = [b for b in _bash_blocks() if _runs_whole(b)]
    assert len(whole) == 1 and "models:/dsm5-criteria@candidate" in whole[0]
    singles = _tiny_lines()
    assert "cea train --config tiny" in singles
    assert "cea bench train --config tiny --data sample-long --steps 15" in singles


@pytest.mark.parametrize("command", _tiny_lines())
def test_readme_tiny_command_runs_as_written(command: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=_shell_env(), capture_output=True,
        text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (command, proc.stderr[-2000:])


@pytest.mark.service
def test_readme_tracking_server_walkthrough_runs_as_written(
    mlflow_server: str,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    (block,) = [b for b in _bash_blocks() if _runs_whole(b)]
    assert SERVER_IN_README in block
    script = block.replace(SERVER_IN_README, mlflow_server.removeprefix("http://"))  # the port
    proc = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=_shell_env(), capture_output=True,
        text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = json.loads((tmp_path / "tour.json").read_text())["mlflow_run_id"]
    assert f"tour {run_id}" in proc.stdout  # `cea runs show` found it on the server
    (scored,) = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert scored["id"] == "1" and len(scored["probs"]) == 10
    assert "macro-F1" in proc.stdout and "DEPRESSED_MOOD" in proc.stdout
    assert list((tmp_path / "eval").glob("dsm5-criteria-v*/*/metrics.json"))
    assert not (tmp_path / "mlflow.db").exists()  # every read and write went to the server
    from mlflow.tracking import MlflowClient

    mv = MlflowClient(mlflow_server).get_model_version_by_alias("dsm5-criteria", "candidate")
    assert mv.run_id == run_id  # registered into the training run, on the server


def test_readme_api_claims() -> None:
    """Result types importable from `cea` and `cea.api`, with the methods the README names;
    `help(cea.train)` documents the function, not only the package."""
    import dataclasses
    import pydoc

    import cea
    from cea import api

    for name in ("RunResult", "EvalReport", "Comparison", "Prediction", "StudySummary",
                 "BenchResult", "AuditReport", "Registration"):  # fmt: skip
        assert name in api.__all__ and name in cea.__all__
        assert getattr(cea, name) is getattr(api, name)
        method = "summary" if name == "RunResult" else "to_dict"
        assert callable(getattr(getattr(api, name), method)), (name, method)
    reg = api.Registration("m", "3", None, "models:/m-id", "r1")
    assert reg.to_dict()["load_with"] == "models:/m/3"
    assert dataclasses.replace(reg, alias="champion").load_with == "models:/m@champion"
    text = pydoc.render_doc(cea.train, renderer=pydoc.plaintext)
    assert "Fine-tune a classifier" in text and "tracking_uri" in text
    assert "Fine-tune a classifier" in (cea.train.__doc__ or "")
    for name in ("evaluate", "audit"):
        assert (getattr(api, name).__doc__ or "").split("\n")[0] in getattr(cea, name).__doc__
