"""How a wrapped optimizer notices a second writer of its LRs: a torch LR scheduler attached to it (refused) or
anything else writing a group's ``'lr'`` (warned once, and undone). ``self`` below is the
:class:`torchsched.optim.ScheduledOptimizer`; these run at its first steps after an install, then every
``CHECK_EVERY`` steps, and when torch's ``LRScheduler.__init__`` patches its ``step``."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import torch

from ._wrap_groups import _foreign_on_device, _group_label

_TORCH_MARK = "initial_lr"  # what torch's LRScheduler.__init__ adds to every group


class ScheduleConflictError(RuntimeError):
    """A torch LR scheduler was attached to a wrapped optimizer (a second schedule on the same LRs)."""


class ScheduleConflictWarning(UserWarning):
    """Something other than the wrapper wrote a param group's ``'lr'``; the wrapper put its LR back."""


_FIX = ("wrap() advances the schedule inside optimizer.step() and owns the groups' LRs. Where a framework wants "
        "a scheduler, pass wrapped.scheduler() (HF Trainer: optimizers=(wrapped, wrapped.scheduler()); "
        "Lightning: return it from configure_optimizers; Accelerate: prepare it with the optimizer); or keep "
        "the torch scheduler and use torchsched.lr_scheduler's drop-in classes on the plain optimizer instead "
        "of wrap()")


def check_writers(self: Any) -> None:
    """Raises :class:`ScheduleConflictError` when a torch scheduler marked a group since the last install;
    warns (once per wrapper) and puts the schedule's LRs back when a group's ``'lr'`` is not what the
    wrapper stored."""
    groups = self._optimizer.param_groups
    binding = self._binding
    probe = self._probe
    if probe >= 0 and _TORCH_MARK in groups[probe]:
        raise ScheduleConflictError(
            f"step(): {_group_label(probe, groups[probe])} gained an '{_TORCH_MARK}' key: a torch LR scheduler "
            f"was built on this wrapped optimizer (or on what wraps it), and it would overwrite the wrapper's "
            f"LRs after every step. {_FIX}. The optimizer was not stepped")
    find = getattr(binding, "foreign", None)
    odd = find(groups) if find is not None else _foreign_on_device(binding, groups)
    if odd is None:
        return
    binding.install(groups)
    if not self._warned:
        self.__dict__["_warned"] = True
        warnings.warn(
            f"{_group_label(odd, groups[odd])}'s 'lr' was written by something other than the wrapper (a hand "
            f"edit, or another LR scheduler): the wrapper put the schedule's LR back and overwrites such "
            f"writes (this warning is given once). {_FIX}", ScheduleConflictWarning, stacklevel=4)

def refuse_torch_scheduler(self: Any) -> None:
    """torch's LRScheduler.__init__ is patching this wrapper's ``step``: refuse it (and drop the
    ``'initial_lr'`` keys it just added, so a caught error leaves the groups as they were)."""
    name = "a torch LR scheduler"
    frame: Any = sys._getframe(2)  # __setattr__ <- patch_track_step_called <- LRScheduler.__init__
    for _ in range(3):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, torch.optim.lr_scheduler.LRScheduler):
            name = type(owner).__name__
            break
        frame = frame.f_back
    for marked, group in zip(self._marked, self._optimizer.param_groups):
        if not marked:
            group.pop(_TORCH_MARK, None)
    raise ScheduleConflictError(f"{name} is being attached to a wrapped optimizer: it would overwrite the "
                                f"wrapper's LRs after every step. {_FIX}")
