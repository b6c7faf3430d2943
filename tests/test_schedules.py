"""torchsched.schedules: every family against an independent float64 Python reference, against
torch.optim.lr_scheduler where torch has the family, hypothesis properties, and the combinators.

The references below are written from the formulas the peers publish (torch's docs, the CLR and SGDR
papers, optax, Keras, timm, Transformers), in plain Python floats; they share no code with the core.
Agreement is a relative 1e-12. Values that a formula computes as ``final + (init - final) * w`` lose
absolute precision near 0 whatever the order of operations, so each comparison also accepts an absolute
error of a few ulps of the schedule's scale (its largest LR parameter): ``ATOL_ULPS * scale``.
"""

from __future__ import annotations

import bisect
import math
import warnings
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchsched import schedules as S
from torchsched.schedules import Schedule

RTOL = 1e-12
ATOL_ULPS = 4 * 2.0**-52
EXAMPLES = settings(max_examples=50, deadline=None)
FEW = settings(max_examples=30, deadline=None)


def assert_close(ours: np.ndarray, ref: np.ndarray, scale: Any, rtol: float = RTOL, what: str = "") -> None:
    """|ours - ref| <= rtol |ref| + ATOL_ULPS * scale (scale: a number, or one per value)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape
    assert np.all(np.isfinite(ours)), f"{what}: non-finite values at {np.flatnonzero(~np.isfinite(ours))[:5]}"
    err = np.abs(ours - ref)
    ok = err <= rtol * np.abs(ref) + ATOL_ULPS * np.maximum(scale, 1e-300)
    if not ok.all():
        t = int(np.flatnonzero(~ok)[0])
        raise AssertionError(f"{what}: t={t}: ours {ours[t]!r} ref {ref[t]!r} (rel {err[t] / abs(ref[t] or 1):.3g})")


# ---- strategies ----------------------------------------------------------------------------------

lr = st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)
pos_lr = st.floats(1e-4, 10.0)
horizon = st.integers(1, 200)
unit = st.floats(0.0, 1.0)
steps_f = st.one_of(st.integers(1, 200), st.floats(0.5, 200.0))


# ---- independent references: published formulas, plain Python floats ----------------------------

def ref_constant(kw: dict, t: int) -> float:
    return kw["value"]


def ref_step(kw: dict, t: int) -> float:  # torch StepLR docs: lr * gamma ** (epoch // step_size)
    return kw["init"] * kw["gamma"] ** (t // kw["step_size"])


def ref_multistep(kw: dict, t: int) -> float:  # torch MultiStepLR: one gamma per milestone reached
    return kw["init"] * kw["gamma"] ** bisect.bisect_right(sorted(kw["milestones"]), t)


def ref_piecewise_constant(kw: dict, t: int) -> float:
    b = kw["boundaries"]
    k = bisect.bisect_left(b, t) if kw["switch_after"] else bisect.bisect_right(b, t)
    return kw["values"][k]


def ref_exponential(kw: dict, t: int) -> float:  # optax exponential_decay: the bound clips every value
    count = t - kw["begin"]
    if count <= 0:
        v = kw["init"]
    else:
        p = count / kw["steps"]
        if kw["staircase"]:
            p = math.floor(p)
        v = kw["init"] * kw["rate"] ** p
    if kw["bound"] is not None:
        v = max(v, kw["bound"]) if kw["rate"] < 1 else min(v, kw["bound"])
    return v


def ref_linear(kw: dict, t: int) -> float:  # torch LinearLR's closed form: start + (end - start) * t / T
    return kw["init"] + (kw["final"] - kw["init"]) * min(t, kw["steps"]) / kw["steps"]


def ref_polynomial(kw: dict, t: int) -> float:  # Keras PolynomialDecay, timm's k_decay
    steps = kw["steps"]
    if kw["cycle"]:
        steps = steps * (1 if t == 0 else math.ceil(t / steps))
    else:
        t = min(t, steps)
    # (t/T)^k, the core's order (timm writes t^k / T^k): near t = T, 1 - (t/T)^k cancels and a fractional
    # power magnifies one ulp of it past 1e-12 relative, whoever computes it.
    frac = (t / steps) ** kw["k"]
    return (kw["init"] - kw["final"]) * max(0.0, 1 - frac) ** kw["power"] + kw["final"]


def ref_inverse_time(kw: dict, t: int) -> float:  # Keras InverseTimeDecay
    p = t / kw["steps"]
    if kw["staircase"]:
        p = math.floor(p)
    return kw["init"] / (1 + kw["rate"] * p)


def ref_inverse_power(kw: dict, t: int) -> float:
    return kw["init"] * (1 + t / kw["steps"]) ** -kw["gamma"]


def ref_inverse_sqrt(kw: dict, t: int) -> float:  # Transformers: 1 / sqrt((t + timescale) / timescale)
    return kw["init"] / math.sqrt((t + kw["timescale"]) / kw["timescale"])


def ref_cosine(kw: dict, t: int) -> float:  # optax cosine_decay_schedule / Transformers num_cycles / timm k
    steps = kw["steps"]
    if kw["clamp"]:
        t = min(t, steps)
    # Unclamped, the argument of the cosine grows without bound and one ulp of it moves the value by far
    # more than 1e-12 relative near the cosine's zeros (ill-conditioned, whoever computes it). So the
    # argument is formed in one agreed order, the core's: progress = (t/T)^k (timm writes t^k / T^k, the
    # same number), then pi * (2 cycles progress).
    progress = (t / steps) ** kw["k"]
    c = 0.5 * (1 + math.cos(math.pi * (2 * kw["cycles"] * progress)))
    return (kw["init"] - kw["final"]) * c ** kw["exponent"] + kw["final"]


def ref_cosine_restarts(kw: dict, t: int) -> float:  # SGDR: walk the cycles one by one
    start, period, i = 0.0, float(kw["period"]), 0
    while start + period <= t:
        start += period
        period *= kw["period_mult"]
        i += 1
    if kw["limit"] and i >= kw["limit"]:
        return kw["final"]
    c = 0.5 * (1 + math.cos(math.pi * (t - start) ** kw["k"] / period ** kw["k"]))
    if kw["decay_mode"] == "swing":  # Keras CosineDecayRestarts: m_mul scales the swing
        return kw["final"] + (kw["init"] - kw["final"]) * kw["decay"] ** i * c
    return kw["final"] + (kw["init"] * kw["decay"] ** i - kw["final"]) * c  # timm: cycle_decay scales the peak


def ref_cyclic(kw: dict, t: int) -> float:  # CLR paper, written with the position inside the cycle
    up = kw["step_up"]
    down = up if kw["step_down"] is None else kw["step_down"]
    total = up + down
    cycle = t // total  # 0-based
    pos = t - cycle * total
    scale = pos / up if pos <= up else (total - pos) / down
    mode = kw["mode"]
    scale_mode = kw["scale_mode"] or ("iterations" if mode == "exp_range" else "cycle")
    x = t if scale_mode == "iterations" else cycle + 1
    fn = {"triangular": 1.0, "triangular2": 1 / 2 ** (x - 1), "exp_range": kw["gamma"] ** x}[mode]
    return kw["base"] + (kw["max"] - kw["base"]) * scale * fn


def ref_one_cycle(kw: dict, t: int) -> float:  # torch OneCycleLR's phases; held at the minimum after the end
    total, pct = kw["total_steps"], kw["pct_start"]
    peak = kw["max"]
    initial = peak / kw["div_factor"]
    minimum = initial / kw["final_div_factor"]
    if kw["three_phase"]:
        phases = [(pct * total - 1, initial, peak), (2 * pct * total - 2, peak, initial), (total - 1, initial, minimum)]
    else:
        phases = [(pct * total - 1, initial, peak), (total - 1, peak, minimum)]
    if t >= total - 1:
        return minimum
    start = 0.0
    for end, a, b in phases:
        if t <= end:
            frac = (t - start) / (end - start)
            if kw["anneal"] == "cos":
                return b + (a - b) / 2 * (math.cos(math.pi * frac) + 1)
            return (b - a) * frac + a
        start = end
    raise AssertionError("unreachable")


def ref_warmup(kw: dict, t: int) -> float:
    init, peak, steps = kw["init"], kw["peak"], kw["steps"]
    if t >= steps:
        return peak
    if kw["shape"] == "exponential":
        return init * (peak / init) ** (t / steps)
    if kw["shape"] == "constant":
        return init
    return init + (peak - init) * t / steps


def ref_anneal(kw: dict, t: int) -> float:  # the decay shapes of warmup-stable-decay (Transformers' WSD)
    start, end, steps = kw["start"], kw["end"], kw["steps"]
    frac = min(t, steps) / steps
    shape = kw["shape"]
    if shape == "exponential":
        return start * (end / start) ** frac
    w = {"linear": 1 - frac, "cosine": 0.5 * (1 + math.cos(math.pi * frac)), "1-sqrt": 1 - math.sqrt(frac)}[shape]
    return w * (start - end) + end


def ref_interpolate(kw: dict, t: int) -> float:  # optax piecewise_interpolate_schedule, flat outside
    pts = sorted(kw["points"].items())
    if t <= pts[0][0]:
        return pts[0][1]
    for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
        if t0 <= t < t1:
            pct = (t - t0) / (t1 - t0)
            if kw["kind"] == "cosine":
                return v1 + (v0 - v1) / 2 * (math.cos(math.pi * pct) + 1)
            return (v1 - v0) * pct + v0
    return pts[-1][1]


def ref_tanh(kw: dict, t: int) -> float:  # timm TanhLRScheduler
    if t >= kw["steps"]:
        return kw["final"]
    tr = t / kw["steps"]
    return kw["final"] + 0.5 * (kw["init"] - kw["final"]) * (1 - math.tanh(kw["lb"] * (1 - tr) + kw["ub"] * tr))


def ref_rex(kw: dict, t: int) -> float:  # REX paper (Chen, Wolfe, Kyrillidis 2022), with a floor at final
    z = 1 - min(t, kw["steps"]) / kw["steps"]
    return kw["final"] + (kw["init"] - kw["final"]) * z / (0.5 + 0.5 * z)


def ref_wsd(kw: dict, t: int) -> float:
    w, s, d = kw["warmup_steps"], kw["stable_steps"], kw["decay_steps"]
    if t < w:
        return ref_warmup(dict(steps=w, init=kw["init"], peak=kw["peak"], shape=kw["warmup_shape"]), t)
    if t < w + s:
        return kw["peak"]
    return ref_anneal(dict(steps=d, start=kw["peak"], end=kw["final"], shape=kw["decay_shape"]), t - w - s)


# ---- the families: a parameter strategy, the builder call, the reference ------------------------

def _kwargs(**parts: Any) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(parts)


@st.composite
def _milestones(draw: Any) -> list[int]:
    return draw(st.lists(st.integers(0, 150), min_size=0, max_size=6))


@st.composite
def _piecewise(draw: Any) -> dict:
    b = sorted(draw(st.lists(st.integers(0, 150), max_size=5)))
    v = draw(st.lists(lr, min_size=len(b) + 1, max_size=len(b) + 1))
    return dict(boundaries=b, values=v, switch_after=draw(st.booleans()))


@st.composite
def _interp(draw: Any) -> dict:
    times = sorted(set(draw(st.lists(st.integers(0, 150), min_size=1, max_size=6))))
    vals = draw(st.lists(lr, min_size=len(times), max_size=len(times)))
    return dict(points=dict(zip(times, vals)), kind=draw(st.sampled_from(["linear", "cosine"])))


@st.composite
def _one_cycle(draw: Any) -> dict:
    three = draw(st.booleans())
    total = draw(st.integers(10, 300))
    # Every phase needs at least a step: pct * total - 1 > 0, and the later phases end after it.
    pct = draw(st.floats(0.05, 0.45 if three else 0.9).filter(
        lambda p: p * total > 1.5 and (total - 1) - (2 * p * total - 2 if three else p * total - 1) > 0.5))
    return dict(total_steps=total, max=draw(pos_lr), pct_start=pct, div_factor=draw(st.floats(1.5, 100.0)),
                final_div_factor=draw(st.floats(1.0, 1e4)), anneal=draw(st.sampled_from(["cos", "linear"])),
                three_phase=three)


@st.composite
def _warmup(draw: Any) -> dict:
    shape = draw(st.sampled_from(["linear", "exponential", "constant"]))
    init = draw(pos_lr if shape == "exponential" else lr)
    return dict(steps=draw(steps_f), init=init, peak=draw(lr), shape=shape)


@st.composite
def _anneal(draw: Any) -> dict:
    shape = draw(st.sampled_from(["linear", "cosine", "1-sqrt", "exponential"]))
    strat = pos_lr if shape == "exponential" else lr
    return dict(steps=draw(steps_f), start=draw(strat), end=draw(strat), shape=shape)


@st.composite
def _wsd(draw: Any) -> dict:
    wshape = draw(st.sampled_from(["linear", "exponential", "constant"]))
    dshape = draw(st.sampled_from(["linear", "cosine", "1-sqrt", "exponential"]))
    init = draw(pos_lr if wshape == "exponential" else lr)
    return dict(warmup_steps=draw(st.integers(0, 50)), stable_steps=draw(st.integers(0, 50)),
                decay_steps=draw(st.integers(1, 80)), peak=draw(pos_lr), init=init,
                final=draw(pos_lr if dshape == "exponential" else lr), decay_shape=dshape, warmup_shape=wshape)


def _scale_of(kw: dict) -> float:
    vals: list[float] = []
    for key in ("value", "init", "final", "peak", "start", "end", "base", "max", "bound"):
        v = kw.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals.append(abs(float(v)))
    vals += [abs(v) for v in kw.get("values", [])]
    vals += [abs(v) for v in kw.get("points", {}).values()]
    return max(vals, default=1.0) or 1.0


FAMILIES: dict[str, tuple[st.SearchStrategy[dict], Callable[[dict], Schedule], Callable[[dict, int], float]]] = {
    "constant": (_kwargs(value=lr), lambda kw: S.constant(**kw), ref_constant),
    "step": (_kwargs(step_size=st.integers(1, 40), gamma=st.floats(0.0, 1.0), init=lr),
             lambda kw: S.step(**kw), ref_step),
    "multistep": (_kwargs(milestones=_milestones(), gamma=st.floats(0.0, 1.5), init=lr),
                  lambda kw: S.multistep(**kw), ref_multistep),
    "piecewise_constant": (_piecewise(), lambda kw: S.piecewise_constant(**kw), ref_piecewise_constant),
    "exponential": (_kwargs(rate=st.floats(0.01, 1.0), steps=steps_f, init=lr, begin=st.integers(0, 50),
                            staircase=st.booleans(), bound=st.none() | lr),
                    lambda kw: S.exponential(**kw), ref_exponential),
    "linear": (_kwargs(steps=steps_f, init=lr, final=lr), lambda kw: S.linear(**kw), ref_linear),
    "polynomial": (_kwargs(steps=steps_f, init=lr, final=lr, power=st.floats(0.1, 5.0), cycle=st.booleans(),
                           k=st.sampled_from([1.0, 0.5, 1.5, 2.0])),
                   lambda kw: S.polynomial(**kw), ref_polynomial),
    "inverse_time": (_kwargs(rate=st.floats(0.0, 5.0), steps=steps_f, init=lr, staircase=st.booleans()),
                     lambda kw: S.inverse_time(**kw), ref_inverse_time),
    "inverse_power": (_kwargs(steps=steps_f, gamma=st.floats(0.0, 3.0), init=lr),
                      lambda kw: S.inverse_power(**kw), ref_inverse_power),
    "inverse_sqrt": (_kwargs(timescale=steps_f, init=lr), lambda kw: S.inverse_sqrt(**kw), ref_inverse_sqrt),
    "cosine": (_kwargs(steps=steps_f, init=lr, final=lr, exponent=st.floats(0.25, 4.0),
                       cycles=st.sampled_from([0.5, 1.0, 1.5, 3.0]) | st.floats(0.1, 4.0), clamp=st.booleans(),
                       k=st.sampled_from([1.0, 0.5, 2.0])),
               lambda kw: S.cosine(**kw), ref_cosine),
    # Integer periods and multipliers 1, 1.5, 2, 3 keep every cycle start exact in float64, so the walk in
    # the reference and the closed form in the core agree on which cycle a boundary step belongs to.
    "cosine_restarts": (_kwargs(period=st.integers(1, 40), init=lr, final=lr,
                                period_mult=st.sampled_from([1.0, 1.5, 2.0, 3.0]), decay=st.floats(0.0, 1.0),
                                limit=st.integers(0, 5), decay_mode=st.sampled_from(["peak", "swing"]),
                                k=st.sampled_from([1.0, 2.0, 0.5])),
                        lambda kw: S.cosine_restarts(**kw), ref_cosine_restarts),
    "cyclic": (_kwargs(base=lr, max=lr, step_up=st.integers(1, 40), step_down=st.none() | st.integers(1, 40),
                       mode=st.sampled_from(["triangular", "triangular2", "exp_range"]), gamma=st.floats(0.9, 1.0),
                       scale_mode=st.sampled_from([None, "cycle", "iterations"])),
               lambda kw: S.cyclic(**kw), ref_cyclic),
    "one_cycle": (_one_cycle(), lambda kw: S.one_cycle(**kw), ref_one_cycle),
    "warmup": (_warmup(), lambda kw: S.warmup(**kw), ref_warmup),
    "anneal": (_anneal(), lambda kw: S.anneal(**kw), ref_anneal),
    "interpolate": (_interp(), lambda kw: S.interpolate(**kw), ref_interpolate),
    "tanh": (_kwargs(steps=steps_f, init=lr, final=lr, lb=st.floats(-10.0, 0.0), ub=st.floats(0.0, 10.0)),
             lambda kw: S.tanh(**kw), ref_tanh),
    "rex": (_kwargs(steps=steps_f, init=lr, final=lr), lambda kw: S.rex(**kw), ref_rex),
    "warmup_stable_decay": (_wsd(), lambda kw: S.warmup_stable_decay(**kw), ref_wsd),
}


def test_every_builder_has_a_reference() -> None:
    builders = {name for name in S.__all__ if name not in ("Schedule", "engine", "sequence", "product", "scale", "shift",
                                                          "plateau", "average_gradient")}  # tests/test_signals.py
    assert builders == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@EXAMPLES
@given(data=st.data())
def test_family_matches_reference(family: str, data: st.DataObject) -> None:
    strategy, build, ref = FAMILIES[family]
    kw = data.draw(strategy, label="kwargs")
    sched = build(kw)
    steps = list(range(0, 320)) + [1000, 12345]
    ours = sched.values(steps)
    expected = np.array([ref(kw, t) for t in steps])
    scale = _scale_of(kw)
    if family == "cyclic":
        # torch's CyclicLR (whose order the core keeps) finds the position in the cycle as
        # 1 + t/total - floor(1 + t/total): it carries the absolute rounding of t/total, which the
        # division by the up (or down) fraction of the cycle magnifies.
        up, down = kw["step_up"], kw["step_down"] or kw["step_up"]
        total = up + down
        scale = scale * (1 + np.asarray(steps) / total) * (total / min(up, down))
    assert_close(ours, expected, scale, what=repr(sched))


# Fixed cases with hand-computed values, so a wrong reference cannot hide a wrong formula.
@pytest.mark.parametrize("sched,steps,expected", [
    (S.step(3, 0.5, init=2.0), [0, 2, 3, 5, 6], [2.0, 2.0, 1.0, 1.0, 0.5]),
    (S.multistep([4, 2, 4], 0.1), [0, 1, 2, 3, 4, 9], [1.0, 1.0, 0.1, 0.1, 0.001, 0.001]),
    (S.piecewise_constant([2], [5.0, 7.0]), [1, 2, 3], [5.0, 7.0, 7.0]),
    (S.piecewise_constant([2], [5.0, 7.0], switch_after=True), [1, 2, 3], [5.0, 5.0, 7.0]),
    (S.exponential(0.5, 2, staircase=True), [0, 1, 2, 3, 4], [1.0, 1.0, 0.5, 0.5, 0.25]),
    (S.exponential(0.5, 1, begin=2, bound=0.2), [0, 2, 3, 4, 9], [1.0, 1.0, 0.5, 0.25, 0.2]),
    (S.linear(4, init=1.0, final=0.0), [0, 1, 4, 8], [1.0, 0.75, 0.0, 0.0]),
    (S.polynomial(4, power=2.0), [0, 2, 4, 5], [1.0, 0.25, 0.0, 0.0]),
    (S.polynomial(4, cycle=True), [0, 4, 5, 8], [1.0, 0.0, 0.375, 0.0]),
    (S.inverse_time(1.0, 2), [0, 2, 6], [1.0, 0.5, 0.25]),
    (S.inverse_power(1, 1.0), [0, 1, 3], [1.0, 0.5, 0.25]),
    (S.inverse_sqrt(4), [0, 12], [1.0, 0.5]),
    (S.cosine(4), [0, 2, 4, 6], [1.0, 0.5, 0.0, 0.0]),
    (S.cosine(4, clamp=False), [6, 8], [0.5, 1.0]),
    (S.cosine_restarts(2, period_mult=2.0, decay=0.5), [0, 1, 2, 4, 6], [1.0, 0.5, 0.5, 0.25, 0.25]),
    (S.cyclic(0.0, 1.0, 2), [0, 1, 2, 3, 4], [0.0, 0.5, 1.0, 0.5, 0.0]),
    (S.cyclic(0.0, 1.0, 2, mode="triangular2"), [2, 6, 10], [1.0, 0.5, 0.25]),
    (S.warmup(4, init=0.0, peak=2.0), [0, 1, 4, 9], [0.0, 0.5, 2.0, 2.0]),
    (S.warmup(2, init=1.0, peak=4.0, shape="exponential"), [0, 1, 2], [1.0, 2.0, 4.0]),
    (S.anneal(4, start=1.0, end=0.0, shape="1-sqrt"), [0, 1, 4], [1.0, 0.5, 0.0]),
    (S.interpolate({0: 0.0, 4: 2.0, 6: 0.0}), [0, 2, 4, 5, 6, 9], [0.0, 1.0, 2.0, 1.0, 0.0, 0.0]),
    (S.warmup_stable_decay(2, 2, 2), [0, 1, 2, 3, 4, 5, 6, 9], [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]),
    (S.one_cycle(10, pct_start=0.2, div_factor=4.0, final_div_factor=2.0, anneal="linear"),
     [0, 1, 5, 9, 12], [0.25, 1.0, 0.5625, 0.125, 0.125]),
])
def test_hand_computed_values(sched: Schedule, steps: list[int], expected: list[float]) -> None:
    np.testing.assert_allclose(sched.values(steps), expected, rtol=1e-15, atol=1e-16)


def test_tanh_formula_at_fixed_points() -> None:
    s = S.tanh(10, init=1.0, final=0.0, lb=-1.0, ub=1.0)
    assert s(5) == pytest.approx(0.5, rel=1e-15)  # lb*(1-tr) + ub*tr = 0 at the middle
    assert s(0) == pytest.approx(0.5 * (1 - math.tanh(-1.0)), rel=1e-15)
    assert s(10) == 0.0


# ---- torch.optim.lr_scheduler as the oracle --------------------------------------------------------

def _drive(make: Callable[[torch.optim.Optimizer], Any], base: float, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Steps a real torch scheduler n-1 times: (get_last_lr sequence, closed-form sequence or None)."""
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = make(opt)
        last, closed = [sched.get_last_lr()[0]], []
        has_closed = hasattr(sched, "_get_closed_form_lr")
        if has_closed:
            closed.append(sched._get_closed_form_lr()[0])
        for _ in range(n - 1):
            opt.step()
            sched.step()
            last.append(sched.get_last_lr()[0])
            if has_closed:
                closed.append(sched._get_closed_form_lr()[0])
    return np.array(last, dtype=np.float64), (np.array(closed, dtype=np.float64) if has_closed else None)


def _check_torch(ours: Schedule, make: Callable[[torch.optim.Optimizer], Any], base: float, n: int,
                 recursion_rtol: float = 1e-9) -> None:
    values = base * ours.values(range(n))
    last, closed = _drive(make, base, n)
    if closed is not None:  # torch's closed form: the same formula, so the strict tolerance
        assert_close(values, closed, base, what=f"{ours!r} vs closed form")
    # torch's chained get_lr() multiplies step by step: its rounding grows with the step count.
    err = np.abs(values - last)
    assert np.all(err <= recursion_rtol * np.abs(last) + 1e-12 * base), (
        f"{ours!r}: torch recursion differs at t={int(np.argmax(err))}")


base_lr = st.floats(1e-3, 10.0)


@FEW
@given(base=base_lr, step_size=st.integers(1, 30), gamma=st.floats(0.05, 1.0), n=st.integers(1, 150))
def test_torch_steplr(base: float, step_size: int, gamma: float, n: int) -> None:
    _check_torch(S.step(step_size, gamma), lambda o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma), base, n)


@FEW
@given(base=base_lr, milestones=st.lists(st.integers(1, 120), max_size=6), gamma=st.floats(0.05, 1.0))
def test_torch_multisteplr(base: float, milestones: list[int], gamma: float) -> None:
    # torch counts a repeated milestone twice, and does not need them sorted; nor does multistep().
    _check_torch(S.multistep(milestones, gamma),
                 lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones, gamma), base, 150)


@FEW
@given(base=base_lr, gamma=st.floats(0.8, 1.02))
def test_torch_exponentiallr(base: float, gamma: float) -> None:
    _check_torch(S.exponential(gamma), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma), base, 150)


@FEW
@given(base=base_lr, t_max=st.integers(1, 60), eta_frac=st.floats(0.0, 1.0))
def test_torch_cosineannealinglr(base: float, t_max: int, eta_frac: float) -> None:
    # torch's closed form keeps going past T_max (a periodic cosine): clamp=False. Its chained form
    # subtracts nearly equal numbers near eta_min, so it is compared with an absolute floor of 1e-12 base.
    eta_min = eta_frac * base
    sched = S.cosine(t_max, init=1.0, final=eta_min / base, clamp=False)
    _check_torch(sched, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, t_max, eta_min), base, 3 * t_max + 5)


@FEW
@given(base=base_lr, t0=st.integers(1, 30), t_mult=st.integers(1, 3), eta_frac=st.floats(0.0, 1.0))
def test_torch_cosineannealingwarmrestarts(base: float, t0: int, t_mult: int, eta_frac: float) -> None:
    eta_min = eta_frac * base
    sched = S.cosine_restarts(t0, init=1.0, final=eta_min / base, period_mult=float(t_mult))
    _check_torch(sched, lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, t0, t_mult, eta_min),
                 base, 200, recursion_rtol=1e-12)


@FEW
@given(base=st.floats(0.0, 1.0), peak=st.floats(1e-3, 5.0), up=st.integers(1, 30), down=st.none() | st.integers(1, 30),
       mode=st.sampled_from(["triangular", "triangular2", "exp_range"]), gamma=st.floats(0.9, 1.0))
def test_torch_cycliclr(base: float, peak: float, up: int, down: int | None, mode: str, gamma: float) -> None:
    # CyclicLR writes absolute LRs (base_lr .. max_lr), so the schedule carries them and the group LR is 1.
    sched = S.cyclic(base, peak, up, down, mode=mode, gamma=gamma)
    _check_torch(sched, lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, base, peak, up, down, mode=mode, gamma=gamma, cycle_momentum=False), 1.0, 150, recursion_rtol=1e-12)


@FEW
@given(kw=_one_cycle())
def test_torch_onecyclelr(kw: dict) -> None:
    # torch raises past total_steps; within them it is the same closed form (torch's phase ends).
    total = kw["total_steps"]
    sched = S.one_cycle(**kw)
    _check_torch(sched, lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=kw["max"], total_steps=total, pct_start=kw["pct_start"], anneal_strategy=kw["anneal"],
        div_factor=kw["div_factor"], final_div_factor=kw["final_div_factor"], three_phase=kw["three_phase"],
        cycle_momentum=False), 1.0, total, recursion_rtol=1e-12)


@FEW
@given(base=base_lr, total=st.integers(1, 80), power=st.floats(0.1, 4.0))
def test_torch_polynomiallr(base: float, total: int, power: float) -> None:
    _check_torch(S.polynomial(total, power=power),
                 lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total, power), base, total + 20)


@FEW
@given(base=base_lr, start=st.floats(0.01, 1.0), end=st.floats(0.0, 1.0), total=st.integers(1, 80))
def test_torch_linearlr(base: float, start: float, end: float, total: int) -> None:
    _check_torch(S.linear(total, init=start, final=end),
                 lambda o: torch.optim.lr_scheduler.LinearLR(o, start, end, total), base, total + 20)


@FEW
@given(base=base_lr, factor=st.floats(0.01, 1.0), total=st.integers(1, 80))
def test_torch_constantlr(base: float, factor: float, total: int) -> None:
    sched = S.sequence([S.constant(factor), S.constant(1.0)], [total])
    _check_torch(sched, lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor, total), base, total + 20)


def test_torch_oracle_detects_a_wrong_schedule() -> None:
    with pytest.raises(AssertionError):
        _check_torch(S.step(10, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 11, 0.5), 1.0, 40)


# ---- hypothesis properties ----------------------------------------------------------------------

@st.composite
def any_schedule(draw: Any) -> tuple[str, Schedule]:
    family = draw(st.sampled_from(sorted(FAMILIES)))
    strategy, build, _ = FAMILIES[family]
    return family, build(draw(strategy))


@st.composite
def composite_schedule(draw: Any, depth: int = 2) -> Schedule:
    if depth == 0 or draw(st.booleans()):
        return draw(any_schedule())[1]
    kind = draw(st.sampled_from(["sequence", "product", "scale", "shift"]))
    if kind == "sequence":
        parts = draw(st.lists(composite_schedule(depth - 1), min_size=1, max_size=3))
        bounds = sorted(draw(st.lists(st.integers(0, 150), min_size=len(parts) - 1, max_size=len(parts) - 1)))
        return S.sequence(parts, bounds)
    if kind == "product":
        return S.product(*draw(st.lists(composite_schedule(depth - 1), min_size=1, max_size=3)))
    if kind == "scale":
        return S.scale(draw(composite_schedule(depth - 1)), draw(st.floats(0.0, 3.0)))
    return S.shift(draw(composite_schedule(depth - 1)), draw(st.integers(0, 100)))


@settings(max_examples=100, deadline=None)
@given(sched=composite_schedule(), big=st.integers(0, 2**40))
def test_values_are_finite(sched: Schedule, big: int) -> None:
    v = sched.values(list(range(400)) + [big])
    assert np.all(np.isfinite(v)), repr(sched)
    assert np.all(v >= 0), repr(sched)


@settings(max_examples=100, deadline=None)
@given(sched=composite_schedule(), n=st.integers(1, 300), data=st.data())
def test_tail_of_values_equals_values_of_tail(sched: Schedule, n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    full = sched.values(range(n))
    assert np.array_equal(sched.values(range(k, n)), full[k:])
    t = data.draw(st.integers(0, n - 1))
    assert sched(t) == sched.values([t])[0] == full[t]
    assert isinstance(sched(t), float)


def test_values_accepts_ranges_lists_and_arrays() -> None:
    s = S.warmup(10) >> S.cosine(90)
    full = s.values(range(100))
    assert full.dtype == np.float64
    assert np.array_equal(s.values(range(0, 100, 7)), full[::7])
    assert np.array_equal(s.values([3, 1, 3]), full[[3, 1, 3]])
    assert np.array_equal(s.values(np.array([[5, 6], [7, 8]], dtype=np.int32)), full[5:9])
    assert s.values([]).shape == (0,)


def _jump_bound(points: list[tuple[float, float]], kind: str) -> float:
    """The largest change one step can make along an interpolation (linear: the slope; half cosine:
    pi/2 times the mean slope), and so the largest jump a continuous schedule may show."""
    bound = 0.0
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        slope = abs(v1 - v0) / (t1 - t0)
        bound = max(bound, slope * (math.pi / 2 if kind == "cosine" else 1.0))
    return bound


def _ulps(*values: float) -> float:
    """Rounding allowance for a difference of two values of this magnitude."""
    return 2 * ATOL_ULPS * max([abs(v) for v in values] + [1e-300])


def _max_step_change(values: np.ndarray) -> float:
    return float(np.max(np.abs(np.diff(values)))) if values.size > 1 else 0.0


@EXAMPLES
@given(w=st.integers(1, 50), t=st.integers(1, 100), init=lr, peak=pos_lr, final=lr)
def test_warmup_then_cosine_is_continuous(w: int, t: int, init: float, peak: float, final: float) -> None:
    sched = S.warmup(w, init=init, peak=peak) >> S.cosine(t, init=peak, final=final)
    v = sched.values(range(w + t + 10))
    assert v[w] == peak  # the cosine starts where the warmup arrives
    bound = _jump_bound([(0, init), (w, peak)], "linear") + _jump_bound([(0, peak), (t, final)], "cosine")
    assert _max_step_change(v) <= bound * (1 + 1e-12) + _ulps(init, peak, final)


def test_warmup_then_cosine_with_another_peak_jumps() -> None:
    v = (S.warmup(10, peak=1.0) >> S.cosine(90, init=2.0)).values(range(20))
    assert v[10] - v[9] > 1.0  # the continuity check above would catch this


@EXAMPLES
@given(kw=_one_cycle())
def test_one_cycle_is_continuous(kw: dict) -> None:
    total, pct, peak = kw["total_steps"], kw["pct_start"], kw["max"]
    initial = peak / kw["div_factor"]
    minimum = initial / kw["final_div_factor"]
    pts = [(0.0, initial), (pct * total - 1, peak)]
    pts += [(2 * pct * total - 2, initial), (total - 1, minimum)] if kw["three_phase"] else [(total - 1, minimum)]
    v = S.one_cycle(**kw).values(range(total + 5))
    kind = "cosine" if kw["anneal"] == "cos" else "linear"
    assert _max_step_change(v) <= _jump_bound(pts, kind) * (1 + 1e-12) + _ulps(peak)
    assert v[0] == pytest.approx(initial, rel=1e-15) and v[-1] == pytest.approx(minimum, rel=1e-15)


@EXAMPLES
@given(kw=_interp())
def test_interpolate_is_continuous(kw: dict) -> None:
    pts = sorted((float(t), v) for t, v in kw["points"].items())
    v = S.interpolate(**kw).values(range(200))
    assert _max_step_change(v) <= _jump_bound(pts, kw["kind"]) * (1 + 1e-12) + _ulps(*kw["points"].values())
    for t, value in pts:  # passes through every point
        assert v[int(t)] == value


@EXAMPLES
@given(period=st.integers(2, 40), mult=st.sampled_from([1.0, 1.5, 2.0, 3.0]), init=lr, final=lr,
       decay=st.floats(0.0, 1.0), mode=st.sampled_from(["peak", "swing"]))
def test_cosine_restarts_is_continuous_within_a_cycle(period: int, mult: float, init: float, final: float,
                                                      decay: float, mode: str) -> None:
    sched = S.cosine_restarts(period, init=init, final=final, period_mult=mult, decay=decay, decay_mode=mode)
    v = sched.values(range(300))
    start, length, i = 0.0, float(period), 0
    while start < 300:
        lo, hi = int(math.ceil(start)), int(min(300, math.ceil(start + length)))
        top = init * decay**i if mode == "peak" else final + (init - final) * decay**i
        bound = abs(top - final) * math.pi / (2 * length)
        if lo == start:  # a cycle that starts on a step starts at its top
            assert v[lo] == pytest.approx(top, rel=1e-12, abs=_ulps(init, final))
        if hi - lo > 1:
            assert _max_step_change(v[lo:hi]) <= bound * (1 + 1e-12) + _ulps(init, final)
        start, length, i = start + length, length * mult, i + 1


def test_cosine_restarts_non_integer_period_restarts_on_time() -> None:
    # 30 * 1.1 is 33.0 in float64 while 33 / 1.1 rounds to just below 30: step 33 starts cycle 30.
    v = S.cosine_restarts(1.1).values([32, 33, 34])
    assert v[1] == 1.0 and v[0] < 1.0 and v[2] < 0.1
    # Cycle i starts at the float64 step i * period: the last such start at or before t holds t.
    for period in (0.7, 1.1, 2.3, 3.3, 7.1):
        ours = S.cosine_restarts(period).values(range(400))
        for t in range(400):
            i = max(i for i in range(int(t / period) + 3) if i * period <= t)
            expected = 0.5 * (1 + math.cos(math.pi * (t - i * period) / period))
            assert ours[t] == pytest.approx(expected, rel=1e-12, abs=1e-15), (period, t)


def test_cosine_restarts_with_shrinking_periods_stays_finite() -> None:
    # period_mult < 1: the periods sum to period / (1 - mult); past that point the schedule holds final.
    s = S.cosine_restarts(10, final=0.1, period_mult=0.5, k=1.5)
    v = s.values(range(60))
    assert np.all(np.isfinite(v)) and np.all(v[20:] == 0.1)
    assert v[10] == 1.0 and v[15] == 1.0  # restarts at 10 and 15


def test_polynomial_cycle_with_a_non_integer_horizon_is_finite() -> None:
    # T * ceil(t / T) can round to just below t (T = 0.7, t = 63): the base of the power must not go < 0.
    for steps in (0.7, 2.3, 0.3, 1.1):
        v = S.polynomial(steps, cycle=True, power=0.5).values(range(2000))
        assert np.all(np.isfinite(v)) and np.all(v >= 0)


def test_polynomial_and_cosine_k_decay_do_not_overflow() -> None:
    assert np.all(np.isfinite(S.polynomial(1000, k=200.0).values([0, 10, 500, 999, 1000])))
    assert np.all(np.isfinite(S.cosine(1000, k=200.0).values([0, 10, 500, 999, 1000])))
    assert S.polynomial(1000, k=200.0)(999) == pytest.approx(1 - 0.999**200, rel=1e-12)


def test_exponential_growth_is_clipped_at_its_bound() -> None:
    # rate > 1 grows (an LR range test); the bound is then a ceiling, as optax's end_value.
    s = S.exponential(1.05, init=0.5, bound=2.0)
    v = s.values([0, 10, 100, 10**6])
    assert v[0] == 0.5 and v[1] == pytest.approx(0.5 * 1.05**10, rel=1e-12) and v[2] == v[3] == 2.0
    # ... and the bound clips the held initial value too (optax applies it to every value).
    assert S.exponential(0.5, init=0.1, begin=5, bound=0.3).values([0, 5, 6]).tolist() == [0.3, 0.3, 0.3]


def test_cyclic_exp_range_rejects_a_growing_gamma() -> None:
    with pytest.raises(ValueError, match="gamma must be in"):
        S.cyclic(0.1, 1.0, 10, mode="exp_range", gamma=1.5)


def _assert_monotone(v: np.ndarray, direction: float, what: str) -> None:
    d = np.diff(v) * direction
    assert np.all(d >= 0), f"{what}: not monotone at t={int(np.argmin(d))}"


MONOTONE: dict[str, st.SearchStrategy[tuple[Schedule, float]]] = {
    "cosine": st.builds(lambda s, i, f, e, k: (S.cosine(s, init=i, final=f, exponent=e, k=k), f - i),
                        steps_f, lr, lr, st.floats(0.25, 4.0), st.sampled_from([1.0, 0.5, 2.0])),
    "linear": st.builds(lambda s, i, f: (S.linear(s, init=i, final=f), f - i), steps_f, lr, lr),
    "polynomial": st.builds(lambda s, i, f, p, k: (S.polynomial(s, init=i, final=f, power=p, k=k), f - i),
                            steps_f, lr, lr, st.floats(0.1, 5.0), st.sampled_from([1.0, 1.5])),
    "exponential": st.builds(lambda r, s, i, b, sc, bd: (S.exponential(r, s, init=i, begin=b, staircase=sc, bound=bd),
                                                         -1.0),
                             st.floats(0.01, 0.999), steps_f, lr, st.integers(0, 20), st.booleans(), st.none() | lr),
    "step": st.builds(lambda n, g, i: (S.step(n, g, init=i), -1.0), st.integers(1, 30), st.floats(0.0, 1.0), lr),
    "multistep": st.builds(lambda m, g: (S.multistep(m, g), -1.0), _milestones(), st.floats(0.0, 1.0)),
    "anneal": st.builds(lambda kw: (S.anneal(**kw), kw["end"] - kw["start"]), _anneal()),
    "warmup": st.builds(lambda kw: (S.warmup(**kw), kw["peak"] - kw["init"]), _warmup()),
    "inverse_time": st.builds(lambda r, s, i: (S.inverse_time(r, s, init=i), -1.0), st.floats(0, 5), steps_f, lr),
    "inverse_power": st.builds(lambda s, g, i: (S.inverse_power(s, g, init=i), -1.0), steps_f, st.floats(0, 3), lr),
    "inverse_sqrt": st.builds(lambda s, i: (S.inverse_sqrt(s, init=i), -1.0), steps_f, lr),
    "tanh": st.builds(lambda s, i, f, lb, ub: (S.tanh(s, init=i, final=f, lb=lb, ub=ub), f - i),
                      steps_f, lr, lr, st.floats(-10, 0), st.floats(0, 10)),
}


@pytest.mark.parametrize("family", sorted(MONOTONE))
@EXAMPLES
@given(data=st.data())
def test_monotone_where_promised(family: str, data: st.DataObject) -> None:
    sched, direction = data.draw(MONOTONE[family])
    v = sched.values(list(range(400)) + [10**6])
    _assert_monotone(v, 1.0 if direction > 0 else -1.0, repr(sched))


def test_monotone_check_catches_a_bump() -> None:
    with pytest.raises(AssertionError):
        _assert_monotone(S.cosine(10, clamp=False).values(range(30)), -1.0, "unclamped cosine")


# ---- composition ---------------------------------------------------------------------------------

leaf = any_schedule().map(lambda fs: fs[1])


@EXAMPLES
@given(parts=st.lists(leaf, min_size=1, max_size=4), data=st.data())
def test_sequence_runs_each_piece_on_its_own_clock(parts: list[Schedule], data: st.DataObject) -> None:
    bounds = sorted(data.draw(st.lists(st.integers(0, 100), min_size=len(parts) - 1, max_size=len(parts) - 1)))
    seq = S.sequence(parts, bounds)
    ts = np.arange(150)
    expected = np.empty(ts.size)
    for t in ts:
        k = bisect.bisect_right(bounds, t)  # the boundary step belongs to the next piece
        local = t - (bounds[k - 1] if k else 0)
        expected[t] = parts[k](int(local))
    assert np.array_equal(seq.values(ts), expected)


@EXAMPLES
@given(inner=st.lists(leaf, min_size=2, max_size=2), outer=leaf, b1=st.integers(0, 30), b2=st.integers(0, 60))
def test_nested_sequences(inner: list[Schedule], outer: Schedule, b1: int, b2: int) -> None:
    nested = S.sequence([S.sequence(inner, [b1]), outer], [b2])
    for t in range(100):
        if t >= b2:
            expected = outer(t - b2)
        else:
            expected = inner[1](t - b1) if t >= b1 else inner[0](t)
        assert nested(t) == expected


@EXAMPLES
@given(sched=composite_schedule(), offset=st.integers(0, 200))
def test_shift_runs_ahead(sched: Schedule, offset: int) -> None:
    assert np.array_equal(S.shift(sched, offset).values(range(100)), sched.values(range(offset, offset + 100)))


@EXAMPLES
@given(parts=st.lists(leaf, min_size=1, max_size=4), factor=st.floats(0.0, 5.0))
def test_product_and_scale(parts: list[Schedule], factor: float) -> None:
    ts = range(200)
    expected = np.ones(200)
    for p in parts:
        expected = expected * p.values(ts)
    assert np.array_equal(S.product(*parts).values(ts), expected)
    a = parts[0]
    assert np.array_equal(S.scale(a, factor).values(ts), factor * a.values(ts))
    assert np.array_equal((factor * a).values(ts), factor * a.values(ts))
    assert np.array_equal((a * factor).values(ts), factor * a.values(ts))
    if len(parts) > 1:
        assert np.array_equal((a * parts[1]).values(ts), a.values(ts) * parts[1].values(ts))


def test_rshift_starts_the_second_when_the_first_ends() -> None:
    a, b = S.warmup(10, init=0.1), S.cosine(50, final=0.01)
    chained = a >> b
    assert chained == S.sequence([a, b], [10])
    assert np.array_equal(chained.values(range(100)), S.sequence([a, b], [10]).values(range(100)))
    assert chained.duration == 60.0
    three = a >> b >> S.constant(0.01)
    assert three(60) == 0.01 and three(59) == b(49) and three(5) == a(5)
    with pytest.raises(ValueError, match="no fixed duration"):
        S.exponential(0.5) >> b
    with pytest.raises(ValueError, match="no fixed duration"):
        S.cosine(10, clamp=False) >> b


def test_durations() -> None:
    assert S.warmup(10).duration == 10.0
    assert S.warmup_stable_decay(5, 10, 20).duration == 35.0
    assert S.one_cycle(100).duration == 99.0
    assert S.polynomial(30, cycle=True).duration is None
    assert S.product(S.warmup(10), S.linear(30)).duration == 30.0
    assert S.product(S.warmup(10), S.exponential(0.5)).duration is None


def test_combinators_validate_their_arguments() -> None:
    with pytest.raises(ValueError, match="boundaries needs len"):
        S.sequence([S.constant(), S.constant()], [])
    with pytest.raises(ValueError, match="sorted"):
        S.sequence([S.constant(), S.constant(), S.constant()], [5, 2])
    with pytest.raises(TypeError, match=r"schedules\[1\]"):
        S.sequence([S.constant(), 3.0], [2])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="factor"):
        S.scale(S.constant(), -1.0)
    with pytest.raises(ValueError, match="offset"):
        S.shift(S.constant(), -1)
    with pytest.raises(ValueError, match="at least one"):
        S.product()


def test_repr_is_readable_and_rebuilds_leaves() -> None:
    sched = S.warmup(10, init=0.1) >> S.cosine(90, final=0.01)
    text = repr(sched)
    assert text.startswith("sequence(schedules=[warmup(steps=10, init=0.1")
    assert "cosine(steps=90, init=1.0, final=0.01" in text and "boundaries=[10]" in text
    assert repr(2.0 * S.constant(0.5)) == "scale(schedule=constant(value=0.5), factor=2.0)"
    assert repr(S.multistep([30, 60], 0.1)) == "multistep(milestones=[30, 60], gamma=0.1, init=1.0)"
    namespace = {name: getattr(S, name) for name in S.__all__}
    for s in [S.step(3, 0.5), S.cosine_restarts(10, period_mult=2.0), S.one_cycle(100, three_phase=True),
              S.interpolate({0: 1.0, 10: 2.0}), S.warmup_stable_decay(1, 2, 3, decay_shape="cosine"), sched,
              S.shift(S.linear(5), 2)]:
        rebuilt = eval(repr(s), namespace)  # noqa: S307 - our own repr
        assert rebuilt == s and np.array_equal(rebuilt.values(range(120)), s.values(range(120)))


def test_equal_specs_compare_equal() -> None:
    assert S.cosine(10) == S.cosine(10) and hash(S.cosine(10)) == hash(S.cosine(10))
    assert S.cosine(10) != S.cosine(11)
    assert S.cosine(10) != "cosine(steps=10)"


# ---- builder validation --------------------------------------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda: S.cosine(0), r"steps must be > 0, got 0"),
    (lambda: S.cosine(-5), r"steps must be > 0, got -5"),
    (lambda: S.warmup(10, peak=-1.0), r"peak must be >= 0, got -1.0"),
    (lambda: S.warmup(10, peak=float("nan")), r"peak must be finite, got nan"),
    (lambda: S.constant(float("inf")), r"value must be finite, got inf"),
    (lambda: S.step(0), r"step_size must be > 0, got 0"),
    (lambda: S.exponential(0.0), r"rate must be > 0, got 0.0"),
    (lambda: S.exponential(0.5, bound=-1), r"bound must be >= 0, got -1"),
    (lambda: S.piecewise_constant([5, 2], [1, 2, 3]), r"boundaries must be sorted, got \[5, 2\]"),
    (lambda: S.piecewise_constant([2, 5], [1, 2]), r"values needs len\(boundaries\) \+ 1 = 3 entries, got 2"),
    (lambda: S.multistep([-3], 0.1), r"milestones\[0\] must be >= 0, got -3"),
    (lambda: S.interpolate({}), r"points must not be empty"),
    (lambda: S.interpolate([(5, 1.0), (5, 2.0)]), r"must be sorted and distinct"),
    (lambda: S.interpolate({0: 1.0}, kind="cubic"), r"kind must be one of \['linear', 'cosine'\], got 'cubic'"),
    (lambda: S.one_cycle(100, pct_start=1.5), r"pct_start must be in \(0, 1\), got 1.5"),
    (lambda: S.one_cycle(2, pct_start=0.1), r"total_steps=2 with pct_start=0.1"),
    (lambda: S.one_cycle(100, anneal="exp"), r"anneal must be one of \['cos', 'linear'\], got 'exp'"),
    (lambda: S.warmup(10, shape="exponential"), r"init must be > 0 for an exponential warmup"),
    (lambda: S.anneal(10, end=0.0, shape="exponential"), r"start and end > 0"),
    (lambda: S.cosine_restarts(10, limit=1.5), r"limit must be an integer >= 0, got 1.5"),
    (lambda: S.cosine_restarts(10, decay_mode="both"), r"decay_mode must be one of"),
    (lambda: S.cyclic(0.1, 1.0, mode="sine"), r"mode must be one of"),
    (lambda: S.polynomial(10, power=0), r"power must be > 0, got 0"),
    (lambda: S.tanh(10, lb=float("nan")), r"lb must be finite, got nan"),
])
def test_builders_reject_bad_arguments_by_name(call: Callable[[], Schedule], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call,match", [
    (lambda: S.cosine("10"), r"steps must be a real number, got '10'"),
    (lambda: S.warmup(10, peak=True), r"peak must be a real number, got True"),
    (lambda: S.scale(3.0, 2.0), r"schedule must be a torchsched schedule"),
])
def test_builders_reject_bad_types_by_name(call: Callable[[], Schedule], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        call()


def test_step_arguments_are_checked() -> None:
    s = S.cosine(10)
    with pytest.raises(ValueError, match=r"step must be an integer >= 0, got -1"):
        s(-1)
    with pytest.raises(TypeError, match=r"step must be an integer >= 0, got 1.5"):
        s(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"steps must be >= 0, got -1"):
        s.values([-1])
    with pytest.raises(TypeError, match=r"steps must be integers, got dtype float64"):
        s.values([0.5])


def test_rshift_equals_the_hand_written_sequence() -> None:
    a, b = S.warmup(10), S.cosine(90)
    assert (a >> b) == S.sequence([a, b], [10])
    assert "boundaries=[10]" in repr(a >> b)
