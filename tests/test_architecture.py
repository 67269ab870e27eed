"""The structure of the library: no import cycle, imports at the top of their modules (except
optional heavy dependencies, ARCHITECTURE.md), no function longer than 80 lines, and one
logistic function."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

PACKAGE = ROOT / "analysis_lib"
HEAVY = ("scipy", "formulaic", "papermill", "nbclient", "nbformat", "jupytext", "docx", "tqdm", "distributed",
         "IPython", "matplotlib")


def modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.glob("*.py"))}


def test_no_import_cycle():
    graph = {}
    for name, tree in modules().items():
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        graph[name] = targets & set(modules())
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert graph["numerics"] == set()  # the numerical core is a leaf


def test_imports_inside_functions_are_only_optional_heavy_dependencies():
    inside = []
    for name, tree in modules().items():
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top and not _in_type_checking(tree, node):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if getattr(node, "level", 0) or not (module or "").startswith(HEAVY):
                    inside.append(f"{name}: {ast.unparse(node)}")
    assert not inside, inside


def _in_type_checking(tree: ast.Module, target: ast.AST) -> bool:
    return any(isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test) and target in ast.walk(n)
               for n in tree.body)


def test_no_function_is_longer_than_80_lines():
    long = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1}" for name, tree in modules().items()
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > 80]
    assert not long, long


def test_the_logistic_function_is_written_once():
    pattern = re.compile(r"1\s*/\s*\(1\s*\+\s*np\.exp\(")
    places = [path.name for path in PACKAGE.glob("*.py") if pattern.search(path.read_text(encoding="utf-8"))]
    assert places == ["numerics.py"], places
