"""The package's import graph: no cycles, and the core never imports the layers above it.

Every module under ``src/seeingsounds`` is parsed (``ast``), with the imports inside functions too (a
deferred import is still a dependency). ``from seeingsounds.a import b`` is an edge to ``seeingsounds.a.b``
when that is a module, else to ``seeingsounds.a``. The one exception is the package root's lazy
``__getattr__`` (``seeingsounds.SeeingSoundsPipeline`` and friends), which only names what it re-exports.

Layers: the *core* is every module except ``seeingsounds.cli``, ``seeingsounds.training``,
``seeingsounds.evaluation`` (the layers above it) and the apps on top: ``seeingsounds.app`` (the web app),
``seeingsounds.demo`` and ``seeingsounds.demo_checkpoint`` (the web demo's tiny run). No core module may
import ``cli``, ``training`` or ``evaluation``; nothing but ``cli`` may import ``cli``; the web app serves
a checkpoint and never trains one (it imports no ``training``).

:data:`KNOWN` lists the edges that break these rules today, each with the helper who owns the importing
module; the coordinator empties it. An entry that no longer occurs fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "seeingsounds"
#: the layers above the core
UPPER = ("seeingsounds.cli", "seeingsounds.training", "seeingsounds.evaluation")
#: modules on top of everything (they may import any layer but cli)
APPS = ("seeingsounds.app", "seeingsounds.demo", "seeingsounds.demo_checkpoint")

#: (importer, imported) edges that break the rules today -> owner of the importer (to be emptied)
KNOWN: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _lazy_getattr_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            lines.update(n.lineno for n in ast.walk(node) if hasattr(n, "lineno"))
    return lines


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _lazy_getattr_lines(tree) if name == PACKAGE else set()
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                while target not in modules and "." in target:  # `import seeingsounds.a.b.attr`
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def in_layer(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def is_core(module: str) -> bool:
    return not any(in_layer(module, layer) for layer in UPPER + APPS) and module != PACKAGE


def layering_violations(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    bad = set()
    for importer, imported in ((a, b) for a, bs in graph.items() for b in bs):
        if is_core(importer) and any(in_layer(imported, layer) for layer in UPPER):
            bad.add((importer, imported))
        elif in_layer(imported, "seeingsounds.cli") and not in_layer(importer, "seeingsounds.cli"):
            bad.add((importer, imported))
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def cycle_edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Edges inside an import cycle."""
    edges = set()
    for component in cycles(graph):
        members = set(component)
        edges |= {(a, b) for a in component for b in graph[a] if b in members}
    return edges


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_walk_sees_imports_inside_functions_and_relative_ones(tmp_path, monkeypatch):
    root = tmp_path / "src" / PACKAGE
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from . import b\n")
    (root / "sub" / "b.py").write_text("def f():\n    from seeingsounds.cli import x\n")
    (root / "cli.py").write_text("import seeingsounds.sub.b\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path / "src")
    found = import_graph()
    assert found["seeingsounds.sub"] == {"seeingsounds.sub.b"}
    assert found["seeingsounds.sub.b"] == {"seeingsounds.cli"}
    assert cycles(found) == [["seeingsounds.cli", "seeingsounds.sub.b"]]
    assert layering_violations(found) == {("seeingsounds.sub.b", "seeingsounds.cli")}


def test_no_import_cycles(graph):
    unexpected = sorted(cycle_edges(graph) - set(KNOWN))
    assert not unexpected, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles(graph))


def test_the_core_never_imports_cli_training_or_evaluation(graph):
    unexpected = sorted(layering_violations(graph) - set(KNOWN))
    assert not unexpected, "core modules importing upper layers: " + ", ".join(f"{a} -> {b}" for a, b in unexpected)


def test_the_known_list_only_shrinks(graph):
    gone = sorted(set(KNOWN) - layering_violations(graph) - cycle_edges(graph))
    assert not gone, f"these KNOWN entries no longer occur: remove them from tests/test_imports.py: {gone}"


def test_the_web_app_never_trains(graph):
    """The page serves the checkpoint it is given; the demo run is trained by seeingsounds.demo_checkpoint."""
    trains = sorted((a, b) for a, bs in graph.items() for b in bs
                    if in_layer(a, "seeingsounds.app") and in_layer(b, "seeingsounds.training"))
    assert not trains, f"the web app imports the trainer: {trains}"


def test_the_web_service_imports_without_gradio():
    """What a web request does is usable (and testable) without the web framework: only the page imports it."""
    code = ("import sys, seeingsounds.app.service; "
            "print(sorted(m for m in sys.modules if m == 'gradio' or m.startswith('gradio.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout[-2000:]
