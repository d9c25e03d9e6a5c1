"""The import rules of docs/architecture.md, checked on the source: every module's imports parsed with ``ast``,
imports inside functions included.

1. ``pipeline.core`` (the base layer) imports nothing of the project outside ``pipeline.core``.
2. ``trackers`` and ``reid_models`` import nothing of ``pipeline`` but ``pipeline.core``, and not each other.
3. The libraries (``pipeline``, ``trackers``, ``reid_models``) never import ``tools`` or ``tests``.
4. No import cycle between modules.
5. Tools import the installed package: no ``sys.path`` edits, no imports of other tool scripts.
6. The module map of docs/architecture.md names every module and tool file, and no file that is gone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = ("pipeline", "reid_models", "trackers")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def library_modules() -> dict[str, Path]:
    return {module_name(p): p for root in LIBRARIES for p in sorted((REPO / root).rglob("*.py"))}


def imported_names(path: Path, name: str) -> set[str]:
    """Dotted names a module imports anywhere in its body (``from X import Y`` gives ``X.Y`` and ``X``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.update(f"{base}.{a.name}" for a in node.names)
            out.add(base)
    return out


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The project module ``target`` names (a submodule when ``from pkg import sub``), else None."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """module -> project modules it imports. ``from pkg import sub`` is an edge to ``pkg.sub`` only (the package's
    ``__init__`` runs for any submodule import; counting it would make every re-exporting package a cycle)."""
    modules = library_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        names = imported_names(path, name)
        edges = set()
        for t in names:
            r = resolve(t, modules)
            if r is None or r == name:
                continue
            # drop the parent edge of "from pkg import sub" when the submodule itself is the target
            if any(o != t and o.startswith(t + ".") and resolve(o, modules) not in (None, r) for o in names):
                continue
            edges.add(r)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def _violations(graph, source_prefix: str, allowed) -> list[str]:
    return sorted(f"{m} -> {t}" for m, ts in graph.items() if m == source_prefix or m.startswith(source_prefix + ".")
                  for t in ts if not allowed(t))


def test_base_layer_imports_only_itself(graph):
    assert "pipeline.core.types" in graph and "pipeline.core.errors" in graph
    assert _violations(graph, "pipeline.core", lambda t: t.startswith("pipeline.core")) == []


@pytest.mark.parametrize("lib,other", [("trackers", "reid_models"), ("reid_models", "trackers")])
def test_libraries_import_only_the_base_of_pipeline(graph, lib, other):
    assert _violations(graph, lib, lambda t: not (t.startswith("pipeline") and not t.startswith("pipeline.core"))
                       and not t.startswith(other)) == []


def test_no_library_imports_tools_or_tests():
    for name, path in library_modules().items():
        bad = {t for t in imported_names(path, name) if t.split(".")[0] in ("tools", "tests", "conftest")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_cycle_detection_finds_a_two_module_cycle():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_tools_use_the_installed_package():
    tool_names = {p.stem for p in (REPO / "tools").rglob("*.py")}
    for path in sorted((REPO / "tools").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "sys.path.insert" not in text and "sys.path.append" not in text, f"{path} edits sys.path"
        names = imported_names(path, path.stem)
        others = {n.split(".")[0] for n in names} & (tool_names - {path.stem})
        assert not others, f"{path} imports tool scripts {sorted(others)}: move shared helpers into the library"


def test_tool_imports_of_other_tools_resolve():
    """A tool run as ``python -m tools.X`` may import another tool's top-level names (``from tools.Y import a``):
    each such name must still be defined there (tools/bench_reid_curve.py once imported two removed names)."""
    import ast

    for path in sorted((REPO / "tools").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tools."):
                target = REPO / (node.module.replace(".", "/") + ".py")
                assert target.is_file(), f"{path.name} imports {node.module}, which does not exist"
                tree = ast.parse(target.read_text(encoding="utf-8"))
                defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
                defined |= {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
                defined |= {a.asname or a.name for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                            for a in n.names}
                missing = [a.name for a in node.names if a.name not in defined]
                assert not missing, f"{path.name} imports {missing} from {node.module}, which does not define them"


def module_map() -> str:
    """The code block under docs/architecture.md's "## Module map" heading."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    return doc.split("## Module map", 1)[1].split("\n## ", 1)[0]


def test_module_map_names_every_module():
    """Every module file of the packages and every tool script is named (``file.py``) in the module map, so
    the map cannot silently fall behind the code. Subcommand modules are exempt: cli.py's table names them."""
    block = module_map()
    roots = (*LIBRARIES, "tools")
    unnamed = [str(p.relative_to(REPO)) for root in roots for p in sorted((REPO / root).rglob("*.py"))
               if p.name not in ("__init__.py", "__main__.py") and "commands" not in p.relative_to(REPO).parts
               and p.name not in block]
    assert not unnamed, f"docs/architecture.md's module map does not name {unnamed}"


def test_module_map_names_no_missing_file():
    """Every ``name.py`` the module map names exists somewhere in the packages, tools or tests (no stale entry)."""
    import re

    existing = {p.name for root in (*LIBRARIES, "tools", "tests") for p in (REPO / root).rglob("*.py")}
    named = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*\.py)\b", module_map()))
    assert named, "the module map names no file"
    assert not named - existing, f"docs/architecture.md's module map names missing files {sorted(named - existing)}"
