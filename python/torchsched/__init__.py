"""torchsched: learning-rate schedules computed on the device for PyTorch.

- :mod:`torchsched.schedules`: composable schedule specs evaluated by the compiled core.
- :mod:`torchsched.lr_scheduler`: drop-in twins of every ``torch.optim.lr_scheduler`` class.
- :func:`wrap`: an optimizer wrapper that advances a schedule for every param group in one core call.
- :func:`param_groups`: layer-wise LR decay and the no-weight-decay split.
- :func:`find_lr`: the LR range test.
"""

from . import _core, lr_scheduler, schedules
from ._engine import Engine
from .lr_finder import find_lr
from .optim import wrap
from .param_groups import param_groups

__version__ = "0.1.0"

__all__ = ["Engine", "find_lr", "lr_scheduler", "param_groups", "schedules", "wrap", "__version__"]
