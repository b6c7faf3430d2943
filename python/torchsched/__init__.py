"""torchsched: learning-rate schedules computed on the device for PyTorch."""

from . import _core, schedules
from . import lr_scheduler
from ._engine import Engine
from .lr_finder import find_lr
from .optim import wrap
from .param_groups import param_groups

__version__ = "0.1.0"

__all__ = ["Engine", "schedules", "_core", "__version__"]
