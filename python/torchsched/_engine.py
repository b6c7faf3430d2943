"""Binds G param groups to a core engine: programs, per-group scale, buffers and the host mirror; the host
binding wrap() drives, and the guard that keeps every LR it stores finite.

The Python layer checks every buffer (device, dtype, size, contiguity) before its address reaches the
core, and keeps the owning objects alive for as long as the core may write to them.
"""

from __future__ import annotations

import math
import operator
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import _core
from . import _validate as check
from ._program import compile_many

FLOAT32, FLOAT64 = 0, 1
_LR_OF = operator.itemgetter("lr")  # group -> group['lr'], at C speed in map()


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
        self._core: _core.HostEngine = _core.HostEngine(program, roots, np.asarray(base) * np.asarray(mult), int(step))
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


# ---- the finite-LR guard (wrap()'s invariant) ------------------------------------------------

LR_LIMIT_FLOAT32 = float(np.finfo(np.float32).max)
LR_LIMIT_FLOAT64 = float(np.finfo(np.float64).max)  # "<= limit" then also refuses inf and NaN


class LrGuard:
    """Proves on the host, before the engine stores them, that every group's LRs are finite and fit the
    destination's dtype: ``base_lr * multiplier * schedule(t)``, evaluated as the core evaluates it.

    ``check(first, count)`` proves steps ``first .. first + count - 1`` in one batched evaluation per
    distinct schedule, halving the window where a bound fails; it returns how many steps from ``first`` on
    are proven (at least 1) and raises ``ValueError`` naming the group and the step when step ``first``
    itself would store a non-finite LR.
    """

    #: Steps proven at once: the proof of a window costs about as much as that many core steps of one
    #: group, nothing measurable per step.
    WINDOW = 1024

    def __init__(self, schedules: Sequence[Any], scales: Sequence[float], limits: Sequence[float],
                 labels: Sequence[str]) -> None:
        self._schedules = list(schedules)
        self._program, roots = compile_many(self._schedules)
        self._roots = [int(r) for r in roots]
        self._scales = [float(x) for x in scales]
        self._limits = list(limits)
        self._labels = list(labels)
        bound: dict[int, tuple[float, float]] = {}  # root -> (largest scale, smallest limit) of its groups
        for root, scale, limit in zip(self._roots, self._scales, self._limits):
            big, small = bound.get(root, (0.0, LR_LIMIT_FLOAT64))
            bound[root] = (max(big, abs(scale)), min(small, limit))
        self._bounds = list(bound.items())

    def check(self, first: int, count: int) -> int:
        n = count
        while n > 1:
            if self._window_holds(first, n):
                return n
            n //= 2
        self._exact(first)
        return 1

    def _window_holds(self, first: int, n: int) -> bool:
        for root, (scale, limit) in self._bounds:
            try:
                values = self._program.values_range(root, first, 1, n)
            except ValueError:  # a non-finite value in the window
                return False
            if not float(np.max(np.abs(values))) * scale <= limit:
                return False
        return True

    def _exact(self, step: int) -> None:
        for g, (root, scale, limit) in enumerate(zip(self._roots, self._scales, self._limits)):
            value = float(self._program.value(root, step))
            lr = scale * value  # the core's product, in the same order
            if not abs(lr) <= limit:
                fits = " in float32 (the LR tensor's dtype)" if math.isfinite(lr) else ""
                raise ValueError(f"the LR of {self._labels[g]} would not be finite{fits} at step {step}: "
                                 f"base LR x multiplier {scale!r} x schedule {value!r} "
                                 f"({check.shown(self._schedules[g], 80)})")


# ---- engine bindings -----------------------------------------------------------------------------

class HostBinding:
    """Groups driven by the host (CPU) core engine.

    The interface every binding offers (the CUDA one included): ``engine`` (the :class:`Engine`),
    ``install(groups)`` (puts the current LRs, and the LR tensors, into the group dicts without advancing),
    ``advance(groups, found_inf)`` (one step for every group in one core call unless ``found_inf`` is
    non-zero; returns whether it advanced), ``advancer(groups)`` (a no-argument callable doing the same
    with no ``found_inf``), ``lrs()`` (host mirror, floats). The host binding also offers ``foreign(groups)``
    (which group's LR something else wrote, if any).
    """

    def __init__(self, engine: Engine, tensor_groups: Sequence[bool], dtype: torch.dtype) -> None:
        self.engine = engine
        self._core: Any = getattr(engine, "_core")  # the compiled engine: the hot path calls it directly
        self._count = len(tensor_groups)
        self._float_idx = [g for g, t in enumerate(tensor_groups) if not t]
        self._mode = "dicts" if len(self._float_idx) == self._count else (
            "tensors" if not self._float_idx else "mixed")
        self.buffer: torch.Tensor | None = None
        self.views: list[torch.Tensor | None] = [None] * self._count
        self._signals: torch.Tensor | None = None
        if self._mode != "dicts":
            # One buffer for all groups; each tensor-LR group gets its own 0-d view of it.
            self.buffer = torch.zeros(self._count, dtype=dtype)
            self._ptr, self._code = buffer_pointer(self.buffer, self._count, name="LR buffer")
            self.views = [self.buffer[g] if t else None for g, t in enumerate(tensor_groups)]
            self._held = self.buffer.numpy()  # the same memory, for foreign()
            self._tensor_idx = np.flatnonzero(np.asarray(tensor_groups, dtype=bool))

    def install(self, groups: list[dict[str, Any]]) -> None:
        if self._mode == "dicts":
            self._core.write_dicts(groups, "lr")
            return
        self._core.write(self._ptr, self._code, self._count)
        lrs = self._core.lrs()
        for g, view in enumerate(self.views):
            groups[g]["lr"] = view if view is not None else lrs[g]

    def attach_signals(self, factors: torch.Tensor | None) -> None:
        """SIGNAL leaves read ``factors`` (float64 [G, S], CPU, kept alive here) from now on; None: all 1."""
        if factors is None:
            self._core.set_signals(0, 0)
            self._signals = None
            return
        if (factors.device.type != "cpu" or factors.dtype != torch.float64 or factors.dim() != 2
                or factors.shape[0] != self._count or not factors.is_contiguous()):
            raise ValueError(f"factors must be a contiguous float64 [{self._count}, S] CPU tensor")
        self._core.set_signals(int(factors.data_ptr()), int(factors.shape[1]))
        self._signals = factors

    def rewrite(self, groups: list[dict[str, Any]]) -> None:
        """The current step's LRs again (a signal moved a factor)."""
        self.install(groups)

    def sync_signals(self) -> None:
        """Nothing to copy: the host engine reads the factor table where it lies."""

    def advance(self, groups: list[dict[str, Any]], found_inf: Any = None) -> bool:
        """One step unless ``found_inf`` (GradScaler's flag) is non-zero. A CPU float32 flag is read by the
        core where it lies (no tensor op, no sync); any other flag is converted on the host."""
        ptr = 0
        if found_inf is not None:
            if (isinstance(found_inf, torch.Tensor) and found_inf.device.type == "cpu"
                    and found_inf.dtype == torch.float32 and found_inf.numel() == 1):
                ptr = int(found_inf.data_ptr())
            elif bool(found_inf):
                return False
        if self._mode == "dicts":
            return bool(self._core.advance_dicts(groups, "lr", False, ptr))
        taken = bool(self._core.advance(self._ptr, self._code, self._count, False, ptr))
        if taken and self._mode == "mixed":
            lrs = self._core.lrs()
            for g in self._float_idx:
                groups[g]["lr"] = lrs[g]
        return taken

    def advancer(self, groups: list[dict[str, Any]]) -> Callable[[], None]:
        """A no-argument callable that advances every group in one core call (the wrapper's hot path: it
        is bound once per group list, so a step pays one call and no argument checks)."""
        if self._mode == "dicts":
            return partial(self._core.advance_dicts, groups, "lr")
        if self._mode == "tensors":
            return partial(self._core.advance, self._ptr, self._code, self._count)
        core, ptr, code, count, float_idx = self._core, self._ptr, self._code, self._count, self._float_idx

        def mixed() -> None:
            core.advance(ptr, code, count)
            lrs = core.lrs()
            for g in float_idx:
                groups[g]["lr"] = lrs[g]
        return mixed

    def lrs(self) -> list[float]:
        return self._core.lrs()

    def foreign(self, groups: list[dict[str, Any]]) -> int | None:
        """The first group whose ``'lr'`` is not what this binding last stored there (another float, another
        object than its LR tensor, or its LR tensor holding another value), else None. One pass at C speed
        in the common modes (all floats, all tensors); a Python loop for a mixed optimizer."""
        try:
            held = list(map(_LR_OF, groups))
        except KeyError:
            held = [g.get("lr") for g in groups]
        if self._mode == "dicts":
            if len(held) >= 64:  # numpy's fixed cost pays off from here on
                try:  # value equality with the mirror: the float the core stored, or an equal number
                    if np.array_equal(np.fromiter(held, np.float64, len(held)), self._core.mirror()):
                        return None
                except (TypeError, ValueError):
                    pass
            lrs = self._core.lrs()
            if held == lrs:
                return None
            return next((g for g, (h, v) in enumerate(zip(held, lrs)) if type(h) is not float or h != v), None)
        views = self.views
        if self._mode == "tensors":
            if not all(map(operator.is_, held, views)):
                return next(g for g, (h, v) in enumerate(zip(held, views)) if h is not v)
        else:
            lrs = self._core.lrs()
            for g, (h, v) in enumerate(zip(held, views)):
                if (h is not v) if v is not None else (type(h) is not float or h != lrs[g]):
                    return g
        # in place: a fill_ the binding did not make (the core rounds the mirror to the buffer's dtype)
        idx = self._tensor_idx
        stored = self._core.mirror()[idx].astype(self._held.dtype)
        wrong = np.flatnonzero(self._held[idx] != stored)
        return int(idx[wrong[0]]) if wrong.size else None
