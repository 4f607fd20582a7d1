"""The house plan, checked: no import loops, no upward imports, imports at module level.

Reads the source with ``ast`` (nothing is imported), so it runs in milliseconds and names the
offending module and line.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "ui", "pages")  # each may import only from itself and the layers before it
# Optional heavy dependencies: deferring these imports into a function is the one accepted reason.
HEAVY = {"torch", "transformers", "ray", "cvxpy", "datasets", "kaleido", "playwright", "sentence_transformers",
         "networkx", "pyarrow", "streamlit"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))}


MODULES = _sources()


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import of a project module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from pkg import sub" imports the submodule when there is one
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        for name in names:
            if name.split(".")[0] in LAYERS or name.split(".")[0] in HEAVY:
                out.append((name, node.lineno, id(node) in top))
    return out


def _graph() -> dict[str, set[str]]:
    graph = {}
    for mod, path in MODULES.items():
        graph[mod] = {name for name, _, _ in _imports(path) if name in MODULES}
    return graph


def test_no_import_loops():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    loops = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                loops.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    # a package importing its own submodule (core.grouping -> core.grouping.x) is not a loop
    loops = [lp for lp in loops if not all(a.startswith(b + ".") or b.startswith(a + ".")
                                           for a, b in zip(lp, lp[1:]))]
    assert not loops, "import loops: " + "; ".join(" -> ".join(lp) for lp in loops)


def test_no_upward_imports():
    bad = []
    for mod, path in MODULES.items():
        layer = LAYERS.index(mod.split(".")[0])
        for name, line, _ in _imports(path):
            top = name.split(".")[0]
            if top in LAYERS and LAYERS.index(top) > layer:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def _heavy_modules() -> set[str]:
    """Project modules whose import (at module level, transitively) loads a heavy optional package."""
    top = {m: [n for n, _, at_top in _imports(p) if at_top] for m, p in MODULES.items()}
    heavy = {m for m, names in top.items() if any(n.split(".")[0] in HEAVY for n in names)}
    changed = True
    while changed:
        changed = False
        for m, names in top.items():
            if m not in heavy and any(n in heavy for n in names):
                heavy.add(m)
                changed = True
    return heavy


def test_project_imports_are_at_module_level():
    """A function-local import hides loops and missing names; only heavy optional packages may be deferred."""
    heavy = _heavy_modules()
    bad = []
    for mod, path in MODULES.items():
        for name, line, at_top in _imports(path):
            if not at_top and name.split(".")[0] in LAYERS and name not in heavy:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} inside a function")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("folder", ["core", "ui"])
def test_every_module_sits_in_a_concept_folder(folder):
    """core/ keeps only the package plumbing at its top level; everything else lives in a folder."""
    allowed = {"__init__", "__main__", "cli", "errors", "atomic", "paths", "registry", "inputs", "devices"}
    loose = sorted(p.stem for p in (ROOT / folder).glob("*.py") if p.stem not in allowed and folder == "core")
    assert not loose, f"modules at the top of {folder}/: {loose}"
