"""Drop-in twins of every ``torch.optim.lr_scheduler`` class, plus ``torch.optim.swa_utils.SWALR``."""

from ._classes import *  # noqa: F401,F403
from ._classes import (  # noqa: F401
    _CUDA_FALLBACK_WARNED, EPOCH_DEPRECATION_WARNING, _CudaStepper, _LastLR, _cuda_lr_target, _cuda_spec_ok,
    _make_engine, __all__,
)
