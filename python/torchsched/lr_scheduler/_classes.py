"""Drop-in twins of every ``torch.optim.lr_scheduler`` class, plus ``torch.optim.swa_utils.SWALR``.

Replace ``from torch.optim import lr_scheduler`` with ``from torchsched import lr_scheduler`` and nothing
else changes: the same constructor signatures and defaults, argument checks and errors (construction is
torch's own), the same LR sequences in torch's order of floating-point operations, the same warnings,
attributes and ``state_dict`` contents, the same compounding when two schedulers step one optimizer, the
same respect for an LR edited by hand between steps. Every class subclasses its torch counterpart (and
so ``torch.optim.lr_scheduler.LRScheduler``): ``isinstance`` checks in Lightning, Transformers and
Accelerate pass.

What changes is where the work runs. Each scheduler compiles its rule into a core program once; then
``scheduler.step()`` is one call into the compiled core that advances torch's counters and evaluates and
stores every param group's LR (and momentum, for ``CyclicLR``/``OneCycleLR``), whatever the number of
groups. The per-step terms shared by all groups are computed once per step. Exceptions, said again in
each class: Python callables (``LambdaLR``/``MultiplicativeLR`` lambdas, a custom ``CyclicLR``
``scale_fn``) run in Python, called from the core in torch's order; a :mod:`torchsched.schedules` spec
passed as the lambda runs in the core.

LR storage:

* Python float LRs are updated in the param-group dicts by the core.
* Tensor LRs (``lr=torch.tensor(...)``, CPU): the scheduler owns them. At construction each group's
  ``"lr"`` becomes a 0-d view into one float32/float64 buffer (same dtype and value; groups already
  holding consecutive views of one buffer, e.g. from another torchsched scheduler, keep theirs), and the
  core writes them all in place. ``initial_lr``, ``base_lrs`` and ``get_last_lr()`` hold copies, never
  aliases. Replacing ``group["lr"]`` (for instance ``optimizer.load_state_dict``) is noticed at the next
  step, which binds the new values the same way.
* Tensor LRs on one CUDA device (float32 or float64, one element, no grad), for a rule that is a pure
  core program: at construction each group's ``"lr"`` becomes its own 0-d tensor on that device (same
  dtype), a view into the LR buffer of one :class:`torchsched._cuda.CudaEngine` built from the same
  program, and every ``step()`` is one kernel launch on the current stream that writes all of them, with
  no host sync (``torch.cuda.set_sync_debug_mode("error")`` stays quiet). ``get_last_lr()`` and
  ``state_dict()["_last_lr"]`` are Python floats from the engine's float64 host mirror (torch would
  return clones of the CUDA tensors, which cost a sync to read), equal to what the float path reports.
  ``step(epoch)`` computes torch's closed form on the host and hands it to the device with one
  asynchronous copy from pinned memory (no sync); so does a ``SequentialLR`` switching scheduler.
  Chainable rules read the previous LR from the device's own float64 mirror, not from the tensor: an
  in-place edit of a CUDA LR tensor (``fill_``) is not seen, unlike the CPU path. A ``group["lr"]``
  replaced by another tensor (``optimizer.load_state_dict``) is noticed at the next step: the engine is
  rebuilt from the tensors' values, read from the device once (a sync; values we wrote keep their float64
  mirror). Building the engine (construction, a reassigned parameter, ``load_state_dict``) also reads
  device tensors (``base_lrs`` are CUDA tensors in torch) and copies tables to the device: syncs, once.
  ``CosineAnnealingWarmRestarts`` compiles its restarts into the device program (T_mult == 1: 32 periods,
  then the step goes back to the first one: two launches, once every 32 periods); a fractional epoch is
  computed on the host and copied over. The classes are not meant to be captured in a CUDA graph (their
  bookkeeping runs in Python): capture :func:`torchsched.wrap` steps instead. The optimizer is not
  checked: use ``fused=True`` (or ``capturable=True``) optimizers, which read device LRs without
  ``.item()`` (see :func:`torchsched._cuda.check_optimizer_for_device_lrs`).
  Kept on the per-group path below: Python callables (``LambdaLR``/``MultiplicativeLR`` lambdas, a
  custom ``CyclicLR`` ``scale_fn``), momentum cycling (``CyclicLR``/``OneCycleLR`` with
  ``cycle_momentum=True``: momenta are Python floats in the group dicts), ``MultiplicativeLR``,
  configurations on which torch raises, and ``ReduceLROnPlateau`` (its ``float(metrics)`` syncs anyway).
  A core built without CUDA warns once and keeps that path too.
* A CPU LR tensor in a group whose params are on a CUDA device raises ValueError (at construction, or at
  the step after it is put in): torch's fused CUDA kernels read it on the host, so a captured graph would
  freeze its value. Use a tensor on the params' device, or a float.
* Anything else (LR tensors on a GPU in the cases above, mixed floats and tensors, tensors that require
  grad) takes the per-group path, as torch does: correct, O(groups) in Python. ``_make_engine`` is where
  a device engine plugs in.

Numbers: float LRs and float64 LR tensors reproduce torch bit for bit (the arithmetic is float64 in
torch's order). float32 LR tensors agree to float32 precision: torch multiplies in float32 tensor
arithmetic, the core in float64 and rounds once per step.

Group keys that torch reads at every step (``OneCycleLR``'s ``initial_lr``/``max_lr``/``min_lr`` and
``max_momentum``/``base_momentum``, ``SWALR``'s ``swa_lr``) are compiled into the program and compared at
every step in which the group dict changed: an edit recompiles before the next step, as torch would see it.

Limits: parameters are read from the scheduler when it is built, and again whenever one of them is
reassigned (``scheduler.gamma = 0.5``) or a state dict is loaded; an in-place edit of a list attribute
(``scheduler.base_lrs[0] = ...``) is picked up after reassigning the attribute or calling
``load_state_dict(state_dict())``: a list has no version to check cheaply, and its tensor items (the
``base_lrs`` of tensor LRs) can change in place.
"""

from __future__ import annotations

import functools
import math
import operator
import warnings
import weakref
from bisect import bisect_right
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.optim import lr_scheduler as _tl
from torch.optim import swa_utils as _tswa

from .. import _core
from .._cuda import refuse_cpu_lr_for_cuda_params
from .._program import Builder
from ..schedules import Schedule

__all__ = [
    "LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
    "ExponentialLR", "SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler",
    "ReduceLROnPlateau", "CyclicLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "SWALR",
]

EPOCH_DEPRECATION_WARNING = _tl.EPOCH_DEPRECATION_WARNING

_OVERRIDDEN_STEP_WARNING = (
    "Seems like `optimizer.step()` has been overridden after learning rate scheduler "
    "initialization. Please, make sure to call `optimizer.step()` before "
    "`lr_scheduler.step()`. See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)
_CALL_ORDER_WARNING = (
    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
    "In PyTorch 1.1.0 and later, you should call them in the opposite order: "
    "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this "
    "will result in PyTorch skipping the first value of the learning rate schedule. "
    "See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)
_GET_LR_WARNING = "To get the last learning rate computed by the scheduler, please use `get_last_lr()`."

# Op codes of the torch rules (cpp/include/torchsched/formulas.hpp, enum OpCode).
_PIECEWISE_CONST = 2
_T_STEP, _T_MULTISTEP, _T_CONSTANT, _T_LINEAR, _T_EXPONENTIAL, _T_POLYNOMIAL, _T_COSINE, _T_SWA = range(20, 28)
(_T_INPUT, _T_STEP_CLOSED, _T_CONSTANT_CLOSED, _T_LINEAR_CLOSED, _T_EXPONENTIAL_CLOSED, _T_POLYNOMIAL_CLOSED,
 _T_COSINE_CLOSED, _T_CYCLIC, _T_ONE_CYCLE) = range(28, 37)
_SEQUENCE = 42

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
        # group keys compiled in, which torch reads every step: an edit recompiles (see _Core._ts_edited)
        self.watch = watch
        self.watched = [float(g[k]) for g in groups for k in watch]


def _leaf(code: int, *params: Any, table: Sequence[float] = (), count: int | None = None) -> tuple[Any, ...]:
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


def _make_engine(spec: _Spec, device: torch.device | None, groups: Sequence[dict[str, Any]] | None = None,
                 owner: Any = None) -> Any:
    """Builds the engine that steps one scheduler's groups: the single place a device engine plugs in.

    ``device`` is where the optimizer's params live. The host engine (a ``_core.Stepper``) stores Python
    float LRs (which any device's optimizer reads) and CPU LR tensors in place. With ``groups`` and
    ``owner`` (the scheduler), groups whose LRs are all tensors on one CUDA device get a
    :class:`_CudaStepper` instead when the scheduler's arithmetic is a pure core program (see
    :func:`_cuda_spec_ok`); everything else keeps the host engine (LR tensors on a GPU then take the
    per-group path).
    """
    if groups is not None and owner is not None:
        target = _cuda_lr_target([g["lr"] for g in groups]) if _cuda_spec_ok(spec) else None
        if target is not None and _cuda_build_ok():
            return _CudaStepper.build(owner, spec, groups, *target)
    del device  # the host engine serves every other case
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


def _params_device(optimizer: Any) -> torch.device | None:
    for group in optimizer.param_groups:
        for p in group.get("params", ()):
            if isinstance(p, Tensor):
                return p.device
    return None


def _refuse_cpu_lrs_for_cuda_params(groups: Sequence[dict[str, Any]]) -> None:
    """Construction and rebinding: a CPU LR tensor with CUDA params is refused, as by wrap()."""
    for i, group in enumerate(groups):
        lr = group.get("lr")
        if isinstance(lr, Tensor) and lr.device.type == "cpu":  # only then look at the params
            device = next((p.device for p in group.get("params", ()) if isinstance(p, Tensor)), None)
            refuse_cpu_lr_for_cuda_params(i, lr, device, f"Use a tensor on {device} (which torchsched then writes "
                                          "on the device) or a Python float")


def _group_lrs(groups: Sequence[dict[str, Any]]) -> list[Any]:
    """torch's _param_groups_val_list for "lr": clones of tensors, never aliases."""
    return [g["lr"].clone() if isinstance(g["lr"], Tensor) else g["lr"] for g in groups]


def _tensor_binding(groups: Sequence[dict[str, Any]], lrs: list[Tensor]) -> tuple[tuple[Tensor, ...], int, int, Any] | None:
    """(views, address, dtype code, dtype) of one buffer holding every group's LR, binding the groups to
    fresh views when they do not hold consecutive views of one buffer yet; None when the LRs cannot
    live in a CPU buffer (another device, a non-float dtype, mixed dtypes, requires_grad, not 1 element)."""
    first = lrs[0]
    dtype = first.dtype
    code = _BUFFER_DTYPES.get(dtype)
    if code is None or first.device.type != "cpu":
        return None
    for v in lrs:
        if v.dtype != dtype or v.device != first.device or v.requires_grad or v.numel() != 1:
            return None
    size = first.element_size()
    base = first.data_ptr()
    storage = first.untyped_storage().data_ptr()
    if all(v.dim() == 0 and v.data_ptr() == base + g * size and v.untyped_storage().data_ptr() == storage
           for g, v in enumerate(lrs)):
        return tuple(lrs), base, code, dtype
    buf = torch.empty(len(lrs), dtype=dtype)
    with torch.no_grad():
        for g, v in enumerate(lrs):
            buf[g] = v.detach().reshape(())
    views = tuple(buf.unbind(0))
    for group, view in zip(groups, views):
        group["lr"] = view
    return views, buf.data_ptr(), code, dtype


def _store(groups: Sequence[dict[str, Any]], values: Sequence[float]) -> None:
    """torch's _update_param_group_val for every group: fill_ a tensor LR in place, else assign."""
    for group, value in zip(groups, values, strict=True):
        current = group["lr"]
        if isinstance(current, Tensor):
            current.fill_(value)
        else:
            group["lr"] = value


def _store_momentum(groups: Sequence[dict[str, Any]], values: Sequence[float], use_beta1: bool) -> None:
    for group, value in zip(groups, values, strict=True):
        if use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value


def _first_tensor(*values: Any) -> Any:
    """The first tensor among ``values`` (the type torch's arithmetic on them gives), else 0.0."""
    return next((v for v in values if isinstance(v, Tensor)), 0.0)


def _like(reference: Any, value: float) -> Any:
    """value with torch's type for a group whose LR (or base LR) is ``reference``."""
    if isinstance(reference, Tensor):
        return torch.full((), value, dtype=reference.dtype, device=reference.device)
    return value


# ---- the CUDA path -----------------------------------------------------------------------------------

_CUDA_FALLBACK_WARNED = False


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
        from .._cuda import REBUILD_HINT
        warnings.warn("LR tensors on a CUDA device, but torchsched's core cannot run its CUDA engine: the "
                      "schedulers take the per-group path (a host sync per group and step). " + REBUILD_HINT,
                      RuntimeWarning, stacklevel=4)
    return False


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
    copied to the device asynchronously from pinned memory (no sync).
    """

    __slots__ = ("engine", "host", "views", "groups", "fresh", "fast_ok", "aligned", "chainable", "locate",
                 "__weakref__")

    _live: weakref.WeakValueDictionary[int, _CudaStepper] = weakref.WeakValueDictionary()

    def __init__(self, program: Any, roots: Sequence[int], scale: Sequence[float], locate: Any, device: torch.device,
                 dtype: Any, lrs: Sequence[float], host: Any) -> None:
        from .._cuda import _CHAINABLE_CODES, CudaEngine
        from .._program import OP_DTYPE

        codes = np.frombuffer(program.op_bytes(), dtype=OP_DTYPE)["code"]
        self.chainable = bool(np.isin(codes, list(_CHAINABLE_CODES)).any())
        self.engine = CudaEngine.from_program(program, roots, scale, device=device, step=0, dtype=dtype,
                                              read_prev=False, initial_lrs=lrs)
        self.views = tuple(self.engine.lr_tensors())
        self.host = host
        self.groups = len(self.views)
        self.fresh = False
        self.fast_ok = False
        self.locate = locate
        # The constructor wrote f(0) from the given LRs; the LRs themselves are the state until the first step.
        self._put(0, lrs)
        self.aligned = False  # the engine's step is the scheduler clock of the LRs it holds
        _CudaStepper._live[id(self.views[0])] = self

    @classmethod
    def build(cls, owner: Any, spec: _Spec, groups: Sequence[dict[str, Any]], device: torch.device,
              dtype: Any) -> Any:
        made = owner._ts_cuda_program(spec, groups)
        if made is None:
            return _make_engine(spec, device)
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
        stepper = cls(program, roots, scale, locate, device, dtype, lrs, _make_engine(spec, device))
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
        eng, src = self.engine, other.engine
        with torch.cuda.device(eng.device):
            eng.device_mirror.copy_(src.device_mirror)
            eng.lr_buffer.copy_(src.lr_buffer)
        lrs = np.asarray(other.lrs(), dtype=np.float64)
        host = eng._host
        host.load(host.step, lrs, lrs.astype(host.shadow.dtype))
        self.aligned = False

    # ---- steps
    def _put(self, step: int, values: Sequence[float]) -> None:
        """Makes (step, values) the engine's state on the host and, with one asynchronous copy from pinned
        memory on the current stream, on the device (no sync)."""
        eng = self.engine
        if torch.cuda.is_current_stream_capturing():
            raise RuntimeError("this scheduler step copies LRs from the host, which cannot be captured in a CUDA "
                               "graph; capture torchsched.wrap() steps instead")
        vals = np.asarray(values, dtype=np.float64)
        raw = eng._layout.pack(int(step), vals, vals)
        staging = torch.empty(raw.size, dtype=torch.uint8, pin_memory=True)
        staging.numpy()[:] = raw
        with torch.cuda.device(eng.device):
            eng._state.copy_(staging, non_blocking=True)
        host = eng._host
        host.load(int(step), vals, vals.astype(host.shadow.dtype))

    def step_to(self, t: Any, u: float = math.nan) -> None:
        """The LRs of clock ``t``: one advance launch for the next step, a step set and a write for a jump,
        a host computation copied over for a clock the engine cannot hold. No sync in any case."""
        target = self.locate(self, t, u)
        eng = self.engine
        if target is None:
            self._put(0, self.host.compute(t, self.lrs(), u))
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
        self._put(0 if target is None else target, values)
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


class _Live:
    """A scheduler parameter kept in the instance ``__dict__`` (so ``state_dict`` is torch's) whose
    reassignment makes the scheduler recompile before its next step."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(f"{type(obj).__name__!r} object has no attribute {self.name!r}") from None

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value
        obj._ts_invalidate()

    def __delete__(self, obj: Any) -> None:
        try:
            del obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None
        obj._ts_invalidate()


# ---- base classes ------------------------------------------------------------------------------------

class LRScheduler(_tl.LRScheduler):
    """Base class of the schedulers here, and of custom ones: torch's ``LRScheduler`` unchanged.

    A subclass implements :meth:`get_lr`, which runs in Python, exactly as with torch. The concrete
    classes of this module run their rules in the compiled core instead.
    """


class _LastLR(LRScheduler):
    """``_last_lr`` kept out of ``__dict__`` so the core can leave it unbuilt until someone reads it
    (``get_last_lr()``, ``state_dict()``): building G tensor copies every step would cost more than the
    step. ``state_dict`` carries it exactly as torch's does."""

    __slots__ = ("_stepper", "_ts_last", "_ts_src")
    _stepper: Any                    # the engine (a _core.Stepper) or None
    _ts_last: list[Any] | None  # _last_lr once built
    _ts_src: Any                # a scheduler whose get_last_lr() is ours once read
    _ts_src_copy = False  # copy the source scheduler's list (ChainedScheduler) or share it (SequentialLR)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        self._stepper = None
        self._ts_last = None
        self._ts_src = None
        return self

    @property
    def _last_lr(self) -> list[Any]:
        src = self._ts_src
        if src is not None:
            self._ts_src = None
            last = src.get_last_lr()
            self._ts_last = list(last) if self._ts_src_copy else last
        else:
            ts = self._stepper
            if ts is not None and ts.fresh:
                ts.fresh = False
                self._ts_last = self._ts_materialize()
        last = self._ts_last
        if last is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute '_last_lr'")
        return last

    @_last_lr.setter
    def _last_lr(self, value: list[Any]) -> None:
        self._ts_last = value
        self._ts_src = None
        if self._stepper is not None:
            self._stepper.fresh = False

    @_last_lr.deleter
    def _last_lr(self) -> None:
        self._last_lr = None  # type: ignore[assignment]

    def _ts_materialize(self) -> list[Any]:  # pragma: no cover - overridden where a core writes
        return []

    def _ts_invalidate(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        try:
            state["_last_lr"] = self._last_lr
        except AttributeError:
            pass
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        has_last = "_last_lr" in state
        last = state.pop("_last_lr", None)
        super().load_state_dict(state)
        if has_last:
            self._last_lr = last
        self._ts_invalidate()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        try:
            state["_last_lr"] = self._last_lr
        except AttributeError:
            pass
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        last = state.pop("_last_lr", None)
        self.__dict__.update(state)
        self._ts_last = last
        self._ts_invalidate()


class _Core(_LastLR):
    """The machinery shared by the classes whose rule runs in the core."""

    __slots__ = ("_ts_stale", "_ts_closed", "_ts_dtype", "_ts_core", "_ts_fast")
    _ts_stale: bool   # recompile before the next step
    _ts_closed: Any   # the closed-form engine, built on first use
    _ts_dtype: Any    # the LR buffer's dtype, None for Python floats
    _ts_core: bool    # get_lr is ours (a subclass overriding it runs torch's Python path)
    _ts_fast: bool    # the C-level step may run this configuration
    cycle_momentum: bool  # CyclicLR / OneCycleLR (torch's attributes)
    use_beta1: bool

    _ts_live: tuple[str, ...] = ("base_lrs",)
    _ts_has_closed = False       # torch's class has _get_closed_form_lr
    _ts_momentum = False         # the rule also cycles momentum / beta1
    _ts_watches = False          # the program compiles group keys (other than lr) that torch reads every step

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls._ts_live:
            if not isinstance(cls.__dict__.get(name), _Live):
                setattr(cls, name, _Live(name))

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls, *args, **kwargs)
        self._ts_stale = True
        self._ts_closed = None
        self._ts_dtype = None
        self._ts_core = True
        self._ts_fast = False
        return self

    # ---- the per-class parts
    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:  # pragma: no cover - abstract
        raise NotImplementedError

    def _ts_build_closed(self, groups: list[dict[str, Any]]) -> _Spec:  # pragma: no cover - abstract
        raise NotImplementedError

    def _ts_keep_initial(self, t: Any) -> bool:
        """True where torch's get_lr leaves the LR unchanged in the constructor's initial step."""
        return False

    def _ts_check(self, t: Any) -> None:
        """Raises what torch's get_lr would raise at this step (configurations the core cannot mirror)."""

    def _ts_check_closed(self, t: Any) -> None:
        groups = self.optimizer.param_groups
        if len(self.base_lrs) != len(groups):
            list(zip(groups, self.base_lrs, strict=True))  # torch's _update_lr raises this ValueError

    def _ts_closed_now(self) -> bool:
        return False

    # ---- compile and bind
    def _ts_invalidate(self) -> None:
        self._ts_stale = True
        self._ts_closed = None
        ts = self._stepper
        if ts is not None:
            ts.fast_ok = False

    def _ts_settle(self) -> None:
        """Builds a pending _last_lr from the engine before the engine or its binding is replaced."""
        ts = self._stepper
        if ts is not None and ts.fresh:
            ts.fresh = False
            self._ts_last = self._ts_materialize()

    def _ts_prepare(self) -> None:
        _refuse_cpu_lrs_for_cuda_params(self.optimizer.param_groups)
        self._ts_settle()
        self._ts_core = bool(getattr(type(self).get_lr, "_ts_core", False))
        self._ts_stale = False
        self._ts_closed = None
        if not self._ts_core:
            self._stepper = None
            self._ts_fast = False
            return
        groups = self.optimizer.param_groups
        spec = self._ts_build(groups)
        ts = _make_engine(spec, _params_device(self.optimizer), groups, self)
        self._stepper = ts
        self._ts_fast = spec.fast
        if type(ts) is _CudaStepper:
            self._ts_dtype = None
            if self._ts_has_closed:  # built now: base_lrs are device tensors, read once here
                self._ts_closed = _make_engine(self._ts_build_closed(groups), None)
            return
        self._ts_bind(groups)

    def _ts_bind(self, groups: list[dict[str, Any]]) -> None:
        self._ts_settle()
        ts = self._stepper
        lrs = [g["lr"] for g in groups]
        self._ts_dtype = None
        if all(type(v) is float or type(v) is int or isinstance(v, float) for v in lrs):
            ts.bind_floats()
        elif lrs and all(isinstance(v, Tensor) for v in lrs):
            binding = _tensor_binding(groups, lrs)
            if binding is None:
                ts.unbind()
            else:
                views, ptr, code, dtype = binding
                ts.bind_buffer(views, ptr, code)
                self._ts_dtype = dtype
        else:
            ts.unbind()

    def _ts_materialize(self) -> list[Any]:
        values = self._stepper.lrs()
        if self._ts_dtype is None:
            return values
        return list(torch.tensor(values, dtype=self._ts_dtype).unbind(0))

    def _ts_edited(self, groups: list[dict[str, Any]]) -> bool:
        """A group key the program was compiled from was edited since: recompile, as torch reads it each step."""
        return self._ts_watches and not self._stepper.watched_same(groups)

    def _ts_outdated(self, groups: list[dict[str, Any]]) -> bool:
        """The program no longer describes the groups: their number changed, or a compiled-in key did."""
        return len(groups) != self._stepper.groups or self._ts_edited(groups)

    def _ts_try(self, groups: list[dict[str, Any]], t: Any, u: float = math.nan) -> bool:
        """One in-place core call for every group; False when the groups need the per-group path."""
        if self._stepper.try_step(groups, t, u):
            return True
        if self._ts_outdated(groups):
            self._ts_prepare()
        else:
            _refuse_cpu_lrs_for_cuda_params(groups)  # an LR tensor may have been put in
            self._ts_bind(groups)
        return bool(self._stepper.try_step(groups, t, u))

    def _ts_clock(self) -> Any:
        return self.last_epoch

    # ---- torch's step() and _update_lr(), the slow path of the C-level step
    def _initial_step(self) -> None:
        """Initialize step counts and perform the initial step (torch's, with the core)."""
        self._step_count = 0
        self._ts_stale = True
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False
        self._get_lr_called_within_step = False

    def _python_step(self, epoch: Any = None) -> None:
        if self._step_count == 1:
            if not hasattr(self.optimizer.step, "_wrapped_by_lr_sched"):
                warnings.warn(_OVERRIDDEN_STEP_WARNING, UserWarning, stacklevel=2)
            elif not getattr(self.optimizer, "_opt_called", False):
                warnings.warn(_CALL_ORDER_WARNING, UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: Any = None) -> None:
        if self._ts_stale:
            self._ts_prepare()
        if not self._ts_core:  # a subclass overrides get_lr: torch's Python path
            _tl.LRScheduler._update_lr(self, epoch)
            return
        if type(self._stepper) is _CudaStepper and self._ts_cuda_update(self._stepper, epoch):
            return
        if epoch is None:
            self.last_epoch += 1
            closed = False
        else:
            self.last_epoch = epoch
            closed = self._ts_has_closed
        groups = self.optimizer.param_groups
        values: list[float] | None = None
        moms: list[float] | None = None
        if closed or self._ts_closed_now():
            values = self._ts_closed_values(self.last_epoch)
        elif self._is_initial and self._ts_keep_initial(self.last_epoch):
            pass
        else:
            t = self._ts_clock()
            self._ts_check(t)
            if self._ts_try(groups, t):
                self._stepper.fast_ok = self._ts_fast
                return
            values = self._stepper.compute(t, [float(g["lr"]) for g in groups])
            if self._ts_momentum and self.cycle_momentum:
                moms = self._stepper.compute_momentum(t)
        if values is not None:
            _store(groups, values)
        if moms is not None:
            _store_momentum(groups, moms, self.use_beta1)
        self._last_lr = _group_lrs(groups)
        self._stepper.fast_ok = self._ts_fast

    # ---- the CUDA path (see _CudaStepper)
    def _ts_cuda_program(self, spec: _Spec, groups: list[dict[str, Any]]) -> tuple[Any, list[int], list[float], Any] | None:
        """(program, roots, scale, locate) for the CUDA engine, or None to keep the host engine. The default
        is the scheduler's own program on its own clock."""
        program, roots, _ = _compile(spec.leaves, ())
        from .._program import OP_DTYPE
        if (np.frombuffer(program.op_bytes(), dtype=OP_DTYPE)["code"] == _T_INPUT).any():
            return None
        if spec.combine == _SCALE:
            scale = [float(v) for v in spec.scale]
            if len(scale) != len(roots) or not all(math.isfinite(v) and v >= 0 for v in scale):
                return None
        else:
            scale = [1.0] * len(roots)
        return program, roots, scale, _locate_clock

    def _ts_cuda_claim(self, ts: _CudaStepper, groups: list[dict[str, Any]], need_prev: bool) -> _CudaStepper | None:
        """Makes the groups hold ``ts``'s views again when they hold something else: another torchsched
        scheduler's views (compounding schedulers: its LRs are adopted with device copies), or tensors put
        there by hand (taken over where the step does not read the previous LR). Otherwise rebuilds, which
        reads the LRs from the device once; None when the rebuilt engine is the host one."""
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
        self._ts_prepare()
        ts = self._stepper
        return ts if type(ts) is _CudaStepper else None

    def _ts_cuda_update(self, ts: _CudaStepper, epoch: Any) -> bool:
        """_update_lr on the CUDA engine: one advance launch for the next step, no sync. False (with nothing
        changed) when the groups no longer suit it and the rebuilt engine is the host one."""
        saved = self.last_epoch
        if epoch is None:
            self.last_epoch += 1
            closed = False
        else:
            self.last_epoch = epoch
            closed = self._ts_has_closed
        groups = self.optimizer.param_groups
        values: list[float] | None = None
        if closed or self._ts_closed_now():
            values = self._ts_closed_values(self.last_epoch)
            mode = 0
        elif self._is_initial and self._ts_keep_initial(self.last_epoch):
            mode = 1
        else:
            self._ts_check(self._ts_clock())
            mode = 2
            if self._ts_edited(groups):
                self._ts_prepare()
                if type(self._stepper) is not _CudaStepper:
                    self.last_epoch = saved
                    return False
                ts = self._stepper
        if not ts.holds(groups):
            claimed = self._ts_cuda_claim(ts, groups, mode == 1 or (mode == 2 and ts.chainable))
            if claimed is None:
                self.last_epoch = saved
                return False
            ts = claimed
        t = self._ts_clock()
        if mode == 0:
            ts.hold(t, values)  # type: ignore[arg-type]
        elif mode == 1:
            ts.hold(t, ts.lrs())
        else:
            ts.step_to(t)
        return True

    def _ts_closed_values(self, t: Any) -> list[float]:
        self._ts_check_closed(t)
        if self._ts_closed is None:
            self._ts_closed = _make_engine(self._ts_build_closed(self.optimizer.param_groups),
                                           _params_device(self.optimizer))
        return list(self._ts_closed.compute(t))

    # ---- torch's public computing methods, core-backed
    def get_lr(self) -> list[Any]:
        """The LRs the current ``last_epoch`` gives (computed by the core; use :meth:`get_last_lr` for the
        latest ones). Warns as torch does outside ``step()``."""
        if not self._get_lr_called_within_step:
            warnings.warn(_GET_LR_WARNING, UserWarning, stacklevel=2)
        if self._ts_stale:
            self._ts_prepare()
        groups = self.optimizer.param_groups
        if self._ts_closed_now():
            return [_like(g["lr"], v) for g, v in zip(groups, self._ts_closed_values(self.last_epoch), strict=True)]
        if self._is_initial and self._ts_keep_initial(self.last_epoch):
            return _group_lrs(groups)
        t = self._ts_clock()
        self._ts_check(t)
        if self._ts_outdated(groups):
            self._ts_prepare()
        values = self._stepper.compute(t, [float(g["lr"]) for g in groups])
        if self._ts_momentum and self.cycle_momentum:
            _store_momentum(groups, self._stepper.compute_momentum(t), self.use_beta1)
        return [_like(r, v) for r, v in zip(self._ts_lr_types(groups, t), values, strict=True)]

    get_lr._ts_core = True  # type: ignore[attr-defined]

    def _ts_lr_types(self, groups: list[dict[str, Any]], t: Any) -> list[Any]:
        """Per group, a value whose type (float, or a tensor's dtype and device) torch's get_lr returns: the
        group's LR for rules that scale it, the operands of the formula for the others."""
        return [g["lr"] for g in groups]


# C-level step(): torch's counters and one core call; the rare cases go to _Core._python_step.
_Core.step = _core.scheduler_step_method(_Core)  # type: ignore[method-assign]


class _ClosedForm:
    """Mixin for the classes that have torch's ``_get_closed_form_lr`` (used by ``step(epoch)``)."""

    __slots__ = ()
    _ts_has_closed = True

    def _get_closed_form_lr(self) -> list[Any]:
        """torch's closed form at ``last_epoch`` from ``base_lrs``, computed by the core."""
        values = self._ts_closed_values(self.last_epoch)  # type: ignore[attr-defined]
        return [_like(b, v) for b, v in zip(self.base_lrs, values)]  # type: ignore[attr-defined]


def _base(scheduler: Any, g: int) -> float:
    base = scheduler.base_lrs
    return float(base[g]) if g < len(base) else 0.0


def _schedule_or_input(fn: Any) -> Any:
    return fn if isinstance(fn, Schedule) else _leaf(_T_INPUT)


# ---- the classes -------------------------------------------------------------------------------------

class LambdaLR(_Core, _tl.LambdaLR):
    """torch's ``LambdaLR``: each group's LR is its initial LR times ``lr_lambda(epoch)``.

    A Python ``lr_lambda`` runs in Python (called from the core once per group and step, in torch's
    order); the multiplications and stores run in the core in one call. A :mod:`torchsched.schedules`
    spec given as ``lr_lambda`` runs entirely in the core. ``state_dict`` saves callable objects'
    ``__dict__`` as torch does, and nothing for a schedule spec (it is immutable).
    """

    _ts_live = ("base_lrs", "lr_lambdas")

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        lambdas = list(self.lr_lambdas)
        n = len(groups)
        fast = len(lambdas) == len(self.base_lrs) == n
        leaves = [_schedule_or_input(lambdas[g]) if g < len(lambdas) else _leaf(_T_INPUT) for g in range(n)]
        fns = [None if (g >= len(lambdas) or isinstance(lambdas[g], Schedule)) else lambdas[g] for g in range(n)]
        return _Spec(leaves, combine=_SCALE, scale=[_base(self, g) for g in range(n)],
                     fns=fns if any(f is not None for f in fns) else None, fast=fast)

    def _ts_check(self, t: Any) -> None:
        if len(self.lr_lambdas) != len(self.base_lrs):
            list(zip(self.lr_lambdas, self.base_lrs, strict=True))
        groups = self.optimizer.param_groups
        if len(self.base_lrs) != len(groups):
            list(zip(groups, self.base_lrs, strict=True))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [None if isinstance(fn, Schedule) else s
                               for fn, s in zip(self.lr_lambdas, state["lr_lambdas"])]
        return state


class MultiplicativeLR(_Core, _tl.MultiplicativeLR):
    """torch's ``MultiplicativeLR``: each step multiplies the current LR by ``lr_lambda(epoch)``.

    A Python ``lr_lambda`` runs in Python (called from the core once per group and step, in torch's
    order); the multiplications and stores run in the core in one call. A :mod:`torchsched.schedules`
    spec given as ``lr_lambda`` runs entirely in the core.
    """

    _ts_live = ("base_lrs", "lr_lambdas")

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        lambdas = list(self.lr_lambdas)
        n = len(groups)
        leaves = [_schedule_or_input(lambdas[g]) if g < len(lambdas) else _leaf(_T_INPUT) for g in range(n)]
        fns = [None if (g >= len(lambdas) or isinstance(lambdas[g], Schedule)) else lambdas[g] for g in range(n)]
        return _Spec(leaves, combine=_PREV, fns=fns if any(f is not None for f in fns) else None,
                     fast=len(lambdas) == n)

    def _ts_keep_initial(self, t: Any) -> bool:
        return True

    def _ts_check(self, t: Any) -> None:
        groups = self.optimizer.param_groups
        if len(self.lr_lambdas) != len(groups):
            list(zip(self.lr_lambdas, groups, strict=True))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [None if isinstance(fn, Schedule) else s
                               for fn, s in zip(self.lr_lambdas, state["lr_lambdas"])]
        return state


class StepLR(_ClosedForm, _Core, _tl.StepLR):
    """torch's ``StepLR``: the LR is multiplied by ``gamma`` every ``step_size`` epochs. Runs in the core."""

    _ts_live = ("base_lrs", "step_size", "gamma")

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_STEP, self.step_size, self.gamma)] * len(groups), fast=self.step_size != 0)

    def _ts_build_closed(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_STEP_CLOSED, _base(self, g), self.step_size, self.gamma)
                      for g in range(len(groups))])

    def _ts_check(self, t: Any) -> None:
        if self.step_size == 0 and t != 0:
            t % self.step_size  # torch's ZeroDivisionError

    def _ts_check_closed(self, t: Any) -> None:
        if self.step_size == 0:
            t // self.step_size
        super()._ts_check_closed(t)


class MultiStepLR(_ClosedForm, _Core, _tl.MultiStepLR):
    """torch's ``MultiStepLR``: the LR is multiplied by ``gamma`` at each milestone (a milestone given
    twice counts twice). Runs in the core."""

    _ts_live = ("base_lrs", "milestones", "gamma")

    def _milestones(self) -> list[float]:
        return sorted(float(m) for m in self.milestones.elements())

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_MULTISTEP, self.gamma, table=self._milestones())] * len(groups))

    def _ts_build_closed(self, groups: list[dict[str, Any]]) -> _Spec:
        milestones = self._milestones()
        leaves = []
        for g in range(len(groups)):
            base = _base(self, g)
            values = [base * self.gamma ** k for k in range(len(milestones) + 1)]
            leaves.append(_leaf(_PIECEWISE_CONST, 0.0, table=milestones + values, count=len(milestones)))
        return _Spec(leaves)


class ConstantLR(_ClosedForm, _Core, _tl.ConstantLR):
    """torch's ``ConstantLR``: the LR is multiplied by ``factor`` until ``total_iters``. Runs in the core."""

    _ts_live = ("base_lrs", "factor", "total_iters")

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_CONSTANT, self.factor, self.total_iters)] * len(groups), fast=self.factor != 0)

    def _ts_build_closed(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_CONSTANT_CLOSED, _base(self, g), self.factor, self.total_iters)
                      for g in range(len(groups))])

    def _ts_check(self, t: Any) -> None:
        if self.factor == 0 and t != 0 and t == self.total_iters:
            1.0 / self.factor  # torch's ZeroDivisionError


class LinearLR(_ClosedForm, _Core, _tl.LinearLR):
    """torch's ``LinearLR``: the LR factor moves linearly from ``start_factor`` to ``end_factor`` over
    ``total_iters`` steps. Runs in the core."""

    _ts_live = ("base_lrs", "start_factor", "end_factor", "total_iters")

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_LINEAR, self.start_factor, self.end_factor, self.total_iters)] * len(groups))

    def _ts_build_closed(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_LINEAR_CLOSED, _base(self, g), self.start_factor, self.end_factor, self.total_iters)
                      for g in range(len(groups))])

    def _ts_keep_initial(self, t: Any) -> bool:
        return t != 0

    def _ts_check_closed(self, t: Any) -> None:
        if self.total_iters == 0:
            (self.end_factor - self.start_factor) * min(self.total_iters, t) / self.total_iters
        super()._ts_check_closed(t)


class ExponentialLR(_ClosedForm, _Core, _tl.ExponentialLR):
    """torch's ``ExponentialLR``: the LR is multiplied by ``gamma`` every step. Runs in the core."""

    _ts_live = ("base_lrs", "gamma")

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_EXPONENTIAL, self.gamma, 1.0)] * len(groups))

    def _ts_build_closed(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_EXPONENTIAL_CLOSED, _base(self, g), self.gamma) for g in range(len(groups))])

    def _ts_keep_initial(self, t: Any) -> bool:
        return True


class PolynomialLR(_ClosedForm, _Core, _tl.PolynomialLR):
    """torch's ``PolynomialLR``: the LR decays as ``(1 - t / total_iters) ** power``. Runs in the core."""

    _ts_live = ("base_lrs", "total_iters", "power")

    def _hazard(self) -> bool:
        return self.total_iters == 0 or self.power < 0

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_POLYNOMIAL, self.total_iters, self.power, 1.0)] * len(groups), fast=not self._hazard())

    def _ts_build_closed(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_POLYNOMIAL_CLOSED, _base(self, g), self.total_iters, self.power)
                      for g in range(len(groups))])

    def _ts_keep_initial(self, t: Any) -> bool:
        return True

    def _ts_check(self, t: Any) -> None:
        if self._hazard() and not t > self.total_iters:
            ((1.0 - t / self.total_iters) / (1.0 - (t - 1) / self.total_iters)) ** self.power

    def _ts_check_closed(self, t: Any) -> None:
        if self._hazard():
            (1.0 - min(self.total_iters, t) / self.total_iters) ** self.power
        super()._ts_check_closed(t)


class CosineAnnealingLR(_ClosedForm, _Core, _tl.CosineAnnealingLR):
    """torch's ``CosineAnnealingLR`` (its recursive form, and its closed form for ``step(epoch)``). Runs
    in the core."""

    _ts_live = ("base_lrs", "T_max", "eta_min")

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        n = len(groups)
        hazard = self.T_max == 0 or len(self.base_lrs) != n
        # torch's rule depends on T_max only through cos(pi t / T_max) and multiples of 2 T_max: a
        # negative T_max acts as its absolute value; 0 raises ZeroDivisionError in _ts_check first.
        T = abs(self.T_max) if self.T_max != 0 else 1.0
        return _Spec([_leaf(_T_COSINE, _base(self, g), self.eta_min, T, 1.0) for g in range(n)], fast=not hazard)

    def _ts_build_closed(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(_T_COSINE_CLOSED, _base(self, g), self.eta_min, self.T_max, 0.0)
                      for g in range(len(groups))])

    def _ts_keep_initial(self, t: Any) -> bool:
        return True

    def _ts_closed_now(self) -> bool:
        return not self._is_initial and self._step_count == 1 and self.last_epoch > 0

    def _ts_check(self, t: Any) -> None:
        T = self.T_max
        if T == 0:
            (t - 1 - T) % (2 * T)
        groups = self.optimizer.param_groups
        if len(self.base_lrs) != len(groups) and (t - 1 - T) % (2 * T) == 0:
            list(zip(self.base_lrs, groups, strict=True))

    def _ts_check_closed(self, t: Any) -> None:
        if self.T_max == 0:
            math.pi * t / self.T_max
        groups = self.optimizer.param_groups
        if len(self.base_lrs) != len(groups):
            list(zip(self.base_lrs, groups, strict=True))


class CyclicLR(_Core, _tl.CyclicLR):
    """torch's ``CyclicLR``, momentum (or Adam's beta1) cycling included. Runs in the core; a custom
    ``scale_fn`` runs in Python (called from the core once per group and step, in torch's order)."""

    _ts_live = ("base_lrs", "max_lrs", "total_size", "step_ratio", "mode", "gamma", "scale_mode",
                "_scale_fn_custom", "_scale_fn_ref", "cycle_momentum", "use_beta1", "base_momentums",
                "max_momentums")
    _ts_momentum = True

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        n = len(groups)
        # torch's scale_fn: the custom one, else the one _init_scale_fn picked (exp_range's gamma bound then)
        custom = self._scale_fn_custom
        ref = self.__dict__.get("_scale_fn_ref")
        gamma = 0.0
        if custom is None and ref is _tl.CyclicLR._triangular_scale_fn:
            mode = 0.0
        elif custom is None and ref is _tl.CyclicLR._triangular2_scale_fn:
            mode = 1.0
        elif (custom is None and isinstance(ref, functools.partial)
              and ref.func is _tl.CyclicLR._exp_range_scale_fn and len(ref.args) == 1 and not ref.keywords):
            mode, gamma = 2.0, float(ref.args[0])
        else:
            mode = 3.0
            custom = custom if custom is not None else ref
        iterations = 0.0 if self.scale_mode == "cycle" else 1.0
        shared = (self.total_size, self.step_ratio, mode, gamma, iterations)
        fast = len(self.base_lrs) == len(self.max_lrs) == n and self.step_ratio != 0
        leaves = [_leaf(_T_CYCLIC, _base(self, g), float(self.max_lrs[g]) if g < len(self.max_lrs) else 0.0,
                        *shared, 0.0) for g in range(n)]
        mleaves: list[Any] = []
        mom_key = _NO_MOMENTUM
        if self.cycle_momentum:
            mom_key = _BETAS if self.use_beta1 else _MOMENTUM
            bm, mm = self.base_momentums, self.max_momentums
            fast = fast and len(bm) == len(mm) == n
            mleaves = [_leaf(_T_CYCLIC, float(bm[g]) if g < len(bm) else 0.0, float(mm[g]) if g < len(mm) else 0.0,
                             *shared, 1.0) for g in range(n)]
        fns = [custom] * n if custom is not None else None
        return _Spec(leaves, mleaves=mleaves, mom_key=mom_key, fns=fns,
                     mfns=fns if (custom is not None and self.cycle_momentum) else None,
                     cycle_total=self.total_size if (custom is not None and self.scale_mode == "cycle") else 0.0,
                     fast=fast)

    def _ts_lr_types(self, groups: list[dict[str, Any]], t: Any) -> list[Any]:
        # torch: base_lr + (max_lr - base_lr) * scale, from its own base_lrs / max_lrs (floats unless given tensors)
        return [_first_tensor(b, m) for b, m in zip(self.base_lrs, self.max_lrs)]

    def _ts_check(self, t: Any) -> None:
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        if x <= self.step_ratio:
            x / self.step_ratio
        else:
            (x - 1) / (self.step_ratio - 1)
        groups = self.optimizer.param_groups
        list(zip(self.base_lrs, self.max_lrs, strict=True))
        if len(self.base_lrs) != len(groups):
            list(zip(groups, self.base_lrs, strict=True))
        if self.cycle_momentum:
            list(zip(self.base_momentums, self.max_momentums, strict=True))
            list(zip(groups, self.base_momentums, strict=True))


class CosineAnnealingWarmRestarts(_Core, _tl.CosineAnnealingWarmRestarts):
    """torch's ``CosineAnnealingWarmRestarts`` (SGDR). The LRs run in the core; the restart bookkeeping
    (``T_cur``, ``T_i``, as torch keeps them) is a couple of integer updates in Python."""

    _ts_live = ("base_lrs", "T_0", "T_mult", "eta_min")

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        n = len(groups)
        return _Spec([_leaf(_T_COSINE_CLOSED, _base(self, g), self.eta_min, 1.0, 1.0) for g in range(n)],
                     fast=len(self.base_lrs) == n)

    def step(self, epoch: Any = None) -> None:  # type: ignore[override]
        """Step the scheduler, after every batch if you like: ``step(epoch + i / iters)`` works as in torch."""
        if self._ts_stale:
            self._ts_prepare()
        if not self._ts_core:
            _tl.CosineAnnealingWarmRestarts.step(self, epoch)
            return
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            T_cur = self.T_cur + 1
            if T_cur >= self.T_i:
                T_cur = T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
            self.T_cur = T_cur
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch < self.T_0:
                self.T_i = self.T_0
                self.T_cur = epoch
            elif self.T_mult == 1:
                self.T_cur = epoch % self.T_0
            else:
                n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                self.T_i = self.T_0 * self.T_mult ** (n)
        self.last_epoch = math.floor(epoch)
        groups = self.optimizer.param_groups
        if len(self.base_lrs) != len(groups):
            list(zip(groups, self.base_lrs, strict=True))  # torch's ValueError
        ts = self._stepper
        if type(ts) is _CudaStepper and (ts.holds(groups) or self._ts_cuda_claim(ts, groups, False) is not None):
            self._stepper.step_to(self.T_cur, float(self.T_i))
            return
        if self._ts_try(groups, self.T_cur, float(self.T_i)):
            return
        values = self._stepper.compute(self.T_cur, None, float(self.T_i))
        _store(groups, values)
        self._last_lr = _group_lrs(groups)

    def _ts_cuda_program(self, spec: _Spec, groups: list[dict[str, Any]]) -> tuple[Any, list[int], list[float], Any] | None:
        """On the device the clock is a step counter, so the restarts are compiled in: a sequence of torch's
        closed-form cosine, one piece per period (T_0, T_0 T_mult, ...), the engine step counting from the
        start of the first period. T_mult > 1 needs at most 53 pieces to reach 2**53 steps; T_mult == 1
        compiles 32 periods and goes back to the first one after the last (a step set: two launches, once
        every 32 periods). torch's own expression, in torch's order, on (T_cur, T_i) as integers."""
        T0, mult = self.T_0, self.T_mult
        if not (isinstance(T0, int) and isinstance(mult, int) and T0 > 0 and mult >= 1):
            return None
        periods: list[int] = []
        starts: list[int] = []
        start = 0
        limit = 2 ** 53
        while True:
            period = T0 * mult ** len(periods)
            periods.append(period)
            starts.append(start)
            start += period
            if start >= limit or (mult == 1 and len(periods) == 32) or len(periods) >= 64:
                break
        end = start
        builder = Builder()
        bounds = builder.table([float(b) for b in starts[1:]]) if len(starts) > 1 else 0
        eta = float(self.eta_min)

        class _Piece:
            def __init__(self, base: float, period: int) -> None:
                self.leaf = _leaf(_T_COSINE_CLOSED, base, eta, float(period), 0.0)

            def _emit(self, b: Builder) -> None:
                code, params, _, _ = self.leaf
                b.leaf(code, params)

        seen: dict[float, int] = {}
        roots = []
        for g in range(len(groups)):
            base = _base(self, g)
            if base not in seen:
                seen[base] = len(builder.ops)
                if len(periods) == 1:
                    _Piece(base, periods[0])._emit(builder)
                else:
                    pieces: list[Any] = [_Piece(base, p) for p in periods]
                    builder.node(_SEQUENCE, pieces, (), a=bounds)  # type: ignore[arg-type]
            roots.append(seen[base])
        first: dict[int, int] = {}
        for p, s0 in zip(periods, starts):
            first.setdefault(p, s0)

        def locate(ts: Any, t: Any, u: float) -> int | None:
            T_cur = _locate_clock(ts, t, u)
            T_i = _locate_clock(ts, u, math.nan)
            if T_cur is None or T_i is None or T_cur >= T_i or T_i not in first:
                return None
            if mult == 1 and ts.aligned:
                nxt = ts.engine.step + 1
                if nxt < end and nxt % T0 == T_cur:
                    return nxt
            return first[T_i] + T_cur

        return builder.program(), roots, [1.0] * len(groups), locate

    def get_lr(self) -> list[Any]:
        """The LRs at the current ``T_cur`` and ``T_i`` (computed by the core)."""
        if not self._get_lr_called_within_step:
            warnings.warn(_GET_LR_WARNING, UserWarning, stacklevel=2)
        if self._ts_stale:
            self._ts_prepare()
        values = self._stepper.compute(self.T_cur, None, float(self.T_i))
        return [_like(b, v) for b, v in zip(self.base_lrs, values)]

    get_lr._ts_core = True  # type: ignore[attr-defined]


class OneCycleLR(_Core, _tl.OneCycleLR):
    """torch's ``OneCycleLR`` (two or three phases, cos or linear), momentum (or Adam's beta1) cycling
    included. Runs in the core. The phase LRs and momenta come from the param groups (``initial_lr``,
    ``max_lr``, ``min_lr``, ``max_momentum``, ``base_momentum``), as in torch: editing one between steps
    changes the schedule from the next step (that step recompiles the program)."""

    _ts_live = ("base_lrs", "total_steps", "_schedule_phases", "_anneal_func_type", "cycle_momentum", "use_beta1")
    _ts_momentum = True
    _ts_watches = True

    def _phases(self) -> tuple[list[float], bool]:
        phases = self._schedule_phases
        three = len(phases) == 3
        keys = [(p["start_lr"], p["end_lr"]) for p in phases]
        expected = ([("initial_lr", "max_lr"), ("max_lr", "initial_lr"), ("initial_lr", "min_lr")] if three
                    else [("initial_lr", "max_lr"), ("max_lr", "min_lr")])
        if keys != expected:
            raise ValueError(f"OneCycleLR phases {keys} are not torch's two- or three-phase layout")
        ends = [float(p["end_step"]) for p in phases]
        return ends + [0.0] * (3 - len(ends)), three

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        ends, three = self._phases()
        phases = self._schedule_phases
        kind = 0.0 if self._anneal_func_type == "cos" else 1.0
        shared = (kind, 1.0 if three else 0.0, *ends)
        leaves = [_leaf(_T_ONE_CYCLE, *shared, g["initial_lr"], g["max_lr"], g[phases[-1]["end_lr"]]) for g in groups]
        starts = [0.0] + [float(p["end_step"]) for p in phases[:-1]]
        fast = all(float(p["end_step"]) != s for p, s in zip(phases, starts))
        mleaves: list[Any] = []
        mom_key = _NO_MOMENTUM
        watch: tuple[str, ...] = ("initial_lr", "max_lr", phases[-1]["end_lr"])
        if self.cycle_momentum:
            mom_key = _BETAS if self.use_beta1 else _MOMENTUM
            mkeys = (phases[0]["start_momentum"], phases[0]["end_momentum"], phases[-1]["end_momentum"])
            mleaves = [_leaf(_T_ONE_CYCLE, *shared, *(g[k] for k in mkeys)) for g in groups]
            watch += tuple(dict.fromkeys(mkeys))
        return _Spec(leaves, mleaves=mleaves, mom_key=mom_key, max_step=self.total_steps, fast=fast, watch=watch,
                     groups=groups)

    def _ts_lr_types(self, groups: list[dict[str, Any]], t: Any) -> list[Any]:
        # torch anneals between the current phase's two group keys (floats unless a tensor was put there)
        phase = next((p for p in self._schedule_phases if t <= p["end_step"]), self._schedule_phases[-1])
        return [_first_tensor(g[phase["start_lr"]], g[phase["end_lr"]]) for g in groups]

    def _ts_check(self, t: Any) -> None:
        if t > self.total_steps:
            raise ValueError(f"Tried to step {t} times. The specified number of total steps is {self.total_steps}")
        start = 0.0
        for i, phase in enumerate(self._schedule_phases):
            end = phase["end_step"]
            if t <= end or i == len(self._schedule_phases) - 1:
                (t - start) / (end - start)  # torch's ZeroDivisionError for an empty phase
                break
            start = phase["end_step"]


class SWALR(_Core, _tswa.SWALR):
    """torch's ``SWALR`` (``torch.optim.swa_utils``): anneals each group's LR to its ``swa_lr`` over
    ``anneal_epochs`` (cos or linear), then holds it. Runs in the core; ``swa_lr`` comes from the groups,
    as in torch: editing it between steps takes effect at the next step (which recompiles the program)."""

    _ts_live = ("base_lrs", "anneal_epochs", "_anneal_strategy")
    _ts_watches = True

    def _ts_build(self, groups: list[dict[str, Any]]) -> _Spec:
        linear = 1.0 if self._anneal_strategy == "linear" else 0.0
        return _Spec([_leaf(_T_SWA, g["swa_lr"], self.anneal_epochs, linear) for g in groups], clock=1,
                     watch=("swa_lr",), groups=groups)

    def _ts_clock(self) -> Any:
        return self._step_count - 1

    def get_lr(self) -> list[Any]:
        """The LRs of the current step (computed by the core)."""
        if not self._get_lr_called_within_step:
            warnings.warn(_GET_LR_WARNING, UserWarning, stacklevel=2)
        if self._ts_stale:
            self._ts_prepare()
        groups = self.optimizer.param_groups
        if self._ts_outdated(groups):
            self._ts_prepare()
        values = self._stepper.compute(self._ts_clock(), [float(g["lr"]) for g in groups])
        return [_like(g["lr"], v) for g, v in zip(groups, values, strict=True)]

    get_lr._ts_core = True  # type: ignore[attr-defined]


# ---- schedulers of schedulers ------------------------------------------------------------------------

class SequentialLR(_LastLR, _tl.SequentialLR):
    """torch's ``SequentialLR``: each scheduler runs in turn, switching at the milestones. Each step is
    one step of the scheduler in charge (one core call for torchsched schedulers)."""

    def step(self) -> None:  # type: ignore[override]
        """Perform a step."""
        self.last_epoch += 1
        t = self.last_epoch
        milestones = self._milestones
        idx = bisect_right(milestones, t)
        scheduler = self._schedulers[idx]
        if idx > 0 and milestones[idx - 1] == t:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._ts_last = None
        self._ts_src = scheduler


class ChainedScheduler(_LastLR, _tl.ChainedScheduler):
    """torch's ``ChainedScheduler``: every scheduler steps, in order, each step (one core call each for
    torchsched schedulers)."""

    _ts_src_copy = True

    def step(self) -> None:  # type: ignore[override]
        """Perform a step."""
        for scheduler in self._schedulers:
            scheduler.step()
        last = self._schedulers[-1]
        if isinstance(last, _Core) and last.optimizer is self.optimizer:
            self._ts_last = None
            self._ts_src = last
        else:
            self._last_lr = _group_lrs(self._schedulers[-1].optimizer.param_groups)


class ReduceLROnPlateau(LRScheduler, _tl.ReduceLROnPlateau):
    """torch's ``ReduceLROnPlateau``. ``float(metrics)`` is taken in Python, as in torch (a host sync
    for a GPU tensor); the plateau rule (best, bad epochs, cooldown) and every group's reduction run in
    one core call, on the scheduler's own attributes, so ``state_dict`` and the attributes are torch's.

    ``patience`` and ``cooldown`` are counts: a fractional ``patience`` acts as its floor and a
    fractional ``cooldown`` as its ceiling (what torch's comparisons amount to), stored as integers.
    """

    def __init__(self, optimizer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(optimizer, *args, **kwargs)
        _refuse_cpu_lrs_for_cuda_params(self.optimizer.param_groups)

    def step(self, metrics: Any, epoch: Any = None) -> None:  # type: ignore[override]
        """Perform a step."""
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        self._last_lr = _core.plateau_step(self.__dict__, self.optimizer.param_groups, current, Tensor)


# torch's signature and docstring for inspect/help (applied here: mypy rejects a decorated __init__)
functools.update_wrapper(ReduceLROnPlateau.__init__, _tl.ReduceLROnPlateau.__init__)


for _cls in (LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR,
             SequentialLR, PolynomialLR, CosineAnnealingLR, ChainedScheduler, ReduceLROnPlateau, CyclicLR,
             CosineAnnealingWarmRestarts, OneCycleLR, SWALR, LRScheduler):
    _cls.__module__ = "torchsched.lr_scheduler"
del _cls
