"""A longer campaign of the differential oracle against `cea audit artifacts`.

    python -m benchmarks.gate_fuzz --examples 500 --seconds 600 --out gate-fuzz-findings

Generates candidate files (tests/gate_oracle.py: payloads wrapped in container shapes,
mutated), loads each with the real loaders under the audit hook, and scans it with cea. Prints
one JSON summary: files, what the loaders reached (malicious by the oracle), cea's verdicts,
bypasses (the oracle saw an event, cea exited 0), false alarms (no loader reached anything, cea
failed the file: informative, a strict gate fails unreadable shapes on purpose), loader crashes,
and the seconds spent in each. Each bypass is saved under --out with its description, to become
a fixed regression case in tests/test_artifact_readings.py.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gate_oracle import Oracle, cea_exit_code, generate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("gate-fuzz-findings"))
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    counts = {
        "files": 0,
        "malicious_by_oracle": 0,
        "flagged_by_cea": 0,
        "bypasses": 0,
        "false_alarms": 0,
        "loader_crashes": 0,
        "oracle_seconds": 0.0,
        "cea_seconds": 0.0,
    }
    exits: dict[str, int] = {}
    bypasses = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, Oracle(timeout=30.0) as oracle:
        for i in range(args.examples):
            if time.monotonic() - start > args.seconds:
                break
            folder = Path(tmp) / f"case{i}"
            folder.mkdir()
            seed = rng.randrange(2**32)
            name, data, how = generate(random.Random(seed), str(folder / "PWNED"))
            path = folder / name
            path.write_bytes(data)
            t = time.monotonic()
            verdict = oracle.check(path)
            counts["oracle_seconds"] += time.monotonic() - t
            t = time.monotonic()
            code = cea_exit_code(path)
            counts["cea_seconds"] += time.monotonic() - t
            counts["files"] += 1
            exits[str(code)] = exits.get(str(code), 0) + 1
            counts["loader_crashes"] += verdict.crashed
            if code != 0:
                counts["flagged_by_cea"] += 1
            if verdict.malicious:
                counts["malicious_by_oracle"] += 1
                if code == 0:
                    counts["bypasses"] += 1
                    args.out.mkdir(parents=True, exist_ok=True)
                    kept = args.out / f"bypass-{seed}-{name}"
                    kept.write_bytes(data)
                    bypasses.append({"file": str(kept), "how": how, "oracle": verdict.summary()})
            elif code != 0 and not verdict.crashed:
                counts["false_alarms"] += 1
    counts["oracle_seconds"] = round(float(counts["oracle_seconds"]), 1)
    counts["cea_seconds"] = round(float(counts["cea_seconds"]), 1)
    print(json.dumps({**counts, "cea_exit_codes": exits, "bypass_cases": bypasses}, indent=2))
    return 1 if bypasses else 0


if __name__ == "__main__":
    raise SystemExit(main())
