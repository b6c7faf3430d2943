"""Golden sequences recorded from the real Transformers, timm, optax and Keras (tests/data/*.json).

Every recorded case is rebuilt here with ``torchsched.schedules`` builders and compared over its 120
recorded steps. ``values[t]`` is the LR that optimizer update t uses (torch's convention; see each file's
``convention``): the value after construction is ``values[0]``.

Tolerance: a relative 1e-12 for every case. The golden README allows 1e-9 for optax/Keras cases that
evaluate ``pow``/``cos`` in another library's order of operations; none needs it, so none gets it. Values
that are exactly 0 in the golden get an absolute floor of 1e-15 (a relative error is undefined there).

Each case carries a note with the peer's convention: where its warmup starts (value at t = 0), whether a
boundary step already belongs to the next piece, and whether the decay length includes the warmup. Where
torchsched deliberately follows a different convention, a test below states it and asserts the difference.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from torchsched.schedules import (
    Schedule,
    constant,
    cosine,
    cosine_restarts,
    exponential,
    interpolate,
    inverse_sqrt,
    inverse_time,
    linear,
    multistep,
    one_cycle,
    piecewise_constant,
    polynomial,
    sequence,
    shift,
    step,
    tanh,
    warmup,
    warmup_stable_decay,
)

DATA = pathlib.Path(__file__).parent / "data"
PEERS = ("transformers", "timm", "optax", "keras")
TOTAL_CASES = 58
RTOL = 1e-12
ZERO_FLOOR = 1e-15


@dataclass(frozen=True)
class Case:
    build: Callable[[], Schedule]
    note: str  # the peer's convention, in words


def _load(peer: str) -> dict:
    with open(DATA / f"{peer}.json", encoding="utf-8") as f:
        return json.load(f)


GOLDEN = {peer: _load(peer) for peer in PEERS}


def _golden(peer: str, call: str) -> np.ndarray:
    for case in GOLDEN[peer]["cases"]:
        if case["call"] == call:
            return np.asarray(case["values"], dtype=np.float64)
    raise KeyError(call)


def _timm_tanh_warmup() -> Schedule:
    # timm's TanhLRScheduler (warmup_prefix=False) warms up to the tanh value *at warmup_t*, so the warmup
    # meets the decay without a jump; the decay runs on the global clock.
    decay = tanh(100, final=0.01, lb=-7.0, ub=3.0)
    return sequence([warmup(10, init=0.0, peak=decay(10)), shift(decay, 10)], [10])


def _optax_onecycle_points(kind: str) -> Schedule:
    # optax builds one-cycle as piecewise_interpolate_schedule(init=peak/div, {int(pct*T): scale, ...}); the
    # values are the running products of the scales, computed here in the same order.
    init = 1.0 / 25.0
    if kind == "linear":
        v1 = init * 25.0
        v2 = v1 * (1.0 / 25.0)
        v3 = v2 * (1.0 / 1e4)
        return interpolate({0: init, 30: v1, 85: v2, 100: v3}, kind="linear")
    v1 = init * 25.0
    v2 = v1 * (1.0 / (25.0 * 1e4))
    return interpolate({0: init, 30: v1, 100: v2}, kind="cosine")


# Transformers: get_scheduler(name, SGD(lr=1.0), num_warmup_steps=W, num_training_steps=N). Its lambdas
# are factors of the base LR on the global step t. Linear warmup is t / W: 0 at t = 0, reaching the peak at
# t = W, where the decay starts; the decay length is N - W (warmup included in N). Cosine-family decays are
# not clamped at N (the cosine keeps going), except cosine_with_restarts (0 from N on).
TRANSFORMERS: dict[str, Case] = {
    "get_scheduler('linear', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={})":
        Case(lambda: warmup(10) >> linear(90),
             "warmup t/10 (0 at t=0); then max(0, (100 - t)/90): decay length excludes the warmup, 0 from t=100"),
    "get_scheduler('cosine', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={})":
        Case(lambda: warmup(10) >> cosine(90, clamp=False),
             "warmup t/10; then 0.5(1 + cos(pi * (t-10)/90)) with no clamp: past t=100 the cosine rises again"),
    "get_scheduler('constant', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={})":
        Case(lambda: constant(1.0), "factor 1 at every step; num_warmup_steps is ignored by 'constant'"),
    "get_scheduler('constant_with_warmup', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={})":
        Case(lambda: warmup(10) >> constant(1.0), "warmup t/10 (0 at t=0), 1 from t=10 on"),
    "get_scheduler('inverse_sqrt', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={})":
        Case(lambda: warmup(10) >> inverse_sqrt(10),
             "warmup t/10; then 1/sqrt((t + timescale - W)/timescale), timescale defaults to W: 1 at t=W"),
    "get_scheduler('linear', SGD(lr=1.0), num_warmup_steps=0, num_training_steps=100, scheduler_specific_kwargs={})":
        Case(lambda: linear(100), "no warmup: (100 - t)/100 from 1 at t=0, 0 from t=100"),
    "get_scheduler('cosine', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'num_cycles': 1.5})":
        Case(lambda: warmup(10) >> cosine(90, cycles=1.5, clamp=False),
             "warmup t/10; then 0.5(1 + cos(2 pi * 1.5 * progress)), 1.5 full cosine periods over 90 steps, no clamp"),
    "get_scheduler('cosine_with_restarts', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'num_cycles': 3})":
        Case(lambda: warmup(10) >> cosine_restarts(30, limit=3),
             "warmup t/10; then 3 hard restarts of a half cosine over 90/3 steps; 0 once progress >= 1 (t >= 100)"),
    "get_scheduler('polynomial', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'lr_end': 0.001, 'power': 1.0})":
        Case(lambda: warmup(10) >> polynomial(90, final=0.001, power=1.0),
             "warmup t/10; then (lr_init - lr_end)(1 - (t-W)/(N-W))^power + lr_end over the optimizer's lr=1; "
             "lr_end from t > N"),
    "get_scheduler('polynomial', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'lr_end': 0.01, 'power': 2.0})":
        Case(lambda: warmup(10) >> polynomial(90, final=0.01, power=2.0),
             "as above with power 2: decay length N - W, lr_end held from t = N"),
    "get_scheduler('inverse_sqrt', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'timescale': 20})":
        Case(lambda: warmup(10) >> inverse_sqrt(20),
             "warmup t/10; then 1/sqrt((t + 20 - 10)/20): on the decay's own clock, 1/sqrt((t' + 20)/20)"),
    "get_scheduler('cosine_with_min_lr', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'min_lr_rate': 0.1})":
        Case(lambda: warmup(10) >> cosine(90, final=0.1, clamp=False),
             "warmup t/10; then cosine * (1 - 0.1) + 0.1 over N - W steps, no clamp past N"),
    "get_scheduler('cosine_warmup_with_min_lr', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'min_lr_rate': 0.1})":
        Case(lambda: shift(warmup(10) >> cosine(90, final=0.1, clamp=False), 1),
             "warmup (t + 1)/W: 1/W at t=0 and the peak at t=W-1; decay progress (t - W + 1)/(N - W). "
             "It is cosine_with_min_lr one step ahead (asserted below)"),
    "get_scheduler('warmup_stable_decay', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'num_decay_steps': 20, 'decay_type': 'linear', 'min_lr_ratio': 0.0})":
        Case(lambda: warmup_stable_decay(10, 70, 20, decay_shape="linear"),
             "warmup t/W from min_lr_ratio; stable = N - W - decay = 70 steps at 1; decay starts at t=80 "
             "(1 at t=80), min_lr_ratio from t=100"),
    "get_scheduler('warmup_stable_decay', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'num_decay_steps': 20, 'decay_type': 'cosine', 'min_lr_ratio': 0.0})":
        Case(lambda: warmup_stable_decay(10, 70, 20, decay_shape="cosine"),
             "as linear WSD, half-cosine decay over the last 20 steps"),
    "get_scheduler('warmup_stable_decay', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'num_decay_steps': 20, 'decay_type': '1-sqrt', 'min_lr_ratio': 0.0})":
        Case(lambda: warmup_stable_decay(10, 70, 20, decay_shape="1-sqrt"),
             "as linear WSD, decay 1 - sqrt(progress)"),
    "get_scheduler('warmup_stable_decay', SGD(lr=1.0), num_warmup_steps=10, num_training_steps=100, scheduler_specific_kwargs={'num_decay_steps': 30, 'decay_type': 'cosine', 'min_lr_ratio': 0.1})":
        Case(lambda: warmup_stable_decay(10, 60, 30, init=0.1, final=0.1, decay_shape="cosine"),
             "min_lr_ratio also lifts the warmup: it starts at 0.1 at t=0; stable 60 steps; cosine down to 0.1"),
}

# timm: t_in_epochs=False, driven by step_update(t + 1) after each update, so values[t] is _get_lr(t) for
# t >= 1 and, at t = 0, what the constructor left: warmup_lr_init with a warmup, else the base LR. The
# warmup is warmup_lr_init + t * (target - warmup_lr_init)/warmup_t: warmup_lr_init at t = 0, the target at
# t = warmup_t. With warmup_prefix=False the decay runs on the global clock (its length includes the
# warmup, and there is a jump where the warmup ends); with warmup_prefix=True it starts at t = warmup_t.
# A decay reaches lr_min at t = t_initial and holds it (cycle_limit=1).
TIMM: dict[str, Case] = {
    "CosineLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=100, lr_min=0.0)":
        Case(lambda: cosine(100), "half cosine over t_initial=100, lr_min from t=100 (cycle_limit=1)"),
    "CosineLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=100, lr_min=0.01, warmup_t=10, warmup_lr_init=0.0, warmup_prefix=False)":
        Case(lambda: sequence([warmup(10), shift(cosine(100, final=0.01), 10)], [10]),
             "warmup to the base LR at t=10, where the cosine is already at its global step 10 (decay length "
             "includes the warmup; jump at t=10); shift() gives the piece the global clock back"),
    "CosineLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=90, lr_min=0.01, warmup_t=10, warmup_lr_init=0.001, warmup_prefix=True)":
        Case(lambda: warmup(10, init=0.001) >> cosine(90, final=0.01),
             "warmup from 0.001 at t=0; warmup_prefix=True: the 90-step cosine starts at t=10"),
    "CosineLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=20, lr_min=0.0, cycle_mul=2.0, cycle_decay=0.5, cycle_limit=3)":
        Case(lambda: cosine_restarts(20, period_mult=2.0, decay=0.5, limit=3, decay_mode="peak"),
             "cycles of 20, 40, 80 steps starting at 0, 20, 60; cycle i peaks at base * 0.5^i (the peak decays)"),
    "CosineLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=30, lr_min=0.0, cycle_mul=1.5, cycle_decay=0.8, cycle_limit=4)":
        Case(lambda: cosine_restarts(30, period_mult=1.5, decay=0.8, limit=4, decay_mode="peak"),
             "non-integer period multiplier: cycles start at 0, 30, 75; peaks 1, 0.8, 0.64"),
    "CosineLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=100, lr_min=0.0, k_decay=2.0)":
        Case(lambda: cosine(100, k=2.0), "cos(pi * t^k / T^k) with k_decay=2"),
    "TanhLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=100, lr_min=0.0)":
        Case(lambda: sequence([constant(1.0), shift(tanh(100), 1)], [1]),
             "the formula from t=1 on; at t=0 the base LR the constructor left (1.0, not tanh at 0 = "
             "0.99999917): torchsched's tanh() follows the formula at t=0 too (difference asserted below)"),
    "TanhLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=100, lr_min=0.01, lb=-7.0, ub=3.0, warmup_t=10, warmup_lr_init=0.0)":
        Case(_timm_tanh_warmup,
             "warmup_prefix=False: the warmup targets the tanh value at t=warmup_t (no jump), and the tanh runs "
             "on the global clock"),
    "StepLRScheduler(SGD(lr=1.0), t_in_epochs=False, decay_t=15, decay_rate=0.5)":
        Case(lambda: step(15, 0.5), "base * 0.5^(t // 15): the boundary step already has the decayed value"),
    "StepLRScheduler(SGD(lr=1.0), t_in_epochs=False, decay_t=15, decay_rate=0.5, warmup_t=10, warmup_lr_init=0.0)":
        Case(lambda: warmup(10) >> step(15, 0.5),
             "warmup to base at t=10; the step decay counts from the end of the warmup (warmup_prefix=True "
             "default): first decay at t=25"),
    "MultiStepLRScheduler(SGD(lr=1.0), t_in_epochs=False, decay_t=[30, 60, 90], decay_rate=0.3)":
        Case(lambda: shift(multistep([30, 60, 90], 0.3), 1),
             "decays counted by bisect_right(decay_t, t + 1): one step before each milestone (t = 29, 59, 89); "
             "torchsched's multistep follows torch (at t = milestone), difference asserted below"),
    "PolyLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=100, power=0.5, lr_min=0.0)":
        Case(lambda: polynomial(100, power=0.5), "(1 - t/100)^0.5, lr_min from t=100"),
    "PolyLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=100, power=2.0, lr_min=0.01, k_decay=1.5, warmup_t=10, warmup_lr_init=0.0)":
        Case(lambda: sequence([warmup(10), shift(polynomial(100, final=0.01, power=2.0, k=1.5), 10)], [10]),
             "warmup to the base LR (jump at t=10), decay (1 - t^k/T^k)^2 on the global clock (warmup_prefix=False)"),
    "WSDLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=90, warmup_t=10, decay_t=20)":
        Case(lambda: warmup_stable_decay(10, 70, 20, decay_shape="1-sqrt"),
             "warmup 10, then t_initial=90 more steps of which the last decay_t=20 decay by 1 - sqrt (default): "
             "decay from t=80 (1 at t=80), 0 from t=100"),
}

# optax: values[t] = schedule(t). Warmups (linear_schedule from init) give init at t = 0; transition_begin
# holds the initial value through t = begin; join_schedules/warmup_*_schedule switch at t = boundary (the
# boundary step belongs to the next piece, which runs on t - boundary), and warmup_*_schedule's decay_steps
# includes the warmup. Decays are clamped at their end.
OPTAX: dict[str, Case] = {
    "constant_schedule(0.5)":
        Case(lambda: constant(0.5), "0.5 at every step"),
    "linear_schedule(1.0, 0.1, transition_steps=50, transition_begin=20)":
        Case(lambda: sequence([constant(1.0), linear(50, init=1.0, final=0.1)], [20]),
             "1.0 through t=20, then linear to 0.1 at t=70, held"),
    "polynomial_schedule(1.0, 0.01, power=2.0, transition_steps=80, transition_begin=10)":
        Case(lambda: sequence([constant(1.0), polynomial(80, init=1.0, final=0.01, power=2.0)], [10]),
             "1.0 through t=10, then (1 - 0.01)(1 - (t-10)/80)^2 + 0.01, clamped at t=90"),
    "exponential_decay(1.0, transition_steps=10, decay_rate=0.8)":
        Case(lambda: exponential(0.8, 10), "0.8^(t/10), continuous"),
    "exponential_decay(1.0, transition_steps=10, decay_rate=0.8, transition_begin=15, staircase=True, end_value=0.2)":
        Case(lambda: exponential(0.8, 10, begin=15, staircase=True, bound=0.2),
             "1.0 through t=15, then 0.8^floor((t-15)/10): first drop at t=25; floored at end_value 0.2"),
    "cosine_decay_schedule(1.0, decay_steps=100, alpha=0.1)":
        Case(lambda: cosine(100, final=0.1), "((1 - alpha) * cos01 + alpha) * init, clamped at t=100"),
    "cosine_decay_schedule(1.0, decay_steps=100, alpha=0.0, exponent=2.0)":
        Case(lambda: cosine(100, exponent=2.0), "cos01 ** exponent, clamped"),
    "warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=100, end_value=0.01)":
        Case(lambda: warmup(10) >> cosine(90, final=0.01),
             "linear warmup 0 at t=0 to peak at t=10; decay_steps=100 includes the warmup: cosine over 90"),
    "warmup_exponential_decay_schedule(0.0, 1.0, warmup_steps=10, transition_steps=10, decay_rate=0.7, end_value=0.05)":
        Case(lambda: warmup(10) >> exponential(0.7, 10, bound=0.05),
             "linear warmup over 10, then peak * 0.7^((t-10)/10) floored at end_value"),
    "piecewise_constant_schedule(1.0, {30: 0.1, 60: 0.5})":
        Case(lambda: piecewise_constant([30, 60], [1.0, 1.0 * 0.1, 1.0 * 0.1 * 0.5]),
             "scales multiply cumulatively; a boundary b applies from t = b on (t < b keeps the old value)"),
    "piecewise_interpolate_schedule('linear', 1.0, {20: 2.0, 50: 0.1})":
        Case(lambda: interpolate({0: 1.0, 20: 1.0 * 2.0, 50: 1.0 * 2.0 * 0.1}, kind="linear"),
             "points (0, init), then cumulative products of the scales at each boundary; flat after the last"),
    "piecewise_interpolate_schedule('cosine', 1.0, {20: 2.0, 50: 0.1})":
        Case(lambda: interpolate({0: 1.0, 20: 1.0 * 2.0, 50: 1.0 * 2.0 * 0.1}, kind="cosine"),
             "as the linear one, half-cosine between points"),
    "linear_onecycle_schedule(transition_steps=100, peak_value=1.0)":
        Case(lambda: _optax_onecycle_points("linear"),
             "three phases through (0, peak/25), (int(0.3*100)=30, peak), (int(0.85*100)=85, peak/25), "
             "(100, peak/25/1e4); torchsched's one_cycle follows torch's phase ends (asserted below)"),
    "cosine_onecycle_schedule(transition_steps=100, peak_value=1.0)":
        Case(lambda: _optax_onecycle_points("cosine"),
             "two cosine phases through (0, peak/25), (int(0.3*100)=30, peak), (100, peak/(25*1e4)); torch "
             "puts the peak at pct*T - 1 = 29 (asserted below)"),
    "sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=30, end_value=0.0), dict(init_value=0.0, peak_value=0.5, warmup_steps=5, decay_steps=60, end_value=0.0)])":
        Case(lambda: sequence([warmup(5) >> cosine(25), warmup(5, peak=0.5) >> cosine(55, init=0.5)], [30]),
             "join of two warmup_cosine_decay_schedules at t=30 (= first decay_steps, warmup included); "
             "each restarts its own clock"),
    "join_schedules([linear_schedule(0.0, 1.0, 10), cosine_decay_schedule(1.0, 90)], boundaries=[10])":
        Case(lambda: warmup(10) >> cosine(90),
             "the boundary step t=10 belongs to the cosine, which sees t - 10 (local clock)"),
}

# Keras 3: values[t] = schedule(t). Decays clamp at decay_steps unless cycle=True. CosineDecay's warmup
# goes from initial_learning_rate at t = 0 to warmup_target at t = warmup_steps, and decay_steps counts
# after the warmup (excludes it). PiecewiseConstantDecay keeps values[i] while t <= boundaries[i]: the
# boundary step still belongs to the earlier piece.
KERAS: dict[str, Case] = {
    "ExponentialDecay(1.0, decay_steps=10, decay_rate=0.9)":
        Case(lambda: exponential(0.9, 10), "init * 0.9^(t/10), no start step, no floor"),
    "ExponentialDecay(1.0, decay_steps=10, decay_rate=0.9, staircase=True)":
        Case(lambda: exponential(0.9, 10, staircase=True), "0.9^floor(t/10): the boundary step t=10 is decayed"),
    "PiecewiseConstantDecay(boundaries=[30, 60], values=[1.0, 0.5, 0.1])":
        Case(lambda: piecewise_constant([30, 60], [1.0, 0.5, 0.1], switch_after=True),
             "t <= 30 -> 1.0, 30 < t <= 60 -> 0.5: switches one step after torch/optax (asserted below)"),
    "PolynomialDecay(1.0, decay_steps=50, end_learning_rate=0.01, power=2.0)":
        Case(lambda: polynomial(50, final=0.01, power=2.0), "(1 - 0.01)(1 - min(t, 50)/50)^2 + 0.01"),
    "PolynomialDecay(1.0, decay_steps=30, end_learning_rate=0.0, power=1.0, cycle=True)":
        Case(lambda: polynomial(30, cycle=True),
             "cycle: decay_steps * ceil(t / decay_steps) (1 at t=0), so the horizon grows, no jump back up"),
    "InverseTimeDecay(1.0, decay_steps=10, decay_rate=0.5)":
        Case(lambda: inverse_time(0.5, 10), "init / (1 + 0.5 t/10)"),
    "InverseTimeDecay(1.0, decay_steps=10, decay_rate=0.5, staircase=True)":
        Case(lambda: inverse_time(0.5, 10, staircase=True), "init / (1 + 0.5 floor(t/10))"),
    "CosineDecay(1.0, decay_steps=100, alpha=0.1)":
        Case(lambda: cosine(100, final=0.1), "((1 - alpha) cos01 + alpha) * init, clamped at t=100"),
    "CosineDecay(0.0, decay_steps=90, alpha=0.0, warmup_target=1.0, warmup_steps=10)":
        Case(lambda: warmup(10) >> cosine(90),
             "linear warmup 0 at t=0 to the target at t=10; decay_steps=90 excludes the warmup"),
    "CosineDecayRestarts(1.0, first_decay_steps=20, t_mul=2.0, m_mul=0.5, alpha=0.0)":
        Case(lambda: cosine_restarts(20, period_mult=2.0, decay=0.5, decay_mode="swing"),
             "cycles of 20, 40, 80 steps; m_mul scales the swing above alpha * init; no cycle limit"),
    "CosineDecayRestarts(1.0, first_decay_steps=25, t_mul=1.5, m_mul=0.8, alpha=0.05)":
        Case(lambda: cosine_restarts(25, period_mult=1.5, decay=0.8, final=0.05, decay_mode="swing"),
             "non-integer t_mul: cycles start at 0, 25, 62.5, 118.75 (a restart inside step 119); the swing "
             "above alpha decays (timm decays the peak instead: asserted below)"),
}

CASES: dict[str, dict[str, Case]] = {"transformers": TRANSFORMERS, "timm": TIMM, "optax": OPTAX, "keras": KERAS}
PARAMS = [pytest.param(peer, call, id=f"{peer}-{i}") for peer in PEERS for i, call in enumerate(CASES[peer])]


def _mismatch(ours: np.ndarray, golden: np.ndarray) -> np.ndarray:
    """Boolean mask of the steps where ours is not within tolerance of the golden."""
    exact_zero = golden == 0.0
    rel_ok = np.abs(ours - golden) <= RTOL * np.abs(golden)
    zero_ok = exact_zero & (np.abs(ours) <= ZERO_FLOOR)
    return ~(rel_ok | zero_ok)


def _reproduces(peer: str, call: str) -> tuple[bool, str]:
    golden = _golden(peer, call)
    ours = CASES[peer][call].build().values(range(len(golden)))
    bad = np.flatnonzero(_mismatch(ours, golden))
    if bad.size == 0:
        return True, ""
    t = int(bad[0])
    return False, f"{peer} {call}: {bad.size} steps differ, first t={t}: ours {ours[t]!r}, golden {golden[t]!r}"


# ---- the data files -----------------------------------------------------------------------------

def test_data_files_keep_peer_and_version() -> None:
    for peer in PEERS:
        data = GOLDEN[peer]
        assert data["peer"] == peer
        assert isinstance(data["version"], str) and data["version"][0].isdigit()
        assert "values[t]" in data["convention"]
        for case in data["cases"]:
            assert case["steps"] == len(case["values"]) == 120
            assert all(np.isfinite(case["values"]))


def test_every_golden_case_has_a_builder() -> None:
    recorded = {(peer, c["call"]) for peer in PEERS for c in GOLDEN[peer]["cases"]}
    mapped = {(peer, call) for peer in PEERS for call in CASES[peer]}
    assert len(recorded) == TOTAL_CASES
    assert recorded - mapped == set(), "golden cases without a torchsched builder"
    assert mapped - recorded == set(), "builders for calls that are not in the golden files"


# ---- each case ----------------------------------------------------------------------------------

@pytest.mark.parametrize("peer,call", PARAMS)
def test_golden_case(peer: str, call: str) -> None:
    case = CASES[peer][call]
    golden = _golden(peer, call)
    sched = case.build()
    ours = sched.values(range(len(golden)))
    assert ours.dtype == np.float64 and ours.shape == golden.shape
    bad = np.flatnonzero(_mismatch(ours, golden))
    assert bad.size == 0, (
        f"{peer}: {call}\nconvention: {case.note}\n{sched!r}\nfirst mismatch t={bad[0]}: "
        f"ours {ours[bad[0]]!r} golden {golden[bad[0]]!r}"
    )
    # The scalar path and the batched path are one formula.
    for t in (0, 9, 10, 11, 50, 100, 119):
        assert sched(t) == ours[t]


def test_all_cases_reproduced() -> None:
    results = [_reproduces(peer, call) for peer in PEERS for call in CASES[peer]]
    failures = [msg for ok, msg in results if not ok]
    reproduced = len(results) - len(failures)
    print(f"\ngolden: {reproduced}/{TOTAL_CASES} peer cases reproduced "
          f"({', '.join(f'{p} {len(CASES[p])}' for p in PEERS)})")
    assert reproduced == TOTAL_CASES, "\n".join(failures)


def test_mismatch_detects_a_wrong_value() -> None:
    golden = np.array([0.0, 1.0, 0.5])
    assert not _mismatch(golden.copy(), golden).any()
    assert _mismatch(np.array([1e-14, 1.0, 0.5]), golden).tolist() == [True, False, False]
    assert _mismatch(np.array([0.0, 1.0 + 1e-11, 0.5]), golden).tolist() == [False, True, False]


# ---- where torchsched deliberately follows another convention ----------------------------------

def test_timm_multistep_decays_one_step_before_torch() -> None:
    # torchsched.multistep follows torch MultiStepLR: the decay applies at t == milestone. timm's
    # MultiStepLRScheduler counts bisect_right(decay_t, t + 1), one step earlier.
    call = "MultiStepLRScheduler(SGD(lr=1.0), t_in_epochs=False, decay_t=[30, 60, 90], decay_rate=0.3)"
    golden = _golden("timm", call)
    torch_like = multistep([30, 60, 90], 0.3).values(range(120))
    assert np.flatnonzero(_mismatch(torch_like, golden)).tolist() == [29, 59, 89]
    assert torch_like[29] == 1.0 and golden[29] == pytest.approx(0.3, rel=RTOL)


def test_timm_tanh_starts_at_the_base_lr_not_the_formula() -> None:
    # timm leaves the base LR in place until the first step_update; tanh() is the formula at every t,
    # which at t = 0 is 0.5 (1 - tanh(lb)) = 0.99999917, not 1.
    call = "TanhLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=100, lr_min=0.0)"
    golden = _golden("timm", call)
    formula = tanh(100).values(range(120))
    assert np.flatnonzero(_mismatch(formula, golden)).tolist() == [0]
    assert golden[0] == 1.0
    assert formula[0] == pytest.approx(0.5 * (1 - np.tanh(-7.0)), rel=RTOL)


def test_timm_warmup_prefix_false_keeps_the_global_clock() -> None:
    # `a >> b` and sequence() start b on its own clock (optax, Keras, Transformers). timm's
    # warmup_prefix=False keeps the decay on the global clock: the decay length includes the warmup.
    call = ("CosineLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=100, lr_min=0.01, warmup_t=10, "
            "warmup_lr_init=0.0, warmup_prefix=False)")
    golden = _golden("timm", call)
    local_clock = (warmup(10) >> cosine(100, final=0.01)).values(range(120))
    bad = np.flatnonzero(_mismatch(local_clock, golden))
    assert bad[0] == 10 and local_clock[10] == 1.0 and golden[10] < 0.98


def test_optax_onecycle_phase_ends_differ_from_torch() -> None:
    # torchsched.one_cycle follows torch OneCycleLR: the peak is at pct_start * total - 1 (step 29 of 100);
    # optax puts it at int(pct_start * transition_steps) (step 30) and ends the decay at transition_steps.
    golden = _golden("optax", "cosine_onecycle_schedule(transition_steps=100, peak_value=1.0)")
    torch_like = one_cycle(100, max=1.0, pct_start=0.3, div_factor=25.0, final_div_factor=1e4).values(range(120))
    assert int(np.argmax(torch_like)) == 29 and int(np.argmax(golden)) == 30
    assert _mismatch(torch_like, golden)[1:100].all()
    assert torch_like[0] == pytest.approx(golden[0], rel=RTOL)
    golden3 = _golden("optax", "linear_onecycle_schedule(transition_steps=100, peak_value=1.0)")
    torch3 = one_cycle(100, max=1.0, pct_start=0.3, anneal="linear", three_phase=True).values(range(120))
    assert int(np.argmax(torch3)) == 29 and int(np.argmax(golden3)) == 30
    assert torch3[58] == pytest.approx(0.04, rel=RTOL) and golden3[85] == pytest.approx(0.04, rel=RTOL)


def test_keras_piecewise_constant_switches_after_the_boundary() -> None:
    # The default (torch MultiStepLR, optax) switches at t == boundary; Keras at t == boundary + 1.
    golden = _golden("keras", "PiecewiseConstantDecay(boundaries=[30, 60], values=[1.0, 0.5, 0.1])")
    default = piecewise_constant([30, 60], [1.0, 0.5, 0.1]).values(range(120))
    assert np.flatnonzero(_mismatch(default, golden)).tolist() == [30, 60]


def test_transformers_cosine_is_unclamped_unlike_optax() -> None:
    # cosine() clamps at its end by default (optax, Keras); Transformers lets it rise again past training.
    golden = _golden("transformers", "get_scheduler('cosine', SGD(lr=1.0), num_warmup_steps=10, "
                                     "num_training_steps=100, scheduler_specific_kwargs={})")
    clamped = (warmup(10) >> cosine(90)).values(range(120))
    assert np.flatnonzero(_mismatch(clamped, golden)).tolist() == list(range(101, 120))
    assert np.all(clamped[100:] == 0.0) and np.all(np.diff(golden[100:]) > 0)


def test_transformers_warmup_with_min_lr_is_one_step_ahead() -> None:
    # cosine_warmup_with_min_lr warms up as (t + 1)/W: it is cosine_with_min_lr shifted by one step.
    plain = _golden("transformers", "get_scheduler('cosine_with_min_lr', SGD(lr=1.0), num_warmup_steps=10, "
                                    "num_training_steps=100, scheduler_specific_kwargs={'min_lr_rate': 0.1})")
    ahead = _golden("transformers", "get_scheduler('cosine_warmup_with_min_lr', SGD(lr=1.0), num_warmup_steps=10, "
                                    "num_training_steps=100, scheduler_specific_kwargs={'min_lr_rate': 0.1})")
    assert not _mismatch(ahead[:-1], plain[1:]).any()
    assert ahead[0] == pytest.approx(0.1, rel=RTOL) and plain[0] == 0.0


def test_keras_swing_decay_differs_from_timm_peak_decay() -> None:
    # With a floor (alpha > 0) the two restart conventions part: Keras shrinks the swing above the floor,
    # timm shrinks the peak. With alpha = 0 they coincide (the Keras and timm 20/2.0/0.5 cases agree).
    call = "CosineDecayRestarts(1.0, first_decay_steps=25, t_mul=1.5, m_mul=0.8, alpha=0.05)"
    golden = _golden("keras", call)
    peak = cosine_restarts(25, period_mult=1.5, decay=0.8, final=0.05, decay_mode="peak").values(range(120))
    bad = np.flatnonzero(_mismatch(peak, golden))
    assert bad.size and bad[0] == 25  # cycle 0 agrees, later cycles differ
    keras20 = _golden("keras", "CosineDecayRestarts(1.0, first_decay_steps=20, t_mul=2.0, m_mul=0.5, alpha=0.0)")
    timm20 = _golden("timm", "CosineLRScheduler(SGD(lr=1.0), t_in_epochs=False, t_initial=20, lr_min=0.0, "
                             "cycle_mul=2.0, cycle_decay=0.5, cycle_limit=3)")
    np.testing.assert_allclose(keras20, timm20, rtol=1e-12, atol=1e-15)
