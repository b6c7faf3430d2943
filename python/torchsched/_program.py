"""Compiles schedule specs into the flat op table the core walks (see formulas.hpp for the layout)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Sequence

import numpy as np

from . import _core

if TYPE_CHECKING:  # what the compiler needs of a schedule, named without importing the schedules above
    from ._validate import Emitter as Schedule

NUM_PARAMS: int = _core.NUM_PARAMS

# One record per node; must match `struct Op` in cpp/include/torchsched/formulas.hpp.
OP_DTYPE = np.dtype([("code", "<i4"), ("size", "<i4"), ("a", "<i4"), ("b", "<i4"), ("p", "<f8", (NUM_PARAMS,))])
assert OP_DTYPE.itemsize == _core.OP_RECORD_BYTES, "Python and C++ disagree on the op record layout"


class Code(enum.IntEnum):
    """Op codes, mirrored from `enum OpCode` in formulas.hpp."""

    CONSTANT = 0
    STEP = 1
    PIECEWISE_CONST = 2
    EXPONENTIAL = 3
    POLYNOMIAL = 4
    INVERSE_TIME = 5
    INVERSE_POWER = 6
    INVERSE_SQRT = 7
    COSINE = 8
    COSINE_RESTARTS = 9
    CYCLIC = 10
    WARMUP = 11
    ANNEAL = 12
    INTERP = 13
    TANH = 14
    TORCH_STEP = 20
    TORCH_MULTISTEP = 21
    TORCH_CONSTANT = 22
    TORCH_LINEAR = 23
    TORCH_EXPONENTIAL = 24
    TORCH_POLYNOMIAL = 25
    TORCH_COSINE = 26
    TORCH_SWA = 27
    TORCH_INPUT = 28
    TORCH_STEP_CLOSED = 29
    TORCH_CONSTANT_CLOSED = 30
    TORCH_LINEAR_CLOSED = 31
    TORCH_EXPONENTIAL_CLOSED = 32
    TORCH_POLYNOMIAL_CLOSED = 33
    TORCH_COSINE_CLOSED = 34
    TORCH_CYCLIC = 35
    TORCH_ONE_CYCLE = 36
    PRODUCT = 40
    SCALE = 41
    SEQUENCE = 42
    SHIFT = 43


class Builder:
    """Appends nodes in pre-order; a combinator's size is patched once its children are in."""

    def __init__(self) -> None:
        self.ops: list[tuple[int, int, int, int, tuple[float, ...]]] = []
        self.aux: list[float] = []

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
