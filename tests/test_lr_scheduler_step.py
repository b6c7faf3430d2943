"""The one step decision of torchsched.lr_scheduler (lr_scheduler/_step.py): which kind each step takes, with
torch's side effects in torch's order, and how the CUDA path writes each kind. torch 2.13 is the oracle."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as tl

from torchsched import lr_scheduler as ts
from torchsched.lr_scheduler import _base, _cuda_stepper
from torchsched.lr_scheduler._step import StepDecision, StepKind, decide_step


@pytest.fixture(autouse=True)
def _quiet_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def sgd(lrs: list[float]) -> torch.optim.SGD:
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.ones(2))], "lr": lr} for lr in lrs], lr=0.1)


@pytest.fixture
def decisions(monkeypatch: pytest.MonkeyPatch) -> list[StepDecision]:
    """Every decision the schedulers write from now on (the C-level step writes none: it only advances)."""
    seen: list[StepDecision] = []
    write = _base._Core._write_step

    def spy(self: Any, decision: StepDecision) -> None:
        seen.append(decision)
        write(self, decision)

    monkeypatch.setattr(_base._Core, "_write_step", spy)
    return seen


def lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


def test_each_kind_where_torch_takes_it(decisions: list[StepDecision]) -> None:
    ours, theirs = sgd([0.1, 0.2]), sgd([0.1, 0.2])
    s, t = ts.ExponentialLR(ours, 0.9), tl.ExponentialLR(theirs, 0.9)
    assert [d.kind for d in decisions] == [StepKind.KEEP] and decisions[0].t == 0  # the constructor's step
    for o in (ours, theirs):
        o.step()
    s.step()
    t.step()
    assert decisions[-1][:2] == (StepKind.ADVANCE, 1)  # the first step after construction
    s.step(5)
    t.step(5)
    assert decisions[-1].kind is StepKind.CLOSED_FORM and decisions[-1].t == 5
    assert decisions[-1].values == pytest.approx([0.1 * 0.9**5, 0.2 * 0.9**5], rel=1e-15)
    assert lrs(ours) == lrs(theirs) and s.last_epoch == t.last_epoch == 5
    for o in (ours, theirs):
        o.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))], "lr": 0.5})
    s.step()
    t.step()
    assert decisions[-1][:2] == (StepKind.REBUILD, 6)  # three groups now: the program is recompiled
    assert lrs(ours) == lrs(theirs) and s._stepper.groups == 3
    count = len(decisions)
    s.step()
    assert len(decisions) == count and s.last_epoch == 7  # back on the C-level step: nothing decided in Python


def test_an_edited_group_key_rebuilds_before_the_step(decisions: list[StepDecision]) -> None:
    ours, theirs = sgd([0.1]), sgd([0.1])
    s = ts.OneCycleLR(ours, max_lr=0.5, total_steps=50, cycle_momentum=False)
    t = tl.OneCycleLR(theirs, max_lr=0.5, total_steps=50, cycle_momentum=False)
    for _ in range(3):
        s.step()
        t.step()
    before = len(decisions)
    ours.param_groups[0]["max_lr"] = theirs.param_groups[0]["max_lr"] = 0.8
    s.step()
    t.step()
    assert [d.kind for d in decisions[before:]] == [StepKind.REBUILD] and decisions[-1].t == 4
    assert lrs(ours) == lrs(theirs)


def test_torchs_error_comes_after_last_epoch_moved_as_in_torch() -> None:
    ours, theirs = sgd([0.1]), sgd([0.1])
    s, t = ts.StepLR(ours, step_size=0), tl.StepLR(theirs, step_size=0)
    with pytest.raises(ZeroDivisionError):
        t.step()
    with pytest.raises(ZeroDivisionError):
        decide_step(s, None)
    assert s.last_epoch == t.last_epoch == 1


def test_closed_form_checks_come_first_like_torch() -> None:
    ours, theirs = sgd([0.1]), sgd([0.1])
    s, t = ts.StepLR(ours, step_size=0), tl.StepLR(theirs, step_size=0)
    with pytest.raises(ZeroDivisionError):
        t.step(3)
    with pytest.raises(ZeroDivisionError):
        decide_step(s, 3)
    assert s.last_epoch == t.last_epoch == 3


def test_sequential_switch_to_warm_restarts_keeps_its_cycle_like_torch() -> None:
    """torch's SequentialLR switches with _update_lr(0): last_epoch becomes 0, and the LR is get_lr() at the
    scheduler's own T_cur and T_i, which this scheduler moved on before the switch."""
    sides = []
    for M in (tl, ts):
        o = sgd([0.1, 0.3])
        cwr = M.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=2, eta_min=0.001)
        for _ in range(5):
            o.step()
            cwr.step()
        sides.append((o, cwr, M.SequentialLR(o, [M.LinearLR(o, start_factor=0.5, total_iters=4), cwr], [6])))
    for i in range(40):
        for o, cwr, seq in sides:
            o.step()
            seq.step()
        (ot, ct, _), (os_, cs, _) = sides
        assert lrs(os_) == pytest.approx(lrs(ot), rel=1e-12), f"step {i}"
        assert (cs.T_cur, cs.T_i, cs.last_epoch) == (ct.T_cur, ct.T_i, ct.last_epoch), f"step {i}"


# ---- how the CUDA path writes each kind (a recording stand-in for the engine) ---------------------

class RecordingStepper:
    def __init__(self, holds: bool, chainable: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.groups = 2
        self.chainable = chainable
        self._holds = holds

    def holds(self, groups: Any) -> bool:
        return self._holds

    def lrs(self) -> list[float]:
        return [0.5, 0.25]

    def hold(self, t: Any, values: Any, u: float = math.nan) -> None:
        self.calls.append(("hold", t, list(values)))

    def step_to(self, t: Any, u: float = math.nan) -> None:
        self.calls.append(("step_to", t, u))


def scheduler_with(stepper: Any) -> Any:
    groups = [{"lr": 0.5}, {"lr": 0.25}]
    scheduler = SimpleNamespace(optimizer=SimpleNamespace(param_groups=groups), _stepper=stepper, recompiled=0)

    def recompile() -> None:  # the groups hold floats: the recompiled engine is the host one
        scheduler.recompiled += 1
        scheduler._stepper = object()

    scheduler._recompile = recompile
    return scheduler


@pytest.mark.parametrize("decision, call", [
    (StepDecision(StepKind.CLOSED_FORM, 4, values=[0.125, 0.0625]), ("hold", 4, [0.125, 0.0625])),
    (StepDecision(StepKind.KEEP, 0), ("hold", 0, [0.5, 0.25])),
    (StepDecision(StepKind.ADVANCE, 7), ("step_to", 7, math.nan)),
    (StepDecision(StepKind.REBUILD, 7, 16.0), ("step_to", 7, 16.0)),
    (StepDecision(StepKind.ADVANCE, 3, 8.0), ("step_to", 3, 8.0)),
], ids=["closed-form", "keep", "advance", "rebuilt", "second-clock"])
def test_the_device_writes_each_kind(decision: StepDecision, call: tuple[Any, ...]) -> None:
    stepper = RecordingStepper(holds=True)
    assert _cuda_stepper._write_on_device(scheduler_with(stepper), stepper, decision)  # type: ignore[arg-type]
    assert len(stepper.calls) == 1
    got = stepper.calls[0]
    assert got[:2] == call[:2]
    if isinstance(call[2], float) and math.isnan(call[2]):
        assert math.isnan(got[2])
    else:
        assert got[2] == call[2]


@pytest.mark.parametrize("kind", [StepKind.CLOSED_FORM, StepKind.KEEP, StepKind.ADVANCE])
def test_groups_the_device_lost_go_back_to_the_host_engine(kind: StepKind) -> None:
    stepper = RecordingStepper(holds=False, chainable=True)
    scheduler = scheduler_with(stepper)
    decision = StepDecision(kind, 2, values=[0.1, 0.2] if kind is StepKind.CLOSED_FORM else None)
    assert not _cuda_stepper._write_on_device(scheduler, stepper, decision)  # type: ignore[arg-type]
    assert stepper.calls == [] and scheduler.recompiled == 1
