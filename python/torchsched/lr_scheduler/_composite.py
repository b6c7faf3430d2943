"""Schedulers of schedulers: SequentialLR and ChainedScheduler."""

from __future__ import annotations

from bisect import bisect_right

from torch.optim import lr_scheduler as _tl

from .. import _compile
from .. import _torch_compat as compat
from ._base import _Core, _LastLR
from ._step import _group_lrs


class SequentialLR(_LastLR, _tl.SequentialLR):
    """torch's ``SequentialLR``: each scheduler runs in turn, switching at the milestones. Each step is
    one step of the scheduler in charge (one core call for torchsched schedulers)."""

    _required_state_keys: tuple[str, ...] = ("_schedulers",)

    def step(self) -> None:  # type: ignore[override]
        """Perform a step."""
        if _compile.tracing():  # torch.compile traces one op that runs this step
            return _compile.traced_scheduler_step(self, "SequentialLR.step")
        self.last_epoch += 1
        t = self.last_epoch
        milestones = self._milestones
        idx = bisect_right(milestones, t)
        scheduler = self._schedulers[idx]
        if idx > 0 and milestones[idx - 1] == t:
            compat.milestone_step(scheduler)
        else:
            scheduler.step()
        self._last_lr_value = None
        self._last_lr_source = scheduler


class ChainedScheduler(_LastLR, _tl.ChainedScheduler):
    """torch's ``ChainedScheduler``: every scheduler steps, in order, each step (one core call each for
    torchsched schedulers)."""

    _copies_source_last_lr = True
    _required_state_keys: tuple[str, ...] = ("_schedulers",)

    def step(self) -> None:  # type: ignore[override]
        """Perform a step."""
        if _compile.tracing():  # torch.compile traces one op that runs this step
            return _compile.traced_scheduler_step(self, "ChainedScheduler.step")
        for scheduler in self._schedulers:
            scheduler.step()
        last = self._schedulers[-1]
        if isinstance(last, _Core) and last.optimizer is self.optimizer:
            self._last_lr_value = None
            self._last_lr_source = last
        else:
            self._last_lr = _group_lrs(self._schedulers[-1].optimizer.param_groups)
