"""The step decision every drop-in scheduler makes, on the host and on the CUDA engine alike, and the host
stores (torch's own, group by group: the per-group path).

A step is torch's ``_update_lr``: move ``last_epoch``, then pick what the LRs become. :func:`decide_step` does
both, with torch's checks and errors in torch's order, and names the outcome; the host engine and the CUDA
engine then only differ in where they write it (see ``_Core._write_step``).
"""

from __future__ import annotations

import enum
import math
from typing import Any, NamedTuple, Sequence

import torch
from torch import Tensor

from .. import _torch_compat as compat
from ._spec import _BUFFER_DTYPES


class StepKind(enum.Enum):
    CLOSED_FORM = "closed form"  # torch's closed form at last_epoch (step(epoch)): LRs computed on the host
    KEEP = "keep"                # torch's initial step of a rule that keeps the LRs it finds
    ADVANCE = "advance"          # the rule at the clock t (and u), run by the core
    REBUILD = "rebuild"          # ADVANCE once the program is recompiled: it no longer describes the groups


class StepDecision(NamedTuple):
    kind: StepKind
    t: Any                         # the rule's clock (last_epoch, or what the class counts: _rule_clock())
    u: float = math.nan            # a second clock some rules take (CosineAnnealingWarmRestarts' T_i)
    values: list[float] | None = None  # CLOSED_FORM: the LRs


def decide_step(scheduler: Any, epoch: Any) -> StepDecision:
    """torch's ``_update_lr`` up to the store: moves ``last_epoch`` (to ``epoch`` when given, which takes
    the closed form where the class has one) and decides what this step's LRs are."""
    if epoch is None:
        scheduler.last_epoch += 1
        closed_form = False
    else:
        scheduler.last_epoch = epoch
        closed_form = scheduler._has_closed_form
    return decide_lrs(scheduler, closed_form)


def decide_lrs(scheduler: Any, closed_form: bool) -> StepDecision:
    """What the LRs at the current ``last_epoch`` are (``get_lr()`` asks this too): torch's closed form, the
    LRs kept, or the rule at the scheduler's clock, raising first what torch's ``get_lr`` would raise."""
    if closed_form or scheduler._closed_form_now():
        values = scheduler._closed_form_values(scheduler.last_epoch)
        return StepDecision(StepKind.CLOSED_FORM, scheduler._rule_clock(), values=values)
    if compat.INITIAL_FLAG:
        if scheduler._is_initial and scheduler._keeps_initial_lr(scheduler.last_epoch):
            return StepDecision(StepKind.KEEP, scheduler._rule_clock())
    elif scheduler._keeps_lr_unflagged(scheduler.last_epoch):
        return StepDecision(StepKind.KEEP, scheduler._rule_clock())
    t = scheduler._rule_clock()
    u = scheduler._second_clock()
    scheduler._check_like_torch(t)
    outdated = scheduler._program_outdated(scheduler.optimizer.param_groups)
    return StepDecision(StepKind.REBUILD if outdated else StepKind.ADVANCE, t, u)


# ---- the groups' LRs ---------------------------------------------------------------------------------

def _group_lrs(groups: Sequence[dict[str, Any]]) -> list[Any]:
    """torch's list of the groups' LRs (_param_groups_val_list): clones of tensors where the installed torch clones
    them, the tensors themselves where it does not (_torch_compat.group_lrs)."""
    return compat.group_lrs(groups)


def _tensor_binding(groups: Sequence[dict[str, Any]], lrs: list[Tensor],
                    replace: bool = True) -> tuple[tuple[Tensor, ...], int, int, Any] | None:
    """(views, address, dtype code, dtype) of one buffer holding every group's LR, binding the groups to
    fresh views when they do not hold consecutive views of one buffer yet (unless not ``replace``); None when
    the LRs cannot live in a CPU buffer (another device, a non-float dtype, mixed dtypes, requires_grad, not 1
    element)."""
    first = lrs[0]
    dtype = first.dtype
    code = _BUFFER_DTYPES.get(dtype)
    if code is None or first.device.type != "cpu":
        return None
    for v in lrs:
        if v.dtype != dtype or v.device != first.device or v.requires_grad or v.numel() != 1:
            return None
    size = first.element_size()
    base = first.data_ptr()
    storage = first.untyped_storage().data_ptr()
    if all(v.dim() == 0 and v.data_ptr() == base + g * size and v.untyped_storage().data_ptr() == storage
           for g, v in enumerate(lrs)):
        return tuple(lrs), base, code, dtype
    if not replace:
        return None
    buf = torch.empty(len(lrs), dtype=dtype)
    with torch.no_grad():
        for g, v in enumerate(lrs):
            buf[g] = v.detach().reshape(())
    views = tuple(buf.unbind(0))
    for group, view in zip(groups, views):
        group["lr"] = view
    return views, buf.data_ptr(), code, dtype


def _store(groups: Sequence[dict[str, Any]], values: Sequence[float]) -> None:
    """torch's _update_param_group_val for every group: fill_ a tensor LR in place, else assign."""
    for group, value in zip(groups, values, strict=True):
        current = group["lr"]
        if isinstance(current, Tensor):
            current.fill_(value)
        else:
            group["lr"] = value


def _store_momentum(groups: Sequence[dict[str, Any]], values: Sequence[float], use_beta1: bool) -> None:
    for group, value in zip(groups, values, strict=True):
        if use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value


def _first_tensor(*values: Any) -> Any:
    """The first tensor among ``values`` (the type torch's arithmetic on them gives), else 0.0."""
    return next((v for v in values if isinstance(v, Tensor)), 0.0)


def _like(reference: Any, value: float) -> Any:
    """value with torch's type for a group whose LR (or base LR) is ``reference``."""
    if isinstance(reference, Tensor):
        return torch.full((), value, dtype=reference.dtype, device=reference.device)
    return value
