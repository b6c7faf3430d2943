"""Binds G param groups to a core engine: programs, per-group scale, buffers and the host mirror.

The Python layer checks every buffer (device, dtype, size, contiguity) before its address reaches the
core, and keeps the owning objects alive for as long as the core may write to them.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np
import torch

from . import _core
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
    """``value`` as a step count: an integer >= 0 (not a bool); ValueError naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
    return int(value)


def _finite_list(name: str, values: Sequence[Any], count: int | None = None) -> list[float]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}[{i}] must be a real number, got {v!r}")
        f = float(v)
        if not math.isfinite(f) or f < 0:
            raise ValueError(f"{name}[{i}] must be finite and >= 0, got {v!r}")
        out.append(f)
    if count is not None and len(out) != count:
        raise ValueError(f"{name} has {len(out)} entries for {count} groups")
    return out


class Engine:
    """G groups on the host: an int64 step and per-group base LR, multiplier and schedule.

    ``LR_g(t) = base_lrs[g] * multipliers[g] * schedule_g(t)``. After construction the step is 0;
    :meth:`advance` moves to the next step and writes all G LRs in one core call.
    """

    def __init__(self, schedules: Any, base_lrs: Sequence[float], multipliers: Sequence[float] | None = None,
                 *, step: int = 0) -> None:
        from .schedules import Schedule

        base = _finite_list("base_lrs", list(base_lrs))
        groups = len(base)
        if groups == 0:
            raise ValueError("base_lrs must have at least one entry")
        if isinstance(schedules, Schedule):
            scheds = [schedules] * groups
        else:
            scheds = list(schedules)
            if len(scheds) != groups:
                raise ValueError(f"got {len(scheds)} schedules for {groups} groups (base_lrs)")
            for i, s in enumerate(scheds):
                if not isinstance(s, Schedule):
                    raise TypeError(f"schedules[{i}] must be a torchsched schedule, got {s!r}")
        mult = [1.0] * groups if multipliers is None else _finite_list("multipliers", list(multipliers), groups)
        step = step_count(step)
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
        self._core.step = step_count(value)
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
        v = _finite_list("multiplier", [value])[0]
        self.multipliers[group] = v
        self._core.set_scale(group, self.base_lrs[group] * v)

    def __repr__(self) -> str:
        return f"Engine(groups={self.groups}, step={self.step})"
