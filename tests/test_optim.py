"""torchsched.wrap() and torchsched.param_groups against torch optimizers driven by torch's LambdaLR."""

from __future__ import annotations

import copy
import io
import math
import pickle
from typing import Any, Callable, Sequence

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import torchsched
from torchsched import optim as tsoptim
from torchsched import schedules as S
from torchsched.optim import ScheduledOptimizer, wrap
from torchsched.param_groups import layer_depths

STEPS = 30
BASES = [0.1, 0.05, 0.02]
MULTS = [1.0, 0.5, 0.25]


def _sched() -> S.Schedule:
    return S.warmup(5, init=0.1) >> S.cosine(20, final=0.05)


def _params(groups: int = 3, seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(5, 3, generator=gen)) for _ in range(groups)]


def _loss(params: Sequence[torch.Tensor], t: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 + t)
    x = torch.randn(7, 5, generator=gen)
    return sum(((x @ p).tanh() ** 2).mean() * (i + 1) for i, p in enumerate(params))  # type: ignore[return-value]


def _train(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], steps: int, after: Callable[[], None] | None = None,
           start: int = 0) -> list[list[float]]:
    """Runs ``steps`` steps; returns each group's LR after every step (as floats)."""
    out = []
    for t in range(start, start + steps):
        opt.zero_grad()
        _loss(params, t).backward()
        opt.step()
        if after is not None:
            after()
        out.append([float(g["lr"]) for g in opt.param_groups])
    return out


def _expected(sched: S.Schedule, bases: list[float], mults: list[float], steps: int, start: int = 1) -> np.ndarray:
    vals = sched.values(range(start, start + steps))
    return np.stack([vals * (b * m) for b, m in zip(bases, mults)], axis=1)


def _reference(cls: type, kwargs: dict[str, Any], tensor_lr: bool, sched: S.Schedule, steps: int,
               groups: int = 3) -> tuple[list[torch.nn.Parameter], list[list[float]]]:
    """The same optimizer driven by torch's LambdaLR: group LR = base * multiplier, lambda = the schedule."""
    params = _params(groups)
    lrs = [b * m for b, m in zip(BASES[:groups], MULTS[:groups])]
    opt = cls([{"params": [p], "lr": torch.tensor(lr) if tensor_lr else lr} for p, lr in zip(params, lrs)], **kwargs)
    lam = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: sched(t))
    return params, _train(opt, params, steps, after=lam.step)


def _wrapped(cls: type, kwargs: dict[str, Any], sched: S.Schedule, groups: int = 3,
             **options: Any) -> tuple[ScheduledOptimizer, list[torch.nn.Parameter]]:
    params = _params(groups)
    opt = cls([{"params": [p], "lr": b} for p, b in zip(params, BASES[:groups])], **kwargs)
    return wrap(opt, sched, multipliers=MULTS[:groups], **options), params


FLOAT_CASES: list[tuple[type, dict[str, Any]]] = [
    (torch.optim.SGD, {"momentum": 0.9, "foreach": False}),
    (torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "foreach": True}),
    (torch.optim.Adam, {"foreach": True}),
    (torch.optim.Adam, {"foreach": False, "amsgrad": True}),
    (torch.optim.AdamW, {"weight_decay": 0.1, "foreach": True}),
    (torch.optim.Adagrad, {"foreach": True}),
    (torch.optim.RMSprop, {"momentum": 0.5}),
]
TENSOR_CASES: list[tuple[type, dict[str, Any]]] = [
    (torch.optim.Adam, {"fused": True}),
    (torch.optim.AdamW, {"fused": True, "weight_decay": 0.1}),
    (torch.optim.SGD, {"fused": True, "momentum": 0.9}),
    (torch.optim.Adagrad, {"fused": True}),
]


def _ids(cases: list[tuple[type, dict[str, Any]]]) -> list[str]:
    return [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, kw in cases]


# ---- the LR sequence and the parameters ----------------------------------------------------------

@pytest.mark.parametrize(("cls", "kwargs"), FLOAT_CASES, ids=_ids(FLOAT_CASES))
def test_float_path_matches_torch_lambdalr(cls: type, kwargs: dict[str, Any]) -> None:
    sched = _sched()
    w, params = _wrapped(cls, kwargs, sched)
    assert [g["lr"] for g in w.param_groups] == pytest.approx(list(_expected(sched, BASES, MULTS, 1, start=0)[0]),
                                                              rel=1e-12)
    lrs = _train(w, params, STEPS)
    assert all(type(g["lr"]) is float for g in w.param_groups)
    np.testing.assert_allclose(lrs, _expected(sched, BASES, MULTS, STEPS), rtol=1e-12, atol=0)
    ref_params, ref_lrs = _reference(cls, kwargs, False, sched, STEPS)
    np.testing.assert_allclose(lrs, ref_lrs, rtol=1e-12, atol=0)
    for p, q in zip(params, ref_params):  # the same float64 LRs: the same parameters, bit for bit
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert w.last_step == STEPS
    last = w.get_last_lr()
    assert all(type(x) is float for x in last)
    assert last == pytest.approx(lrs[-1], rel=1e-12)


@pytest.mark.parametrize(("cls", "kwargs"), TENSOR_CASES, ids=_ids(TENSOR_CASES))
def test_tensor_path_matches_torch_lambdalr(cls: type, kwargs: dict[str, Any]) -> None:
    sched = _sched()
    w, params = _wrapped(cls, kwargs, sched)
    buffer = w.lr_tensor
    assert buffer is not None and buffer.dtype == torch.float32
    lrs = _train(w, params, STEPS)
    for g, group in enumerate(w.param_groups):
        lr = group["lr"]
        assert isinstance(lr, torch.Tensor) and lr.dim() == 0 and lr.dtype == torch.float32
        assert lr.data_ptr() == buffer.data_ptr() + g * buffer.element_size()  # a view into the one buffer
    # Stored in float32: exactly the float32 rounding of the float64 closed form.
    expected = _expected(sched, BASES, MULTS, STEPS)
    np.testing.assert_array_equal(np.asarray(lrs, dtype=np.float32), expected.astype(np.float32))
    np.testing.assert_allclose(w.get_last_lr(), expected[-1], rtol=1e-12, atol=0)  # the mirror keeps float64
    ref_params, ref_lrs = _reference(cls, kwargs, True, sched, STEPS)
    np.testing.assert_allclose(lrs, ref_lrs, rtol=2e-7, atol=0)  # torch computes tensor LRs in float32
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_tensor_path_float64_keeps_double() -> None:
    sched = _sched()
    w, params = _wrapped(torch.optim.Adam, {"fused": True}, sched, lr_dtype=torch.float64)
    lrs = _train(w, params, 10)
    assert w.param_groups[0]["lr"].dtype == torch.float64
    np.testing.assert_allclose(lrs, _expected(sched, BASES, MULTS, 10), rtol=1e-12, atol=0)


def test_wrong_schedule_would_be_caught() -> None:
    """The oracle comparison above can fail: a schedule one step late gives other parameters."""
    sched = _sched()
    late = S.warmup(6, init=0.1) >> S.cosine(20, final=0.05)
    w, params = _wrapped(torch.optim.SGD, {"momentum": 0.9}, late)
    _train(w, params, STEPS)
    ref_params, _ = _reference(torch.optim.SGD, {"momentum": 0.9}, False, sched, STEPS)
    assert not torch.allclose(params[0], ref_params[0], rtol=1e-6, atol=1e-7)


def test_groups_never_share_a_tensor_lr() -> None:
    """torch's default lr tensor is shared by every group without its own lr: wrap gives each its own."""
    params = _params(3)
    default = torch.tensor(0.01)
    opt = torch.optim.Adam([{"params": [p]} for p in params], lr=default, fused=True)
    assert all(g["lr"] is default for g in opt.param_groups)  # the torch behaviour this guards against
    w = wrap(opt, S.linear(10, init=1.0, final=0.0), multipliers=[1.0, 2.0, 3.0])
    lrs = [g["lr"] for g in w.param_groups]
    assert len({id(t) for t in lrs}) == 3 and len({t.data_ptr() for t in lrs}) == 3
    assert all(t is not default for t in lrs)
    _train(w, params, 3)
    assert [float(t) for t in lrs] == pytest.approx([0.007, 0.014, 0.021], rel=1e-6)
    assert float(default) == pytest.approx(0.01)  # the user's tensor is never written


def test_capturable_groups_get_tensor_lrs_and_a_failed_step_does_not_advance() -> None:
    params = _params(2)
    opt = torch.optim.Adam([{"params": [p], "lr": 0.1} for p in params], capturable=True)
    w = wrap(opt, _sched())
    assert all(isinstance(g["lr"], torch.Tensor) and g["lr"].dim() == 0 for g in w.param_groups)
    before = w.get_last_lr()
    _loss(params, 0).backward()
    with pytest.raises(AssertionError, match="capturable=True"):  # torch: capturable needs device params
        w.step()
    assert w.last_step == 0 and w.get_last_lr() == before


def test_mixed_tensor_and_float_groups_advance_together() -> None:
    params = _params(3)
    opt = torch.optim.Adam([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.05, "fused": False},
                            {"params": [params[2]], "lr": 0.02}], fused=True)
    sched = _sched()
    w = wrap(opt, sched, multipliers=MULTS)
    kinds = [isinstance(g["lr"], torch.Tensor) for g in w.param_groups]
    assert kinds == [True, False, True]
    lrs = _train(w, params, 12)
    np.testing.assert_allclose(lrs, _expected(sched, BASES, MULTS, 12), rtol=1e-7, atol=0)
    assert w.param_groups[1]["lr"] == pytest.approx(_expected(sched, BASES, MULTS, 12)[-1][1], rel=1e-12)


_SCHEDULES = [
    lambda: S.warmup(4) >> S.cosine(20, final=0.1),
    lambda: S.step(5, 0.5),
    lambda: S.one_cycle(30, max=1.0),
    lambda: S.warmup_stable_decay(3, 5, 10, final=0.2),
    lambda: S.cosine_restarts(7, period_mult=2.0, final=0.05),
]


@given(groups=st.integers(1, 4), fused=st.booleans(), adam=st.booleans(),
       which=st.lists(st.integers(0, len(_SCHEDULES) - 1), min_size=4, max_size=4),
       mults=st.lists(st.floats(0.0, 4.0), min_size=4, max_size=4), save_at=st.integers(0, 25))
def test_random_configurations_match_lambdalr_across_a_checkpoint(groups: int, fused: bool, adam: bool,
                                                                 which: list[int], mults: list[float],
                                                                 save_at: int) -> None:
    """Per-group schedules and multipliers, float or tensor LRs, a state_dict round trip mid-run: the LR
    sequence is each group's LambdaLR sequence."""
    steps = 30
    scheds = [_SCHEDULES[k]() for k in which[:groups]]
    cls: type = torch.optim.Adam if adam else torch.optim.SGD
    kwargs: dict[str, Any] = {"fused": True} if fused else {}

    def make() -> tuple[ScheduledOptimizer, list[torch.nn.Parameter]]:
        params = _params(groups)
        opt = cls([{"params": [p], "lr": BASES[g % 3]} for g, p in enumerate(params)], **kwargs)
        return wrap(opt, schedules=scheds, multipliers=mults[:groups]), params

    w, params = make()
    lrs = _train(w, params, save_at)
    sd = _roundtrip(w.state_dict())
    w2, _ = make()
    w2.load_state_dict(sd)
    lrs += _train(w2, params, steps - save_at, start=save_at)
    ref_params = _params(groups)
    ref = cls([{"params": [p], "lr": BASES[g % 3] * mults[g]} for g, p in enumerate(ref_params)], **kwargs)
    factors: list[Callable[[int], float]] = [s.__call__ for s in scheds]
    lam = torch.optim.lr_scheduler.LambdaLR(ref, factors)
    ref_lrs = _train(ref, ref_params, steps, after=lam.step)
    np.testing.assert_allclose(lrs, ref_lrs, rtol=1e-7 if fused else 1e-12, atol=1e-12)
    if fused:
        assert len({g["lr"].data_ptr() for g in w2.param_groups}) == groups


# ---- the optimizer interface -----------------------------------------------------------------------

def test_behaves_as_the_wrapped_optimizer() -> None:
    params = _params(2)
    opt = torch.optim.SGD([{"params": [p], "lr": 0.1} for p in params], momentum=0.9)
    w = wrap(opt, _sched())
    assert isinstance(w, torch.optim.Optimizer) and isinstance(w, ScheduledOptimizer)
    assert w.optimizer is opt and w.param_groups is opt.param_groups
    assert w.state is opt.state and w.defaults is opt.defaults
    _loss(params, 0).backward()
    w.step()
    assert len(w.state) == 2 and "momentum_buffer" in w.state[params[0]]
    w.zero_grad()
    assert all(p.grad is None for p in params)
    w.some_flag = 3  # unknown attributes land on the wrapped optimizer
    assert getattr(opt, "some_flag") == 3 and w.some_flag == 3
    del w.some_flag
    assert not hasattr(opt, "some_flag")
    calls = []
    handle = w.register_step_post_hook(lambda o, a, k: calls.append(o))
    _loss(params, 1).backward()
    w.step()
    assert calls == [opt]
    handle.remove()
    with pytest.raises(TypeError, match="state_dict"):
        pickle.dumps(w)
    with pytest.raises(TypeError, match="state_dict"):
        copy.deepcopy(w)


def test_closure_is_forwarded_and_a_raising_step_does_not_advance() -> None:
    params = _params(1)
    opt = torch.optim.LBFGS(params, lr=0.5, max_iter=4)
    w = wrap(opt, S.exponential(0.5))
    calls = []

    def closure() -> torch.Tensor:
        calls.append(1)
        w.zero_grad()
        loss = _loss(params, 0)
        loss.backward()
        return loss

    loss = w.step(closure)
    assert isinstance(loss, torch.Tensor) and len(calls) > 1  # LBFGS evaluates the closure several times
    assert w.last_step == 1 and w.param_groups[0]["lr"] == pytest.approx(0.25, rel=1e-12)

    def failing() -> torch.Tensor:
        raise ArithmeticError("boom")

    with pytest.raises(ArithmeticError, match="boom"):
        w.step(failing)
    assert w.last_step == 1 and w.param_groups[0]["lr"] == pytest.approx(0.25, rel=1e-12)
    w.step(closure=closure)
    assert w.last_step == 2 and w.get_last_lr() == [pytest.approx(0.125, rel=1e-12)]


@pytest.mark.parametrize("fused", [False, True], ids=["float", "tensor"])
def test_add_param_group_joins_the_engine(fused: bool) -> None:
    sched = _sched()
    params = _params(3)
    opt = torch.optim.Adam([{"params": [params[0]], "lr": 0.1, "name": "body"}], fused=fused)
    w = wrap(opt, sched, multipliers=lambda i, g: 4.0 if g.get("name") == "head" else 1.0)
    _train(w, params[:1], 4)
    w.add_param_group({"params": [params[1]], "lr": 0.05, "name": "head"})  # the callable gives its multiplier
    assert w.last_step == 4
    assert float(w.param_groups[1]["lr"]) == pytest.approx(0.05 * 4.0 * sched(4), rel=1e-6)
    other = S.constant(0.5)
    w.add_param_group({"params": [params[2]], "lr": 0.02}, schedule=other, multiplier=2.0)
    assert w.multipliers == [1.0, 4.0, 2.0] and w.schedules[2] is other
    lrs = _train(w, params, 5, start=4)
    expected = np.stack([0.1 * sched.values(range(5, 10)), 0.2 * sched.values(range(5, 10)),
                         np.full(5, 0.02 * 2.0 * 0.5)], axis=1)
    np.testing.assert_allclose(lrs, expected, rtol=1e-7 if fused else 1e-12)
    assert all(len(w.state[p]) > 0 for p in params)  # every group was optimized
    if fused:
        assert len({g["lr"].data_ptr() for g in w.param_groups}) == 3
        assert all(g["lr"].data_ptr() != 0 for g in w.param_groups)
    # A group that fails validation is not left behind in the optimizer.
    extra = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=r"param group 3 .*finite"):
        w.add_param_group({"params": [extra], "lr": 0.1}, multiplier=math.inf)
    assert len(w.param_groups) == 3 and len(w.optimizer.param_groups) == 3


def test_groups_added_behind_the_wrapper_are_adopted() -> None:
    params = _params(2)
    opt = torch.optim.SGD([{"params": [params[0]], "lr": 0.1}])
    sched = S.linear(10, init=1.0, final=0.0)
    w = wrap(opt, sched)
    _train(w, params[:1], 2)
    opt.add_param_group({"params": [params[1]], "lr": 0.3})
    _train(w, params, 1, start=2)
    assert w.get_last_lr() == pytest.approx([0.1 * 0.7, 0.3 * 0.7], rel=1e-12)


def _roundtrip(sd: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize(("cls", "kwargs"), [(torch.optim.AdamW, {}), (torch.optim.AdamW, {"fused": True}),
                                             (torch.optim.SGD, {"momentum": 0.9, "fused": True})],
                         ids=["adamw-float", "adamw-fused", "sgd-fused"])
def test_state_dict_round_trip_resumes_exactly(cls: type, kwargs: dict[str, Any]) -> None:
    sched = _sched()
    # Uninterrupted run.
    w, params = _wrapped(cls, kwargs, sched)
    full = _train(w, params, 20)
    # Interrupted at step 8, saved, reloaded into a fresh optimizer and wrapper.
    w1, params1 = _wrapped(cls, kwargs, sched)
    first = _train(w1, params1, 8)
    sd = _roundtrip(w1.state_dict())
    assert sd["torchsched"]["step"] == 8
    params2 = [torch.nn.Parameter(p.detach().clone()) for p in params1]
    opt2 = cls([{"params": [p], "lr": 1.0} for p in params2], **kwargs)  # other base LRs: restored from the dict
    w2 = wrap(opt2, sched)
    w2.load_state_dict(sd)
    assert w2.last_step == 8 and w2.multipliers == MULTS and w2.base_lrs == BASES
    np.testing.assert_allclose([float(g["lr"]) for g in w2.param_groups], first[-1], rtol=1e-12)
    if kwargs.get("fused"):
        assert all(g["lr"].data_ptr() != w1.param_groups[i]["lr"].data_ptr() for i, g in enumerate(w2.param_groups))
        assert len({g["lr"].data_ptr() for g in w2.param_groups}) == 3
    rest = _train(w2, params2, 12, start=8)
    np.testing.assert_allclose(first + rest, full, rtol=1e-12)
    for p, q in zip(params2, params):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_load_plain_torch_state_dict_keeps_the_step_and_rewrites_lrs() -> None:
    sched = _sched()
    w, params = _wrapped(torch.optim.Adam, {"fused": True}, sched)
    _train(w, params, 6)
    plain = _roundtrip(w.optimizer.state_dict())
    assert "torchsched" not in plain
    w.load_state_dict(plain)
    assert w.last_step == 6
    np.testing.assert_allclose([float(g["lr"]) for g in w.param_groups], _expected(sched, BASES, MULTS, 1, start=6)[0],
                               rtol=1e-7)
    buffer = w.lr_tensor
    assert buffer is not None and all(g["lr"].data_ptr() == buffer.data_ptr() + 4 * i
                                      for i, g in enumerate(w.param_groups))
    # The wrapped optimizer's own load_state_dict replaces the group dicts: the next step puts views back.
    w.optimizer.load_state_dict(plain)
    assert w.param_groups[0]["lr"].data_ptr() != w.lr_tensor.data_ptr()  # type: ignore[union-attr]
    _train(w, params, 1, start=6)
    assert w.param_groups[0]["lr"].data_ptr() == w.lr_tensor.data_ptr()  # type: ignore[union-attr]
    assert float(w.param_groups[2]["lr"]) == pytest.approx(0.02 * 0.25 * sched(7), rel=1e-6)


def test_load_state_dict_warns_on_other_schedules_and_rejects_bad_entries() -> None:
    w, params = _wrapped(torch.optim.SGD, {}, _sched())
    _train(w, params, 3)
    sd = w.state_dict()
    other, _ = _wrapped(torch.optim.SGD, {}, S.constant(1.0))
    with pytest.warns(UserWarning, match="different schedules"):
        other.load_state_dict(sd)
    assert other.last_step == 3
    bad = dict(sd, torchsched=dict(sd["torchsched"], step=-1))
    with pytest.raises(ValueError, match=r"\['step'\] must be an integer >= 0, got -1"):
        w.load_state_dict(bad)
    bad = dict(sd, torchsched=dict(sd["torchsched"], multipliers=[1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\['multipliers'\] has 2 entries for 3 param groups"):
        w.load_state_dict(bad)
    bad = dict(sd, torchsched=dict(sd["torchsched"], base_lrs=[0.1, math.nan, 0.1]))
    with pytest.raises(ValueError, match=r"\['base_lrs'\]\[1\] must be finite"):
        w.load_state_dict(bad)
    assert w.last_step == 3  # nothing was loaded


# ---- GradScaler ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fused", [False, True], ids=["scaler-skips-step", "optimizer-reads-found_inf"])
def test_grad_scaler_skipped_steps_hold_the_schedule(fused: bool) -> None:
    sched = _sched()
    w, params = _wrapped(torch.optim.Adam, {"fused": fused}, sched)
    assert w._step_supports_amp_scaling is fused
    scaler = torch.amp.GradScaler("cpu")
    taken = 0
    for t in range(8):
        w.zero_grad()
        scaler.scale(_loss(params, t)).backward()
        skip = t in (2, 3, 6)
        if skip:
            params[1].grad[0, 0] = math.inf  # type: ignore[index]
        before = [p.detach().clone() for p in params]
        lr_before = w.get_last_lr()
        scaler.step(w)
        scaler.update()
        assert not hasattr(w.optimizer, "found_inf") and not hasattr(w.optimizer, "grad_scale")
        if skip:
            assert w.last_step == taken and w.get_last_lr() == lr_before
            assert all(torch.equal(p, b) for p, b in zip(params, before))
        else:
            taken += 1
            assert w.last_step == taken
            assert not torch.equal(params[0], before[0])
        np.testing.assert_allclose(w.get_last_lr(), _expected(sched, BASES, MULTS, 1, start=taken)[0], rtol=1e-12)
    assert taken == 5 and scaler.get_scale() < 65536.0


def test_grad_scaler_attributes_reach_the_wrapped_optimizer() -> None:
    w, _ = _wrapped(torch.optim.Adam, {"fused": True}, _sched())
    found = torch.zeros(())
    w.found_inf = found
    w.grad_scale = torch.ones(())
    assert w.optimizer.found_inf is found and w.found_inf is found  # type: ignore[attr-defined]
    del w.found_inf, w.grad_scale
    assert not hasattr(w.optimizer, "found_inf") and not hasattr(w.optimizer, "grad_scale")


# ---- options ---------------------------------------------------------------------------------------

def test_multipliers_as_dict_list_callable_and_group_key() -> None:
    sched = S.constant(1.0)

    def make() -> torch.optim.Optimizer:
        params = _params(3)
        return torch.optim.SGD([{"params": [params[0]], "lr": 0.1, "name": "a"},
                                {"params": [params[1]], "lr": 0.1, "name": "b", "lr_multiplier": 0.3},
                                {"params": [params[2]], "lr": 0.1}])

    assert wrap(make(), sched).get_last_lr() == pytest.approx([0.1, 0.03, 0.1])
    assert wrap(make(), sched, multipliers={"a": 2.0, 2: 0.5}).get_last_lr() == pytest.approx([0.2, 0.03, 0.05])
    assert wrap(make(), sched, multipliers=[1.0, 2.0, 3.0]).get_last_lr() == pytest.approx([0.1, 0.2, 0.3])
    assert wrap(make(), sched, multipliers=lambda i, g: 10.0 ** -i).get_last_lr() == pytest.approx([0.1, 0.01, 0.001])
    w = wrap(make(), sched)
    w.set_multiplier(2, 0.0)
    assert w.get_last_lr() == pytest.approx([0.1, 0.03, 0.0]) and w.param_groups[2]["lr"] == 0.0


def test_per_group_schedules() -> None:
    params = _params(3)
    opt = torch.optim.SGD([{"params": [p], "lr": 1.0, "name": n} for p, n in zip(params, "abc")])
    main, lin, exp = S.constant(1.0), S.linear(4), S.exponential(0.5)
    w = wrap(opt, main, schedules={"b": lin, 2: exp})
    assert w.schedules == [main, lin, exp]
    lrs = _train(w, params, 3)
    np.testing.assert_allclose(lrs, [[1.0, 0.75, 0.5], [1.0, 0.5, 0.25], [1.0, 0.25, 0.125]], rtol=1e-12)
    w2 = wrap(torch.optim.SGD(_params(2), lr=1.0), schedules=[lin])
    assert w2.get_last_lr() == [1.0]
    w3 = wrap(torch.optim.SGD([{"params": [p]} for p in _params(2)], lr=1.0),
              schedules=lambda i, g: S.constant(i + 1.0))
    assert w3.get_last_lr() == [1.0, 2.0]


def _two_groups() -> torch.optim.Optimizer:
    params = _params(2)
    return torch.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.1, "name": "head"}])


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"multipliers": {5: 1.0}}, ValueError, r"multipliers has key 5, but the optimizer has param groups 0\.\.1"),
    ({"multipliers": {"nope": 1.0}}, ValueError, r"multipliers has key 'nope', which names no param group.*'head'"),
    ({"multipliers": {1: 1.0, "head": 2.0}}, ValueError, r"gives param group 1 \('head'\) twice"),
    ({"multipliers": {True: 1.0}}, TypeError, r"multipliers key True must be a group index"),
    ({"multipliers": {1.5: 1.0}}, TypeError, r"multipliers key 1.5 must be a group index"),
    ({"multipliers": [1.0, 2.0, 3.0]}, ValueError, r"multipliers has 3 entries for 2 param groups"),
    ({"multipliers": [1.0]}, ValueError, r"multipliers has 1 entries for 2 param groups"),
    ({"multipliers": [1.0, math.inf]}, ValueError, r"multiplier for param group 1 \('head'\) must be finite.*inf"),
    ({"multipliers": [math.nan, 1.0]}, ValueError, r"multiplier for param group 0 must be finite.*nan"),
    ({"multipliers": {"head": -1.0}}, ValueError, r"param group 1 \('head'\) must be >= 0, got -1.0"),
    ({"multipliers": {"head": "2"}}, TypeError, r"param group 1 \('head'\) must be a real number, got '2'"),
    ({"multipliers": lambda i, g: math.inf if i else 1.0}, ValueError, r"param group 1 \('head'\).*got inf"),
    ({"multipliers": 2.0}, TypeError, r"multipliers must be a dict, a list or a callable"),
    ({"schedules": {"head": 3}}, TypeError, r"schedule for param group 1 \('head'\) must be a torchsched schedule"),
    ({"schedules": {"tail": S.constant()}}, ValueError, r"schedules has key 'tail', which names no param group"),
    ({"schedules": S.constant()}, TypeError, r"schedules must be a dict, a list or a callable"),
    ({"lr_dtype": torch.float16}, TypeError, r"lr_dtype must be torch.float32 or torch.float64"),
])
def test_bad_options_name_the_group_and_value(kwargs: dict[str, Any], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        wrap(_two_groups(), S.constant(), **kwargs)


class _FakeCudaParam(torch.Tensor):
    """A CPU leaf tensor that reports a CUDA device: only ``.device`` is faked, so checks made before any
    CUDA work can be tested without a GPU."""

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return torch.device("cuda", 0)


def test_fused_cuda_groups_refuse_a_float64_lr_before_any_step() -> None:
    # torch's fused CUDA kernels read the LR as float32: a float64 buffer would fail inside torch's step().
    p = torch.zeros(2).as_subclass(_FakeCudaParam).requires_grad_()
    opt = torch.optim.AdamW([p], lr=1e-3, fused=True)
    with pytest.raises(TypeError, match=r"param group 0 of AdamW is fused: .* read the LR tensor as float32, got "
                                        r"torch.float64; use lr_dtype=torch.float32 in wrap\(\)"):
        wrap(opt, S.constant(), lr_dtype=torch.float64)


def test_bad_optimizers_schedules_and_lrs() -> None:
    with pytest.raises(TypeError, match=r"optimizer must be a torch.optim.Optimizer, got object"):
        wrap(object(), S.constant())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"optimizer must be a torch.optim.Optimizer, got list"):
        wrap([torch.zeros(1)], S.constant())  # type: ignore[arg-type]
    w = wrap(_two_groups(), S.constant())
    with pytest.raises(TypeError, match=r"already wrapped"):
        wrap(w, S.constant())
    with pytest.raises(TypeError, match=r"schedule must be a torchsched schedule.*lambda"):
        wrap(_two_groups(), lambda t: 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"param group 0 has no schedule"):
        wrap(_two_groups(), schedules={"head": S.constant()})
    opt = _two_groups()
    opt.param_groups[1]["lr"] = math.nan
    with pytest.raises(ValueError, match=r"the lr of param group 1 \('head'\) must be finite, got nan"):
        wrap(opt, S.constant())
    opt.param_groups[1]["lr"] = 0.1
    opt.param_groups[0]["lr_multiplier"] = math.inf
    with pytest.raises(ValueError, match=r"param group 0\['lr_multiplier'\] must be finite, got inf"):
        wrap(opt, S.constant())
    with pytest.raises(ValueError, match=r"group must be a param group index in 0\.\.1, got 2"):
        w.set_multiplier(2, 1.0)
    with pytest.raises(ValueError, match=r"multiplier for param group 1 \('head'\) must be finite"):
        w.set_multiplier(1, -math.inf)


def test_make_binding_is_the_one_construction_point(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = tsoptim._make_binding

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["devices"])
        return real(*args, **kwargs)

    monkeypatch.setattr(tsoptim, "_make_binding", spy)
    w, params = _wrapped(torch.optim.Adam, {"fused": True}, _sched(), groups=2)
    w.add_param_group({"params": [torch.nn.Parameter(torch.zeros(3))], "lr": 0.1})
    w.load_state_dict(w.state_dict())
    assert len(calls) == 3 and all(d.type == "cpu" for d in calls[-1])


# ---- param_groups helper ---------------------------------------------------------------------------

class _Block(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)
        self.fc = torch.nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc(self.norm(x))


class _Tiny(torch.nn.Module):
    """ViT-shaped: a token on the root, an embedding, a ModuleList of blocks, a final norm and a head."""

    def __init__(self, depth: int = 3, dim: int = 4) -> None:
        super().__init__()
        self.token = torch.nn.Parameter(torch.zeros(dim))
        self.embed = torch.nn.Linear(2, dim)
        self.blocks = torch.nn.ModuleList(_Block(dim) for _ in range(depth))
        self.act = torch.nn.GELU()
        self.norm = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.token
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.norm(self.act(h)))


def test_param_groups_depths_follow_registration_order() -> None:
    model = _Tiny(depth=3)
    depths = layer_depths(model)
    assert depths["token"] == 0 and depths["embed.weight"] == 0
    assert [depths[f"blocks.{i}.fc.weight"] for i in range(3)] == [1, 2, 3]
    assert depths["blocks.1.norm.weight"] == 2
    assert depths["norm.weight"] == 4 and depths["head.weight"] == 5


def test_param_groups_depth_opens_containers_one_level() -> None:
    blocks = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.LayerNorm(4), torch.nn.Linear(4, 4), torch.nn.GELU())
                                 for _ in range(2))
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4))
    model.add_module("blocks", blocks)
    depths = layer_depths(model)
    assert depths["0.weight"] == 0 and depths["2.bias"] == 1  # the ReLU takes no depth
    assert depths["blocks.0.0.weight"] == depths["blocks.0.1.weight"] == 2  # a Sequential block is one layer
    assert depths["blocks.1.1.bias"] == 3


def test_param_groups_layer_decay_and_no_decay_split() -> None:
    model = _Tiny(depth=3)
    groups = torchsched.param_groups(model, lr=1e-3, layer_decay=0.5, weight_decay=0.05)
    assert [g["depth"] for g in groups] == sorted(g["depth"] for g in groups)
    by_name = {g["name"]: g for g in groups}
    assert by_name["layer5"]["lr_multiplier"] == 1.0 and by_name["layer0"]["lr_multiplier"] == 0.5 ** 5
    assert by_name["layer2"]["lr_multiplier"] == 0.5 ** 3
    mults = [g["lr_multiplier"] for g in groups]
    assert mults == sorted(mults)  # deeper layers never train slower
    ids = {id(p): g for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters())) == len(ids)
    for name, p in model.named_parameters():
        g = ids[id(p)]
        no_decay = name.endswith("bias") or "norm" in name
        assert (g["weight_decay"] == 0.0) is no_decay, name
        assert g["name"].endswith(".no_decay") is no_decay
        assert g["lr"] == 1e-3
    # The token (1-d, on the root, not a bias or a norm) is decayed with the embedding.
    assert ids[id(model.token)] is ids[id(model.embed.weight)]
    # wrap() picks the multipliers up.
    w = wrap(torch.optim.AdamW(groups), S.constant(1.0))
    assert w.get_last_lr() == pytest.approx([1e-3 * m for m in mults], rel=1e-12)


def test_param_groups_without_decay_frozen_tied_and_options() -> None:
    model = _Tiny(depth=2)
    model.embed.weight.requires_grad_(False)
    blocks: Any = model.blocks
    blocks[1].fc.weight = blocks[0].fc.weight  # tied
    groups = torchsched.param_groups(model, lr=0.1, weight_decay=0.01)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    everything = [id(p) for g in groups for p in g["params"]]
    assert id(model.embed.weight) not in everything  # frozen
    assert len(everything) == len(set(everything)) == len(list(model.parameters())) - 1  # tied: once
    assert all(g["lr_multiplier"] == 1.0 for g in groups)
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    scaled = torchsched.param_groups(model, lr=0.1, layer_decay=0.1, scale_lr=True)
    assert all("lr_multiplier" not in g for g in scaled)
    assert max(g["lr"] for g in scaled) == pytest.approx(0.1) and min(g["lr"] for g in scaled) == pytest.approx(1e-5)
    custom = torchsched.param_groups(model, lr=1.0, layer_decay=0.5, depth=lambda n, p: 1 if n.startswith("head") else 0,
                                     no_decay=("tok*", torch.nn.LayerNorm))

    def group_of(p: torch.Tensor) -> dict[str, Any]:
        return next(g for g in custom if any(q is p for q in g["params"]))

    assert group_of(model.head.bias)["name"] == "layer1" and group_of(model.head.bias)["lr_multiplier"] == 1.0
    assert group_of(model.token)["name"] == "layer0.no_decay" and group_of(model.token)["lr_multiplier"] == 0.5
    assert group_of(model.norm.weight)["name"] == "layer0.no_decay"
    assert group_of(blocks[0].fc.bias)["name"] == "layer0"  # "bias" is no longer in no_decay


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"layer_decay": 1.5}, ValueError, r"layer_decay must be in \(0, 1\], got 1.5"),
    ({"layer_decay": 0.0}, ValueError, r"layer_decay must be in \(0, 1\], got 0.0"),
    ({"lr": math.nan}, ValueError, r"lr must be finite, got nan"),
    ({"lr": -1.0}, ValueError, r"lr must be >= 0, got -1.0"),
    ({"weight_decay": -0.1}, ValueError, r"weight_decay must be >= 0, got -0.1"),
    ({"no_decay": (3,)}, TypeError, r"no_decay entries must be name patterns \(str\) or module types, got 3"),
    ({"layer_decay": 0.5, "depth": lambda n, p: -1}, ValueError, r"depth\('token', \.\.\.\) must be an integer"),
])
def test_param_groups_bad_input(kwargs: dict[str, Any], exc: type, match: str) -> None:
    args = {"lr": 0.1, **kwargs}
    with pytest.raises(exc, match=match):
        torchsched.param_groups(_Tiny(), **args)


def test_param_groups_rejects_models_without_trainable_params() -> None:
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got list"):
        torchsched.param_groups([torch.zeros(1)], lr=0.1)  # type: ignore[arg-type]
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match=r"no trainable parameters"):
        torchsched.param_groups(frozen, lr=0.1)


# ---- CUDA ------------------------------------------------------------------------------------------

@pytest.mark.cuda
def test_cuda_params_with_float_lrs() -> None:
    sched = _sched()
    params = [torch.nn.Parameter(p.detach().cuda()) for p in _params(2)]
    opt = torch.optim.SGD([{"params": [p], "lr": b} for p, b in zip(params, BASES)], momentum=0.9)
    w = wrap(opt, sched, multipliers=MULTS[:2])
    lrs = _train(w, params, 5)
    np.testing.assert_allclose(lrs, _expected(sched, BASES[:2], MULTS[:2], 5), rtol=1e-12)


# ---- the demo ----------------------------------------------------------------------------------------

def test_demo_trains_measures_and_plots(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from torchsched import demo

    out = tmp_path / "demo.png"
    threads = torch.get_num_threads()
    assert demo.main(["--steps", "120", "--warmup", "20", "--pairs", "40", "--no-progress", "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads
    text = capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss = float(text.split("final loss ")[1].split(",")[0])
    assert loss < 1.0  # three classes: chance is ln 3 = 1.10
    assert "torch LambdaLR" in text and "torchsched wrap()" in text
    rel = float(text.split("max relative difference ")[1].split()[0])
    assert rel < 2.5e-7  # float32 LR tensors against torch's float LRs
    with pytest.raises(SystemExit, match="--warmup < --steps"):
        demo.main(["--steps", "10", "--warmup", "10", "--out", str(out)])
