"""Bad, extreme and hostile inputs against every public entry point, and the invariants they must keep.

The invariants (see ``torchsched._validate`` and ``torchsched.optim``):

- a bad argument raises ``TypeError``, ``ValueError`` or ``OverflowError`` whose message names it, and the
  command line exits with status 2; no pybind11 signature text ever reaches a user;
- no computed non-finite LR is ever stored into a param group or an LR tensor: the step raises and
  nothing changes;
- ``wrap().load_state_dict`` is atomic: a failed load leaves the optimizer and the schedule as they were;
- a step counter holds steps up to 2**62 exactly and refuses to pass it.

The first half holds one regression test per defect; the second half is property-based (hypothesis) with
a budget that fits the ordinary test run.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchsched import _core, spec
from torchsched._engine import Engine
from torchsched import schedules as S
from torchsched.cli import main
from torchsched.optim import wrap

ALLOWED = (TypeError, ValueError, OverflowError)
PYBIND_TEXT = ("incompatible function arguments", "Invoked with", "torchsched._core", "(self:")
STEP_LIMIT = 2**62
# The default budget fits the ordinary test run; TORCHSCHED_FUZZ_SCALE=20 tries twenty times as many inputs.
_SCALE = int(os.environ.get("TORCHSCHED_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=60 * _SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=15 * _SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_clean(err: BaseException, *names: str) -> None:
    """``err`` is one of the allowed kinds, names one of ``names`` and carries no pybind11 text."""
    assert isinstance(err, ALLOWED), f"{type(err).__name__}: {err}"
    msg = str(err)
    assert not any(t in msg for t in PYBIND_TEXT), msg
    if names:
        assert any(n in msg for n in names), f"{msg!r} names none of {names}"


def raises_clean(fn: Callable[[], Any], *names: str) -> BaseException:
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - checked below
        assert_clean(e, *names)
        return e
    raise AssertionError("no error raised")


# ---- item 4: schedule(t) and values([t]) agree on a non-finite value --------------------------------

NON_FINITE = [
    (lambda: S.step(1, gamma=1e308), 100),
    (lambda: S.cosine(10, cycles=1e308), 0),
    (lambda: S.cyclic(0.1, 1.0, step_up=5e-324), 1),
    (lambda: S.cosine_restarts(10, decay=1e308), 100),
]


@pytest.mark.parametrize("make,step", NON_FINITE, ids=["step", "cosine", "cyclic", "cosine_restarts"])
def test_call_and_values_raise_the_same_error_on_a_non_finite_value(make: Callable[[], S.Schedule],
                                                                    step: int) -> None:
    sched = make()
    with pytest.raises(ValueError) as one:
        sched(step)
    with pytest.raises(ValueError) as many:
        sched.values([step])
    assert str(one.value) == str(many.value)
    assert sched._name in str(one.value) and f"step {step}" in str(one.value)


# ---- item 6: copying -----------------------------------------------------------------------------

def test_an_evaluated_schedule_pickles_and_deep_copies() -> None:
    sched = S.warmup(5) >> S.cosine(100, final=0.1) * S.constant(0.5)
    before = sched.values(range(120))
    sched(3)
    for copy_of in (pickle.loads(pickle.dumps(sched)), copy.deepcopy(sched), copy.copy(sched)):
        assert copy_of == sched
        assert np.array_equal(copy_of.values(range(120)), before)
        assert copy_of(7) == sched(7)
    holder = {"schedule": sched, "steps": 100}  # a config object holding one
    assert copy.deepcopy(holder)["schedule"](9) == sched(9)


def test_a_wrapped_state_dict_loads_with_weights_only() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    w = wrap(torch.optim.AdamW([p], lr=0.1), S.cosine(10))
    p.grad = torch.ones(3)
    w.step()
    buf = io.BytesIO()
    torch.save(w.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    q = torch.nn.Parameter(torch.ones(3))
    w2 = wrap(torch.optim.AdamW([q], lr=0.1), S.cosine(10))
    w2.load_state_dict(loaded)
    assert w2.last_step == 1 and w2.get_last_lr() == w.get_last_lr()
    with pytest.raises(TypeError, match="state_dict"):
        copy.deepcopy(w)


# ---- items 7 and 12: no pybind11 text, no numpy warning ---------------------------------------------

@pytest.mark.parametrize("call,name", [
    (lambda: S.cosine(10)(2**63), "step"),
    (lambda: S.cosine(10)(-1), "step"),
    (lambda: S.cosine(10).values([2**63]), "steps"),
    (lambda: S.cosine(10).values([2**64]), "steps"),
    (lambda: S.cosine(10).values([1e19]), "steps"),
    (lambda: S.cosine(10).values(np.array([2**63], dtype=np.uint64)), "steps"),
    (lambda: S.cosine(10).values(range(2**63 + 5, 2**63, -1)), "steps"),
])
def test_out_of_range_steps_are_named_without_core_text_or_numpy_warnings(call: Callable[[], Any],
                                                                          name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        err = raises_clean(call, name)
    assert "-9223372036854775808" not in str(err)


# ---- item 3 and the step policy ------------------------------------------------------------------

def _float_wrapped(schedule: S.Schedule, groups: int = 1, lr: float = 0.1) -> tuple[Any, list[torch.Tensor]]:
    params = [torch.nn.Parameter(torch.full((3,), float(g + 1), dtype=torch.float64)) for g in range(groups)]
    w = wrap(torch.optim.SGD([{"params": [p]} for p in params], lr=lr), schedule)
    for p in params:
        p.grad = torch.ones(3, dtype=torch.float64)
    return w, params


def _with_step(w: Any, step: int) -> dict[str, Any]:
    sd = w.state_dict()
    return dict(sd, torchsched=dict(sd["torchsched"], step=step))


def test_the_step_counter_stops_at_its_limit_before_anything_changes() -> None:
    w, (p,) = _float_wrapped(S.constant(1.0))
    w.load_state_dict(_with_step(w, STEP_LIMIT - 1))
    w.step()
    assert w.last_step == STEP_LIMIT  # exact: no wrap, no rounding
    assert w.state_dict()["torchsched"]["step"] == STEP_LIMIT
    before = p.detach().clone()
    with pytest.raises(OverflowError, match=f"step.*{STEP_LIMIT}"):
        w.step()
    assert w.last_step == STEP_LIMIT and torch.equal(p.detach(), before)  # the optimizer did not step
    for bad in (STEP_LIMIT + 1, 2**63 - 1):
        raises_clean(lambda: w.load_state_dict(_with_step(w, bad)), "['step']")
    assert w.last_step == STEP_LIMIT


def test_an_engine_counter_is_set_at_most_to_the_step_limit() -> None:
    engine = Engine(S.constant(1.0), [0.1], step=STEP_LIMIT)
    assert engine.step == STEP_LIMIT
    raises_clean(lambda: Engine(S.constant(1.0), [0.1], step=STEP_LIMIT + 1), "step", "2**62")
    with pytest.raises(ValueError, match="2\\*\\*62"):
        engine.step = 2**63 - 1
    assert engine.step == STEP_LIMIT


# ---- item 16: steps are whole numbers, exact up to the step limit ------------------------------------

EXACT_CASES = [
    # (schedule, steps around a boundary past 2**53, the exact value at each from integer arithmetic)
    (lambda: S.step(2**55, gamma=0.5), [2**56 - 1, 2**56, 2**60 + 1], lambda t: 0.5 ** (t // 2**55)),
    (lambda: S.piecewise_constant([2**60, STEP_LIMIT - 2**10], [1.0, 0.5, 0.25]),
     [2**60 - 1, 2**60, STEP_LIMIT - 2**10 - 1, STEP_LIMIT - 2**10, STEP_LIMIT],
     lambda t: 1.0 if t < 2**60 else (0.5 if t < STEP_LIMIT - 2**10 else 0.25)),
    (lambda: S.sequence([S.constant(1.0), S.step(3, gamma=0.5)], [STEP_LIMIT - 2**12]),
     [STEP_LIMIT - 2**12 - 1, STEP_LIMIT - 2**12 + 2, STEP_LIMIT - 2**12 + 3, STEP_LIMIT - 2**12 + 7],
     lambda t: 1.0 if t < STEP_LIMIT - 2**12 else 0.5 ** ((t - (STEP_LIMIT - 2**12)) // 3)),
    (lambda: S.exponential(0.5, 2**54, begin=2**58, staircase=True), [2**58 - 1, 2**58 + 2**55 - 1, 2**58 + 2**55],
     lambda t: 0.5 ** (max(t - 2**58, 0) // 2**54)),
]


@pytest.mark.parametrize("make,steps,exact", EXACT_CASES, ids=["step", "piecewise", "sequence", "staircase"])
def test_steps_past_2_53_are_compared_as_integers(make: Callable[[], S.Schedule], steps: list[int],
                                                   exact: Callable[[int], float]) -> None:
    """A double holds every step only up to 2**53: past it a step one below a boundary rounded onto it. The
    core's clock is the int64 step there, so each step lands on the right side of every boundary."""
    sched = make()
    assert [sched(t) for t in steps] == [exact(t) for t in steps]
    assert sched.values(np.asarray(steps, dtype=np.int64)).tolist() == [exact(t) for t in steps]
    start = steps[0] - 3  # values_range's sorted block evaluator too
    assert (sched.values(np.arange(start, start + 8, dtype=np.int64)).tolist()
            == [exact(t) for t in range(start, start + 8)])


def test_the_place_in_a_cycle_is_exact_past_2_53() -> None:
    cyc, restarts = S.cyclic(0.1, 1.0, step_up=3), S.cosine_restarts(7)
    for k in range(12):
        assert cyc(2**60 + k) == pytest.approx(cyc((2**60 + k) % 6), rel=1e-14, abs=0)
        assert restarts(7 * 2**58 + k) == pytest.approx(restarts(k % 7), rel=1e-14, abs=0)


def test_an_integer_argument_float64_cannot_hold_is_refused() -> None:
    """S.step(2**53 + 1) used to compute with 2**53 instead, and gave 0.5 at step 2**53."""
    err = raises_clean(lambda: S.step(2**53 + 1), "step_size")
    assert "9007199254740992" in str(err)
    assert S.step(2**53 + 2)(2**53 + 1) == 1.0 and S.step(2**53 + 2, gamma=0.5)(2**53 + 2) == 0.5


def test_a_wrapped_optimizer_meets_a_boundary_at_its_exact_step() -> None:
    boundary = STEP_LIMIT - 2**10  # float64 holds it; the steps around it it does not
    w, _ = _float_wrapped(S.piecewise_constant([boundary], [1.0, 0.5]))
    w.load_state_dict(_with_step(w, boundary - 2))
    seen = []
    for _ in range(3):
        w.step()
        seen.append((w.last_step, w.param_groups[0]["lr"]))
    assert seen == [(boundary - 1, 0.1), (boundary, 0.05), (boundary + 1, 0.05)]


# ---- items 1 and 2: no non-finite LR is ever stored ---------------------------------------------------

def test_fused_tensor_lrs_never_hold_inf() -> None:
    p = torch.nn.Parameter(torch.ones(4))
    # no weight decay: with it, an LR of 1e7 legitimately blows the params up long before the LR overflows
    w = wrap(torch.optim.AdamW([p], lr=torch.tensor(1e-3), fused=True, weight_decay=0.0), S.exponential(2.0))
    lr_tensor = w.param_groups[0]["lr"]
    assert isinstance(lr_tensor, torch.Tensor)
    failed_at = None
    for t in range(1100):
        p.grad = torch.zeros(4)  # Adam's update is then 0: only an inf LR (0 * inf) can spoil the params
        last_lr, params_before = lr_tensor.clone(), p.detach().clone()
        try:
            w.step()
        except ValueError as e:
            assert_clean(e, "group 0")
            failed_at = t
            break
        assert torch.isfinite(lr_tensor).all() and torch.isfinite(p).all()
    assert failed_at is not None, "2**t overflows a float32 LR long before 1100 steps"
    assert torch.equal(lr_tensor, last_lr) and torch.equal(p.detach(), params_before)
    assert w.last_step == failed_at and torch.isfinite(lr_tensor).all()
    with pytest.raises(ValueError):
        w.step()  # and again: still nothing changes
    assert torch.equal(lr_tensor, last_lr) and torch.isfinite(p).all()


def test_float_lrs_never_hold_inf() -> None:
    w, (p,) = _float_wrapped(S.constant(1) >> S.exponential(1e300, 1e-300))  # inf from step 1 on
    assert w.param_groups[0]["lr"] == 0.1
    before = p.detach().clone()
    with pytest.raises(ValueError, match="group 0.*step 1"):
        w.step()
    assert w.param_groups[0]["lr"] == 0.1 and w.get_last_lr() == [0.1] and w.last_step == 0
    assert torch.equal(p.detach(), before)
    w, (p,) = _float_wrapped(S.step(2, gamma=1e200))  # finite LRs, then 1e200 x 1e200 = inf at step 4
    w.step(), w.step(), w.step()
    with pytest.raises(ValueError, match="group 0.*step 4"):
        w.step()
    assert w.param_groups[0]["lr"] == pytest.approx(0.1 * 1e200) and w.last_step == 3


def test_a_schedule_non_finite_at_the_start_is_refused_by_wrap() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="step 0"):
        wrap(opt, S.cosine(10, cycles=1e308))
    assert opt.param_groups[0]["lr"] == 0.1


def test_a_multiplier_that_overflows_the_lr_is_refused() -> None:
    w, _ = _float_wrapped(S.constant(1e300))
    with pytest.raises(ValueError, match="group 0"):
        w.set_multiplier(0, 1e10)
    assert w.multipliers == [1.0] and w.get_last_lr() == [pytest.approx(1e299)]


# ---- item 15: load_state_dict is atomic and knows its version --------------------------------------

def _snapshot(w: Any) -> Any:
    def plain(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return ("tensor", x.detach().tolist())
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x

    lrs = [plain(g["lr"]) for g in w.param_groups]
    return plain(w.state_dict()), lrs, w.get_last_lr(), w.last_step, w.base_lrs, w.multipliers


@pytest.mark.parametrize("corrupt", [
    lambda sd: dict(sd, torchsched=dict(sd["torchsched"], version=99)),
    lambda sd: dict(sd, torchsched=dict(sd["torchsched"], step=2**63)),
    lambda sd: dict(sd, torchsched=dict(sd["torchsched"], step=2**64)),
    lambda sd: dict(sd, torchsched=dict(sd["torchsched"], step=-1)),
    lambda sd: dict(sd, torchsched=dict(sd["torchsched"], step="x")),
    lambda sd: dict(sd, torchsched=dict(sd["torchsched"], step=math.nan)),
    lambda sd: dict(sd, torchsched=dict(sd["torchsched"], schedules=7)),
    lambda sd: dict(sd, torchsched=dict(sd["torchsched"], base_lrs=[1e300, 1e300], multipliers=[1e300, 1])),
    lambda sd: dict(sd, param_groups=sd["param_groups"][:1]),
    lambda sd: dict(sd, param_groups=sd["param_groups"][:1], torchsched=dict(sd["torchsched"], base_lrs=[0.1],
                                                                          multipliers=[1.0])),
    lambda sd: {k: v for k, v in sd.items() if k != "param_groups"},
], ids=["version", "step-2**63", "step-2**64", "step--1", "step-str", "step-nan", "schedules", "overflow",
        "group-count", "group-count-consistent", "no-param_groups"])
def test_a_failed_load_changes_nothing(corrupt: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    w, params = _float_wrapped(S.warmup(3) >> S.cosine(20), groups=2)
    w.step()
    sd = w.state_dict()
    w.step()
    before = _snapshot(w)
    err = raises_clean(lambda: w.load_state_dict(corrupt(copy.deepcopy(sd))))
    assert not any(t in str(err) for t in PYBIND_TEXT)
    assert _snapshot(w) == before
    w.step()  # and it still works
    assert w.last_step == 3


# ---- item 9: nesting past the core's limit fails at build time ---------------------------------------

def test_a_chain_deeper_than_the_core_allows_is_refused_when_built() -> None:
    limit = _core.MAX_DEPTH
    sched = S.constant(1)
    for _ in range(limit):
        sched = sched >> S.constant(1)
    assert sched(0) == 1.0  # at the limit: built and evaluated
    with pytest.raises(ValueError, match=f"{limit + 1}.*{limit}"):
        sched >> S.constant(1)
    with pytest.raises(ValueError, match=f"{limit + 1}.*{limit}"):
        S.shift(sched, 1)


# ---- item 11: huge builder arguments name themselves ------------------------------------------------

@pytest.mark.parametrize("call,name", [
    (lambda: S.cosine(steps=10**400), "steps"),
    (lambda: S.step(10**400), "step_size"),
    (lambda: S.exponential(0.5, init=10**400), "init"),
    (lambda: S.cosine_restarts(10, limit=10**400), "limit"),
    (lambda: S.warmup_stable_decay(10**400, 1, 1), "warmup_steps"),
    (lambda: S.one_cycle(10**400), "total_steps"),
    (lambda: S.interpolate({10**400: 1.0}), "points"),
    (lambda: S.shift(S.constant(1), 10**400), "offset"),
    (lambda: S.cosine(steps=10**5000), "steps"),  # past Python's int-to-str limit
])
def test_huge_builder_arguments_are_named(call: Callable[[], Any], name: str) -> None:
    raises_clean(call, name)


# ---- item 13: the command line --------------------------------------------------------------------

def cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(args))
    return code, err.getvalue()


@pytest.mark.parametrize("args,name", [
    (["plot", "cosine(10)", "--base-lr", "nan"], "--base-lr"),
    (["plot", "cosine(10)", "--base-lr", "inf"], "--base-lr"),
    (["plot", "cosine(10)", "--base-lr", "-1"], "--base-lr"),
    (["plot", "cosine(10)", "--steps", str(10**19)], "--steps"),
    (["gallery", "--steps", str(10**19)], "--steps"),
    (["plot", "step(1, gamma=1e308)", "--steps", "400"], "step 2"),
    (["find-lr", "--demo", "--num-iter", "0"], "num-iter"),
    (["find-lr", "--demo", "--start-lr", "nan"], "start-lr"),
    (["find-lr", "--demo", "--start-lr", "10", "--end-lr", "1"], "start-lr"),
    (["find-lr", "--demo", "--check-every", "0"], "check-every"),
], ids=lambda v: "-".join(v) if isinstance(v, list) else None)
def test_cli_argument_errors_exit_2_with_usage(tmp_path: Path, args: list[str], name: str) -> None:
    code, err = cli(*args, "-o", str(tmp_path / "out.png"))
    assert code == 2, err
    assert name in err and "error:" in err and "RuntimeWarning" not in err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("kind", ["scale", "chain", "list", "list-300"])
def test_a_spec_file_nested_deeply_fails_clearly(tmp_path: Path, kind: str) -> None:
    """list-300: deep enough for the reader's own limit, shallow enough for every Python's JSON decoder (3.13's
    reads even the 5,000 levels of 'list', where older ones raise RecursionError)."""
    node: Any = {"type": "constant"}
    for _ in range(200 if not kind.startswith("list") else 0):
        node = {"type": "scale", "schedule": node, "factor": 1} if kind == "scale" else (
            {"type": "chain", "schedules": [node, {"type": "constant"}]})
    depth = 300 if kind == "list-300" else 5000
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(node) if not kind.startswith("list") else "[" * depth + "]" * depth)
    code, err = cli("plot", str(path), "-o", str(tmp_path / "out.png"))
    assert code == 2, err
    assert "nest" in err and "Recursion" not in err


# ---- the adversarial suite: property-based ----------------------------------------------------------

HOSTILE_NUMBERS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1, -1e-300, 0, 5e-324, 1e308, 10**400, -10**400, 2**63,
                     2**64, 10**5000, True, None, "1", b"1", [1], {"a": 1}, 1 + 2j, np.float64("nan"),
                     np.uint64(2**63), torch.tensor(math.inf), torch.ones(2)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-2**70, max_value=2**70),
)

#: builder -> keyword arguments that build, the baseline each example spoils one argument of.
VALID: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "constant": (S.constant, {"value": 0.5}),
    "step": (S.step, {"step_size": 3, "gamma": 0.5, "init": 1.0}),
    "multistep": (S.multistep, {"milestones": [2, 5], "gamma": 0.5, "init": 1.0}),
    "piecewise_constant": (S.piecewise_constant, {"boundaries": [3], "values": [1.0, 0.5]}),
    "exponential": (S.exponential, {"rate": 0.9, "steps": 2, "init": 1.0, "begin": 1, "bound": 2.0}),
    "polynomial": (S.polynomial, {"steps": 10, "init": 1.0, "final": 0.1, "power": 2.0, "k": 1.5}),
    "linear": (S.linear, {"steps": 10, "init": 1.0, "final": 0.1}),
    "inverse_time": (S.inverse_time, {"rate": 0.5, "steps": 2, "init": 1.0}),
    "inverse_power": (S.inverse_power, {"steps": 3, "gamma": 0.5, "init": 1.0}),
    "inverse_sqrt": (S.inverse_sqrt, {"timescale": 4, "init": 1.0}),
    "cosine": (S.cosine, {"steps": 10, "init": 1.0, "final": 0.1, "exponent": 1.0, "cycles": 0.5, "k": 1.0}),
    "cosine_restarts": (S.cosine_restarts, {"period": 5, "init": 1.0, "final": 0.0, "period_mult": 2.0,
                                            "decay": 0.5, "limit": 3, "k": 1.0}),
    "cyclic": (S.cyclic, {"base": 0.1, "max": 1.0, "step_up": 4, "step_down": 3, "gamma": 0.9}),
    "one_cycle": (S.one_cycle, {"total_steps": 100, "max": 1.0, "pct_start": 0.3, "div_factor": 25.0,
                                "final_div_factor": 1e4}),
    "warmup": (S.warmup, {"steps": 5, "init": 0.1, "peak": 1.0}),
    "anneal": (S.anneal, {"steps": 5, "start": 1.0, "end": 0.1}),
    "interpolate": (S.interpolate, {"points": [(0, 1.0), (5, 0.5)]}),
    "tanh": (S.tanh, {"steps": 10, "init": 1.0, "final": 0.0, "lb": -7.0, "ub": 3.0}),
    "warmup_stable_decay": (S.warmup_stable_decay, {"warmup_steps": 2, "stable_steps": 3, "decay_steps": 4,
                                                    "peak": 1.0, "init": 0.0, "final": 0.1}),
    "scale": (S.scale, {"schedule": S.cosine(10), "factor": 0.5}),
    "shift": (S.shift, {"schedule": S.cosine(10), "offset": 3}),
    "sequence": (S.sequence, {"schedules": [S.constant(1), S.cosine(10)], "boundaries": [4]}),
}


def evaluate_both_ways(sched: S.Schedule, steps: list[int]) -> None:
    """``sched(t)`` and ``sched.values(...)`` agree: the same floats, or the same clean error."""
    try:
        many = sched.values(steps)
    except BaseException as e:  # noqa: BLE001
        assert_clean(e, "step")
        many = None
    singles = []
    for t in steps:
        try:
            singles.append(sched(t))
        except BaseException as e:  # noqa: BLE001
            assert_clean(e, "step")
            assert many is None, f"schedule({t}) raised {e} where values() did not"
            return
    assert many is not None and np.array_equal(many, singles)
    assert all(math.isfinite(v) for v in singles)


@FUZZ
@given(name=st.sampled_from(sorted(VALID)), data=st.data())
def test_builders_take_hostile_arguments_cleanly(name: str, data: st.DataObject) -> None:
    builder, kwargs = VALID[name]
    arg = data.draw(st.sampled_from(sorted(kwargs)), label="argument")
    bad = data.draw(HOSTILE_NUMBERS, label="value")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            sched = builder(**dict(kwargs, **{arg: bad}))
        except BaseException as e:  # noqa: BLE001
            assert_clean(e, arg)
            return
        evaluate_both_ways(sched, [0, 1, 7, 1000, 2**40, 2**62])


STEP_INPUTS = st.one_of(
    HOSTILE_NUMBERS,
    st.lists(st.one_of(st.integers(-2**65, 2**65), st.floats()), max_size=5),
    st.sampled_from([range(2**63 - 3, 2**63 + 3), range(-5, 5), range(10, -1, -3), np.array([[1, 2], [3, 4]]),
                     np.array([1.5]), np.array(["a"]), [[1, [2]]], (), np.array([], dtype=np.float32)]),
)


@FUZZ
@given(steps=STEP_INPUTS)
def test_evaluation_takes_hostile_steps_cleanly(steps: Any) -> None:
    sched = S.warmup(5) >> S.cosine(50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in (lambda: sched(steps), lambda: sched.values(steps)):
            try:
                out = call()
            except BaseException as e:  # noqa: BLE001
                assert_clean(e, "step")
            else:
                assert np.all(np.isfinite(out))


SPEC_ATOMS = st.sampled_from(["cosine(10)", "warmup(linear, 5)", "constant(1)", "step(2)", "1e308", "nan", "inf",
                              "-1", "10**400", "2**63", "'x'", "[1, 2]", "{1: 2}", "linear", "cosine", "True",
                              "exponential(2.0)", "x.y", "__import__('os')", "lambda: 1", "(", ")"])


@st.composite
def spec_texts(draw: st.DrawFn) -> str:
    text = draw(SPEC_ATOMS)
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from([">>", "*", "+", "**", "/", ",", " "]))
        wrapper = draw(st.sampled_from(["{}", "scale({}, 2)", "shift({}, 3)", "sequence([{}, constant(1)], [3])",
                                        "cosine({})", "product({})", "[{}]"]))
        text = wrapper.format(f"{text} {op} {draw(SPEC_ATOMS)}" if draw(st.booleans()) else text)
    depth = draw(st.sampled_from([0, 0, 0, 20, 70, 300]))
    return "shift(" * depth + text + ", 1)" * depth


@FUZZ
@given(text=spec_texts())
def test_spec_parsing_takes_hostile_text_cleanly(text: str) -> None:
    try:
        sched = spec.parse(text)
    except spec.SpecError as e:
        assert_clean(e)
        assert "\n" not in str(e)
        return
    assert isinstance(sched, S.Schedule)
    evaluate_both_ways(sched, [0, 5, 10**6])


@FUZZ
@given(obj=st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(-2**70, 2**70), st.text(max_size=8),
              st.sampled_from(["cosine(10)", "constant", "chain", "scale", "type"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["type", "schedule", "schedules", "steps", "args",
                                                             "factor", "offset", "boundaries", "value"]),
                                            inner, max_size=4)),
    max_leaves=12))
def test_spec_objects_take_hostile_structures_cleanly(obj: Any) -> None:
    try:
        sched = spec.from_obj(obj)
    except spec.SpecError as e:
        assert_clean(e)
        return
    evaluate_both_ways(sched, [0, 3])


@FEW
@given(spec_text=st.one_of(spec_texts(), st.just("cosine(20)")),
       steps=st.one_of(st.none(), st.sampled_from(["0", "1", "2", "-5", "x", "1e3", str(2**63), str(10**30)])),
       base=st.one_of(st.none(), st.sampled_from(["nan", "-inf", "0", "-1", "x", "1e308", "3e-4"])))
def test_cli_plot_takes_hostile_arguments_cleanly(tmp_path_factory: pytest.TempPathFactory, spec_text: str,
                                                  steps: str | None, base: str | None) -> None:
    out = tmp_path_factory.mktemp("cli") / "out.png"
    args = ["plot", spec_text, "-o", str(out)]
    args += [] if steps is None else ["--steps", steps]
    args += [] if base is None else ["--base-lr", base]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, err = cli(*args)
    assert code in (0, 2), err
    assert not any(t in err for t in PYBIND_TEXT) and "Traceback" not in err
    assert (code == 0) == out.exists()


OVERFLOWING = [
    S.constant(1) >> S.exponential(1e300, 1e-300),
    S.exponential(2.0),
    S.step(1, gamma=1e100),
    S.cosine_restarts(2, decay=1e200),
    S.constant(1e300),
    S.warmup(3) >> S.cosine(10),
]


@FEW
@given(sched=st.sampled_from(OVERFLOWING), groups=st.integers(1, 3), fused=st.booleans(),
       lr=st.sampled_from([1e-3, 1.0, 1e30, 1e200]), mult=st.sampled_from([1.0, 1e10, 1e200]),
       steps=st.integers(1, 200))
def test_wrap_never_stores_a_non_finite_lr(sched: S.Schedule, groups: int, fused: bool, lr: float, mult: float,
                                           steps: int) -> None:
    params = [torch.nn.Parameter(torch.ones(2)) for _ in range(groups)]
    opt = torch.optim.Adam([{"params": [p], "lr": lr, "lr_multiplier": mult} for p in params], fused=fused)
    try:
        w = wrap(opt, sched)
    except BaseException as e:  # noqa: BLE001
        assert_clean(e, "step 0", "group")
        return
    for _ in range(steps):
        for p in params:
            p.grad = torch.full((2,), 1e-3)
        before = [float(g["lr"]) for g in w.param_groups], [p.detach().clone() for p in params], w.last_step
        try:
            w.step()
        except RuntimeError as e:  # torch's own: a float LR past float32's range for float32 params
            assert "without overflow" in str(e) and not fused
            return
        except BaseException as e:  # noqa: BLE001
            assert_clean(e, "group")
            after = [float(g["lr"]) for g in w.param_groups], [p.detach().clone() for p in params], w.last_step
            assert after[0] == before[0] and after[2] == before[2]
            assert all(torch.equal(a, b) for a, b in zip(after[1], before[1]))
            return
        assert all(math.isfinite(float(g["lr"])) for g in w.param_groups)
        assert all(math.isfinite(v) for v in w.get_last_lr())


def _corruptions() -> st.SearchStrategy[tuple[str, Any]]:
    return st.tuples(st.sampled_from(["step", "base_lrs", "multipliers", "version", "schedules", "torchsched",
                                      "param_groups", "state"]),
                     st.one_of(HOSTILE_NUMBERS, st.lists(HOSTILE_NUMBERS, max_size=3),
                               st.sampled_from([[0.1, 0.1], [0.1, math.nan], [1e300, 1e300], [], ["x", "y"]])))


@FUZZ
@given(corruptions=st.lists(_corruptions(), min_size=1, max_size=3))
def test_wrap_load_state_dict_is_atomic(corruptions: list[tuple[str, Any]]) -> None:
    w, _ = _float_wrapped(S.warmup(3) >> S.cosine(20), groups=2)
    w.step()
    sd = w.state_dict()
    w.step()
    for key, value in corruptions:
        if key in ("param_groups", "state", "torchsched"):
            sd[key] = value
        elif isinstance(sd.get("torchsched"), dict):
            sd["torchsched"] = dict(sd["torchsched"], **{key: value})
    before = _snapshot(w)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # 'saved with different schedules', when they are
            w.load_state_dict(sd)
    except BaseException as e:  # noqa: BLE001
        assert_clean(e)
        assert _snapshot(w) == before
        return
    assert all(math.isfinite(v) for v in w.get_last_lr())
    assert all(math.isfinite(float(g["lr"])) for g in w.param_groups)


def test_one_cycle_names_final_div_factor_when_the_floor_overflows() -> None:
    """Found by the fuzzer above: a denormal final_div_factor made the final LR inf, and the message named an
    interpolation point instead of the argument."""
    with pytest.raises(ValueError, match="final_div_factor=5e-324"):
        S.one_cycle(100, final_div_factor=5e-324)


# ---- the drop-ins keep the same invariant: no non-finite LR stored, a refused step moves nothing --------

def _lrs_of(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


DROP_IN_OVERFLOWS = [
    # (how the optimizer's LRs are held, the scheduler, the way step() is called)
    ("float", lambda L, o: L.ExponentialLR(o, 1e10), "step"),
    ("tensor", lambda L, o: L.ExponentialLR(o, 1e10), "step"),  # float32 LR tensors overflow first
    ("float", lambda L, o: L.LambdaLR(o, lambda e: math.inf if e > 3 else 1.0), "step"),
    ("float", lambda L, o: L.LambdaLR(o, lambda e: math.nan if e > 3 else 1.0), "step"),
    ("float", lambda L, o: L.StepLR(o, 1, gamma=1e308), "epoch"),  # the closed form: 4.0 * 1e308
    ("float", lambda L, o: L.MultiplicativeLR(o, lambda e: 1e100), "step"),
]


@pytest.mark.parametrize("held,make,call", DROP_IN_OVERFLOWS,
                         ids=["exponential", "exponential-tensor", "lambda-inf", "lambda-nan", "step-epoch",
                              "multiplicative"])
def test_a_drop_in_refuses_a_non_finite_lr_and_moves_nothing(held: str, make: Callable[[Any, Any], Any],
                                                              call: str) -> None:
    """torch stores inf or NaN here, and the next optimizer step turns the params into NaN; the twin refuses
    the step with an error naming the class, and keeps every LR and counter as it was."""
    from torchsched import lr_scheduler as L

    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([{"params": [p], "lr": torch.tensor(4.0) if held == "tensor" else 4.0},
                           {"params": [torch.nn.Parameter(torch.ones(1))],
                            "lr": torch.tensor(2.0) if held == "tensor" else 2.0}])
    twin = make(L, opt)
    name = type(twin).__name__
    for k in range(1, 200):
        state = twin.last_epoch, twin._step_count, _lrs_of(opt), list(map(float, twin.get_last_lr()))
        opt.step()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # step(epoch)'s deprecation warning
                twin.step(k) if call == "epoch" else twin.step()
        except ValueError as e:
            assert isinstance(e, _core.NonFiniteLRError)
            assert_clean(e, f"{name}: the LR of group")
            assert (twin.last_epoch, twin._step_count, _lrs_of(opt), list(map(float, twin.get_last_lr()))) == state
            return
        assert all(math.isfinite(v) for v in _lrs_of(opt))
    raise AssertionError("the schedule never overflowed: this case tests nothing")
