"""The machinery shared by the drop-in classes: the lazily built ``_last_lr``, the compiled parameters whose
reassignment recompiles, and ``_Core``, which compiles a class's rule and writes each step's decision on the
host engine or the CUDA engine."""

from __future__ import annotations

import math
import operator
import warnings
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor
from torch.optim import lr_scheduler as _tl

from .. import _compile, _core
from .. import _validate as check
from .._cuda_optim import refuse_cpu_lr_for_cuda_params
from ._cuda_stepper import DeviceProgram, _CudaStepper, _make_stepper, _scheduler_program, _write_on_device
from ._spec import _Spec
from .. import _torch_compat as compat
from ._state import restored_on_error, state_holders
from ._step import (
    StepDecision, StepKind, _group_lrs, _like, _store, _store_momentum, _tensor_binding, decide_lrs, decide_step,
)

EPOCH_DEPRECATION_WARNING = _tl.EPOCH_DEPRECATION_WARNING
_LR = operator.itemgetter("lr")

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


def _torch_class(cls: type) -> type:
    """The torch class a drop-in class twins (the first of torch's schedulers in its MRO)."""
    return next(c for c in cls.__mro__ if c.__module__ in (_tl.__name__, "torch.optim.swa_utils"))


def _params_device(optimizer: Any) -> torch.device | None:
    for group in optimizer.param_groups:
        for p in group.get("params", ()):
            if isinstance(p, Tensor):
                return p.device
    return None


def _name_engine(engine: Any, scheduler: Any) -> Any:
    """Gives a host engine (or a CUDA stepper's host engine) the class name its errors start with, and tells it
    whether its values go into float32 LR tensors (torch computes those in float32 tensor arithmetic)."""
    host = getattr(engine, "host", engine)
    if isinstance(host, _core.Stepper):
        host.owner = type(scheduler).__name__
        lrs = [g.get("lr") for g in scheduler.optimizer.param_groups]
        host.float32 = bool(lrs) and all(isinstance(lr, Tensor) and lr.dtype == torch.float32 for lr in lrs)
    return engine


def _refuse_cpu_lrs_for_cuda_params(groups: Sequence[dict[str, Any]]) -> None:
    """Construction and rebinding: a CPU LR tensor with CUDA params is refused, as by wrap()."""
    for i, group in enumerate(groups):
        lr = group.get("lr")
        if isinstance(lr, Tensor) and lr.device.type == "cpu":  # only then look at the params
            device = next((p.device for p in group.get("params", ()) if isinstance(p, Tensor)), None)
            refuse_cpu_lr_for_cuda_params(i, lr, device, f"Use a tensor on {device} (which torchsched then writes "
                                          "on the device) or a Python float")


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
        obj._invalidate_program()

    def __delete__(self, obj: Any) -> None:
        try:
            del obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None
        obj._invalidate_program()


# ---- base classes ------------------------------------------------------------------------------------

class LRScheduler(_tl.LRScheduler):
    """Base class of the schedulers here, and of custom ones: torch's ``LRScheduler`` unchanged.

    A subclass implements :meth:`get_lr`, which runs in Python, exactly as with torch. The concrete
    classes of this module run their rules in the compiled core instead.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        _compile.register(self)  # a compiled step's op finds the scheduler by its handle
        return self


class _LastLR(LRScheduler):
    """``_last_lr`` kept out of ``__dict__`` so the core can leave it unbuilt until someone reads it
    (``get_last_lr()``, ``state_dict()``): building G tensor copies every step would cost more than the
    step. ``state_dict`` carries it exactly as torch's does."""

    __slots__ = ("_stepper", "_last_lr_value", "_last_lr_source")
    _stepper: Any                 # the engine (a _core.Stepper or a _CudaStepper) or None; the C-level step reads it
    _last_lr_value: list[Any] | None  # _last_lr once built
    _last_lr_source: Any          # a scheduler whose get_last_lr() is ours once read
    _copies_source_last_lr = False  # copy the source's list (ChainedScheduler) or share it (SequentialLR)
    _is_initial = False  # torch's flag of the constructor's step, where the installed torch has none (_torch_compat)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        self._stepper = None
        self._last_lr_value = None
        self._last_lr_source = None
        return self

    @property
    def _last_lr(self) -> list[Any]:
        src = self._last_lr_source
        if src is not None:
            self._last_lr_source = None
            last = src.get_last_lr()
            self._last_lr_value = list(last) if self._copies_source_last_lr else last
        else:
            ts = self._stepper
            if ts is not None and ts.fresh:
                ts.fresh = False
                self._last_lr_value = self._build_last_lr()
        last = self._last_lr_value
        if last is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute '_last_lr'")
        return last

    @_last_lr.setter
    def _last_lr(self, value: list[Any]) -> None:
        self._last_lr_value = value
        self._last_lr_source = None
        if self._stepper is not None:
            self._stepper.fresh = False

    @_last_lr.deleter
    def _last_lr(self) -> None:
        self._last_lr = None  # type: ignore[assignment]

    def _build_last_lr(self) -> list[Any]:  # pragma: no cover - overridden where a core writes
        return []

    def _invalidate_program(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        try:
            state["_last_lr"] = self._last_lr
        except AttributeError:
            pass
        return state

    _required_state_keys: tuple[str, ...] = ("last_epoch",)  # a state dict without one is corrupted

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``, atomic: the state dict is checked first (a wrong type raises TypeError, a
        non-finite number or a negative count ValueError, a missing entry :class:`~torchsched._validate.
        MissingStateKeyError`), and a load that fails anyway leaves the scheduler (and the schedulers and callable
        objects it holds) as it was."""
        owner = f"{type(self).__name__}.load_state_dict"
        check.state_mapping(owner, state_dict, self._required_state_keys)
        self._check_state(owner, state_dict)
        with restored_on_error(state_holders(self)):
            state = dict(state_dict)
            has_last = "_last_lr" in state
            last = state.pop("_last_lr", None)
            super().load_state_dict(state)
            if has_last:
                self._last_lr = last
            self._invalidate_program()

    def _check_state(self, owner: str, state: Mapping[str, Any]) -> None:
        """Raises for a state dict entry this class would misread (before anything is loaded)."""
        if "last_epoch" in state:
            check.scheduler_number(owner, "last_epoch", state["last_epoch"])
        if "_step_count" in state:
            check.scheduler_count(owner, "_step_count", state["_step_count"])
        if "_last_lr" in state and state["_last_lr"] is not None:
            check.scheduler_numbers(owner, "_last_lr", state["_last_lr"])

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
        self._last_lr_value = last
        self._invalidate_program()


class _Core(_LastLR):
    """The machinery shared by the classes whose rule runs in the core."""

    __slots__ = ("_needs_recompile", "_closed_stepper", "_lr_buffer_dtype", "_lr_views", "_unbound_lrs",
                 "_rule_in_core", "_c_step_ok", "_base_values")
    _needs_recompile: bool  # recompile before the next step
    _closed_stepper: Any     # the closed-form engine, built on first use
    _lr_buffer_dtype: Any   # the LR buffer's dtype, None for Python floats
    _lr_views: tuple[Tensor, ...]  # the LR tensors the host engine writes (bound with the buffer)
    _unbound_lrs: tuple[Tensor, ...]  # the groups' LR tensors when they could not be bound (the per-group path)
    _rule_in_core: bool     # get_lr is ours (a subclass overriding it runs torch's Python path)
    _c_step_ok: bool        # the C-level step may run this configuration
    _base_values: tuple[Any, ...] | None  # tensor base LRs as compiled, where torch may see them change
    cycle_momentum: bool    # CyclicLR / OneCycleLR (torch's attributes)
    use_beta1: bool

    _compiled_params: tuple[str, ...] = ("base_lrs",)  # attributes whose reassignment recompiles
    _hyperparameters: tuple[str, ...] = ()       # torch's numeric attributes, checked by _check_hyperparameters
    _hyperparameter_lists: tuple[str, ...] = ()  # the same, one number per group
    _required_state_keys: tuple[str, ...] = ("last_epoch", "base_lrs")
    _torch_twin: Any  # the torch class twinned (set for each subclass)
    _has_closed_form = False     # torch's class has _get_closed_form_lr
    _cycles_momentum = False     # the rule also cycles momentum / beta1
    _watches_group_keys = False  # the program compiles group keys (other than lr) that torch reads every step
    _reads_base_lrs = True       # torch's get_lr reads base_lrs (not only its closed form)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._torch_twin = _torch_class(cls)
        for name in cls._compiled_params:
            if not isinstance(cls.__dict__.get(name), _Live):
                setattr(cls, name, _Live(name))

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls, *args, **kwargs)
        self._needs_recompile = True
        self._closed_stepper = None
        self._lr_buffer_dtype = None
        self._lr_views = ()
        self._unbound_lrs = ()
        self._rule_in_core = True
        self._c_step_ok = False
        self._base_values = None
        return self

    # ---- the per-class parts
    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:  # pragma: no cover - abstract
        raise NotImplementedError

    def _compile_closed_form(self, groups: list[dict[str, Any]]) -> _Spec:  # pragma: no cover - abstract
        raise NotImplementedError

    def _rule_clock(self) -> Any:
        return self.last_epoch

    def _second_clock(self) -> float:
        return math.nan

    def _keeps_initial_lr(self, t: Any) -> bool:
        """True where torch's get_lr leaves the LR unchanged in the constructor's initial step."""
        return False

    def _keeps_lr_unflagged(self, t: Any) -> bool:
        """The same for a torch without the initial-step flag (_torch_compat.INITIAL_FLAG), whose get_lr tests
        last_epoch instead."""
        return False

    def _check_like_torch(self, t: Any) -> None:
        """Raises what torch's get_lr would raise at this step (configurations the core cannot mirror)."""

    def _check_closed_form_like_torch(self, t: Any) -> None:
        groups = self.optimizer.param_groups
        if len(self.base_lrs) != len(groups) and compat.STRICT_ZIPS:
            list(zip(groups, self.base_lrs, strict=True))  # torch's _update_lr raises this ValueError

    def _closed_form_now(self) -> bool:
        """True where torch's get_lr itself returns the closed form (not only step(epoch))."""
        return False

    def _device_program(self, spec: _Spec, groups: list[dict[str, Any]]) -> DeviceProgram | None:
        """(program, roots, scale, locate) for the CUDA engine, or None to keep the host engine. The default
        is the scheduler's own program on its own clock."""
        return _scheduler_program(spec)

    def _lr_types_like_torch(self, groups: list[dict[str, Any]], t: Any) -> list[Any]:
        """Per group, a value whose type (float, or a tensor's dtype and device) torch's get_lr returns: the
        group's LR for rules that scale it, the operands of the formula for the others."""
        return [g["lr"] for g in groups]

    # ---- the arguments: one check at construction, reassignment and load; none in the per-step path
    def _check_hyperparameters(self, state: Mapping[str, Any]) -> bool:
        """Checks the numeric hyperparameters in ``state`` (the instance's, or a state dict being loaded): each a
        number torch's arithmetic takes (else TypeError, torch's type for them) and finite (else ValueError: the
        choice documented in the package). True when one of them is a tensor (torch's arithmetic then returns
        tensors of its dtype) or a bool (which torch's tensor arithmetic refuses, with an error type that changed
        between releases): the steps then run torch's own code (see :meth:`_runs_torch_code`)."""
        owner = type(self).__name__
        if "base_lrs" in state:  # tensor LRs are the engines' business: only their values are checked here
            check.scheduler_numbers(owner, "base_lrs", state["base_lrs"])
        torch_typed = (Tensor, bool)
        tensor = False
        for i, group in enumerate(self.optimizer.param_groups):
            for key in self._group_hyperparameters():
                if key in group:
                    value = check.scheduler_number(owner, f"param_groups[{i}][{key!r}]", group[key])
                    tensor = isinstance(value, torch_typed) or tensor
        for name in self._hyperparameters:
            if name in state:
                tensor = isinstance(check.scheduler_number(owner, name, state[name]), torch_typed) or tensor
        for name in self._hyperparameter_lists:
            if name in state:
                values = check.scheduler_numbers(owner, name, state[name])
                tensor = any(isinstance(v, torch_typed) for v in values) or tensor
        return tensor

    def _group_hyperparameters(self) -> tuple[str, ...]:
        """The group keys (other than lr) torch's get_lr computes with."""
        return ()

    def _runs_torch_code(self) -> bool:
        """True where the steps run torch's own get_lr (exact, O(groups) in Python) rather than the core: no param
        groups (the core needs one), or what the class's hook says (a state the core does not model)."""
        groups = self.optimizer.param_groups
        return (not groups or compat.base_lrs_alias_groups(self.__dict__.get("base_lrs", ()), groups)
                or (not compat.STRICT_ZIPS and self._lengths_differ()))

    def _lengths_differ(self) -> bool:
        """A per-group list torch's get_lr reads of another length than the param groups (a group added since
        construction). The rules that only scale each group's LR read base_lrs in the closed form alone."""
        return self._reads_base_lrs and len(self.__dict__.get("base_lrs", ())) != len(self.optimizer.param_groups)

    def _follow_torch(self) -> None:
        """Hands the steps to torch's own code where the installed torch reads what the program cannot hold: on
        older torch, a base LR tensor that is a group's LR or was changed since it was compiled (shared with a
        scheduler whose state was loaded into this one's), and lists of other lengths than the groups (older torch
        zips them unchecked: the shorter one says how many groups step)."""
        if not self._rule_in_core or self._needs_recompile:
            return
        if not compat.CLONES_LRS:
            bases = self.__dict__.get("base_lrs", ())
            groups = self.optimizer.param_groups
            # (the same tensors as at the last step's check cannot have become base LRs)
            if ((not self._lrs_still_unbound(groups) and compat.base_lrs_alias_groups(bases, groups))
                    or (self._base_values is not None and compat.tensor_base_stamp(bases) != self._base_values)):
                self._invalidate_program()
                return
        if not compat.STRICT_ZIPS and self._lengths_differ():
            self._invalidate_program()

    def _check_state(self, owner: str, state: Mapping[str, Any]) -> None:
        super()._check_state(owner, state)
        check.scheduler_numbers(owner, "base_lrs", state["base_lrs"])  # checked here for every class
        if getattr(type(self).get_lr, "_runs_in_core", False):
            self._check_hyperparameters({**self.__dict__, **state})

    # ---- compile and bind
    def _invalidate_program(self) -> None:
        self._needs_recompile = True
        self._closed_stepper = None
        ts = self._stepper
        if ts is not None:
            ts.fast_ok = False

    def _settle_last_lr(self) -> None:
        """Builds a pending _last_lr from the engine before the engine or its binding is replaced."""
        ts = self._stepper
        if ts is not None and ts.fresh:
            ts.fresh = False
            self._last_lr_value = self._build_last_lr()

    def _recompile(self) -> None:
        _refuse_cpu_lrs_for_cuda_params(self.optimizer.param_groups)
        in_core = bool(getattr(type(self).get_lr, "_runs_in_core", False))
        if in_core and (self._check_hyperparameters(self.__dict__) or self._runs_torch_code()):
            in_core = False
        self._settle_last_lr()
        self._rule_in_core = in_core
        self._needs_recompile = False
        self._closed_stepper = None
        self._base_values = None
        if not self._rule_in_core:
            self._stepper = None
            self._c_step_ok = False
            return
        groups = self.optimizer.param_groups
        spec = self._compile_rule(groups)
        ts = _make_stepper(spec, _params_device(self.optimizer), groups, self)
        _name_engine(ts, self)
        self._stepper = ts
        self._c_step_ok = spec.fast
        if type(ts) is _CudaStepper:
            self._lr_buffer_dtype = None
            if self._has_closed_form:  # built now: base_lrs are device tensors, read once here
                self._closed_stepper = _name_engine(_make_stepper(self._compile_closed_form(groups), None), self)
            return
        self._bind_lr_storage(groups)
        self._base_values = compat.tensor_base_stamp(self.base_lrs)
        if self._base_values is not None and compat.foreign_base_lrs(self.base_lrs, groups):
            self._c_step_ok = False  # each step compares them (_follow_torch)
        if self._has_closed_form and any(isinstance(b, Tensor) for b in self.base_lrs):
            # tensor base LRs are read now, not at the first closed-form step (a milestone of SequentialLR,
            # deep in training): a tensor read is a sync on a GPU
            self._closed_stepper = _name_engine(
                _make_stepper(self._compile_closed_form(groups), _params_device(self.optimizer)), self)

    def _bind_lr_storage(self, groups: list[dict[str, Any]]) -> None:
        """Tells the host engine where the LRs live: the group dicts (floats), one CPU buffer it writes in place
        (tensors), or nowhere it can write (the per-group path)."""
        self._settle_last_lr()
        ts = self._stepper
        lrs = [g["lr"] for g in groups]
        self._lr_buffer_dtype = None
        self._unbound_lrs = ()
        if all(type(v) is float or type(v) is int or isinstance(v, float) for v in lrs):
            ts.bind_floats()
        elif lrs and all(isinstance(v, Tensor) for v in lrs):
            # where torch's lists alias the groups' tensors (_torch_compat.CLONES_LRS), their identity shows
            # (initial_lr after SequentialLR, get_last_lr()): the LRs stay the user's tensors, filled in place
            binding = _tensor_binding(groups, lrs, replace=compat.CLONES_LRS)
            if binding is None:
                ts.unbind()
                self._unbound_lrs = tuple(lrs)
            else:
                views, ptr, code, dtype = binding
                ts.bind_buffer(views, ptr, code)
                self._lr_buffer_dtype = dtype
                self._lr_views = views
        else:
            ts.unbind()

    def _build_last_lr(self) -> list[Any]:
        if self._lr_buffer_dtype is None:
            return self._stepper.lrs()
        if not compat.CLONES_LRS:  # torch's _last_lr: the tensors the step wrote (since replaced in a group or not)
            return list(self._lr_views)
        return list(torch.tensor(self._stepper.lrs(), dtype=self._lr_buffer_dtype).unbind(0))

    def _group_keys_edited(self, groups: list[dict[str, Any]]) -> bool:
        """A group key the program was compiled from was edited since: recompile, as torch reads it each step."""
        return self._watches_group_keys and not self._stepper.watched_same(groups)

    def _program_outdated(self, groups: list[dict[str, Any]]) -> bool:
        """The program no longer describes the groups: their number changed, or a compiled-in key did."""
        return len(groups) != self._stepper.groups or self._group_keys_edited(groups)

    def _lrs_still_unbound(self, groups: list[dict[str, Any]]) -> bool:
        """The groups hold the LR tensors that could not be bound at the last try (none put in since)."""
        held = self._unbound_lrs
        if not held or len(held) != len(groups):
            return False
        try:
            return all(map(operator.is_, map(_LR, groups), held))
        except KeyError:
            return False

    def _store_in_core(self, groups: list[dict[str, Any]], t: Any, u: float) -> bool:
        """One in-place core call for every group; False when the groups need the per-group path."""
        if self._stepper.try_step(groups, t, u):
            return True
        if self._lrs_still_unbound(groups):
            return False  # the same tensors as at the last try: they would not bind now either
        _refuse_cpu_lrs_for_cuda_params(groups)  # an LR tensor may have been put in
        self._bind_lr_storage(groups)
        return bool(self._stepper.try_step(groups, t, u))

    # ---- torch's step() and _update_lr(), the slow path of the C-level step
    def _initial_step(self) -> None:
        """Initialize step counts and perform the initial step (torch's, with the core)."""
        _compile.own_step_wrapper(self.optimizer)  # torch's wrapper of optimizer.step graph-breaks when compiled
        self._step_count = 0
        self._needs_recompile = True
        if not compat.INITIAL_FLAG:  # torch keeps no flag (nor a state_dict key): get_lr tests last_epoch
            self.step()
            self._get_lr_called_within_step = False
            return
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False
        self._get_lr_called_within_step = False

    def _python_step(self, epoch: Any = None) -> None:
        if epoch is not None:
            check.scheduler_epoch(f"{type(self).__name__}.step", epoch)
        if self._needs_recompile:  # raises for a bad argument before anything moves
            self._recompile()
        if self._step_count == 1:
            if not compat.step_wrapped(self.optimizer.step):
                compat.warn_like_torch(compat.OVERRIDDEN, _OVERRIDDEN_STEP_WARNING, stacklevel=2)
            elif not compat.optimizer_stepped(self.optimizer):
                compat.warn_like_torch(compat.CALL_ORDER, _CALL_ORDER_WARNING, stacklevel=2)
        if epoch is not None:
            compat.warn_like_torch(compat.EPOCH, EPOCH_DEPRECATION_WARNING, stacklevel=2)
        counters = self._step_count, self.last_epoch
        self._step_count += 1
        try:
            self._update_lr(epoch)
        except _core.NonFiniteLRError:  # a refused step moves no counter (torch's own errors do, as in torch)
            self._step_count, self.last_epoch = counters
            raise

    def _update_lr(self, epoch: Any = None) -> None:
        self._follow_torch()
        if self._needs_recompile:
            self._recompile()
        if not self._rule_in_core:  # a subclass overrides get_lr: torch's Python path
            compat.torch_update_lr(self, epoch)
            return
        self._write_step(decide_step(self, epoch))

    def _write_step(self, decision: StepDecision) -> None:
        """Writes a step's decision: on the CUDA engine's device tensors, or through the host engine."""
        if decision.kind is StepKind.REBUILD:
            self._recompile()
            if not self._rule_in_core:  # the edit needs torch's own arithmetic (a tensor put in a group key)
                self._store_torch_lrs()
                return
        ts = self._stepper
        if type(ts) is _CudaStepper and _write_on_device(self, ts, decision):
            return
        groups = self.optimizer.param_groups
        kind = decision.kind
        if kind is StepKind.CLOSED_FORM:
            _store(groups, decision.values)  # type: ignore[arg-type]
        elif kind is not StepKind.KEEP:
            t, u = decision.t, decision.u
            if self._store_in_core(groups, t, u):
                self._stepper.fast_ok = self._c_step_ok
                return
            # the per-group path; a second clock (u) replaces the previous LR as the rule's input
            prevs = [float(g["lr"]) for g in groups] if math.isnan(u) else None
            values = self._stepper.compute(t, prevs, u)
            moms = self._stepper.compute_momentum(t, u) if self._cycles_momentum and self.cycle_momentum else None
            _store(groups, values)
            if moms is not None:
                _store_momentum(groups, moms, self.use_beta1)
        self._last_lr = _group_lrs(groups)
        self._stepper.fast_ok = self._c_step_ok

    def _torch_get_lr(self) -> list[Any]:
        """torch's get_lr, without its warning (given already, where it is due)."""
        within = self._get_lr_called_within_step
        self._get_lr_called_within_step = True
        try:
            return self._torch_twin.get_lr(self)
        finally:
            self._get_lr_called_within_step = within

    def _store_torch_lrs(self) -> None:
        """torch's get_lr at the current clock, stored as torch stores it."""
        groups = self.optimizer.param_groups
        _store(groups, self._torch_get_lr())
        self._last_lr = _group_lrs(groups)

    def _closed_form_values(self, t: Any) -> list[float]:
        self._check_closed_form_like_torch(t)
        if self._closed_stepper is None:
            self._closed_stepper = _name_engine(_make_stepper(self._compile_closed_form(self.optimizer.param_groups),
                                                              _params_device(self.optimizer)), self)
        values = list(self._closed_stepper.compute(t))
        groups = self.optimizer.param_groups
        n = min(len(self.base_lrs), len(groups))
        if n != len(groups) or len(values) != n:  # older torch: the groups past base_lrs keep their LRs
            values = values[:n] + [float(g["lr"]) for g in groups[n:]]
        return values

    # ---- torch's public computing methods, core-backed
    def _get_lr_in_core(self) -> bool:
        """get_lr's preamble: recompiles when due and warns as torch does outside ``step()``; False when the
        rule runs torch's own Python code instead (which warns by itself)."""
        self._follow_torch()
        if self._needs_recompile:
            self._recompile()
        if not self._rule_in_core:
            return False
        if not self._get_lr_called_within_step:
            warnings.warn(_GET_LR_WARNING, UserWarning, stacklevel=3)
        return True

    def get_lr(self) -> list[Any]:
        """The LRs the current ``last_epoch`` gives (computed by the core; use :meth:`get_last_lr` for the
        latest ones). Warns as torch does outside ``step()``."""
        if not self._get_lr_in_core():
            return self._torch_twin.get_lr(self)
        groups = self.optimizer.param_groups
        decision = decide_lrs(self, False)
        if decision.kind is StepKind.CLOSED_FORM:
            return [_like(g["lr"], v) for g, v in zip(groups, decision.values, strict=True)]  # type: ignore[arg-type]
        if decision.kind is StepKind.KEEP:
            return _group_lrs(groups)
        if decision.kind is StepKind.REBUILD:
            self._recompile()
            if not self._rule_in_core:
                return self._torch_get_lr()
        t = decision.t
        values = self._stepper.compute(t, [float(g["lr"]) for g in groups])
        if self._cycles_momentum and self.cycle_momentum:
            _store_momentum(groups, self._stepper.compute_momentum(t), self.use_beta1)
        return [_like(r, v) for r, v in zip(self._lr_types_like_torch(groups, t), values, strict=True)]

    get_lr._runs_in_core = True  # type: ignore[attr-defined]


# C-level step(): torch's counters and one core call; the rare cases go to _Core._python_step.
_Core.step = _core.scheduler_step_method(_Core)  # type: ignore[method-assign]


class _ClosedForm:
    """Mixin for the classes that have torch's ``_get_closed_form_lr`` (used by ``step(epoch)``)."""

    __slots__ = ()
    _has_closed_form = True

    def _get_closed_form_lr(self) -> list[Any]:
        """torch's closed form at ``last_epoch`` from ``base_lrs``, computed by the core."""
        if self._needs_recompile:  # type: ignore[attr-defined]
            self._recompile()  # type: ignore[attr-defined]
        if not self._rule_in_core:  # type: ignore[attr-defined]
            return self._torch_twin._get_closed_form_lr(self)  # type: ignore[attr-defined]
        values = self._closed_form_values(self.last_epoch)  # type: ignore[attr-defined]
        return [_like(b, v) for b, v in zip(self.base_lrs, values)]  # type: ignore[attr-defined]
