"""Packaging: every module cea imports comes from a runtime dependency, and the built wheel
works on its own (configs, criteria, sample data, schemas travel with it)."""

from __future__ import annotations

import ast
import importlib.metadata as md
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _runtime_closure() -> set[str]:
    """The declared runtime dependencies and everything they need (not the dev extra)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
    return seen


def test_every_imported_module_is_a_runtime_dependency() -> None:
    stdlib = set(sys.stdlib_module_names)
    providers = md.packages_distributions()
    runtime = _runtime_closure()
    missing: dict[str, set[str]] = {}
    for path in (REPO / "src" / "cea").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top in ("cea", "__future__"):
                    continue
                if top in OPTIONAL:  # checked below: declared as a non-dev extra
                    continue
                dists = {canonicalize_name(d) for d in providers.get(top, [])}
                if not dists & runtime:
                    missing.setdefault(top, set()).add(str(path.relative_to(REPO)))
    assert not missing, f"imported but not a runtime dependency: {missing}"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for module, (extra, dist) in OPTIONAL.items():
        assert extra != "dev" and any(Requirement(r).name == dist for r in extras[extra]), module


# modules imported only where present (`except ImportError`), each from a declared extra
OPTIONAL = {"pynvml": ("gpu", "nvidia-ml-py")}


def test_the_wheel_installs_and_evaluates_a_run(tmp_path: Path, tiny_backbone: Path) -> None:
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(REPO)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("cea-*.whl")
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    py = env / "bin" / "python"
    inst = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert inst.returncode == 0, inst.stderr[-2000:]
    # the dependencies come from this environment's site-packages (a path, not its .pth files:
    # the editable cea of the dev install stays invisible), cea itself from the wheel
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    where = subprocess.run(
        [str(py), "-c", "import cea, sys; print(cea.__file__)"],
        capture_output=True, text=True, env=run_env, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert str(env) in where, where  # the wheel's cea, not the source tree
    cea = [str(py), "-m", "cea"]
    train = subprocess.run(
        [*cea, "train", "--config", "tiny", "--backbone", str(tiny_backbone), "--runs-dir",
         str(tmp_path / "runs"), "--run-name", "w", "--no-track", "train.epochs=1", "-q"],
        capture_output=True, text=True, env=run_env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    ev = subprocess.run(
        [*cea, "eval", str(tmp_path / "runs" / "w"), "--n-boot", "100", "--json"],
        capture_output=True, text=True, env=run_env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert (tmp_path / "runs" / "w" / "eval").is_dir()
