"""The drop-in twins of torch's step-indexed classes: LambdaLR, MultiplicativeLR, StepLR, MultiStepLR,
ConstantLR, LinearLR, ExponentialLR, PolynomialLR and CosineAnnealingLR. Each compiles its rule (and, where torch
has one, its closed form for ``step(epoch)``) into a core program and names the errors torch would raise."""

from __future__ import annotations

import math
import sys
from bisect import bisect_right
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor
from torch.optim import lr_scheduler as _tl

from .. import _validate as check
from .._program import Code
from ..schedules import Schedule
from .. import _torch_compat as compat
from ._base import _ClosedForm, _Core
from ._spec import _PREV, _SCALE, _base, _leaf, _schedule_or_input, _Spec


def _check_power_like_torch(bases: Any, gamma: Any, n: Any) -> None:
    """Raises what torch's closed form ``base_lr * gamma ** n`` raises: Python's OverflowError for a float power
    out of range, or for an int power that a float (or, past 64 bits, a tensor) cannot take."""
    power = gamma ** n
    if isinstance(power, int) and abs(power) >= 2**63:
        for base in bases:
            base * power


def _finite_power(base: float, gamma: Any, n: int, float32: bool = False) -> float:
    """``base * gamma ** n`` for a table the core reads (finite only): where Python's power overflows torch raises
    first (_check_power_like_torch); a product past the float range is held as the largest float. A float32 base
    LR tensor multiplies in float32, as torch's tensor arithmetic does (the power cast to float32 first)."""
    try:
        power = float(gamma ** n)
    except OverflowError:
        return 0.0
    if float32:
        with np.errstate(over="ignore"):
            value = float(np.float32(base) * np.float32(power))
    else:
        value = base * power
    return value if math.isfinite(value) else math.copysign(sys.float_info.max, value)


class _Lambdas:
    """The argument checks of LambdaLR and MultiplicativeLR: every ``lr_lambda`` a callable (or a torchsched
    schedule), every state dict entry for them None or a callable object's ``__dict__``."""

    __slots__ = ()
    _required_state_keys: tuple[str, ...] = ("last_epoch", "base_lrs", "lr_lambdas")

    def _check_hyperparameters(self, state: Mapping[str, Any]) -> bool:
        for i, fn in enumerate(self.lr_lambdas):  # type: ignore[attr-defined]
            check.scheduler_lambda(type(self).__name__, f"lr_lambda[{i}]", fn)
        return super()._check_hyperparameters(state)  # type: ignore[misc]

    def _check_state(self, owner: str, state: Mapping[str, Any]) -> None:
        super()._check_state(owner, state)  # type: ignore[misc]
        saved = state["lr_lambdas"]
        if not isinstance(saved, (list, tuple)):
            raise TypeError(f"{owner}: lr_lambdas must be a list, got {type(saved).__name__}")
        if len(saved) > len(self.lr_lambdas):  # type: ignore[attr-defined]
            raise ValueError(f"{owner}: lr_lambdas has {len(saved)} entries for "
                             f"{len(self.lr_lambdas)} lambdas")  # type: ignore[attr-defined]
        for i, entry in enumerate(saved):
            if entry is not None and not isinstance(entry, dict):
                raise TypeError(f"{owner}: lr_lambdas[{i}] must be None or a dict, got {type(entry).__name__}")


class LambdaLR(_Lambdas, _Core, _tl.LambdaLR):
    """torch's ``LambdaLR``: each group's LR is its initial LR times ``lr_lambda(epoch)``.

    A Python ``lr_lambda`` runs in Python (called from the core once per group and step, in torch's
    order); the multiplications and stores run in the core in one call. A :mod:`torchsched.schedules`
    spec given as ``lr_lambda`` runs entirely in the core. ``state_dict`` saves callable objects'
    ``__dict__`` as torch does, and nothing for a schedule spec (it is immutable).
    """

    _compiled_params = ("base_lrs", "lr_lambdas")

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        lambdas = list(self.lr_lambdas)
        n = len(groups)
        fast = len(lambdas) == len(self.base_lrs) == n
        leaves = [_schedule_or_input(lambdas[g]) if g < len(lambdas) else _leaf(Code.TORCH_INPUT) for g in range(n)]
        fns = [None if (g >= len(lambdas) or isinstance(lambdas[g], Schedule)) else lambdas[g] for g in range(n)]
        return _Spec(leaves, combine=_SCALE, scale=[_base(self, g) for g in range(n)],
                     fns=fns if any(f is not None for f in fns) else None, fast=fast)

    def _lengths_differ(self) -> bool:
        return super()._lengths_differ() or len(self.lr_lambdas) != len(self.base_lrs)

    def _check_like_torch(self, t: Any) -> None:
        if len(self.lr_lambdas) != len(self.base_lrs):
            list(zip(self.lr_lambdas, self.base_lrs, strict=True))
        groups = self.optimizer.param_groups
        if len(self.base_lrs) != len(groups):
            list(zip(groups, self.base_lrs, strict=True))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [None if isinstance(fn, Schedule) else s
                               for fn, s in zip(self.lr_lambdas, state["lr_lambdas"])]
        return state


class MultiplicativeLR(_Lambdas, _Core, _tl.MultiplicativeLR):
    """torch's ``MultiplicativeLR``: each step multiplies the current LR by ``lr_lambda(epoch)``.

    A Python ``lr_lambda`` runs in Python (called from the core once per group and step, in torch's
    order); the multiplications and stores run in the core in one call. A :mod:`torchsched.schedules`
    spec given as ``lr_lambda`` runs entirely in the core.
    """

    _compiled_params = ("base_lrs", "lr_lambdas")

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        lambdas = list(self.lr_lambdas)
        n = len(groups)
        leaves = [_schedule_or_input(lambdas[g]) if g < len(lambdas) else _leaf(Code.TORCH_INPUT) for g in range(n)]
        fns = [None if (g >= len(lambdas) or isinstance(lambdas[g], Schedule)) else lambdas[g] for g in range(n)]
        # without torch's initial-step flag, t <= 0 keeps the LRs: a state loaded below 0 steps in Python
        return _Spec(leaves, combine=_PREV, fns=fns if any(f is not None for f in fns) else None,
                     fast=len(lambdas) == n and (compat.INITIAL_FLAG or self.last_epoch >= -1))

    def _keeps_initial_lr(self, t: Any) -> bool:
        return True

    def _keeps_lr_unflagged(self, t: Any) -> bool:
        return t <= 0

    def _lengths_differ(self) -> bool:
        return len(self.lr_lambdas) != len(self.optimizer.param_groups)

    def _check_like_torch(self, t: Any) -> None:
        groups = self.optimizer.param_groups
        if len(self.lr_lambdas) != len(groups):
            list(zip(self.lr_lambdas, groups, strict=True))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [None if isinstance(fn, Schedule) else s
                               for fn, s in zip(self.lr_lambdas, state["lr_lambdas"])]
        return state


class StepLR(_ClosedForm, _Core, _tl.StepLR):
    """torch's ``StepLR``: the LR is multiplied by ``gamma`` every ``step_size`` epochs. Runs in the core."""

    _reads_base_lrs = False
    _compiled_params = ("base_lrs", "step_size", "gamma")
    _hyperparameters = ("step_size", "gamma")

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_STEP, self.step_size, self.gamma)] * len(groups), fast=self.step_size != 0)

    def _compile_closed_form(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_STEP_CLOSED, _base(self, g), self.step_size, self.gamma)
                      for g in range(len(groups))])

    def _check_like_torch(self, t: Any) -> None:
        if self.step_size == 0 and t != 0:
            t % self.step_size  # torch's ZeroDivisionError

    def _check_closed_form_like_torch(self, t: Any) -> None:
        _check_power_like_torch(self.base_lrs, self.gamma, t // self.step_size)  # (ZeroDivisionError first)
        super()._check_closed_form_like_torch(t)


class MultiStepLR(_ClosedForm, _Core, _tl.MultiStepLR):
    """torch's ``MultiStepLR``: the LR is multiplied by ``gamma`` at each milestone (a milestone given
    twice counts twice). Runs in the core."""

    _reads_base_lrs = False
    _compiled_params = ("base_lrs", "milestones", "gamma")
    _hyperparameters = ("gamma",)

    def _check_hyperparameters(self, state: Mapping[str, Any]) -> bool:
        milestones = state.get("milestones", {})
        if not isinstance(milestones, Mapping):
            raise TypeError(f"MultiStepLR: milestones must be a Counter, got {type(milestones).__name__}")
        tensor = False
        for m, count in milestones.items():
            tensor = isinstance(check.scheduler_number("MultiStepLR", "milestones", m), Tensor) or tensor
            check.scheduler_count("MultiStepLR", f"milestones[{m!r}]", count)
        return super()._check_hyperparameters(state) or tensor

    def _milestones(self) -> list[float]:
        return sorted(float(m) for m in self.milestones.elements())

    def _overflows(self) -> bool:
        """torch's ``gamma ** count`` at a milestone given ``count`` times overflows (OverflowError in torch)."""
        try:
            for count in set(self.milestones.values()):
                float(self.gamma) ** count
        except OverflowError:
            return True
        return False

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_MULTISTEP, self.gamma, table=self._milestones())] * len(groups),
                     fast=not self._overflows())

    def _check_like_torch(self, t: Any) -> None:
        if t in self.milestones and self._overflows():
            float(self.gamma) ** self.milestones[t]  # torch's OverflowError

    def _compile_closed_form(self, groups: list[dict[str, Any]]) -> _Spec:
        milestones = self._milestones()
        leaves = []
        for g in range(len(groups)):
            base = _base(self, g)
            b = self.base_lrs[g] if g < len(self.base_lrs) else None
            f32 = isinstance(b, Tensor) and b.dtype == torch.float32
            values = [_finite_power(base, self.gamma, k, f32) for k in range(len(milestones) + 1)]
            leaves.append(_leaf(Code.PIECEWISE_CONST, 0.0, table=milestones + values, count=len(milestones)))
        return _Spec(leaves)

    def _check_closed_form_like_torch(self, t: Any) -> None:
        _check_power_like_torch(self.base_lrs, self.gamma, bisect_right(self._milestones(), t))
        super()._check_closed_form_like_torch(t)


class ConstantLR(_ClosedForm, _Core, _tl.ConstantLR):
    """torch's ``ConstantLR``: the LR is multiplied by ``factor`` until ``total_iters``. Runs in the core."""

    _reads_base_lrs = False
    _compiled_params = ("base_lrs", "factor", "total_iters")
    _hyperparameters = ("factor", "total_iters")

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_CONSTANT, self.factor, self.total_iters)] * len(groups), fast=self.factor != 0)

    def _compile_closed_form(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_CONSTANT_CLOSED, _base(self, g), self.factor, self.total_iters)
                      for g in range(len(groups))])

    def _check_like_torch(self, t: Any) -> None:
        if self.factor == 0 and t != 0 and t == self.total_iters:
            1.0 / self.factor  # torch's ZeroDivisionError


class LinearLR(_ClosedForm, _Core, _tl.LinearLR):
    """torch's ``LinearLR``: the LR factor moves linearly from ``start_factor`` to ``end_factor`` over
    ``total_iters`` steps. Runs in the core."""

    _reads_base_lrs = False
    _compiled_params = ("base_lrs", "start_factor", "end_factor", "total_iters")
    _hyperparameters = ("start_factor", "end_factor", "total_iters")

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        # a negative last_epoch (a loaded state dict) can meet torch's zero denominator: those steps run checked
        return _Spec([_leaf(Code.TORCH_LINEAR, self.start_factor, self.end_factor, self.total_iters)] * len(groups),
                     fast=self.last_epoch >= -1)

    def _check_like_torch(self, t: Any) -> None:
        if t < 0:  # torch's ZeroDivisionError where its denominator is 0
            s, e = self.start_factor, self.end_factor
            (e - s) / (self.total_iters * s + (t - 1) * (e - s))

    def _compile_closed_form(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_LINEAR_CLOSED, _base(self, g), self.start_factor, self.end_factor,
                            self.total_iters) for g in range(len(groups))])

    def _keeps_initial_lr(self, t: Any) -> bool:
        return t != 0

    def _check_closed_form_like_torch(self, t: Any) -> None:
        if self.total_iters == 0:
            (self.end_factor - self.start_factor) * min(self.total_iters, t) / self.total_iters
        super()._check_closed_form_like_torch(t)


class ExponentialLR(_ClosedForm, _Core, _tl.ExponentialLR):
    """torch's ``ExponentialLR``: the LR is multiplied by ``gamma`` every step. Runs in the core."""

    _reads_base_lrs = False
    _compiled_params = ("base_lrs", "gamma")
    _hyperparameters = ("gamma",)

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_EXPONENTIAL, self.gamma, compat.CHAIN_AT_0)] * len(groups))

    def _compile_closed_form(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_EXPONENTIAL_CLOSED, _base(self, g), self.gamma) for g in range(len(groups))])

    def _keeps_initial_lr(self, t: Any) -> bool:
        return True

    def _keeps_lr_unflagged(self, t: Any) -> bool:
        return t == 0

    def _check_closed_form_like_torch(self, t: Any) -> None:
        _check_power_like_torch(self.base_lrs, self.gamma, t)
        super()._check_closed_form_like_torch(t)


class PolynomialLR(_ClosedForm, _Core, _tl.PolynomialLR):
    """torch's ``PolynomialLR``: the LR decays as ``(1 - t / total_iters) ** power``. Runs in the core."""

    _reads_base_lrs = False
    _compiled_params = ("base_lrs", "total_iters", "power")
    _hyperparameters = ("total_iters", "power")

    def _hazard(self) -> bool:
        return self.total_iters == 0 or self.power < 0

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_POLYNOMIAL, self.total_iters, self.power, compat.CHAIN_AT_0)] * len(groups),
                     fast=not self._hazard())

    def _compile_closed_form(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_POLYNOMIAL_CLOSED, _base(self, g), self.total_iters, self.power)
                      for g in range(len(groups))])

    def _keeps_initial_lr(self, t: Any) -> bool:
        return True

    def _keeps_lr_unflagged(self, t: Any) -> bool:
        return t == 0

    def _check_like_torch(self, t: Any) -> None:
        if self._hazard() and not t > self.total_iters:
            ((1.0 - t / self.total_iters) / (1.0 - (t - 1) / self.total_iters)) ** self.power

    def _check_closed_form_like_torch(self, t: Any) -> None:
        if self._hazard():
            (1.0 - min(self.total_iters, t) / self.total_iters) ** self.power
        super()._check_closed_form_like_torch(t)


class CosineAnnealingLR(_ClosedForm, _Core, _tl.CosineAnnealingLR):
    """torch's ``CosineAnnealingLR`` (its recursive form, and its closed form for ``step(epoch)``). Runs
    in the core."""

    _compiled_params = ("base_lrs", "T_max", "eta_min")
    _hyperparameters = ("T_max", "eta_min")

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        n = len(groups)
        hazard = self.T_max == 0 or len(self.base_lrs) != n
        # torch's rule depends on T_max only through cos(pi t / T_max) and multiples of 2 T_max: a
        # negative T_max acts as its absolute value; 0 raises ZeroDivisionError in _check_like_torch first.
        T = abs(self.T_max) if self.T_max != 0 else 1.0
        return _Spec([_leaf(Code.TORCH_COSINE, _base(self, g), self.eta_min, T, compat.CHAIN_AT_0) for g in range(n)],
                     fast=not hazard)

    def _compile_closed_form(self, groups: list[dict[str, Any]]) -> _Spec:
        return _Spec([_leaf(Code.TORCH_COSINE_CLOSED, _base(self, g), self.eta_min, self.T_max, 0.0)
                      for g in range(len(groups))])

    def _keeps_initial_lr(self, t: Any) -> bool:
        return True

    def _keeps_lr_unflagged(self, t: Any) -> bool:
        return t == 0

    def _closed_form_now(self) -> bool:
        return not self._is_initial and self._step_count == 1 and self.last_epoch > 0

    def _check_like_torch(self, t: Any) -> None:
        T = self.T_max
        if T == 0:
            (t - 1 - T) % (2 * T)
        groups = self.optimizer.param_groups
        if len(self.base_lrs) != len(groups) and (t - 1 - T) % (2 * T) == 0:
            list(zip(self.base_lrs, groups, strict=True))

    def _check_closed_form_like_torch(self, t: Any) -> None:
        if self.T_max == 0:
            math.pi * t / self.T_max
        groups = self.optimizer.param_groups
        if len(self.base_lrs) != len(groups):
            list(zip(self.base_lrs, groups, strict=True))
