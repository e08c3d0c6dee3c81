"""core/'s imports: no cycle anywhere, and the review room reaches nothing of the analysis side.

The graph is read from the source (ast), not by importing: every ``import`` / ``from ... import``
of a core module, at the top of a module or inside a function, is an edge; imports under
``if TYPE_CHECKING:`` are not (they never run). ``from core.review
import audit`` is an edge to core.review.audit (the submodule), ``from core.review.labels import
current_labels`` one to core.review.labels. Run this file directly to print every cycle in core/.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"
#: What the review room must never import (directly or through a submodule of it).
FORBIDDEN = ("core.detect", "core.analysis", "core.slices")


def _module_name(path: Path, root: Path = CORE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph(root: Path = CORE) -> dict[str, set[str]]:
    """Module -> the core modules it imports anywhere in its source (top level or in a function)."""
    files = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        typing_only = {id(inner) for block in ast.walk(tree) if _is_type_checking_block(block)
                       for statement in block.body for inner in ast.walk(statement)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # from PACKAGE import SUBMODULE names the submodule; otherwise the module itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                while target and target not in files:  # `import core.x.y` of a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_top_level_and_function_level_imports():
    graph = import_graph()
    # top level: guidelines reads decisions to count and queue them
    assert "core.review.decisions" in graph["core.review.guidelines"]
    # inside a function: runs.accept_suggested imports decisions when called
    assert "core.review.decisions" in graph["core.analysis.runs"]
    assert "core.review.audit" in graph["core.review.labels"]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_core():
    assert cycles(import_graph()) == []


def test_imports_for_type_checking_only_are_not_edges(tmp_path):
    package = tmp_path / "core"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nimport core.b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import core.a\n")
    graph = import_graph(package)
    assert graph["core.a"] == {"core.b"} and graph["core.b"] == set()
    (package / "b.py").write_text("def f():\n    import core.a\n")
    assert cycles(import_graph(package)) == [["core.a", "core.b"]]


def test_decisions_does_not_import_guidelines():
    """One direction only: guidelines needs decisions (citations, the re-review queue), not back."""
    assert "core.review.guidelines" not in import_graph()["core.review.decisions"]


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module importing ``start`` loads, its parent packages included."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        parent = module.rpartition(".")[0]
        for target in graph.get(module, set()) | ({parent} if parent in graph else set()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_review_room_never_imports_the_analysis_side():
    graph = import_graph()
    bad = {(m, t) for m in graph if m.startswith("core.review") for t in reachable(graph, m)
           if any(t == f or t.startswith(f + ".") for f in FORBIDDEN)}
    assert bad == set()
    # the check itself reaches through: a core module that uses the detectors does reach them
    assert any(t.startswith("core.detect") for t in reachable(graph, "core.views.triage"))


if __name__ == "__main__":
    found = cycles(import_graph())
    for component in found:
        print("cycle:", " <-> ".join(component))
    print(f"{len(found)} cycle(s) in core/")
