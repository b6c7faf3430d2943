"""The CUDA path on a real GPU: CudaEngine against the CPU engine, no host syncs, whole-step CUDA-graph capture,
GradScaler skips, streams, any number of groups in one launch.

Every test is marked ``cuda``; tests/conftest.py skips them unless torch sees a GPU and the core was built with
its CUDA engine. Run them with ``make test-gpu`` (``pytest -m cuda tests``).

On exactness: the kernel and the CPU engine call the same header formulas in double precision, and both are
built without FMA contraction. Families whose formulas use only + - * / sqrt floor and the core's own cosine
(``ts_cos``) therefore agree bit for bit in float64 (test_ieee_families_are_bit_exact_in_float64). CUDA's
``pow``/``exp``/``log``/``tanh``, and the platform ``cos`` that torch's twins keep, are not correctly rounded
(CUDA documents 1-2 ulp), so the general checks require: float64 values within 1e-13 of the group's peak LR;
float32 values (what fused optimizers read) within 1 float32 ulp, except where the value is below 1e-5 of the
peak, where a formula that cancels (``1 + cos(x)`` near pi) may amplify those double ulps and only the 1e-13
bound applies.
"""

from __future__ import annotations

import importlib
import importlib.util
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import torchsched
import torchsched._cuda as tc
from torchsched import schedules as S
from torchsched._cuda import CudaEngine, check_optimizer_for_device_lrs, replace_shared_lr_tensors
from torchsched._engine import FLOAT32, FLOAT64, Engine
from torchsched._program import Code
from torchsched.schedules import _Leaf
from cuda_helpers import FAMILIES, SyncErrors, ulp_distance32

pytestmark = pytest.mark.cuda

DEV = torch.device("cuda", 0)


# ---- helpers -------------------------------------------------------------------------------------

def leaf(name, code, params, table=()):
    return _Leaf(name, {}, code, params, list(table), len(table))


class CpuReference:
    """The CPU engine on the same schedules, writing a host buffer of the same dtype (the oracle)."""

    def __init__(self, schedules, base_lrs, multipliers=None, *, step=0, dtype=torch.float32, read_prev=False,
                 initial=None):
        self.engine = Engine(schedules, base_lrs, multipliers, step=step)
        core = self.engine._core
        self.code = FLOAT32 if dtype == torch.float32 else FLOAT64
        init = np.asarray(core.scale() if initial is None else initial, dtype=np.float64)
        self.out = init.astype(np.float32 if dtype == torch.float32 else np.float64)
        self.read_prev = read_prev
        core.set_mirror(init)
        core.write(self.out.ctypes.data, self.code, self.out.size, read_prev)

    def advance(self):
        self.engine._core.advance(self.out.ctypes.data, self.code, self.out.size, self.read_prev)

    def mirror(self):
        return np.asarray(self.engine._core.mirror(), dtype=np.float64)


def assert_device_matches(dev_out, dev_mirror, cpu_out, cpu_mirror, *, ulps=1, tol64=1e-13):
    """Arrays [steps, G]; see the module docstring for the criterion."""
    dev_out, dev_mirror = np.asarray(dev_out), np.asarray(dev_mirror, dtype=np.float64)
    cpu_out, cpu_mirror = np.asarray(cpu_out), np.asarray(cpu_mirror, dtype=np.float64)
    assert np.all(np.isfinite(dev_mirror)) and np.all(np.isfinite(dev_out))
    peak = np.max(np.abs(cpu_mirror), axis=0, keepdims=True)
    close64 = np.abs(dev_mirror - cpu_mirror) <= tol64 * peak
    bad = np.argwhere(~close64)
    assert bad.size == 0, (f"float64 mismatch at (step, group) {bad[:5].tolist()}: device "
                           f"{dev_mirror[tuple(bad[0])]!r} cpu {cpu_mirror[tuple(bad[0])]!r}")
    if dev_out.dtype == np.float64:
        assert np.array_equal(dev_out, dev_mirror)  # the buffer holds exactly what the kernel computed
    else:
        near = ulp_distance32(dev_out, cpu_out) <= ulps
        ill_conditioned = (np.abs(cpu_mirror) < 1e-5 * peak) & close64
        bad = np.argwhere(~(near | ill_conditioned))
        assert bad.size == 0, (f"float32 mismatch at (step, group) {bad[:5].tolist()}: device "
                               f"{dev_out[tuple(bad[0])]!r} cpu {cpu_out[tuple(bad[0])]!r}")


def run_both(schedules, base_lrs, multipliers=None, *, steps, start=0, dtype=torch.float32, read_prev=False,
             initial=None):
    """Advances a CudaEngine and the CPU reference in lockstep; returns the four [steps+1, G] histories."""
    engine = CudaEngine(schedules, base_lrs, multipliers, device=DEV, step=start, dtype=dtype, read_prev=read_prev,
                        initial_lrs=initial)
    ref = CpuReference(schedules, base_lrs, multipliers, step=start, dtype=dtype, read_prev=read_prev,
                       initial=initial)
    groups = engine.groups
    dev_out = torch.empty((steps + 1, groups), dtype=dtype, device=DEV)
    dev_mirror = torch.empty((steps + 1, groups), dtype=torch.float64, device=DEV)
    cpu_out = np.empty((steps + 1, groups), dtype=ref.out.dtype)
    cpu_mirror = np.empty((steps + 1, groups))
    for k in range(steps + 1):
        if k:
            engine.advance()
            ref.advance()
        dev_out[k].copy_(engine.lr_buffer)
        dev_mirror[k].copy_(engine.device_mirror)
        cpu_out[k] = ref.out
        cpu_mirror[k] = ref.mirror()
        # The engine's host mirror is the CPU engine's arithmetic, step for step: equal, with no sync.
        assert engine.lrs() == list(cpu_mirror[k])
    assert engine.step == start + steps and not engine.stale
    return dev_out.cpu().numpy(), dev_mirror.cpu().numpy(), cpu_out, cpu_mirror


def fused_adamw(groups, **kw):
    return torch.optim.AdamW(groups, lr=torch.tensor(1e-3), fused=True, **kw)


# ---- every family ----------------------------------------------------------------------------------


# torch's chainable rules read the previous LR (LR = 1 * rule(prev)): the engine reads it from its float32
# buffer (read_prev), as torch reads group['lr'].
CHAINABLE = {
    "torch_step": leaf("torch_step", Code.TORCH_STEP, [7, 0.5]),
    "torch_multistep": leaf("torch_multistep", Code.TORCH_MULTISTEP, [0.3], [10, 30, 30, 90]),
    "torch_constant": leaf("torch_constant", Code.TORCH_CONSTANT, [0.25, 20]),
    "torch_linear": leaf("torch_linear", Code.TORCH_LINEAR, [0.1, 1.0, 40]),
    "torch_exponential": leaf("torch_exponential", Code.TORCH_EXPONENTIAL, [0.97]),
    "torch_polynomial": leaf("torch_polynomial", Code.TORCH_POLYNOMIAL, [120, 2.0]),
    "torch_cosine": leaf("torch_cosine", Code.TORCH_COSINE, [0.1, 0.001, 50]),
    "torch_swa_cos": leaf("torch_swa", Code.TORCH_SWA, [0.05, 10, 0]),
    "torch_swa_linear": leaf("torch_swa", Code.TORCH_SWA, [0.05, 10, 1]),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_matches_the_cpu_engine(name, dtype):
    sched = FAMILIES[name]
    histories = run_both([sched, sched, 0.5 * sched], [0.1, 3e-4, 1.0], [1.0, 2.0, 1.0], steps=300, dtype=dtype)
    assert_device_matches(*histories)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(CHAINABLE))
def test_every_chainable_rule_matches_the_cpu_engine(name, dtype):
    sched = CHAINABLE[name]
    histories = run_both(sched, [1.0, 1.0], steps=200, dtype=dtype, read_prev=True, initial=[0.1, 0.02])
    # prev is re-read from the buffer, so a difference carries over to the next steps: in float32 a rounding
    # that lands on the other side (2 ulps, which the float64 mirrors then inherit), in float64 the few-ulp
    # differences of each step, compounded over 200 steps.
    assert_device_matches(*histories, ulps=2, tol64=3e-7 if dtype == torch.float32 else 1e-10)


# Only IEEE-exact operations and ts_cos: no pow, exp, log or tanh anywhere in these formulas.
IEEE_FAMILIES = ["constant", "piecewise_constant", "piecewise_constant_keras", "linear", "inverse_time",
                 "inverse_time_staircase", "inverse_sqrt", "cosine", "cyclic_triangular", "warmup_linear",
                 "warmup_constant", "anneal_linear", "anneal_cosine", "anneal_1-sqrt", "interpolate_linear",
                 "interpolate_cosine", "warmup_stable_decay", "sequence_shift", "product_scale"]


@pytest.mark.parametrize("name", IEEE_FAMILIES)
def test_ieee_families_are_bit_exact_in_float64(name):
    sched = FAMILIES[name]
    dev_out, dev_mirror, cpu_out, cpu_mirror = run_both([sched, 0.5 * sched], [0.1, 3e-4], [1.0, 2.0], steps=300,
                                                        dtype=torch.float64)
    bad = np.argwhere(dev_mirror != cpu_mirror)
    assert bad.size == 0, (f"float64 differs at (step, group) {bad[:5].tolist()}: device "
                           f"{dev_mirror[tuple(bad[0])]!r} cpu {cpu_mirror[tuple(bad[0])]!r}")
    assert np.array_equal(dev_out, cpu_out)


def test_a_resumed_engine_starts_where_the_cpu_engine_does():
    histories = run_both(S.warmup(100) >> S.cosine(900), [1e-3], steps=50, start=437)
    assert_device_matches(*histories)


# ---- random composites -----------------------------------------------------------------------------

LEAVES = st.one_of(
    st.builds(S.constant, st.floats(0.0, 2.0)),
    st.builds(lambda k, g: S.step(k, g), st.integers(1, 20), st.floats(0.1, 1.0)),
    st.builds(lambda r, n, stair: S.exponential(r, n, staircase=stair), st.floats(0.5, 1.0), st.integers(1, 10),
              st.booleans()),
    st.builds(lambda n, p: S.polynomial(n, power=p, final=0.01), st.integers(1, 100), st.floats(0.5, 3.0)),
    st.builds(lambda n, f: S.cosine(n, final=f), st.integers(1, 200), st.floats(0.0, 0.5)),
    st.builds(lambda n, m: S.cosine_restarts(n, period_mult=m), st.integers(2, 30), st.sampled_from([1.0, 1.5, 2.0])),
    st.builds(lambda up, mode: S.cyclic(0.1, 1.0, up, mode=mode), st.integers(1, 20),
              st.sampled_from(["triangular", "triangular2", "exp_range"])),
    st.builds(lambda n, shape: S.warmup(n, init=0.01, shape=shape), st.integers(1, 50),
              st.sampled_from(["linear", "exponential", "constant"])),
    st.builds(lambda n, shape: S.anneal(n, start=1.0, end=0.01, shape=shape), st.integers(1, 50),
              st.sampled_from(["linear", "cosine", "1-sqrt", "exponential"])),
    st.builds(S.inverse_sqrt, st.integers(1, 100)),
    st.builds(S.tanh, st.integers(1, 100)),
)


def _combine(children):
    return st.one_of(
        st.builds(lambda a, b, k: S.sequence([a, b], [k]), children, children, st.integers(0, 50)),
        st.builds(S.product, children, children),
        st.builds(S.scale, children, st.floats(0.0, 3.0)),
        st.builds(S.shift, children, st.integers(0, 50)),
    )


COMPOSITES = st.recursive(LEAVES, _combine, max_leaves=6)


@settings(max_examples=40)
@given(st.lists(COMPOSITES, min_size=1, max_size=5), st.integers(0, 400),
       st.sampled_from([torch.float32, torch.float64]))
def test_random_composites_match_the_cpu_engine(schedules, start, dtype):
    base = [10.0 ** -(1 + g % 4) for g in range(len(schedules))]
    assert_device_matches(*run_both(schedules, base, steps=40, start=start, dtype=dtype))


# ---- no host sync ----------------------------------------------------------------------------------


def test_a_thousand_steps_without_a_host_sync():
    sched = S.warmup(100) >> S.cosine(900, final=0.1)
    engine = CudaEngine(sched, [1e-3] * 64, device=DEV)
    never = torch.zeros((), device=DEV)
    engine.advance()  # the first launch on a stream registers it (outside the checked block)
    with SyncErrors():
        for i in range(999):
            engine.advance(never if i % 3 == 0 else None)
            engine.lrs()
        engine.write()
        views = engine.lr_tensors()
    engine.resync()
    assert engine.step == 1000 and not engine.stale
    expected = np.float32(1e-3 * sched(1000))
    assert ulp_distance32(views[5].cpu().numpy(), expected) <= 1


def tiny_model(seed=0, layers=3, width=16):
    torch.manual_seed(seed)
    mods = []
    for i in range(layers):
        mods.append(torch.nn.Linear(width, width))
        if i + 1 < layers:
            mods.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*mods).to(DEV)
    groups = [{"params": m.parameters()} for m in model if isinstance(m, torch.nn.Linear)]
    return model, groups


def test_a_thousand_training_steps_with_fused_adamw_without_a_host_sync():
    model, groups = tiny_model()
    opt = fused_adamw(groups)
    engine = CudaEngine(S.warmup(50) >> S.cosine(950), [1e-3, 5e-4, 1e-4], device=DEV)
    replace_shared_lr_tensors(opt, engine)
    x = torch.randn(32, 16, device=DEV)

    def step():
        opt.zero_grad(set_to_none=False)
        model(x).square().mean().backward()
        opt.step()
        engine.advance()

    step()  # optimizer state is created here
    with SyncErrors():
        for _ in range(999):
            step()
    engine.resync()
    assert engine.step == 1000
    assert opt.param_groups[2]["lr"].data_ptr() == engine.lr_buffer[2].data_ptr()


def test_wrap_on_cuda_params_does_not_sync():
    if not hasattr(torchsched, "wrap"):
        pytest.skip("torchsched.wrap is not there")
    model, groups = tiny_model()
    schedule = S.warmup(50) >> S.cosine(950)
    opt = torchsched.wrap(fused_adamw(groups), schedule)
    base = list(opt.base_lrs)
    x = torch.randn(32, 16, device=DEV)

    def step():
        opt.zero_grad(set_to_none=False)
        model(x).square().mean().backward()
        opt.step()

    step()
    with SyncErrors():
        for _ in range(999):
            step()
    assert opt.param_groups[0]["lr"].device == DEV
    assert opt.last_step == 1000
    expected = [b * schedule(1000) for b in base]
    assert opt.get_last_lr() == pytest.approx(expected, rel=1e-12, abs=1e-18)
    device_lrs = torch.stack([g["lr"] for g in opt.param_groups]).cpu()
    # within one float32 ulp: libm and CUDA transcendentals may differ in the last double bits
    torch.testing.assert_close(device_lrs, torch.tensor(expected, dtype=torch.float64).to(torch.float32),
                               rtol=1.2e-7, atol=0.0)


def test_lr_scheduler_classes_on_cuda_params_do_not_sync():
    if importlib.util.find_spec("torchsched.lr_scheduler") is None:
        pytest.skip("torchsched.lr_scheduler is not there")
    lr_scheduler = importlib.import_module("torchsched.lr_scheduler")
    if not hasattr(lr_scheduler, "CosineAnnealingLR"):
        pytest.skip("torchsched.lr_scheduler has no CosineAnnealingLR")
    model, groups = tiny_model()
    opt = torch.optim.AdamW(groups, lr=1e-3, fused=True)
    try:
        sched = lr_scheduler.CosineAnnealingLR(opt, T_max=500)
    except NotImplementedError as exc:
        pytest.skip(f"lr_scheduler has no CUDA path yet: {exc}")
    x = torch.randn(32, 16, device=DEV)

    def step():
        opt.zero_grad(set_to_none=False)
        model(x).square().mean().backward()
        opt.step()
        sched.step()

    step()
    with SyncErrors():
        for _ in range(999):
            step()
    assert len(sched.get_last_lr()) == 3


# ---- a whole training step in a CUDA graph ---------------------------------------------------------

def test_a_captured_training_step_replays_like_eager_steps():
    warm, steps = 3, 300
    sched = S.warmup(50) >> S.cosine(250, final=0.1)
    base = [1e-2, 5e-3, 2e-3]
    torch.manual_seed(1)
    xs = torch.randn(warm + steps, 64, 16, device=DEV)
    ys = torch.randn(warm + steps, 64, 16, device=DEV)

    def replica():
        model, groups = tiny_model(seed=0)
        # torch's lr= tensor default is shared by every group: replaced by one view per group.
        opt = torch.optim.AdamW(groups, lr=torch.tensor(1e-3), fused=True, capturable=True)
        engine = CudaEngine(sched, base, device=DEV)
        replace_shared_lr_tensors(opt, engine, capture=True)
        return model, opt, engine

    def train_step(model, opt, engine, x, y):
        loss = (model(x) - y).square().mean()
        loss.backward()
        opt.step()
        engine.advance()

    # Eager: warm + steps plain steps.
    model_a, opt_a, engine_a = replica()
    lrs_a = torch.empty((steps, 3), device=DEV)
    for i in range(warm + steps):
        opt_a.zero_grad(set_to_none=True)
        train_step(model_a, opt_a, engine_a, xs[i], ys[i])
        if i >= warm:
            lrs_a[i - warm].copy_(engine_a.lr_buffer)

    # Graph: the same warm-up steps eagerly on a side stream, then capture one step and replay it.
    model_b, opt_b, engine_b = replica()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(warm):
            opt_b.zero_grad(set_to_none=True)
            train_step(model_b, opt_b, engine_b, xs[i], ys[i])
    torch.cuda.current_stream().wait_stream(side)
    static_x, static_y = xs[warm].clone(), ys[warm].clone()
    graph = torch.cuda.CUDAGraph()
    opt_b.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        train_step(model_b, opt_b, engine_b, static_x, static_y)
    assert engine_b.stale and engine_b.step == warm  # capturing ran nothing
    lrs_b = torch.empty((steps, 3), device=DEV)
    for i in range(steps):
        static_x.copy_(xs[warm + i])
        static_y.copy_(ys[warm + i])
        graph.replay()
        lrs_b[i].copy_(engine_b.lr_buffer)
    torch.cuda.synchronize()

    # The schedule moved inside the graph, exactly as in the eager run.
    assert not torch.equal(lrs_b[0], lrs_b[-1])
    assert torch.equal(lrs_b, lrs_a)
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        # Same kernels in the same order; a captured cuBLAS call may pick another algorithm, hence a tolerance.
        torch.testing.assert_close(pb, pa, rtol=1e-4, atol=1e-6)
    assert engine_b.resync() == warm + steps and not engine_b.stale
    assert engine_b.lrs() == pytest.approx(engine_a.lrs(), rel=1e-13)
    assert engine_b.state_dict()["step"] == engine_a.step == warm + steps


def test_state_dict_after_replays_is_never_stale_and_load_is_in_place():
    sched = S.cosine(100)
    engine = CudaEngine(sched, [1.0], device=DEV)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        engine.advance()
    for _ in range(5):
        graph.replay()
    assert engine.step == 0 and engine.stale  # Python saw no replay
    sd = engine.state_dict()
    assert sd["step"] == 5 and sd["mirror"] == [pytest.approx(sched(5), rel=1e-13)]
    assert engine.step == 5 and not engine.stale
    engine.load_state_dict({**sd, "step": 2, "mirror": [sched(2)], "lr_buffer": [sched(2)]})
    assert engine.lr_buffer.tolist() == [pytest.approx(sched(2), rel=1e-7)]
    graph.replay()  # the graph reads the loaded step: the buffers were written in place
    assert engine.resync() == 3
    assert ulp_distance32(engine.lr_buffer.cpu().numpy(), np.float32(sched(3))) <= 1


# ---- GradScaler ------------------------------------------------------------------------------------

def test_gradscaler_skips_hold_the_schedule_on_exactly_those_steps():
    sched = S.warmup(10, init=0.1) >> S.cosine(30, final=0.1)  # never 0: every taken step moves the params
    base = [1e-2, 3e-3, 1e-3]
    model, groups = tiny_model(seed=3)
    opt = fused_adamw(groups)
    engine = CudaEngine(sched, base, device=DEV)
    replace_shared_lr_tensors(opt, engine)
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**10)
    x = torch.randn(32, 16, device=DEV)
    skipped = {0, 3, 4, 11, 25, 26, 27}
    steps = 40
    history = torch.empty((steps, 3), device=DEV)
    first = next(model.parameters())
    unchanged = []
    for i in range(steps):
        opt.zero_grad(set_to_none=False)
        scaler.scale(model(x).square().mean()).backward()
        if i in skipped:
            first.grad.view(-1)[0] = math.inf  # an overflowed gradient: the scaler skips this step
        before = first.detach().clone()
        scaler.step(opt)
        engine.advance(found_inf=tc.scaler_found_inf(scaler, opt, DEV))
        scaler.update()
        history[i].copy_(engine.lr_buffer)
        unchanged.append(torch.equal(before, first.detach()))
    assert engine.stale  # the host could not know which steps were skipped
    taken = np.cumsum([0 if i in skipped else 1 for i in range(steps)])
    expected = np.array([[b * sched(int(k)) for b in base] for k in taken], dtype=np.float32)
    assert np.all(ulp_distance32(history.cpu().numpy(), expected) <= 1)
    assert engine.resync() == steps - len(skipped)
    assert engine.lrs() == pytest.approx([b * sched(steps - len(skipped)) for b in base], rel=1e-12)
    # The optimizer skipped the same steps (the premise of the test).
    assert [i for i, same in enumerate(unchanged) if same] == sorted(skipped)


def test_a_skipped_step_writes_nothing_even_for_chainable_rules():
    halve = leaf("torch_exponential", Code.TORCH_EXPONENTIAL, [0.5])
    engine = CudaEngine(halve, [1.0, 1.0], device=DEV, read_prev=True, initial_lrs=[0.8, 0.4])
    one, zero, nan = (torch.full((), v, device=DEV) for v in (1.0, 0.0, math.nan))
    engine.advance(one)
    engine.advance(nan)
    assert engine.lr_buffer.tolist() == [np.float32(0.8), np.float32(0.4)]
    engine.advance(zero)
    assert engine.lr_buffer.tolist() == [np.float32(0.4), np.float32(0.2)]
    assert engine.resync() == 1


def test_found_inf_is_checked():
    engine = CudaEngine(S.cosine(10), [1.0], device=DEV)
    with pytest.raises(TypeError, match="float32"):
        engine.advance(torch.zeros((), dtype=torch.bool, device=DEV))
    with pytest.raises(ValueError, match="is on cpu"):
        engine.advance(torch.zeros(()))
    with pytest.raises(ValueError, match="one element"):
        engine.advance(torch.zeros(2, device=DEV))
    with pytest.raises(TypeError, match="tensor"):
        engine.advance(0.0)
    assert engine.step == 0


# ---- streams ---------------------------------------------------------------------------------------

def test_the_launch_goes_to_the_current_stream():
    sched = S.cosine(100)
    engine = CudaEngine(sched, [1.0], device=DEV)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)  # keeps the side stream busy well past the next lines
        engine.advance()
    early = engine.lr_buffer.clone()  # main stream, not ordered after the side stream
    torch.cuda.synchronize()
    assert early.item() == np.float32(sched(0))  # the advance was still queued behind the sleep
    assert engine.lr_buffer.item() == pytest.approx(sched(1), rel=1e-7)


def test_a_step_on_a_side_stream_orders_with_the_main_stream():
    sched = S.cosine(100)
    engine = CudaEngine(sched, [1.0, 2.0], device=DEV)
    main = torch.cuda.current_stream()
    side = torch.cuda.Stream()
    side.wait_stream(main)
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)
        for _ in range(5):
            engine.advance()
    main.wait_stream(side)
    after_side = engine.lr_buffer.clone()
    engine.advance()  # main stream, after the side stream's five
    after_main = engine.lr_buffer.clone()
    torch.cuda.synchronize()
    assert after_side.tolist() == [pytest.approx(sched(5), rel=1e-7), pytest.approx(2 * sched(5), rel=1e-7)]
    assert after_main.tolist() == [pytest.approx(sched(6), rel=1e-7), pytest.approx(2 * sched(6), rel=1e-7)]
    assert engine.resync() == 6


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_an_engine_on_another_device_launches_there():
    other = torch.device("cuda", 1)
    engine = CudaEngine(S.cosine(10), [1.0], device=other)
    assert torch.cuda.current_device() == 0
    engine.advance()
    assert engine.lr_buffer.device == other
    assert engine.lr_buffer.item() == pytest.approx(S.cosine(10)(1), rel=1e-7)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_found_inf_of_an_optimizer_on_two_devices_is_set_when_either_is():
    a = torch.nn.Parameter(torch.ones(4, device="cuda:0"))
    b = torch.nn.Parameter(torch.ones(4, device="cuda:1"))
    opt = torch.optim.AdamW([{"params": [a]}, {"params": [b]}], lr=1e-3, fused=True)
    engine = CudaEngine(S.cosine(10), [1e-3], params=[a])
    scaler = torch.amp.GradScaler("cuda")
    for loss in scaler.scale([a.sum(), b.sum()]):
        loss.backward()
    b.grad[0] = math.inf  # only cuda:1 overflows, yet the optimizer skips the step on both devices
    scaler.step(opt)
    flag = tc.scaler_found_inf(scaler, opt, DEV)
    assert flag.device == DEV and flag.item() == 1.0
    assert torch.equal(a.detach(), torch.ones(4, device=DEV))
    engine.advance(flag)
    scaler.update()
    assert engine.resync() == 0


# ---- any number of groups in one launch ------------------------------------------------------------

@pytest.mark.parametrize("groups", [1, 1000, 100_000])
def test_one_launch_for_any_number_of_groups(groups):
    kinds = [S.cosine(100, final=0.01), S.warmup(10) >> S.exponential(0.99), S.cyclic(0.1, 1.0, 7)]
    schedules = [kinds[g % 3] for g in range(groups)]
    base = [float(b) for b in np.linspace(1e-4, 1e-2, groups)]
    engine = CudaEngine(schedules, base, device=DEV)
    ref = CpuReference(schedules, base)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                            torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            engine.advance()
        torch.cuda.synchronize()
    device_events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    names = [e.name for e in device_events]
    assert len(names) == 3 and all("advance_kernel" in n for n in names), names
    for _ in range(3):
        ref.advance()
    out = engine.lr_buffer.cpu().numpy()[None]
    mirror = engine.device_mirror.cpu().numpy()[None]
    assert_device_matches(out, mirror, ref.out[None], ref.mirror()[None])
    assert engine.lrs() == list(ref.mirror())


def test_from_program_equals_the_schedule_constructor():
    from torchsched._program import compile_many

    scheds = [S.warmup(5) >> S.cosine(60), S.cyclic(0.1, 1.0, 7)]
    program, roots = compile_many(scheds)
    a = CudaEngine.from_program(program, [int(r) for r in roots], [0.1, 0.2], device=DEV, step=4)
    b = CudaEngine(scheds, [0.1, 0.2], device=DEV, step=4)
    for _ in range(20):
        a.advance()
        b.advance()
    assert torch.equal(a.lr_buffer, b.lr_buffer) and a.lrs() == b.lrs() and a.step == b.step == 24


# ---- setters ---------------------------------------------------------------------------------------

def test_set_step_write_and_set_multiplier():
    sched = S.cosine(100)
    engine = CudaEngine(sched, [1.0, 2.0], device=DEV)
    engine.step = 40
    assert engine.lr_buffer.tolist() == [pytest.approx(sched(40), rel=1e-7), pytest.approx(2 * sched(40), rel=1e-7)]
    engine.set_multiplier(1, 0.5)
    engine.write()
    assert engine.lr_buffer.tolist()[1] == pytest.approx(sched(40), rel=1e-7)
    assert engine.lrs()[1] == pytest.approx(sched(40), rel=1e-15)
    engine.advance()
    assert engine.resync() == 41 and engine.lrs()[1] == pytest.approx(sched(41), rel=1e-13)


# ---- optimizer checks on real CUDA optimizers ------------------------------------------------------

def test_cpu_lr_tensor_with_cuda_params_is_refused():
    p = torch.nn.Parameter(torch.zeros(4, device=DEV))
    opt = torch.optim.AdamW([p], lr=torch.tensor(1e-3), fused=True)  # torch accepts a CPU LR here
    with pytest.raises(ValueError, match="CPU tensor but the params are on cuda:0.*graph would freeze"):
        check_optimizer_for_device_lrs(opt)
    with pytest.raises(ValueError, match="LR buffer is on the CPU"):
        replace_shared_lr_tensors(opt, torch.zeros(1))
    engine = CudaEngine(S.cosine(10), [1e-3], params=[p])
    replace_shared_lr_tensors(opt, engine)
    check_optimizer_for_device_lrs(opt, engine)
    assert opt.param_groups[0]["lr"].device == DEV


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.Adam(ps, lr=0.1),
    lambda ps: torch.optim.SGD(ps, lr=0.1),
    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, foreach=True),
    lambda ps: torch.optim.Adagrad(ps, lr=0.1, foreach=False),
], ids=["adam", "sgd", "sgd-foreach", "adagrad"])
def test_item_paths_are_refused_and_really_sync(make):
    p = torch.nn.Parameter(torch.ones(4, device=DEV))
    opt = make([p])
    engine = CudaEngine(S.cosine(10), [0.1], device=DEV)
    with pytest.raises(ValueError, match=r"\.item\(\)"):
        replace_shared_lr_tensors(opt, engine)
    assert opt.param_groups[0]["lr"] == 0.1  # left untouched
    # The premise: with a device LR tensor, this torch path does synchronize with the host.
    opt.param_groups[0]["lr"] = engine.lr_tensors()[0]
    p.grad = torch.ones_like(p)
    opt.step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with pytest.raises(RuntimeError, match="synchroniz"):
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_capture_needs_capturable_adam():
    model, groups = tiny_model()
    opt = fused_adamw(groups)
    engine = CudaEngine(S.cosine(10), [1e-3] * 3, device=DEV)
    with pytest.raises(ValueError, match="capture health check.*capturable=True"):
        replace_shared_lr_tensors(opt, engine, capture=True)
    replace_shared_lr_tensors(opt, engine)  # eager use is fine


# ---- builds ----------------------------------------------------------------------------------------

def test_a_cpu_build_says_how_to_rebuild(monkeypatch):
    monkeypatch.setattr(tc._core, "built_with_cuda", lambda: False)
    with pytest.raises(RuntimeError, match="TORCHSCHED_CUDA=ON.*pip install"):
        CudaEngine(S.cosine(10), [1.0], device=DEV)
