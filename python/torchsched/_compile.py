"""``torch.compile`` support: where dynamo traces a scheduler's or a wrapper's step, the step is one registered
operator in the graph, and the step's own code runs, unchanged, when the compiled graph runs.

Dynamo cannot trace a call into the compiled core, and a step keeps host state (``last_epoch``, the engine's
step, the host mirror) that changes every step: traced, each such int would be a guard that fails at the next
step. So a traced step is one opaque op, defined here with a fake implementation:

- ``torchsched::scheduler_step``: a drop-in scheduler's ``step()`` (the C-level one, ``ReduceLROnPlateau``'s,
  and the Python ones of ``SequentialLR``, ``ChainedScheduler`` and ``CosineAnnealingWarmRestarts``).
- ``torchsched::wrap_step``: :func:`torchsched.wrap`'s step, in two parts around the optimizer's own update
  (the checks and the finite-LR proof before it, so that a refused step still raises before the update; the
  advance after it), and the scheduler view's ``step()``.

Each op takes the LR tensors the optimizer reads and returns their values after the step, which the traced
code then stores into them (``lr.copy_``): a compiler sees an ordinary in-place write, ordered after the
optimizer's reads of the LR, and hands the op the LR values the graph has at that point (a second step in the
same graph reads the first one's). The op leaves the LR tensors' memory as it found it (inductor may fuse the
optimizer's read of an LR into a kernel that runs after the op). An op finds its scheduler or wrapper by a
handle (its ``id``, registered at construction; a weak reference). Nothing the trace reads changes from step to
step, so nothing recompiles after the first compile. Python-float LRs change every step and the optimizer's
traced step guards on their values: a compiled step wants tensor LRs (``lr=torch.tensor(...)``, a fused or
capturable optimizer, or the wrapper's ``tensor_lrs=True``).

Where dynamo runs code eagerly after a graph break, the steps run as they are (no op); their host bookkeeping
is marked so that dynamo does not try to compile it as frames of its own (:func:`run_as_is`), as torch's own
``lr_scheduler.py`` is skipped.

Host state read *inside* a compiled function after a traced step (``sched.last_epoch``) is the value dynamo saw
when it traced; read it outside, where it is always current. Likewise the wrapper's average-gradient rule reads
the gradients from the params, not from the graph: where its step is traced into the same graph as code that
changes the gradients in place (clipping), it reads them as they were before that graph.
"""

import functools
import types
import weakref
from typing import Any, Callable, List, Optional

import torch
from torch import Tensor

from . import _torch_compat as compat

__all__ = ["register", "tracing", "trace_scheduler_steps", "traced_scheduler_step", "traced_wrap_step",
           "traced_view_step", "run_as_is", "run_as_is_from_core", "own_step_wrapper"]

#: False when called; dynamo traces it as True (a cheaper test than torch.compiler.is_compiling in an eager step)
tracing = torch.compiler.is_dynamo_compiling

_LIVE: dict[int, "weakref.ref[Any]"] = {}  # handle (the object's id) -> the scheduler or wrapper
_STEPS: List[Callable[..., Any]] = []  # scheduler_step's kind -> the eager step it runs
_KINDS: dict[str, int] = {}  # a Python step's __qualname__ -> its kind
BEGIN, END, VIEW = 0, 1, 2  # wrap_step's phases
# Every op also declares this tensor mutated (nothing writes it): an op whose only effects are on the host (float
# LRs) would otherwise look dead to a functionalizing compiler; and the ops stay in program order.
_TOKEN = torch.zeros(1)


def register(obj: Any) -> int:
    """Makes ``obj`` reachable by the ops through its handle for as long as it lives; returns the handle."""
    key = id(obj)

    def forget(ref: "weakref.ref[Any]", key: int = key) -> None:
        if _LIVE.get(key) is ref:
            del _LIVE[key]

    _LIVE[key] = weakref.ref(obj, forget)
    return key


def _lookup(handle: int) -> Any:
    ref = _LIVE.get(handle)
    obj = ref() if ref is not None else None
    if obj is None:
        raise RuntimeError("torchsched: the scheduler or wrapper this compiled step was traced with no longer exists")
    return obj


def _lr_tensors(optimizer: Any) -> List[Tensor]:
    return [g["lr"] for g in optimizer.param_groups if isinstance(g["lr"], Tensor)]


def _values_tensor(lrs: List[Tensor]) -> Tensor:
    """What an op returns: the LR tensors' values in float64 (which holds float32 and float64 LRs exactly), in the
    one tensor's shape, or flattened one after the other."""
    if len(lrs) == 1:
        return torch.empty(lrs[0].shape, dtype=torch.float64, device=lrs[0].device)
    return torch.empty(sum(t.numel() for t in lrs), dtype=torch.float64, device=lrs[0].device if lrs else "cpu")


def _pieces(lrs: List[Tensor], values: Tensor) -> List[Tensor]:
    if len(lrs) == 1:
        return [values]
    pieces, offset = [], 0
    for lr in lrs:
        pieces.append(values[offset:offset + lr.numel()].view(lr.shape))
        offset += lr.numel()
    return pieces


def _leaving_memory_as_found(passed: List[Tensor], current: Callable[[], List[Tensor]],
                             run: Callable[[], None]) -> Tensor:
    """Runs a step as an op of a compiled graph: from the LR values the graph passes, to the LR values the step
    gives, which the graph then stores itself (:func:`_store`). The LR tensors' memory is left as it was found: a
    compiler may read an LR for the optimizer's update after the op has run (inductor fuses such a read into a
    later kernel), and must read the old value there."""
    real = current()
    if not passed:
        run()
        return _values_tensor(passed)
    if len(passed) == 1 and len(real) == 1 and real[0].shape == passed[0].shape:  # one LR tensor: fewest tensor ops
        r, p = real[0], passed[0]
        # the old value kept as a Python float on the CPU (exact for float32 and float64), a copy elsewhere
        found: Any = r.item() if r.numel() == 1 and r.device.type == "cpu" else r.clone()
        try:
            if p.data_ptr() != r.data_ptr():  # a value the graph stored earlier, not in memory yet: the step reads it
                r.copy_(p)
            run()
            now = current()
            value = now[0] if now and now[0].shape == r.shape else p
            out = value.double()
            return out.clone() if out is value else out
        finally:
            r.fill_(found) if isinstance(found, float) else r.copy_(found)
    out = _values_tensor(passed)
    found = [r.clone() for r in real]
    try:
        for r, p in zip(real, passed):
            if p.data_ptr() != r.data_ptr():
                r.copy_(p)
        run()
        now = current()
        for i, piece in enumerate(_pieces(passed, out)):
            # fewer LR tensors now (a group's LR replaced by a float, say): the rest keep their values
            piece.copy_(now[i] if i < len(now) and now[i].shape == piece.shape else passed[i])
    finally:
        for r, f in zip(real, found):
            r.copy_(f)
    return out


# ---- the ops: their eager implementations run the steps ------------------------------------------------

def _scheduler_step(token: Tensor, lrs: List[Tensor], handle: int, kind: int, metric: Optional[Tensor],
                    number_metric: Optional[Tensor], epoch: Optional[Tensor]) -> Tensor:
    sched = _lookup(handle)
    args: List[Any] = []
    if metric is not None or number_metric is not None:
        args.append(metric if metric is not None else number_metric.item())  # type: ignore[union-attr]
    if epoch is not None:
        args.append(epoch.item())  # the int or float given (int64 or float64 holds it exactly)
    return _leaving_memory_as_found(lrs, lambda: _lr_tensors(sched.optimizer), lambda: _STEPS[kind](sched, *args))


# ScheduledOptimizer.step() in two parts, each run by one op of a compiled step (traced_wrap_step)
def _begin_wrapped_step(self: Any, closure: bool) -> None:
    """The step up to the optimizer's update: the checks and the proof (raising here changes nothing), and the
    gradients the average-gradient rule reads before the update."""
    opt = self._optimizer
    groups = opt.param_groups
    if groups is not self._groups or len(groups) != self._count:
        self._resync(groups)
    if not next(self._tickets, False):
        self._prove_ahead()
    self.__dict__["_pending_gradients"] = None
    if self._reads_gradients and not closure:
        bank = self._bank
        assert bank is not None
        self.__dict__["_pending_gradients"] = bank.read_gradients(
            groups, opt.__dict__.get("grad_scale"), "mean", self._process_group)


def _end_wrapped_step(self: Any, closure: bool, found_inf: Any) -> None:
    """The step after the optimizer's update: the gradient rule's observation, then the advance."""
    opt = self._optimizer
    groups = opt.param_groups
    if found_inf is None:
        found_inf = opt.__dict__.get("found_inf")
    if self._reads_gradients:
        bank = self._bank
        assert bank is not None
        values = self._pending_gradients
        self.__dict__["_pending_gradients"] = None
        if closure or values is None:
            values = bank.read_gradients(groups, opt.__dict__.get("grad_scale"), "mean", self._process_group)
        bank.observe_gradients(values, found_inf if isinstance(found_inf, torch.Tensor) else None)
    if found_inf is None:
        self._advance()
    else:
        self._binding.advance(groups, found_inf)


def _wrap_step(token: Tensor, lrs: List[Tensor], handle: int, phase: int, closure: bool,
               found_inf: Optional[Tensor]) -> Tensor:
    obj = _lookup(handle)
    if phase == VIEW:
        obj.step()
        return _values_tensor(lrs)
    run = (lambda: _begin_wrapped_step(obj, closure)) if phase == BEGIN else (
        lambda: _end_wrapped_step(obj, closure, found_inf))
    return _leaving_memory_as_found(lrs, lambda: list(obj._lr_targets), run)


def _fake(token: Tensor, lrs: List[Tensor], *args: Any) -> Tensor:
    return _values_tensor(lrs)


# The low-level API: torch.library.custom_op's Python autograd and view-tracking layers cost ~50 us a call, this
# ~5 us. Nothing here needs autograd: no LR tensor requires grad.
_LIB = torch.library.Library("torchsched", "DEF")
_SCHEMAS = {
    "scheduler_step": ("(Tensor(a!) token, Tensor[] lrs, int handle, int kind, Tensor? metric, "
                       "Tensor? number_metric, Tensor? epoch) -> Tensor", _scheduler_step),
    "wrap_step": ("(Tensor(a!) token, Tensor[] lrs, int handle, int phase, bool closure, Tensor? found_inf) -> Tensor",
                  _wrap_step),
}
# The ops run host code: a CUDA graph (mode="reduce-overhead") must not capture them, or they would never run again.
_TAGS = tuple(getattr(torch.Tag, name) for name in ("cudagraph_unsafe",) if hasattr(torch.Tag, name))
for _name, (_schema, _impl) in _SCHEMAS.items():
    _LIB.define(_name + _schema, tags=_TAGS)
    _LIB.impl(_name, _impl, "CompositeExplicitAutograd")
    torch.library.register_fake(f"torchsched::{_name}", _fake, lib=_LIB)


def _store(lrs: List[Tensor], values: Tensor) -> None:
    for lr, piece in zip(lrs, _pieces(lrs, values)):
        lr.copy_(piece)


# ---- what dynamo traces in place of the steps ----------------------------------------------------------

def _scheduler_op(sched: Any, kind: int, epoch: Any, metric: Any) -> None:
    # Python numbers travel as tensors: a number argument of an op would be a guard on its value (a
    # fractional epoch, a metric: a recompile every step)
    tensor_metric = metric if isinstance(metric, Tensor) else None
    number_metric = None if metric is None or tensor_metric is not None else torch.tensor(metric, dtype=torch.float64)
    if epoch is not None:
        epoch = torch.tensor(epoch, dtype=torch.int64 if isinstance(epoch, int) else torch.float64)
    lrs = _lr_tensors(sched.optimizer)
    _store(lrs, torch.ops.torchsched.scheduler_step(_TOKEN, lrs, id(sched), kind, tensor_metric, number_metric, epoch))


def trace_scheduler_steps(classes: Any = (), metric_classes: Any = (), python_steps: Any = ()) -> None:
    """Registers the drop-in schedulers' ``step`` implementations, each traced as one ``torchsched::scheduler_step``.

    ``classes`` (and ``metric_classes``, whose ``step`` takes a metric first: ``ReduceLROnPlateau``) have a C-level
    ``step``: dynamo substitutes the traced version for it, and eager calls keep the C function (no cost). Where
    the installed torch cannot substitute a C method, or a class's ``step`` is a Python function, the class gets
    a Python ``step`` that takes the traced version where :data:`tracing` and calls its own otherwise (about
    0.2 us more a step).
    ``python_steps`` are Python ``step`` functions registered by ``__qualname__``: they call
    :func:`traced_scheduler_step` first thing where :data:`tracing`."""
    substitute = getattr(torch.compiler, "substitute_in_graph", None) if compat.dynamo_substitutes_methods() else None
    for cls in (*classes, *metric_classes):
        step = cls.__dict__["step"]
        kind = len(_STEPS)
        _STEPS.append(step)
        if cls in metric_classes:
            def traced(self: Any, metrics: Any, epoch: Any = None, kind: int = kind) -> None:
                _scheduler_op(self, kind, epoch, metrics)
        else:
            def traced(self: Any, epoch: Any = None, kind: int = kind) -> None:  # type: ignore[misc]
                _scheduler_op(self, kind, epoch, None)
        if substitute is not None and not isinstance(step, types.FunctionType):
            try:
                substitute(step, skip_signature_check=True)(traced)
            except ValueError:  # registered already
                pass
            continue

        def python_step(self: Any, *args: Any, _step: Any = step, _traced: Any = traced, **kwargs: Any) -> Any:
            if tracing():
                return _traced(self, *args, **kwargs)
            return _step(self, *args, **kwargs)

        python_step.__doc__ = step.__doc__
        cls.step = python_step
        run_as_is(python_step)
    for step in python_steps:
        _KINDS[step.__qualname__] = len(_STEPS)
        _STEPS.append(step)
        run_as_is(step)


def traced_scheduler_step(sched: Any, name: str, epoch: Any = None) -> None:
    """What dynamo traces for a Python ``step`` registered under ``name`` (its ``__qualname__``)."""
    _scheduler_op(sched, _KINDS[name], epoch, None)


def traced_wrap_step(self: Any, closure: Optional[Callable[[], Any]] = None) -> Any:
    """What dynamo traces for ``ScheduledOptimizer.step``: the optimizer's step between the two halves of the
    wrapper's own."""
    targets = list(self._lr_targets)
    handle = self._handle
    has_closure = closure is not None
    _store(targets, torch.ops.torchsched.wrap_step(_TOKEN, targets, handle, BEGIN, has_closure, None))
    opt = self._optimizer
    loss = opt.step() if closure is None else opt.step(closure)
    found_inf = opt.__dict__.get("found_inf")  # GradScaler's flag, set around this call
    _store(targets, torch.ops.torchsched.wrap_step(_TOKEN, targets, handle, END, has_closure,
                                                   found_inf if isinstance(found_inf, Tensor) else None))
    return loss


def traced_view_step(self: Any) -> None:
    """What dynamo traces for the scheduler view's ``step()``: one op that runs it."""
    torch.ops.torchsched.wrap_step(_TOKEN, [], id(self), VIEW, False, None)


def run_as_is(*fns: Any) -> bool:
    """Dynamo runs these functions, and all they call, without compiling them when it meets them as frames of
    their own (called from the core, or from code dynamo runs eagerly after a graph break): host bookkeeping,
    nothing to compile. Traced calls take the ops above. False where the installed torch cannot mark them (they
    are compiled as frames then, as before)."""
    if not compat.CAN_RUN_AS_IS:
        return False
    for fn in fns:
        compat.set_run_as_is(fn.__code__)
    return True


def run_as_is_from_core(cls: type, name: str) -> None:
    """:func:`run_as_is` for a method the core calls by name; where torch cannot mark it, the method is wrapped
    in ``torch.compiler.disable`` (a slow path only: a microsecond a call)."""
    if not run_as_is(getattr(cls, name)):
        setattr(cls, name, torch.compiler.disable(getattr(cls, name)))


# ---- the optimizer-step wrapper a torch scheduler installs ---------------------------------------------

_TORCH_LR_SCHEDULER_FILE = torch.optim.lr_scheduler.LRScheduler.__init__.__code__.co_filename


def own_step_wrapper(optimizer: Any) -> None:
    """Replaces the ``optimizer.step`` wrapper torch's ``LRScheduler`` installs (it notes that the optimizer
    stepped) by the same wrapper defined here: dynamo skips every function of torch's ``lr_scheduler.py``, so
    torch's is a graph break in a compiled step. Anything else in ``optimizer.step`` is left alone."""
    step = getattr(optimizer, "__dict__", {}).get("step")
    if (not isinstance(step, types.FunctionType) or not compat.step_wrapped(step)
            or getattr(step, "_torchsched", False) or step.__code__.co_filename != _TORCH_LR_SCHEDULER_FILE):
        return
    code, cells = step.__code__, step.__closure__ or ()
    func = getattr(step, "__wrapped__", None)
    if func is None and "func" in code.co_freevars:  # older torch does not functools.wraps it
        func = cells[code.co_freevars.index("func")].cell_contents
    if func is None:
        return
    opt_ref = weakref.ref(optimizer)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opt = opt_ref()
        compat.mark_optimizer_stepped(opt)
        if isinstance(func, types.FunctionType):
            return func(opt, *args, **kwargs)
        return func.__get__(opt, opt.__class__)(*args, **kwargs)

    compat.mark_step_wrapper(wrapper)
    wrapper._torchsched = True  # type: ignore[attr-defined]
    optimizer.step = wrapper
