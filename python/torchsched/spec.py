"""Short schedule specs, as strings or JSON/YAML files, turned into :mod:`torchsched.schedules` objects.

Spec strings
------------
A spec is one expression in Python syntax over the builders of :mod:`torchsched.schedules`::

    warmup(linear, 1000) >> cosine(100000, final=0.1)
    0.5 * step(30, gamma=0.1)
    one_cycle(1000, max=1.0)
    sequence([constant(1), linear(500, init=1, final=0.1)], [100])
    warmup(500) * cosine(10_000)

* Calls name a builder: ``constant step multistep piecewise_constant exponential linear polynomial
  inverse_time inverse_power inverse_sqrt cosine cosine_restarts cyclic one_cycle warmup anneal interpolate
  tanh warmup_stable_decay sequence product scale shift``, with the builder's positional and keyword
  arguments.
* Arguments are numbers (``1e-3``, ``100_000``, arithmetic on numbers such as ``2 * 1000`` or ``1 / 3``),
  quoted strings, ``True``/``False``/``None``, lists, tuples, dicts, and nested schedules.
* A bare word names a builder's shape or mode: ``warmup(linear, 1000)`` is
  ``warmup(1000, shape="linear")``. The words are ``linear cosine cos exponential constant`` (the shape of
  ``warmup``, ``anneal``, ``one_cycle``'s ``anneal``, ``interpolate``'s ``kind``, ``warmup_stable_decay``'s
  ``decay_shape``), ``triangular triangular2 exp_range`` (``cyclic``'s ``mode``) and ``peak swing``
  (``cosine_restarts``'s ``decay_mode``). A shape that is not a word (``"1-sqrt"``) is quoted.
* Operators on schedules: ``a >> b`` (``b`` starts when ``a`` ends), ``a * b`` (product) and
  ``2.0 * a`` (scale).

The text is parsed with :mod:`ast` and walked against that whitelist: nothing is evaluated, no name other
than a builder or a shape word is looked up, and attribute access, subscripts, lambdas, comprehensions
and all other syntax are rejected. A schedule's ``repr`` is a valid spec (``parse(repr(s)) == s``).

Files
-----
A ``.json``, ``.yaml`` or ``.yml`` file (YAML only when PyYAML is installed) holds one of:

* a string: a spec expression;
* a node: a mapping whose ``type`` names a builder and whose other keys are its keyword arguments
  (``args`` holds positional arguments), for example
  ``{"type": "cosine", "steps": 100000, "final": 0.1}``; ``{"type": "chain", "schedules": [...]}`` is
  ``a >> b >> ...``; in the places that take schedules (``schedules`` of ``chain``, ``sequence``,
  ``product``; ``schedule`` of ``scale``, ``shift``) an item may be a node or a spec string;
* a mapping with ``schedule`` (a string or a node) and optionally ``steps``, the number of steps
  ``torchsched plot`` shows by default, for example::

      schedule: warmup(linear, 1000) >> cosine(100000, final=0.1)
      steps: 101000

Every problem raises :class:`SpecError` (a :class:`ValueError`) with a one-line message.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import numbers
import os
from typing import Any, Callable, Mapping

from . import _validate as check
from . import schedules as _s

__all__ = ["SpecError", "parse", "load", "from_obj", "resolve", "BUILDERS", "WORDS"]

MAX_LENGTH = 20_000
MAX_DEPTH = 64
# A spec file whose lists and mappings nest deeper than this is refused as it is read, whatever the decoder allows
# (CPython's JSON decoder gives up near 1,000 levels before 3.12 and far deeper from 3.13 on). A spec within
# MAX_DEPTH is at most about 2 * MAX_DEPTH levels of JSON or YAML (a node, its list of schedules, the next node).
MAX_FILE_DEPTH = 4 * MAX_DEPTH

#: The builders a spec may call: every public builder of torchsched.schedules (a new family is callable here
#: as soon as it is exported there).
BUILDERS: dict[str, Callable[..., _s.Schedule]] = {name: getattr(_s, name) for name in _s.__all__ if name != "Schedule"}

#: Bare words: which keyword of which builder they set.
_WORD_PARAM = {
    "warmup": ("shape", {"linear", "exponential", "constant"}),
    "anneal": ("shape", {"linear", "cosine", "exponential"}),
    "one_cycle": ("anneal", {"cos", "cosine", "linear"}),
    "interpolate": ("kind", {"linear", "cosine"}),
    "warmup_stable_decay": ("decay_shape", {"linear", "cosine", "exponential"}),
    "cyclic": ("mode", {"triangular", "triangular2", "exp_range"}),
    "cosine_restarts": ("decay_mode", {"peak", "swing"}),
}
WORDS = sorted(set().union(*(words for _, words in _WORD_PARAM.values())))


class SpecError(ValueError):
    """A spec that cannot be turned into a schedule; the message is one line."""


class _Word(str):
    """A bare word in a spec, resolved by the call it appears in."""


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---- strings -------------------------------------------------------------------------------------

def parse(text: str) -> _s.Schedule:
    """The schedule a spec string describes. Raises :class:`SpecError`."""
    if not isinstance(text, str):
        raise SpecError(f"a spec must be a string, got {type(text).__name__}")
    src = text.strip()
    if not src:
        raise SpecError("empty spec")
    if len(src) > MAX_LENGTH:
        raise SpecError(f"spec is {len(src)} characters long, more than {MAX_LENGTH}")
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as e:
        col = f" at column {e.offset}" if e.offset else ""
        detail = _one_line(e.msg) if e.msg and e.msg != "invalid syntax" else ""
        shown = src if len(src) <= 80 else src[:77] + "..."
        raise SpecError(f"invalid syntax{col}{': ' + detail if detail else ''} in {shown!r}") from None
    except (RecursionError, MemoryError, ValueError):
        raise SpecError("spec is nested too deeply") from None
    value = _Eval(src).visit(tree.body, 0)
    if isinstance(value, _Word) and str(value) in BUILDERS:
        raise SpecError(f"{value} needs arguments, for example {value}(...) (a bare {value} is a shape word)")
    if isinstance(value, _Word):
        raise SpecError(f"{str(value)!r} is a shape, not a schedule; for example warmup({value}, 1000)")
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        raise SpecError(f"a spec must describe a schedule, got the number {value!r}; write constant({value!r})")
    if not isinstance(value, _s.Schedule):
        raise SpecError(f"a spec must describe a schedule, got {type(value).__name__}")
    return value


class _Eval:
    def __init__(self, src: str) -> None:
        self.src = src

    def where(self, node: ast.AST) -> str:
        col = getattr(node, "col_offset", None)
        return f" at column {col + 1}" if col is not None else ""

    def fail(self, node: ast.AST, msg: str) -> SpecError:
        return SpecError(_one_line(msg + self.where(node)))

    def visit(self, node: ast.AST, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"spec is nested more than {MAX_DEPTH} levels deep")
        d = depth + 1
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or v is None or isinstance(v, str):
                return v
            if isinstance(v, (int, float)):
                return self.number(node, v)
            raise self.fail(node, f"unsupported constant {v!r}")
        if isinstance(node, ast.Name):
            if node.id in WORDS:
                return _Word(node.id)
            if node.id in BUILDERS:
                raise self.fail(node, f"{node.id} needs arguments, for example {node.id}(...)")
            if node.id in ("true", "false"):
                return node.id == "true"
            if node.id in ("inf", "nan"):
                raise self.fail(node, f"{node.id} is not allowed: values must be finite")
            raise self.fail(node, f"unknown name {node.id!r}{_suggest(node.id, WORDS + list(BUILDERS))}")
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.visit(e, d) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            out = {}
            for key_node, value_node in zip(node.keys, node.values):
                if key_node is None:
                    raise self.fail(node, "'**' is not allowed in a spec")
                key = self.visit(key_node, d)
                if isinstance(key, (list, dict, _s.Schedule)):
                    raise self.fail(key_node, "dict keys must be numbers or strings")
                out[key] = self.visit(value_node, d)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.visit(node.operand, d)
            if not self.is_number(operand):
                raise self.fail(node, "unary minus/plus applies to numbers only")
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp):
            return self.binop(node, self.visit(node.left, d), self.visit(node.right, d))
        if isinstance(node, ast.Call):
            return self.call(node, d)
        kind = type(node).__name__
        raise self.fail(node, f"{kind} syntax is not allowed in a spec (only builder calls, numbers, "
                              "strings, lists and the operators >> * + - / **)")

    @staticmethod
    def is_number(v: Any) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    def number(self, node: ast.AST, v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            raise self.fail(node, f"number {v!r} is not finite")
        if isinstance(v, int) and abs(v) > 2**63:
            raise self.fail(node, "integer too large")
        return v

    def binop(self, node: ast.BinOp, a: Any, b: Any) -> Any:
        op = node.op
        if isinstance(a, _s.Schedule) or isinstance(b, _s.Schedule):
            try:
                if isinstance(op, ast.RShift) and isinstance(a, _s.Schedule) and isinstance(b, _s.Schedule):
                    if a.duration is None:
                        raise self.fail(node, f"the left side of >> ({a._name}(...)) has no fixed end; use "
                                              "sequence([a, b], [boundary]) instead")
                    return a >> b
                if isinstance(op, ast.Mult) and (isinstance(a, _s.Schedule) or self.is_number(a)) and (
                        isinstance(b, _s.Schedule) or self.is_number(b)):
                    return a * b
            except SpecError:
                raise
            except (TypeError, ValueError) as e:
                raise self.fail(node, str(e)) from None
            raise self.fail(node, f"operator {_SYMBOLS.get(type(op), type(op).__name__)} does not apply to "
                                  f"{_kind(a)} and {_kind(b)} (schedules support a >> b, a * b and number * a)")
        if not (self.is_number(a) and self.is_number(b)):
            raise self.fail(node, "arithmetic applies to numbers only")
        try:
            if isinstance(op, ast.Add):
                r = a + b
            elif isinstance(op, ast.Sub):
                r = a - b
            elif isinstance(op, ast.Mult):
                r = a * b
            elif isinstance(op, ast.Div):
                r = a / b
            elif isinstance(op, ast.FloorDiv):
                r = a // b
            elif isinstance(op, ast.Pow):
                r = float(a) ** float(b)  # floats: 10 ** 10 ** 10 overflows instead of running for ever
                if isinstance(a, int) and isinstance(b, int) and b >= 0 and abs(r) < 2**53:
                    r = int(r)
            else:
                raise self.fail(node, f"operator {_SYMBOLS.get(type(op), type(op).__name__)} is not allowed")
        except ZeroDivisionError:
            raise self.fail(node, "division by zero") from None
        except OverflowError:
            raise self.fail(node, "number too large") from None
        return self.number(node, r)

    def call(self, node: ast.Call, depth: int) -> Any:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only builder names can be called (no attributes or expressions)")
        name = node.func.id
        if name not in BUILDERS:
            raise self.fail(node, f"unknown schedule {name!r}{_suggest(name, list(BUILDERS))}")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.fail(a, "'*' arguments are not allowed in a spec")
            args.append(self.visit(a, depth))
        for kw in node.keywords:
            if kw.arg is None:
                raise self.fail(node, "'**' arguments are not allowed in a spec")
            if kw.arg in kwargs:
                raise self.fail(node, f"{name}() got {kw.arg!r} twice")
            kwargs[kw.arg] = self.visit(kw.value, depth)
        try:
            return build(name, args, kwargs)
        except SpecError as e:
            raise self.fail(node, str(e)) from None


_SYMBOLS = {ast.RShift: ">>", ast.LShift: "<<", ast.Mult: "*", ast.Add: "+", ast.Sub: "-", ast.Div: "/",
            ast.FloorDiv: "//", ast.Pow: "**", ast.Mod: "%", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
            ast.BitXor: "^"}


def _kind(v: Any) -> str:
    if isinstance(v, _s.Schedule):
        return "a schedule"
    if isinstance(v, _Word):
        return f"the word {str(v)!r}"
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return "a number"
    return f"a {type(v).__name__}"


def build(name: str, args: list[Any], kwargs: dict[str, Any]) -> _s.Schedule:
    """Calls builder ``name``, first turning bare words into the keyword they stand for."""
    builder = BUILDERS[name]
    words = [a for a in args if isinstance(a, _Word)]
    args = [a for a in args if not isinstance(a, _Word)]
    if words:
        if name not in _WORD_PARAM:
            raise SpecError(f"{name}() takes no shape word, got {str(words[0])!r}")
        param = _WORD_PARAM[name][0]  # the builder checks the word, as it checks the keyword
        if len(words) > 1:
            raise SpecError(f"{name}() takes one shape word, got {', '.join(map(str, words))}")
        word = str(words[0])
        if param in kwargs:
            raise SpecError(f"{name}() got {param} both as the word {word!r} and as a keyword")
        if name == "one_cycle" and word == "cosine":
            word = "cos"
        kwargs[param] = word
    for k, v in list(kwargs.items()):
        if isinstance(v, _Word):
            kwargs[k] = str(v)
    if name == "product" and "schedules" in kwargs and not args:
        scheds = kwargs.pop("schedules")  # the form repr() writes
        if not isinstance(scheds, (list, tuple)):
            raise SpecError("product(schedules=...) needs a list")
        args = list(scheds)
    try:
        return builder(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise SpecError(f"{name}(): {_one_line(str(e))}") from None


# ---- files and objects ---------------------------------------------------------------------------

_SCHEDULE_LISTS = {"chain": "schedules", "sequence": "schedules", "product": "schedules"}
_SCHEDULE_ONE = {"scale": "schedule", "shift": "schedule"}


def from_obj(obj: Any, where: str = "spec") -> _s.Schedule:
    """A schedule from a decoded JSON/YAML value: a spec string, a node, or ``{"schedule": ...}``; nested at
    most MAX_DEPTH levels deep, as a spec string."""
    return _from_obj(obj, where, 0)


def _nested(where: str, depth: int) -> int:
    """The depth one level below ``depth``, or the error a too deeply nested structure gets."""
    if depth >= MAX_DEPTH:
        shown = where if len(where) <= 60 else where[:57] + "..."
        raise SpecError(f"{shown}: spec is nested more than {MAX_DEPTH} levels deep")
    return depth + 1


def _from_obj(obj: Any, where: str, depth: int) -> _s.Schedule:
    d = _nested(where, depth)
    if isinstance(obj, str):
        return parse(obj)
    if not isinstance(obj, Mapping):
        raise SpecError(f"{where}: expected a spec string or a mapping with 'type', got {type(obj).__name__}")
    if "type" not in obj:
        if "schedule" in obj:
            extra = sorted(set(obj) - {"schedule", "steps"})
            if extra:
                raise SpecError(f"{where}: unknown keys {extra} (a file holds 'schedule' and optionally 'steps')")
            return _from_obj(obj["schedule"], f"{where}.schedule", d)
        raise SpecError(f"{where}: a node needs a 'type' key naming a builder, got keys {sorted(map(str, obj))}")
    kind = obj["type"]
    if not isinstance(kind, str):
        raise SpecError(f"{where}.type must be a string, got {kind!r}")
    if kind != "chain" and kind not in BUILDERS:
        raise SpecError(f"{where}: unknown schedule type {kind!r}{_suggest(kind, ['chain'] + list(BUILDERS))}")
    kwargs = {str(k): v for k, v in obj.items() if k not in ("type", "args")}
    args = obj.get("args", [])
    if not isinstance(args, list):
        raise SpecError(f"{where}.args must be a list, got {type(args).__name__}")
    args = [_value(a, f"{where}.args[{i}]", d) for i, a in enumerate(args)]
    for k, v in kwargs.items():
        if _SCHEDULE_LISTS.get(kind) == k:
            if not isinstance(v, list) or not v:
                raise SpecError(f"{where}.{k} must be a non-empty list of schedules")
            kwargs[k] = [_from_obj(item, f"{where}.{k}[{i}]", d) for i, item in enumerate(v)]
        elif _SCHEDULE_ONE.get(kind) == k:
            kwargs[k] = _from_obj(v, f"{where}.{k}", d)
        else:
            kwargs[k] = _value(v, f"{where}.{k}", d)
    if kind == "chain":
        extra = sorted(set(kwargs) - {"schedules"})
        if extra or args or "schedules" not in kwargs:
            raise SpecError(f"{where}: a chain takes only 'schedules' (a list), got keys {sorted(obj)}")
        scheds = kwargs["schedules"]
        out = scheds[0]
        for i, s in enumerate(scheds[1:], 1):
            try:
                out = out >> s
            except (TypeError, ValueError) as e:
                raise SpecError(f"{where}.schedules[{i - 1}]: {_one_line(str(e))}") from None
        return out
    try:
        return build(kind, args, kwargs)
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None


def _value(v: Any, where: str, depth: int) -> Any:
    if isinstance(v, Mapping):
        if "type" in v:
            return _from_obj(v, where, depth)
        d = _nested(where, depth)
        return {k: _value(x, f"{where}.{k}", d) for k, x in v.items()}
    if isinstance(v, list):
        d = _nested(where, depth)
        return [_value(x, f"{where}[{i}]", d) for i, x in enumerate(v)]
    if isinstance(v, float):
        try:
            check.real(where, v)
        except ValueError as e:
            raise SpecError(str(e)) from None
    return v


def _read(path: str) -> Any:
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror or e}") from None
    too_deep = f"{path}: spec is nested too deeply"
    try:
        if ext in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError:
                raise SpecError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); JSON works without "
                                "it") from None
            try:
                obj = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise SpecError(f"{path}: invalid YAML: {_one_line(str(e))}") from None
        else:
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise SpecError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:  # a decoder that gives up on the depth (JSON before 3.13, YAML)
        raise SpecError(too_deep) from None
    if not _nests_at_most(obj, MAX_FILE_DEPTH):  # a decoder that reads any depth (JSON from 3.13)
        raise SpecError(too_deep)
    return obj


def _nests_at_most(obj: Any, limit: int) -> bool:
    """Whether the lists and mappings of a decoded file nest at most ``limit`` levels deep (no recursion)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def load(path: str | os.PathLike[str]) -> tuple[_s.Schedule, dict[str, Any]]:
    """``(schedule, options)`` from a JSON or YAML file; ``options`` holds ``steps`` when the file sets it."""
    p = os.fspath(path)
    obj = _read(p)
    options: dict[str, Any] = {}
    if isinstance(obj, Mapping) and "type" not in obj and "steps" in obj:
        try:
            options["steps"] = check.integer("steps", obj["steps"], 1)
        except (TypeError, ValueError) as e:
            raise SpecError(f"{p}: {e}") from None
    return from_obj(obj, os.path.basename(p)), options


def is_file_spec(text: str) -> bool:
    """True when ``text`` names a spec file rather than being a spec expression."""
    return os.path.splitext(text)[1].lower() in (".json", ".yaml", ".yml") or (
        os.path.isfile(text) and "(" not in text)


def resolve(text: str) -> tuple[_s.Schedule, dict[str, Any]]:
    """A spec string or a file path (``.json``/``.yaml``/``.yml``): ``(schedule, options)``."""
    if is_file_spec(text):
        return load(text)
    return parse(text), {}
