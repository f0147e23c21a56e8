"""`cea --help` wall time, median of repeated runs (target: under 0.3 s on 2 cores).

Run with `make bench` (pytest benchmarks/ --benchmark-only). Timing lives here, not in tests/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CEA = str(Path(sys.executable).with_name("cea"))


@pytest.mark.benchmark(group="cli")
def test_cea_help_startup(benchmark) -> None:
    def run() -> None:
        subprocess.run([CEA, "--help"], check=True, capture_output=True)

    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=2)
    assert benchmark.stats.stats.median < 0.3, f"median {benchmark.stats.stats.median:.3f}s"
