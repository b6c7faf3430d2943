"""torch.compile of a training step that steps a torchsched schedule, on the CPU.

A step is forward, backward, ``optimizer.step()``, the scheduler's ``step()`` and ``zero_grad()`` in one
``torch.compile``d function (Adam with tensor LRs, torch's recipe for compiled optimizers), run for 200 steps
with a changing LR, both ways in: the drop-ins (``torchsched.lr_scheduler``) and ``torchsched.wrap``. Against the
same compiled step at a constant LR (the optimizer alone):

- torchsched adds no graph break (``torch._dynamo.utils.counters['graph_break']``: the same count, the same
  reasons);
- nothing recompiles (dynamo's recompile log, captured);
- the LRs the optimizer used, the scheduler's ``last_epoch`` and ``get_last_lr()`` equal eager mode's bit for bit.

The graph-break and recompile counts are dynamo's, whatever the backend: ``aot_eager`` (which functionalizes the
graph as inductor does, and compiles in a second) runs these; one step shape also runs under inductor. Where the
scheduler's step is traced (``fullgraph=True`` around a traceable optimizer) the optimizer's update must still use
the LR of its own step, which the params tell.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Callable, Iterator

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

import torchsched
from torchsched import lr_scheduler as drop_in
from torchsched import _compile, _torch_compat
from torchsched import schedules as S
from torchsched.optim import ScheduledOptimizer


@pytest.fixture(autouse=True)
def _denormals_as_before() -> Iterator[None]:
    """A compiled kernel's library may switch the thread to flushing subnormals to zero (seen with torch 2.4's
    inductor); the tests after these must not inherit it."""
    yield
    torch.set_flush_denormal(False)


pytestmark = pytest.mark.slow

STEPS = 200
BACKEND = "aot_eager"
# Recent dynamo (2.13 on) traces the optimizer's step through the scheduler's wrapper and substitutes C methods;
# older dynamo breaks the graph elsewhere in the optimizer's own step (the count of breaks still holds).
SUBSTITUTES = _torch_compat.dynamo_substitutes_methods()


# ---- what a run records ------------------------------------------------------------------------------

class _Recompiles(logging.Handler):
    """Dynamo's recompile messages, with the step at which each came."""

    def __init__(self) -> None:
        super().__init__()
        self.step = -1
        self.seen: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((self.step, record.getMessage().splitlines()[0]))


@pytest.fixture(scope="module")
def recompiles() -> Iterator[_Recompiles]:
    handler = _Recompiles()
    logger = logging.getLogger("torch._dynamo.guards.__recompiles")
    torch._logging.set_logs(recompiles=True)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        torch._logging.set_logs()


def _breaks() -> dict[str, int]:
    """graph_break counter: reason (its first line) -> count."""
    out: dict[str, int] = {}
    for key, n in counters["graph_break"].items():
        reason = key.splitlines()[0].strip()
        out[reason] = out.get(reason, 0) + n
    return out


# ---- the ways in -------------------------------------------------------------------------------------

def _dropin(name: str) -> Callable[[torch.optim.Optimizer], Any]:
    builders: dict[str, Callable[[torch.optim.Optimizer], Any]] = {
        "StepLR": lambda o: drop_in.StepLR(o, step_size=7, gamma=0.5),
        "MultiStepLR": lambda o: drop_in.MultiStepLR(o, milestones=[20, 50, 120], gamma=0.3),
        "ExponentialLR": lambda o: drop_in.ExponentialLR(o, gamma=0.98),
        "CosineAnnealingLR": lambda o: drop_in.CosineAnnealingLR(o, T_max=STEPS, eta_min=1e-4),
        "LinearLR": lambda o: drop_in.LinearLR(o, start_factor=0.1, total_iters=50),
        "ConstantLR": lambda o: drop_in.ConstantLR(o, factor=0.5, total_iters=30),
        "PolynomialLR": lambda o: drop_in.PolynomialLR(o, total_iters=STEPS, power=2.0),
        "OneCycleLR": lambda o: drop_in.OneCycleLR(o, max_lr=0.05, total_steps=STEPS + 1, cycle_momentum=False),
        "CyclicLR": lambda o: drop_in.CyclicLR(o, base_lr=1e-3, max_lr=0.05, step_size_up=15, cycle_momentum=False),
        "CosineAnnealingWarmRestarts": lambda o: drop_in.CosineAnnealingWarmRestarts(o, T_0=30, T_mult=2),
        "LambdaLR(spec)": lambda o: drop_in.LambdaLR(o, S.warmup(20) >> S.cosine(STEPS - 20)),
        "LambdaLR(lambda)": lambda o: drop_in.LambdaLR(o, lambda t: 1.0 / (1.0 + 0.05 * t)),
        "MultiplicativeLR": lambda o: drop_in.MultiplicativeLR(o, lambda t: 0.99),
        "SequentialLR": lambda o: drop_in.SequentialLR(
            o, [drop_in.LinearLR(o, start_factor=0.1, total_iters=20), drop_in.CosineAnnealingLR(o, T_max=STEPS)],
            milestones=[20]),
        "ChainedScheduler": lambda o: drop_in.ChainedScheduler(
            [drop_in.LinearLR(o, start_factor=0.1, total_iters=20), drop_in.ExponentialLR(o, gamma=0.99)]),
    }
    return builders[name]


DROP_INS = ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "ConstantLR", "PolynomialLR",
            "OneCycleLR", "CyclicLR", "CosineAnnealingWarmRestarts", "LambdaLR(spec)", "LambdaLR(lambda)",
            "MultiplicativeLR", "SequentialLR", "ChainedScheduler"]
WAYS = ["constant", "wrap", "wrap+view", *DROP_INS]
SPEC = S.warmup(20) >> S.cosine(STEPS - 20, final=0.01)


class _Run:
    """One training run: a small model, Adam with a tensor LR per group, and one way of scheduling it."""

    def __init__(self, way: str, groups: int = 2, tensor_lrs: bool = True) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        layers = [self.model[0], self.model[2]][:groups]
        lr = (lambda v: torch.tensor(v)) if tensor_lrs else (lambda v: v)
        param_groups = [{"params": list(m.parameters()), "lr": lr(0.01 * (i + 1))} for i, m in enumerate(layers)]
        inner = torch.optim.Adam(param_groups, lr=lr(0.01))
        self.inner = inner
        self.opt: Any = inner
        self.sched: Any = None
        if way in ("wrap", "wrap+view"):
            self.opt = torchsched.wrap(inner, SPEC)
            self.sched = self.opt.scheduler() if way == "wrap+view" else None
        elif way != "constant":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # MultiplicativeLR and friends on tensor LRs: torch's own warnings
                self.sched = _dropin(way)(inner)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(self.model(x), y)
        loss.backward()
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()

    def run(self, compiled: bool, recorder: _Recompiles | None = None, steps: int = STEPS,
            backend: str = BACKEND) -> dict[str, Any]:
        torch._dynamo.reset()
        counters.clear()
        graph_code: list[str] = []

        def recording(gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
            graph_code.append(gm.code)
            return torch._dynamo.lookup_backend(backend)(gm, example_inputs)

        fn = torch.compile(self.step, backend=recording) if compiled else self.step
        lrs = []
        for t in range(steps):
            if recorder is not None:
                recorder.step = t
            gen = torch.Generator().manual_seed(t)
            x = torch.randn(4, 8, generator=gen)
            lrs.append([float(g["lr"]) for g in self.inner.param_groups])  # the LRs this step is about to use
            loss = fn(x, x.sum(dim=1, keepdim=True))
            assert math.isfinite(float(loss))
        lrs.append([float(g["lr"]) for g in self.inner.param_groups])
        out: dict[str, Any] = {"lrs": lrs, "breaks": _breaks(), "graph_code": graph_code}
        if self.sched is not None:
            out["last_epoch"] = getattr(self.sched, "last_epoch", None)
            out["last_lr"] = [float(v) for v in self.sched.get_last_lr()]
        if isinstance(self.opt, ScheduledOptimizer):
            out["last_step"] = self.opt.last_step
        return out


@pytest.fixture(scope="module")
def baseline(recompiles: _Recompiles) -> dict[str, Any]:
    """The constant-LR step: the graph breaks torch's optimizer step has on its own."""
    recompiles.seen.clear()
    result = _Run("constant").run(compiled=True, recorder=recompiles)
    assert not recompiles.seen, recompiles.seen
    return result


@pytest.mark.parametrize("way", WAYS[1:])
def test_compiled_step_adds_no_graph_break_nor_recompile(way: str, baseline: dict[str, Any],
                                                         recompiles: _Recompiles) -> None:
    recompiles.seen.clear()
    compiled = _Run(way).run(compiled=True, recorder=recompiles)
    eager = _Run(way).run(compiled=False)
    assert sum(compiled["breaks"].values()) == sum(baseline["breaks"].values()), (compiled["breaks"], baseline["breaks"])
    if SUBSTITUTES:  # older dynamo may report the optimizer's own break under another reason: the count holds
        assert set(compiled["breaks"]) == set(baseline["breaks"]), (compiled["breaks"], baseline["breaks"])
    assert recompiles.seen == [], f"{way}: recompiled at steps {recompiles.seen}"
    assert len({tuple(lrs) for lrs in compiled["lrs"]}) > 1, f"{way}: the LR must change during the run"
    if way in DROP_INS:  # the scheduler's step was traced (one op in a graph), not run after a break
        assert any("torch.ops.torchsched.scheduler_step" in code for code in compiled["graph_code"]), way
    assert compiled["lrs"] == eager["lrs"], f"{way}: the compiled step used other LRs than eager mode"
    for key in ("last_epoch", "last_lr", "last_step"):
        assert compiled.get(key) == eager.get(key), f"{way}: {key} differs from eager mode's"


def test_compiled_step_under_inductor(baseline: dict[str, Any], recompiles: _Recompiles) -> None:
    """The same for one drop-in and wrap, compiled by inductor (which reorders and fuses kernels)."""
    for way in ("SequentialLR", "wrap"):
        recompiles.seen.clear()
        compiled = _Run(way).run(compiled=True, recorder=recompiles, steps=60, backend="inductor")
        eager = _Run(way).run(compiled=False, steps=60)
        assert sum(compiled["breaks"].values()) == sum(baseline["breaks"].values()), compiled["breaks"]
        assert recompiles.seen == [], recompiles.seen
        assert compiled["lrs"] == eager["lrs"], way
        assert compiled.get("last_lr") == eager.get("last_lr"), way


def test_float_lrs_compile_and_give_eager_lrs() -> None:
    """Python-float LRs work too (the optimizer's traced step guards on their values, so dynamo recompiles)."""
    for way in ("wrap", "CosineAnnealingLR", "SequentialLR"):
        compiled = _Run(way, tensor_lrs=False).run(compiled=True, steps=30)
        eager = _Run(way, tensor_lrs=False).run(compiled=False, steps=30)
        assert all(type(v) is float for v in compiled["lrs"][-1])
        assert compiled["lrs"] == eager["lrs"], way


# ---- the traced path: fullgraph around a traceable optimizer ------------------------------------------

class _Plain(torch.optim.Optimizer):
    """SGD without torch's graph breaks around the update: dynamo traces it whole."""

    def __init__(self, params: Any, lr: Any) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(p.grad * group["lr"])


def _traced_run(way: str, compiled: bool, backend: str, steps_per_call: int = 1) -> list[Any]:
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(1)
    params = [torch.nn.Parameter(torch.randn(3, generator=gen)) for _ in range(2)]
    opt = _Plain([{"params": [p], "lr": torch.tensor(0.1 * (i + 1))} for i, p in enumerate(params)], lr=0.1)
    sched: Any = None
    stepper: Any = opt
    if way == "wrap":
        stepper = torchsched.wrap(opt, S.warmup(3) >> S.cosine(12))
    elif way == "ReduceLROnPlateau":
        sched = drop_in.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    else:
        sched = _dropin(way)(opt)

    def step(metric: torch.Tensor) -> None:
        for _ in range(steps_per_call):
            stepper.step()
            if sched is not None:
                sched.step(metric) if way == "ReduceLROnPlateau" else sched.step()

    fn = torch.compile(step, backend=backend, fullgraph=True) if compiled else step
    out = []
    for t in range(12):
        for p in params:
            p.grad = torch.full((3,), float(t + 1))
        fn(torch.tensor(float(t % 3 == 0)))  # a metric that stops improving: the plateau rule reduces
        out.append(([float(g["lr"]) for g in opt.param_groups], [p.detach().clone() for p in params]))
    return out


@pytest.mark.skipif(not SUBSTITUTES, reason="older dynamo cannot trace this optimizer's step whole")
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
@pytest.mark.parametrize("way", ["wrap", "CosineAnnealingLR", "ExponentialLR", "SequentialLR", "ReduceLROnPlateau"])
def test_traced_step_is_one_op_and_the_update_uses_its_own_lr(way: str, backend: str) -> None:
    """fullgraph=True: the step has no graph break at all. Each update must use the LR of its step, though the
    op that writes the next LR is in the same graph; two steps in one graph chain correctly."""
    for steps_per_call in (1, 2):
        compiled = _traced_run(way, True, backend, steps_per_call)
        eager = _traced_run(way, False, backend, steps_per_call)
        for t, ((lr_c, p_c), (lr_e, p_e)) in enumerate(zip(compiled, eager)):
            assert lr_c == lr_e, f"{way}: LRs differ at call {t}"
            for a, b in zip(p_c, p_e):
                torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{way}: the update at call {t} used another LR")


@pytest.mark.skipif(not SUBSTITUTES, reason="older dynamo cannot trace this optimizer's step whole")
def test_traced_wrap_step_refuses_a_non_finite_lr_before_the_update() -> None:
    """The finite-LR proof runs in the op before the optimizer's update: a refused step changes no param."""
    p = torch.nn.Parameter(torch.ones(2))
    opt = torchsched.wrap(_Plain([{"params": [p], "lr": torch.tensor(1.0)}], lr=1.0), S.exponential(1e30, 1))
    fn = torch.compile(lambda: opt.step(), backend=BACKEND, fullgraph=True)
    p.grad = torch.ones(2)
    fn()  # 1 -> 1e30 is still a float32
    before = p.detach().clone()
    with pytest.raises(ValueError, match="would not be finite"):
        fn()
    torch.testing.assert_close(p.detach(), before, rtol=0, atol=0)
    assert opt.last_step == 1


def test_dropin_replaces_torchs_step_wrapper_with_an_equivalent_one() -> None:
    """torch's LRScheduler wraps optimizer.step in a function dynamo skips; the drop-ins install the same
    wrapper from a module dynamo traces. Both record that the optimizer stepped, as torch's call-order warning
    needs."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    drop_in.StepLR(opt, step_size=1)
    assert getattr(opt.step, "_wrapped_by_lr_sched", False)
    assert opt.step.__code__.co_filename.endswith("_compile.py")
    assert not getattr(opt, "_opt_called", False)
    opt.step()
    assert opt._opt_called is True
    torch_sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)  # torch sees the wrapper and keeps it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch_sched.step()
