"""The package's layering: each folder imports only from itself and the folders below it, with no cycles.

Lowest first (README, "Layout"). `classification` and `translation` share one layer and never import each
other: what they share lives lower. The package's own `__init__` (`tsdtp.load_run`) is the top layer, so no
module inside the package may import `tsdtp` bare. An import of tsdtp inside a function is refused too: it is
how a cycle hides.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tsdtp"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "hub", "data_files", "gguf_models", "glue_tasks", "stats"),
    ("core",),
    ("adapters",),
    ("runs",),
    ("classification", "translation", "llm"),
    ("measure",),
    ("analysis",),
    ("explorer",),
    ("pipeline",),
    ("cli",),
    ("__init__",),
)


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of a file under `root` (the package folder)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def component(module: str) -> str:
    """The top-level folder or root module a dotted tsdtp module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(module: str) -> int:
    """Index of the layer holding `module`; an unlisted component is an error."""
    name = component(module)
    for index, members in enumerate(LAYERS):
        if name in members:
            return index
    raise AssertionError(f"{module}: folder {name!r} is in no layer; add it to LAYERS in {Path(__file__).name}")


def imports(path: Path, root: Path) -> list[tuple[str, int, bool]]:
    """(imported tsdtp module, line, at module level) for every tsdtp import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    package = root.name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package:
            names = [_submodule(f"{node.module}.{a.name}", root) or node.module for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == package]
        else:
            continue
        found += [(name, node.lineno, id(node) in top_level) for name in names]
    return found


def _submodule(dotted: str, root: Path) -> str | None:
    """`dotted` when it names a module or package file under `root` (`from pkg import module`), else None."""
    path = root.parent.joinpath(*dotted.split("."))
    return dotted if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() else None


def violations(root: Path) -> list[str]:
    """Every upward import, cross import between sibling task packages, function-level import, and cycle."""
    problems, graph = [], {}
    for path in sorted(root.rglob("*.py")):
        importer = module_name(path, root)
        layer_of(importer)
        graph[importer] = set()
        for imported, line, top in imports(path, root):
            where = f"{path.relative_to(root.parent)}:{line}"
            if not top:
                problems.append(f"{where}: imports {imported} inside a function or block")
                continue
            graph[importer].add(imported)
            if layer_of(imported) > layer_of(importer):
                problems.append(f"{where}: {importer} imports {imported} from a higher layer")
            elif layer_of(imported) == layer_of(importer) and component(imported) != component(importer) \
                    and layer_of(importer) > 0:
                problems.append(f"{where}: {importer} imports {imported}, a sibling at the same layer")
    return problems + [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path per import cycle found by depth-first search (a module imports its package's __init__ too)."""
    state: dict[str, str] = {}
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target] if target in path else [node, target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_the_package_respects_its_layers():
    assert violations(PACKAGE) == []


def test_the_root_holds_few_modules_and_no_module_is_long():
    root_modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root_modules) <= 6, root_modules
    lengths = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 300} == {}


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("relative, text, expected", [
    ("core/engine.py", "from tsdtp.cli import main\n", "from a higher layer"),
    ("cli/__init__.py", "import tsdtp\n", "from a higher layer"),
    ("errors.py", "from tsdtp import load_run\n", "from a higher layer"),
    ("translation/model.py", "from tsdtp.classification.model import X\n", "a sibling at the same layer"),
    ("core/engine.py", "def f():\n    from tsdtp.core.pruning import g\n", "inside a function"),
    ("core/engine.py", "from tsdtp.core.pruning import g\n", "import cycle"),
    ("shiny/new.py", "", "is in no layer"),
])
def test_the_check_catches_what_it_forbids(tmp_path, relative, text, expected):
    root = tmp_path / "tsdtp"
    _write(root, "__init__.py", "")
    _write(root, "core/pruning.py", "from tsdtp.core.engine import run\n")
    _write(root, "cli/__init__.py", "")
    _write(root, "classification/model.py", "X = 1\n")
    _write(root, "core/engine.py", "")
    _write(root, relative, text)
    if expected == "is in no layer":
        with pytest.raises(AssertionError, match=expected):
            violations(root)
    else:
        assert any(expected in problem for problem in violations(root)), violations(root)
