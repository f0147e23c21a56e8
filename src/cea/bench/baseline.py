"""Baselines: save a benchmark result, compare a new one against it with a regression budget.

Results compared are medians of repeated runs (machines are noisy). For metrics near zero
(the data-wait ratio, sub-millisecond latencies) a small absolute slack avoids calling noise
a regression.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from cea._version import __version__
from cea.errors import UsageError

# kind -> [(metric path, "higher"|"lower" is better, absolute slack)]
GATES: dict[str, list[tuple[str, str, float]]] = {
    "pipeline": [("samples_per_s", "higher", 0.0), ("batch_p50_ms", "lower", 0.05)],
    "step": [("data_wait_ratio", "lower", 0.005)],
    "augment": [],  # per augmenter p50_ms, added from the result
}


def parse_regression(text: str) -> float:
    """'10%' or '0.1' -> 0.1."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError as exc:
        raise UsageError(f"--max-regression {text!r}: give a percentage such as 10%") from exc
    if not 0 <= value < 10:
        raise UsageError(f"--max-regression {text!r} is out of range")
    return value


def _gates(kind: str, result: dict[str, Any]) -> list[tuple[str, str, float]]:
    gates = list(GATES[kind])
    if kind == "augment":
        gates += [(f"augmenters.{name}.p50_ms", "lower", 0.005) for name in result["augmenters"]]
    return gates


def _get(result: dict[str, Any], path: str) -> float:
    node: Any = result
    for part in path.split("."):
        node = node[part]
    return float(node)


def save_baseline(path: Path, kind: str, params: dict[str, Any], result: dict[str, Any]) -> None:
    from cea.security.io import atomic_write_json

    atomic_write_json(
        path,
        {
            "kind": kind,
            "params": params,
            "result": result,
            "cea_version": __version__,
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
        },
    )


def compare(
    path: Path, kind: str, params: dict[str, Any], result: dict[str, Any], max_regression: float
) -> dict[str, Any]:
    try:
        base = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        from cea.errors import MissingResourceError

        raise MissingResourceError(f"baseline {path} not found") from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise UsageError(f"{path}: unreadable baseline ({exc.__class__.__name__})") from exc
    shape = {"params": dict, "result": dict}
    if not isinstance(base, dict) or any(not isinstance(base.get(k), t) for k, t in shape.items()):
        raise UsageError(
            f"{path}: not a cea baseline (a JSON object with kind, params and result)",
            hint="write one with `cea bench ... --save-baseline FILE`",
        )
    if base.get("kind") != kind:
        raise UsageError(f"{path} is a {base.get('kind')!r} baseline, not {kind!r}")
    differs = sorted(k for k in params if base.get("params", {}).get(k) != params[k])
    if differs:
        raise UsageError(
            f"{path} was measured with other settings ({', '.join(differs)})",
            hint="compare like with like: same batch size, workers, policy and corpus",
        )
    checks = []
    try:
        gates = _gates(kind, base["result"])
    except (KeyError, TypeError) as exc:
        raise UsageError(f"{path}: the baseline's result has no {exc} table") from exc
    for metric, better, slack in gates:
        try:
            new = _get(result, metric)
        except KeyError:
            continue
        try:
            old = _get(base["result"], metric)
        except KeyError:
            continue
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{path}: baseline value {metric} is not a number") from exc
        if better == "higher":
            regressed = new < old * (1 - max_regression) - slack
        else:
            regressed = new > old * (1 + max_regression) + slack
        change = (new - old) / old if old else 0.0
        checks.append(
            {
                "metric": metric,
                "baseline": old,
                "current": new,
                "change": round(change, 4),
                "better": better,
                "regressed": regressed,
            }
        )
    return {
        "baseline": str(path),
        "max_regression": max_regression,
        "checks": checks,
        "regressed": any(c["regressed"] for c in checks),
    }
