"""The CUDA path of the drop-in schedulers: LR tensors on one CUDA device written by a
:class:`torchsched._cuda.CudaEngine`, one kernel launch per step and no host sync."""

from __future__ import annotations

import math
import operator
import warnings
import weakref
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import _core
from .._cuda import REBUILD_HINT, CudaEngine
from .._program import OP_DTYPE, Code
from ._spec import _BUFFER_DTYPES, _NP_DTYPES, _PREV, _SCALE, _compile, _host_engine, _Spec
from ._step import StepDecision, StepKind

_CUDA_FALLBACK_WARNED = False

# (program, roots, scale, locate): what the CUDA engine runs for a scheduler; locate maps its clock to a step
DeviceProgram = tuple[Any, list[int], list[float], Any]


def _cuda_lr_target(lrs: Sequence[Any]) -> tuple[torch.device, Any] | None:
    """(device, dtype) when every LR is a one-element float32/float64 tensor on one CUDA device that does not
    require grad (what the CUDA engine can own); None otherwise (floats, CPU tensors, mixed devices or
    dtypes, ...), which keeps the host engine."""
    if not lrs:
        return None
    first = lrs[0]
    if not isinstance(first, Tensor):
        return None
    device, dtype = first.device, first.dtype
    if device.type != "cuda" or dtype not in _BUFFER_DTYPES:
        return None
    for v in lrs:
        if (not isinstance(v, Tensor) or v.device != device or v.dtype != dtype or v.requires_grad
                or v.numel() != 1):
            return None
    return device, dtype


def _cuda_spec_ok(spec: _Spec) -> bool:
    """A pure core program the CUDA engine can run: no Python callables, no momentum cycling (written to
    the group dicts as floats), no ``prev * v`` combination, and no hazard configuration (those raise
    torch's errors on the host path)."""
    return (spec.fns is None and spec.mfns is None and not spec.mleaves and spec.combine != _PREV
            and spec.fast)


def _cuda_build_ok() -> bool:
    """The compiled core has its CUDA engine and sees the GPU; otherwise warn once and keep the host path."""
    global _CUDA_FALLBACK_WARNED
    if _core.built_with_cuda() and _core.cuda_available():
        return True
    if not _CUDA_FALLBACK_WARNED:
        _CUDA_FALLBACK_WARNED = True
        warnings.warn("LR tensors on a CUDA device, but torchsched's core cannot run its CUDA engine: the "
                      "schedulers take the per-group path (a host sync per group and step). " + REBUILD_HINT,
                      RuntimeWarning, stacklevel=4)
    return False


def _make_stepper(spec: _Spec, device: torch.device | None, groups: Sequence[dict[str, Any]] | None = None,
                  owner: Any = None) -> Any:
    """Builds the stepper that steps one scheduler's groups: the single place a device engine plugs in.

    ``device`` is where the optimizer's params live. The host stepper (a ``_core.Stepper``) stores Python
    float LRs (which any device's optimizer reads) and CPU LR tensors in place. With ``groups`` and
    ``owner`` (the scheduler), groups whose LRs are all tensors on one CUDA device get a
    :class:`_CudaStepper` (over a ``CudaEngine``) instead when the scheduler's arithmetic is a pure core
    program (see :func:`_cuda_spec_ok`); everything else keeps the host stepper (LR tensors on a GPU then
    take the per-group path).
    """
    if groups is not None and owner is not None:
        target = _cuda_lr_target([g["lr"] for g in groups]) if _cuda_spec_ok(spec) else None
        if target is not None and _cuda_build_ok():
            return _CudaStepper.build(owner, spec, groups, *target)
    del device  # the host engine serves every other case
    return _host_engine(spec)


_GET_LR = operator.itemgetter("lr")


def _locate_clock(ts: Any, t: Any, u: float) -> int | None:
    """The engine step for the scheduler clock ``t``: t itself when it is an integer >= 0, else None."""
    try:
        v = float(t)
    except (TypeError, ValueError):
        return None
    if 0.0 <= v < 9007199254740992.0 and v == math.floor(v):
        return int(v)
    return None


def _scheduler_program(spec: _Spec) -> DeviceProgram | None:
    """(program, roots, scale, locate) for the CUDA engine: the scheduler's own program on its own clock, or
    None (keep the host engine) when it reads a Python input or its scale is not a valid engine scale."""
    program, roots, _ = _compile(spec.leaves, ())
    if (np.frombuffer(program.op_bytes(), dtype=OP_DTYPE)["code"] == Code.TORCH_INPUT).any():
        return None
    if spec.combine == _SCALE:
        scale = [float(v) for v in spec.scale]
        if len(scale) != len(roots) or not all(math.isfinite(v) and v >= 0 for v in scale):
            return None
    else:
        scale = [1.0] * len(roots)
    return program, roots, scale, _locate_clock


def _device_lrs(groups: Sequence[dict[str, Any]]) -> list[float]:
    """The groups' LRs read from the device: one host sync (only when a CUDA engine is built or rebuilt)."""
    with torch.no_grad():
        stacked = torch.stack([g["lr"].detach().reshape(()).to(torch.float64) for g in groups])
    return [float(v) for v in stacked.cpu().tolist()]


class _CudaStepper:
    """The scheduler's groups driven by a :class:`torchsched._cuda.CudaEngine`, with the interface
    ``_Core`` uses of a ``_core.Stepper`` (``groups``, ``fresh``, ``fast_ok``, ``lrs``, ``compute``).

    Each group's ``"lr"`` is a 0-d view into the engine's LR buffer; a step on the scheduler's clock is one
    ``engine.advance()`` launch (no sync); ``lrs()`` is the engine's float64 host mirror. ``fast_ok`` stays
    False, so the C-level ``step()`` hands every step to ``_Core._python_step``. The device reads the previous LR
    of chainable rules from its own float64 mirror (``read_prev=False``), so device and host mirror repeat
    the same arithmetic: an in-place edit of an LR tensor (``fill_``) is not seen.

    ``host`` is the host engine on the scheduler's own program, for ``compute`` (``get_lr()``) and for the
    clocks the device program cannot represent (a fractional epoch), which are computed on the host and
    loaded into the engine (:meth:`CudaEngine.load_lrs`: an asynchronous copy, no sync).
    """

    __slots__ = ("engine", "host", "views", "groups", "fresh", "fast_ok", "aligned", "chainable", "locate",
                 "__weakref__")

    _live: weakref.WeakValueDictionary[int, _CudaStepper] = weakref.WeakValueDictionary()

    def __init__(self, program: Any, roots: Sequence[int], scale: Sequence[float], locate: Any, device: torch.device,
                 dtype: Any, lrs: Sequence[float], host: Any) -> None:
        self.engine = CudaEngine.from_program(program, roots, scale, device=device, step=0, dtype=dtype,
                                              read_prev=False, initial_lrs=lrs)
        self.chainable = self.engine.chainable
        self.views = tuple(self.engine.lr_tensors())
        self.host = host
        self.groups = len(self.views)
        self.fresh = False
        self.fast_ok = False
        self.locate = locate
        # The constructor wrote f(0) from the given LRs; the LRs themselves are the state until the first step.
        self._load(0, lrs)
        self.aligned = False  # the engine's step is the scheduler clock of the LRs it holds
        _CudaStepper._live[id(self.views[0])] = self

    @classmethod
    def build(cls, owner: Any, spec: _Spec, groups: Sequence[dict[str, Any]], device: torch.device,
              dtype: Any) -> Any:
        made = owner._device_program(spec, groups)
        if made is None:
            return _host_engine(spec)
        program, roots, scale, locate = made
        previous = owner._stepper
        if isinstance(previous, _CudaStepper) and previous.holds(groups):
            lrs = previous.lrs()  # our own views: the float64 mirror, no sync
        else:
            lrs = _device_lrs(groups)
            if isinstance(previous, _CudaStepper) and previous.groups == len(lrs):
                # Tensors put back with the values we wrote (optimizer.load_state_dict): keep the float64 ones.
                mine = previous.lrs()
                rounded = np.asarray(mine, dtype=np.float64).astype(_NP_DTYPES[dtype]).astype(np.float64)
                lrs = [m if r == v else v for m, r, v in zip(mine, rounded.tolist(), lrs)]
        stepper = cls(program, roots, scale, locate, device, dtype, lrs, _host_engine(spec))
        stepper.install(groups)
        return stepper

    @staticmethod
    def holding(groups: Sequence[dict[str, Any]]) -> _CudaStepper | None:
        """The live stepper whose views every group holds, if any."""
        if not groups:
            return None
        lr0 = groups[0].get("lr")
        st = _CudaStepper._live.get(id(lr0))
        if st is not None and st.views[0] is lr0 and st.holds(groups):
            return st
        return None

    # ---- groups
    def holds(self, groups: Sequence[dict[str, Any]]) -> bool:
        views = self.views
        return len(groups) == len(views) and all(map(operator.is_, map(_GET_LR, groups), views))

    def install(self, groups: Sequence[dict[str, Any]]) -> None:
        for group, view in zip(groups, self.views, strict=True):
            group["lr"] = view

    def adopt(self, other: _CudaStepper) -> None:
        """Takes the LRs another stepper wrote (a compounding scheduler on the same optimizer) as ours:
        device to device copies and the other's host mirror; no sync."""
        self.engine.copy_lrs_from(other.engine)
        self.aligned = False

    # ---- steps
    def _load(self, step: int, values: Sequence[float]) -> None:
        if torch.cuda.is_current_stream_capturing():
            raise RuntimeError("this scheduler step copies LRs from the host, which cannot be captured in a CUDA "
                               "graph; capture torchsched.wrap() steps instead")
        self.engine.load_lrs(step, values)

    def step_to(self, t: Any, u: float = math.nan) -> None:
        """The LRs of clock ``t``: one advance launch for the next step, a step set and a write for a jump,
        a host computation copied over for a clock the engine cannot hold. No sync in any case."""
        target = self.locate(self, t, u)
        eng = self.engine
        if target is None:
            self._load(0, self.host.compute(t, self.lrs(), u))
            self.aligned = False
        elif self.aligned and target == eng.step + 1:
            eng.advance()
        else:
            eng.step = target
            self.aligned = True
        self.fresh = True

    def hold(self, t: Any, values: Sequence[float], u: float = math.nan) -> None:
        """``values`` (computed on the host: a closed form, or the LRs kept) are the LRs of clock ``t``."""
        target = self.locate(self, t, u)
        self._load(0 if target is None else target, values)
        self.aligned = target is not None
        self.fresh = True

    # ---- the Stepper interface _Core reads
    def lrs(self) -> list[float]:
        eng = self.engine
        if eng.stale:  # a captured advance replayed out of Python's sight: one explicit copy
            eng.resync()
        return eng.lrs()

    def compute(self, t: Any, prevs: Any = None, u: float = math.nan) -> list[float]:
        return list(self.host.compute(t, prevs, u))

    def compute_momentum(self, t: Any, u: float = math.nan) -> list[float]:
        return list(self.host.compute_momentum(t, u))

    def watched_same(self, groups: Sequence[dict[str, Any]]) -> bool:
        return bool(self.host.watched_same(groups))


def _reclaim_groups(scheduler: Any, ts: _CudaStepper, groups: list[dict[str, Any]],
                    need_prev: bool) -> _CudaStepper | None:
    """Makes the groups hold ``ts``'s views again when they hold something else: another torchsched
    scheduler's views (compounding schedulers: its LRs are adopted with device copies), or tensors put
    there by hand (taken over where the step does not read the previous LR). Otherwise recompiles, which
    reads the LRs from the device once; None when the new engine is the host one."""
    if len(groups) == ts.groups:
        other = _CudaStepper.holding(groups)
        if other is not None and other.engine.device == ts.engine.device:
            if need_prev:
                ts.adopt(other)
            ts.install(groups)
            return ts
        if not need_prev and _cuda_lr_target([g["lr"] for g in groups]) is not None:
            ts.install(groups)
            return ts
    scheduler._recompile()
    ts = scheduler._stepper
    return ts if type(ts) is _CudaStepper else None


def _write_on_device(scheduler: Any, ts: _CudaStepper, decision: StepDecision) -> bool:
    """A step's LRs on the CUDA engine: one advance launch for the next step, no sync. False (with nothing
    written) when the groups no longer suit it and the recompiled engine is the host one."""
    groups = scheduler.optimizer.param_groups
    kind = decision.kind
    if not ts.holds(groups):
        need_prev = kind is StepKind.KEEP or (kind is not StepKind.CLOSED_FORM and ts.chainable)
        claimed = _reclaim_groups(scheduler, ts, groups, need_prev)
        if claimed is None:
            return False
        ts = claimed
    if kind is StepKind.CLOSED_FORM:
        ts.hold(decision.t, decision.values)  # type: ignore[arg-type]
    elif kind is StepKind.KEEP:
        ts.hold(decision.t, ts.lrs())
    else:
        ts.step_to(decision.t, decision.u)
    return True
