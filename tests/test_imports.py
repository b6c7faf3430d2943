"""The package's modules import on their own, and their imports form no cycle.

The import graph is read from the source with :mod:`ast`: every ``import`` and ``from ... import``, at module
level or inside a function, under ``if TYPE_CHECKING:`` too (a cycle there still tangles the modules for the
type checker and the reader), relative imports resolved, and ``importlib.import_module("...")`` calls with a
literal name. Modules are found by walking the package directory, subpackages included, so a new module
is checked without editing this file.
"""

from __future__ import annotations

import ast
import importlib.machinery
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pytest

import torchsched

PACKAGE = "torchsched"
#: Where the package's files are: the sources, and (in an editable install) the compiled core elsewhere.
ROOTS = [Path(p) for p in torchsched.__path__]

#: User-facing tools: they use the layers below them and no layer below imports them (the package's
#: ``__init__`` re-exports some of them, which is the one exception).
TOOLS = {f"{PACKAGE}.{name}" for name in
         ("cli", "demo", "spec", "lr_finder", "_lr_finder_result", "param_groups", "__main__")}


# ---- finding modules and reading their imports ---------------------------------------------------

def find_modules(roots: Iterable[Path], package: str) -> dict[str, Path | None]:
    """Every module of the package in its directories ``roots``: dotted name -> source file (None for a
    compiled extension)."""
    modules: dict[str, Path | None] = {}
    for root in roots:
        modules.update({name: path for name, path in _modules_under(root, package).items()
                        if modules.get(name) is None})
    return modules


def _modules_under(root: Path, package: str) -> dict[str, Path | None]:
    modules: dict[str, Path | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or not all((root / Path(*rel.parts[:i]) / "__init__.py").exists()
                                                 for i in range(1, len(rel.parts))):
            continue  # in a folder without __init__.py: not part of the package
        parts = [package, *rel.parts[:-1]]
        if path.suffix == ".py":
            stem = path.stem
            modules[".".join(parts if stem == "__init__" else [*parts, stem])] = path
        else:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:  # the most specific first
                if path.name.endswith(suffix):
                    modules[".".join([*parts, path.name[: -len(suffix)]])] = None
                    break
    return modules


def _resolve_from(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name ``from <level dots><target> import ...`` refers to inside ``module``."""
    if level == 0:
        return target or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _innermost(name: str, modules: dict[str, Path | None]) -> str | None:
    """The deepest module of the package that ``import name`` loads (``a.b.c`` -> ``a.b`` if ``c`` is a
    name defined in it)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path | None]) -> set[str]:
    """The package modules that ``module`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(module, is_package, node.level, node.module)
            # ``from pkg import name``: a submodule when one is called so, else a name defined in pkg.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            names = [node.args[0].value]
        for name in names:
            target = _innermost(name, modules)
            if target is not None and target != module:
                found.add(target)
    return found


def import_graph(roots: Iterable[Path], package: str) -> dict[str, set[str]]:
    modules = find_modules(roots, package)
    return {name: (imports_of(name, path, modules) if path is not None else set()) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it has none (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle is not None:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle is not None:
                return cycle
    return None


@lru_cache(maxsize=None)
def _package_graph() -> dict[str, frozenset[str]]:
    return {k: frozenset(v) for k, v in import_graph(ROOTS, PACKAGE).items()}


# ---- the package ---------------------------------------------------------------------------------

MODULES = sorted(find_modules(ROOTS, PACKAGE))


@pytest.fixture(scope="module")
def fresh_imports() -> dict[str, subprocess.CompletedProcess[str]]:
    """``python -c "import <module>"`` for every module, each in a new interpreter (a few at a time)."""
    def run(module: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                              timeout=300)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(MODULES, pool.map(run, MODULES)))


def test_the_package_modules_are_found() -> None:
    expected = {"torchsched", "torchsched._core", "torchsched._validate", "torchsched._program",
                "torchsched._engine", "torchsched.schedules", "torchsched.optim", "torchsched.cli",
                "torchsched.__main__"}
    assert expected <= set(MODULES)
    assert any(m.startswith("torchsched.lr_scheduler") for m in MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_on_its_own(module: str,
                                        fresh_imports: dict[str, subprocess.CompletedProcess[str]]) -> None:
    proc = fresh_imports[module]
    assert proc.returncode == 0, f"import {module} failed in a fresh interpreter:\n{proc.stderr}"


def test_the_import_graph_has_no_cycle() -> None:
    graph = {k: set(v) for k, v in _package_graph().items()}
    assert graph["torchsched._engine"], "the graph should see the engine's imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_layers_import_downward_only() -> None:
    graph = _package_graph()
    for module, targets in graph.items():
        if module != PACKAGE and module not in TOOLS:
            assert not targets & TOOLS, f"{module} imports the user-facing tools {sorted(targets & TOOLS)}"
    assert graph["torchsched._validate"] == frozenset(), "the validation module sits below every other one"
    assert graph["torchsched._program"] <= {"torchsched._core", "torchsched._validate"}
    assert "torchsched._engine" not in graph["torchsched.schedules"]
    assert "torchsched.schedules" not in graph["torchsched._engine"]


# ---- the checker itself --------------------------------------------------------------------------

def test_find_cycle_reports_a_cycle_and_passes_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None
    cycle = find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"x": {"x"}}) == ["x", "x"]


def test_the_graph_sees_function_level_relative_and_type_checking_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "loose").mkdir()  # no __init__.py: not part of the package
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n    return g\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
                              "def g():\n    return 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("import os\nimport pkg.b\nfrom .. import a\nfrom . import d\n"
                                      "import importlib\nm = importlib.import_module('pkg.sub')\n")
    (pkg / "sub" / "d.py").write_text("from ..a import f\n")
    (pkg / "loose" / "e.py").write_text("import pkg.a\n")
    (tmp_path / "built").mkdir()  # a second directory of the package, holding a compiled module
    (tmp_path / "built" / f"_ext{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_text("")
    graph = import_graph([pkg, tmp_path / "built"], "pkg")
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg._ext": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.a"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a", "pkg.b", "pkg.sub", "pkg.sub.d"},
        "pkg.sub.d": {"pkg.a"},
    }
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"pkg.a", "pkg.b"}
