"""ReduceLROnPlateau: the plateau rule and every group's reduction in one core call."""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

from torch import Tensor
from torch.optim import lr_scheduler as _tl

from .. import _core
from .. import _validate as check
from ._base import EPOCH_DEPRECATION_WARNING, LRScheduler, _refuse_cpu_lrs_for_cuda_params
from ._state import restored_on_error

# the state entries the plateau rule computes with: finite numbers (best starts at +-inf), counts
_FINITE_STATE = ("factor", "threshold", "eps", "patience", "cooldown", "last_epoch")
_COUNT_STATE = ("cooldown_counter", "num_bad_epochs")


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

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``, atomic: the state dict is checked first, and a load that fails anyway
        (torch's check of ``mode`` and ``threshold_mode``) leaves the scheduler as it was."""
        owner = "ReduceLROnPlateau.load_state_dict"
        check.state_mapping(owner, state_dict, ())
        for name in _FINITE_STATE:
            if name in state_dict:
                check.scheduler_number(owner, name, state_dict[name])
        for name in _COUNT_STATE:
            if name in state_dict:
                check.scheduler_count(owner, name, state_dict[name])
        if "best" in state_dict and not isinstance(state_dict["best"], Tensor):
            best = state_dict["best"]
            check.scheduler_number(owner, "best", 0.0 if best in (math.inf, -math.inf) else best)
        if "min_lrs" in state_dict:
            check.scheduler_numbers(owner, "min_lrs", state_dict["min_lrs"])
        with restored_on_error([self]):
            super().load_state_dict(state_dict)

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
