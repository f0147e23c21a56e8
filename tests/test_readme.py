"""The README's "Use from Python" example runs as written, in a fresh interpreter, and gives the
numbers the CLI gives for the same run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

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
