"""The drop-in schedulers on CUDA tensor LRs: one CudaEngine launch per step, no host sync, torch's numbers.

Tests marked ``cuda`` skip without a GPU (conftest.py); run them with ``pytest -m cuda tests/test_lr_scheduler_cuda.py``.
The selection tests at the end run on the CPU.

Oracle: torch's own scheduler on an identical fused AdamW whose LRs are Python floats (float64 arithmetic in
torch's order). The base LRs are float32-exact, so our float32 LR tensors start from the same values. torch
with float32 *tensor* LRs rounds every chained step in float32, so it is no one-ulp oracle.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as T

import torchsched.lr_scheduler as L
from torchsched import _core
from torchsched import schedules as S
from cuda_helpers import SyncErrors, ulp_distance32
from test_lr_scheduler import ALL_BUILDERS

DEV = torch.device("cuda", 0)
BASES = [float(np.float32(x)) for x in (1e-2, 3e-3, 5e-4)]

CASES = {
    "StepLR": lambda m, o, n: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda m, o, n: m.MultiStepLR(o, milestones=[10, 50, 50, 120], gamma=0.3),
    "ExponentialLR": lambda m, o, n: m.ExponentialLR(o, gamma=0.99),
    "CosineAnnealingLR": lambda m, o, n: m.CosineAnnealingLR(o, T_max=40, eta_min=1e-5),
    "LinearLR": lambda m, o, n: m.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=50),
    "PolynomialLR": lambda m, o, n: m.PolynomialLR(o, total_iters=200, power=2.0),
    "CyclicLR": lambda m, o, n: m.CyclicLR(o, base_lr=1e-4, max_lr=1e-2, step_size_up=13, mode="triangular2",
                                           cycle_momentum=False),
    "OneCycleLR": lambda m, o, n: m.OneCycleLR(o, max_lr=1e-2, total_steps=n + 10, cycle_momentum=False),
    "CosineAnnealingWarmRestarts": lambda m, o, n: m.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=1e-5),
    "SequentialLR": lambda m, o, n: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.01, total_iters=20), m.CosineAnnealingLR(o, T_max=100),
            m.StepLR(o, 30, 0.5)], milestones=[20, 150]),
}


# ---- helpers -------------------------------------------------------------------------------------

def fused_adamw(groups: int, tensor_lr: bool) -> torch.optim.AdamW:
    params = []
    for g in range(groups):
        p = torch.nn.Parameter(torch.full((8,), 0.5 + g, device=DEV))
        p.grad = torch.full_like(p, 0.1)
        params.append(p)
    lrs = [BASES[g % len(BASES)] for g in range(groups)]
    return torch.optim.AdamW(
        [{"params": [p], "lr": torch.tensor(lr, device=DEV) if tensor_lr else lr} for p, lr in zip(params, lrs)],
        fused=True)


def pair(name: str, groups: int = 3, steps: int = 300):
    ours, ref = fused_adamw(groups, True), fused_adamw(groups, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # construction-time step-order warnings, the same on both sides
        return ours, ref, CASES[name](L, ours, steps), CASES[name](T, ref, steps)


def inner_schedulers(sched):
    return list(getattr(sched, "_schedulers", None) or [sched])


def device_lrs(opt) -> torch.Tensor:
    return torch.stack([g["lr"] for g in opt.param_groups])


# ---- numbers -------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("name", list(CASES))
def test_device_lrs_match_torch_within_one_float32_ulp(name):
    ours, ref, s1, s2 = pair(name)
    for s in inner_schedulers(s1):
        assert type(s._stepper) is L._CudaStepper, f"{type(s).__name__} did not take the CUDA engine"
    # every group's LR: its own float32 0-d tensor on the device, a view into one engine buffer
    views = [g["lr"] for g in ours.param_groups]
    assert all(v.dim() == 0 and v.dtype == torch.float32 and v.device == DEV for v in views)
    assert len({v.untyped_storage().data_ptr() for v in views}) == 1
    assert len({v.data_ptr() for v in views}) == len(views)
    got, want, last = [], [], []
    for _ in range(300):
        ours.step()
        ref.step()
        s1.step()
        s2.step()
        got.append(device_lrs(ours))
        want.append(s2.get_last_lr())
        last.append(s1.get_last_lr())
    got_np = torch.stack(got).cpu().numpy()
    want_np = np.asarray(want, dtype=np.float64)
    last_np = np.asarray(last, dtype=np.float64)
    assert all(isinstance(v, float) for v in s1.get_last_lr())
    np.testing.assert_allclose(last_np, want_np, rtol=1e-12, atol=0.0)
    assert ulp_distance32(got_np, want_np.astype(np.float32)).max() <= 1
    # the LRs really move (a frozen schedule would pass nothing above against a moving torch, but say it)
    assert len(np.unique(got_np[:, 0])) > 3


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "ExponentialLR", "MultiStepLR"])
def test_step_with_an_epoch_uses_the_closed_form_without_a_sync(name):
    ours, ref, s1, s2 = pair(name)
    for _ in range(3):
        ours.step(), ref.step(), s1.step(), s2.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's epoch deprecation warning, on both sides
        with SyncErrors():
            for k in range(40):
                ours.step()
                s1.step(k * 3) if k % 5 == 0 else s1.step()
                lrs = s1.get_last_lr()
        for k in range(40):
            ref.step()
            s2.step(k * 3) if k % 5 == 0 else s2.step()
    np.testing.assert_allclose(lrs, s2.get_last_lr(), rtol=1e-12, atol=0.0)
    assert ulp_distance32(device_lrs(ours).cpu().numpy(), np.float32(s2.get_last_lr())).max() <= 1


@pytest.mark.cuda
def test_state_dict_round_trip_continues_like_torch():
    ours, ref, s1, s2 = pair("CosineAnnealingLR")
    for _ in range(25):
        ours.step(), ref.step(), s1.step(), s2.step()
    state = s1.state_dict()
    assert state["last_epoch"] == 25 and state["_last_lr"] == s2.get_last_lr()
    s1.load_state_dict(state)
    for _ in range(25):
        ours.step(), ref.step(), s1.step(), s2.step()
    np.testing.assert_allclose(s1.get_last_lr(), s2.get_last_lr(), rtol=1e-12, atol=0.0)
    assert ulp_distance32(device_lrs(ours).cpu().numpy(), np.float32(s2.get_last_lr())).max() <= 1


# ---- no host sync --------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("name", list(CASES))
def test_a_thousand_steps_without_a_host_sync(name):
    ours, ref, s1, s2 = pair(name, steps=1000)
    ours.step()
    s1.step()  # a first step may rebuild the engine (a parameter set after torch's initial step)
    with SyncErrors():
        for _ in range(999):
            ours.step()
            s1.step()
            last = s1.get_last_lr()
    for _ in range(1000):
        ref.step()
        s2.step()
    np.testing.assert_allclose(last, s2.get_last_lr(), rtol=1e-12, atol=0.0)
    assert ulp_distance32(device_lrs(ours).cpu().numpy(), np.float32(s2.get_last_lr())).max() <= 1


# ---- one launch per step -------------------------------------------------------------------------

def device_events(steps: int, sched) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            sched.step()
        torch.cuda.synchronize()
    return [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]


@pytest.mark.cuda
@pytest.mark.parametrize("name", list(CASES))
def test_one_launch_per_step_whatever_the_group_count(name):
    counts = {}
    for groups in (1, 100):
        ours, _, s1, _ = pair(name, groups=groups)
        for _ in range(30):  # past SequentialLR's first milestone too (its switch is one async copy)
            ours.step()
            s1.step()
        events = device_events(20, s1)
        assert len(events) == 20, events
        assert all("advance_kernel" in e for e in events), events
        counts[groups] = len(events)
    assert counts[1] == counts[100] == 20


# ---- which path: on the CPU ------------------------------------------------------------------------

class _FakeCudaLR(torch.Tensor):
    """A CPU tensor that reports a CUDA device: the one fake, for the selection logic on a machine with no GPU.
    Only ``.device`` is faked; dtype, numel and requires_grad are the real tensor's."""

    @property
    def device(self):  # type: ignore[override]
        return torch.device("cuda", 0)


def fake_cuda_lr(value=0.1, dtype=torch.float32, requires_grad=False):
    t = torch.tensor(value, dtype=dtype, requires_grad=requires_grad)
    return t.as_subclass(_FakeCudaLR)


def test_selection_takes_the_cuda_engine_only_for_tensor_lrs_on_one_cuda_device():
    cpu = torch.tensor(0.1)
    assert L._cuda_lr_target([fake_cuda_lr(), fake_cuda_lr(0.2)]) == (torch.device("cuda", 0), torch.float32)
    assert L._cuda_lr_target([fake_cuda_lr(dtype=torch.float64)]) == (torch.device("cuda", 0), torch.float64)
    assert L._cuda_lr_target([]) is None
    assert L._cuda_lr_target([0.1, 0.2]) is None                        # Python floats
    assert L._cuda_lr_target([cpu, torch.tensor(0.2)]) is None          # CPU tensors: the host engine
    assert L._cuda_lr_target([fake_cuda_lr(), cpu]) is None             # mixed devices
    assert L._cuda_lr_target([fake_cuda_lr(), 0.1]) is None             # mixed types
    assert L._cuda_lr_target([fake_cuda_lr(), fake_cuda_lr(dtype=torch.float64)]) is None  # mixed dtypes
    assert L._cuda_lr_target([fake_cuda_lr(dtype=torch.float16)]) is None
    assert L._cuda_lr_target([fake_cuda_lr(requires_grad=True)]) is None
    assert L._cuda_lr_target([torch.tensor([0.1, 0.2]).as_subclass(_FakeCudaLR)]) is None  # not one element


def cpu_sgd(lr, groups=2, momentum=0.0):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": lr() if callable(lr) else lr} for p in params], lr=0.1,
                           momentum=momentum)


def test_only_pure_core_programs_qualify_for_the_cuda_engine():
    def spec(sched):
        return sched._compile_rule(sched.optimizer.param_groups)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert L._cuda_spec_ok(spec(L.StepLR(cpu_sgd(0.1), 3)))
        assert L._cuda_spec_ok(spec(L.OneCycleLR(cpu_sgd(0.1), max_lr=0.1, total_steps=10, cycle_momentum=False)))
        assert L._cuda_spec_ok(spec(L.LambdaLR(cpu_sgd(0.1), S.cosine(100))))       # a schedule runs in the core
        assert not L._cuda_spec_ok(spec(L.LambdaLR(cpu_sgd(0.1), lambda t: 0.9 ** t)))  # a Python callable
        assert not L._cuda_spec_ok(spec(L.MultiplicativeLR(cpu_sgd(0.1), lambda t: 0.9)))
        assert not L._cuda_spec_ok(spec(L.CyclicLR(cpu_sgd(0.1, momentum=0.9), 0.01, 0.1)))  # momentum cycling
        assert not L._cuda_spec_ok(spec(L.StepLR(cpu_sgd(0.1), 0)))                  # a hazard (torch raises)


def test_cpu_lrs_keep_the_host_engine():
    for lr in (0.1, lambda: torch.tensor(0.1), lambda: torch.tensor(0.1, dtype=torch.float64)):
        opt = cpu_sgd(lr)
        sched = L.CosineAnnealingLR(opt, T_max=10)
        assert type(sched._stepper) is _core.Stepper
        assert sched._stepper.fast_ok  # the C-level step still runs it
        opt.step()
        sched.step()
        assert type(sched._stepper) is _core.Stepper


@pytest.mark.skipif(torch.cuda.is_available() and _core.cuda_available(), reason="this GPU can run the engine")
def test_cuda_lrs_without_a_usable_cuda_engine_warn_and_keep_the_host_engine(monkeypatch):
    monkeypatch.setattr(L._cuda_stepper, "_CUDA_FALLBACK_WARNED", False)
    opt = cpu_sgd(0.1)
    sched = L.StepLR(opt, 3)
    groups = [{"params": [], "lr": fake_cuda_lr(0.1)}, {"params": [], "lr": fake_cuda_lr(0.2)}]
    with pytest.warns(RuntimeWarning, match="per-group path"):
        engine = L._make_stepper(sched._compile_rule(groups), None, groups, sched)
    assert type(engine) is _core.Stepper


class _FakeCudaParam(torch.Tensor):
    """A CPU leaf tensor that reports a CUDA device, as a parameter: only ``.device`` is faked."""

    @property
    def device(self):  # type: ignore[override]
        return torch.device("cuda", 0)


def _fake_cuda_sgd(lr, groups=2):
    params = [torch.zeros(2).as_subclass(_FakeCudaParam).requires_grad_() for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": lr() if callable(lr) else lr} for p in params], lr=0.1)


@pytest.mark.parametrize("name", sorted(ALL_BUILDERS))
def test_a_cpu_lr_tensor_with_cuda_params_is_refused_by_every_class(name):
    # DESIGN: an error, not a fallback: a captured graph would freeze the value the CPU tensor had.
    with pytest.raises(ValueError, match="param group 0: lr is a CPU tensor but the params are on cuda:0"):
        ALL_BUILDERS[name](L, _fake_cuda_sgd(lambda: torch.tensor(0.1)))
    # Python floats stay accepted, as in torch.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = ALL_BUILDERS[name](L, _fake_cuda_sgd(0.1))
    assert len(sched.get_last_lr()) == 2 and all(isinstance(v, float) for v in sched.get_last_lr())


def test_a_cpu_lr_tensor_swapped_in_later_is_refused_at_the_next_step():
    opt = _fake_cuda_sgd(0.1)
    sched = L.StepLR(opt, 3)
    opt.param_groups[1]["lr"] = torch.tensor(0.1)
    opt.step()
    with pytest.raises(ValueError, match="param group 1: lr is a CPU tensor"):
        sched.step()
