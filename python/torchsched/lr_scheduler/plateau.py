"""ReduceLROnPlateau: the plateau rule and every group's reduction in one core call."""

from __future__ import annotations

import functools
import warnings
from typing import Any

from torch import Tensor
from torch.optim import lr_scheduler as _tl

from .. import _core
from ._base import EPOCH_DEPRECATION_WARNING, LRScheduler, _refuse_cpu_lrs_for_cuda_params


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
