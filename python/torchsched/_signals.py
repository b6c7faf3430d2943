"""The signal-driven rules (reduce on plateau, the average-gradient rule): their state, and every update of
it, as tensor operations on the params' device.

Nothing here reads a tensor on the host: no ``.item()``, ``float()``, ``bool()``, ``nonzero`` or copy
between devices. Decisions are ``torch.where`` selections, so a step is the same device work whatever the
signal says, and it can be captured in a CUDA graph. The engines read the result, each group's current
factor, from one float64 table (:attr:`SignalBank.factors`, a row per group and a column per signal
leaf) that this module fills in place.

The plateau rule is torch's ``ReduceLROnPlateau``, decision for decision (:func:`plateau_update`,
:func:`plateau_reduce`); the drop-in :class:`torchsched.lr_scheduler.ReduceLROnPlateau` runs the same two
functions when it is fed a tensor metric.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from . import _core
from . import _torch_compat as compat
from . import _validate as check
from ._validate import Emitter as Schedule

F64 = torch.float64
#: The CPU fast paths, where reading a tensor waits for nothing: the average-gradient rule in one core call
#: per rule (instead of ~30 tensor ops), and the drop-in ReduceLROnPlateau's float path for a CPU tensor
#: metric. The tests turn them off to run, on the CPU, the tensor code other devices run.
CPU_FAST_PATH = True
REDUCTIONS = ("mean", "sum", "max", "min")


# ---- agreement across processes ------------------------------------------------------------------

def distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def check_reduce(reduce: Any) -> str | None:
    if reduce is None:
        return None
    return REDUCTIONS[check.choice("reduce", reduce, REDUCTIONS)]


def all_reduce(value: Tensor, reduce: str | None, process_group: Any = None) -> Tensor:
    """``value`` reduced over the processes of ``process_group`` (every rank gets the same tensor), as a
    collective on the tensor itself; ``value`` unchanged when torch.distributed is not initialized or
    ``reduce`` is None. The mean is a sum divided by the world size (gloo has no average)."""
    if reduce is None or not distributed():
        return value
    dist = torch.distributed
    out = value.clone()
    op = {"mean": dist.ReduceOp.SUM, "sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
          "min": dist.ReduceOp.MIN}[reduce]
    dist.all_reduce(out, op=op, group=process_group)
    if reduce == "mean":
        out = out / dist.get_world_size(process_group)
    return out


def as_signal(value: Any, device: torch.device, name: str = "metric") -> Tensor:
    """A 0-d float64 tensor on ``device`` from a float or a one-element tensor, without a host read: a
    Python number becomes a fill on the device, a tensor is widened where it lies (it must lie there)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single value, got a tensor of shape {tuple(value.shape)}")
        if value.device != device:
            raise ValueError(f"{name} is on {value.device}, the signal state on {device}: reduce the metric "
                             f"on {device} (a copy between devices would wait for it)")
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} is a {value.dtype} tensor; a signal is a float value")
        return value.detach().reshape(()).to(F64)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float or a one-element tensor, got {type(value).__name__}")
    return torch.full((), float(value), dtype=F64, device=device)


# ---- the plateau rule ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PlateauConfig:
    """torch ``ReduceLROnPlateau``'s hyperparameters; ``patience`` and ``cooldown`` as the counts torch's
    comparisons amount to (the floor of a fractional patience, the ceiling of a fractional cooldown)."""

    mode_max: bool
    threshold_rel: bool
    factor: float
    threshold: float
    patience: int
    cooldown: int
    eps: float

    @classmethod
    def of(cls, mode: str, factor: float, patience: float, threshold: float, threshold_mode: str,
           cooldown: float, eps: float) -> PlateauConfig:
        return cls(mode == "max", threshold_mode == "rel", float(factor), float(threshold),
                   _count(patience, math.floor), _count(cooldown, math.ceil), float(eps))

    def is_better(self, a: Tensor, best: Tensor) -> Tensor:
        """torch's comparison, with its constants rounded as torch rounds them (Python floats)."""
        if not self.mode_max and self.threshold_rel:
            return a < best * (1.0 - self.threshold)
        if not self.mode_max:
            return a < best - self.threshold
        if self.threshold_rel:
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def worst(self) -> float:
        return -math.inf if self.mode_max else math.inf


def _count(value: float, rounding: Any) -> int:
    v = float(value)
    if math.isinf(v):
        return check.STEP_LIMIT if v > 0 else -check.STEP_LIMIT
    return int(rounding(v))


class PlateauState:
    """The decision state of one plateau rule: 0-d tensors on one device (best value, bad-epoch count,
    cooldown counter, and the count of non-finite signals the rule ignored)."""

    __slots__ = ("best", "num_bad_epochs", "cooldown_counter", "ignored")

    def __init__(self, config: PlateauConfig, device: torch.device) -> None:
        self.best = torch.full((), config.worst(), dtype=F64, device=device)
        self.num_bad_epochs = torch.zeros((), dtype=torch.int64, device=device)
        self.cooldown_counter = torch.zeros((), dtype=torch.int64, device=device)
        self.ignored = torch.zeros((), dtype=torch.int64, device=device)

    def tensors(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in self.__slots__}


def plateau_update(config: PlateauConfig, state: PlateauState, metric: Tensor, *,
                   ignore_non_finite: bool) -> Tensor:
    """One observation, in place on ``state``, in torch's order: better or one more bad epoch, the cooldown
    tick, then the reset when due. Returns the 0-d bool "the LRs are due for a reduction".

    With ``ignore_non_finite`` a NaN or infinite metric changes nothing but the ``ignored`` count (the
    schedules' rule); without it, it counts as torch counts it (a bad epoch: the drop-in's rule)."""
    better = config.is_better(metric, state.best)
    bad = torch.where(better, torch.zeros_like(state.num_bad_epochs), state.num_bad_epochs + 1)
    best = torch.where(better, metric, state.best)
    cooling = state.cooldown_counter > 0
    cooldown = torch.where(cooling, state.cooldown_counter - 1, state.cooldown_counter)
    bad = torch.where(cooling, torch.zeros_like(bad), bad)
    due = bad > config.patience
    if ignore_non_finite:
        finite = torch.isfinite(metric)
        due = due & finite
        state.ignored.add_((~finite).to(torch.int64))
        best = torch.where(finite, best, state.best)
        bad = torch.where(finite, bad, state.num_bad_epochs)
        cooldown = torch.where(finite, cooldown, state.cooldown_counter)
    state.best.copy_(best)
    state.num_bad_epochs.copy_(torch.where(due, torch.zeros_like(bad), bad))
    state.cooldown_counter.copy_(torch.where(due, torch.full_like(cooldown, config.cooldown), cooldown))
    return due


def plateau_reduce(config: PlateauConfig, due: Tensor, lrs: Tensor, min_lrs: Tensor) -> Tensor:
    """Every group's LR after a possible reduction (float64 [G]): ``max(lr * factor, min_lr)`` where the
    rule is due and the drop exceeds ``eps``, else the LR as it was (torch's ``_reduce_lr``)."""
    scaled = lrs * config.factor
    new = torch.where(min_lrs > scaled, min_lrs, scaled)  # Python's max(scaled, min_lr)
    return torch.where(due & (lrs - new > config.eps), new, lrs)


# ---- the average-gradient rule -------------------------------------------------------------------

NORMS = ("mean_abs", "l2")


@dataclass(frozen=True)
class GradientConfig:
    norm: str  # "mean_abs": mean |g| over the group's gradient elements; "l2": the group's gradient L2 norm
    ema: float  # smoothing of G: G_s = ema * G_s + (1 - ema) * G (0: none)
    min_factor: float  # clamps of G_s / G_0 (0 and inf: none)
    max_factor: float


class GradientState:
    """Per group (float64 [G] on one device): G_0 (NaN until the first finite, positive observation), the
    smoothed last G (NaN until the first finite one), the current factor, and the ignored count."""

    __slots__ = ("g0", "last", "factor", "ignored")

    def __init__(self, groups: int, device: torch.device) -> None:
        self.g0 = torch.full((groups,), math.nan, dtype=F64, device=device)
        self.last = torch.full((groups,), math.nan, dtype=F64, device=device)
        self.factor = torch.ones(groups, dtype=F64, device=device)
        self.ignored = torch.zeros(groups, dtype=torch.int64, device=device)

    def tensors(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in self.__slots__}


def gradient_update(config: GradientConfig, state: GradientState, g: Tensor, skipped: Tensor | None) -> None:
    """One observation of every group's G (float64 [G]), in place; nothing where ``skipped`` (GradScaler's
    ``found_inf``, non-zero: the optimizer did not step) or where G is not finite (counted as ignored).
    The factor is ``G_last / G_0``, clamped, and stays where it was if that would not be finite."""
    finite = torch.isfinite(g)
    taken = finite if skipped is None else finite & (skipped.reshape(()) == 0)
    missed = ~finite if skipped is None else ~finite & (skipped.reshape(()) == 0)
    state.ignored.add_(missed.to(torch.int64))
    first = taken & torch.isnan(state.g0) & (g > 0)
    state.g0.copy_(torch.where(first, g, state.g0))
    smoothed = torch.where(torch.isnan(state.last), g, state.last * config.ema + g * (1.0 - config.ema))
    state.last.copy_(torch.where(taken, smoothed, state.last))
    ratio = (state.last / state.g0).clamp(config.min_factor, config.max_factor)
    keep = ~torch.isfinite(ratio)  # no G_0 yet (NaN), or an overflow
    state.factor.copy_(torch.where(keep, state.factor, ratio))


class GradientReader:
    """Every group's G from its parameters' gradients in one fused reduction (``_torch_compat.foreach_norm``).

    ``mean_abs`` is the sum of |g| over the group's gradient elements divided by their count, ``l2`` the
    square root of the sum of squares. Under FSDP2 (DTensor gradients sharded across ranks) the local sums
    are all-reduced over ``process_group`` first, so G spans the shards. With a GradScaler that has not
    unscaled the gradients (a fused optimizer), G is divided by the scale it passed (``grad_scale``)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._layout_key: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        self._index: Tensor | None = None
        self._counts: Tensor | None = None

    def _layout(self, owner: Sequence[int], counts: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Which group each gradient belongs to, and each group's element count, on the device; copied
        there only when the set of params with gradients changes (the first step, an added group)."""
        key = (tuple(owner), tuple(counts))
        if key != self._layout_key or self._index is None or self._counts is None:
            self._index = torch.tensor(key[0], dtype=torch.int64).to(self.device)
            self._counts = torch.tensor(key[1], dtype=F64).to(self.device)
            self._layout_key = key
        return self._index, self._counts

    def collect(self, groups: Sequence[Mapping[str, Any]]) -> tuple[list[Tensor], Tensor, Tensor, bool]:
        """(local gradients, the group of each as an int64 index, each group's element count as float64, whether
        any param is sharded by FSDP2)."""
        grads: list[Tensor] = []
        owner: list[int] = []
        counts = [0] * len(groups)
        sharded = False
        for g, group in enumerate(groups):
            for p in group["params"]:
                # a param sharded by FSDP2 (a DTensor): every rank joins the sum below, gradients or not
                sharded = sharded or any(pl.is_shard() for pl in getattr(p, "placements", ()))
                grad = p.grad
                if grad is None:
                    continue
                local = getattr(grad, "to_local", None)
                if local is not None:  # a DTensor gradient: its local shard
                    grad = local()
                grads.append(grad)
                owner.append(g)
                counts[g] += p.numel()  # a DTensor's numel is the global one
        index, numel = self._layout(owner, counts)
        return grads, index, numel, sharded

    @staticmethod
    def norms(grads: list[Tensor], norm: str) -> Tensor:
        """Each gradient's L1 (mean_abs) or L2 norm, float64 [N], in one fused reduction."""
        return torch.stack(compat.foreach_norm(grads, 1 if norm == "mean_abs" else 2, F64))

    def read(self, groups: Sequence[Mapping[str, Any]], norms: Iterable[str], grad_scale: Tensor | None,
             process_group: Any = None) -> dict[str, Tensor]:
        grads, index, numel, sharded = self.collect(groups)
        out: dict[str, Tensor] = {}
        G = len(groups)
        for norm in norms:
            sums = torch.zeros(G, dtype=F64, device=self.device)
            if grads:
                per_param = self.norms(grads, norm)
                if norm == "l2":
                    per_param = per_param * per_param
                sums.index_add_(0, index, per_param)
            if sharded:
                sums = all_reduce(sums, "sum", process_group)
            value = sums / numel if norm == "mean_abs" else sums.sqrt()
            value = torch.where(numel > 0, value, torch.full_like(value, math.nan))  # no gradients: no signal
            if grad_scale is not None:
                value = value / grad_scale.reshape(()).to(F64)
            out[norm] = value
        return out


@dataclass
class PendingGradients:
    """What ``SignalBank.read_gradients`` read before the optimizer stepped: every G (the tensor path), or,
    on the CPU fast path, each norm's per-gradient norms and their layout for the core to sum and observe."""

    values: dict[str, Tensor] | None = None
    norms: dict[str, Tensor] | None = None
    index: Tensor | None = None
    counts: Tensor | None = None
    grad_scale: Tensor | None = None


def _host_flag(flag: Any) -> int | None:
    """The address of a 1-element CPU float32 tensor (GradScaler's scale or found_inf), 0 for None, None
    for anything else (the tensor path takes it)."""
    if flag is None:
        return 0
    if isinstance(flag, Tensor) and flag.device.type == "cpu" and flag.dtype == torch.float32 and flag.numel() == 1:
        return int(flag.data_ptr())
    return None


# ---- the bank: every signal leaf of a set of schedules ---------------------------------------------

def signal_leaves(schedules: Sequence[Schedule]) -> list[Any]:
    """The signal leaves of ``schedules`` in slot order: the order compile_many emits them."""
    from ._program import Builder

    builder = Builder()
    seen: set[int] = set()
    for sched in schedules:
        if id(sched) not in seen:
            seen.add(id(sched))
            sched._emit(builder)
    return list(builder.signals)


class SignalBank:
    """The state of every signal leaf of a wrapper's schedules, on one device, and the factor table the
    engine reads (``factors``: float64 [G, S], row g for group g, column s for the leaf in slot s).

    Plateau leaves keep each group's plateau LR ``level`` (torch's LR, starting at the group's base LR x
    multiplier, the ``ref``) and reduce it as torch reduces an LR, ``min_lr`` included; their factor is
    ``level / ref``. Average-gradient leaves keep :class:`GradientState`.
    """

    def __init__(self, leaves: Sequence[Any], scales: Sequence[float], device: torch.device,
                 labels: Sequence[str]) -> None:
        self.leaves = list(leaves)
        self.device = torch.device(device)
        G = len(scales)
        self.groups = G
        self.factors = torch.ones((G, max(1, len(self.leaves))), dtype=F64, device=self.device)
        self.ref = torch.tensor([float(s) for s in scales], dtype=F64).to(self.device)
        self.plateaus: list[tuple[int, PlateauConfig, PlateauState, Tensor, Tensor]] = []
        self.gradients: list[tuple[int, GradientConfig, GradientState]] = []
        for slot, leaf in enumerate(self.leaves):
            if leaf.rule == "plateau":
                config = leaf.config
                mins = leaf.min_lrs(G, labels)
                self.plateaus.append((slot, config, PlateauState(config, self.device), self.ref.clone(),
                                      torch.tensor(mins, dtype=F64).to(self.device)))
            else:
                self.gradients.append((slot, leaf.config, GradientState(G, self.device)))
        self.reader = GradientReader(self.device)
        self.norms = sorted({config.norm for _, config, _ in self.gradients})

    @property
    def slots(self) -> int:
        return int(self.factors.shape[1])

    def observe(self, metric: Any, reduce: str | None = "mean", process_group: Any = None) -> None:
        """Feeds one metric to every plateau leaf (device work only)."""
        if not self.plateaus:
            raise ValueError("observe(): none of the schedules has a plateau rule to feed (schedules.plateau)")
        m = all_reduce(as_signal(metric, self.device), reduce, process_group)
        for slot, config, state, level, min_lrs in self.plateaus:
            due = plateau_update(config, state, m, ignore_non_finite=True)
            level.copy_(plateau_reduce(config, due, level, min_lrs))
            self.factors[:, slot].copy_(torch.where(self.ref > 0, level / self.ref, torch.ones_like(level)))

    def read_gradients(self, groups: Sequence[Mapping[str, Any]], grad_scale: Tensor | None,
                       reduce: str | None, process_group: Any = None) -> PendingGradients:
        """Every needed G (float64 [G] per norm), agreed across processes; nothing stored yet. On the CPU in
        one process, the per-gradient norms only: the core sums and observes them in one call."""
        if CPU_FAST_PATH and self.device.type == "cpu" and not distributed() and _host_flag(grad_scale) is not None:
            grads, index, numel, _ = self.reader.collect(groups)
            norms = {norm: self.reader.norms(grads, norm) if grads else torch.zeros(0, dtype=F64)
                     for norm in self.norms}
            return PendingGradients(norms=norms, index=index, counts=numel, grad_scale=grad_scale)
        values = self.reader.read(groups, self.norms, grad_scale, process_group)
        return PendingGradients(values={norm: all_reduce(v, reduce, process_group) for norm, v in values.items()})

    def observe_gradients(self, pending: PendingGradients, skipped: Tensor | None) -> None:
        if pending.norms is not None:  # the CPU fast path: one core call per rule, on the bank's memory
            assert pending.index is not None and pending.counts is not None
            flag = skipped if skipped is None or skipped.dtype == torch.float32 else skipped.float()
            found_inf = _host_flag(flag.reshape(()) if flag is not None else None)
            scale = _host_flag(pending.grad_scale)
            assert found_inf is not None and scale is not None  # CPU tensors: the bank's device
            for slot, config, state in self.gradients:
                per_param = pending.norms[config.norm]
                _core.average_gradient_observe(
                    per_param.data_ptr(), per_param.numel(), pending.index.data_ptr(), pending.counts.data_ptr(),
                    self.groups, config.norm == "l2", scale, found_inf, state.g0.data_ptr(), state.last.data_ptr(),
                    state.factor.data_ptr(), state.ignored.data_ptr(), self.factors.data_ptr(), self.slots, slot,
                    config.ema, config.min_factor, config.max_factor)
            return
        assert pending.values is not None
        for slot, config, state in self.gradients:
            gradient_update(config, state, pending.values[config.norm], skipped)
            self.factors[:, slot].copy_(state.factor)

    # ---- state
    def state_dict(self) -> dict[str, Any]:
        """Every leaf's state (clones of the device tensors: no sync) and the factor table."""
        rules: list[dict[str, Any]] = []
        for slot, _, state, level, _ in self.plateaus:
            entry = {"slot": slot, "rule": "plateau", "level": level.clone()}
            entry.update({k: v.clone() for k, v in state.tensors().items()})
            rules.append(entry)
        for slot, _, gstate in self.gradients:
            entry = {"slot": slot, "rule": "average_gradient"}
            entry.update({k: v.clone() for k, v in gstate.tensors().items()})
            rules.append(entry)
        rules.sort(key=lambda r: r["slot"])
        return {"rules": rules, "factors": self.factors.clone()}

    def load_state_dict(self, sd: Mapping[str, Any], where: str) -> None:
        """Checks everything, then copies it in (atomic: a refused state dict changes nothing)."""
        rules = sd.get("rules") if isinstance(sd, Mapping) else None
        if not isinstance(rules, (list, tuple)) or len(rules) != len(self.leaves):
            raise ValueError(f"{where} holds the state of {len(rules) if isinstance(rules, (list, tuple)) else 'no'} "
                             f"signal rules; the schedules have {len(self.leaves)}")
        copies: list[tuple[Tensor, Tensor]] = []
        targets: dict[int, dict[str, Tensor]] = {}
        for slot, _, state, level, _ in self.plateaus:
            targets[slot] = dict(state.tensors(), level=level, rule="plateau")  # type: ignore[arg-type]
        for slot, _, gstate in self.gradients:
            targets[slot] = dict(gstate.tensors(), rule="average_gradient")  # type: ignore[arg-type]
        for rule in rules:
            if not isinstance(rule, Mapping) or rule.get("slot") not in targets:
                raise ValueError(f"{where}: a signal rule entry is not one of this wrapper's")
            target = targets[rule["slot"]]
            if rule.get("rule") != target["rule"]:
                raise ValueError(f"{where}: slot {rule['slot']} holds a {rule.get('rule')!r} rule, the schedules "
                                 f"a {target['rule']!r} rule")
            for name, dest in target.items():
                if name == "rule":
                    continue
                value = rule.get(name)
                if not isinstance(value, Tensor) or value.shape != dest.shape:
                    raise ValueError(f"{where}: {rule['rule']} entry {name!r} must be a tensor of shape "
                                     f"{tuple(dest.shape)}, got {check.shown(value)}")
                copies.append((dest, value))
        factors = sd.get("factors")
        if not isinstance(factors, Tensor) or factors.shape != self.factors.shape:
            raise ValueError(f"{where}['factors'] must be a tensor of shape {tuple(self.factors.shape)}")
        copies.append((self.factors, factors))
        for dest, value in copies:
            dest.copy_(value)

    def adopt(self, old: SignalBank) -> None:
        """Takes over ``old``'s state for the groups both have (a rebuild: new groups, a new multiplier).
        A group keeps its factor; its plateau level follows its new base LR x multiplier."""
        if [id(leaf) for leaf in old.leaves] != [id(leaf) for leaf in self.leaves] or old.device != self.device:
            return
        n = min(old.groups, self.groups)
        for (_, _, state, level, _), (_, _, ostate, olevel, _) in zip(self.plateaus, old.plateaus):
            for dest, src in zip(state.tensors().values(), ostate.tensors().values()):
                dest.copy_(src)
            factor = torch.where(old.ref[:n] > 0, olevel[:n] / old.ref[:n], torch.ones_like(olevel[:n]))
            same = old.ref[:n] == self.ref[:n]
            level[:n].copy_(torch.where(same, olevel[:n], factor * self.ref[:n]))
        for (_, _, gstate), (_, _, ogstate) in zip(self.gradients, old.gradients):
            for dest, src in zip(gstate.tensors().values(), ogstate.tensors().values()):
                dest[:n].copy_(src[:n])
        self.factors[:n].copy_(old.factors[:n])
