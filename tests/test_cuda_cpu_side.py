"""The CPU-testable half of the CUDA path (torchsched._cuda): build checks, device resolution, the device state
layout, the host mirror, state_dict validation, the GradScaler flag and the optimizer LR checks.

Everything here runs on real CPU tensors; a CUDA device only appears as a torch.device object handed to the
pure check functions. What needs a GPU is in tests/test_cuda.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import torchsched._cuda as tc
from torchsched import _core
from torchsched import schedules as S
from torchsched._engine import FLOAT32, Engine
from torchsched._program import Code, compile_many
from torchsched.schedules import _Leaf

CUDA0 = torch.device("cuda", 0)


def texp(gamma: float):
    """torch's chainable ExponentialLR rule (lr <- lr * gamma after step 0) as a one-leaf schedule."""
    return _Leaf("torch_exponential", {"gamma": gamma}, Code.TORCH_EXPONENTIAL, [gamma])


def params(n: int = 2, size: int = 3) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(size)) for _ in range(n)]


# ---- build and runtime checks -------------------------------------------------------------------

def test_cpu_build_raises_with_rebuild_instructions(monkeypatch):
    monkeypatch.setattr(tc._core, "built_with_cuda", lambda: False)
    with pytest.raises(RuntimeError, match="TORCHSCHED_CUDA=ON") as err:
        tc.CudaEngine(S.cosine(10), [0.1], device="cuda:0")
    assert "nvcc" in str(err.value) and "pip install" in str(err.value)


@pytest.mark.skipif(_core.built_with_cuda(), reason="this core has the CUDA engine")
def test_core_without_cuda_refuses_the_launch():
    with pytest.raises(RuntimeError, match="built without CUDA"):
        _core.advance_cuda(8, 8, 8, 8, 1, 8, 8, 8, 8, 0, False, 0, True, 0)


@pytest.mark.skipif(not _core.built_with_cuda() or _core.cuda_available(), reason="needs a CUDA build, no device")
def test_launch_error_becomes_runtime_error_with_cuda_string():
    # No device: the launch fails before anything touches these fake addresses.
    with pytest.raises(RuntimeError, match=r"torchsched: CUDA launch of advance_kernel failed: cudaError\w+: "):
        _core.advance_cuda(8, 8, 8, 8, 1, 8, 8, 8, 8, 0, False, 0, True, 0)


@pytest.mark.skipif(not _core.built_with_cuda(), reason="the CPU build refuses every call the same way")
def test_core_validates_before_launching():
    with pytest.raises(ValueError, match="null"):
        _core.advance_cuda(0, 8, 8, 8, 1, 8, 8, 8, 8, 0, False, 0, True, 0)
    with pytest.raises(ValueError, match="groups must be >= 1"):
        _core.advance_cuda(8, 8, 8, 8, 0, 8, 8, 8, 8, 0, False, 0, True, 0)
    with pytest.raises(ValueError, match="dtype code"):
        _core.advance_cuda(8, 8, 8, 8, 1, 8, 8, 8, 8, 7, False, 0, True, 0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a device")
def test_engine_without_a_device_says_so():
    with pytest.raises(RuntimeError, match="no CUDA device|built without its CUDA engine"):
        tc.CudaEngine(S.cosine(10), [0.1], device="cuda:0")


needs_cuda_build = pytest.mark.skipif(not _core.built_with_cuda(), reason="a CPU build refuses before any check")


@needs_cuda_build
def test_engine_argument_errors_come_first():
    with pytest.raises(TypeError, match="float32 or torch.float64"):
        tc.CudaEngine(S.cosine(10), [0.1], device="cuda:0", dtype=torch.float16)
    with pytest.raises(ValueError, match="base_lrs"):
        tc.CudaEngine(S.cosine(10), [-1.0], device="cuda:0")
    with pytest.raises(ValueError, match="initial_lrs has 1 entries for 2 groups"):
        tc.CudaEngine(S.cosine(10), [0.1, 0.2], device="cuda:0", initial_lrs=[0.1])
    with pytest.raises(ValueError, match="initial_lrs\\[0\\] must be finite"):
        tc.CudaEngine(S.cosine(10), [0.1], device="cuda:0", initial_lrs=[math.nan])


# ---- devices -------------------------------------------------------------------------------------

def test_cpu_params_are_refused_with_the_cpu_engine_named():
    if _core.built_with_cuda():
        with pytest.raises(ValueError, match="not on a CUDA device.*torchsched.Engine"):
            tc.CudaEngine(S.cosine(10), [0.1], params=params(1))
    with pytest.raises(ValueError, match="not on a CUDA device"):
        tc.resolve_device(params=params(2))


def test_resolve_device_rules():
    assert tc.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert tc.resolve_device(2) == torch.device("cuda", 2)
    assert tc.resolve_device(torch.device("cuda", 0)) == CUDA0
    with pytest.raises(ValueError, match="must be a CUDA device"):
        tc.resolve_device("cpu")
    with pytest.raises(ValueError, match="must be a CUDA device"):
        tc.resolve_device("meta")
    with pytest.raises(ValueError, match="not a device"):
        tc.resolve_device("gpu0")
    with pytest.raises(TypeError, match="device must be"):
        tc.resolve_device(True)
    with pytest.raises(ValueError, match="pass device= or params="):
        tc.resolve_device()
    mixed = [torch.zeros(1), torch.zeros(1, device="meta")]
    with pytest.raises(ValueError, match="several devices"):
        tc.resolve_device(params=mixed)
    groups = [{"params": [torch.zeros(1)]}, {"params": [torch.zeros(1, device="meta")]}]
    with pytest.raises(ValueError, match="several devices"):
        tc.resolve_device(params=groups)


# ---- device state layout -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("groups", [1, 3, 1000])
def test_state_layout_views_alias_the_packed_bytes(dtype, groups):
    layout = tc.StateLayout(groups, dtype)
    assert layout.nbytes % 8 == 0 and layout.mirror_offset % 8 == 0 and layout.out_offset % 8 == 0
    rng = np.random.default_rng(groups)
    mirror = rng.random(groups)
    out = rng.random(groups).astype(np.float32 if dtype == torch.float32 else np.float64)
    state = torch.from_numpy(layout.pack(123456789012, mirror, out))
    step_v, mirror_v, out_v = layout.views(state)
    assert step_v.shape == (1,) and int(step_v[0]) == 123456789012
    assert np.array_equal(mirror_v.numpy(), mirror) and np.array_equal(out_v.numpy(), out)
    assert out_v.dtype == dtype and mirror_v.dtype == torch.float64
    # Writing through the views (as the kernel does) is what unpack reads back: one copy gets everything.
    step_v.fill_(7)
    mirror_v.mul_(2)
    out_v.add_(1)
    step, mirror2, out2 = layout.unpack(state.numpy())
    assert step == 7
    assert np.array_equal(mirror2, mirror * 2)
    assert np.array_equal(out2, out + out.dtype.type(1))


def test_state_layout_rejects_wrong_buffers():
    layout = tc.StateLayout(4, torch.float32)
    with pytest.raises(ValueError, match="uint8"):
        layout.views(torch.zeros(layout.nbytes // 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="bytes"):
        layout.unpack(np.zeros(layout.nbytes + 8, dtype=np.uint8))
    with pytest.raises(TypeError):
        tc.StateLayout(4, torch.int32)


# ---- host mirror ---------------------------------------------------------------------------------

def mirror_for(schedules, base_lrs, dtype=torch.float32, read_prev=False, initial=None, step=0):
    host = Engine(schedules, base_lrs, step=step)
    init = list(host._core.scale()) if initial is None else initial
    return tc.HostMirror(host, dtype, read_prev, init)


SCHEDULES = [
    S.cosine(50, final=0.1),
    S.warmup(5) >> S.cosine(40, final=0.2),
    S.exponential(0.97),
    S.cyclic(0.1, 1.0, 7),
    S.one_cycle(60),
    S.multistep([3, 9, 9, 20], 0.5),
    S.warmup_stable_decay(4, 6, 10, decay_shape="1-sqrt"),
]


@pytest.mark.parametrize("sched", SCHEDULES, ids=lambda s: s._name)
def test_lazy_mirror_matches_the_cpu_engine_step_by_step(sched):
    mirror = mirror_for([sched, sched * 0.5], [0.1, 0.3], step=2)
    reference = Engine([sched, sched * 0.5], [0.1, 0.3], step=2)
    assert not mirror.eager
    for _ in range(70):
        assert mirror.lrs() == reference.lrs()
        assert mirror.step == reference.step
        mirror.advance()
        reference.advance()
    # Skipping reads is exact too: the value depends on the step alone.
    for _ in range(5):
        mirror.advance()
        reference.advance()
    assert mirror.lrs() == reference.lrs()


def test_chainable_program_is_evaluated_every_step_in_float32_like_the_device():
    gamma = 0.9
    # LR = scale * rule(prev): chainable rules carry the magnitude in prev, so the scale is 1.
    mirror = mirror_for(texp(gamma), [1.0, 1.0], read_prev=True, initial=[0.5, 0.25])
    assert mirror.chainable and mirror.eager
    # Oracle: the device reads prev from the float32 buffer, multiplies in float64, stores float32.
    expected = np.array([0.5, 0.25], dtype=np.float32)
    assert np.array_equal(mirror.shadow, expected)
    for _ in range(40):
        mirror.advance()
        expected = (expected.astype(np.float64) * gamma).astype(np.float32)
        assert np.array_equal(mirror.shadow, expected)
    # The float64 mirror holds the unrounded product of the last step.
    assert mirror.lrs()[0] == pytest.approx(float(expected[0]), rel=1e-7)
    assert mirror.lrs()[0] != float(expected[0]) or mirror.lrs()[1] != float(expected[1])


def test_chainable_without_read_prev_chains_the_float64_mirror():
    mirror = mirror_for(texp(0.9), [1.0], read_prev=False, initial=[0.5])
    assert mirror.eager
    for _ in range(10):
        mirror.advance()
    assert mirror.lrs()[0] == pytest.approx(0.5 * 0.9**10, rel=1e-15)


def test_initial_lrs_seed_chainable_rules():
    mirror = mirror_for(texp(0.5), [1.0], read_prev=True, initial=[0.8])
    mirror.advance()
    assert mirror.lrs() == [pytest.approx(0.4)]


def test_mirror_staleness_flags_and_load():
    mirror = mirror_for(S.cosine(100), [1.0])
    assert not mirror.stale
    mirror.advance(maybe_skipped=True)
    assert mirror.stale and mirror.possibly_skipped and mirror.step == 1
    # The device held the step: a resync loads what the device has and clears the flag.
    mirror.load(0, [1.0], [1.0])
    assert not mirror.stale and mirror.step == 0 and mirror.lrs() == [1.0]
    mirror.record_capture()
    assert mirror.stale and mirror.step == 0  # a captured advance does not move the host
    device_values = S.cosine(100).values([37])
    mirror.load(37, device_values, device_values)
    assert not mirror.stale and mirror.step == 37 and mirror.lrs() == [float(device_values[0])]
    mirror.advance()
    assert mirror.lrs() == [S.cosine(100)(38)]
    with pytest.raises(ValueError, match="step"):
        mirror.load(-1, [0.0], [0.0])


def test_set_step_and_rewrite():
    sched = S.cosine(100)
    mirror = mirror_for(sched, [2.0])
    mirror.set_step(40)
    assert mirror.lrs() == [2.0 * sched(40)]
    mirror.rewrite()
    assert mirror.lrs() == [2.0 * sched(40)] and mirror.step == 40


@given(st.integers(1, 40), st.lists(st.floats(1e-4, 1.0), min_size=1, max_size=5), st.integers(0, 60))
def test_lazy_mirror_random(total, base_lrs, steps):
    sched = S.warmup(total) >> S.cosine(2 * total, final=0.05)
    mirror = mirror_for(sched, base_lrs)
    for _ in range(steps):
        mirror.advance()
    assert mirror.lrs() == [b * sched(steps) for b in base_lrs]


def compiled(schedules):
    program, roots = compile_many(schedules)
    return program, [int(r) for r in roots]


def test_program_host_is_the_engine_on_a_caller_compiled_program():
    sched = S.warmup(5) >> S.cosine(50, final=0.1)
    program, roots = compiled([sched, S.exponential(0.9)])
    host = tc.ProgramHost(program, roots + [roots[0]], [0.1, 0.2, 0.3], step=3)
    mirror = tc.HostMirror(host, torch.float32, False, list(host._core.scale()))
    reference = Engine([sched, S.exponential(0.9), sched], [0.1, 0.2, 0.3], step=3)
    for _ in range(30):
        assert mirror.lrs() == reference.lrs()
        mirror.advance()
        reference.advance()
    host.set_multiplier(2, 0.5)
    reference.set_multiplier(2, 0.5)
    mirror.rewrite()
    reference.step = reference.step  # rewrites the mirror at the current step
    assert mirror.lrs() == reference.lrs() and host.multipliers == [1.0, 1.0, 0.5]


def test_program_host_checks_its_arguments():
    program, roots = compiled([S.cosine(10)])
    with pytest.raises(TypeError, match="_core.Program"):
        tc.ProgramHost(object(), roots, [0.1])
    with pytest.raises(ValueError, match="at least one"):
        tc.ProgramHost(program, [], [])
    with pytest.raises(TypeError, match="roots\\[0\\] must be an integer"):
        tc.ProgramHost(program, [0.5], [0.1])
    with pytest.raises(ValueError, match="root 7 out of range"):
        tc.ProgramHost(program, [7], [0.1])
    with pytest.raises(ValueError, match="scale has 2 entries for 1 groups"):
        tc.ProgramHost(program, roots, [0.1, 0.2])
    with pytest.raises(ValueError, match="scale\\[0\\] must be >= 0"):
        tc.ProgramHost(program, roots, [-0.1])
    with pytest.raises(ValueError, match="step"):
        tc.ProgramHost(program, roots, [0.1], step=-2)
    with pytest.raises(ValueError, match="multiplier must be >= 0"):
        tc.ProgramHost(program, roots, [0.1]).set_multiplier(0, -1.0)


@needs_cuda_build
def test_from_program_checks_before_touching_a_device():
    program, roots = compiled([S.cosine(10)])
    with pytest.raises(ValueError, match="root 3 out of range"):
        tc.CudaEngine.from_program(program, [3], [0.1], device="cuda:0")
    with pytest.raises(TypeError, match="float32 or torch.float64"):
        tc.CudaEngine.from_program(program, roots, [0.1], device="cuda:0", dtype=torch.int8)
    with pytest.raises(ValueError, match="not on a CUDA device"):
        tc.CudaEngine.from_program(program, roots, [0.1], params=params(1))


# ---- the engine's LR loading, on CPU memory -------------------------------------------------------

def engine_on_cpu(schedules, base_lrs, dtype=torch.float32):
    """A CudaEngine whose tables and state live in CPU memory, built without the device checks and the first
    launch: load_lrs / copy_lrs_from do their host-side bookkeeping and their copies on real tensors."""
    engine = tc.CudaEngine.__new__(tc.CudaEngine)
    host = Engine(schedules, base_lrs)
    engine._allocate(host, torch.device("cpu"), 0, dtype, False, list(host._core.scale()))
    return engine


def state_of(engine):
    return engine._layout.unpack(engine._state.numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_load_lrs_sets_step_mirror_and_buffer_on_both_sides(dtype):
    sched = S.cosine(100, final=0.1)
    engine = engine_on_cpu([sched, sched], [0.1, 0.3], dtype)
    values = [0.123456789123, 0.0456]
    engine.load_lrs(41, values)
    step, mirror, out = state_of(engine)
    assert step == 41 and engine.step == 41 and not engine.stale
    assert mirror.tolist() == values and engine.lrs() == values
    rounded = np.asarray(values).astype(np.float32 if dtype == torch.float32 else np.float64)
    assert np.array_equal(out, rounded) and np.array_equal(engine._host.shadow, rounded)
    assert engine.lr_buffer.tolist() == rounded.tolist()
    # The host mirror carries on from the loaded step, as the device does.
    engine._host.advance()
    assert engine.lrs() == [0.1 * sched(42), 0.3 * sched(42)]


def test_load_lrs_checks_before_copying():
    engine = engine_on_cpu(S.cosine(10), [0.1, 0.2])
    before = engine._state.clone()
    with pytest.raises(ValueError, match="2 finite values"):
        engine.load_lrs(3, [0.1])
    with pytest.raises(ValueError, match="2 finite values"):
        engine.load_lrs(3, [0.1, math.nan])
    with pytest.raises(ValueError, match="step"):
        engine.load_lrs(-1, [0.1, 0.2])
    assert torch.equal(engine._state, before) and engine.step == 0


def test_copy_lrs_from_takes_the_other_engines_lrs_and_keeps_the_step():
    ours = engine_on_cpu(S.cosine(100), [0.1, 0.2])
    other = engine_on_cpu(S.exponential(0.9), [0.5, 0.6])
    ours.load_lrs(7, [0.01, 0.02])
    other.load_lrs(30, [0.123456789123, 0.25])
    ours.copy_lrs_from(other)
    step, mirror, out = state_of(ours)
    assert step == 7 and ours.step == 7 and not ours.stale
    assert mirror.tolist() == [0.123456789123, 0.25] and ours.lrs() == [0.123456789123, 0.25]
    assert np.array_equal(out, np.float32([0.123456789123, 0.25])) and np.array_equal(ours._host.shadow, out)
    # a float64 engine adopting a float32 one: its buffer holds the float64 LRs, on both sides
    wide = engine_on_cpu(S.cosine(100), [0.1, 0.2], torch.float64)
    wide.copy_lrs_from(other)
    assert state_of(wide)[2].tolist() == [0.123456789123, 0.25]
    assert np.array_equal(wide._host.shadow, state_of(wide)[2])
    # a lazily evaluated program: the LRs of its current step, not the ones it was seeded with
    lazy = engine_on_cpu(S.cosine(100), [1.0, 2.0])
    lazy._host.advance()
    ours.copy_lrs_from(lazy)
    assert ours.lrs() == [S.cosine(100)(1), 2.0 * S.cosine(100)(1)]
    assert np.array_equal(ours._host.shadow, np.float32(ours.lrs()))
    with pytest.raises(ValueError, match="3 groups"):
        ours.copy_lrs_from(engine_on_cpu(S.cosine(10), [0.1, 0.2, 0.3]))
    with pytest.raises(TypeError, match="CudaEngine"):
        ours.copy_lrs_from(object())  # type: ignore[arg-type]


def test_chainable_is_the_programs_property():
    assert engine_on_cpu(texp(0.9), [1.0]).chainable
    assert not engine_on_cpu(S.cosine(10), [1.0]).chainable


# ---- state dicts ---------------------------------------------------------------------------------

def test_check_state_dict():
    good = {"step": 3, "groups": 2, "mirror": [0.1, 0.2], "lr_buffer": [0.1, 0.2]}
    assert tc.check_state_dict(good, 2) == (3, [0.1, 0.2], [0.1, 0.2])
    with pytest.raises(ValueError, match="for 2 groups, this engine has 3"):
        tc.check_state_dict(good, 3)
    with pytest.raises(KeyError, match="lr_buffer"):
        tc.check_state_dict({"step": 1, "mirror": [0.1]}, 1)
    with pytest.raises(ValueError, match="step"):
        tc.check_state_dict({**good, "step": -1}, 2)
    with pytest.raises(ValueError, match="step"):
        tc.check_state_dict({**good, "step": True}, 2)
    with pytest.raises(ValueError, match="finite"):
        tc.check_state_dict({**good, "mirror": [0.1, math.inf]}, 2)
    with pytest.raises(TypeError):
        tc.check_state_dict([1, 2], 2)


# ---- GradScaler ----------------------------------------------------------------------------------

def test_scaler_found_inf_is_the_per_device_flag():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    with pytest.raises(ValueError, match="after scaler.step"):
        tc.scaler_found_inf(scaler, opt, "cpu")
    scaler.scale((p * 2).sum()).backward()
    scaler.step(opt)
    flag = tc.scaler_found_inf(scaler, opt, "cpu")
    assert flag.dtype == torch.float32 and flag.numel() == 1 and float(flag) == 0.0
    scaler.update()
    opt.zero_grad()
    scaler.scale((p * math.inf).sum()).backward()
    scaler.step(opt)
    assert float(tc.scaler_found_inf(scaler, opt, "cpu")) == 1.0
    scaler.update()
    with pytest.raises(ValueError, match="before scaler.update"):
        tc.scaler_found_inf(scaler, opt, "cpu")
    with pytest.raises(TypeError, match="GradScaler"):
        tc.scaler_found_inf(object(), opt, "cpu")
    with pytest.raises(ValueError, match="disabled"):
        tc.scaler_found_inf(torch.amp.GradScaler("cpu", enabled=False), opt, "cpu")


# ---- optimizer checks ----------------------------------------------------------------------------

def group_of(optimizer):
    return optimizer.param_groups[0]


def flags(optimizer, dtype=torch.float32, capture=False, allow_unverified=False):
    tc.check_group_flags(0, group_of(optimizer), tc._optimizer_kind(optimizer), type(optimizer).__name__, dtype,
                         capture=capture, allow_unverified=allow_unverified)


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_adam_paths(cls):
    with pytest.raises(ValueError, match=r"single-tensor path.*\.item\(\).*fused=True.*capturable=True"):
        flags(cls(params(), lr=0.1))
    with pytest.raises(ValueError, match="foreach=True rejects a tensor LR"):
        flags(cls(params(), lr=0.1, foreach=True))
    flags(cls(params(), lr=0.1, capturable=True))
    flags(cls(params(), lr=0.1, capturable=True), capture=True)
    flags(cls(params(), lr=0.1, foreach=True, capturable=True), capture=True)
    flags(cls(params(), lr=0.1, fused=True))
    with pytest.raises(ValueError, match="capture health check.*capturable=True"):
        flags(cls(params(), lr=0.1, fused=True), capture=True)
    flags(cls(params(), lr=0.1, fused=True, capturable=True), capture=True)
    with pytest.raises(TypeError, match="read the LR tensor as float32"):
        flags(cls(params(), lr=0.1, fused=True), dtype=torch.float64)
    flags(cls(params(), lr=0.1, capturable=True), dtype=torch.float64)


def test_torch_still_rejects_a_tensor_lr_on_adam_foreach_without_capturable():
    # The premise of the foreach message above: if torch ever accepts this, the check must be revisited.
    with pytest.raises((ValueError, RuntimeError), match="capturable=False and foreach=True"):
        torch.optim.Adam(params(), lr=torch.tensor(0.1), foreach=True)


def test_sgd_and_adagrad_need_fused():
    with pytest.raises(ValueError, match=r"alpha=-lr.*\.item\(\).*fused=True"):
        flags(torch.optim.SGD(params(), lr=0.1))
    with pytest.raises(ValueError, match="alpha=-lr"):
        flags(torch.optim.SGD(params(), lr=0.1, momentum=0.9, foreach=True))
    flags(torch.optim.SGD(params(), lr=0.1, fused=True))
    flags(torch.optim.SGD(params(), lr=0.1, fused=True), capture=True)
    with pytest.raises(ValueError, match=r"Adagrad.*\.item\(\).*step counter on the host.*fused=True"):
        flags(torch.optim.Adagrad(params(), lr=0.1))
    flags(torch.optim.Adagrad(params(), lr=0.1, fused=True))
    with pytest.raises(TypeError, match="float32"):
        flags(torch.optim.SGD(params(), lr=0.1, fused=True), dtype=torch.float64)


def test_unverified_optimizers_need_an_explicit_opt_in():
    opt = torch.optim.RMSprop(params(), lr=0.1, capturable=True)
    with pytest.raises(TypeError, match="not verified that RMSprop.*allow_unverified=True"):
        flags(opt)
    flags(opt, allow_unverified=True)


def test_group_lr_rules_with_cuda_params():
    with pytest.raises(ValueError, match=r"CPU tensor but the params are on cuda:0.*graph would freeze"):
        tc.check_group_lr(0, torch.tensor(0.1), CUDA0)
    with pytest.raises(ValueError, match="Python float"):
        tc.check_group_lr(1, 0.1, CUDA0)
    with pytest.raises(ValueError, match="lr is on meta but the params are on cuda:0"):
        tc.check_group_lr(0, torch.tensor(0.1, device="meta"), CUDA0)


def test_group_lr_shape_dtype_grad_rules_on_real_tensors():
    cpu = torch.device("cpu")
    # The shape, dtype and grad rules do not depend on the device; run them with CPU params.
    tc.check_group_lr(0, torch.tensor(0.1), cpu)
    tc.check_group_lr(0, torch.tensor([0.1], dtype=torch.float64), cpu)
    with pytest.raises(ValueError, match="one element"):
        tc.check_group_lr(0, torch.tensor([0.1, 0.2]), cpu)
    with pytest.raises(TypeError, match="float32 or float64"):
        tc.check_group_lr(0, torch.tensor(0.1, dtype=torch.float16), cpu)
    with pytest.raises(ValueError, match="requires grad"):
        tc.check_group_lr(0, torch.tensor(0.1, requires_grad=True), cpu)


def two_groups(lr, cls=torch.optim.SGD, **kw):
    a, b = params(2)
    return cls([{"params": [a]}, {"params": [b]}], lr=lr, **kw)


def test_shared_default_lr_tensor_is_detected_and_replaced():
    opt = two_groups(torch.tensor(0.1), fused=True)
    assert opt.param_groups[0]["lr"] is opt.param_groups[1]["lr"]  # torch shares its lr= default
    with pytest.raises(ValueError, match="param groups 0 and 1 share one LR tensor"):
        tc.check_optimizer_for_device_lrs(opt)
    buffer = torch.zeros(2)
    installed = tc.replace_shared_lr_tensors(opt, buffer)
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs[0] is installed[0] and lrs[1] is installed[1]
    assert lrs[0].data_ptr() != lrs[1].data_ptr()
    tc.check_optimizer_for_device_lrs(opt, buffer)
    # The groups now read the buffer an engine writes: different LRs per group reach the update.
    engine = Engine(S.constant(), [0.5, 0.25])
    engine.write(buffer)
    assert [float(x) for x in lrs] == [0.5, 0.25]
    for p in (opt.param_groups[0]["params"][0], opt.param_groups[1]["params"][0]):
        p.grad = torch.ones_like(p)
    opt.step()
    assert torch.equal(opt.param_groups[0]["params"][0].detach(), torch.full((3,), 0.5))
    assert torch.equal(opt.param_groups[1]["params"][0].detach(), torch.full((3,), 0.75))


def test_replace_checks_before_touching_the_optimizer():
    opt = two_groups(0.1)
    with pytest.raises(ValueError, match="one element per group"):
        tc.replace_shared_lr_tensors(opt, torch.zeros(3))
    with pytest.raises(TypeError, match="CudaEngine"):
        tc.replace_shared_lr_tensors(opt, Engine(S.constant(), [0.1, 0.1]))
    with pytest.raises(ValueError, match="params are on cpu, the engine's LR buffer on meta"):
        tc.replace_shared_lr_tensors(opt, torch.zeros(2, device="meta"))
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]  # untouched


def test_check_with_engine_views_detects_foreign_tensors():
    opt = two_groups(0.1, fused=True)
    buffer = torch.zeros(2)
    tc.replace_shared_lr_tensors(opt, buffer)
    opt.param_groups[1]["lr"] = torch.tensor(0.3)
    tc.check_optimizer_for_device_lrs(opt)  # fine on its own: its own tensor, on the params' device
    with pytest.raises(ValueError, match="param group 1: lr is not the engine's LR tensor for group 1"):
        tc.check_optimizer_for_device_lrs(opt, buffer)


def test_check_rejects_lr_device_mismatch_and_non_optimizers():
    opt = two_groups(0.1)
    opt.param_groups[0]["lr"] = torch.tensor(0.1, device="meta")
    with pytest.raises(ValueError, match="param group 0: lr is on meta but the params are on cpu"):
        tc.check_optimizer_for_device_lrs(opt)
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        tc.check_optimizer_for_device_lrs([{"params": []}])


def test_params_of_and_tensors_of():
    opt = two_groups(0.1)
    assert len(list(tc.params_of(opt))) == 2
    assert len(tc._tensors_of(opt)) == 2
    model = torch.nn.Linear(2, 2)
    assert len(tc._tensors_of(model.named_parameters())) == 2
    with pytest.raises(TypeError, match="params must hold tensors"):
        tc._tensors_of([1.0])


def test_float32_code_is_the_core_code():
    assert tc._dtype_info(torch.float32)[0] == FLOAT32 == 0
