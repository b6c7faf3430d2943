"""python/torchsched/_core.pyi against the compiled module: the same public names, the same class members
and properties, the same parameter names; and, when mypy is installed, its stubtest over the module and
mypy over the whole package."""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys
from typing import Any

import pytest

import torchsched
from torchsched import _core

STUB = pathlib.Path(torchsched.__file__).parent / "_core.pyi"
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"), filename=str(STUB))


def _names_in(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """Names a stub body defines (functions, classes, annotated or assigned names); for a property with a
    setter, the getter."""
    out: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.setdefault(node.name, node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node
    return out


def _public(names: Any) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def _decorators(node: ast.stmt) -> set[str]:
    names = set()
    for d in getattr(node, "decorator_list", []):
        names.add(ast.unparse(d))
    return names


STUB_TOP = _names_in(_stub_tree().body)
RUNTIME_CLASSES = sorted(n for n in _public(dir(_core)) if isinstance(getattr(_core, n), type))


def test_stub_file_is_shipped_with_py_typed() -> None:
    assert STUB.is_file()
    assert (STUB.parent / "py.typed").is_file()


def test_every_public_runtime_name_is_in_the_stub_and_back() -> None:
    runtime = _public(dir(_core))
    stub = _public(STUB_TOP)
    assert runtime - stub == set(), "in _core but missing from _core.pyi"
    assert stub - runtime == set(), "in _core.pyi but not in the compiled module"


def test_kinds_agree() -> None:
    for name in _public(STUB_TOP):
        node, obj = STUB_TOP[name], getattr(_core, name)
        if isinstance(node, ast.ClassDef):
            assert isinstance(obj, type), f"{name}: a class in the stub, {type(obj).__name__} at runtime"
        elif isinstance(node, ast.FunctionDef):
            assert callable(obj) and not isinstance(obj, type), f"{name}: a function in the stub"
        else:
            annotation = ast.unparse(node.annotation) if isinstance(node, ast.AnnAssign) else None
            assert not callable(obj), f"{name}: a value in the stub"
            if annotation in ("int", "float", "bool", "str"):
                assert type(obj).__name__ == annotation, f"{name}: {annotation} in the stub, {obj!r} at runtime"


@pytest.mark.parametrize("cls_name", RUNTIME_CLASSES)
def test_class_members_agree(cls_name: str) -> None:
    cls = getattr(_core, cls_name)
    node = STUB_TOP[cls_name]
    assert isinstance(node, ast.ClassDef)
    stub_members = _names_in(node.body)
    runtime_members = {n: v for n, v in vars(cls).items() if not n.startswith("_")}
    assert set(runtime_members) - set(stub_members) == set(), f"{cls_name} members missing from the stub"
    assert _public(stub_members) - set(runtime_members) == set(), f"{cls_name} members the runtime lacks"
    for name, value in runtime_members.items():
        stub_node = stub_members[name]
        if isinstance(value, property):
            # A read-only property is `@property` or a bare annotation; a writable one needs a setter.
            setters = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == name
                       and f"{name}.setter" in _decorators(n)]
            if isinstance(stub_node, ast.FunctionDef):
                assert "property" in _decorators(stub_node), f"{cls_name}.{name} is a property at runtime"
                assert bool(setters) == (value.fset is not None), f"{cls_name}.{name}: setter disagrees"
            else:
                assert isinstance(stub_node, ast.AnnAssign), f"{cls_name}.{name}"
        else:
            assert isinstance(stub_node, ast.FunctionDef) and "property" not in _decorators(stub_node), (
                f"{cls_name}.{name} is a method at runtime")


_SIGNATURE = re.compile(r"^\w+\((?P<args>.*)\)\s*->")


def _runtime_params(obj: Any) -> list[str] | None:
    """Parameter names from a pybind11 docstring's first line (None when overloaded or absent)."""
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    if not doc:
        return None
    match = _SIGNATURE.match(doc[0])
    if match is None:
        return None
    names, depth, current = [], 0, ""
    for ch in match.group("args"):  # split on top-level commas only: defaults hold brackets
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        names.append(current)
    return [n.split(":")[0].split("=")[0].strip() for n in names]


def _stub_params(node: ast.FunctionDef) -> list[str]:
    a = node.args
    return [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]


def _functions() -> list[tuple[str, Any, ast.FunctionDef]]:
    out = []
    for name, node in STUB_TOP.items():
        if isinstance(node, ast.FunctionDef) and not name.startswith("_"):
            out.append((name, getattr(_core, name), node))
        if isinstance(node, ast.ClassDef):
            cls = getattr(_core, name)
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and "property" not in _decorators(member) and \
                        not any(d.endswith(".setter") for d in _decorators(member)):
                    out.append((f"{name}.{member.name}", getattr(cls, member.name), member))
    return out


@pytest.mark.parametrize("qualname,obj,node", [pytest.param(q, o, n, id=q) for q, o, n in _functions()])
def test_parameter_names_agree(qualname: str, obj: Any, node: ast.FunctionDef) -> None:
    runtime = _runtime_params(obj)
    if runtime is None:
        pytest.skip(f"{qualname}: no single pybind11 signature to compare")
    assert runtime == _stub_params(node), f"{qualname}: runtime {runtime} vs stub {_stub_params(node)}"


def test_signature_parser_reads_pybind11_docstrings() -> None:
    class Fake:
        __doc__ = "f(self: X, a: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], b: int = 0) -> None\n"

    assert _runtime_params(Fake) == ["self", "a", "b"]


def test_stubtest(tmp_path: pathlib.Path) -> None:
    """mypy's stubtest: every signature, default and property of the stub against the runtime."""
    pytest.importorskip("mypy.stubtest", reason="mypy is not installed in this environment (`make venv` adds it)")
    # pybind11 classes have the pybind11_type metaclass, which a stub cannot spell: allow that one error
    # on each class (its members are still checked one by one).
    classes = [n for n in RUNTIME_CLASSES if type(getattr(_core, n)).__name__ == "pybind11_type"]
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text("".join(f"torchsched._core.{n}\n" for n in classes), encoding="utf-8")
    # Keep mypy out of torch's and matplotlib's sources (the package imports them; the stub does not need
    # them), which would take most of a minute.
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n[mypy-torch.*]\nfollow_imports = skip\n[mypy-matplotlib.*]\nfollow_imports = skip\n",
                      encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "torchsched._core", "--allowlist", str(allowlist),
         "--mypy-config-file", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_package_type_checks(tmp_path: pathlib.Path) -> None:
    """mypy over the whole package, torch's annotations included: the package ships py.typed, so its own
    annotations must hold."""
    pytest.importorskip("mypy", reason="mypy is not installed in this environment (`make venv` adds it)")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), "python/torchsched"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
