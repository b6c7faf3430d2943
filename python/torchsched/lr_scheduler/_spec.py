"""What a drop-in scheduler compiles its rule to (a :class:`_Spec`), and the host engine built from it."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from .. import _core
from .._program import Builder, Code
from ..schedules import Schedule

_VALUE, _SCALE, _PREV = 0, 1, 2          # Stepper combine: lr = v, base * v, prev * v
_NO_MOMENTUM, _MOMENTUM, _BETAS = 0, 1, 2
_FLOAT32, _FLOAT64 = 0, 1
_BUFFER_DTYPES = {torch.float32: _FLOAT32, torch.float64: _FLOAT64}
_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


class _Spec:
    """What a scheduler compiles to: one leaf per group (an op tuple or a Schedule), optional momentum
    leaves, how values combine, Python callables, and whether the C-level step may run it."""

    __slots__ = ("leaves", "combine", "scale", "mleaves", "mom_key", "fns", "mfns", "cycle_total", "clock",
                 "max_step", "fast", "watch", "watched")

    def __init__(self, leaves: list[Any], *, combine: int = _VALUE, scale: Sequence[float] = (),
                 mleaves: Sequence[Any] = (), mom_key: int = _NO_MOMENTUM, fns: Any = None, mfns: Any = None,
                 cycle_total: float = 0.0, clock: int = 0, max_step: float = math.inf, fast: bool = True,
                 watch: tuple[str, ...] = (), groups: Sequence[dict[str, Any]] = ()) -> None:
        self.leaves = leaves
        self.combine = combine
        self.scale = list(scale)
        self.mleaves = list(mleaves)
        self.mom_key = mom_key
        self.fns = fns
        self.mfns = mfns
        self.cycle_total = cycle_total
        self.clock = clock
        self.max_step = max_step
        self.fast = fast
        # group keys compiled in, which torch reads every step: an edit recompiles (_Core._group_keys_edited)
        self.watch = watch
        self.watched = [float(g[k]) for g in groups for k in watch]


def _leaf(code: Code, *params: Any, table: Sequence[float] = (), count: int | None = None) -> tuple[Any, ...]:
    """An op as a hashable tuple: code, parameters, aux table and its entry count (op.b)."""
    table = tuple(float(x) for x in table)
    return (code, tuple(float(p) for p in params), table, len(table) if count is None else count)


def _compile(leaves: Sequence[Any], mleaves: Sequence[Any]) -> tuple[_core.Program, list[int], list[int]]:
    """One program for every group's leaf; identical leaves (and the same Schedule) are emitted once."""
    builder = Builder()
    seen: dict[Any, int] = {}

    def root(leaf: Any) -> int:
        key = ("schedule", id(leaf)) if isinstance(leaf, Schedule) else leaf
        if key in seen:
            return seen[key]
        index = len(builder.ops)
        if isinstance(leaf, Schedule):
            leaf._emit(builder)
        else:
            code, params, table, count = leaf
            offset = builder.table(table) if table else 0
            builder.leaf(code, params, offset, count)
        seen[key] = index
        return index

    roots = [root(leaf) for leaf in leaves]
    mroots = [root(leaf) for leaf in mleaves]
    return builder.program(), roots, mroots


def _host_engine(spec: _Spec) -> Any:
    """The host engine (a ``_core.Stepper``) on the spec's program: it stores Python float LRs (which any
    device's optimizer reads) and CPU LR tensors in place."""
    program, roots, mroots = _compile(spec.leaves, spec.mleaves)
    stepper = _core.Stepper(program, np.asarray(roots, dtype=np.int32), np.asarray(spec.scale, dtype=np.float64),
                            spec.combine, np.asarray(mroots, dtype=np.int32), spec.mom_key)
    if spec.fns is not None or spec.mfns is not None:
        stepper.set_callables(spec.fns, spec.mfns, spec.cycle_total)
    if spec.watch:
        stepper.watch(spec.watch, np.asarray(spec.watched, dtype=np.float64))
    stepper.clock = spec.clock
    stepper.max_step = float(spec.max_step)
    return stepper


def _base(scheduler: Any, g: int) -> float:
    """Group g's base LR as a float (0.0 past the end of base_lrs: torch raises before it is used)."""
    base = scheduler.base_lrs
    return float(base[g]) if g < len(base) else 0.0


def _schedule_or_input(fn: Any) -> Any:
    """A schedule spec given as a lambda runs in the core; a Python callable is the input of its leaf."""
    return fn if isinstance(fn, Schedule) else _leaf(Code.TORCH_INPUT)
