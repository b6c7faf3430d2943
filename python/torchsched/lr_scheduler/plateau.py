"""ReduceLROnPlateau: the plateau rule and every group's reduction in one core call for a float metric, or as
device operations for a tensor metric with tensor LRs (no host sync)."""

from __future__ import annotations

import functools
import math
import operator
import re
import struct
import warnings
import weakref
from typing import Any, Sequence

import torch
from torch import Tensor
from torch.optim import lr_scheduler as _tl

from .. import _core
from .. import _validate as check
from .. import _signals
from .. import _torch_compat as compat
from .._signals import F64, PlateauConfig, PlateauState, plateau_reduce, plateau_update
from ._base import EPOCH_DEPRECATION_WARNING, LRScheduler, _refuse_cpu_lrs_for_cuda_params
from ._state import restored_on_error

# the state entries the plateau rule computes with: finite numbers (best starts at +-inf), counts (patience and
# cooldown as torch takes them: an infinite or NaN one has its meaning in torch's comparisons, which run then)
_FINITE_STATE = ("factor", "threshold", "eps", "last_epoch")
_LIMIT_STATE = ("patience", "cooldown")
_COUNT_STATE = ("cooldown_counter", "num_bad_epochs")

# the __dict__ entry holding the device state; never part of state_dict() or a pickle
_DEVICE = "_plateau_device"
_INT64_MAX, _INT64_MIN = 2**63 - 1, -(2**63)


def _on_device(values: list[Any], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A 1-d tensor of Python numbers on ``device`` made by fills there: a copy from host memory to an
    accelerator would wait for it."""
    if device.type == "cpu":
        return torch.tensor(values, dtype=dtype)
    if all(v == values[0] for v in values):
        return torch.full((len(values),), values[0], dtype=dtype, device=device)
    return torch.stack([torch.full((), v, dtype=dtype, device=device) for v in values])


class _Layout:
    """The param groups' LR tensors as one device step sees them, rebuilt when a group's ``'lr'`` object
    changes. Groups whose LRs share memory (an optimizer built with ``lr=tensor`` gives every group the same
    tensor) are reduced once per group, in group order, as torch's loop over the groups reduces them."""

    __slots__ = ("lrs", "views", "unique_of", "dtypes", "shapes", "rounds", "narrow", "buf", "buf_views")

    def __init__(self, lrs: list[Tensor], device: torch.device) -> None:
        self.lrs = lrs  # the objects, compared by identity at each step
        slot: dict[int, int] = {}
        self.views: list[Tensor] = []  # one 0-d view per distinct LR memory: what is read and written
        self.unique_of: list[int] = []
        occurrences: list[list[tuple[int, int]]] = []  # round k: (distinct LR, group) of each k-th sharer
        seen: list[int] = []  # groups seen so far per distinct LR
        for g, lr in enumerate(lrs):
            ptr = lr.data_ptr()
            u = slot.get(ptr)
            if u is None:
                u = slot[ptr] = len(self.views)
                self.views.append(lr if lr.dim() == 0 else lr.view(()))
                seen.append(0)
            k = seen[u]
            seen[u] += 1
            self.unique_of.append(u)
            if k == len(occurrences):
                occurrences.append([])
            occurrences[k].append((u, g))
        self.dtypes = [lr.dtype for lr in lrs]
        self.shapes = [lr.shape for lr in lrs]
        self.rounds: list[tuple[Tensor, Tensor]] | None = None
        # between rounds, each shared LR holds its own dtype's value (torch stores it before the next group reads
        # it): the dtypes narrower than float64, each with the mask of its distinct LRs (None: all of them)
        self.narrow: list[tuple[torch.dtype, Tensor | None]] = []
        if len(occurrences) > 1:
            self.rounds = [(_on_device([u for u, _ in r], torch.int64, device),
                            _on_device([g for _, g in r], torch.int64, device)) for r in occurrences]
            kinds = [v.dtype for v in self.views]
            for dtype in sorted({k for k in kinds if k != F64}, key=str):
                mask = None if len(set(kinds)) == 1 else _on_device([k == dtype for k in kinds], torch.bool, device)
                self.narrow.append((dtype, mask))
        self.buf = torch.empty(len(self.views), dtype=F64, device=device)
        self.buf_views = list(self.buf.unbind(0))

    def matches(self, lrs: list[Tensor]) -> bool:
        return len(lrs) == len(self.lrs) and all(map(operator.is_, lrs, self.lrs))

    def last_lrs(self, new: Tensor) -> list[Tensor]:
        """torch's ``_last_lr`` (a clone of each group's LR tensor) from the LRs a step wrote (float64 [U])."""
        per_dtype: dict[torch.dtype, tuple[Tensor, ...]] = {}
        parts = []
        for u, dtype, shape in zip(self.unique_of, self.dtypes, self.shapes):
            values = per_dtype.get(dtype)
            if values is None:
                values = per_dtype[dtype] = new.to(dtype).unbind(0)
            v = values[u]
            parts.append(v if len(shape) == 0 else v.view(shape))
        return compat.clone_all(parts)  # independent tensors, as torch's clones are


class _DeviceRule:
    """The plateau state on the metric's device, the config and ``min_lrs`` tensor it was built for, the
    LR layout, and the LRs of the last step until someone reads ``_last_lr``."""

    __slots__ = ("device", "state", "key", "config", "min_lrs", "layout", "pending")

    def __init__(self, device: torch.device, state: PlateauState) -> None:
        self.device = device
        self.state = state
        self.key: tuple[Any, ...] | None = None
        self.config: PlateauConfig | None = None
        self.min_lrs: Tensor | None = None
        self.layout: _Layout | None = None
        self.pending: tuple[Tensor, _Layout] | None = None

    def read(self) -> tuple[float, int, int]:
        """best, num_bad_epochs, cooldown_counter on the host, in one read (best's bits travel as an int64)."""
        s = self.state
        bits, bad, cooling = torch.stack((s.best.view(torch.int64), s.num_bad_epochs, s.cooldown_counter)).tolist()
        return struct.unpack("<d", struct.pack("<q", bits))[0], int(bad), int(cooling)


def _count(value: Any, rounding: Any) -> int:
    """A counter from ``__dict__`` as the core reads it: a fractional one floored or ceiled, clamped to int64."""
    if isinstance(value, Tensor):
        value = value.item()
    if not isinstance(value, int):
        v = float(value)
        if math.isnan(v):
            raise ValueError("a ReduceLROnPlateau counter is NaN")
        value = int(rounding(v)) if math.isfinite(v) else (_INT64_MAX if v > 0 else _INT64_MIN)
    return max(_INT64_MIN, min(_INT64_MAX, value))


class _TorchSteps:
    """In ``__dict__[_DEVICE]`` in place of a device rule (so the C-level step hands every step to
    ``_plateau_python_step``): the steps run torch's own code, for counters the core holds as int64 that are not
    ints here (a fractional, infinite or NaN cooldown, a NaN patience, a counter loaded as a float), whose values
    and types only torch's arithmetic gives, and on a torch without ``default_min_lr`` for ``min_lrs`` of another
    length than the groups (its reduction indexes them group by group: an IndexError past the end)."""

    __slots__ = ()


_TORCH_STEPS = _TorchSteps()
_COUNTS = ("cooldown", "cooldown_counter", "num_bad_epochs")


def _rule(d: dict[str, Any]) -> Any:
    """The device rule in ``d``, or None (none, or torch's own steps)."""
    rule = d.get(_DEVICE)
    return rule if type(rule) is _DeviceRule else None


def _core_takes(d: dict[str, Any]) -> bool:
    patience = d.get("patience", 0)
    if not all(type(d.get(k, 0)) is int for k in _COUNTS) or (isinstance(patience, float) and math.isnan(patience)):
        return False
    opt = d.get("optimizer")
    return compat.PLATEAU_DEFAULT_MIN_LR or opt is None or len(d.get("min_lrs", ())) == len(opt.param_groups)


def _watch_added_groups(optimizer: Any, scheduler: Any) -> None:
    """On a torch without ``default_min_lr``: after ``optimizer.add_param_group`` the scheduler chooses its steps
    again (weak references both ways: no cycle keeps the optimizer alive)."""
    opt_ref, sched_ref = weakref.ref(optimizer), weakref.ref(scheduler)
    previous = optimizer.__dict__.get("add_param_group")  # another scheduler's hook

    def add_param_group(param_group: dict[str, Any]) -> None:
        opt = opt_ref()
        if previous is not None:
            previous(param_group)
        elif opt is not None:
            type(opt).add_param_group(opt, param_group)
        sched = sched_ref()
        if sched is not None:
            sched._choose_steps()

    optimizer.add_param_group = add_param_group


def _device_counter(name: str, read: Any) -> property:
    """``best``, ``num_bad_epochs``, ``cooldown_counter``: the device state's value while there is one (a read
    is a host sync), else the instance ``__dict__``'s, where the core's float path keeps them."""

    def get(self: Any) -> Any:
        rule = _rule(self.__dict__)
        if rule is not None:
            return read(getattr(rule.state, name))
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None

    def set(self: Any, value: Any) -> None:
        self._to_host()
        self.__dict__[name] = value

    return property(get, set)


class ReduceLROnPlateau(LRScheduler, _tl.ReduceLROnPlateau):
    """torch's ``ReduceLROnPlateau``, in two ways depending on what :meth:`step` is fed.

    A Python number (or a numpy scalar): ``float(metrics)`` as in torch, then the plateau rule (best, bad
    epochs, cooldown) and every group's reduction in one core call, on the scheduler's own attributes.

    A one-element real tensor while every param group's ``'lr'`` is a floating-point tensor on the metric's
    device (device mode): no host sync. The rule's state moves into 0-d tensors on that device, each step
    updates it there (a NaN metric is a bad epoch, as in torch) and writes every group's LR tensor in place,
    so the step's decisions never reach the host; ``last_epoch`` stays a Python int. Groups that share one
    LR tensor are reduced once per group, in group order, as torch does.
    Reading ``best``, ``num_bad_epochs``, ``cooldown_counter``, ``in_cooldown``, assigning one of them,
    ``state_dict()``, ``load_state_dict()`` and pickling read the device state back (a sync); ``get_last_lr()``
    does not (its clones of the LR tensors are made when it is read).

    A tensor metric with any Python float LR: no decision made on the device could reach a float LR without a
    sync, so this does exactly what torch does, ``float(metrics)`` (a host sync for a GPU tensor) and the core
    call. So do a non-floating LR tensor or one that requires grad, and ``min_lrs`` of another length than the
    param groups (torch replaces or refuses it only when a reduction is due). A CPU metric with LR tensors
    elsewhere takes that path too (reading a CPU tensor waits for no device); a metric on an accelerator with an
    LR tensor on another device raises ValueError.

    ``patience`` and ``cooldown`` are counts: a fractional ``patience`` acts as its floor (what torch's
    comparison amounts to). A ``cooldown`` or counter that is not an int (fractional, infinite, NaN, loaded as a
    float) and a NaN ``patience`` make the steps torch's own code: its counters are floats then.
    """

    best = _device_counter("best", float)
    num_bad_epochs = _device_counter("num_bad_epochs", int)
    cooldown_counter = _device_counter("cooldown_counter", int)

    def __init__(self, optimizer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(optimizer, *args, **kwargs)
        _refuse_cpu_lrs_for_cuda_params(self.optimizer.param_groups)
        if not compat.PLATEAU_DEFAULT_MIN_LR:
            _watch_added_groups(self.optimizer, self)
        self._choose_steps()

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in _COUNTS or name == "patience" or name == "min_lrs":
            self._choose_steps()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._choose_steps()

    def _choose_steps(self) -> None:
        """The core's steps where it holds what they compute with, torch's own otherwise."""
        d = self.__dict__
        if _core_takes(d):
            if d.get(_DEVICE) is _TORCH_STEPS:
                del d[_DEVICE]
        elif d.get(_DEVICE) is not _TORCH_STEPS:
            self._to_host()
            d[_DEVICE] = _TORCH_STEPS

    # ---- _last_lr: built from the step's LRs when read, in device mode
    @property
    def _last_lr(self) -> list[Any]:
        d = self.__dict__
        rule = _rule(d)
        if rule is not None and rule.pending is not None:
            new, layout = rule.pending
            rule.pending = None
            d["_last_lr"] = layout.last_lrs(new)
        try:
            return d["_last_lr"]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute '_last_lr'") from None

    @_last_lr.setter
    def _last_lr(self, value: list[Any]) -> None:
        rule = _rule(self.__dict__)
        if rule is not None:
            rule.pending = None
        self.__dict__["_last_lr"] = value

    # ---- state
    def _to_host(self) -> None:
        """Leaves device mode: the device state's values (and ``_last_lr``) back into ``__dict__``."""
        d = self.__dict__
        rule = _rule(d)
        if rule is None:
            return
        last = self._last_lr
        d["best"], d["num_bad_epochs"], d["cooldown_counter"] = rule.read()
        d["_last_lr"] = last
        del d[_DEVICE]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        rule = state.pop(_DEVICE, None)
        if type(rule) is _DeviceRule:
            state["_last_lr"] = self._last_lr
            state["best"], state["num_bad_epochs"], state["cooldown_counter"] = rule.read()
        return state

    def state_dict(self) -> dict[str, Any]:
        """torch's ``state_dict``: Python numbers for ``best`` and the counters (read from the device in device
        mode)."""
        return {key: value for key, value in self.__getstate__().items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``, atomic: the state dict is checked first, and a load that fails anyway
        (torch's check of ``mode`` and ``threshold_mode``) leaves the scheduler as it was. What torch's own state
        dicts hold is taken: float counters, an infinite or NaN ``patience`` or ``cooldown`` (torch's steps then)."""
        owner = "ReduceLROnPlateau.load_state_dict"
        check.state_mapping(owner, state_dict, ())
        for name in _FINITE_STATE:
            if name in state_dict:
                check.scheduler_number(owner, name, state_dict[name])
        for name in _LIMIT_STATE:
            if name in state_dict and not isinstance(state_dict[name], float):
                check.scheduler_number(owner, name, state_dict[name])
        for name in _COUNT_STATE:
            if name in state_dict and not isinstance(state_dict[name], float):  # a float: torch's own steps
                check.scheduler_count(owner, name, state_dict[name])
        if "best" in state_dict and not isinstance(state_dict["best"], Tensor):
            best = state_dict["best"]
            check.scheduler_number(owner, "best", 0.0 if best in (math.inf, -math.inf) else best)
        if "min_lrs" in state_dict:
            check.scheduler_numbers(owner, "min_lrs", state_dict["min_lrs"])
        self._to_host()  # a state dict without some entries keeps the current ones, as in torch
        with restored_on_error([self]):
            super().load_state_dict({k: v for k, v in state_dict.items() if k != _DEVICE})
            self._choose_steps()

    # ---- step
    def _plateau_python_step(self, metrics: Any, epoch: Any = None) -> None:
        """step() when the C-level step does not take it: a tensor metric, an epoch, device mode, counters that
        only torch's own code computes with."""
        d = self.__dict__
        if d.get(_DEVICE) is _TORCH_STEPS:
            if epoch is not None:  # torch's warning, naming what torch names (not this line), after its float()
                float(metrics)
                compat.warn_like_torch(compat.PLATEAU_EPOCH, EPOCH_DEPRECATION_WARNING, stacklevel=2)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", re.escape(EPOCH_DEPRECATION_WARNING), UserWarning)
                    _tl.ReduceLROnPlateau.step(self, metrics, epoch)
                return
            _tl.ReduceLROnPlateau.step(self, metrics)
            return
        groups = self.optimizer.param_groups
        layout = self._device_layout(metrics, groups) if isinstance(metrics, Tensor) else None
        if layout is None:
            if _DEVICE in d:
                self._to_host()
            current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            compat.warn_like_torch(compat.PLATEAU_EPOCH, EPOCH_DEPRECATION_WARNING, stacklevel=2)
        self.last_epoch = epoch
        if layout is None:
            _core.plateau_step(d, groups, current, Tensor, compat.PLATEAU_FILLS_TENSOR_LRS, compat.CLONES_LRS)  # sets _last_lr; no device state: nothing pending
        else:
            self._device_step(metrics, layout)

    def _device_layout(self, metric: Tensor, groups: Sequence[dict[str, Any]]) -> _Layout | None:
        """The LR layout when this step runs on the metric's device, None for the float path."""
        if metric.numel() != 1 or metric.is_complex() or metric.dtype == torch.bool:
            return None  # float() gives torch's value or torch's error
        if not compat.PLATEAU_FILLS_TENSOR_LRS:
            return None  # this torch replaces a reduced tensor LR by a float: torch's path, torch's result
        if metric.device.type == "cpu" and _signals.CPU_FAST_PATH:
            return None  # reading a CPU tensor waits for nothing: the core's float path, torch's speed
        if len(self.min_lrs) != len(groups):
            return None  # torch replaces or refuses min_lrs only when a reduction is due
        lrs = [group["lr"] for group in groups]
        rule = _rule(self.__dict__)
        if rule is not None and rule.layout is not None and rule.layout.matches(lrs):
            if rule.device == metric.device:
                return rule.layout
        if not all(isinstance(lr, Tensor) and lr.is_floating_point() and lr.numel() == 1 and not lr.requires_grad
                   for lr in lrs):
            return None  # torch's path: its errors, when it has any, come when it has something to write
        device = metric.device
        other = next((lr.device for lr in lrs if lr.device != device), None)
        if other is not None:
            if device.type == "cpu":
                return None
            raise ValueError(f"ReduceLROnPlateau.step: the metric is on {device}, an LR tensor on {other}: "
                             f"reduce the metric on {other}, or keep the LRs on {device} (reading the metric or "
                             "copying it between devices would wait for it)")
        layout = _Layout(lrs, device)
        if rule is not None and rule.device != device:
            self._to_host()
            rule = None
        if rule is None:
            rule = self._device_rule(device)
        rule.layout = layout
        return layout

    def _device_rule(self, device: torch.device) -> _DeviceRule:
        """The device state from the values in ``__dict__`` (fills on the device: no sync)."""
        d = self.__dict__
        best = d["best"]
        state = PlateauState(self._plateau_config(), device)
        if isinstance(best, Tensor):
            state.best.copy_(best.detach().reshape(()))
        else:
            state.best.fill_(float(best))
        state.num_bad_epochs.fill_(_count(d["num_bad_epochs"], math.floor))
        state.cooldown_counter.fill_(_count(d["cooldown_counter"], math.ceil))
        rule = _DeviceRule(device, state)
        d[_DEVICE] = rule
        return rule

    def _plateau_config(self) -> PlateauConfig:
        return PlateauConfig.of(self.mode, self.factor, self.patience, self.threshold, self.threshold_mode,
                                self.cooldown, self.eps)

    def _device_config(self, rule: _DeviceRule) -> tuple[PlateauConfig, Tensor]:
        """The config and ``min_lrs`` tensor for this step: the cached ones unless an attribute they come from was
        reassigned (comparing the Python values costs less than a device op)."""
        min_lrs = self.min_lrs
        key = (self.mode, self.threshold_mode, self.factor, self.threshold, self.patience, self.cooldown,
               self.eps, tuple(min_lrs))
        if key != rule.key or rule.config is None or rule.min_lrs is None:
            rule.config = self._plateau_config()
            rule.min_lrs = _on_device([float(m) for m in min_lrs], F64, rule.device)
            rule.key = key
        return rule.config, rule.min_lrs

    def _device_step(self, metric: Tensor, layout: _Layout) -> None:
        rule: _DeviceRule = self.__dict__[_DEVICE]
        config, min_lrs = self._device_config(rule)
        due = plateau_update(config, rule.state, metric.detach().reshape(()).to(F64), ignore_non_finite=False)
        views = layout.views
        old = torch.stack(views).to(F64)
        if layout.rounds is None:
            new = plateau_reduce(config, due, old, min_lrs)
        else:  # shared LR tensors: the k-th group sharing one reduces what the (k-1)-th left
            new = old
            for u, g in layout.rounds:
                reduced = plateau_reduce(config, due, new.index_select(0, u), min_lrs.index_select(0, g))
                new = new.index_copy(0, u, reduced)
                for dtype, mask in layout.narrow:
                    stored = new.to(dtype).to(F64)
                    new = stored if mask is None else torch.where(mask, stored, new)
        if len(views) == 1:
            views[0].copy_(new[0])
        else:
            layout.buf.copy_(new)
            compat.copy_all(views, layout.buf_views)
        rule.pending = (new, layout)  # `new` is this step's own tensor: nothing writes it again


# torch's signature and docstring for inspect/help (applied here: mypy rejects a decorated __init__)
functools.update_wrapper(ReduceLROnPlateau.__init__, _tl.ReduceLROnPlateau.__init__)
# the float path in C: a Python number or (CPU fast path) a CPU tensor, no epoch, no device state; everything
# else calls _plateau_python_step
ReduceLROnPlateau.step = _core.plateau_step_method(  # type: ignore[method-assign]
    ReduceLROnPlateau, Tensor, _signals, compat.PLATEAU_FILLS_TENSOR_LRS, compat.CLONES_LRS)
