"""torchsched.lr_scheduler against the installed torch.optim.lr_scheduler, the oracle, in the same process.

Every class is driven by hypothesis over random configurations: 1-4 param groups, Python float LRs and
float64 LR tensors, SGD (momentum) and Adam, 300 steps, with a state_dict round trip in mid-run
(torch.save / torch.load(weights_only=True) and pickle, into freshly built schedulers), an LR edited by
hand, and a second scheduler compounding on the same optimizer. After every step the param groups'
LRs (and momentum / betas), get_last_lr(), last_epoch and the class's own counters must agree with
torch's to a relative 1e-12 (float LRs and float64 tensors; in practice they are equal bit for bit,
which test_float_path_is_bit_exact pins down). float32 LR tensors are compared at float32 precision:
torch multiplies them in float32 tensor arithmetic, the core in float64 rounding once per step, so
300 chained steps may differ by a few float32 ulps per step (relative 1e-4, absolute 1e-6 of the LR
scale). Errors must be torch's: the same exception type and message, at the same step.
"""

from __future__ import annotations

import gc
import io
import math
import pickle
import warnings
import weakref
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as tl
from torch.optim import swa_utils

from torchsched import _core
from torchsched import lr_scheduler as ts
from torchsched import schedules as S

TORCH = SimpleNamespace(**{name: getattr(tl, name) for name in tl.__all__}, SWALR=swa_utils.SWALR)
OURS = ts
STEPS = 300
REL = 1e-12
EXAMPLES = 20  # per class; each example runs 300 steps of up to four schedulers (two per side)

CLASS_NAMES = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
               "ExponentialLR", "SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler",
               "ReduceLROnPlateau", "CyclicLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "SWALR"]

hyp = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.data_too_large])


@pytest.fixture(autouse=True)
def _quiet_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---- optimizers ----------------------------------------------------------------------------------

def make_opt(cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """A fresh optimizer from a config: lrs per group, 'sgd'/'adam'/'adagrad', 'float'/'f64'/'f32' LRs."""
    groups = []
    for lr in cfg["lrs"]:
        p = torch.nn.Parameter(torch.ones(2))
        if cfg["lr_type"] == "float":
            value: Any = lr
        else:
            value = torch.tensor(lr, dtype=torch.float64 if cfg["lr_type"] == "f64" else torch.float32)
        groups.append({"params": [p], "lr": value})
    if cfg["opt"] == "sgd":
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    if cfg["opt"] == "adam":
        return torch.optim.Adam(groups, lr=0.1)
    return torch.optim.Adagrad(groups, lr=0.1)


# ---- comparison ----------------------------------------------------------------------------------

def tol_for(cfg: dict[str, Any]) -> tuple[float, float]:
    if cfg["lr_type"] == "f32":
        return 1e-4, 1e-6 * max(cfg["lrs"])
    return REL, 0.0


def close(a: Any, b: Any, rel: float, abs_: float, what: str) -> None:
    fa, fb = float(a), float(b)
    if fa == fb or (math.isnan(fa) and math.isnan(fb)):
        return
    assert abs(fa - fb) <= max(rel * max(abs(fa), abs(fb)), abs_), f"{what}: torch {fa!r} vs torchsched {fb!r}"


def same_kind(a: Any, b: Any, what: str) -> None:
    assert isinstance(a, torch.Tensor) == isinstance(b, torch.Tensor), f"{what}: {type(a)} vs {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype, f"{what}: {a.dtype} vs {b.dtype}"


def assert_same_groups(ot: Any, os_: Any, rel: float, abs_: float, where: str) -> None:
    assert len(ot.param_groups) == len(os_.param_groups)
    for g, (gt, gs) in enumerate(zip(ot.param_groups, os_.param_groups)):
        same_kind(gt["lr"], gs["lr"], f"{where} group {g} lr type")
        close(gt["lr"], gs["lr"], rel, abs_, f"{where} group {g} lr")
        for key in ("momentum", "max_momentum", "base_momentum", "initial_lr", "max_lr", "min_lr", "swa_lr"):
            assert (key in gt) == (key in gs), f"{where} group {g} key {key}"
            if key in gt:
                close(gt[key], gs[key], rel, abs_, f"{where} group {g} {key}")
        if "betas" in gt:
            assert type(gt["betas"]) is type(gs["betas"]) and len(gt["betas"]) == len(gs["betas"])
            for x, y in zip(gt["betas"], gs["betas"]):
                close(x, y, rel, abs_, f"{where} group {g} betas")


def assert_same_scheduler(st_: Any, ss: Any, rel: float, abs_: float, where: str) -> None:
    last_t, last_s = st_.get_last_lr(), ss.get_last_lr()
    assert len(last_t) == len(last_s), where
    for g, (a, b) in enumerate(zip(last_t, last_s)):
        same_kind(a, b, f"{where} _last_lr[{g}]")
        close(a, b, rel, abs_, f"{where} _last_lr[{g}]")
    for key in ("last_epoch", "_step_count", "T_cur", "T_i", "num_bad_epochs", "cooldown_counter", "best"):
        if hasattr(st_, key):
            assert hasattr(ss, key), f"{where}: no {key}"
            close(getattr(st_, key), getattr(ss, key), rel, 0.0, f"{where} {key}")


def assert_same_state(a: Any, b: Any, rel: float, abs_: float, where: str) -> None:
    """Recursive comparison of state_dict contents (numbers close, structure and keys equal)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for k in a:
            assert_same_state(a[k], b[k], rel, abs_, f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, rel, abs_, f"{where}[{i}]")
    elif isinstance(a, (bool, str)) or a is None:
        assert a == b, f"{where}: {a!r} vs {b!r}"
    elif isinstance(a, (int, float, torch.Tensor)):
        same_kind(a, b, where)
        close(a, b, rel, abs_, where)
    else:
        assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"


def outcome(fn: Callable[[], Any]) -> tuple[str, str] | None:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any error must be torch's
        return type(e).__name__, str(e)
    return None


def roundtrip(state: dict[str, Any], how: str) -> dict[str, Any]:
    if how == "pickle":
        return pickle.loads(pickle.dumps(state))
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# ---- the differential driver -----------------------------------------------------------------------

Builder = Callable[[Any, torch.optim.Optimizer], Any]


def run_pair(cfg: dict[str, Any], build: Builder, *, companion: Builder | None = None,
             metrics: list[float] | None = None, steps: int = STEPS) -> None:
    """Builds the same schedulers on torch's side and ours and steps them in lockstep, comparing."""
    rel, abs_ = tol_for(cfg)
    sides = []
    for M in (TORCH, OURS):
        opt = make_opt(cfg)
        sched = build(M, opt)
        other = companion(M, opt) if companion is not None else None
        sides.append([opt, sched, other])
    (ot, st_, xt), (os_, ss, xs) = sides
    assert_same_groups(ot, os_, rel, abs_, "after construction")
    assert_same_scheduler(st_, ss, rel, abs_, "after construction")
    edit = cfg.get("edit")
    rt = cfg.get("roundtrip")
    for i in range(steps):
        if edit is not None and i == edit[0]:
            hand_edit(ot, edit), hand_edit(os_, edit)
        for when, g, key, value in cfg.get("key_edits", ()):
            if when == i:
                key_edit(ot, g, key, value), key_edit(os_, g, key, value)
        results = []
        for opt, sched, other in sides:
            def one(opt=opt, sched=sched, other=other) -> None:
                opt.step()
                if metrics is not None:
                    sched.step(metrics[i % len(metrics)])
                else:
                    sched.step()
                if other is not None:
                    other.step()
            results.append(outcome(one))
        assert results[0] == results[1], f"step {i}: torch {results[0]} vs torchsched {results[1]}"
        if results[0] is not None:
            return  # both raised the same error
        where = f"step {i}"
        assert_same_groups(ot, os_, rel, abs_, where)
        assert_same_scheduler(st_, ss, rel, abs_, where)
        if xt is not None:
            assert_same_scheduler(xt, xs, rel, abs_, where + " (companion)")
        if rt is not None and i == rt[0]:
            assert_same_state(st_.state_dict(), ss.state_dict(), rel, abs_, f"{where} state_dict")
            saved = [saved_states(sched, other, rt[1]) for _, sched, other in sides]
            refused = [s if isinstance(s, type) else None for s in saved]
            assert refused[0] is refused[1], f"{where}: saving the state: torch {refused[0]} vs torchsched {refused[1]}"
            if refused[0] is not None:
                continue  # neither round trips this way (as torch's own state dict): both run on
            for side, states in zip(sides, saved):
                side[:] = reload(cfg, build, companion, *side, states=states)
            (ot, st_, xt), (os_, ss, xs) = sides
            assert_same_groups(ot, os_, rel, abs_, where + " reloaded")
            assert_same_scheduler(st_, ss, rel, abs_, where + " reloaded")


def saved_states(sched: Any, other: Any, how: str) -> list[dict[str, Any]] | type[Exception]:
    """The state dicts of a scheduler (and its companion) after a round trip, or the type of error the round trip
    raised: where torch's own state dict holds a function (SWALR's anneal_func on older torch), weights_only
    refuses it."""
    try:
        return [roundtrip(sched.state_dict(), how)] + ([roundtrip(other.state_dict(), how)] if other else [])
    except Exception as e:  # noqa: BLE001 - the type is compared with torch's
        return type(e)


def reload(cfg: dict[str, Any], build: Builder, companion: Builder | None, opt: Any, sched: Any, other: Any,
           states: list[dict[str, Any]]) -> list[Any]:
    """The resume flow: fresh optimizer and schedulers, then optimizer state, then scheduler states."""
    M = OURS if type(sched).__module__ == ts.__name__ else TORCH
    opt_state = opt.state_dict()
    new_opt = make_opt(cfg)
    new_sched = build(M, new_opt)
    new_other = companion(M, new_opt) if companion is not None else None
    new_opt.load_state_dict(opt_state)
    new_sched.load_state_dict(states[0])
    if new_other is not None:
        new_other.load_state_dict(states[1])
    return [new_opt, new_sched, new_other]


def hand_edit(opt: Any, edit: tuple[int, int, str, float]) -> None:
    _, g, form, factor = edit
    group = opt.param_groups[g % len(opt.param_groups)]
    lr = group["lr"]
    if isinstance(lr, torch.Tensor):
        if form == "replace":
            group["lr"] = torch.tensor(float(lr) * factor, dtype=lr.dtype)
        else:
            lr.mul_(factor)
    else:
        group["lr"] = lr * factor


def key_edit(opt: Any, g: int, key: str, value: Any) -> None:
    """Sets a group key torch reads every step (OneCycleLR's max_lr, SWALR's swa_lr, ...)."""
    opt.param_groups[g % len(opt.param_groups)][key] = value


# ---- strategies ------------------------------------------------------------------------------------

lr_value = st.sampled_from([0.1, 0.05, 0.01, 0.3, 1.0, 0.0123456789, 0.2])


@st.composite
def configs(draw: Any, lr_types: tuple[str, ...] = ("float", "f64"), opts: tuple[str, ...] = ("sgd", "adam"),
            edits: bool = True, roundtrips: bool = True) -> dict[str, Any]:
    n = draw(st.integers(1, 4))
    cfg: dict[str, Any] = {
        "lrs": [draw(lr_value) for _ in range(n)],
        "lr_type": draw(st.sampled_from(lr_types)),
        "opt": draw(st.sampled_from(opts)),
    }
    if edits and draw(st.booleans()):
        cfg["edit"] = (draw(st.integers(0, STEPS - 1)), draw(st.integers(0, 3)),
                       draw(st.sampled_from(["inplace", "replace"])), draw(st.sampled_from([0.5, 2.0, 0.9])))
    if roundtrips and draw(st.booleans()):
        cfg["roundtrip"] = (draw(st.integers(0, STEPS - 2)), draw(st.sampled_from(["torch", "pickle"])))
    return cfg


def per_group(draw: Any, cfg: dict[str, Any], strategy: Any) -> Any:
    """A scalar, or a list with one value per group (the forms torch accepts)."""
    if draw(st.booleans()):
        return draw(strategy)
    return [draw(strategy) for _ in cfg["lrs"]]


# Chainable companions for compounding: (name, builder)
def companion_strategy() -> Any:
    return st.one_of(
        st.none(),
        st.builds(lambda s, g: lambda M, o: M.StepLR(o, s, g), st.integers(1, 40), st.sampled_from([0.5, 0.9, 1.1])),
        st.builds(lambda g: lambda M, o: M.ExponentialLR(o, g), st.sampled_from([0.99, 0.995, 1.001])),
        st.builds(lambda m, g: lambda M, o: M.MultiStepLR(o, m, g), st.lists(st.integers(0, STEPS), max_size=4),
                  st.sampled_from([0.5, 0.3])),
        st.builds(lambda f, n: lambda M, o: M.ConstantLR(o, f, n), st.sampled_from([0.5, 0.25, 1.0]), st.integers(0, 50)),
        st.builds(lambda c: lambda M, o: M.MultiplicativeLR(o, lambda e: c), st.sampled_from([0.99, 0.999])),
    )


# ---- one differential test per class ---------------------------------------------------------------

@hyp
@given(cfg=configs(), step_size=st.integers(1, 60), gamma=st.sampled_from([0.1, 0.5, 0.9, 1.0, 1.3]),
       companion=companion_strategy())
def test_steplr(cfg: dict[str, Any], step_size: int, gamma: float, companion: Any) -> None:
    run_pair(cfg, lambda M, o: M.StepLR(o, step_size, gamma), companion=companion)


@hyp
@given(cfg=configs(), milestones=st.lists(st.integers(0, STEPS + 5), max_size=6), gamma=st.sampled_from([0.1, 0.5, 0.7]),
       as_set=st.booleans(), companion=companion_strategy())
def test_multisteplr(cfg: dict[str, Any], milestones: list[int], gamma: float, as_set: bool, companion: Any) -> None:
    ms: Any = set(milestones) if as_set else milestones  # repeated milestones count twice, as in torch
    run_pair(cfg, lambda M, o: M.MultiStepLR(o, ms, gamma), companion=companion)


@hyp
@given(cfg=configs(), factor=st.sampled_from([0.0, 0.1, 1 / 3, 0.5, 1.0]), total=st.integers(0, 80),
       companion=companion_strategy())
def test_constantlr(cfg: dict[str, Any], factor: float, total: int, companion: Any) -> None:
    # factor 0 makes torch divide by zero at total_iters: the same ZeroDivisionError must surface
    run_pair(cfg, lambda M, o: M.ConstantLR(o, factor, total), companion=companion)


@hyp
@given(cfg=configs(), start=st.sampled_from([1e-3, 0.1, 1 / 3, 0.5, 1.0]), end=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
       total=st.integers(0, 120), companion=companion_strategy())
def test_linearlr(cfg: dict[str, Any], start: float, end: float, total: int, companion: Any) -> None:
    run_pair(cfg, lambda M, o: M.LinearLR(o, start, end, total), companion=companion)


@hyp
@given(cfg=configs(), gamma=st.sampled_from([0.9, 0.99, 0.995, 1.0, 1.002]), companion=companion_strategy())
def test_exponentiallr(cfg: dict[str, Any], gamma: float, companion: Any) -> None:
    run_pair(cfg, lambda M, o: M.ExponentialLR(o, gamma), companion=companion)


@hyp
@given(cfg=configs(), total=st.integers(0, 400), power=st.sampled_from([0.5, 1.0, 2.0, 3.3]),
       companion=companion_strategy())
def test_polynomiallr(cfg: dict[str, Any], total: int, power: float, companion: Any) -> None:
    run_pair(cfg, lambda M, o: M.PolynomialLR(o, total, power), companion=companion)


@hyp
@given(cfg=configs(), T_max=st.integers(1, 150), eta_min=st.sampled_from([0.0, 1e-4, 0.01]),
       companion=companion_strategy())
def test_cosineannealinglr(cfg: dict[str, Any], T_max: int, eta_min: float, companion: Any) -> None:
    run_pair(cfg, lambda M, o: M.CosineAnnealingLR(o, T_max, eta_min), companion=companion)


def lambdas() -> Any:
    """Python callables and torchsched schedule specs (which the core runs; torch calls them)."""
    return st.one_of(
        st.builds(lambda a: (lambda e: a ** e), st.sampled_from([0.99, 0.95, 1.0])),
        st.builds(lambda b: (lambda e: 1.0 / (1.0 + b * e)), st.sampled_from([0.01, 0.1])),
        st.builds(lambda n: S.cosine(n, final=0.1), st.integers(10, 200)),
        st.builds(lambda n: S.warmup(n) >> S.exponential(0.99), st.integers(1, 50)),
        st.just(S.constant(0.5)),
    )


def for_side(M: Any, fn: Any) -> Any:
    """torch gets a schedule spec as a plain function calling it (so its state_dict saves None, as
    ours does for a spec); torchsched gets the spec itself and runs it in the core."""
    if M is TORCH and isinstance(fn, S.Schedule):
        return lambda e: fn(e)
    return fn


@hyp
@given(cfg=configs(), fns=st.lists(lambdas(), min_size=1, max_size=4), as_list=st.booleans(),
       companion=companion_strategy())
def test_lambdalr(cfg: dict[str, Any], fns: list[Any], as_list: bool, companion: Any) -> None:
    n = len(cfg["lrs"])

    def build(M: Any, o: Any) -> Any:
        if as_list:
            return M.LambdaLR(o, [for_side(M, fns[g % len(fns)]) for g in range(n)])
        return M.LambdaLR(o, for_side(M, fns[0]))
    run_pair(cfg, build, companion=companion)


@hyp
@given(cfg=configs(), c=st.sampled_from([0.99, 0.95, 1.0, 1.001]), sched=st.booleans(), companion=companion_strategy())
def test_multiplicativelr(cfg: dict[str, Any], c: float, sched: bool, companion: Any) -> None:
    fn: Any = S.constant(c) if sched else (lambda e: c if e % 7 else c * c)
    run_pair(cfg, lambda M, o: M.MultiplicativeLR(o, for_side(M, fn)), companion=companion)


@st.composite
def cyclic_args(draw: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "base_lr": per_group(draw, cfg, st.sampled_from([0.001, 0.01, 0.02])),
        "max_lr": per_group(draw, cfg, st.sampled_from([0.1, 0.05, 0.5])),
        "step_size_up": draw(st.integers(1, 60)),
        "step_size_down": draw(st.one_of(st.none(), st.integers(0, 60))),
        "mode": draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
        "gamma": draw(st.sampled_from([1.0, 0.99, 0.995])),
        "cycle_momentum": draw(st.booleans()),
        "base_momentum": per_group(draw, cfg, st.sampled_from([0.8, 0.85])),
        "max_momentum": per_group(draw, cfg, st.sampled_from([0.9, 0.95])),
    }
    if draw(st.booleans()):
        scale = draw(st.sampled_from([0.5, 0.9]))
        kw["scale_fn"] = lambda x: scale ** x
        kw["scale_mode"] = draw(st.sampled_from(["cycle", "iterations"]))
    return kw


@hyp
@given(cfg=configs(), data=st.data())
def test_cycliclr(cfg: dict[str, Any], data: Any) -> None:
    kw = data.draw(cyclic_args(cfg))
    run_pair(cfg, lambda M, o: M.CyclicLR(o, **kw), companion=data.draw(companion_strategy()))


@hyp
@given(cfg=configs(), T_0=st.integers(1, 60), T_mult=st.integers(1, 3), eta_min=st.sampled_from([0.0, 1e-3]),
       epochs=st.one_of(st.none(), st.lists(st.sampled_from([0, 1, 2.5, 7, 30.25, 100]), min_size=1, max_size=5)),
       companion=companion_strategy())
def test_cosineannealingwarmrestarts(cfg: dict[str, Any], T_0: int, T_mult: int, eta_min: float,
                                     epochs: list[float] | None, companion: Any) -> None:
    if epochs is None:
        run_pair(cfg, lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta_min), companion=companion)
        return
    # step(epoch) with fractional epochs (the per-batch idiom), interleaved with plain steps
    rel, abs_ = tol_for(cfg)
    pairs = []
    for M in (TORCH, OURS):
        o = make_opt(cfg)
        pairs.append((o, M.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta_min)))
    for i in range(60):
        epoch = epochs[i % len(epochs)] + i // len(epochs) if i % 3 == 0 else None
        for o, s in pairs:
            o.step()
            s.step(epoch)
        assert_same_groups(pairs[0][0], pairs[1][0], rel, abs_, f"step {i}")
        assert_same_scheduler(pairs[0][1], pairs[1][1], rel, abs_, f"step {i}")


@hyp
@given(cfg=configs(), data=st.data())
def test_onecyclelr(cfg: dict[str, Any], data: Any) -> None:
    total = data.draw(st.integers(STEPS, STEPS + 50))
    kw = {
        "max_lr": per_group(data.draw, cfg, st.sampled_from([0.1, 0.5, 1.0])),
        "pct_start": data.draw(st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.9])),
        "anneal_strategy": data.draw(st.sampled_from(["cos", "linear"])),
        "cycle_momentum": data.draw(st.booleans()),
        "div_factor": data.draw(st.sampled_from([25.0, 10.0])),
        "final_div_factor": data.draw(st.sampled_from([1e4, 100.0])),
        "three_phase": data.draw(st.booleans()),
    }
    if data.draw(st.booleans()):
        kw["total_steps"] = total
    else:
        kw["epochs"], kw["steps_per_epoch"] = 10, total // 10 + 1
    run_pair(cfg, lambda M, o: M.OneCycleLR(o, **kw), companion=data.draw(companion_strategy()))


@hyp
@given(cfg=configs(), data=st.data())
def test_swalr(cfg: dict[str, Any], data: Any) -> None:
    swa_lr = per_group(data.draw, cfg, st.sampled_from([0.05, 0.01, 0.5]))
    epochs = data.draw(st.integers(0, 40))
    strategy = data.draw(st.sampled_from(["cos", "linear"]))
    run_pair(cfg, lambda M, o: M.SWALR(o, swa_lr, epochs, strategy), companion=data.draw(companion_strategy()))


def child() -> Any:
    return st.one_of(
        st.builds(lambda f, n: lambda M, o: M.LinearLR(o, f, total_iters=n), st.sampled_from([0.01, 0.1, 0.5]),
                  st.integers(1, 100)),
        st.builds(lambda f, n: lambda M, o: M.ConstantLR(o, f, n), st.sampled_from([0.1, 0.5]), st.integers(1, 50)),
        st.builds(lambda t, e: lambda M, o: M.CosineAnnealingLR(o, t, e), st.integers(10, 300), st.sampled_from([0.0, 1e-3])),
        st.builds(lambda g: lambda M, o: M.ExponentialLR(o, g), st.sampled_from([0.99, 0.98])),
        st.builds(lambda s: lambda M, o: M.StepLR(o, s, 0.5), st.integers(5, 60)),
        st.builds(lambda a: lambda M, o: M.LambdaLR(o, lambda e: a ** e), st.sampled_from([0.99, 0.995])),
    )


@hyp
@given(cfg=configs(), children=st.lists(child(), min_size=1, max_size=3), data=st.data())
def test_sequentiallr(cfg: dict[str, Any], children: list[Any], data: Any) -> None:
    milestones = sorted(data.draw(st.lists(st.integers(1, STEPS), min_size=len(children) - 1,
                                           max_size=len(children) - 1)))

    def build(M: Any, o: Any) -> Any:
        return M.SequentialLR(o, [c(M, o) for c in children], milestones)
    run_pair(cfg, build)


@hyp
@given(cfg=configs(), children=st.lists(child(), min_size=1, max_size=3))
def test_chainedscheduler(cfg: dict[str, Any], children: list[Any]) -> None:
    run_pair(cfg, lambda M, o: M.ChainedScheduler([c(M, o) for c in children]))


@hyp
@given(cfg=configs(), data=st.data())
def test_reducelronplateau(cfg: dict[str, Any], data: Any) -> None:
    kw = {
        "mode": data.draw(st.sampled_from(["min", "max"])),
        "factor": data.draw(st.sampled_from([0.1, 0.5, 0.9])),
        "patience": data.draw(st.integers(0, 5)),
        "threshold": data.draw(st.sampled_from([1e-4, 0.01, 0.0])),
        "threshold_mode": data.draw(st.sampled_from(["rel", "abs"])),
        "cooldown": data.draw(st.integers(0, 3)),
        "min_lr": per_group(data.draw, cfg, st.sampled_from([0.0, 1e-3, 0.02])),
        "eps": data.draw(st.sampled_from([1e-8, 1e-3])),
    }
    metrics = data.draw(st.lists(st.sampled_from([1.0, 0.9, 0.99, 0.5, 2.0, 0.999]), min_size=1, max_size=40))
    as_tensor = data.draw(st.booleans())
    ms: list[Any] = [torch.tensor(m) for m in metrics] if as_tensor else metrics
    run_pair(cfg, lambda M, o: M.ReduceLROnPlateau(o, **kw), metrics=ms, companion=data.draw(companion_strategy()))


# ---- float32 LR tensors: float32 precision ----------------------------------------------------------

F32_BUILDERS = {
    "StepLR": lambda M, o: M.StepLR(o, 7, 0.7),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, 90, 1e-3),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, 0.5, total_steps=STEPS),
    "CyclicLR": lambda M, o: M.CyclicLR(o, 0.01, 0.1, 20, mode="triangular2"),
    "LinearLR": lambda M, o: M.LinearLR(o, 0.1, 1.0, 50),
    "SWALR": lambda M, o: M.SWALR(o, 0.05, 20),
    "ReduceLROnPlateau": lambda M, o: M.ReduceLROnPlateau(o, patience=2),
}


@settings(max_examples=4, deadline=None)
@given(cfg=configs(lr_types=("f32",)), name=st.sampled_from(sorted(F32_BUILDERS)))
def test_float32_lr_tensors(cfg: dict[str, Any], name: str) -> None:
    metrics = [1.0, 1.0, 0.5, 0.6] if name == "ReduceLROnPlateau" else None
    run_pair(cfg, F32_BUILDERS[name], metrics=metrics)


# ---- exactness, fast path, ownership -----------------------------------------------------------------

ALL_BUILDERS: dict[str, Builder] = {
    "LambdaLR": lambda M, o: M.LambdaLR(o, lambda e: 0.97 ** e),
    "MultiplicativeLR": lambda M, o: M.MultiplicativeLR(o, lambda e: 0.98),
    "StepLR": lambda M, o: M.StepLR(o, 9, 0.6),
    "MultiStepLR": lambda M, o: M.MultiStepLR(o, [3, 30, 30, 200], 0.4),
    "ConstantLR": lambda M, o: M.ConstantLR(o, 0.3, 40),
    "LinearLR": lambda M, o: M.LinearLR(o, 0.05, 0.8, 120),
    "ExponentialLR": lambda M, o: M.ExponentialLR(o, 0.993),
    "SequentialLR": lambda M, o: M.SequentialLR(o, [M.LinearLR(o, 0.1, total_iters=30), M.CosineAnnealingLR(o, 200)], [30]),
    "PolynomialLR": lambda M, o: M.PolynomialLR(o, 250, 1.7),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, 70, 1e-4),
    "ChainedScheduler": lambda M, o: M.ChainedScheduler([M.ExponentialLR(o, 0.99), M.StepLR(o, 25, 0.5)]),
    "ReduceLROnPlateau": lambda M, o: M.ReduceLROnPlateau(o, patience=1),
    "CyclicLR": lambda M, o: M.CyclicLR(o, 0.01, 0.1, 13, 21, mode="exp_range", gamma=0.997),
    "CosineAnnealingWarmRestarts": lambda M, o: M.CosineAnnealingWarmRestarts(o, 11, 2, 1e-3),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, 0.3, total_steps=STEPS + 1, three_phase=True),
    "SWALR": lambda M, o: M.SWALR(o, 0.02, 17, "linear"),
}
CORE_STEPPED = ["LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
                "PolynomialLR", "CosineAnnealingLR", "CyclicLR", "OneCycleLR", "SWALR"]


def test_every_class_is_covered() -> None:
    assert set(ts.__all__) == set(CLASS_NAMES)
    assert set(CLASS_NAMES) - {"LRScheduler"} == set(ALL_BUILDERS)


@pytest.mark.parametrize("lr_type", ["float", "f64"])
@pytest.mark.parametrize("name", sorted(ALL_BUILDERS))
def test_float_path_is_bit_exact(name: str, lr_type: str) -> None:
    cfg = {"lrs": [0.1, 0.0123456789, 0.3], "lr_type": lr_type, "opt": "sgd"}
    sides = []
    for M in (TORCH, OURS):
        o = make_opt(cfg)
        sides.append((o, ALL_BUILDERS[name](M, o)))
    metrics = [1.0, 0.9, 0.95, 0.95, 0.96, 0.5]
    for i in range(STEPS):
        for o, s in sides:
            o.step()
            s.step(metrics[i % 6]) if name == "ReduceLROnPlateau" else s.step()
        for gt, gs in zip(sides[0][0].param_groups, sides[1][0].param_groups):
            assert float(gt["lr"]) == float(gs["lr"]), (name, i)
            assert gt.get("momentum") == gs.get("momentum"), (name, i)
        assert [float(x) for x in sides[0][1].get_last_lr()] == [float(x) for x in sides[1][1].get_last_lr()]


def python_steps(s: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The epochs of every step of ``s`` that from now on takes the Python slow path (``_python_step``)."""
    calls: list[Any] = []
    original = type(s)._python_step
    monkeypatch.setattr(type(s), "_python_step", lambda self, epoch=None: (calls.append(epoch), original(self, epoch)))
    return calls


@pytest.mark.parametrize("lr_type", ["float", "f64", "f32"])
@pytest.mark.parametrize("name", CORE_STEPPED)
def test_steady_state_steps_never_enter_python(name: str, lr_type: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first step, step() is the C-level call: the Python slow path is not entered."""
    from torchsched import _torch_compat

    if lr_type != "float" and not _torch_compat.CLONES_LRS:
        pytest.skip("this torch keeps the groups' own LR tensors (it does not clone them), so the twin fills them "
                    "in place through the per-group path, as torch does")
    o = make_opt({"lrs": [0.1, 0.2], "lr_type": lr_type, "opt": "sgd"})
    s = ALL_BUILDERS[name](OURS, o)
    o.step()
    s.step()
    calls = python_steps(s, monkeypatch)
    for _ in range(50):
        o.step()
        s.step()
    assert calls == []
    assert s._stepper.uniform or name in ("LambdaLR", "MultiplicativeLR")
    o.param_groups[0]["lr"] = o.param_groups[0]["lr"] * 0.5 if lr_type == "float" else torch.tensor(0.05)
    s.step()  # a replaced LR object still works; the slow path may rebind
    s.step(3)  # the deprecated form goes through Python
    assert calls[-1] == 3


def test_tensor_lrs_are_owned_views_never_aliased() -> None:
    from torchsched import _torch_compat

    if not _torch_compat.CLONES_LRS:
        pytest.skip("this torch's lists alias the groups' own LR tensors, and so do the twins' (compared with torch "
                    "in test_torch_versions.py)")
    cfg = {"lrs": [0.1, 0.2, 0.3], "lr_type": "f64", "opt": "adam"}
    o = make_opt(cfg)
    user_tensors = [g["lr"] for g in o.param_groups]
    s = ts.CosineAnnealingLR(o, 10)
    views = [g["lr"] for g in o.param_groups]
    base = views[0]._base
    assert base is not None and base.dim() == 1 and base.numel() == 3
    for g, v in enumerate(views):
        assert v.dim() == 0 and v._base is base and v.data_ptr() == base.data_ptr() + 8 * g
        assert v is not user_tensors[g] and float(v) == float(user_tensors[g])
        init = o.param_groups[g]["initial_lr"]
        assert isinstance(init, torch.Tensor) and init.data_ptr() != v.data_ptr()
        assert s.base_lrs[g].data_ptr() != v.data_ptr()
    for _ in range(5):
        o.step()
        s.step()
    for g, v in enumerate(views):
        assert o.param_groups[g]["lr"] is v  # updated in place
        assert float(o.param_groups[g]["initial_lr"]) == cfg["lrs"][g]  # initial_lr untouched
    last = s.get_last_lr()
    assert all(x.data_ptr() != v.data_ptr() for x, v in zip(last, views))
    last[0].fill_(123.0)
    assert float(views[0]) != 123.0
    # a second scheduler on the same optimizer writes the same buffer: no re-binding
    s2 = ts.StepLR(o, 2, 0.5)
    assert all(g["lr"] is v for g, v in zip(o.param_groups, views))
    before = [float(v) for v in views]
    o.step()
    s.step()
    s2.step()
    assert all(g["lr"] is v for g, v in zip(o.param_groups, views))
    assert [float(v) for v in views] != before


@pytest.mark.parametrize("lr_type", ["float", "f64"])
@pytest.mark.parametrize("name", sorted(ALL_BUILDERS))
def test_no_reference_cycles(name: str, lr_type: str) -> None:
    """The optimizer and the scheduler are freed by reference counting alone."""
    gc.collect()
    gc.disable()
    try:
        o = make_opt({"lrs": [0.1, 0.2], "lr_type": lr_type, "opt": "sgd"})
        s = ALL_BUILDERS[name](OURS, o)
        for i in range(5):
            o.step()
            s.step(1.0 - 0.1 * i) if name == "ReduceLROnPlateau" else s.step()
        s.get_last_lr()
        s.state_dict()
        refs = [weakref.ref(o), weakref.ref(s)]
        del o, s
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_isinstance_of_torch_classes(name: str) -> None:
    ours = getattr(ts, name)
    theirs = getattr(TORCH, name)
    assert issubclass(ours, tl.LRScheduler) and issubclass(ours, theirs)
    if name != "LRScheduler":
        o = make_opt({"lrs": [0.1], "lr_type": "float", "opt": "sgd"})
        s = ALL_BUILDERS[name](OURS, o)
        assert isinstance(s, tl.LRScheduler) and isinstance(s, theirs) and isinstance(s, ts.LRScheduler)
        if name != "ReduceLROnPlateau":
            assert isinstance(s, ts._LastLR)


def test_lambdalr_schedule_runs_in_the_core_and_saves_nothing() -> None:
    o = make_opt({"lrs": [0.1, 0.2], "lr_type": "float", "opt": "sgd"})
    sched = S.warmup(10) >> S.cosine(100, final=0.05)
    s = ts.LambdaLR(o, [sched, lambda e: 0.5])
    assert s._stepper is not None and s._stepper.groups == 2
    for t in range(1, 40):
        o.step()
        s.step()
        assert o.param_groups[0]["lr"] == 0.1 * sched(t)
        assert o.param_groups[1]["lr"] == 0.2 * 0.5
    state = s.state_dict()
    assert state["lr_lambdas"] == [None, None]
    roundtrip(state, "torch")


def test_closed_form_step_epoch_matches_torch_with_its_warning() -> None:
    for name in ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
                 "CosineAnnealingLR", "LambdaLR", "MultiplicativeLR", "CyclicLR", "OneCycleLR", "SWALR"]:
        for lr_type in ("float", "f64"):
            cfg = {"lrs": [0.1, 0.25], "lr_type": lr_type, "opt": "sgd"}
            sides, records = [], []
            for M in (TORCH, OURS):
                o = make_opt(cfg)
                sides.append((o, ALL_BUILDERS[name](M, o)))
            for epoch in [5, 3, 0, 77, 40, 41, 150, 2.5]:
                for o, s in sides:
                    o.step()
                    with warnings.catch_warnings(record=True) as w:
                        warnings.simplefilter("always")
                        s.step(epoch)
                    records.append([(x.category, str(x.message), x.filename) for x in w])
                assert records[-1] == records[-2] and records[-1], (name, epoch)  # where it points: torch's choice
                assert records[-1][0][1] == tl.EPOCH_DEPRECATION_WARNING
                assert_same_groups(sides[0][0], sides[1][0], REL, 0.0, f"{name} epoch {epoch}")
                assert_same_scheduler(sides[0][1], sides[1][1], REL, 0.0, f"{name} epoch {epoch}")
                for o, s in sides:  # then a plain step continues from there
                    o.step()
                    s.step()
                assert_same_groups(sides[0][0], sides[1][0], REL, 0.0, f"{name} after epoch {epoch}")


def test_get_closed_form_lr_and_get_lr_match_torch() -> None:
    for name in ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR"]:
        for lr_type in ("float", "f64"):
            cfg = {"lrs": [0.1, 0.25], "lr_type": lr_type, "opt": "sgd"}
            ss = []
            for M in (TORCH, OURS):
                o = make_opt(cfg)
                s = ALL_BUILDERS[name](M, o)
                for _ in range(33):
                    o.step()
                    s.step()
                ss.append(s)
            a, b = ss[0]._get_closed_form_lr(), ss[1]._get_closed_form_lr()
            for x, y in zip(a, b):
                same_kind(x, y, name)
                close(x, y, REL, 0.0, f"{name} closed form")
    for name in ALL_BUILDERS:
        if name in ("SequentialLR", "ChainedScheduler", "ReduceLROnPlateau"):
            continue
        o1, o2 = make_opt({"lrs": [0.1], "lr_type": "float", "opt": "sgd"}), make_opt(
            {"lrs": [0.1], "lr_type": "float", "opt": "sgd"})
        s1, s2 = ALL_BUILDERS[name](TORCH, o1), ALL_BUILDERS[name](OURS, o2)
        for _ in range(20):
            o1.step(), o2.step(), s1.step(), s2.step()
        records = []
        for s in (s1, s2):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                values = s.get_lr()
            records.append(([str(x.message) for x in w], [float(v) for v in values]))
        assert records[0] == records[1], name
        assert_same_groups(o1, o2, REL, 0.0, f"{name} after get_lr")


def _kind(v: Any) -> str:
    return f"tensor[{v.dtype}]" if isinstance(v, torch.Tensor) else type(v).__name__


@pytest.mark.parametrize("lr_type", ["float", "f64", "f32"])
@pytest.mark.parametrize("name", sorted(set(ALL_BUILDERS) - {"SequentialLR", "ChainedScheduler", "ReduceLROnPlateau"}))
def test_get_lr_returns_torchs_types(name: str, lr_type: str) -> None:
    """get_lr() gives floats or tensors exactly where torch does: tensor LRs make the scaling rules return
    tensors, while OneCycleLR and CyclicLR compute from their own float keys and lists (floats) unless a
    tensor is put there."""
    kinds = []
    for M in (TORCH, OURS):
        o = make_opt({"lrs": [0.1, 0.2], "lr_type": lr_type, "opt": "sgd"})
        s = ALL_BUILDERS[name](M, o)
        for _ in range(4):
            o.step()
            s.step()
        if name == "OneCycleLR":
            o.param_groups[1]["max_lr"] = torch.tensor(0.25, dtype=torch.float64)  # torch now returns a tensor there
        if name == "CyclicLR":
            s.max_lrs = [s.max_lrs[0], torch.tensor(0.2, dtype=torch.float64)]
        s._get_lr_called_within_step = True  # no "outside step()" warning
        got = s.get_lr()
        kinds.append(([_kind(v) for v in got], [float(v) for v in got], [_kind(v) for v in s.get_last_lr()]))
    assert kinds[0][0] == kinds[1][0] and kinds[0][2] == kinds[1][2], (name, kinds)
    for a, b in zip(kinds[0][1], kinds[1][1]):
        close(a, b, 1e-6 if lr_type == "f32" else REL, 0.0, f"{name} get_lr")


# ---- warnings ---------------------------------------------------------------------------------------

def _warnings_of(fn: Callable[[], Any]) -> list[tuple[Any, str, str, int]]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fn()
    return [(x.category, str(x.message), x.filename, x.lineno) for x in w]


@pytest.mark.parametrize("name", sorted(set(ALL_BUILDERS) - {"ReduceLROnPlateau", "CosineAnnealingWarmRestarts",
                                                            "SequentialLR", "ChainedScheduler"}))
def test_call_order_warnings(name: str) -> None:
    results = []
    for M in (TORCH, OURS):
        o = make_opt({"lrs": [0.1], "lr_type": "float", "opt": "sgd"})
        s = ALL_BUILDERS[name](M, o)
        early = _warnings_of(lambda: s.step())  # scheduler.step() before optimizer.step()
        o2 = make_opt({"lrs": [0.1], "lr_type": "float", "opt": "sgd"})
        s2 = ALL_BUILDERS[name](M, o2)
        o2.step = lambda *a, **k: None  # overridden after the scheduler was built
        overridden = _warnings_of(lambda: s2.step())
        results.append((early, overridden))
    assert results[0] == results[1]
    (early, overridden), _ = results
    # where the warning points (the caller's line with torch 2.9+, torch's own file before) is compared with
    # torch above; here only that it is the call-order warning
    assert early and "before `optimizer.step()`" in early[0][1]
    assert overridden and "has been overridden" in overridden[0][1]


def test_get_lr_outside_step_warns_like_torch() -> None:
    for M in (TORCH, OURS):
        o = make_opt({"lrs": [0.1], "lr_type": "float", "opt": "sgd"})
        s = M.StepLR(o, 3)
        w = _warnings_of(lambda: s.get_lr())
        assert [m for _, m, _, _ in w] == ["To get the last learning rate computed by the scheduler, please use "
                                           "`get_last_lr()`."]


def test_plateau_epoch_warning() -> None:
    got = []
    for M in (TORCH, OURS):
        o = make_opt({"lrs": [0.1], "lr_type": "float", "opt": "sgd"})
        s = M.ReduceLROnPlateau(o)
        got.append(_warnings_of(lambda: s.step(1.0, 5)))
        assert s.last_epoch == 5
    assert got[0] == got[1] and got[0][0][1] == tl.EPOCH_DEPRECATION_WARNING


# ---- errors -----------------------------------------------------------------------------------------

def _opt(kind: str = "sgd", n: int = 1) -> Any:
    return make_opt({"lrs": [0.1] * n, "lr_type": "float", "opt": kind})


INVALID: list[tuple[str, Callable[[Any], Any]]] = [
    ("not an optimizer", lambda M: M.StepLR(object(), 3)),
    ("resume without initial_lr", lambda M: M.StepLR(_opt(), 3, last_epoch=4)),
    ("ConstantLR factor > 1", lambda M: M.ConstantLR(_opt(), 1.5)),
    ("ConstantLR factor < 0", lambda M: M.ConstantLR(_opt(), -0.1)),
    ("LinearLR start 0", lambda M: M.LinearLR(_opt(), 0.0)),
    ("LinearLR start > 1", lambda M: M.LinearLR(_opt(), 1.5)),
    ("LinearLR end > 1", lambda M: M.LinearLR(_opt(), 0.5, 1.5)),
    ("LambdaLR wrong count", lambda M: M.LambdaLR(_opt(n=2), [lambda e: 1.0] * 3)),
    ("MultiplicativeLR not callable", lambda M: M.MultiplicativeLR(_opt(), 0.5)),
    ("OneCycleLR no steps", lambda M: M.OneCycleLR(_opt(), 0.1)),
    ("OneCycleLR total 0", lambda M: M.OneCycleLR(_opt(), 0.1, total_steps=0)),
    ("OneCycleLR total float", lambda M: M.OneCycleLR(_opt(), 0.1, total_steps=10.0)),
    ("OneCycleLR epochs 0", lambda M: M.OneCycleLR(_opt(), 0.1, epochs=0, steps_per_epoch=3)),
    ("OneCycleLR steps_per_epoch", lambda M: M.OneCycleLR(_opt(), 0.1, epochs=2, steps_per_epoch=-1)),
    ("OneCycleLR pct_start", lambda M: M.OneCycleLR(_opt(), 0.1, total_steps=10, pct_start=1.5)),
    ("OneCycleLR pct_start int", lambda M: M.OneCycleLR(_opt(), 0.1, total_steps=10, pct_start=0)),
    ("OneCycleLR anneal", lambda M: M.OneCycleLR(_opt(), 0.1, total_steps=10, anneal_strategy="exp")),
    ("OneCycleLR no momentum", lambda M: M.OneCycleLR(_opt("adagrad"), 0.1, total_steps=10)),
    ("OneCycleLR max_lr count", lambda M: M.OneCycleLR(_opt(n=2), [0.1] * 3, total_steps=10)),
    ("OneCycleLR empty phase", lambda M: M.OneCycleLR(_opt(), 0.1, total_steps=10, pct_start=0.1)),
    ("CyclicLR mode", lambda M: M.CyclicLR(_opt(), 0.01, 0.1, mode="sine")),
    ("CyclicLR base_lr count", lambda M: M.CyclicLR(_opt(n=2), [0.01] * 3, 0.1)),
    ("CyclicLR no momentum", lambda M: M.CyclicLR(_opt("adagrad"), 0.01, 0.1)),
    ("CyclicLR zero cycle", lambda M: M.CyclicLR(_opt(), 0.01, 0.1, 0, 0)),
    ("CyclicLR zero up", lambda M: M.CyclicLR(_opt(), 0.01, 0.1, 0, 5)),
    ("WarmRestarts T_0 0", lambda M: M.CosineAnnealingWarmRestarts(_opt(), 0)),
    ("WarmRestarts T_0 float", lambda M: M.CosineAnnealingWarmRestarts(_opt(), 2.5)),
    ("WarmRestarts T_mult 0", lambda M: M.CosineAnnealingWarmRestarts(_opt(), 3, 0)),
    ("WarmRestarts T_mult float", lambda M: M.CosineAnnealingWarmRestarts(_opt(), 3, 1.5)),
    ("WarmRestarts eta_min", lambda M: M.CosineAnnealingWarmRestarts(_opt(), 3, 1, "0")),
    ("SWALR strategy", lambda M: M.SWALR(_opt(), 0.1, anneal_strategy="exp")),
    ("SWALR epochs", lambda M: M.SWALR(_opt(), 0.1, anneal_epochs=-1)),
    ("SWALR epochs float", lambda M: M.SWALR(_opt(), 0.1, anneal_epochs=1.5)),
    ("SWALR swa_lr count", lambda M: M.SWALR(_opt(n=2), [0.1] * 3)),
    ("Plateau factor", lambda M: M.ReduceLROnPlateau(_opt(), factor=1.0)),
    ("Plateau mode", lambda M: M.ReduceLROnPlateau(_opt(), mode="up")),
    ("Plateau threshold_mode", lambda M: M.ReduceLROnPlateau(_opt(), threshold_mode="pct")),
    ("Plateau min_lr count", lambda M: M.ReduceLROnPlateau(_opt(n=2), min_lr=[0.0] * 3)),
    ("Plateau not an optimizer", lambda M: M.ReduceLROnPlateau(object())),
    ("SequentialLR empty", lambda M: M.SequentialLR(_opt(), [], [])),
    ("SequentialLR milestones", lambda M: (lambda o: M.SequentialLR(o, [M.StepLR(o, 2)], [3]))(_opt())),
    ("SequentialLR other optimizer", lambda M: M.SequentialLR(_opt(), [M.StepLR(_opt(), 2)], [])),
    ("SequentialLR plateau", lambda M: (lambda o: M.SequentialLR(o, [M.ReduceLROnPlateau(o)], []))(_opt())),
    ("ChainedScheduler empty", lambda M: M.ChainedScheduler([])),
    ("ChainedScheduler plateau", lambda M: (lambda o: M.ChainedScheduler([M.ReduceLROnPlateau(o)]))(_opt())),
    ("ChainedScheduler optimizers", lambda M: M.ChainedScheduler([M.StepLR(_opt(), 2), M.StepLR(_opt(), 3)])),
]


@pytest.mark.parametrize("label,make", INVALID, ids=[label for label, _ in INVALID])
def test_invalid_arguments_raise_torchs_errors(label: str, make: Callable[[Any], Any]) -> None:
    theirs, ours = outcome(lambda: make(TORCH)), outcome(lambda: make(OURS))
    if theirs is None:  # a torch that checks less at construction raises it at a step: refused earlier here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = make(TORCH)
            theirs = next(filter(None, (outcome(lambda: (s.optimizer.step(), s.step())) for _ in range(3))), None)
        assert theirs is not None, f"{label}: torch accepts it"
        assert ours is not None and ours[0] == theirs[0], (theirs, ours)
        return
    # messages that print an object's repr differ by its address only
    assert ours is not None and ours[0] == theirs[0], (theirs, ours)
    if " at 0x" not in theirs[1]:
        assert ours[1] == theirs[1]


STEP_ERRORS: list[tuple[str, Callable[[Any, Any], Any], Callable[[Any, Any], Any]]] = [
    ("StepLR step_size 0", lambda M, o: M.StepLR(o, 0), lambda s, i: s.step()),
    ("ConstantLR factor 0", lambda M, o: M.ConstantLR(o, 0.0, 3), lambda s, i: s.step()),
    ("CosineAnnealingLR T_max 0", lambda M, o: M.CosineAnnealingLR(o, 0), lambda s, i: s.step()),
    ("CosineAnnealingLR T_max 0 closed", lambda M, o: M.CosineAnnealingLR(o, 0), lambda s, i: s.step(i)),
    ("LinearLR total 0 closed", lambda M, o: M.LinearLR(o, total_iters=0), lambda s, i: s.step(i)),
    ("PolynomialLR total 0 closed", lambda M, o: M.PolynomialLR(o, 0), lambda s, i: s.step(i)),
    ("PolynomialLR negative power", lambda M, o: M.PolynomialLR(o, 3, -1.0), lambda s, i: s.step()),
    ("OneCycleLR past total", lambda M, o: M.OneCycleLR(o, 0.1, total_steps=5), lambda s, i: s.step()),
    ("WarmRestarts negative epoch", lambda M, o: M.CosineAnnealingWarmRestarts(o, 3), lambda s, i: s.step(-1)),
    ("SequentialLR epoch", lambda M, o: M.SequentialLR(o, [M.StepLR(o, 2)], []), lambda s, i: s.step(3)),
    ("LambdaLR raising lambda", lambda M, o: M.LambdaLR(o, lambda e: 1.0 / (5 - e)), lambda s, i: s.step()),
    ("Plateau bad metric", lambda M, o: M.ReduceLROnPlateau(o), lambda s, i: s.step("nan?")),
]


@pytest.mark.parametrize("label,make,act", STEP_ERRORS, ids=[label for label, _, _ in STEP_ERRORS])
def test_errors_while_stepping_are_torchs(label: str, make: Any, act: Any) -> None:
    got = []
    for M in (TORCH, OURS):
        o = _opt(n=2)
        s = make(M, o)
        seen = None
        for i in range(12):
            o.step()
            seen = outcome(lambda: act(s, i))
            if seen is not None:
                got.append((i, seen, s.last_epoch, getattr(s, "_step_count", None)))
                break
        else:
            got.append(None)
    assert got[0] is not None, f"{label}: torch raised nothing"
    assert got[0] == got[1]


def test_added_param_group_after_construction() -> None:
    """torch lets chainable rules step a group added later; ReduceLROnPlateau then needs min_lrs."""
    for build in (ALL_BUILDERS["StepLR"], ALL_BUILDERS["ExponentialLR"], ALL_BUILDERS["MultiStepLR"]):
        sides = []
        for M in (TORCH, OURS):
            o = _opt(n=2)
            s = build(M, o)
            sides.append((o, s))
        for i in range(40):
            if i == 7:
                for o, _ in sides:
                    o.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "lr": 0.07})
            for o, s in sides:
                o.step()
                s.step()
            assert_same_groups(sides[0][0], sides[1][0], REL, 0.0, f"step {i}")
            assert_same_scheduler(sides[0][1], sides[1][1], REL, 0.0, f"step {i}")
    got = []
    for M in (TORCH, OURS):
        o = _opt(n=1)
        s = M.ReduceLROnPlateau(o, patience=0, min_lr=[0.0])
        s.step(1.0)
        o.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "lr": 0.07})
        got.append((outcome(lambda: s.step(2.0)), s.num_bad_epochs, s.cooldown_counter, s.best, s.last_epoch,
                    [g["lr"] for g in o.param_groups]))
    assert got[0] == got[1] and got[0][0] is not None  # the error (and the groups reduced before it) is torch's


@pytest.mark.parametrize("patience,cooldown", [(1.5, 2.5), (1, 2.5), (0, math.inf), (math.nan, 1), (2, math.nan),
                                               (True, True), (1.5, 2)])
def test_plateau_fractional_counts_give_torchs_lrs(patience: Any, cooldown: Any) -> None:
    """Counts torch's arithmetic keeps as floats (a fractional or infinite cooldown, a NaN) are torch's: the LRs,
    the counters and the state dict, also after a round trip of the state dict."""
    sides = []
    for M in (TORCH, OURS):
        o = _opt(n=2)
        sides.append((o, M.ReduceLROnPlateau(o, patience=patience, cooldown=cooldown, factor=0.5)))
    for i in range(60):
        if i == 30:
            sides = [(o, reloaded(s)) for o, s in sides]
        for o, s in sides:
            s.step(1.0 if i % 5 else 0.5 ** i)
        assert_same_groups(sides[0][0], sides[1][0], REL, 0.0, f"step {i}")
        assert_same_scheduler(sides[0][1], sides[1][1], REL, 0.0, f"step {i}")
        assert repr(sides[0][1].state_dict()) == repr(sides[1][1].state_dict()), f"step {i}"


@pytest.mark.parametrize("cooldown", [2, 2.5])
def test_plateau_epoch_warning_with_any_counts(cooldown: Any) -> None:
    """The deprecated step(metrics, epoch) warns as torch does whichever way the steps run."""
    got = []
    for M in (TORCH, OURS):
        o = _opt(n=2)
        s = M.ReduceLROnPlateau(o, patience=0, cooldown=cooldown)
        got.append([_warnings_of(lambda: s.step(m, e)) for m, e in ((1.0, 3), (2.0, 4.5), (3.0, 7))])
        got.append([float(g["lr"]) for g in o.param_groups] + [s.last_epoch, s.cooldown_counter])
    assert got[0] == got[2] and got[1] == got[3] and got[0][0]


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "ConstantLR", "LinearLR", "PolynomialLR",
                                  "CosineAnnealingLR"])
def test_float32_closed_forms_are_torchs(name: str) -> None:
    """step(epoch) with float32 LR tensors: torch's closed form multiplies float32 tensors, bit for bit here."""
    got = []
    for M in (TORCH, OURS):
        o = make_opt({"lrs": [0.1, 0.0123456789, 0.3], "lr_type": "f32", "opt": "sgd"})
        s = ALL_BUILDERS[name](M, o)
        seen = []
        for epoch in [3, 0, 42, 17, 5, 99, 250]:
            o.step()
            s.step(epoch)
            seen.append([float(g["lr"]) for g in o.param_groups])
        got.append(seen)
    assert got[0] == got[1]


def reloaded(s: Any) -> Any:
    """A scheduler of the same class on the same optimizer, loaded from a pickled copy of ``s``'s state dict."""
    fresh = type(s)(s.optimizer)
    fresh.load_state_dict(roundtrip(s.state_dict(), "pickle"))
    return fresh


def test_reassigned_parameters_take_effect_like_torch() -> None:
    """torch reads its attributes at every step; reassigning one recompiles the core program."""
    sides = []
    for M in (TORCH, OURS):
        o = _opt(n=2)
        sides.append((o, M.StepLR(o, 5, 0.5), M.CosineAnnealingLR(_opt(), 50)))
    for i in range(60):
        if i == 17:
            for _, s, c in sides:
                s.gamma = 0.9
                s.step_size = 3
                c.T_max = 20
                c.base_lrs = [0.5]
        for o, s, c in sides:
            o.step()
            s.step()
            c.optimizer.step()
            c.step()
        assert_same_groups(sides[0][0], sides[1][0], REL, 0.0, f"step {i}")
        assert_same_groups(sides[0][2].optimizer, sides[1][2].optimizer, REL, 0.0, f"cos step {i}")


def test_state_dict_loads_across_torch_and_torchsched() -> None:
    """A checkpoint written by torch's scheduler resumes in torchsched's, and the other way round: each resumes as
    torch's scheduler resumes torch's checkpoint (on older torch a resumed SequentialLR with tensor LRs leaves the
    run it was saved from: its base LRs no longer alias the groups' LRs)."""
    def step(o: Any, s: Any) -> None:
        o.step()
        s.step(1.0) if name == "ReduceLROnPlateau" else s.step()

    for name in ["StepLR", "CosineAnnealingLR", "OneCycleLR", "CyclicLR", "LambdaLR", "SWALR",
                 "CosineAnnealingWarmRestarts", "SequentialLR", "ReduceLROnPlateau"]:
        cfg = {"lrs": [0.1, 0.2], "lr_type": "f64", "opt": "sgd"}
        checkpoints = {}
        for src in (TORCH, OURS):
            o = make_opt(cfg)
            s = ALL_BUILDERS[name](src, o)
            for i in range(23):
                step(o, s)
            saved = saved_states(s, None, "torch")
            if isinstance(saved, type):  # weights_only refuses it (older torch's SWALR state holds a function)
                checkpoints[id(src)] = saved
                saved = [roundtrip(s.state_dict(), "pickle")]
            checkpoints[id(src)] = (o.state_dict(), saved[0], checkpoints.get(id(src)))
        assert checkpoints[id(TORCH)][2] is checkpoints[id(OURS)][2], name  # weights_only refuses both or neither
        resumed = []
        for src, dst in ((TORCH, TORCH), (TORCH, OURS), (OURS, TORCH), (OURS, OURS)):
            o = make_opt(cfg)
            s = ALL_BUILDERS[name](dst, o)
            o.load_state_dict(checkpoints[id(src)][0])
            s.load_state_dict(roundtrip(checkpoints[id(src)][1], "pickle"))  # torch's load pops entries
            resumed.append((o, s))
        (o, s), others = resumed[0], resumed[1:]
        for i in range(40):
            for oo, ss in resumed:
                step(oo, ss)
            for k, (o2, s2) in enumerate(others):
                assert_same_groups(o, o2, REL, 0.0, f"{name} ({k}) step {i}")
                assert_same_scheduler(s, s2, REL, 0.0, f"{name} ({k}) step {i}")


def test_mixing_torch_and_torchsched_schedulers() -> None:
    for outer in (TORCH, OURS):
        for inner in (TORCH, OURS):
            sides = []
            for M in (TORCH, (outer, inner)):
                o = _opt(n=2)
                if M is TORCH:
                    s = TORCH.SequentialLR(o, [TORCH.LinearLR(o, 0.1, total_iters=7), TORCH.ExponentialLR(o, 0.9)], [7])
                else:
                    s = outer.SequentialLR(o, [inner.LinearLR(o, 0.1, total_iters=7), inner.ExponentialLR(o, 0.9)], [7])
                sides.append((o, s))
            for i in range(30):
                for o, s in sides:
                    o.step()
                    s.step()
                assert_same_groups(sides[0][0], sides[1][0], REL, 0.0, f"step {i}")
                assert_same_scheduler(sides[0][1], sides[1][1], REL, 0.0, f"step {i}")


def test_user_subclass_overriding_get_lr_runs_torchs_path() -> None:
    class Halving(ts.StepLR):
        def get_lr(self) -> list[float]:
            return [g["lr"] * 0.5 for g in self.optimizer.param_groups]

    class TorchHalving(tl.StepLR):
        def get_lr(self) -> list[float]:
            return [g["lr"] * 0.5 for g in self.optimizer.param_groups]

    o1, o2 = _opt(), _opt()
    a, b = TorchHalving(o1, 3), Halving(o2, 3)
    for _ in range(6):
        o1.step(), o2.step(), a.step(), b.step()
        assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"]
    assert b.get_last_lr() == a.get_last_lr()


def test_deepcopy_and_pickle_of_a_scheduler_state() -> None:
    import copy

    o = _opt(n=2)
    s = ts.CosineAnnealingLR(o, 30)
    for _ in range(4):
        o.step()
        s.step()
    o2, s2 = copy.deepcopy((o, s))
    for _ in range(4):
        for oo, ss in ((o, s), (o2, s2)):
            oo.step()
            ss.step()
    assert [g["lr"] for g in o.param_groups] == [g["lr"] for g in o2.param_groups]
    assert s.get_last_lr() == s2.get_last_lr()


def test_stepper_rejects_bad_programs() -> None:
    prog = S.constant(1.0)._program()
    import numpy as np

    with pytest.raises(ValueError, match="at least one param group"):
        _core.Stepper(prog, np.zeros(0, np.int32), np.zeros(0))
    with pytest.raises(ValueError, match="scale has 2 entries for 1 groups"):
        _core.Stepper(prog, np.zeros(1, np.int32), np.ones(2))
    with pytest.raises(ValueError, match="root 5 out of range"):
        _core.Stepper(prog, np.full(1, 5, np.int32), np.ones(1))
    st_ = _core.Stepper(prog, np.zeros(1, np.int32), np.ones(1))
    with pytest.raises(ValueError, match="views for 1 groups"):
        st_.bind_buffer((), 8, 1)
    with pytest.raises(TypeError, match="not callable"):
        st_.set_callables([3])
    assert st_.try_step([{"lr": 0.1}], 1) is False  # not bound: the caller takes the per-group path
    st_.bind_floats()
    groups = [{"lr": 0.1}]
    assert st_.try_step(groups, 1) is True and groups[0]["lr"] == 1.0



# ---- the core's shortcuts on Python objects must be invisible ----------------------------------------

def test_floats_read_from_the_groups_never_change_under_the_reader() -> None:
    """The core reuses a float LR object in place only when the group dict is its sole owner."""
    o = make_opt({"lrs": [0.1, 0.2], "lr_type": "float", "opt": "sgd"})
    s = ts.OneCycleLR(o, 0.5, total_steps=100)
    for _ in range(3):
        o.step()
        s.step()
    held_lr, held_m = o.param_groups[0]["lr"], o.param_groups[0]["momentum"]
    values = (float(held_lr), float(held_m))
    last = s.get_last_lr()
    snapshot = list(last)
    for _ in range(5):
        o.step()
        s.step()
    assert (held_lr, held_m) == values  # still the values they had when read
    assert last == snapshot
    assert o.param_groups[0]["lr"] != held_lr  # while the group moved on
    saved = o.state_dict()["param_groups"]  # shares the groups' float objects
    before = [(g["lr"], g["momentum"]) for g in saved]
    o.step()
    s.step()
    assert [(g["lr"], g["momentum"]) for g in saved] == before
    assert [g["lr"] for g in o.param_groups] != [lr for lr, _ in before]


def test_group_dict_changes_between_steps_are_seen() -> None:
    """Edits anywhere in a group dict, swapped or replaced dicts: every one is honoured (as torch does)."""
    sides = []
    for M in (TORCH, OURS):
        o = make_opt({"lrs": [0.1, 0.2, 0.3], "lr_type": "float", "opt": "sgd"})
        sides.append((o, M.CosineAnnealingLR(o, 40, 1e-3), M.ExponentialLR(o, 0.99)))
    for i in range(60):
        for o, a, b in sides:
            groups = o.param_groups
            if i == 5:
                groups[1]["weight_decay"] = 1e-4          # another key: the dict's version moves
            if i == 9:
                groups[0]["lr"] = 0.05                     # a new float object
            if i == 13:
                groups[0], groups[2] = groups[2], groups[0]  # same dicts, other positions
            if i == 17:
                o.param_groups[:] = [dict(g) for g in groups]  # new dicts, same contents
            if i == 21:
                groups = o.param_groups
                groups[2]["lr"] = groups[2]["lr"] * 3     # an edit right after a step
            o.step()
            a.step()
            b.step()
        assert_same_groups(sides[0][0], sides[1][0], REL, 0.0, f"step {i}")
        assert_same_scheduler(sides[0][1], sides[1][1], REL, 0.0, f"step {i}")
        assert_same_scheduler(sides[0][2], sides[1][2], REL, 0.0, f"step {i}")


@pytest.mark.parametrize("lr_type", ["float", "f64"])
def test_every_kind_of_group_dict_edit_is_seen(lr_type: str) -> None:
    """The step skips lookups only in group dicts nobody touched since its last store (dict versions on
    CPython 3.10/3.11, a dict watcher on 3.12+): every way of editing a dict must still be seen, including
    a replaced dict freed and another allocated in its place, and betas that OneCycleLR cycles."""
    sides = []
    for M in (TORCH, OURS):
        o = make_opt({"lrs": [0.1, 0.2, 0.3], "lr_type": lr_type, "opt": "adam"})
        sides.append((o, M.OneCycleLR(o, max_lr=[1.0, 2.0, 3.0], total_steps=80)))
    fresh = (lambda v: v) if lr_type == "float" else (lambda v: torch.tensor(v, dtype=torch.float64))
    for i in range(70):
        for o, _ in sides:
            g = o.param_groups
            if i == 4:
                g[0].update(lr=fresh(0.7))                       # update()
            if i == 8:
                g[1]["lr"] = g[1].pop("lr")                      # deleted and put back: the same object
            if i == 12:
                saved = dict(g[2])
                g[2].clear()
                g[2].update(saved)                               # cleared and refilled
            if i == 16:
                g[0].setdefault("lr", 5.0)                       # no change at all
            if i == 20:
                g[1]["betas"] = (0.5, g[1]["betas"][1])          # the momentum entry
            if i == 24:
                o.param_groups[2] = dict(g[2])                   # old dict freed, a new one in its place
                gc.collect()
                o.param_groups[2] = dict(o.param_groups[2])
            if i == 28:
                g[0]["lr"] = fresh(float(g[0]["lr"]) * 0.5)       # a plain store right after a step
        for o, s in sides:
            o.step()
            s.step()
        assert_same_groups(sides[0][0], sides[1][0], REL, 0.0, f"step {i}")
        assert_same_scheduler(sides[0][1], sides[1][1], REL, 0.0, f"step {i}")


def test_scheduler_step_tracks_unchanged_dicts_on_cpython() -> None:
    """The C-level step's dict tracking is compiled in on every GIL CPython this package supports: a build
    that lost it would pass every other test, only slower. `make test-nocuda` builds without it on purpose
    and says so with TORCHSCHED_EXPECT_PORTABLE=1."""
    import os
    import sys
    import sysconfig
    gil = not sysconfig.get_config_var("Py_GIL_DISABLED")
    portable = os.environ.get("TORCHSCHED_EXPECT_PORTABLE") == "1"
    assert _core.cpython_shortcuts() is (sys.implementation.name == "cpython" and gil and not portable)


def test_last_lr_survives_a_rebuild_before_it_is_read() -> None:
    """get_last_lr() is built lazily from the engine; recompiling or rebinding first must not lose it."""
    for lr_type in ("float", "f64"):
        sides = []
        for M in (TORCH, OURS):
            o = make_opt({"lrs": [0.1, 0.2], "lr_type": lr_type, "opt": "sgd"})
            s = M.StepLR(o, 2, 0.5)
            for _ in range(5):
                o.step()
                s.step()
            s.gamma = 0.25          # recompiles before the next step...
            s.get_lr()              # ...which get_lr() triggers now
            o.param_groups[0]["lr"] = o.param_groups[0]["lr"] * 1.0 if lr_type == "float" else torch.tensor(0.3, dtype=torch.float64)
            sides.append(s)
        assert [float(x) for x in sides[0].get_last_lr()] == [float(x) for x in sides[1].get_last_lr()]


@pytest.mark.parametrize("name", sorted(set(ALL_BUILDERS) - {"ReduceLROnPlateau"}))
def test_mixed_lr_types_take_the_per_group_path(name: str) -> None:
    """Floats next to tensors, or float32 next to float64 tensors: no shared buffer; torch's numbers."""
    def make_mixed() -> Any:
        params = [torch.nn.Parameter(torch.ones(1)) for _ in range(3)]
        lrs = [0.1, torch.tensor(0.2, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float32)]
        return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=0.1, momentum=0.9)

    sides = []
    for M in (TORCH, OURS):
        o = make_mixed()
        sides.append((o, ALL_BUILDERS[name](M, o)))
    for i in range(80):
        for o, s in sides:
            o.step()
            s.step()
        assert_same_groups(sides[0][0], sides[1][0], 1e-5, 1e-7, f"{name} step {i}")  # a float32 group
        assert_same_scheduler(sides[0][1], sides[1][1], 1e-5, 1e-7, f"{name} step {i}")
    lr = sides[1][0].param_groups
    assert type(lr[0]["lr"]) is float and lr[1]["lr"].dtype == torch.float64 and lr[2]["lr"].dtype == torch.float32


def test_a_shared_default_lr_tensor_becomes_one_tensor_per_group() -> None:
    """torch's lr= default tensor is one object shared by every group: each group gets its own view."""
    sides = []
    for M in (TORCH, OURS):
        params = [torch.nn.Parameter(torch.ones(1)) for _ in range(3)]
        o = torch.optim.SGD([{"params": [p]} for p in params], lr=torch.tensor(0.1, dtype=torch.float64))
        assert o.param_groups[0]["lr"] is o.param_groups[2]["lr"]
        sides.append((o, M.CosineAnnealingLR(o, 25)))
    from torchsched import _torch_compat

    ours = sides[1][0].param_groups
    if _torch_compat.CLONES_LRS:
        assert len({id(g["lr"]) for g in ours}) == 3 and ours[0]["lr"]._base is ours[2]["lr"]._base
    else:  # torch's lists alias the groups' tensors: the shared tensor stays, as in torch
        assert [g["lr"] is ours[0]["lr"] for g in ours] == [g["lr"] is sides[0][0].param_groups[0]["lr"]
                                                          for g in sides[0][0].param_groups]
    for i in range(60):
        for o, s in sides:
            o.step()
            s.step()
        assert_same_groups(sides[0][0], sides[1][0], REL, 0.0, f"step {i}")
        assert_same_scheduler(sides[0][1], sides[1][1], REL, 0.0, f"step {i}")


# ---- group keys torch reads at every step: OneCycleLR's phase LRs and momenta, SWALR's swa_lr ----------

def put(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    """Sets group[key]; a callable value makes each side's own object (a fresh float, a tensor)."""
    return lambda group: group.__setitem__(key, value() if callable(value) else value)


def run_group_edits(build: Builder, cfg: dict[str, Any], actions: dict[int, tuple[int, Any]], steps: int) -> None:
    """torch and ours side by side; actions[i] = (group, fn(group dict)) runs on both sides before step i.
    After every other action get_lr() (which must see the edit too, and leave get_last_lr() alone) is
    compared first; after the others, the step itself meets the edit."""
    sides = []
    for M in (TORCH, OURS):
        o = make_opt(cfg)
        sides.append((o, build(M, o)))
    with_get_lr = set(sorted(actions)[1::2])
    for i in range(steps):
        if i in actions:
            g, fn = actions[i]
            for o, s in sides:
                fn(o.param_groups[g])
        if i in with_get_lr:
            got = [s.get_lr() for _, s in sides]
            assert len(got[0]) == len(got[1])
            for k, (a, b) in enumerate(zip(*got)):
                close(a, b, REL, 0.0, f"step {i} get_lr()[{k}]")
            assert_same_scheduler(sides[0][1], sides[1][1], REL, 0.0, f"step {i} after get_lr()")
        for o, s in sides:
            o.step()
            s.step()
        assert_same_groups(sides[0][0], sides[1][0], REL, 0.0, f"step {i}")
        assert_same_scheduler(sides[0][1], sides[1][1], REL, 0.0, f"step {i}")


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("cycle_momentum", [True, False])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("lr_type", ["float", "f64"])
def test_onecyclelr_group_key_edits_take_effect_like_torch(lr_type: str, opt: str, cycle_momentum: bool,
                                                          three_phase: bool) -> None:
    """torch's OneCycleLR.get_lr reads initial_lr, max_lr, min_lr (and max_momentum, base_momentum when it
    cycles momentum or beta1) from the groups at every step: an edit changes the schedule from the next
    step on, in every phase."""
    actions: dict[int, tuple[int, Any]] = {
        3: (0, put("max_lr", 0.7)),
        9: (1, put("initial_lr", 0.01)),
        15: (2, put("min_lr", 1e-3)),
        21: (0, put("max_momentum", 0.97)),
        27: (1, put("base_momentum", 0.8)),
        33: (2, put("max_lr", 2)),                       # an int
        39: (0, put("initial_lr", 0.02)),
        45: (1, put("max_lr", lambda: float("0.5"))),    # the value it has, in a new float object
        51: (2, put("base_momentum", 0.85)),
        57: (0, put("min_lr", 0.0)),
        63: (1, put("max_momentum", 1)),
        69: (2, put("initial_lr", 0.05)),
    }
    if lr_type == "f64":  # a tensor value (torch computes in tensor arithmetic), edited in place, then a float
        actions[12] = (0, put("max_lr", lambda: torch.tensor(0.6, dtype=torch.float64)))
        actions[18] = (0, lambda group: group["max_lr"].fill_(0.4))
        actions[30] = (0, put("max_lr", 0.3))
    cfg = {"lrs": [0.1, 0.2, 0.3], "lr_type": lr_type, "opt": opt}
    run_group_edits(lambda M, o: M.OneCycleLR(o, [1.0, 0.5, 0.3], total_steps=80, three_phase=three_phase,
                                              cycle_momentum=cycle_momentum), cfg, actions, 79)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("lr_type", ["float", "f64"])
def test_swalr_swa_lr_edits_take_effect_like_torch(lr_type: str, strategy: str) -> None:
    """torch's SWALR.get_lr reads every group's swa_lr at every step, while annealing and after."""
    actions: dict[int, tuple[int, Any]] = {
        2: (0, put("swa_lr", 0.2)),
        6: (1, put("swa_lr", 0.001)),
        11: (2, put("swa_lr", 1)),                       # an int
        15: (0, put("swa_lr", lambda: float("0.2"))),    # the value it has, in a new float object
        19: (1, put("swa_lr", 0.07)),
    }
    if lr_type == "f64":
        actions[8] = (2, put("swa_lr", lambda: torch.tensor(0.03, dtype=torch.float64)))
        actions[10] = (2, lambda group: group["swa_lr"].fill_(0.09))
    cfg = {"lrs": [0.1, 0.2, 0.3], "lr_type": lr_type, "opt": "sgd"}
    run_group_edits(lambda M, o: M.SWALR(o, [0.05, 0.01, 0.5], 13, strategy), cfg, actions, 40)


@st.composite
def group_key_edits(draw: Any, keys: list[tuple[tuple[str, ...], list[Any]]]) -> list[tuple[int, int, str, Any]]:
    """Up to five (step, group, key, value) edits; keys pairs key names with the values they may take."""
    edits = []
    for _ in range(draw(st.integers(0, 5))):
        names, values = draw(st.sampled_from(keys))
        edits.append((draw(st.integers(0, STEPS - 1)), draw(st.integers(0, 3)), draw(st.sampled_from(names)),
                      draw(st.sampled_from(values))))
    return edits


@hyp
@given(cfg=configs(), data=st.data())
def test_onecyclelr_random_group_key_edits(cfg: dict[str, Any], data: Any) -> None:
    cfg["key_edits"] = data.draw(group_key_edits([(("initial_lr", "max_lr", "min_lr"), [0.5, 0.05, 1.0, 2, 1e-3, 0.0]),
                                                  (("max_momentum", "base_momentum"), [0.8, 0.95, 0.9, 0.5, 1])]))
    kw = {
        "max_lr": per_group(data.draw, cfg, st.sampled_from([0.1, 0.5, 1.0])),
        "anneal_strategy": data.draw(st.sampled_from(["cos", "linear"])),
        "cycle_momentum": data.draw(st.booleans()),
        "three_phase": data.draw(st.booleans()),
    }
    run_pair(cfg, lambda M, o: M.OneCycleLR(o, total_steps=STEPS + 1, **kw), companion=data.draw(companion_strategy()))


@hyp
@given(cfg=configs(), data=st.data())
def test_swalr_random_group_key_edits(cfg: dict[str, Any], data: Any) -> None:
    cfg["key_edits"] = data.draw(group_key_edits([(("swa_lr",), [0.5, 0.05, 1, 1e-3, 0.0])]))
    swa_lr = per_group(data.draw, cfg, st.sampled_from([0.05, 0.01, 0.5]))
    epochs = data.draw(st.integers(0, 40))
    strategy = data.draw(st.sampled_from(["cos", "linear"]))
    run_pair(cfg, lambda M, o: M.SWALR(o, swa_lr, epochs, strategy), companion=data.draw(companion_strategy()))


@pytest.mark.parametrize("lr_type", ["float", "f64"])
@pytest.mark.parametrize("name,key", [("OneCycleLR", "max_lr"), ("OneCycleLR", "base_momentum"), ("SWALR", "swa_lr")])
def test_a_group_key_edit_costs_one_python_step(name: str, key: str, lr_type: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The step after an edit recompiles in Python; the steps after it are the C-level step again."""
    from torchsched import _torch_compat

    if lr_type != "float" and not _torch_compat.CLONES_LRS:
        pytest.skip("this torch keeps the groups' own LR tensors (it does not clone them), so the twin fills them "
                    "in place through the per-group path, as torch does")
    o = make_opt({"lrs": [0.1, 0.2], "lr_type": lr_type, "opt": "sgd"})
    s = ALL_BUILDERS[name](OURS, o)
    o.step()
    s.step()
    calls = python_steps(s, monkeypatch)
    for i in range(40):
        if i == 10:
            o.param_groups[1][key] = 0.25
        if i == 20:
            o.param_groups[0]["weight_decay"] = 1e-4  # another key: looked at, nothing to recompile
        o.step()
        s.step()
    assert calls == [None]


def test_stepper_watched_group_keys() -> None:
    """The Stepper is not ready when a watched key differs from the value it was compiled from, is missing,
    or holds something only Python can read (a tensor); watched_same() compares any number."""
    import numpy as np

    prog = S.constant(1.0)._program()
    st_ = _core.Stepper(prog, np.zeros(1, np.int32), np.ones(1))
    with pytest.raises(ValueError, match="one value per group and key"):
        st_.watch(("max_lr",), np.zeros(2))
    st_.watch(("max_lr", "min_lr"), [0.5, 0.0])
    st_.bind_floats()
    groups: list[dict[str, Any]] = [{"lr": 0.1, "max_lr": 0.5, "min_lr": 0}]
    assert st_.watched_same(groups) and st_.try_step(groups, 1)
    groups[0]["max_lr"] = 0.25
    assert not st_.watched_same(groups) and not st_.try_step(groups, 2)
    groups[0]["max_lr"] = torch.tensor(0.5, dtype=torch.float64)
    assert st_.watched_same(groups) and not st_.try_step(groups, 2)
    del groups[0]["max_lr"]
    assert not st_.watched_same(groups) and not st_.try_step(groups, 2)
    groups[0]["max_lr"] = 0.5
    assert st_.watched_same(groups) and st_.try_step(groups, 2)
    assert not st_.watched_same([{"lr": 0.1}, {"lr": 0.1}])  # another number of groups


@pytest.mark.cuda
def test_group_key_edits_are_seen_on_the_cuda_engine() -> None:
    """OneCycleLR on CUDA LR tensors: an edited max_lr / min_lr rebuilds the device engine, torch's numbers."""
    sides = []
    for M, device in ((TORCH, "cpu"), (OURS, "cuda")):
        params = [torch.nn.Parameter(torch.ones(2, device=device)) for _ in range(2)]
        lrs: list[Any] = [0.1, 0.2] if M is TORCH else [torch.tensor(v, dtype=torch.float64, device=device)
                                                        for v in (0.1, 0.2)]
        o = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=0.1)
        sides.append((o, M.OneCycleLR(o, [0.3, 0.5], total_steps=90, cycle_momentum=False)))
    assert type(sides[1][1]._stepper) is ts._CudaStepper
    for i in range(85):
        for o, _ in sides:
            if i == 10:
                o.param_groups[0]["max_lr"] = 0.9
            if i == 50:
                o.param_groups[1]["min_lr"] = 0.01
        for _, s in sides:
            s.step()
        for a, b in zip(sides[0][1].get_last_lr(), sides[1][1].get_last_lr()):
            close(a, b, REL, 0.0, f"step {i} get_last_lr")
        for gt, gs in zip(sides[0][0].param_groups, sides[1][0].param_groups):
            close(gt["lr"], gs["lr"], REL, 0.0, f"step {i} lr")
    assert type(sides[1][1]._stepper) is ts._CudaStepper
