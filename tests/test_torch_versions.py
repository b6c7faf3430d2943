"""The behaviours of torch's schedulers that changed between the releases the package supports (torch>=2.4), each
compared with the installed torch directly: whichever torch runs these tests is the oracle, and no expected value
is written down for one version. ``make test-torch-range`` runs them under the floor, a middle and the newest
release (torchsched.lr_scheduler._torch_compat says which behaviour the installed torch has)."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import pytest
import torch
from torch.optim import lr_scheduler as tl
from torch.optim import swa_utils

from torchsched import lr_scheduler as ts

SIDES = ((tl, swa_utils.SWALR), (ts, ts.SWALR))


def _opt(lr_type: str, lrs: tuple[float, ...] = (0.1, 0.25)) -> torch.optim.Optimizer:
    groups = []
    for lr in lrs:
        value: Any = lr if lr_type == "float" else torch.tensor(lr, dtype=torch.float64)
        groups.append({"params": [torch.nn.Parameter(torch.ones(2))], "lr": value})
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _group_state(opt: torch.optim.Optimizer) -> list[tuple[float, float]]:
    return [(float(g["lr"]), float(g.get("initial_lr", float("nan")))) for g in opt.param_groups]


BUILDERS: dict[str, Callable[[Any, Any, torch.optim.Optimizer], Any]] = {
    "ExponentialLR": lambda M, swa, o: M.ExponentialLR(o, 0.9),
    "PolynomialLR": lambda M, swa, o: M.PolynomialLR(o, 7, 2.0),
    "CosineAnnealingLR": lambda M, swa, o: M.CosineAnnealingLR(o, 9, 1e-3),
    "LinearLR": lambda M, swa, o: M.LinearLR(o, 0.5, 1.0, 6),
    "MultiplicativeLR": lambda M, swa, o: M.MultiplicativeLR(o, lambda e: 0.95),
    "LambdaLR": lambda M, swa, o: M.LambdaLR(o, lambda e: 1.0 / (e + 1)),
    "StepLR": lambda M, swa, o: M.StepLR(o, 3, 0.5),
    "ConstantLR": lambda M, swa, o: M.ConstantLR(o, 0.5, 4),
    "CyclicLR": lambda M, swa, o: M.CyclicLR(o, 0.01, 0.2, step_size_up=3, cycle_momentum=False),
    "OneCycleLR": lambda M, swa, o: M.OneCycleLR(o, 0.5, total_steps=40),
    "SWALR-cos": lambda M, swa, o: swa(o, swa_lr=0.05, anneal_epochs=5, anneal_strategy="cos"),
    "SWALR-linear": lambda M, swa, o: swa(o, swa_lr=0.05, anneal_epochs=5, anneal_strategy="linear"),
    "SequentialLR": lambda M, swa, o: M.SequentialLR(o, [M.ExponentialLR(o, 0.99), M.StepLR(o, 3, 0.5)], [5]),
    "ChainedScheduler": lambda M, swa, o: M.ChainedScheduler([M.ExponentialLR(o, 0.99), M.StepLR(o, 3, 0.5)]),
}


def _run(name: str, lr_type: str, companion: bool, steps: int = 30) -> list[Any]:
    """What a user sees of one scheduler (and a second one on its optimizer): LRs, get_last_lr(), state keys."""
    trace = []
    for M, swa in SIDES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o = _opt(lr_type)
            s = BUILDERS[name](M, swa, o)
            other = M.ExponentialLR(o, 0.5) if companion else None
            seen = [(_group_state(o), _floats(s.get_last_lr()), sorted(s.state_dict()))]
            for _ in range(steps):
                o.step()
                s.step()
                if other is not None:
                    other.step()
                seen.append((_group_state(o), _floats(s.get_last_lr()), getattr(s, "last_epoch", None)))
        trace.append(seen)
    return trace


@pytest.mark.parametrize("companion", [False, True], ids=["alone", "with-a-second-scheduler"])
@pytest.mark.parametrize("lr_type", ["float", "f64"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_lrs_last_lr_and_state_keys_follow_the_installed_torch(name: str, lr_type: str, companion: bool) -> None:
    # _is_initial in state_dict, get_last_lr() aliasing tensor LRs, SequentialLR's initial_lr and milestone step,
    # SWALR's anneal strategy: all as the installed torch has them
    torch_side, ours = _run(name, lr_type, companion)
    assert ours == torch_side


@pytest.mark.parametrize("name", ["ExponentialLR", "PolynomialLR", "CosineAnnealingLR", "MultiplicativeLR",
                                  "LinearLR"])
def test_a_schedule_restarted_at_last_epoch_minus_one_follows_torch(name: str) -> None:
    # older torch keeps the LR wherever last_epoch reaches 0; newer torch only in the constructor's step
    got = []
    for M, swa in SIDES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            o = _opt("float")
            s = BUILDERS[name](M, swa, o)
            for _ in range(3):
                o.step()
                s.step()
            state = s.state_dict()
            state["last_epoch"] = -1
            s.load_state_dict(state)
            seen = []
            for _ in range(4):
                o.step()
                s.step()
                seen.append(_floats(g["lr"] for g in o.param_groups))
        got.append(seen)
    assert got[0] == got[1]


def _warnings_of(fn: Callable[[], Any]) -> list[tuple[Any, str, str]]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fn()
    return [(x.category, str(x.message), x.filename) for x in w]


def test_step_warnings_name_the_line_the_installed_torch_names() -> None:
    # newer torch names the caller of step(); older torch its own line
    got = []
    for M, _ in SIDES:
        o = _opt("float")
        s = M.StepLR(o, 2)
        early = _warnings_of(lambda: s.step())
        o.step()
        epoch = _warnings_of(lambda: s.step(4))
        got.append((early, epoch))
    assert got[0] == got[1] and got[0][0] and got[0][1]


def test_isinstance_relations_hold() -> None:
    for M, swa in SIDES:
        o = _opt("float")
        s = BUILDERS["StepLR"](M, swa, o)
        assert isinstance(s, tl.LRScheduler) and isinstance(s, tl.StepLR)
    assert isinstance(ts.SWALR(_opt("float"), swa_lr=0.05), swa_utils.SWALR)
