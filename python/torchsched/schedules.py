"""Composable learning-rate schedules: pure functions of the step, evaluated by the compiled core.

A schedule is an immutable spec. ``sched(step)`` returns a float, ``sched.values(steps)`` evaluates many
steps in one core call. Builders take keyword arguments with the defaults a torch user would guess; the
values they produce are *factors* by default (``init=1.0``), so the same spec scales every param group's
base LR. Combinators: :func:`sequence` (each piece on its own clock), :func:`product`, :func:`scale`,
:func:`shift`, ``a >> b`` (``b`` starts when ``a`` ends) and ``a * b`` / ``2.0 * a``.

Conventions (the peer each follows is named in the README's table): the value after construction is
``f(0)``, after k steps ``f(k)``, as in torch.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from . import _validate as check
from ._core import MAX_DEPTH
from ._program import Builder, Code, compile_many
from ._signals import NORMS, GradientConfig, PlateauConfig

__all__ = [
    "Schedule", "constant", "step", "multistep", "piecewise_constant", "exponential", "linear", "polynomial",
    "inverse_time", "inverse_power", "inverse_sqrt", "cosine", "cosine_restarts", "cyclic", "one_cycle",
    "warmup", "anneal", "interpolate", "tanh", "rex", "warmup_stable_decay", "plateau", "average_gradient",
    "sequence", "product", "scale", "shift",
]


# ---- the spec ------------------------------------------------------------------------------------

class Schedule:
    """A learning-rate schedule: an immutable spec compiled once into a core program.

    A schedule pickles and copies, evaluated or not: the compiled program is left out and made again on
    first use. Its value is finite at every step or the evaluation raises ``ValueError`` naming the schedule
    and the step, ``schedule(t)`` and ``schedule.values([t])`` alike.
    """

    #: Steps after which the schedule has reached its final value, when it has one (used by ``>>``).
    duration: float | None = None
    #: Nesting of clock-changing nodes (sequence, shift), what the core limits to ``_core.MAX_DEPTH``.
    _depth: int = 0

    def __init__(self, name: str, args: Mapping[str, Any]) -> None:
        self._name = name
        self._args = dict(args)
        self._compiled: Any = None

    # Subclasses append their nodes to the builder.
    def _emit(self, builder: Builder) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _program(self) -> Any:
        if self._compiled is None:
            self._compiled = compile_many([self])[0]
        return self._compiled

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_compiled"] = None  # the core's program does not pickle; it is rebuilt on first use
        return state

    def _not_finite(self, detail: str) -> ValueError:
        """The one message for a value that is not finite, whichever evaluation found it."""
        label = repr(self)
        label = label if len(label) <= 80 else f"{self._name}(...)"
        return ValueError(f"{label}: {detail}")

    def __call__(self, step: int) -> float:
        """The value at ``step`` (an integer >= 0)."""
        t = check.step_count("step", step)
        value = float(self._program().value(0, t))
        if not math.isfinite(value):
            # the words the core uses when values() meets the same step
            raise self._not_finite(f"the schedule is not finite at step {t} (it overflows or divides by zero there)")
        return value

    def values(self, steps: Any) -> np.ndarray:
        """Values at many steps (a ``range``, a sequence or an integer array) in one core call, float64."""
        try:
            if isinstance(steps, range) and steps.step > 0:  # evaluated without a step array
                if not steps:
                    return np.zeros(0, dtype=np.float64)
                check.step_range("steps", steps)
                return self._program().values_range(0, steps.start, steps.step, len(steps))
            return np.asarray(self._program().values(0, check.step_array("steps", steps)), dtype=np.float64)
        except ValueError as e:
            if str(e).startswith("the schedule is not finite"):
                raise self._not_finite(str(e)) from None
            raise

    # ---- combinators as operators
    def __mul__(self, other: Any) -> Schedule:
        if isinstance(other, Schedule):
            return product(self, other)
        return scale(self, other)

    __rmul__ = __mul__

    def __rshift__(self, other: Schedule) -> Schedule:
        if not isinstance(other, Schedule):
            return NotImplemented
        if self.duration is None:
            raise ValueError(f"{self!r} has no fixed duration; use sequence([...], boundaries=[...])")
        boundary = self.duration
        if float(boundary).is_integer():
            boundary = int(boundary)  # so that a >> b equals sequence([a, b], [n]) written by hand
        return sequence([self, other], [boundary])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args.items())
        return f"{self._name}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


class _Leaf(Schedule):
    def __init__(self, name: str, args: Mapping[str, Any], code: Code, params: Sequence[float],
                 table: Sequence[float] = (), count: int = 0, duration: float | None = None) -> None:
        super().__init__(name, args)
        self._code = code
        self._params = tuple(params)
        self._table = tuple(table)
        self._count = count
        self.duration = duration

    def _emit(self, builder: Builder) -> None:
        offset = builder.table(self._table) if self._table else 0
        builder.leaf(self._code, self._params, offset, self._count)


class _Node(Schedule):
    def __init__(self, name: str, args: Mapping[str, Any], code: Code, children: Sequence[Schedule],
                 params: Sequence[float] = (), table: Sequence[float] = (), duration: float | None = None) -> None:
        super().__init__(name, args)
        self._code = code
        self._children = tuple(children)
        self._params = tuple(params)
        self._table = tuple(table)
        self.duration = duration
        # refused here, not at first use: the core walks at most MAX_DEPTH nested clocks
        self._depth = max((getattr(c, "_depth", 0) for c in self._children), default=0) + (
            code in (Code.SEQUENCE, Code.SHIFT))
        if self._depth > MAX_DEPTH:
            raise ValueError(f"{name}: schedules nest {self._depth} sequences (>>) and shifts deep, more than "
                             f"the limit of {MAX_DEPTH}")

    def _emit(self, builder: Builder) -> None:
        offset = builder.table(self._table) if self._table else 0
        builder.node(self._code, self._children, self._params, offset)


def _args(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def _pair(name: str, point: Any) -> tuple[Any, Any]:
    """A ``(step, value)`` point."""
    pair = check.items(name, point)
    if len(pair) != 2:
        raise ValueError(f"{name} must be a (step, value) pair, got {check.shown(point)}")
    return pair[0], pair[1]


# ---- leaf families -------------------------------------------------------------------------------

def constant(value: float = 1.0) -> Schedule:
    """``value`` at every step."""
    return _Leaf("constant", _args(value=value), Code.CONSTANT, [check.non_negative("value", value)], duration=0.0)


def step(step_size: int, gamma: float = 0.1, *, init: float = 1.0) -> Schedule:
    """``init * gamma ** (t // step_size)`` (torch ``StepLR``)."""
    return _Leaf("step", _args(step_size=step_size, gamma=gamma, init=init), Code.STEP,
                 [check.non_negative("init", init), check.positive("step_size", step_size),
                  check.non_negative("gamma", gamma)])


def piecewise_constant(boundaries: Sequence[float], values: Sequence[float], *, switch_after: bool = False) -> Schedule:
    """``values[k]`` where k boundaries have been reached; ``len(values) == len(boundaries) + 1``.

    A boundary b is reached at ``t >= b`` (torch, optax); ``switch_after=True`` reaches it at ``t > b``
    (Keras ``PiecewiseConstantDecay``).
    """
    b = check.sorted_steps("boundaries", boundaries)
    v = [check.non_negative(f"values[{i}]", x) for i, x in enumerate(check.items("values", values))]
    if len(v) != len(b) + 1:
        raise ValueError(f"values needs len(boundaries) + 1 = {len(b) + 1} entries, got {len(v)}")
    return _Leaf("piecewise_constant", _args(boundaries=list(boundaries), values=list(values), switch_after=switch_after),
                 Code.PIECEWISE_CONST, [1.0 if switch_after else 0.0], b + v, len(b),
                 duration=b[-1] if b else 0.0)


def multistep(milestones: Sequence[int], gamma: float = 0.1, *, init: float = 1.0) -> Schedule:
    """``init * gamma ** (milestones reached)`` (torch ``MultiStepLR``; repeated milestones count twice)."""
    given = check.items("milestones", milestones)
    m = sorted(check.non_negative(f"milestones[{i}]", x) for i, x in enumerate(given))
    g = check.non_negative("gamma", gamma)
    i0 = check.non_negative("init", init)
    try:
        levels = [i0 * g**k for k in range(len(m) + 1)]
    except OverflowError:
        levels = [math.inf]
    if not all(map(math.isfinite, levels)):
        raise ValueError(f"init * gamma ** {len(m)} (milestones) overflows: gamma={gamma!r}, init={init!r}")
    sched = piecewise_constant(m, levels)
    sched._name, sched._args = "multistep", _args(milestones=list(milestones), gamma=gamma, init=init)
    return sched


def exponential(rate: float, steps: float = 1, *, init: float = 1.0, begin: int = 0, staircase: bool = False,
                bound: float | None = None) -> Schedule:
    """``init * rate ** ((t - begin) / steps)`` (floored with ``staircase``), held at ``init`` before ``begin``
    and clipped at ``bound`` (optax ``exponential_decay``; Keras ``ExponentialDecay``; torch ``ExponentialLR``
    is ``steps=1``)."""
    params = [check.non_negative("init", init), check.positive("rate", rate), check.positive("steps", steps),
              check.non_negative("begin", begin), 1.0 if staircase else 0.0,
              math.nan if bound is None else check.non_negative("bound", bound)]
    return _Leaf("exponential", _args(rate=rate, steps=steps, init=init, begin=begin, staircase=staircase, bound=bound),
                 Code.EXPONENTIAL, params)


def polynomial(steps: float, *, init: float = 1.0, final: float = 0.0, power: float = 1.0, cycle: bool = False,
               k: float = 1.0) -> Schedule:
    """``(init - final) * (1 - (t/steps)**k) ** power + final``, then ``final`` (optax, Keras; ``cycle`` as
    Keras ``PolynomialDecay``; ``k`` as timm's ``k_decay``)."""
    params = [check.non_negative("init", init), check.non_negative("final", final), check.positive("steps", steps),
              check.positive("power", power), 1.0 if cycle else 0.0, check.positive("k", k)]
    return _Leaf("polynomial", _args(steps=steps, init=init, final=final, power=power, cycle=cycle, k=k),
                 Code.POLYNOMIAL, params, duration=None if cycle else float(steps))


def linear(steps: float, *, init: float = 1.0, final: float = 0.0) -> Schedule:
    """From ``init`` to ``final`` linearly over ``steps``, then ``final``."""
    sched = polynomial(steps, init=init, final=final)
    sched._name, sched._args = "linear", _args(steps=steps, init=init, final=final)
    return sched


def inverse_time(rate: float, steps: float = 1, *, init: float = 1.0, staircase: bool = False) -> Schedule:
    """``init / (1 + rate * t / steps)`` (Keras ``InverseTimeDecay``)."""
    return _Leaf("inverse_time", _args(rate=rate, steps=steps, init=init, staircase=staircase), Code.INVERSE_TIME,
                 [check.non_negative("init", init), check.non_negative("rate", rate), check.positive("steps", steps),
                  1.0 if staircase else 0.0])


def inverse_power(steps: float, gamma: float = 0.5, *, init: float = 1.0) -> Schedule:
    """``init * (1 + t / steps) ** -gamma``."""
    return _Leaf("inverse_power", _args(steps=steps, gamma=gamma, init=init), Code.INVERSE_POWER,
                 [check.non_negative("init", init), check.positive("steps", steps), check.non_negative("gamma", gamma)])


def inverse_sqrt(timescale: float, *, init: float = 1.0) -> Schedule:
    """``init / sqrt((t + timescale) / timescale)``: 1 at t = 0 (Transformers ``inverse_sqrt`` after warmup)."""
    return _Leaf("inverse_sqrt", _args(timescale=timescale, init=init), Code.INVERSE_SQRT,
                 [check.non_negative("init", init), check.positive("timescale", timescale)])


def cosine(steps: float, *, init: float = 1.0, final: float = 0.0, exponent: float = 1.0, cycles: float = 0.5,
           clamp: bool = True, k: float = 1.0) -> Schedule:
    """``final + (init - final) * ((1 + cos(2 pi cycles (t/steps)**k)) / 2) ** exponent``.

    ``clamp`` holds ``final`` after ``steps`` (optax, Keras); ``clamp=False`` lets the cosine go on
    (torch's closed form, Transformers' ``num_cycles``).
    """
    params = [check.non_negative("init", init), check.non_negative("final", final), check.positive("steps", steps),
              check.positive("exponent", exponent), check.positive("cycles", cycles), 1.0 if clamp else 0.0,
              check.positive("k", k)]
    return _Leaf("cosine", _args(steps=steps, init=init, final=final, exponent=exponent, cycles=cycles, clamp=clamp, k=k),
                 Code.COSINE, params, duration=float(steps) if clamp else None)


def cosine_restarts(period: float, *, init: float = 1.0, final: float = 0.0, period_mult: float = 1.0,
                    decay: float = 1.0, limit: int = 0, decay_mode: str = "peak", k: float = 1.0) -> Schedule:
    """Cosine from ``init`` to ``final`` over ``period``, restarting with periods ``period * period_mult**i``.

    Cycle i reaches ``init * decay**i`` (``decay_mode="peak"``, timm) or swings ``(init - final) * decay**i``
    above ``final`` (``"swing"``, Keras ``CosineDecayRestarts``). After ``limit`` cycles (0: never) it holds
    ``final`` (timm ``cycle_limit``). torch ``CosineAnnealingWarmRestarts`` is ``period_mult`` integer, no decay.
    """
    mode = check.choice("decay_mode", decay_mode, ["peak", "swing"])
    lim = float(check.integer("limit", limit, 0, check.MAX_STEP))
    params = [check.non_negative("init", init), check.non_negative("final", final), check.positive("period", period),
              check.positive("period_mult", period_mult), check.non_negative("decay", decay), lim, float(mode),
              check.positive("k", k)]
    return _Leaf("cosine_restarts", _args(period=period, init=init, final=final, period_mult=period_mult, decay=decay,
                                          limit=limit, decay_mode=decay_mode, k=k), Code.COSINE_RESTARTS, params)


def cyclic(base: float, max: float, step_up: float = 2000, step_down: float | None = None, *,
           mode: str = "triangular", gamma: float = 1.0, scale_mode: str | None = None) -> Schedule:
    """torch ``CyclicLR`` / the CLR paper: triangular, triangular2 or exp_range between ``base`` and ``max``.

    ``gamma`` (exp_range) must be in (0, 1]: the amplitude shrinks by ``gamma ** t``; a larger one would grow
    without bound and overflow."""
    m = check.choice("mode", mode, ["triangular", "triangular2", "exp_range"])
    g = check.in_interval("gamma", gamma, 0, 1, low_open=True)
    if scale_mode is None:
        scale_mode = "iterations" if mode == "exp_range" else "cycle"
    sm = check.choice("scale_mode", scale_mode, ["cycle", "iterations"])
    up = check.positive("step_up", step_up)
    down = up if step_down is None else check.positive("step_down", step_down)
    params = [check.non_negative("base", base), check.non_negative("max", max), up, down, float(m), g, float(sm)]
    return _Leaf("cyclic", _args(base=base, max=max, step_up=step_up, step_down=step_down, mode=mode, gamma=gamma,
                                 scale_mode=scale_mode), Code.CYCLIC, params)


def interpolate(points: Mapping[float, float] | Sequence[tuple[float, float]], *, kind: str = "linear") -> Schedule:
    """Through ``(step, value)`` points, linearly or by half cosines; flat before the first and after the last."""
    if isinstance(points, Mapping):
        for t in points:
            check.real(f"points (step {check.shown(t)})", t)
        items = sorted(points.items(), key=lambda p: float(p[0]))
    else:
        items = [_pair(f"points[{i}]", p) for i, p in enumerate(check.items("points", points))]
    if not items:
        raise ValueError("points must not be empty")
    times = check.sorted_steps("points (steps)", [t for t, _ in items], strict=True)
    vals = [check.non_negative(f"points[{t!r}]", v) for t, v in items]
    kind_i = check.choice("kind", kind, ["linear", "cosine"])
    return _Leaf("interpolate", _args(points=[(t, v) for t, v in items], kind=kind), Code.INTERP, [float(kind_i)],
                 times + vals, len(times), duration=times[-1])


def one_cycle(total_steps: int, *, max: float = 1.0, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4, anneal: str = "cos", three_phase: bool = False) -> Schedule:
    """One-cycle policy with torch ``OneCycleLR``'s phase ends: up from ``max/div_factor`` to ``max`` by step
    ``pct_start*total - 1``, (three-phase: back down by ``2*pct_start*total - 2``), then down to
    ``max/div_factor/final_div_factor`` at ``total - 1``."""
    total = check.positive("total_steps", total_steps)
    pct = check.in_interval("pct_start", pct_start, 0, 1, low_open=True, high_open=True)
    peak = check.non_negative("max", max)
    initial = peak / check.positive("div_factor", div_factor)
    minimum = initial / check.positive("final_div_factor", final_div_factor)
    if not math.isfinite(initial):
        raise ValueError(f"max / div_factor overflows: max={max!r}, div_factor={div_factor!r}")
    if not math.isfinite(minimum):
        raise ValueError(f"max / div_factor / final_div_factor overflows: max={max!r}, div_factor={div_factor!r}, "
                         f"final_div_factor={final_div_factor!r}")
    kind = ["cosine", "linear"][check.choice("anneal", anneal, ["cos", "linear"])]
    if three_phase:
        pts = [(0.0, initial), (pct * total - 1, peak), (2 * pct * total - 2, initial), (total - 1, minimum)]
    else:
        pts = [(0.0, initial), (pct * total - 1, peak), (total - 1, minimum)]
    times = [t for t, _ in pts]
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"total_steps={total_steps!r} with pct_start={pct_start!r} leaves a phase with no steps")
    sched = interpolate(pts, kind=kind)
    sched._name = "one_cycle"
    sched._args = _args(total_steps=total_steps, max=max, pct_start=pct_start, div_factor=div_factor,
                        final_div_factor=final_div_factor, anneal=anneal, three_phase=three_phase)
    return sched


def warmup(steps: float, *, init: float = 0.0, peak: float = 1.0, shape: str = "linear") -> Schedule:
    """From ``init`` to ``peak`` over ``steps`` (``linear``, ``exponential`` or ``constant`` at ``init``), then ``peak``.

    Linear warmup is ``init + (peak - init) * t / steps``: ``init`` at t = 0 (Transformers, optax, timm).
    """
    s = check.choice("shape", shape, ["linear", "exponential", "constant"])
    i0 = check.non_negative("init", init)
    if s == 1 and i0 == 0:
        raise ValueError("init must be > 0 for an exponential warmup, got 0")
    return _Leaf("warmup", _args(steps=steps, init=init, peak=peak, shape=shape), Code.WARMUP,
                 [i0, check.non_negative("peak", peak), check.positive("steps", steps), float(s)],
                 duration=float(steps))


def anneal(steps: float, *, start: float = 1.0, end: float = 0.0, shape: str = "linear") -> Schedule:
    """From ``start`` to ``end`` over ``steps``, then ``end``: ``linear``, ``cosine``, ``1-sqrt`` or
    ``exponential`` (geometric) — the decay shapes of warmup-stable-decay."""
    s = check.choice("shape", shape, ["linear", "cosine", "1-sqrt", "exponential"])
    st, en = check.non_negative("start", start), check.non_negative("end", end)
    if s == 3 and (st == 0 or en == 0):
        raise ValueError(f"an exponential anneal needs start and end > 0, got start={start!r}, end={end!r}")
    return _Leaf("anneal", _args(steps=steps, start=start, end=end, shape=shape), Code.ANNEAL,
                 [st, en, check.positive("steps", steps), float(s)], duration=float(steps))


def tanh(steps: float, *, init: float = 1.0, final: float = 0.0, lb: float = -7.0, ub: float = 3.0) -> Schedule:
    """timm ``TanhLRScheduler``: ``final + (init - final)/2 * (1 - tanh(lb (1 - t/steps) + ub t/steps))``, then ``final``."""
    return _Leaf("tanh", _args(steps=steps, init=init, final=final, lb=lb, ub=ub), Code.TANH,
                 [check.non_negative("init", init), check.non_negative("final", final), check.positive("steps", steps),
                  check.real("lb", lb), check.real("ub", ub)], duration=float(steps))


def rex(steps: float, *, init: float = 1.0, final: float = 0.0) -> Schedule:
    """REX (Chen, Wolfe, Kyrillidis 2022): ``final + (init - final) * z / (1/2 + z/2)`` with
    ``z = 1 - min(t, steps)/steps``: above linear early on, down faster near the end; then ``final``."""
    return _Leaf("rex", _args(steps=steps, init=init, final=final), Code.REX,
                 [check.non_negative("init", init), check.non_negative("final", final), check.positive("steps", steps)],
                 duration=float(steps))


def warmup_stable_decay(warmup_steps: int, stable_steps: int, decay_steps: int, *, peak: float = 1.0,
                        init: float = 0.0, final: float = 0.0, decay_shape: str = "linear",
                        warmup_shape: str = "linear") -> Schedule:
    """Warmup to ``peak``, hold it ``stable_steps``, then decay to ``final`` over ``decay_steps`` (WSD)."""
    w = check.non_negative("warmup_steps", warmup_steps)
    s = check.non_negative("stable_steps", stable_steps)
    check.positive("decay_steps", decay_steps)  # checked here too, so that errors name this builder's arguments
    for name, value in (("peak", peak), ("init", init), ("final", final)):
        check.non_negative(name, value)
    check.choice("decay_shape", decay_shape, ["linear", "cosine", "1-sqrt", "exponential"])
    check.choice("warmup_shape", warmup_shape, ["linear", "exponential", "constant"])
    pieces: list[Schedule] = []
    bounds: list[float] = []
    if w > 0:
        pieces.append(warmup(w, init=init, peak=peak, shape=warmup_shape))
        bounds.append(w)
    pieces.append(constant(peak))
    pieces.append(anneal(decay_steps, start=peak, end=final, shape=decay_shape))
    bounds.append(w + s)
    sched = sequence(pieces, bounds)
    sched._name = "warmup_stable_decay"
    sched._args = _args(warmup_steps=warmup_steps, stable_steps=stable_steps, decay_steps=decay_steps, peak=peak,
                        init=init, final=final, decay_shape=decay_shape, warmup_shape=warmup_shape)
    sched.duration = w + s + float(decay_steps)
    return sched


# ---- signal-driven factors -----------------------------------------------------------------------

class _SignalLeaf(Schedule):
    """A factor that training observations drive; its state lives on the params' device (torchsched._signals).

    Outside a wrapper it has no state: ``sched(t)`` and ``values()`` take it as 1, its value before any
    observation. It has no clock of its own (duration 0), so ``cosine(n) * plateau()`` lasts ``n`` steps.
    """

    duration = 0.0
    rule = ""

    def __init__(self, name: str, args: Mapping[str, Any], config: Any) -> None:
        super().__init__(name, args)
        self.config = config

    def _emit(self, builder: Builder) -> None:
        builder.leaf(Code.SIGNAL, [float(builder.signal_slot(self))])


class _Plateau(_SignalLeaf):
    rule = "plateau"

    def min_lrs(self, groups: int, labels: Sequence[str]) -> list[float]:
        """One ``min_lr`` per group, as torch takes a float or a list."""
        given = self._args["min_lr"]
        if isinstance(given, (list, tuple)):
            if len(given) != groups:
                raise ValueError(f"plateau(min_lr=...) has {len(given)} entries for {groups} param groups")
            return [float(x) for x in given]
        return [float(given)] * groups


class _AverageGradient(_SignalLeaf):
    rule = "average_gradient"


def plateau(*, mode: str = "min", factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
            threshold_mode: str = "rel", cooldown: int = 0, min_lr: float | Sequence[float] = 0.0,
            eps: float = 1e-8) -> Schedule:
    """Reduce on plateau, torch ``ReduceLROnPlateau``'s rule: a factor that starts at 1 and drops by
    ``factor`` when the observed metric has not improved for more than ``patience`` observations.

    Metrics arrive through ``wrapped.observe(metric)`` (a 0-d tensor or a float) and the state stays on the
    params' device. Each group's plateau LR (its base LR x multiplier x the factor) is reduced as torch
    reduces an LR: ``max(lr * factor, min_lr)`` (``min_lr`` a float or one per group), unless the drop is
    at most ``eps``. A non-finite metric is ignored and counted.
    """
    m = ["min", "max"][check.choice("mode", mode, ["min", "max"])]
    tm = ["rel", "abs"][check.choice("threshold_mode", threshold_mode, ["rel", "abs"])]
    f = check.in_interval("factor", factor, 0, 1, high_open=True)
    if isinstance(min_lr, (list, tuple)):
        mins: Any = [check.non_negative(f"min_lr[{i}]", x) for i, x in enumerate(min_lr)]
    else:
        mins = check.non_negative("min_lr", min_lr)
    config = PlateauConfig.of(m, f, check.non_negative("patience", patience), check.real("threshold", threshold),
                              tm, check.non_negative("cooldown", cooldown), check.non_negative("eps", eps))
    return _Plateau("plateau", _args(mode=mode, factor=factor, patience=patience, threshold=threshold,
                                     threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps),
                    config)


def average_gradient(*, norm: str = "mean_abs", ema: float = 0.0, min_factor: float | None = None,
                     max_factor: float | None = None) -> Schedule:
    """The average-gradient rule: the factor ``G_{t-1} / G_0``, so that ``lr_t = lr_0 * G_{t-1} / G_0``.

    ``G`` is measured per param group by the wrapper inside ``step()``, in one fused reduction, after
    GradScaler's unscale and not at all on a step it skips: ``norm="mean_abs"`` is the mean absolute
    gradient over the group's gradient elements, ``norm="l2"`` the L2 norm of the group's gradients.
    ``G_0`` is the first finite, positive observation; ``ema`` in [0, 1) smooths G
    (``G_s = ema * G_s + (1 - ema) * G``); the factor is clamped to ``[min_factor, max_factor]``. Until
    ``G_0`` is known the factor is 1, and a non-finite G is ignored and counted.
    """
    n = NORMS[check.choice("norm", norm, list(NORMS))]
    e = check.in_interval("ema", ema, 0, 1, high_open=True)
    lo = 0.0 if min_factor is None else check.non_negative("min_factor", min_factor)
    hi = math.inf if max_factor is None else check.positive("max_factor", max_factor)
    if lo > hi:
        raise ValueError(f"min_factor ({min_factor!r}) must be at most max_factor ({max_factor!r})")
    return _AverageGradient("average_gradient", _args(norm=norm, ema=ema, min_factor=min_factor,
                                                      max_factor=max_factor), GradientConfig(n, e, lo, hi))


def has_signals(schedule: Schedule) -> bool:
    """True when the schedule holds a signal-driven factor (plateau, average_gradient)."""
    if isinstance(schedule, _SignalLeaf):
        return True
    return any(has_signals(c) for c in getattr(schedule, "_children", ()))


# ---- combinators ---------------------------------------------------------------------------------

def sequence(schedules: Sequence[Schedule], boundaries: Sequence[float]) -> Schedule:
    """``schedules[k]`` from ``boundaries[k-1]`` on, on its own clock (it sees ``t - boundaries[k-1]``),
    as optax ``join_schedules``. Needs ``len(boundaries) == len(schedules) - 1``."""
    scheds = [check.schedule(f"schedules[{i}]", s) for i, s in enumerate(check.items("schedules", schedules))]
    if not scheds:
        raise ValueError("schedules must not be empty")
    b = check.sorted_steps("boundaries", boundaries)
    if len(b) != len(scheds) - 1:
        raise ValueError(f"boundaries needs len(schedules) - 1 = {len(scheds) - 1} entries, got {len(b)}")
    last = scheds[-1].duration
    return _Node("sequence", _args(schedules=scheds, boundaries=list(boundaries)), Code.SEQUENCE, scheds, table=b,
                 duration=None if last is None else (b[-1] if b else 0.0) + last)


def product(*schedules: Schedule) -> Schedule:
    """The product of the schedules at each step (for instance a warmup factor times a decay)."""
    scheds = [check.schedule(f"schedules[{i}]", s) for i, s in enumerate(schedules)]
    if not scheds:
        raise ValueError("product needs at least one schedule")
    durations = [s.duration for s in scheds]
    dur = None if any(d is None for d in durations) else max(durations)  # type: ignore[type-var]
    return _Node("product", {"schedules": scheds}, Code.PRODUCT, scheds, duration=dur)


def scale(schedule: Schedule, factor: float) -> Schedule:
    """``factor`` times the schedule."""
    s = check.schedule("schedule", schedule)
    return _Node("scale", _args(schedule=s, factor=factor), Code.SCALE, [s], [check.non_negative("factor", factor)],
                 duration=s.duration)


def shift(schedule: Schedule, offset: int) -> Schedule:
    """The schedule running ``offset`` steps ahead: its value at ``t + offset``. In a :func:`sequence`,
    ``shift(s, boundary)`` gives a piece the global clock back (timm's ``warmup_prefix=False``)."""
    s = check.schedule("schedule", schedule)
    return _Node("shift", _args(schedule=s, offset=offset), Code.SHIFT, [s], [check.non_negative("offset", offset)])

