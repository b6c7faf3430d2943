"""Compiles schedule specs into the flat op table the core walks; the op codes come from the core's
families table (cpp/include/torchsched/families.def, exported as ``_core.FAMILIES``)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np

from . import _core

if TYPE_CHECKING:  # what the compiler needs of a schedule, named without importing the schedules above
    from ._validate import Emitter as Schedule

NUM_PARAMS: int = _core.NUM_PARAMS

# One record per node; must match `struct Op` in cpp/include/torchsched/families.hpp.
OP_DTYPE = np.dtype([("code", "<i4"), ("size", "<i4"), ("a", "<i4"), ("b", "<i4"), ("p", "<f8", (NUM_PARAMS,))])
assert OP_DTYPE.itemsize == _core.OP_RECORD_BYTES, "Python and C++ disagree on the op record layout"


class Family(NamedTuple):
    """One row of the core's families table (cpp/include/torchsched/families.def), as ``_core.FAMILIES``
    exports it. Masks have bit k set for parameter k."""

    code_name: str  # the member of Code
    code: int
    name: str  # the Python-facing name: the schedules builder of a native leaf or combinator
    kind: str  # "native", "signal" (driven by observations), "chainable" (reads the previous LR), "torch", "combinator"
    params: tuple[str, ...]  # parameter names in p[] order
    positive: int  # must be > 0 (every parameter must be finite)
    integer: int  # whole numbers: modes, flags, counts
    optional: int  # NaN means "none"
    per_group: int  # may differ between the groups of one split torch rule
    chains: bool
    torch_split: bool
    table: str  # what the aux table holds: "none", "sorted", "steps" or "points"


assert Family._fields == _core.FAMILY_FIELDS, "Python and C++ disagree on the families table's columns"
FAMILIES: tuple[Family, ...] = tuple(Family(*row) for row in _core.FAMILIES)

if TYPE_CHECKING:
    class _CodeNames(enum.EnumMeta):
        def __getattr__(cls, name: str) -> Code: ...

    class Code(enum.IntEnum, metaclass=_CodeNames):
        """Op codes: one member per row of the core's families table (the type checker takes any name)."""
else:
    Code = enum.IntEnum("Code", [(f.code_name, f.code) for f in FAMILIES], module=__name__)
    Code.__doc__ = "Op codes: one member per row of the core's families table (``_core.FAMILIES``)."

#: Codes of the torch rules that read the previous LR: their host mirror must be evaluated at every step, in order.
CHAINABLE_CODES: frozenset[int] = frozenset(f.code for f in FAMILIES if f.chains)


class Builder:
    """Appends nodes in pre-order; a combinator's size is patched once its children are in."""

    def __init__(self) -> None:
        self.ops: list[tuple[int, int, int, int, tuple[float, ...]]] = []
        self.aux: list[float] = []
        self.signals: list[Schedule] = []  # the signal leaves, in slot order (one slot per leaf object)

    def signal_slot(self, leaf: Schedule) -> int:
        """The factor-table column of a signal leaf: the same leaf object always gets the same one."""
        for slot, known in enumerate(self.signals):
            if known is leaf:
                return slot
        self.signals.append(leaf)
        return len(self.signals) - 1

    def _params(self, params: Sequence[float]) -> tuple[float, ...]:
        padded = [float(x) for x in params] + [0.0] * (NUM_PARAMS - len(params))
        if len(padded) != NUM_PARAMS:
            raise ValueError("too many parameters for one op")
        return tuple(padded)

    def table(self, values: Sequence[float]) -> int:
        offset = len(self.aux)
        self.aux.extend(float(v) for v in values)
        return offset

    def leaf(self, code: Code, params: Sequence[float] = (), a: int = 0, b: int = 0) -> None:
        self.ops.append((int(code), 1, a, b, self._params(params)))

    def node(self, code: Code, children: Sequence[Schedule], params: Sequence[float] = (), a: int = 0) -> None:
        index = len(self.ops)
        self.ops.append((int(code), 0, a, len(children), self._params(params)))
        for child in children:
            child._emit(self)
        code_, _, a_, b_, p_ = self.ops[index]
        self.ops[index] = (code_, len(self.ops) - index, a_, b_, p_)

    def program(self) -> _core.Program:
        records = np.zeros(len(self.ops), dtype=OP_DTYPE)
        for i, (code, size, a, b, p) in enumerate(self.ops):
            records[i] = (code, size, a, b, p)
        return _core.Program(records, np.asarray(self.aux, dtype=np.float64))


def compile_many(schedules: Sequence[Schedule]) -> tuple[_core.Program, np.ndarray]:
    """One program for several schedules; the same schedule object is emitted once and shared."""
    builder = Builder()
    roots: list[int] = []
    seen: dict[int, int] = {}
    for sched in schedules:
        key = id(sched)
        if key not in seen:
            seen[key] = len(builder.ops)
            sched._emit(builder)
        roots.append(seen[key])
    return builder.program(), np.asarray(roots, dtype=np.int32)
