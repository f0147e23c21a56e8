"""`cea doctor`: which optional resources and services are present."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from cea.cli._common import JsonOpt, QuietOpt, console, emit_json, set_mode

PACKAGES = (
    ("torch", "training and inference"),
    ("transformers", "models and tokenizers"),
    ("safetensors", "weights on disk"),
    ("mlflow", "tracking and registry (full, with UI)"),
    ("mlflow-skinny", "tracking and registry"),
    ("optuna", "cea hpo"),
    ("nlpaug", "augmenters (adapter)"),
    ("nltk", "WordNet augmenters"),
    ("bandit", "cea audit sast"),
    ("pip-audit", "cea audit vulns (online)"),
    ("cyclonedx-bom", "cea audit sbom"),
)


def _package(dist: str) -> tuple[str, str]:
    import importlib.metadata as md

    try:
        return "present", md.version(dist)
    except md.PackageNotFoundError:
        return "missing", ""


def _tcp(host: str, port: int, timeout: float = 0.3) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def device_rows(torch: Any) -> list[dict[str, str]]:
    """One row per CUDA device (name, memory, compute capability, bf16), or why there is none."""
    if not torch.cuda.is_available():
        return [
            {
                "kind": "device",
                "name": "cuda",
                "status": "missing",
                "detail": "no CUDA device; training and evaluation run on the CPU",
            }
        ]
    rows = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        rows.append(
            {
                "kind": "device",
                "name": f"cuda:{i}",
                "status": "present",
                "detail": f"{p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability "
                f"{p.major}.{p.minor}, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}",
            }
        )
    return rows


def collect(check_torch: bool = True) -> list[dict[str, str]]:
    import importlib.util
    import os

    from cea.data.readers import sample_data_path
    from cea.model.backbone import describe_backbones

    rows: list[dict[str, str]] = []
    for dist, purpose in PACKAGES:
        status, version = _package(dist)
        rows.append(
            {"kind": "package", "name": dist, "status": status, "detail": version or purpose}
        )
    if check_torch and importlib.util.find_spec("torch") is not None:
        import torch

        rows += device_rows(torch)
    for bb in describe_backbones():
        rows.append({"kind": "backbone", **bb})
    sample = sample_data_path()
    rows.append(
        {
            "kind": "data",
            "name": "sample",
            "status": "present" if (sample / "redsm5_posts.csv").is_file() else "missing",
            "detail": str(sample),
        }
    )
    from cea.augment.wordnet import default_roots, find_wordnet

    folder = find_wordnet(default_roots(os.environ.get("NLTK_DATA")))
    if folder is not None and importlib.util.find_spec("nltk") is not None:
        status, detail = "present", f"{folder} (WordNet augmenters available)"
    elif folder is None:
        status = "missing"
        detail = "no nltk_data/corpora/wordnet: `make install` provisions it (apt wordnet-base)"
    else:
        status, detail = "missing", "nltk is not installed"
    rows.append({"kind": "resource", "name": "wordnet", "status": status, "detail": detail})
    pg = _tcp("127.0.0.1", 5432)
    rows.append(
        {
            "kind": "service",
            "name": "postgresql",
            "status": "present" if pg else "missing",
            "detail": "127.0.0.1:5432 (distributed HPO storage)",
        }
    )
    return rows


def doctor(json_out: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Show which optional resources (backbones, WordNet, packages, services) are present."""
    mode = set_mode(json_out, quiet)
    rows = collect()
    if mode.json:
        emit_json({"resources": rows})
        return
    if mode.quiet:  # only what is not there, and a count
        absent = [r for r in rows if r["status"] != "present"]
        console.print(
            f"{len(rows) - len(absent)} of {len(rows)} resources present", highlight=False
        )
        for r in absent:
            console.print(
                f"{r['kind']} {r['name']}: {r['status']} ({r['detail']})",
                highlight=False,
                markup=False,
            )
        return
    table = Table(title="cea doctor")
    for col in ("kind", "name", "status", "detail"):
        table.add_column(col)
    for r in rows:
        style = {"present": "green", "missing": "yellow"}.get(r["status"], "red")
        table.add_row(r["kind"], r["name"], f"[{style}]{r['status']}[/]", r["detail"])
    console.print(table)
