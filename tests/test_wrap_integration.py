"""wrap() inside the trainers people use: the scheduler view, other LR schedulers on a wrapped optimizer,
tensor LRs that stay tensors, and timm's per-group ``lr_scale``.

No framework is installed: each test replays the calling pattern of one (the HF Trainer building a
``LambdaLR`` on the optimizer it is given, Accelerate's ``AcceleratedScheduler`` stepping once per process
and bumping ``_step_count`` on accumulation steps, Lightning reading ``param_groups`` and checkpointing the
scheduler, timm's scheduler writing ``value * lr_scale``). LRs are checked against the schedule's values
computed independently (``Schedule.values``), and "the LR the optimizer used" is read from the param update.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any, Callable

import numpy as np
import pytest
import torch

import torchsched.lr_scheduler as drop_in
from torchsched import schedules as S
from torchsched import wrap
from torchsched.optim import (CHECK_EVERY, ScheduleConflictError, ScheduleConflictWarning, ScheduledOptimizer,
                              SchedulerView)

SPEC = S.warmup(5, init=0.1) >> S.cosine(30, final=0.05)
BASES = [0.1, 0.03, 0.5]


def _params(n: int = 3, seed: int = 0, dtype: torch.dtype = torch.float32) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(6, generator=gen, dtype=torch.float64).to(dtype)) for _ in range(n)]


def _grads(params: list[torch.nn.Parameter], t: int) -> None:
    gen = torch.Generator().manual_seed(100 + t)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)


def _sgd(lr: Any = None, n: int = 3, **kw: Any) -> tuple[torch.optim.SGD, list[torch.nn.Parameter]]:
    params = _params(n, dtype=torch.float64)  # so that an update shows the LR it used to ~1e-15
    lrs = BASES[:n] if lr is None else [lr(b) for b in BASES[:n]]
    return torch.optim.SGD([{"params": [p], "lr": x} for p, x in zip(params, lrs)], **kw), params


def _expected(step: int, scales: list[float], spec: S.Schedule = SPEC) -> list[float]:
    value = float(spec.values([step])[0])
    return [s * value for s in scales]


def _group_lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


# ---- the scheduler view ----------------------------------------------------------------------------

def test_the_view_is_an_lrscheduler_made_once_that_changes_nothing() -> None:
    opt, _ = _sgd()
    w = wrap(opt, SPEC)
    before = [g["lr"] for g in w.param_groups]
    view = w.scheduler()
    assert isinstance(view, torch.optim.lr_scheduler.LRScheduler) and isinstance(view, SchedulerView)
    assert w.scheduler() is view and view.optimizer is w
    # torch's LRScheduler.__init__ would have marked the groups, patched step() and written the LRs
    assert all("initial_lr" not in g for g in w.param_groups)
    assert "step" not in w.__dict__ and "step" not in opt.__dict__
    assert [g["lr"] for g in w.param_groups] == before
    assert view.last_epoch == 0 and view._step_count == 1
    assert view.base_lrs == pytest.approx(BASES, rel=1e-15)


@pytest.mark.parametrize("calls", [0, 1, 3])
def test_view_step_neither_advances_nor_writes(calls: int) -> None:
    opt, params = _sgd()
    w = wrap(opt, SPEC)
    view = w.scheduler()
    for t in range(12):
        _grads(params, t)
        w.step()
        after_wrapper = _group_lrs(w)
        for _ in range(calls):
            view.step()
        view.step(t)  # an epoch argument, or whatever a framework passes on, changes nothing either
        assert _group_lrs(w) == after_wrapper
        assert view.last_epoch == w.last_step == t + 1 and view._step_count == t + 2
        assert view.get_last_lr() == pytest.approx(_expected(t + 1, BASES), rel=1e-14)
        assert all(type(x) is float for x in view.get_last_lr())
        assert view.get_last_lr() == w.get_last_lr() == view.get_lr() == view._last_lr


def test_hf_trainer_loop_with_the_view_logs_and_uses_the_schedule() -> None:
    # Trainer: optimizer.step(); lr_scheduler.step(); logs lr_scheduler.get_last_lr()[0]
    opt, params = _sgd(n=1)
    w = wrap(opt, SPEC)
    sched = w.scheduler()
    logged, used = [], []
    for t in range(20):
        _grads(params, t)
        before = params[0].detach().clone()
        grad = params[0].grad.clone()  # type: ignore[union-attr]
        w.step()
        used.append(float(((before - params[0].detach()) / grad).mean()))  # SGD: delta = -lr * grad
        sched.step()
        logged.append(sched.get_last_lr()[0])
    expected_used = [_expected(t, BASES[:1])[0] for t in range(20)]
    expected_logged = [_expected(t + 1, BASES[:1])[0] for t in range(20)]
    np.testing.assert_allclose(used, expected_used, rtol=1e-12)
    np.testing.assert_allclose(logged, expected_logged, rtol=1e-14)
    assert expected_used[0] < expected_used[4]  # through the warmup: a schedule, not a constant


class _AcceleratedScheduler:
    """accelerate's AcceleratedScheduler.step, the parts that matter here: nothing but a ``_step_count``
    bump while gradients accumulate, then one ``scheduler.step(*args)`` per process."""

    def __init__(self, scheduler: Any, num_processes: int) -> None:
        self.scheduler = scheduler
        self.num_processes = num_processes
        self.sync_gradients = True

    def step(self, *args: Any, **kwargs: Any) -> None:
        if not self.sync_gradients:
            self.scheduler._step_count += 1
            return
        for _ in range(self.num_processes):
            self.scheduler.step(*args, **kwargs)


@pytest.mark.parametrize("num_processes", [1, 2, 4])
def test_accelerate_calling_pattern_advances_once_per_optimizer_step(num_processes: int) -> None:
    opt, params = _sgd(n=2)
    w = wrap(opt, SPEC)
    acc = _AcceleratedScheduler(w.scheduler(), num_processes)
    accumulation = 3
    lrs_used = []
    for micro in range(accumulation * 10):
        acc.sync_gradients = (micro + 1) % accumulation == 0
        if acc.sync_gradients:
            _grads(params, micro)
            lrs_used.append(_group_lrs(w))
            w.step()
        acc.step()
        assert acc.scheduler.last_epoch == w.last_step
    assert w.last_step == 10
    np.testing.assert_allclose(lrs_used, [_expected(t, BASES[:2]) for t in range(10)], rtol=1e-14)


def test_lightning_lr_monitor_reads_the_param_groups_the_view_reports() -> None:
    opt, params = _sgd()
    w = wrap(opt, SPEC, tensor_lrs=True)
    view = w.scheduler()
    for t in range(7):
        _grads(params, t)
        w.step()
        view.step()  # interval "step"
        monitored = [float(g["lr"]) for g in view.optimizer.param_groups]
        np.testing.assert_allclose(monitored, view.get_last_lr(), rtol=1e-7)  # float32 tensors


def test_the_view_only_lives_as_long_as_someone_holds_it() -> None:
    import gc
    import weakref

    opt, _ = _sgd()
    w = wrap(opt, SPEC)
    ref = weakref.ref(w.scheduler())
    gc.collect()
    assert ref() is None  # the wrapper keeps no strong reference: no cycle through the view
    assert isinstance(w.scheduler(), SchedulerView)


def test_view_last_epoch_cannot_be_set() -> None:
    opt, _ = _sgd()
    view = wrap(opt, SPEC).scheduler()
    with pytest.raises(AttributeError, match="load a state dict"):
        view.last_epoch = 5


# ---- checkpoints -----------------------------------------------------------------------------------

def _roundtrip(obj: Any) -> Any:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _trained(steps: int, tensor_lrs: bool = False) -> tuple[ScheduledOptimizer, list[torch.nn.Parameter]]:
    opt = torch.optim.AdamW([{"params": [p], "lr": b} for p, b in zip(_params(), BASES)])
    w = wrap(opt, SPEC, multipliers=[1.0, 2.0, 0.5], tensor_lrs=tensor_lrs)
    params = [g["params"][0] for g in opt.param_groups]
    for t in range(steps):
        _grads(params, t)
        w.step()
    return w, params


def _fresh(tensor_lrs: bool = False) -> ScheduledOptimizer:
    return _trained(0, tensor_lrs)[0]


def _state(w: ScheduledOptimizer) -> tuple[Any, ...]:
    inner = w.optimizer.state_dict()
    moments = [torch.cat([v["exp_avg"], v["exp_avg_sq"]]) for v in inner["state"].values()]
    return w.last_step, w.get_last_lr(), _group_lrs(w), w.multipliers, w.base_lrs, moments


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert a[:5] == b[:5]
    assert len(a[5]) == len(b[5]) and all(torch.equal(x, y) for x, y in zip(a[5], b[5]))


@pytest.mark.parametrize("tensor_lrs", [False, True], ids=["float", "tensor"])
@pytest.mark.parametrize("strip", [False, True], ids=["full", "optimizer-entry-dropped"])
def test_optimizer_and_scheduler_checkpoints_load_in_either_order(tensor_lrs: bool, strip: bool) -> None:
    src, _ = _trained(9, tensor_lrs)
    opt_sd = _roundtrip(src.state_dict())
    sched_sd = _roundtrip(src.scheduler().state_dict())
    assert set(sched_sd) == {"torchsched"} and sched_sd["torchsched"]["step"] == 9
    if strip:  # a checkpointing path that rebuilds the optimizer dict from 'state' and 'param_groups' only
        opt_sd = {"state": opt_sd["state"], "param_groups": opt_sd["param_groups"]}
    first, second = _fresh(tensor_lrs), _fresh(tensor_lrs)
    # each its own copy: torch's Optimizer.load_state_dict adopts the state tensors it is given
    first.load_state_dict(_roundtrip(opt_sd))
    first.scheduler().load_state_dict(sched_sd)
    second.scheduler().load_state_dict(sched_sd)
    second.load_state_dict(_roundtrip(opt_sd))
    _same(_state(first), _state(src))
    _same(_state(second), _state(src))
    for w in (src, first, second):  # and they train on alike
        params = [g["params"][0] for g in w.param_groups]
        for t in range(9, 14):
            _grads(params, t)
            w.step()
    _same(_state(first), _state(src))
    _same(_state(second), _state(src))
    assert first.last_step == 14


def test_view_load_refuses_other_states_and_a_failed_load_changes_nothing() -> None:
    w, _ = _trained(4)
    view = w.scheduler()
    before = _state(w)
    plain = torch.optim.SGD(_params(), lr=0.1)
    lam = torch.optim.lr_scheduler.LambdaLR(plain, lambda s: 1.0)
    with pytest.raises(ValueError, match="'torchsched' entry"):
        view.load_state_dict(lam.state_dict())
    bad = view.state_dict()
    bad["torchsched"]["base_lrs"] = bad["torchsched"]["base_lrs"][:2]
    with pytest.raises(ValueError, match="base_lrs"):
        view.load_state_dict(bad)
    huge = view.state_dict()
    huge["torchsched"]["base_lrs"] = [1e308] * 3
    huge["torchsched"]["multipliers"] = [1e10] * 3
    with pytest.raises(ValueError, match="not be finite"):
        view.load_state_dict(huge)
    _same(_state(w), before)


# ---- other schedulers on a wrapped optimizer --------------------------------------------------------

TORCH_SCHEDULERS: dict[str, Callable[[Any], Any]] = {
    "hf-linear-warmup": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1.0, s / 10)),
    "steplr": lambda o: torch.optim.lr_scheduler.StepLR(o, 3),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 20),
    "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 1.0, total_steps=20),
    "drop-in-lambda": lambda o: drop_in.LambdaLR(o, lambda s: 0.5),
}


@pytest.mark.parametrize("make", TORCH_SCHEDULERS.values(), ids=TORCH_SCHEDULERS.keys())
def test_a_torch_scheduler_built_on_the_wrapper_raises_and_names_the_fix(make: Callable[[Any], Any]) -> None:
    opt, params = _sgd(momentum=0.9)
    w = wrap(opt, SPEC)
    before = _group_lrs(w)
    with pytest.raises(ScheduleConflictError, match=r"wrapped\.scheduler\(\)"):
        make(w)
    # as it was: no 'initial_lr' left behind, step() not patched, the LRs the schedule's
    assert all("initial_lr" not in g for g in w.param_groups) and "step" not in w.__dict__
    assert _group_lrs(w) == before
    _grads(params, 0)
    w.step()  # and training goes on, with no second error
    assert w.last_step == 1


def test_hf_trainer_building_its_own_scheduler_is_never_silent() -> None:
    # Trainer(optimizers=(wrapped, None)) calls get_scheduler(..., optimizer=wrapped): a LambdaLR
    opt, _ = _sgd()
    w = wrap(opt, S.warmup(10) >> S.cosine(90))
    with pytest.raises(ScheduleConflictError, match="LambdaLR is being attached") as info:
        torch.optim.lr_scheduler.LambdaLR(w, lambda step: 1.0 - step / 100)
    assert "optimizers=(wrapped, wrapped.scheduler())" in str(info.value)


class _Outer(torch.optim.Optimizer):
    """A wrapper around the wrapped optimizer, as Accelerate's AcceleratedOptimizer: it forwards
    ``param_groups`` and ``step``."""

    def __init__(self, inner: torch.optim.Optimizer) -> None:  # no Optimizer.__init__: it owns nothing
        self.inner = inner
        self.defaults = inner.defaults
        self._optimizer_step_pre_hooks: dict[int, Any] = {}
        self._optimizer_step_post_hooks: dict[int, Any] = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.inner.param_groups

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.inner.state

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        return self.inner.step(closure)


@pytest.mark.parametrize("where", ["inner", "outer"])
def test_a_torch_scheduler_on_the_inner_or_an_outer_optimizer_raises_at_the_next_step(where: str) -> None:
    opt, params = _sgd()
    w = wrap(opt, SPEC)
    target = w.optimizer if where == "inner" else _Outer(w)
    sched = torch.optim.lr_scheduler.LambdaLR(target, lambda s: 0.0)  # HF's warmup at step 0: LR 0
    _grads(params, 0)
    before = [p.detach().clone() for p in params]
    with pytest.raises(ScheduleConflictError, match="gained an 'initial_lr' key"):
        (w if where == "inner" else target).step()
    assert all(torch.equal(p.detach(), b) for p, b in zip(params, before))  # not stepped
    assert w.last_step == 0
    del sched


def test_wrapping_an_optimizer_that_had_a_torch_scheduler_before_is_fine() -> None:
    opt, params = _sgd()
    torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)  # used before, then replaced by wrap()
    w = wrap(opt, SPEC)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in range(CHECK_EVERY + 3):
            _grads(params, t)
            w.step()
    assert w.get_last_lr() == pytest.approx(_expected(CHECK_EVERY + 3, BASES), rel=1e-14)


def test_loading_a_checkpoint_saved_next_to_a_torch_scheduler_is_fine() -> None:
    opt, params = _sgd()
    torch.optim.lr_scheduler.StepLR(opt, 5)
    saved = opt.state_dict()
    assert "initial_lr" in saved["param_groups"][0]
    w = wrap(_sgd()[0], SPEC)
    w.load_state_dict(saved)
    w.optimizer.load_state_dict(saved)  # behind the wrapper's back, too
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in range(3):
            _grads([g["params"][0] for g in w.param_groups], t)
            w.step()


@pytest.mark.parametrize("kind", ["float", "tensor"])
def test_a_hand_edit_warns_once_and_the_schedule_wins(kind: str) -> None:
    opt, params = _sgd(lr=(lambda b: torch.tensor(b, dtype=torch.float64)) if kind == "tensor" else None)
    w = wrap(opt, SPEC, lr_dtype=torch.float64)
    _grads(params, 0)
    w.step()
    view = w.param_groups[1]["lr"]
    w.param_groups[1]["lr"] = 7.0
    _grads(params, 1)
    before = params[1].detach().clone()
    grad = params[1].grad.clone()  # type: ignore[union-attr]
    with pytest.warns(ScheduleConflictWarning, match=r"param group 1's 'lr' was written .* wrapped\.scheduler\(\)"):
        w.step()
    # the check (the first step after wrap()'s first) put the schedule's LR back before the update
    used = float(((before - params[1].detach()) / grad).mean())
    assert used == pytest.approx(_expected(1, BASES)[1], rel=1e-5)
    assert _group_lrs(w) == pytest.approx(_expected(2, BASES), rel=1e-14)
    if kind == "tensor":
        assert w.param_groups[1]["lr"] is view  # the wrapper's LR tensor again, the one it fills
    # once per wrapper: later edits are still undone, within CHECK_EVERY steps, without a second warning
    w.param_groups[0]["lr"] = 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in range(2, 2 + CHECK_EVERY + 1):
            _grads(params, t)
            w.step()
    assert _group_lrs(w) == pytest.approx(_expected(w.last_step, BASES), rel=1e-14)


def test_a_tensor_lr_filled_in_place_by_hand_is_noticed_on_the_cpu() -> None:
    opt, params = _sgd(lr=torch.tensor)
    w = wrap(opt, SPEC)
    _grads(params, 0)
    w.step()
    lr = w.param_groups[2]["lr"]
    lr.fill_(9.0)
    with pytest.warns(ScheduleConflictWarning, match="param group 2"):
        w.step()
    assert w.param_groups[2]["lr"] is lr  # the same tensor, holding the schedule's value again
    assert float(lr) == pytest.approx(_expected(2, BASES)[2], rel=1e-7)


class _TimmLikeScheduler:
    """timm's Scheduler: not a torch LRScheduler; each step it stores ``value * group['lr_scale']``."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[[int], float]) -> None:
        self.optimizer = optimizer
        self.factor = factor
        self.base_values = [float(g["lr"]) for g in optimizer.param_groups]

    def step_update(self, num_updates: int) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_values):
            value = base * self.factor(num_updates)
            group["lr"] = value * group["lr_scale"] if "lr_scale" in group else value


@pytest.mark.parametrize("attach_at", [0, 10])
def test_a_non_torch_scheduler_is_noticed_within_check_every_steps(attach_at: int) -> None:
    opt, params = _sgd(n=2)
    w = wrap(opt, SPEC)
    timm = _TimmLikeScheduler(w, lambda n: 0.5 ** n)
    seen = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for t in range(attach_at + CHECK_EVERY + 1):
            _grads(params, t)
            w.step()
            if t >= attach_at:
                timm.step_update(t + 1)
            if seen is None and any(issubclass(c.category, ScheduleConflictWarning) for c in caught):
                seen = t
    assert seen is not None and seen <= attach_at + CHECK_EVERY
    if attach_at == 0:
        assert seen == 1  # the first step after the scheduler wrote


def test_a_clean_run_never_warns() -> None:
    params = _params(4)
    opt = torch.optim.Adam([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": torch.tensor(0.02)},
                            {"params": [params[2]], "lr": 0.3, "lr_scale": 0.5},
                            {"params": [params[3]], "lr": torch.tensor(0.04), "lr_multiplier": 2.0}])
    w = wrap(opt, SPEC * S.plateau(patience=1))  # mixed float and tensor groups, with a signal rule
    view = w.scheduler()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in range(3 * CHECK_EVERY + 5):
            _grads(params, t)
            w.step()
            view.step()
            if t % 7 == 0:
                w.observe(torch.tensor(1.0))
    assert w.last_step == 3 * CHECK_EVERY + 5


# ---- tensor LRs stay tensors -------------------------------------------------------------------------

def _reference_run(make: Callable[[Any], torch.optim.Optimizer], scales: list[float], steps: int,
                   spec: S.Schedule, lr_dtype: torch.dtype) -> list[torch.Tensor]:
    """The same optimizer, each group with its own LR tensor of ``lr_dtype`` that the test fills by hand with
    the schedule's value before each step (torch's own recipe: a tensor LR the user sets)."""
    params = _params(len(scales), dtype=torch.float64)
    opt = make([{"params": [p], "lr": torch.tensor(s, dtype=lr_dtype)} for p, s in zip(params, scales)])
    for t in range(steps):
        for g, lr in zip(opt.param_groups, _expected(t, scales, spec)):
            g["lr"].fill_(lr)
        _grads(params, t)
        opt.step()
    return [p.detach().clone() for p in params]


OPTIMIZERS: dict[str, Callable[[list[dict[str, Any]]], torch.optim.Optimizer]] = {
    "sgd": lambda g: torch.optim.SGD(g),
    "sgd-momentum-foreach": lambda g: torch.optim.SGD(g, momentum=0.9, foreach=True),
    "adam": lambda g: torch.optim.Adam(g),
    "adam-single-tensor": lambda g: torch.optim.Adam(g, foreach=False),
    "adamw-fused": lambda g: torch.optim.AdamW(g, fused=True),
    "adagrad": lambda g: torch.optim.Adagrad(g),
    "rmsprop": lambda g: torch.optim.RMSprop(g, foreach=True),
}


@pytest.mark.parametrize("lr_dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_tensor_lr_stays_a_tensor_and_the_optimizer_uses_the_schedule(name: str, lr_dtype: torch.dtype) -> None:
    make = OPTIMIZERS[name]
    params = _params(3, dtype=torch.float64)
    opt = make([{"params": [p], "lr": torch.tensor(b, dtype=lr_dtype)} for p, b in zip(params, BASES)])
    w = wrap(opt, SPEC, lr_dtype=lr_dtype)
    held = [g["lr"] for g in w.param_groups]
    assert all(isinstance(x, torch.Tensor) and x.dim() == 0 and x.dtype == lr_dtype for x in held)
    assert len({x.data_ptr() for x in held}) == 3  # no two groups share one
    scales = [float(torch.tensor(b, dtype=lr_dtype)) for b in BASES]
    steps = 12
    for t in range(steps):
        _grads(params, t)
        w.step()
        assert all(g["lr"] is x for g, x in zip(w.param_groups, held))  # filled in place, never replaced
    ref = _reference_run(make, scales, steps, SPEC, lr_dtype)
    for p, r in zip(params, ref):
        torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-14)


def test_sgd_update_reads_the_schedule_exactly() -> None:
    params = _params(2, dtype=torch.float64)
    w = wrap(torch.optim.SGD([{"params": [p], "lr": torch.tensor(b, dtype=torch.float64)}
                              for p, b in zip(params, BASES)]), SPEC, lr_dtype=torch.float64)
    for t in range(10):
        _grads(params, t)
        before = [p.detach().clone() for p in params]
        grads = [p.grad.clone() for p in params]  # type: ignore[union-attr]
        w.step()
        for g, (p, b, gr, lr) in enumerate(zip(params, before, grads, _expected(t, BASES[:2]))):
            torch.testing.assert_close(p.detach(), b - lr * gr, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw-fused"])
def test_float_lrs_stay_floats_unless_tensor_lrs(name: str) -> None:
    make = OPTIMIZERS[name]
    params = _params(3, dtype=torch.float64)
    w = wrap(make([{"params": [p], "lr": b} for p, b in zip(params, BASES)]), SPEC)
    fused = name == "adamw-fused"  # a fused optimizer reads a tensor on the params' device: always given one
    assert all(isinstance(g["lr"], torch.Tensor) is fused for g in w.param_groups)
    params = _params(3, dtype=torch.float64)
    w = wrap(make([{"params": [p], "lr": b} for p, b in zip(params, BASES)]), SPEC, tensor_lrs=True,
             lr_dtype=torch.float64)
    held = [g["lr"] for g in w.param_groups]
    assert all(isinstance(x, torch.Tensor) and x.dim() == 0 for x in held)
    for t in range(8):
        _grads(params, t)
        w.step()
    assert all(g["lr"] is x for g, x in zip(w.param_groups, held))
    ref = _reference_run(make, BASES, 8, SPEC, torch.float64)
    for p, r in zip(params, ref):
        torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-14)


def test_mixed_float_and_tensor_groups_keep_their_kinds() -> None:
    params = _params(3)
    opt = torch.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": torch.tensor(0.03)},
                           {"params": [params[2]], "lr": 0.5}])
    w = wrap(opt, SPEC)
    assert [type(g["lr"]) for g in w.param_groups] == [float, torch.Tensor, float]
    for t in range(6):
        _grads(params, t)
        w.step()
    assert [type(g["lr"]) for g in w.param_groups] == [float, torch.Tensor, float]
    np.testing.assert_allclose(_group_lrs(w), _expected(6, [0.1, float(torch.tensor(0.03)), 0.5]), rtol=1e-7)


def test_tensor_lrs_where_torch_refuses_them() -> None:
    params = _params(2)
    make = lambda: torch.optim.Adam([{"params": [params[0]], "lr": 0.1},  # noqa: E731
                                     {"params": [params[1]], "lr": torch.tensor(0.2)}], foreach=True)
    with pytest.raises(ValueError, match="tensor_lrs=True, but param group 0 of Adam has foreach=True"):
        wrap(make(), SPEC, tensor_lrs=True)
    w = wrap(make(), SPEC)  # the user's tensor LR torch would refuse at step(): a float, so the step works
    assert [type(g["lr"]) for g in w.param_groups] == [float, float]
    _grads(params, 0)
    w.step()


def test_tensor_lrs_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="tensor_lrs must be True or False"):
        wrap(_sgd()[0], SPEC, tensor_lrs=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lr_scale must be True or False"):
        wrap(_sgd()[0], SPEC, lr_scale="yes")  # type: ignore[arg-type]


# ---- timm's lr_scale ---------------------------------------------------------------------------------

def _layer_decay_groups(params: list[torch.nn.Parameter], scales: list[float], **extra: Any) -> list[dict[str, Any]]:
    # what timm's param_groups_layer_decay makes: no 'lr' of their own, an 'lr_scale' per layer
    return [{"params": [p], "lr_scale": s, **extra} for p, s in zip(params, scales)]


def test_lr_scale_is_honoured_as_timm_does() -> None:
    scales = [0.75 ** 2, 0.75, 1.0]
    params = _params(3)
    w = wrap(torch.optim.AdamW(_layer_decay_groups(params, scales), lr=1e-3), SPEC)
    ref_params = _params(3)
    ref_opt = torch.optim.AdamW(_layer_decay_groups(ref_params, scales), lr=1e-3)
    timm = _TimmLikeScheduler(ref_opt, lambda n: float(SPEC.values([n])[0]))
    timm.step_update(0)
    assert _group_lrs(w) == pytest.approx(_group_lrs(ref_opt), rel=1e-15)
    assert w.multipliers == scales
    for t in range(10):
        _grads(params, t)
        _grads(ref_params, t)
        w.step()
        ref_opt.step()
        timm.step_update(t + 1)
        assert _group_lrs(w) == pytest.approx(_group_lrs(ref_opt), rel=1e-14)
    for p, r in zip(params, ref_params):
        torch.testing.assert_close(p.detach(), r.detach(), rtol=0, atol=0)


def test_lr_scale_multiplies_whatever_multiplier_applies() -> None:
    params = _params(3)
    groups = [{"params": [params[0]], "lr": 0.1, "lr_scale": 0.5},
              {"params": [params[1]], "lr": 0.1, "lr_scale": 0.25, "lr_multiplier": 3.0},
              {"params": [params[2]], "lr": 0.1, "lr_multiplier": 2.0, "name": "head"}]
    w = wrap(torch.optim.SGD(groups), SPEC)
    assert w.multipliers == [0.5, 0.75, 2.0]
    assert _group_lrs(w) == pytest.approx(_expected(0, [0.05, 0.075, 0.2]), rel=1e-15)
    # an explicit multiplier replaces 'lr_multiplier', and lr_scale still applies on top
    w = wrap(torch.optim.SGD([dict(g) for g in groups]), SPEC, multipliers={0: 4.0, 1: 4.0, "head": 4.0})
    assert w.multipliers == [2.0, 1.0, 4.0]
    w = wrap(torch.optim.SGD([dict(g) for g in groups]), SPEC, lr_scale=False)
    assert w.multipliers == [1.0, 3.0, 2.0]


def test_lr_scale_survives_checkpoints_and_joins_with_new_groups() -> None:
    params = _params(3)
    w = wrap(torch.optim.SGD(_layer_decay_groups(params[:2], [0.5, 0.8]), lr=0.1), SPEC)
    w.add_param_group({"params": [params[2]], "lr_scale": 0.25})
    assert w.multipliers == [0.5, 0.8, 0.25]
    for t in range(4):
        _grads(params, t)
        w.step()
    sd = _roundtrip(w.state_dict())
    other = wrap(torch.optim.SGD(_layer_decay_groups(_params(3), [1.0, 1.0, 1.0]), lr=0.1), SPEC)
    other.load_state_dict(sd)  # the saved multipliers (lr_scale included) win
    assert other.multipliers == [0.5, 0.8, 0.25]
    assert _group_lrs(other) == pytest.approx(_expected(4, [0.05, 0.08, 0.025]), rel=1e-14)
    other.set_multiplier(0, 2.0)  # the whole multiplier: lr_scale is not applied again
    assert _group_lrs(other)[0] == pytest.approx(_expected(4, [0.2])[0], rel=1e-14)


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf])
def test_a_bad_lr_scale_is_refused_by_name(bad: float) -> None:
    params = _params(2)
    with pytest.raises(ValueError, match=r"param group 1\['lr_scale'\]"):
        groups: list[dict[str, Any]] = [{"params": [params[0]]}, {"params": [params[1]], "lr_scale": bad}]
        wrap(torch.optim.SGD(groups, lr=0.1), SPEC)


def test_the_view_reports_the_lr_a_step_used_until_it_is_stepped() -> None:
    """The HF Trainer's order: optimizer.step(), log scheduler.get_last_lr(), scheduler.step(). As with a torch
    scheduler, the logged LR is the one the optimizer step just used."""
    from torchsched import wrap

    model = torch.nn.Linear(2, 1)
    wrapped = wrap(torch.optim.SGD(model.parameters(), lr=1.0), S.warmup(4) >> S.cosine(10))
    view = wrapped.scheduler()
    ref_opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
    spec = S.warmup(4) >> S.cosine(10)
    ref = torch.optim.lr_scheduler.LambdaLR(ref_opt, lambda t: spec(t))
    for _ in range(8):
        used = [g["lr"] for g in wrapped.param_groups]
        wrapped.step()
        ref_opt.step()
        assert view.get_last_lr() == used == pytest.approx(ref.get_last_lr(), rel=1e-15)
        view.step()
        ref.step()
        assert view.get_last_lr() == [g["lr"] for g in wrapped.param_groups]
        assert view.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=1e-15)
