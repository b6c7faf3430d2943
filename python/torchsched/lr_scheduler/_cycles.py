"""The drop-in twins of torch's cycling and annealing classes: CyclicLR, CosineAnnealingWarmRestarts,
OneCycleLR and SWALR."""

from __future__ import annotations

import functools
import math
from typing import Any

from torch import Tensor
from torch.optim import lr_scheduler as _tl
from torch.optim import swa_utils as _swa_utils

from .. import _validate as check
from .._program import Builder, Code
from . import _torch_compat as compat
from ._base import _Core
from ._cuda_stepper import DeviceProgram, _locate_clock
from ._spec import _BETAS, _MOMENTUM, _NO_MOMENTUM, _base, _leaf, _Spec
from ._step import _first_tensor, _like, decide_lrs


class CyclicLR(_Core, _tl.CyclicLR):
    """torch's ``CyclicLR``, momentum (or Adam's beta1) cycling included. Runs in the core; a custom
    ``scale_fn`` runs in Python (called from the core once per group and step, in torch's order)."""

    _compiled_params = ("base_lrs", "max_lrs", "total_size", "step_ratio", "mode", "gamma", "scale_mode",
                        "_scale_fn_custom", "_scale_fn_ref", "cycle_momentum", "use_beta1", "base_momentums",
                        "max_momentums")
    _cycles_momentum = True
    _hyperparameters = ("total_size", "step_ratio", "gamma")
    _hyperparameter_lists = ("max_lrs", "base_momentums", "max_momentums")
    _required_state_keys: tuple[str, ...] = ("last_epoch", "base_lrs", "_scale_fn_custom")

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        n = len(groups)
        # torch's scale_fn: the custom one, else the one _init_scale_fn picked (exp_range's gamma bound then)
        custom = self._scale_fn_custom
        ref = self.__dict__.get("_scale_fn_ref")
        gamma = 0.0
        if custom is None and ref is _tl.CyclicLR._triangular_scale_fn:
            mode = 0.0
        elif custom is None and ref is _tl.CyclicLR._triangular2_scale_fn:
            mode = 1.0
        elif (custom is None and isinstance(ref, functools.partial)
              and ref.func is _tl.CyclicLR._exp_range_scale_fn and len(ref.args) == 1 and not ref.keywords):
            mode, gamma = 2.0, float(ref.args[0])
        else:
            mode = 3.0
            custom = custom if custom is not None else ref
        iterations = 0.0 if self.scale_mode == "cycle" else 1.0
        shared = (self.total_size, self.step_ratio, mode, gamma, iterations)
        # exp_range with |gamma| > 1: torch's gamma ** x raises OverflowError once it overflows (_check_like_torch)
        fast = len(self.base_lrs) == len(self.max_lrs) == n and self.step_ratio != 0 and abs(gamma) <= 1
        leaves = [_leaf(Code.TORCH_CYCLIC, _base(self, g), float(self.max_lrs[g]) if g < len(self.max_lrs) else 0.0,
                        *shared, 0.0) for g in range(n)]
        mleaves: list[Any] = []
        mom_key = _NO_MOMENTUM
        if self.cycle_momentum:
            mom_key = _BETAS if self.use_beta1 else _MOMENTUM
            bm, mm = self.base_momentums, self.max_momentums
            fast = fast and len(bm) == len(mm) == n
            mleaves = [_leaf(Code.TORCH_CYCLIC, float(bm[g]) if g < len(bm) else 0.0,
                             float(mm[g]) if g < len(mm) else 0.0, *shared, 1.0) for g in range(n)]
        fns = [custom] * n if custom is not None else None
        return _Spec(leaves, mleaves=mleaves, mom_key=mom_key, fns=fns,
                     mfns=fns if (custom is not None and self.cycle_momentum) else None,
                     cycle_total=self.total_size if (custom is not None and self.scale_mode == "cycle") else 0.0,
                     fast=fast)

    def _lr_types_like_torch(self, groups: list[dict[str, Any]], t: Any) -> list[Any]:
        # torch: base_lr + (max_lr - base_lr) * scale, from its own base_lrs / max_lrs (floats unless given tensors)
        return [_first_tensor(b, m) for b, m in zip(self.base_lrs, self.max_lrs)]

    def _runs_torch_code(self) -> bool:
        # a tensor base_lr argument: torch puts those tensors in the groups, aliased by base_lrs, and fills them
        return super()._runs_torch_code() or any(isinstance(b, Tensor) for b in self.base_lrs)

    def _check_like_torch(self, t: Any) -> None:
        ref = self.__dict__.get("_scale_fn_ref")
        if (self._scale_fn_custom is None and isinstance(ref, functools.partial)
                and ref.func is _tl.CyclicLR._exp_range_scale_fn and len(ref.args) == 1 and abs(ref.args[0]) > 1):
            ref(t if self.scale_mode == "iterations" else math.floor(1 + t / self.total_size))  # OverflowError
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        if x <= self.step_ratio:
            x / self.step_ratio
        else:
            (x - 1) / (self.step_ratio - 1)
        groups = self.optimizer.param_groups
        list(zip(self.base_lrs, self.max_lrs, strict=True))
        if len(self.base_lrs) != len(groups):
            list(zip(groups, self.base_lrs, strict=True))
        if self.cycle_momentum:
            list(zip(self.base_momentums, self.max_momentums, strict=True))
            list(zip(groups, self.base_momentums, strict=True))


class CosineAnnealingWarmRestarts(_Core, _tl.CosineAnnealingWarmRestarts):
    """torch's ``CosineAnnealingWarmRestarts`` (SGDR). The LRs run in the core; the restart bookkeeping
    (``T_cur``, ``T_i``, as torch keeps them) is a couple of integer updates in Python."""

    _compiled_params = ("base_lrs", "T_0", "T_mult", "eta_min")
    _hyperparameters = ("T_0", "T_mult", "eta_min", "T_i", "T_cur")

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        n = len(groups)
        return _Spec([_leaf(Code.TORCH_COSINE_CLOSED, _base(self, g), self.eta_min, 1.0, 1.0) for g in range(n)],
                     fast=len(self.base_lrs) == n)

    def step(self, epoch: Any = None) -> None:  # type: ignore[override]
        """Step the scheduler, after every batch if you like: ``step(epoch + i / iters)`` works as in torch."""
        if epoch is not None:
            check.scheduler_epoch("CosineAnnealingWarmRestarts.step", epoch)
        if self._needs_recompile:
            self._recompile()
        if not self._rule_in_core:
            _tl.CosineAnnealingWarmRestarts.step(self, epoch)
            return
        self._restart_bookkeeping(epoch)
        self._write_step(decide_lrs(self, False))

    def _restart_bookkeeping(self, epoch: Any) -> None:
        """torch's ``T_cur``, ``T_i`` and ``last_epoch`` after a step, or at a given (fractional) epoch."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            T_cur = self.T_cur + 1
            if T_cur >= self.T_i:
                T_cur = T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
            self.T_cur = T_cur
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch < self.T_0:
                self.T_i = self.T_0
                self.T_cur = epoch
            elif self.T_mult == 1:
                self.T_cur = epoch % self.T_0
            else:
                n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                self.T_i = self.T_0 * self.T_mult ** (n)
        self.last_epoch = math.floor(epoch)

    def _rule_clock(self) -> Any:
        return self.T_cur

    def _second_clock(self) -> float:
        return float(self.T_i)

    def _check_like_torch(self, t: Any) -> None:
        groups = self.optimizer.param_groups
        if len(self.base_lrs) != len(groups):
            list(zip(groups, self.base_lrs, strict=True))  # torch's ValueError

    def _device_program(self, spec: _Spec, groups: list[dict[str, Any]]) -> DeviceProgram | None:
        """On the device the clock is a step counter, so the restarts are compiled in: a sequence of torch's
        closed-form cosine, one piece per period (T_0, T_0 T_mult, ...), the engine step counting from the
        start of the first period. T_mult > 1 needs at most 53 pieces to reach 2**53 steps; T_mult == 1
        compiles 32 periods and goes back to the first one after the last (a step set: two launches, once
        every 32 periods). torch's own expression, in torch's order, on (T_cur, T_i) as integers."""
        T0, mult = self.T_0, self.T_mult
        if not (isinstance(T0, int) and isinstance(mult, int) and T0 > 0 and mult >= 1):
            return None
        periods: list[int] = []
        starts: list[int] = []
        start = 0
        limit = 2 ** 53
        while True:
            period = T0 * mult ** len(periods)
            periods.append(period)
            starts.append(start)
            start += period
            if start >= limit or (mult == 1 and len(periods) == 32) or len(periods) >= 64:
                break
        end = start
        builder = Builder()
        bounds = builder.table([float(b) for b in starts[1:]]) if len(starts) > 1 else 0
        eta = float(self.eta_min)

        class _Piece:
            def __init__(self, base: float, period: int) -> None:
                self.leaf = _leaf(Code.TORCH_COSINE_CLOSED, base, eta, float(period), 0.0)

            def _emit(self, b: Builder) -> None:
                code, params, _, _ = self.leaf
                b.leaf(code, params)

        seen: dict[float, int] = {}
        roots = []
        for g in range(len(groups)):
            base = _base(self, g)
            if base not in seen:
                seen[base] = len(builder.ops)
                if len(periods) == 1:
                    _Piece(base, periods[0])._emit(builder)
                else:
                    pieces: list[Any] = [_Piece(base, p) for p in periods]
                    builder.node(Code.SEQUENCE, pieces, (), a=bounds)  # type: ignore[arg-type]
            roots.append(seen[base])
        first: dict[int, int] = {}
        for p, s0 in zip(periods, starts):
            first.setdefault(p, s0)

        def locate(ts: Any, t: Any, u: float) -> int | None:
            T_cur = _locate_clock(ts, t, u)
            T_i = _locate_clock(ts, u, math.nan)
            if T_cur is None or T_i is None or T_cur >= T_i or T_i not in first:
                return None
            if mult == 1 and ts.aligned:
                nxt = ts.engine.step + 1
                if nxt < end and nxt % T0 == T_cur:
                    return nxt
            return first[T_i] + T_cur

        return builder.program(), roots, [1.0] * len(groups), locate

    def get_lr(self) -> list[Any]:
        """The LRs at the current ``T_cur`` and ``T_i`` (computed by the core)."""
        if not self._get_lr_in_core():
            return _tl.CosineAnnealingWarmRestarts.get_lr(self)
        values = self._stepper.compute(self.T_cur, None, float(self.T_i))
        return [_like(b, v) for b, v in zip(self.base_lrs, values)]

    get_lr._runs_in_core = True  # type: ignore[attr-defined]


class OneCycleLR(_Core, _tl.OneCycleLR):
    """torch's ``OneCycleLR`` (two or three phases, cos or linear), momentum (or Adam's beta1) cycling
    included. Runs in the core. The phase LRs and momenta come from the param groups (``initial_lr``,
    ``max_lr``, ``min_lr``, ``max_momentum``, ``base_momentum``), as in torch: editing one between steps
    changes the schedule from the next step (that step recompiles the program)."""

    _compiled_params = ("base_lrs", "total_steps", "_schedule_phases", "_anneal_func_type", "cycle_momentum",
                        "use_beta1")
    _cycles_momentum = True
    _watches_group_keys = True
    _hyperparameters = ("total_steps",)

    def _check_hyperparameters(self, state: Any) -> bool:
        for phase in state.get("_schedule_phases", ()):  # the phase ends torch computes from pct_start
            check.scheduler_number("OneCycleLR", "pct_start", phase["end_step"])
        return super()._check_hyperparameters(state)

    def _group_hyperparameters(self) -> tuple[str, ...]:
        momenta = ("max_momentum", "base_momentum") if self.cycle_momentum else ()
        return ("initial_lr", "max_lr", "min_lr", *momenta)

    def _runs_torch_code(self) -> bool:
        # a scheduler pickled by an older torch holds anneal_func (any callable) instead of _anneal_func_type:
        # torch's get_lr calls it, and so do the steps here
        return super()._runs_torch_code() or "_anneal_func_type" not in self.__dict__

    def _phases(self) -> tuple[list[float], bool]:
        phases = self._schedule_phases
        three = len(phases) == 3
        keys = [(p["start_lr"], p["end_lr"]) for p in phases]
        expected = ([("initial_lr", "max_lr"), ("max_lr", "initial_lr"), ("initial_lr", "min_lr")] if three
                    else [("initial_lr", "max_lr"), ("max_lr", "min_lr")])
        if keys != expected:
            raise ValueError(f"OneCycleLR phases {keys} are not torch's two- or three-phase layout")
        ends = [float(p["end_step"]) for p in phases]
        return ends + [0.0] * (3 - len(ends)), three

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        ends, three = self._phases()
        phases = self._schedule_phases
        kind = 0.0 if self._anneal_func_type == "cos" else 1.0
        shared = (kind, 1.0 if three else 0.0, *ends)
        leaves = [_leaf(Code.TORCH_ONE_CYCLE, *shared, g["initial_lr"], g["max_lr"], g[phases[-1]["end_lr"]])
                  for g in groups]
        starts = [0.0] + [float(p["end_step"]) for p in phases[:-1]]
        fast = all(float(p["end_step"]) != s for p, s in zip(phases, starts))
        mleaves: list[Any] = []
        mom_key = _NO_MOMENTUM
        watch: tuple[str, ...] = ("initial_lr", "max_lr", phases[-1]["end_lr"])
        if self.cycle_momentum:
            mom_key = _BETAS if self.use_beta1 else _MOMENTUM
            mkeys = (phases[0]["start_momentum"], phases[0]["end_momentum"], phases[-1]["end_momentum"])
            mleaves = [_leaf(Code.TORCH_ONE_CYCLE, *shared, *(g[k] for k in mkeys)) for g in groups]
            watch += tuple(dict.fromkeys(mkeys))
        return _Spec(leaves, mleaves=mleaves, mom_key=mom_key, max_step=self.total_steps, fast=fast, watch=watch,
                     groups=groups)

    def _lr_types_like_torch(self, groups: list[dict[str, Any]], t: Any) -> list[Any]:
        # torch anneals between the current phase's two group keys (floats unless a tensor was put there)
        phase = next((p for p in self._schedule_phases if t <= p["end_step"]), self._schedule_phases[-1])
        return [_first_tensor(g[phase["start_lr"]], g[phase["end_lr"]]) for g in groups]

    def _check_like_torch(self, t: Any) -> None:
        if t > self.total_steps:
            raise ValueError(f"Tried to step {t} times. The specified number of total steps is {self.total_steps}")
        start = 0.0
        for i, phase in enumerate(self._schedule_phases):
            end = phase["end_step"]
            if t <= end or i == len(self._schedule_phases) - 1:
                (t - start) / (end - start)  # torch's ZeroDivisionError for an empty phase
                break
            start = phase["end_step"]


class SWALR(_Core, _swa_utils.SWALR):
    """torch's ``SWALR`` (``torch.optim.swa_utils``): anneals each group's LR to its ``swa_lr`` over
    ``anneal_epochs`` (cos or linear), then holds it. Runs in the core; ``swa_lr`` comes from the groups,
    as in torch: editing it between steps takes effect at the next step (which recompiles the program)."""

    _compiled_params = ("base_lrs", "anneal_epochs", compat.SWA_STRATEGY_KEY)
    _hyperparameters = ("anneal_epochs",)

    def _group_hyperparameters(self) -> tuple[str, ...]:
        return ("swa_lr",)
    _watches_group_keys = True

    def _runs_torch_code(self) -> bool:
        # an anneal function the core does not know (set by hand, or missing from a loaded state): torch's get_lr
        return super()._runs_torch_code() or compat.swa_anneal_strategy(self) is None

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        linear = 1.0 if compat.swa_anneal_strategy(self) == "linear" else 0.0
        return _Spec([_leaf(Code.TORCH_SWA, g["swa_lr"], self.anneal_epochs, linear) for g in groups], clock=1,
                     watch=("swa_lr",), groups=groups)

    def _rule_clock(self) -> Any:
        return self._step_count - 1
