"""The LR-scheduler face of a wrapped optimizer, for code that wants an ``(optimizer, scheduler)`` pair.

:meth:`torchsched.optim.ScheduledOptimizer.scheduler` returns one :class:`SchedulerView` per wrapper. The
wrapper advances its schedule inside its own ``step()``; the view is a window onto that state, so a framework
can step it, read its LRs and checkpoint it without a second schedule ever touching the param groups.

This module does not import :mod:`torchsched.optim` (the wrapper imports it): the view reaches the wrapper's
state through three private methods the wrapper defines (``_host_step``, ``_schedule_entry``,
``_load_schedule_entry``).
"""

from __future__ import annotations

from typing import Any, Mapping

from torch.optim.lr_scheduler import LRScheduler

from . import _compile

__all__ = ["SchedulerView", "VIEW_STATE_KEY"]

#: The key of a view's state dict: the wrapper's own ``'torchsched'`` entry, the same one its
#: ``state_dict()`` carries.
VIEW_STATE_KEY = "torchsched"


class SchedulerView(LRScheduler):
    """A ``torch.optim.lr_scheduler.LRScheduler`` whose state is the wrapped optimizer's schedule.

    Pass it wherever a framework wants a scheduler next to the wrapped optimizer: the HF Trainer's
    ``optimizers=(wrapped, wrapped.scheduler())``, Lightning's ``configure_optimizers`` (with
    ``"interval": "step"``), ``accelerator.prepare(model, wrapped, wrapped.scheduler())``.

    - ``step(*args, **kwargs)`` changes nothing: the wrapper already advanced in ``wrapped.step()``. However
      often it is called (Accelerate calls it once per process per optimizer step, and passes its arguments
      on), the view never advances twice and never writes an LR.
    - ``last_epoch`` is the wrapper's step count and ``_step_count`` is one more, as for a torch scheduler
      stepped once per optimizer step; both follow the wrapper at every read. ``_step_count`` accepts writes
      and ignores them (Accelerate bumps it on accumulation steps that do not step the optimizer).
    - ``get_last_lr()`` is what a torch scheduler's is: the LRs as they were at the view's last ``step()`` (or
      its creation or load), so between the optimizer's step and the scheduler's (where the HF Trainer logs)
      it still gives the LRs that step used. ``get_lr()`` gives the LRs the next optimizer step uses. Both
      read the host mirror: Python floats, no device sync.
    - ``base_lrs`` is each group's base LR times its multiplier (the LR at schedule factor 1).
    - ``state_dict()`` is ``{'torchsched': entry}``, where ``entry`` is the same ``'torchsched'`` entry the
      wrapper's ``state_dict()`` carries (step, base LRs, multipliers, schedules, signal-rule state: plain
      Python values). ``load_state_dict()`` loads that entry into the wrapper, atomically, exactly as the
      wrapper's own ``load_state_dict`` loads it, and leaves the wrapped optimizer's state alone. So an
      optimizer checkpoint and a scheduler checkpoint taken together load to the same state in either
      order; the scheduler's alone restores the schedule when a checkpointing path drops the optimizer
      state dict's extra key. Two checkpoints taken at different steps: the one loaded last wins.

    ``torch.optim.lr_scheduler.LRScheduler.__init__`` is deliberately not called: it would add
    ``'initial_lr'`` to every group, patch the optimizer's ``step`` and take a first step that writes the
    LRs, each of which a wrapper treats as a second schedule.
    """

    def __init__(self, wrapper: Any) -> None:
        self.optimizer = wrapper
        self._wrapper: Any = wrapper  # the same object, typed as what it is (a ScheduledOptimizer)
        self._seen: list[float] = wrapper.get_last_lr()  # the LRs at the view's last step()
        _compile.register(self)

    # ---- the step, always the wrapper's
    @property
    def last_epoch(self) -> int:  # type: ignore[override]
        # the host's count: never a device sync (a CUDA engine may run ahead of skipped steps until resync)
        return self._wrapper._host_step()

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        raise AttributeError("the scheduler view's last_epoch is the wrapped optimizer's step count; to move "
                             "it, load a state dict (the view's or the optimizer's)")

    @property
    def _step_count(self) -> int:  # type: ignore[override]
        return self._wrapper._host_step() + 1

    @_step_count.setter
    def _step_count(self, value: int) -> None:
        pass  # derived from the wrapper; Accelerate's bump on non-stepping accumulation steps means nothing here

    @property
    def base_lrs(self) -> list[float]:  # type: ignore[override]
        w = self._wrapper
        return [b * m for b, m in zip(w.base_lrs, w.multipliers)]

    @property
    def _last_lr(self) -> list[float]:  # type: ignore[override]
        return self.get_last_lr()

    def step(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Advances nothing (the wrapped optimizer's ``step()`` already did); takes note of the current LRs
        for :meth:`get_last_lr`, as a torch scheduler's step does."""
        if _compile.tracing():  # torch.compile traces one op that runs this step (the host mirror moved)
            return _compile.traced_view_step(self)
        self._seen = self._wrapper.get_last_lr()

    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        """Every group's LR as of the view's last ``step()`` (host mirror, Python floats; no device sync)."""
        return list(self._seen)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The same as :meth:`get_last_lr`: the LRs the next optimizer step uses."""
        return self._wrapper.get_last_lr()

    # ---- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {VIEW_STATE_KEY: self._wrapper._schedule_entry()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:  # type: ignore[override]
        if not isinstance(state_dict, Mapping) or VIEW_STATE_KEY not in state_dict:
            keys = sorted(map(str, state_dict)) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise ValueError(f"load_state_dict: the scheduler view loads its own state_dict() (a dict with a "
                             f"'{VIEW_STATE_KEY}' entry), got {keys}; a torch scheduler's state does not carry the "
                             "wrapped optimizer's schedule")
        self._wrapper._load_schedule_entry(state_dict[VIEW_STATE_KEY])
        self._seen = self._wrapper.get_last_lr()

    def __getstate__(self) -> Any:
        raise TypeError("a scheduler view cannot be pickled or copied; save its state_dict() instead")

    def __repr__(self) -> str:
        return f"SchedulerView(step={self.last_epoch}, lrs={self.get_last_lr()})"


_compile.run_as_is(SchedulerView.step)  # host bookkeeping: dynamo runs it as it is when not tracing it
