"""float32 LR tensors: the drop-ins give torch's float32 LRs bit for bit.

torch computes a float32 LR tensor's next value in float32 tensor arithmetic (each Python float it meets is
cast to float32, each operation rounds to float32); the core emulates that for every rule that reads the LR
tensors (``torch_apply_f32`` and the closed forms in ``torch_rules.hpp``). Compared here with the installed torch,
whatever its version, exactly: a group held at ``eta_min`` must stay there, as it does in torch.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchsched import lr_scheduler as SL
from torchsched import schedules as S

TL = torch.optim.lr_scheduler
STEPS = 120

CLASSES: dict[str, Callable[[Any, Any, st.DataObject], Any]] = {
    "StepLR": lambda M, o, d: M.StepLR(o, d.draw(st.integers(1, 9)), gamma=d.draw(st.floats(0.1, 0.99))),
    "MultiStepLR": lambda M, o, d: M.MultiStepLR(o, sorted(d.draw(st.lists(st.integers(1, 100), max_size=4))),
                                                 gamma=d.draw(st.floats(0.1, 0.99))),
    "ExponentialLR": lambda M, o, d: M.ExponentialLR(o, d.draw(st.floats(0.9, 0.999))),
    "ConstantLR": lambda M, o, d: M.ConstantLR(o, d.draw(st.floats(0.1, 1.0)), d.draw(st.integers(1, 50))),
    "LinearLR": lambda M, o, d: M.LinearLR(o, d.draw(st.floats(0.05, 1.0)), d.draw(st.floats(0.05, 1.0)),
                                           d.draw(st.integers(1, 60))),
    "PolynomialLR": lambda M, o, d: M.PolynomialLR(o, d.draw(st.integers(1, 150)), d.draw(st.floats(0.5, 3.0))),
    "CosineAnnealingLR": lambda M, o, d: M.CosineAnnealingLR(o, d.draw(st.integers(1, 40)),
                                                             d.draw(st.sampled_from([0.0, 1e-4, 0.01]))),
    "MultiplicativeLR": lambda M, o, d: M.MultiplicativeLR(o, lambda e, f=d.draw(st.floats(0.9, 0.999)): f),
    "LambdaLR": lambda M, o, d: M.LambdaLR(o, S.warmup(d.draw(st.integers(1, 20))) >> S.cosine(100)),
}


def _optimizer(lrs: list[float]) -> torch.optim.Optimizer:
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": torch.tensor(lr)} for lr in lrs])


def _run(module: Any, make: Callable[[Any, Any, st.DataObject], Any], lrs: list[float], draws: list[Any],
         epochs: bool) -> list[list[float]]:
    replay = iter(draws)

    class Replay:  # the same drawn arguments for torch's class and the twin
        def draw(self, strategy: Any) -> Any:
            return next(replay)

    opt = _optimizer(lrs)
    sched = make(module, opt, Replay())  # type: ignore[arg-type]
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step(epoch)'s deprecation warning
        for k in range(1, STEPS + 1):
            opt.step()
            sched.step(k) if epochs else sched.step()
            out.append([g["lr"].item() for g in opt.param_groups])
            assert all(g["lr"].dtype == torch.float32 for g in opt.param_groups)
    return out


class _Recorder:
    def __init__(self, data: st.DataObject) -> None:
        self.data, self.draws = data, []

    def draw(self, strategy: Any) -> Any:
        value = self.data.draw(strategy)
        self.draws.append(value)
        return value


@pytest.mark.parametrize("name", sorted(CLASSES))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), lrs=st.lists(st.sampled_from([0.1, 0.01, 1e-4, 0.3, 3e-3]), min_size=1, max_size=3))
def test_float32_lr_tensors_equal_torchs_exactly(name: str, data: st.DataObject, lrs: list[float]) -> None:
    recorder = _Recorder(data)
    CLASSES[name](SL, _optimizer(lrs), recorder)  # draws the arguments once
    expected = _run(TL, CLASSES[name], lrs, recorder.draws, epochs=False)
    got = _run(SL, CLASSES[name], lrs, recorder.draws, epochs=False)
    assert got == expected


@pytest.mark.parametrize("name", ["StepLR", "ExponentialLR", "ConstantLR", "LinearLR", "PolynomialLR",
                                  "CosineAnnealingLR"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), lrs=st.lists(st.sampled_from([0.1, 0.01, 3e-3]), min_size=1, max_size=2))
def test_float32_closed_forms_equal_torchs_exactly(name: str, data: st.DataObject, lrs: list[float]) -> None:
    """step(epoch): torch's closed form, base LR tensor times a float."""
    recorder = _Recorder(data)
    CLASSES[name](SL, _optimizer(lrs), recorder)
    assert _run(SL, CLASSES[name], lrs, recorder.draws, epochs=True) == \
        _run(TL, CLASSES[name], lrs, recorder.draws, epochs=True)


def test_a_group_at_eta_min_stays_there_in_a_chain() -> None:
    """The drift once seen: a group whose LR equals eta_min wandered by 2e-4 inside a ChainedScheduler."""
    def run(module: Any) -> list[list[float]]:
        opt = _optimizer([0.01, 0.1])
        chain = module.ChainedScheduler([module.CosineAnnealingLR(opt, 7, eta_min=0.01),
                                         module.ExponentialLR(opt, 0.999)])
        out = []
        for _ in range(300):
            opt.step()
            chain.step()
            out.append([g["lr"].item() for g in opt.param_groups])
        return out

    expected = run(TL)
    assert run(SL) == expected
