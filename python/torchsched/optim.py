"""``wrap(optimizer, schedule)``: an optimizer that advances its own learning-rate schedule.

The wrapper owns an engine that holds the step counter and one (base LR x multiplier, schedule) per param
group. Each successful :meth:`ScheduledOptimizer.step` runs the wrapped optimizer's step, then advances the
schedule for every group in **one** call into the compiled core:

- **tensor LRs**: a group gets its own 0-d tensor, a view into one engine buffer that the core writes in
  place, when the optimizer reads its LR from a tensor on the params' device (``fused=True``
  Adam/AdamW/SGD/Adagrad, or ``capturable=True`` Adam/AdamW), when the group's ``'lr'`` already is a tensor
  (the user's choice, kept on every optimizer that accepts one: all of ``torch.optim`` except Adam/AdamW with
  ``foreach=True`` and not capturable, which torch refuses), and on every accepting group with
  ``wrap(..., tensor_lrs=True)``. The buffer lives on the params' device for fused/capturable groups and on
  the CPU otherwise (a non-fused optimizer reads the LR with ``.item()``: from CPU memory, that waits for
  no device). No two groups share a tensor (torch's default ``lr=`` tensor, shared by every group that does
  not set its own, is replaced). An LR that stays a tensor is what ``torch.compile`` wants: a new float
  each step would be a new guard value.
- **float LRs**: otherwise the core stores a Python float into every group's ``'lr'``.

**One owner for the LRs.** The wrapper is the one writer of its groups' ``'lr'``; a second schedule on the
same groups would silently win (torch schedulers write after the optimizer step). For frameworks that want an
``(optimizer, scheduler)`` pair, :meth:`ScheduledOptimizer.scheduler` returns a
``torch.optim.lr_scheduler.LRScheduler`` view whose ``step()`` changes nothing. Anything else is detected:

- a torch LR scheduler (any ``LRScheduler`` subclass, the drop-ins included) built on the wrapper raises
  :class:`ScheduleConflictError` as it is built (torch patches the optimizer's ``step``, which the wrapper
  sees); one built on the wrapped optimizer, or on another wrapper around the wrapper (Accelerate's), raises
  it at the next ``step()``, by the ``'initial_lr'`` key torch adds to every group. An error, not a warning:
  a second schedule means the run trains on an LR sequence nobody asked for (the HF Trainer's own
  ``LambdaLR`` trains a warmup spec at LR 0), and it is a wiring mistake with one fix.
- any other write into a group's ``'lr'`` (a hand edit, a non-torch scheduler such as timm's): the wrapper
  compares what the groups hold with what it stored (the same tensor object, or the same float; on the CPU
  also the LR buffer's values) at the first two steps after wrap (and after every load or group change),
  then every :data:`CHECK_EVERY` steps, always before the optimizer's update; it warns once per wrapper with
  :class:`ScheduleConflictWarning` and puts the schedule's LRs back. A scheduler that writes at construction
  or after each step is thus caught before any update uses its LR. A warning here: the write may be
  deliberate and one-off, and the schedule is restored either way. Between checks a value written by hand
  can be used for a step; do not rely on it.

The checks ride on the step's existing proof window (:class:`LrGuard` tickets), so a step pays nothing for
them but one check per :data:`CHECK_EVERY` steps (a loop over the groups).

**torch.compile.** Where dynamo traces :meth:`ScheduledOptimizer.step`, the step is the wrapped optimizer's
step between two ``torchsched::wrap_step`` ops (the checks and the finite-LR proof before the update, the
advance after it; see :mod:`torchsched._compile`): the wrapper adds no graph break and no recompile, and a
refused step still raises before the update. Tensor LRs keep the optimizer's own compiled step from recompiling.

A step that raises does not advance. A step that a :class:`torch.amp.GradScaler` skips does not advance
either: the scaler does not call ``step()`` for ordinary optimizers, and for the fused ones it sets
``found_inf`` on the optimizer, which the wrapper reads before advancing.

**Signal-driven factors** (:func:`torchsched.schedules.plateau`, :func:`torchsched.schedules.average_gradient`)
keep their state in tensors on the params' device and update it with device work only:
:meth:`ScheduledOptimizer.observe` feeds a metric (a 0-d tensor or a float) to the plateau rules, and
``step()`` reads the gradients for the average-gradient rule. A Python-float LR cannot follow a decision made
on a GPU without a host sync, so there the sync-free path is tensor LRs filled in place (fused or capturable
optimizers), and wrap() refuses float LRs on CUDA params for these rules. On the CPU every LR follows at once.

LR of group g after k steps: ``group['lr'] (at wrap time) * multiplier_g * schedule_g(k)``, so after
:func:`wrap` the groups hold ``schedule(0)`` (the torch convention). A group's multiplier comes from the
``multipliers=`` option, else from its ``'lr_multiplier'`` key (what :func:`torchsched.param_groups` sets),
else 1; then, unless ``lr_scale=False``, it is multiplied by the group's ``'lr_scale'`` key when there is one
(timm's layer-decay key: timm's schedulers store ``scheduled_lr * group['lr_scale']``).

Invariants, each kept in one place here:

- **No computed non-finite LR is ever stored** into a param group or an LR tensor (:class:`LrGuard`). The
  guard proves, on the host and a window of steps ahead, that every group's next LRs are finite and fit
  the LR dtype (float32 tensors overflow past 3.4e38). A :meth:`ScheduledOptimizer.step` whose advance would
  store a non-finite LR raises ``ValueError`` naming the group and the step *before* the wrapped optimizer
  steps: the params, the LRs and the step stay as they were. Construction, ``add_param_group``,
  ``set_multiplier`` and ``load_state_dict`` refuse the same way. (The proof costs one batched evaluation
  per window, nothing measurable per step; inside a replayed CUDA graph no Python runs, so there the device
  kernel alone decides.)
- **The step policy**: the step counter holds steps up to 2**62 (``_validate.STEP_LIMIT``), exactly; a
  ``step()`` at 2**62 raises ``OverflowError`` before anything changes, and a state dict with a larger
  step is refused.
- **Every** :meth:`ScheduledOptimizer.load_state_dict` **is atomic**: it checks everything (its own entry,
  its version, the group count, the LRs it will produce) and builds the new engine first; only then does it
  load the wrapped optimizer, and it puts the optimizer back if that fails. A failed load changes nothing.
"""

from __future__ import annotations

import numbers
import warnings
import weakref
from itertools import repeat
from typing import Any, Callable, Mapping, Sequence

import torch

from . import _compile
from . import _torch_compat as compat
from . import _validate as check
from ._engine import LR_LIMIT_FLOAT32, LR_LIMIT_FLOAT64, HostBinding, LrGuard
from ._scheduler_view import SchedulerView
from ._signals import SignalBank, check_reduce, signal_leaves
from ._wrap_conflicts import (_TORCH_MARK, ScheduleConflictError, ScheduleConflictWarning, check_writers,
                              refuse_torch_scheduler)
from ._wrap_groups import (_check_spec, _engine_step, _group_device, _group_label, _lookup, _lr_number,
                           _make_binding, _reads_tensor_lr, _refuses_tensor_lr, check_state_entry)
from .schedules import Schedule

__all__ = ["wrap", "ScheduledOptimizer", "SchedulerView", "MULTIPLIER_KEY", "LR_SCALE_KEY", "CHECK_EVERY",
           "ScheduleConflictError", "ScheduleConflictWarning"]


#: The param-group key :func:`wrap` reads a group's LR multiplier from (set by :func:`torchsched.param_groups`).
MULTIPLIER_KEY = "lr_multiplier"
#: timm's per-group LR factor (layer decay), honoured by :func:`wrap` unless ``lr_scale=False``.
LR_SCALE_KEY = "lr_scale"
#: A wrapper checks that nothing else wrote its groups' LRs at its first two steps, then every this many steps.
CHECK_EVERY = 64
_STATE_KEY = "torchsched"
_STATE_VERSION = 1


# ---- the wrapper ---------------------------------------------------------------------------------

class ScheduledOptimizer(torch.optim.Optimizer):
    """The wrapped optimizer plus its schedule; behaves as the wrapped optimizer (made by :func:`wrap`).

    ``param_groups``, ``state`` and ``defaults`` are the wrapped optimizer's; other attributes are read from
    and written to it (so ``GradScaler``'s ``grad_scale``/``found_inf`` reach it). ``optimizer`` is the wrapped
    optimizer. Do not call the wrapped optimizer's ``step()`` directly: the schedule would not advance.
    :meth:`scheduler` is its ``LRScheduler`` view; no other scheduler may drive its LRs (see the module
    docstring).
    """

    # torch.optim.Optimizer.__init__ is not called: this object owns no params or state of its own.
    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule | None = None, *,
                 multipliers: Any = None, schedules: Any = None, lr_dtype: torch.dtype | None = None,
                 process_group: Any = None, tensor_lrs: bool = False, lr_scale: bool = True) -> None:
        if isinstance(optimizer, ScheduledOptimizer):
            raise TypeError("optimizer is already wrapped (a ScheduledOptimizer); give per-group schedules with "
                            "schedules= instead of wrapping twice")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if schedule is not None:
            check.schedule("schedule", schedule)
        dtype = torch.float32 if lr_dtype is None else lr_dtype
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"lr_dtype must be torch.float32 or torch.float64, got {lr_dtype!r}")
        for name, flag in (("tensor_lrs", tensor_lrs), ("lr_scale", lr_scale)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {check.shown(flag)}")
        groups = optimizer.param_groups
        if not groups:
            raise ValueError("optimizer has no param groups")
        _check_spec("multipliers", multipliers, groups)
        _check_spec("schedules", schedules, groups)
        d = self.__dict__
        d["_optimizer"] = optimizer
        d["_schedule"] = schedule
        d["_multiplier_spec"] = multipliers
        d["_schedule_spec"] = schedules
        d["_dtype"] = dtype
        d["_schedules"] = []
        d["_base_lrs"] = []
        d["_multipliers"] = []
        d["_tensor_groups"] = []
        d["_devices"] = []
        d["_process_group"] = process_group
        d["_bank"] = None
        d["_reads_gradients"] = False
        d["_tensor_lrs"] = tensor_lrs
        d["_lr_scale"] = lr_scale
        d["_view"] = None  # a weak reference to the scheduler view, once made
        d["_warned"] = False  # one ScheduleConflictWarning per wrapper
        d["_handle"] = _compile.register(self)  # how a compiled step's ops find this wrapper
        d["_pending_gradients"] = None  # a compiled step's gradient reading, between its two ops
        for i, group in enumerate(groups):
            self._describe(i, group)
        self._rebuild(step=0)

    # ---- group bookkeeping
    def _describe(self, index: int, group: Mapping[str, Any], schedule: Schedule | None = None,
                  multiplier: Any = None) -> None:
        """Appends group ``index``'s schedule, base LR, multiplier and LR kind (validated, errors name it)."""
        label = _group_label(index, group)
        sched = schedule if schedule is not None else _lookup("schedules", self._schedule_spec, index, group)
        if sched is None:
            sched = self._schedule
        if sched is None:
            raise ValueError(f"{label} has no schedule: pass schedule=, or give it one in schedules=")
        check.schedule(f"the schedule for {label}", sched)
        if "lr" not in group:
            raise ValueError(f"{label} has no 'lr'")
        base = _lr_number(f"the lr of {label}", group["lr"])
        mult = multiplier if multiplier is not None else _lookup("multipliers", self._multiplier_spec, index, group)
        if mult is None:
            mult = group.get(MULTIPLIER_KEY, 1.0)
            what = f"{label}['{MULTIPLIER_KEY}']"
        else:
            what = f"the multiplier for {label}"
        mult_f = _lr_number(what, mult)
        if self._lr_scale and LR_SCALE_KEY in group:
            # timm multiplies the scheduled LR by lr_scale whatever else scales it: so here, on top
            mult_f = _lr_number(what, mult_f * _lr_number(f"{label}['{LR_SCALE_KEY}']", group[LR_SCALE_KEY]))
        opt = self._optimizer
        native = _reads_tensor_lr(opt, group)
        tensor = native
        if not native and (self._tensor_lrs or isinstance(group["lr"], torch.Tensor)):
            if not _refuses_tensor_lr(opt, group):
                tensor = True
            elif self._tensor_lrs:
                raise ValueError(f"tensor_lrs=True, but {label} of {type(opt).__name__} has foreach=True without "
                                 "capturable: torch refuses a tensor LR there; set foreach=False (or None), or "
                                 "capturable=True")
            # else: the user's tensor LR on a group torch would refuse it on becomes a float, as before
        device = _group_device(index, group) if native else torch.device("cpu")
        if tensor and device.type == "cuda":
            # here, not inside torch at the first step(): a fused group refuses a float64 LR, for one
            from ._cuda import _optimizer_kind, check_group_flags

            check_group_flags(index, dict(group), _optimizer_kind(opt), type(opt).__name__, self._dtype)
        self._schedules.append(sched)
        self._base_lrs.append(base)
        self._multipliers.append(mult_f)
        self._tensor_groups.append(tensor)
        self._devices.append(device)

    def _truncate(self, count: int) -> None:
        for lst in (self._schedules, self._base_lrs, self._multipliers, self._tensor_groups, self._devices):
            del lst[count:]

    def _prepare(self, step: int, base_lrs: Sequence[float] | None = None,
                 multipliers: Sequence[float] | None = None) -> tuple[Any, LrGuard, SignalBank | None]:
        """A new engine binding for the current groups at ``step``, its guard and its signal bank (the
        current bank's state carried over), changing nothing yet: raises (nothing changed) when ``step``
        would store a non-finite LR."""
        base = self._base_lrs if base_lrs is None else base_lrs
        mult = self._multipliers if multipliers is None else multipliers
        groups = self._optimizer.param_groups
        tensor_limit = LR_LIMIT_FLOAT32 if self._dtype == torch.float32 else LR_LIMIT_FLOAT64
        guard = LrGuard(self._schedules, [b * m for b, m in zip(base, mult)],
                         [tensor_limit if t else LR_LIMIT_FLOAT64 for t in self._tensor_groups],
                         [_group_label(i, groups[i] if i < len(groups) else {}) for i in range(len(base))])
        guard.check(step, 1)
        binding = _make_binding(self._schedules, base, mult, step=step, tensor_groups=self._tensor_groups,
                               devices=self._devices, dtype=self._dtype)
        return binding, guard, self._signal_bank(binding, [b * m for b, m in zip(base, mult)])

    def _signal_bank(self, binding: Any, scales: Sequence[float]) -> SignalBank | None:
        """The state of the schedules' signal-driven leaves, on the device the engine writes (None: none)."""
        leaves = signal_leaves(self._schedules)
        if not leaves:
            return None
        groups = self._optimizer.param_groups
        device = torch.device("cpu") if isinstance(binding, HostBinding) else binding.engine.device
        elsewhere = sorted({str(p.device) for g in groups for p in g["params"] if p.device != device})
        if elsewhere:
            raise ValueError(
                f"the schedules hold signal-driven rules (plateau, average_gradient), whose state lives on the "
                f"params' device, but groups with params on {elsewhere[0]} hold host LRs (floats, or CPU LR tensors a "
                "non-fused optimizer reads): those can only follow a device decision through a host sync every step. "
                "Give those groups tensor LRs the optimizer reads in place (fused=True, or capturable=True for "
                "Adam/AdamW)")
        labels = [_group_label(i, groups[i] if i < len(groups) else {}) for i in range(len(scales))]
        bank = SignalBank(leaves, scales, device, labels)
        if self._bank is not None:
            bank.adopt(self._bank)
        return bank

    def _install(self, binding: Any, guard: LrGuard, bank: SignalBank | None = None) -> None:
        """Puts ``binding``'s LRs into the groups and makes it the wrapper's engine."""
        groups = self._optimizer.param_groups
        binding.attach_signals(None if bank is None else bank.factors)
        binding.install(groups)
        d = self.__dict__
        d["_bank"] = bank
        d["_reads_gradients"] = bank is not None and bool(bank.gradients)
        d["_binding"] = binding
        buffer = getattr(binding, "buffer", None)
        d["_lr_targets"] = (buffer,) if buffer is not None else ()  # what a compiled step stores the LRs into
        d["_guard"] = guard
        d["_tickets"] = repeat(True, 0)  # one per advance proven safe from the engine's step on (_prove_ahead)
        d["_proven_to"] = -1  # the last step the guard proved (none yet)
        d["_recheck"] = 1  # steps to the second writers' check: a scheduler that writes after each step shows there
        d["_advance"] = binding.advancer(groups)
        d["_groups"] = groups
        d["_count"] = len(groups)
        marked = [_TORCH_MARK in g for g in groups]  # a torch scheduler adds it to every group; these had it
        d["_marked"] = marked
        d["_probe"] = marked.index(False) if False in marked else -1  # one unmarked group tells

    def _rebuild(self, step: int) -> None:
        """(Re)makes the engine for the current groups at ``step`` and installs the LRs into the groups."""
        self._install(*self._prepare(step))

    def _prove_ahead(self) -> None:
        """Checks that nothing else wrote the groups' LRs, proves the next advances (at least one) store
        finite LRs and hands out one ticket per advance, the one being taken included, at most
        :data:`CHECK_EVERY` (so the writers' check comes back that often); raises, before anything changes,
        at the step limit, on a torch scheduler attached, or when the very next advance would store a
        non-finite LR."""
        # the host's step, never a sync: a CUDA engine's may run ahead of the device (skipped steps), never
        # behind it, and every step up to it was proven on the way, so the proof stays sound
        step = int(self._binding.engine.step)
        if step >= check.STEP_LIMIT:
            raise OverflowError(f"step(): the schedule is at step {step}, the step limit (2**62); it cannot "
                                "advance, and the optimizer was not stepped")
        check_writers(self)
        proven_to = self._proven_to
        if proven_to <= step:  # the window is spent (the engine's step only grows between installs)
            try:
                proven = self._guard.check(step + 1, min(LrGuard.WINDOW, check.STEP_LIMIT - step))
            except ValueError as e:
                raise ValueError(f"step(): {e}; the optimizer was not stepped and the LRs stay") from None
            proven_to = step + proven
            self.__dict__["_proven_to"] = proven_to
        d = self.__dict__
        d["_tickets"] = repeat(True, min(proven_to - step, self._recheck) - 1)
        d["_recheck"] = CHECK_EVERY

    # ---- other writers of the LRs
    def _resync(self, groups: list[dict[str, Any]]) -> None:
        """The wrapped optimizer's groups changed behind the wrapper (its own ``add_param_group`` or
        ``load_state_dict``): adopt new groups and put the engine's LRs back into the group dicts."""
        count = self._count
        if len(groups) < count:
            raise RuntimeError(f"the optimizer has {len(groups)} param groups but its schedule has {count}: "
                               "param groups were removed behind the wrapper")
        step = _engine_step(self._binding)
        try:
            for i in range(count, len(groups)):
                self._describe(i, groups[i])
            self._rebuild(step)
        except BaseException:
            self._truncate(count)
            raise

    # ---- the optimizer interface
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """The wrapped optimizer's step, then one core call that advances every group's schedule.

        Returns what the wrapped step returns (the closure's loss). Nothing advances if it raises, or if a
        GradScaler found infs (``found_inf`` non-zero).
        """
        if _compile.tracing():  # torch.compile: the optimizer's step between two ops (see torchsched._compile)
            return _compile.traced_wrap_step(self, closure)
        opt = self._optimizer
        groups = opt.param_groups
        if groups is not self._groups or len(groups) != self._count:
            self._resync(groups)
        if not next(self._tickets, False):  # one ticket per proven advance: a counter in one C call
            self._prove_ahead()  # raises before the optimizer's update: nothing changes
        if self._reads_gradients:
            return self._step_reading_gradients(opt, groups, closure)
        loss = opt.step() if closure is None else opt.step(closure)
        found_inf = opt.__dict__.get("found_inf")  # set by GradScaler around this call
        if found_inf is None:
            self._advance()
        else:
            self._binding.advance(groups, found_inf)  # a skipped advance spends its ticket: a lower bound
        return loss

    def _step_reading_gradients(self, opt: torch.optim.Optimizer, groups: list[dict[str, Any]],
                                closure: Callable[[], Any] | None) -> Any:
        """step() for the average-gradient rule: G from the gradients the optimizer is about to use (divided
        by GradScaler's scale when it has not unscaled them), stored once the optimizer has stepped and only
        where GradScaler did not skip the step; then the advance. With a closure G is read afterwards, from
        the gradients the closure left."""
        bank = self._bank
        assert bank is not None
        if closure is None:
            values = bank.read_gradients(groups, opt.__dict__.get("grad_scale"), "mean", self._process_group)
            loss = opt.step()
        else:
            loss = opt.step(closure)
            values = bank.read_gradients(groups, opt.__dict__.get("grad_scale"), "mean", self._process_group)
        found_inf = opt.__dict__.get("found_inf")
        bank.observe_gradients(values, found_inf if isinstance(found_inf, torch.Tensor) else None)
        if found_inf is None:
            self._advance()
        else:
            self._binding.advance(groups, found_inf)
        return loss

    # ---- signals
    def observe(self, metric: Any, *, reduce: str | None = "mean", process_group: Any = None) -> None:
        """Feeds a metric (a 0-d tensor or a float) to the schedules' plateau rules, between steps.

        The rules' state lives on the params' device and the update is device work only: no ``.item()``,
        no copy to the host. The LRs of the current step are rewritten at once (tensor LRs in place), so the
        next ``step()`` uses a reduction decided here. When torch.distributed is initialized the metric is
        first all-reduced over ``process_group`` (default: the wrapper's, else the default group) with
        ``reduce`` (``"mean"``, ``"sum"``, ``"max"``, ``"min"``; None: each rank decides alone), so every
        rank makes the same decision.
        """
        bank = self._bank
        if bank is None or not bank.plateaus:
            raise ValueError("observe(): none of the schedules has a plateau rule to feed; compose one, e.g. "
                             "schedules.cosine(...) * schedules.plateau(...)")
        group = process_group if process_group is not None else self._process_group
        bank.observe(metric, check_reduce(reduce), group)
        self._binding.rewrite(self._optimizer.param_groups)

    def sync(self) -> list[float]:
        """Brings the host mirror up to date with the device (a host sync on a GPU, by design) and returns
        :meth:`get_last_lr`. On the CPU the mirror is always current and nothing waits."""
        binding = self._binding
        binding.sync_signals()
        if getattr(binding.engine, "resync", None) is not None:
            binding.engine.resync()
        return self.get_last_lr()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._optimizer.zero_grad(set_to_none)

    def add_param_group(self, param_group: dict[str, Any], *, schedule: Schedule | None = None,
                        multiplier: float | None = None) -> None:
        """Adds a group to the wrapped optimizer; it joins the engine at the current step.

        Its schedule is ``schedule``, else what ``schedules=`` gives it (by name or callable), else the main
        schedule; its multiplier likewise (``multiplier``, ``multipliers=``, its ``'lr_multiplier'``, 1).
        With tensor LRs every group then gets a new 0-d view of a new, larger buffer: LR tensors taken from
        the groups before (or captured in a CUDA graph) no longer move.
        """
        opt = self._optimizer
        groups = opt.param_groups
        if groups is not self._groups or len(groups) != self._count:
            self._resync(groups)
        count = self._count
        opt.add_param_group(param_group)
        try:
            self._describe(count, opt.param_groups[count], schedule, multiplier)
            self._rebuild(_engine_step(self._binding))
        except BaseException:
            self._truncate(count)
            del opt.param_groups[count:]
            raise

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's state dict plus a ``'torchsched'`` entry: the schedule's step, base LRs and
        multipliers (plain ints, floats and strings: loads with ``torch.load(weights_only=True)``)."""
        sd = dict(self._optimizer.state_dict())
        sd[_STATE_KEY] = self._schedule_entry()
        return sd

    def _schedule_entry(self) -> dict[str, Any]:
        """The ``'torchsched'`` entry of :meth:`state_dict` (the scheduler view's whole state)."""
        entry: dict[str, Any] = {
            "version": _STATE_VERSION,
            "step": _engine_step(self._binding),
            "base_lrs": list(self._base_lrs),
            "multipliers": list(self._multipliers),
            "schedules": [repr(s) for s in self._schedules],
        }
        if self._bank is not None:
            entry["signals"] = self._bank.state_dict()
        return entry

    def _plan_entry(self, ours: Any) -> tuple[Any, LrGuard, SignalBank | None, list[float], list[float], Any]:
        """Checks a ``'torchsched'`` entry (None: keep the current step) and builds what loading it installs;
        changes nothing."""
        step, base, mult = _engine_step(self._binding), list(self._base_lrs), list(self._multipliers)
        if ours is not None:
            ours = check_state_entry(ours, self._count, _STATE_KEY, _STATE_VERSION)
            step, base, mult = ours["step"], ours["base_lrs"], ours["multipliers"]
        try:
            binding, guard, bank = self._prepare(step, base, mult)
            signals = ours.get("signals") if ours is not None else None
            if signals is not None:
                if bank is None:
                    raise ValueError(f"state_dict['{_STATE_KEY}'] holds signal-rule state, but the schedules "
                                     "have no signal-driven rule")
                bank.load_state_dict(signals, f"state_dict['{_STATE_KEY}']['signals']")
        except ValueError as e:
            raise ValueError(f"load_state_dict: {e}") from None
        return binding, guard, bank, base, mult, (ours.get("schedules") if ours is not None else None)

    def _commit_entry(self, base: list[float], mult: list[float], saved_schedules: Any) -> None:
        self._base_lrs[:] = base
        self._multipliers[:] = mult
        if saved_schedules is not None and list(saved_schedules) != [repr(s) for s in self._schedules]:
            warnings.warn("the state dict was saved with different schedules; its step is loaded into "
                          "the current ones", UserWarning, stacklevel=3)

    def _load_schedule_entry(self, ours: Any) -> None:
        """Loads a ``'torchsched'`` entry alone (the scheduler view's ``load_state_dict``): the step, base LRs,
        multipliers and signal state, atomically; the wrapped optimizer's state is left as it is."""
        opt = self._optimizer
        if opt.param_groups is not self._groups or len(opt.param_groups) != self._count:
            self._resync(opt.param_groups)
        binding, guard, bank, base, mult, saved = self._plan_entry(ours)
        self._install(binding, guard, bank)
        self._commit_entry(base, mult, saved)

    def _host_step(self) -> int:
        """The schedule's step as the host knows it (no device sync; see :attr:`last_step`)."""
        return int(self._binding.engine.step)

    def scheduler(self) -> SchedulerView:
        """This wrapper as a ``torch.optim.lr_scheduler.LRScheduler``, for frameworks that want an
        ``(optimizer, scheduler)`` pair: the same object every call (while it is referenced).

        Its ``step()`` changes nothing (this wrapper advances in its own ``step()``), its ``get_last_lr()``
        reads the host mirror, and its ``state_dict()`` is this wrapper's ``'torchsched'`` entry, so that
        optimizer and scheduler checkpoints load in either order. See :class:`SchedulerView`.
        """
        ref = self.__dict__["_view"]
        view = ref() if ref is not None else None
        if view is None:  # a weak reference: the view holds the wrapper, not the other way round
            view = SchedulerView(self)
            self.__dict__["_view"] = weakref.ref(view)
        return view

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Loads the wrapped optimizer's state and the schedule's step, base LRs and multipliers, then puts
        the LRs of that step into the groups. A plain torch optimizer state dict keeps the current step.

        Atomic: everything is checked, and the new engine built, before anything is loaded; if the wrapped
        optimizer then refuses its part, it is put back as it was. A failed load changes nothing.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        sd = dict(state_dict)
        ours = sd.pop(_STATE_KEY, None)
        opt = self._optimizer
        if opt.param_groups is not self._groups or len(opt.param_groups) != self._count:
            self._resync(opt.param_groups)
        saved_groups = sd.get("param_groups")
        if not isinstance(saved_groups, list) or not all(isinstance(g, Mapping) for g in saved_groups):
            raise ValueError(f"state_dict['param_groups'] must be a list of dicts, got {check.shown(saved_groups)}")
        if len(saved_groups) != self._count:
            raise ValueError(f"state_dict['param_groups'] has {len(saved_groups)} groups, the optimizer "
                             f"{self._count}")
        if not isinstance(sd.get("state"), Mapping):
            raise ValueError(f"state_dict['state'] must be a dict, got {check.shown(sd.get('state'))}")
        binding, guard, bank, base, mult, saved = self._plan_entry(ours)
        kept = opt.__dict__.get("state"), opt.__dict__.get("param_groups")
        try:
            opt.load_state_dict(sd)  # checks param counts and sizes; replaces the group dicts
            self._install(binding, guard, bank)
        except BaseException:
            opt.__dict__["state"], opt.__dict__["param_groups"] = kept
            raise
        self._commit_entry(base, mult, saved)


    # ---- the schedule
    def get_last_lr(self) -> list[float]:
        """Every group's current LR as a Python float (host mirror, float64; no device sync)."""
        return list(self._binding.lrs())

    @property
    def last_step(self) -> int:
        """How many steps the schedule has taken (0 after :func:`wrap`)."""
        return _engine_step(self._binding)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The wrapped optimizer."""
        return self._optimizer

    @property
    def schedules(self) -> list[Schedule]:
        """Each group's schedule."""
        return list(self._schedules)

    @property
    def base_lrs(self) -> list[float]:
        """Each group's LR at wrap time (before multiplier and schedule)."""
        return list(self._base_lrs)

    @property
    def multipliers(self) -> list[float]:
        """Each group's LR multiplier (its ``'lr_scale'`` included, when honoured)."""
        return list(self._multipliers)

    @property
    def lr_tensor(self) -> torch.Tensor | None:
        """The engine buffer the tensor-LR groups' ``'lr'`` views point into (None on the float path)."""
        return getattr(self._binding, "buffer", None)

    def set_multiplier(self, group: int, value: float) -> None:
        """Changes one group's multiplier from now on (its LR is rewritten at the current step). ``value`` is
        the whole multiplier: a group's ``'lr_scale'`` is not applied again."""
        if isinstance(group, bool) or not isinstance(group, numbers.Integral) or not 0 <= group < self._count:
            raise ValueError(f"group must be a param group index in 0..{self._count - 1}, got {group!r}")
        groups = self._optimizer.param_groups
        multipliers = list(self._multipliers)
        multipliers[group] = _lr_number(f"the multiplier for {_group_label(group, groups[group])}", value)
        self._install(*self._prepare(_engine_step(self._binding), multipliers=multipliers))
        self._multipliers[group] = multipliers[group]

    # ---- forwarding to the wrapped optimizer
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self._optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self._optimizer.param_groups = value

    @property
    def state(self) -> Any:
        return self._optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        self._optimizer.state = value

    @property
    def defaults(self) -> dict[str, Any]:
        return self._optimizer.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self._optimizer.defaults = value

    @property
    def _step_supports_amp_scaling(self) -> bool:
        return bool(getattr(self._optimizer, "_step_supports_amp_scaling", False))

    def __getattr__(self, name: str) -> Any:
        # Only called for names this object lacks: grad_scale, found_inf, hooks, optimizer-specific methods.
        try:
            inner = self.__dict__["_optimizer"]
        except KeyError:
            raise AttributeError(name) from None
        return getattr(inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # Names the wrapper class defines (methods, properties) stay here; anything else (GradScaler's
        # grad_scale and found_inf, flags tools set on optimizers) goes to the wrapped optimizer.
        if name == "step" and compat.step_wrapped(value):
            refuse_torch_scheduler(self)
        if hasattr(type(self), name) or name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            setattr(self._optimizer, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__:
            object.__delattr__(self, name)
        else:
            delattr(self._optimizer, name)

    def __getstate__(self) -> Any:
        raise TypeError("a ScheduledOptimizer cannot be pickled or copied; save its state_dict() instead")

    def __repr__(self) -> str:
        scheds = {repr(s) for s in self._schedules}
        sched = scheds.pop() if len(scheds) == 1 else f"<{len(self._schedules)} per-group schedules>"
        return (f"ScheduledOptimizer({self._optimizer!r},\n  schedule={sched}, multipliers={self._multipliers}, "
                f"step={self.last_step})")


# host bookkeeping an eager step runs: dynamo does not compile it as frames of their own (see torchsched._compile)
_compile.run_as_is(ScheduledOptimizer._prove_ahead, ScheduledOptimizer._resync)


def wrap(optimizer: torch.optim.Optimizer, schedule: Schedule | None = None, *, multipliers: Any = None,
         schedules: Any = None, lr_dtype: torch.dtype | None = None, process_group: Any = None,
         tensor_lrs: bool = False, lr_scale: bool = True) -> ScheduledOptimizer:
    """Wraps ``optimizer`` so that each successful ``step()`` also advances ``schedule`` for every group.

    Args:
        optimizer: any ``torch.optim.Optimizer``. Each group's current ``'lr'`` becomes its base LR.
        schedule: a :mod:`torchsched.schedules` spec, a factor of the base LR (``warmup(...) >> cosine(...)``).
        multipliers: per-group LR factors: a dict keyed by group index or group ``'name'``, a list with one
            entry per group, or ``callable(group_index, group) -> float``. Groups it does not cover use their
            ``'lr_multiplier'`` key, else 1.
        schedules: per-group schedules, given the same ways; groups it does not cover use ``schedule``.
        lr_dtype: dtype of the LR tensors (default float32, what fused kernels read; float64 keeps a CPU
            optimizer's LR in double precision).
        process_group: the torch.distributed group the signal-driven rules agree over (metrics fed to
            :meth:`ScheduledOptimizer.observe`, the average gradient); default: the default group.
        tensor_lrs: give every group a tensor LR (a 0-d view of the engine's buffer, filled in place), also on
            optimizers that would take a float, e.g. to keep ``torch.compile`` from guarding on the LR's
            value. Without it a group keeps the kind it has: a tensor ``'lr'`` stays a tensor on every
            optimizer that accepts one, a float stays a float, except on fused or capturable groups, which
            always get tensors on the params' device. Groups torch refuses a tensor LR on (Adam/AdamW with
            ``foreach=True``, not capturable) raise with ``tensor_lrs=True``, and otherwise hold a float.
        lr_scale: honour timm's per-group ``'lr_scale'`` key as timm's schedulers do (default True): the
            group's LR is ``base LR * multiplier * lr_scale * schedule``, where the multiplier is whichever of
            ``multipliers=``, ``'lr_multiplier'`` or 1 applies; ``lr_scale`` multiplies it, it does not
            replace it. (If you passed timm's ``lr_scale`` values as ``multipliers=`` by hand, drop them or
            pass ``lr_scale=False``.) The product is the group's multiplier from then on (``multipliers``,
            ``set_multiplier``, the state dict).

    Returns:
        A :class:`ScheduledOptimizer`: ``isinstance(w, torch.optim.Optimizer)`` holds, and it has the wrapped
        optimizer's ``param_groups``, ``state``, ``zero_grad``, ``add_param_group``, plus ``get_last_lr()``;
        its ``state_dict()`` carries the schedule's step. ``w.scheduler()`` is its ``LRScheduler`` view, for
        frameworks that take an ``(optimizer, scheduler)`` pair.

    The wrapper owns the groups' LRs: a torch LR scheduler attached to it raises
    :class:`ScheduleConflictError` (when built on the wrapper, or at the next step), and any other write into a
    group's ``'lr'`` is undone with one :class:`ScheduleConflictWarning` (checked at the first two steps,
    then every :data:`CHECK_EVERY` steps). See the module docstring for why one raises and the other warns.
    """
    return ScheduledOptimizer(optimizer, schedule, multipliers=multipliers, schedules=schedules, lr_dtype=lr_dtype,
                              process_group=process_group, tensor_lrs=tensor_lrs, lr_scale=lr_scale)
