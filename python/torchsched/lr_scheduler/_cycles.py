"""The drop-in twins of torch's cycling and annealing classes: CyclicLR, CosineAnnealingWarmRestarts,
OneCycleLR and SWALR."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor
from torch.optim import lr_scheduler as _tl
from torch.optim import swa_utils as _swa_utils

from .. import _compile
from .. import _validate as check
from .._program import Builder, Code
from .. import _torch_compat as compat
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
        known = compat.cyclic_scale(ref) if custom is None else None
        gamma = 0.0
        if known is not None:
            mode = {"triangular": 0.0, "triangular2": 1.0, "exp_range": 2.0}[known[0]]
            gamma = known[1]
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
        # triangular2's 2.0 ** (cycle - 1) overflows past cycle 1024 (OverflowError in torch): checked steps from
        # a little before
        max_step = math.inf if mode != 1.0 else 1023.0 * (self.total_size if self.scale_mode == "cycle" else 1.0)
        return _Spec(leaves, mleaves=mleaves, mom_key=mom_key, fns=fns,
                     mfns=fns if (custom is not None and self.cycle_momentum) else None,
                     cycle_total=self.total_size if (custom is not None and self.scale_mode == "cycle") else 0.0,
                     max_step=max_step, fast=fast)

    def _lr_types_like_torch(self, groups: list[dict[str, Any]], t: Any) -> list[Any]:
        # torch: base_lr + (max_lr - base_lr) * scale, from its own base_lrs / max_lrs (floats unless given tensors)
        return [_first_tensor(b, m) for b, m in zip(self.base_lrs, self.max_lrs)]

    def _runs_torch_code(self) -> bool:
        # a tensor base_lr argument: torch puts those tensors in the groups, aliased by base_lrs, and fills them
        return super()._runs_torch_code() or any(isinstance(b, Tensor) for b in self.base_lrs)

    def _lengths_differ(self) -> bool:
        n = len(self.optimizer.param_groups)
        lists = ("base_lrs", "max_lrs", "base_momentums", "max_momentums") if self.cycle_momentum else ("base_lrs",
                                                                                                       "max_lrs")
        return any(len(self.__dict__.get(name, ())) != n for name in lists)

    def _check_like_torch(self, t: Any) -> None:
        ref: Any = self.__dict__.get("_scale_fn_ref")
        known = compat.cyclic_scale(ref) if self._scale_fn_custom is None else None
        if known is not None and (known[0] == "triangular2" or (known[0] == "exp_range" and abs(known[1]) > 1)):
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
        if _compile.tracing():  # torch.compile traces one op that runs this step
            return _compile.traced_scheduler_step(self, "CosineAnnealingWarmRestarts.step", epoch)
        if epoch is not None:
            check.scheduler_epoch("CosineAnnealingWarmRestarts.step", epoch)
        self._follow_torch()
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
                T_cur = T_cur % self.T_i if compat.WARM_RESTARTS_MODULO else T_cur - self.T_i
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

    def _runs_torch_code(self) -> bool:
        # a torch that assigns the LRs: tensor LRs become the new tensors its formula returns
        return super()._runs_torch_code() or self._tensor_lrs_replaced()

    def _follow_torch(self) -> None:
        super()._follow_torch()
        if self._rule_in_core and not self._needs_recompile and self._tensor_lrs_replaced():
            self._invalidate_program()

    def _tensor_lrs_replaced(self) -> bool:
        return not compat.WARM_RESTARTS_FILL and any(isinstance(g.get("lr"), Tensor)
                                                     for g in self.optimizer.param_groups)

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
        if self._missing_group_keys():
            return True  # torch's own code: its errors come first (a KeyError, or its ValueError past total_steps)
        for phase in state.get("_schedule_phases", ()):  # the phase ends torch computes from pct_start
            check.scheduler_number("OneCycleLR", "pct_start", phase["end_step"])
        return super()._check_hyperparameters(state)

    def _group_hyperparameters(self) -> tuple[str, ...]:
        return self._group_keys()

    def _runs_torch_code(self) -> bool:
        # a scheduler pickled by an older torch holds anneal_func (any callable) instead of _anneal_func_type:
        # torch's get_lr calls it, and so do the steps here; a group without a key it reads (built with a
        # last_epoch, or added later) raises torch's errors in torch's order
        return super()._runs_torch_code() or "_anneal_func_type" not in self.__dict__ or self._missing_group_keys()

    def _missing_group_keys(self) -> bool:
        return any(key not in group for group in self.optimizer.param_groups for key in self._group_keys())

    def _group_keys(self) -> tuple[str, ...]:
        momenta = ("max_momentum", "base_momentum") if self.cycle_momentum else ()
        return ("initial_lr", "max_lr", "min_lr", *momenta)

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
        # an anneal function the core does not know (set by hand, or missing from a loaded state): torch's get_lr;
        # so do a group without swa_lr (torch's KeyError) and an int swa_lr (torch's linear anneal stores an int)
        return (super()._runs_torch_code() or compat.swa_anneal_strategy(self) is None
                or any(type(g.get("swa_lr", 0)) is int for g in self.optimizer.param_groups)
                or any("swa_lr" not in g for g in self.optimizer.param_groups))

    def _lr_types_like_torch(self, groups: list[dict[str, Any]], t: Any) -> list[Any]:
        # torch's previous LR is swa_lr itself where the previous alpha is 1, else computed from the group's LR
        step = max(1, t) if self.anneal_epochs == 0 else t
        anneal = compat.swa_anneal(compat.swa_anneal_strategy(self))
        prev_alpha = anneal(max(0, min(1, (step - 1) / max(1, self.anneal_epochs))))
        return [_first_tensor(g["swa_lr"]) if prev_alpha == 1 else _first_tensor(g["swa_lr"], g["lr"])
                for g in groups]

    def _compile_rule(self, groups: list[dict[str, Any]]) -> _Spec:
        linear = 1.0 if compat.swa_anneal_strategy(self) == "linear" else 0.0
        return _Spec([_leaf(Code.TORCH_SWA, g["swa_lr"], self.anneal_epochs, linear) for g in groups], clock=1,
                     watch=("swa_lr",), groups=groups)

    def _rule_clock(self) -> Any:
        return self._step_count - 1
