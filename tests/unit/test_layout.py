"""The package's shape, checked on the source: file sizes, what the core may import, no cycles.

Walks the AST of every module under ``luma_rag/`` (nothing is imported):

* every file is under :data:`MAX_LINES` lines unless its module docstring says why it needs
  more (it must mention "400 lines");
* the core — ``luma_rag`` minus the CLI, the app, evaluation, training and synthetic-corpus
  packages that point inward — never imports those packages, the apps, the framework integrations or
  the UI / web frameworks (lazy imports inside functions count too);
* no import cycles among ``luma_rag`` modules (imports under ``if TYPE_CHECKING:`` do not
  count: they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "luma_rag"
MAX_LINES = 400
#: Subpackages that point inward (they may import anything of the core).
OUTER = (
    "luma_rag.__main__",
    "luma_rag.app",
    "luma_rag.cli",
    "luma_rag.eval",
    "luma_rag.training",
    "luma_rag.datasets",
)
#: What the core must never import (prefixes of module names).
FORBIDDEN = (
    "luma_rag.datasets",
    "luma_rag.eval",
    "luma_rag.training",
    "luma_rag.cli",
    "luma_rag.app",
    "apps",
    "langchain_lumarag",
    "langchain",
    "langchain_core",
    "llama_index",
    "gradio",
    "fastapi",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def _tree(name: str) -> ast.Module:
    path = _modules()[name]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_package(name: str) -> bool:
    return _modules()[name].name == "__init__.py"


def _type_checking_blocks(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (they never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            named = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            )
            if named:
                skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def _imports(name: str) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import that runs, lazy ones included."""
    tree = _tree(name)
    skipped = _type_checking_blocks(tree)
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in _modules() else base), node.lineno


def _edges(name: str) -> set[str]:
    return {target for target, _ in _imports(name) if target in _modules() and target != name}


def _core(name: str) -> bool:
    return not any(name == outer or name.startswith(outer + ".") for outer in OUTER)


def test_modules_are_found() -> None:
    names = _modules()
    assert "luma_rag" in names and "luma_rag.answer.gate" in names and len(names) > 50


@pytest.mark.parametrize("name", sorted(_modules()))
def test_file_is_under_the_size_limit(name: str) -> None:
    path = _modules()[name]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if lines < MAX_LINES:
        return
    doc = ast.get_docstring(_tree(name)) or ""
    assert "400 lines" in doc, (
        f"{path.relative_to(ROOT)} has {lines} lines (limit {MAX_LINES}); split it by idea, "
        "or say in its module docstring why one idea needs more than 400 lines"
    )


@pytest.mark.parametrize("name", sorted(n for n in _modules() if _core(n)))
def test_core_never_imports_the_outer_layers(name: str) -> None:
    bad = [
        f"line {line}: {target}"
        for target, line in _imports(name)
        if any(target == f or target.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert not bad, f"{name} (core) imports {bad}; the outer layers import the core, not back"


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if i < len(graph[node]):
                work.append((node, i + 1))
                nxt = graph[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def test_no_import_cycles() -> None:
    cycles = _cycles({name: sorted(_edges(name)) for name in _modules()})
    assert not cycles, "import cycles among luma_rag modules: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_checks_can_fail() -> None:
    """The cycle finder and the import reader see what they should, on synthetic input."""
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": [], "e": ["e", "d"], "f": ["g"]}
    graph["g"] = ["f"]
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["f", "g"]]
    assert _cycles({"x": ["y"], "y": []}) == []
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import gradio\n"
        "def f():\n    import fastapi\n"
    )
    skipped = _type_checking_blocks(tree)
    seen = [
        a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import) and id(n) not in skipped
        for a in n.names
    ]
    assert seen == ["fastapi"]
