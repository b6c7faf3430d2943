"""torchsched: learning-rate schedules computed on the device for PyTorch.

- :mod:`torchsched.schedules`: composable schedule specs evaluated by the compiled core.
- :mod:`torchsched.lr_scheduler`: drop-in twins of every ``torch.optim.lr_scheduler`` class.
- :func:`wrap`: an optimizer wrapper that advances a schedule for every param group in one core call.
- :func:`param_groups`: layer-wise LR decay and the no-weight-decay split.
- :func:`find_lr`: the LR range test.
"""

# The one version: the build reads it from this line into the package metadata and the compiled core.
__version__ = "0.1.0"

from . import _core  # noqa: E402

if _core.__version__ != __version__:
    raise ImportError(
        f"torchsched {__version__} found a compiled core of version {_core.__version__} ({_core.__file__}): a "
        "partial upgrade or a stale build. Reinstall torchsched (pip install --force-reinstall torchsched), or "
        "rebuild it from source (make build).")

from . import lr_scheduler, schedules  # noqa: E402
from ._engine import Engine  # noqa: E402
from .lr_finder import find_lr  # noqa: E402
from .optim import wrap  # noqa: E402
from .param_groups import param_groups  # noqa: E402

__all__ = ["Engine", "find_lr", "lr_scheduler", "param_groups", "schedules", "wrap", "__version__"]
