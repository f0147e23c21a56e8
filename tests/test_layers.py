"""The import graph of `src/cea`: layers that only import downward, and no cycle.

Every import counts — module level and function level (cea imports heavy libraries lazily, so
most of its imports are inside functions). A package may import itself, anything in a lower
layer, and nothing else. The order, bottom to top, is documented in the README ("Layers").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# bottom -> top; a package imports only its own modules and packages of lower layers
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cea._version", "cea.errors", "cea.resources"),
    ("cea.security",),  # io, paths, manifests, signed cache, the model-file scanner
    ("cea.progress", "cea.catalog"),
    ("cea.config",),
    ("cea.data",),
    ("cea.model",),  # backbones, features, inference
    ("cea.augment",),
    ("cea.run_folder",),  # the run-folder layout: save, verify, load
    ("cea.evaluate",),
    ("cea.tracking",),
    ("cea.train",),
    ("cea.hpo", "cea.bench", "cea.audit"),
    ("cea.api",),
    ("cea",),  # the root package: __version__ and the API, re-exported lazily
    ("cea.cli",),
    ("cea.__main__",),
)
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "cea").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from cea import catalog` imports cea.catalog; `from cea.x import y` imports cea.x
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if s in modules] or [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found.update(n for n in names if n in modules)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(p, modules) - {m} for m, p in modules.items()}


def layer_of(module: str) -> str:
    """The package (`cea.X`) a module belongs to; `cea` for the root package itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        for dep in sorted(deps):
            a, b = layer_of(mod), layer_of(dep)
            if a != b and RANK[b] >= RANK[a]:
                bad.append(f"{mod} -> {dep}")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_package_has_a_layer() -> None:
    assert sorted({layer_of(m) for m in _graph()} - set(RANK)) == []


def test_no_import_goes_up_or_sideways() -> None:
    assert upward_imports(_graph()) == []


def test_no_import_cycle() -> None:
    assert cycles(_graph()) == []


def test_package_level_graph_is_acyclic() -> None:
    """Also between packages: `a` imports `b` and `b` imports `a` through other modules."""
    pkg: dict[str, set[str]] = {}
    for mod, deps in _graph().items():
        pkg.setdefault(layer_of(mod), set()).update(layer_of(d) for d in deps)
    for name, deps in pkg.items():
        deps.discard(name)
    assert cycles(pkg) == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"cea.config": {"cea.augment.registry"}, "cea.augment.registry": set()}, 1),
        ({"cea.train.run": {"cea.data.prepare"}, "cea.data.prepare": set()}, 0),
        ({"cea.hpo.study": {"cea.bench.train"}, "cea.bench.train": set()}, 1),  # sideways
    ],
)
def test_the_rule_itself_catches_an_upward_import(
    graph: dict[str, set[str]], expected: int
) -> None:
    assert len(upward_imports(graph)) == expected


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
