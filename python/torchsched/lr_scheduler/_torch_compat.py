"""What the drop-in classes need to know about the installed torch, and the one place that knows it.

torch's schedulers changed between the releases the package supports (``torch>=2.4``); each drop-in follows the
torch it runs on. Every fact here is read off torch itself, an attribute it has or what its own code does on a
tiny optimizer, never off a version string, and a private attribute torch lacks gives a documented fallback
here rather than an ``AttributeError`` in a step. The rest of the package asks this module and nothing else.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Sequence

import torch
from torch import Tensor
from torch.optim import lr_scheduler as _tl
from torch.optim import swa_utils as _swa

# The constructor's step is flagged (``_is_initial``, which state_dict then carries) and get_lr of ExponentialLR,
# PolynomialLR, CosineAnnealingLR, LinearLR and MultiplicativeLR keeps the LRs there. Without the flag (older
# torch) those get_lr keep the LRs wherever ``last_epoch == 0`` (MultiplicativeLR: ``last_epoch <= 0``) instead.
INITIAL_FLAG: bool = "_is_initial" in vars(_tl.LRScheduler)

# The core's chainable rules keep the LR at t = 0 unless told to chain there (torch_rules.hpp): with the flag the
# drop-ins decide the initial step themselves; without it, t = 0 always keeps, as torch's get_lr then does.
CHAIN_AT_0: float = 1.0 if INITIAL_FLAG else 0.0

# torch's step() without its warnings and counter, which SequentialLR calls at a milestone; older torch calls
# step(0) there (counting the step and warning that the epoch argument is deprecated).
UPDATE_LR: bool = callable(getattr(_tl.LRScheduler, "_update_lr", None))

# _last_lr (and get_lr's kept LRs) hold clones of tensor LRs; older torch keeps the groups' tensors themselves, so
# a scheduler's get_last_lr() follows later in-place changes of the LRs (a second scheduler on the optimizer).
CLONES_LRS: bool = callable(getattr(_tl, "_param_groups_val_list", None))



def _plateau_fills_tensor_lrs() -> bool:
    """Whether torch's ReduceLROnPlateau reduces a tensor LR in place (2.13 on) or puts a Python float in its
    place (before): read off torch's own class, reducing a tiny optimizer's LR once."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=torch.tensor(1.0, dtype=torch.float64))
    lr = opt.param_groups[0]["lr"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = _tl.ReduceLROnPlateau(opt, patience=0, factor=0.5)
        sched.step(1.0)
        sched.step(2.0)
    return opt.param_groups[0]["lr"] is lr


# ReduceLROnPlateau fills a tensor LR in place; older torch replaces it by a Python float when it reduces it (so
# the drop-in's device mode, which must write the tensor, is off there, and the float path assigns floats).
PLATEAU_FILLS_TENSOR_LRS: bool = _plateau_fills_tensor_lrs()

# SWALR names its strategy (``_anneal_strategy``, state_dict without the bound anneal_func); older torch keeps
# only ``anneal_func`` (one of two static methods), which state_dict then carries.
SWA_STRATEGY_ATTR: bool = callable(getattr(_swa.SWALR, "_set_anneal_func", None))
SWA_STRATEGY_KEY: str = "_anneal_strategy" if SWA_STRATEGY_ATTR else "anneal_func"


def _clones(groups: Sequence[dict[str, Any]]) -> list[Any]:
    return [g["lr"].clone() if isinstance(g["lr"], Tensor) else g["lr"] for g in groups]


def _aliases(groups: Sequence[dict[str, Any]]) -> list[Any]:
    return [g["lr"] for g in groups]


# torch's list of the groups' LRs (_last_lr, a kept get_lr): clones of tensors, or the tensors themselves.
group_lrs = _clones if CLONES_LRS else _aliases


def base_lrs_alias_groups(base_lrs: Sequence[Any], groups: Sequence[dict[str, Any]]) -> bool:
    """Where torch's lists alias tensors: a base LR that is a group's LR tensor itself (SequentialLR puts each
    group's initial_lr there), which torch's formulas then read as it changes. The core compiles base LRs as
    numbers, so such a scheduler runs torch's own code."""
    if CLONES_LRS:
        return False
    ptrs = {g["lr"].data_ptr() for g in groups if isinstance(g.get("lr"), Tensor)}
    return bool(ptrs) and any(isinstance(b, Tensor) and b.data_ptr() in ptrs for b in base_lrs)


def torch_update_lr(scheduler: Any, epoch: Any = None) -> None:
    """torch's step() after its warnings and counter, for a rule that runs torch's own get_lr: torch's
    ``_update_lr``, or on a torch without one the same lines of its step()."""
    if UPDATE_LR:
        _tl.LRScheduler._update_lr(scheduler, epoch)
        return
    scheduler._get_lr_called_within_step = True
    try:
        if epoch is None:
            scheduler.last_epoch += 1
            values = scheduler.get_lr()
        else:
            scheduler.last_epoch = epoch
            closed = getattr(scheduler, "_get_closed_form_lr", None)
            values = closed() if closed is not None else scheduler.get_lr()
    finally:
        scheduler._get_lr_called_within_step = False  # as torch's _enable_get_lr_call leaves it
    for group, lr in zip(scheduler.optimizer.param_groups, values):
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr.item() if isinstance(lr, Tensor) else lr)
        else:
            group["lr"] = lr
    scheduler._last_lr = group_lrs(scheduler.optimizer.param_groups)


def milestone_step(scheduler: Any) -> None:
    """SequentialLR's step of the scheduler that takes over at a milestone, as the installed torch does it."""
    if UPDATE_LR and callable(getattr(scheduler, "_update_lr", None)):
        scheduler._update_lr(0)
    else:
        scheduler.step(0)


def swa_anneal_strategy(scheduler: Any) -> str | None:
    """SWALR's ``"cos"`` or ``"linear"``; None for a strategy the core does not know (an anneal_func set by
    hand, or a state missing it), whose steps then run torch's own code."""
    if SWA_STRATEGY_ATTR:
        strategy = scheduler.__dict__.get("_anneal_strategy")
        return strategy if strategy in ("cos", "linear") else None
    fn = scheduler.__dict__.get("anneal_func")
    if fn is _swa.SWALR._cosine_anneal:
        return "cos"
    if fn is _swa.SWALR._linear_anneal:
        return "linear"
    return None


# ---- warnings: where torch's own say they come from ----------------------------------------------------

CALL_ORDER, OVERRIDDEN, EPOCH = "call order", "overridden", "epoch"


@functools.cache
def _torch_warning_sites() -> dict[str, tuple[str, int] | None]:
    """Per warning of torch's step(), where torch reports it: None where it names the caller of step() (a
    stacklevel of 2), else torch's own (filename, lineno). Read once from torch's StepLR on a tiny optimizer."""
    sites: dict[str, tuple[str, int] | None] = {}

    def record(kind: str, fn: Any) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
        w = next((x for x in caught if issubclass(x.category, UserWarning)), None)
        sites[kind] = None if w is None or w.filename == __file__ else (w.filename, w.lineno)

    def scheduler(overridden: bool = False) -> Any:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        s = _tl.StepLR(opt, 1)
        if overridden:
            opt.step = lambda *a, **k: None  # type: ignore[method-assign]
        return s

    try:
        early = scheduler()
        record(CALL_ORDER, lambda: early.step())
        record(OVERRIDDEN, lambda: scheduler(overridden=True).step())
        late = scheduler()
        late.optimizer.step()
        late.step()
        record(EPOCH, lambda: late.step(3))
    except Exception:  # pragma: no cover - a torch whose StepLR cannot run here: name the caller
        return {}
    return sites


def warn_like_torch(kind: str, message: str, stacklevel: int) -> None:
    """Warns as torch's step() does: naming the caller of step() (``stacklevel`` counted from the caller of this
    function), or torch's own line where the installed torch names that."""
    site = _torch_warning_sites().get(kind)
    if site is None:
        warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)
        return
    filename, lineno = site
    registry = vars(_tl).setdefault("__warningregistry__", {})
    warnings.warn_explicit(message, UserWarning, filename, lineno, module=_tl.__name__, registry=registry,
                           module_globals=vars(_tl))

