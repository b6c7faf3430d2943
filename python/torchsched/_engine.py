"""Binds G param groups to a core engine: programs, per-group scale, buffers and the host mirror.

The Python layer checks every buffer (device, dtype, size, contiguity) before its address reaches the
core, and keeps the owning objects alive for as long as the core may write to them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from . import _core
from . import _validate as check
from ._program import compile_many

FLOAT32, FLOAT64 = 0, 1


def buffer_pointer(out: Any, count: int, *, name: str = "out") -> tuple[int, int]:
    """(address, dtype code) of a writable, contiguous float32/float64 CPU buffer of ``count`` elements."""
    if isinstance(out, np.ndarray):
        if out.dtype == np.float32:
            code = FLOAT32
        elif out.dtype == np.float64:
            code = FLOAT64
        else:
            raise TypeError(f"{name} must be float32 or float64, got dtype {out.dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"{name} must be a writable C-contiguous array")
        if out.size != count:
            raise ValueError(f"{name} has {out.size} elements, expected {count} (one per group)")
        return int(out.ctypes.data), code
    if isinstance(out, torch.Tensor):
        if out.device.type != "cpu":
            raise ValueError(f"{name} is on {out.device}; this call writes CPU memory (use the CUDA engine)")
        if out.dtype == torch.float32:
            code = FLOAT32
        elif out.dtype == torch.float64:
            code = FLOAT64
        else:
            raise TypeError(f"{name} must be float32 or float64, got dtype {out.dtype}")
        if not out.is_contiguous():
            raise ValueError(f"{name} must be contiguous")
        if out.numel() != count:
            raise ValueError(f"{name} has {out.numel()} elements, expected {count} (one per group)")
        if out.requires_grad:
            raise ValueError(f"{name} must not require grad")
        return int(out.data_ptr()), code
    raise TypeError(f"{name} must be a numpy array or a CPU torch tensor, got {type(out).__name__}")


def step_count(value: Any, what: str = "step") -> int:
    """:func:`torchsched._validate.counter_step` (a step counter's value, at most 2**62) with the value
    first, the order the CUDA engine calls it in."""
    return check.counter_step(what, value)


class Engine:
    """G groups on the host: an int64 step and per-group base LR, multiplier and schedule.

    The step is set (at construction, or through :attr:`step`) to at most 2**62, the step policy of
    :data:`torchsched._validate.STEP_LIMIT`, so :meth:`advance` cannot run it past int64.

    ``LR_g(t) = base_lrs[g] * multipliers[g] * schedule_g(t)``. After construction the step is 0;
    :meth:`advance` moves to the next step and writes all G LRs in one core call.
    """

    def __init__(self, schedules: Any, base_lrs: Sequence[float], multipliers: Sequence[float] | None = None,
                 *, step: int = 0) -> None:
        base = check.non_negative_list("base_lrs", base_lrs)
        groups = len(base)
        if groups == 0:
            raise ValueError("base_lrs must have at least one entry")
        if check.is_schedule(schedules):
            scheds = [schedules] * groups
        else:
            scheds = list(schedules)
            if len(scheds) != groups:
                raise ValueError(f"got {len(scheds)} schedules for {groups} groups (base_lrs)")
            for i, s in enumerate(scheds):
                check.schedule(f"schedules[{i}]", s)
        mult = [1.0] * groups if multipliers is None else check.non_negative_list("multipliers", multipliers, groups)
        step = check.counter_step("step", step)
        self.schedules = scheds
        self.base_lrs: list[float] = base
        self.multipliers: list[float] = mult
        program, roots = compile_many(scheds)
        self._core: _core.Engine = _core.Engine(program, roots, np.asarray(base) * np.asarray(mult), int(step))
        self._core.write(0, FLOAT64, 0)  # the mirror holds f(step) from the start
        self._bound: tuple[Any, int, int] | None = None  # (owner, address, dtype) of a bound buffer

    @property
    def groups(self) -> int:
        return int(self._core.groups)

    @property
    def step(self) -> int:
        return int(self._core.step)

    @step.setter
    def step(self, value: int) -> None:
        self._core.step = check.counter_step("step", value)
        self._core.write(0, FLOAT64, 0)

    def bind(self, out: Any) -> Any:
        """Checks ``out`` once and keeps it: later ``advance()``/``write()`` calls without a buffer write
        into it with no per-call checks (the hot path of the optimizer wrappers)."""
        ptr, code = buffer_pointer(out, self.groups)
        self._bound = (out, ptr, code)
        self._core.write(ptr, code, self.groups)
        return out

    def write(self, out: Any = None) -> Any:
        """Writes the LRs of the current step into ``out`` (float32/float64 numpy array or CPU tensor),
        or into the bound buffer."""
        if out is None:
            if self._bound is None:
                self._core.write(0, FLOAT64, 0)
                return None
            out, ptr, code = self._bound
            self._core.write(ptr, code, self.groups)
            return out
        ptr, code = buffer_pointer(out, self.groups)
        self._core.write(ptr, code, self.groups)
        return out

    def advance(self, out: Any = None) -> Any:
        """Moves to the next step and writes all G LRs into ``out`` (or the bound buffer) in one core call."""
        if out is None:
            bound = self._bound
            if bound is None:
                self._core.advance(0, FLOAT64, 0)
                return None
            self._core.advance(bound[1], bound[2], self.groups)
            return bound[0]
        ptr, code = buffer_pointer(out, self.groups)
        self._core.advance(ptr, code, self.groups)
        return out

    def lrs(self) -> list[float]:
        """The LRs of the current step, as Python floats (from the host mirror: no device sync)."""
        return list(self._core.lrs())

    def set_multiplier(self, group: int, value: float) -> None:
        v = check.non_negative(f"multipliers[{group}]", value)
        self.multipliers[group] = v
        self._core.set_scale(group, self.base_lrs[group] * v)

    def __repr__(self) -> str:
        return f"Engine(groups={self.groups}, step={self.step})"
