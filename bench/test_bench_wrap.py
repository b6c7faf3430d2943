"""wrap() step overhead against a torch optimizer plus a torch scheduler (pytest-benchmark, same run).

The schedule is warmup then cosine. torch runs it the way Transformers' ``get_cosine_schedule_with_warmup``
does (a ``LambdaLR`` with a Python lambda: the cheapest torch scheduler for this shape); torchsched runs the
same schedule through ``wrap()``. Two optimizers, each against itself: SGD with momentum (float LRs: the
core stores Python floats into the groups) and fused Adam (tensor LRs: the core writes one buffer of 0-d
views, torch ``fill_``s and clones one tensor per group). G = 1, 10, 100 and 1000 groups of one small param.

Scheduling overhead = (time of the training step with scheduling) - (time of ``optimizer.step`` alone).
The three variants (optimizer alone, optimizer + torch scheduler, wrap) run interleaved in the same
process. At 1000 groups one fused-Adam step takes ~20 ms and its run-to-run noise (~1%) is larger than
wrap's whole overhead, so a difference of two separately timed steps cannot resolve it. The difference is
therefore taken *inside each step*: step hooks on the inner optimizer stamp the start and end of its own
update, and the overhead of a step is its wall time minus that interval. The same stamps cost the same in
all three variants, so "optimizer alone" measures exactly that fixed cost (the profiler scope torch opens
around every ``step``, the hook calls) and is subtracted. Medians over many steps, perf_counter, ratios
only: the gates run with ``--benchmark-disable`` too.

Each variant's LR sequence is recorded and the torch and torchsched sequences must be equal (rel 1e-12 on
the float path; one float32 rounding on the tensor path, where torch multiplies float32 tensors).
"""

from __future__ import annotations

import math
import statistics
import time
from functools import partial
from typing import Any, Callable

import numpy as np
import pytest
import torch

from torchsched import schedules as S
from torchsched import wrap

WARMUP, TOTAL = 10, 1000
GROUPS = (1, 10, 100, 1000)

# The issue sets targets for scheduler.step() but none for wrap(); these are ours, the medians of repeated
# runs of test_gate_wrap_overhead on the project's 2-core machine while other jobs shared it. What sets them:
# - torch pays per group: LambdaLR calls the lambda and rebuilds lists (~0.5 us a group with float LRs);
#   with tensor LRs it fill_s each group's tensor and clones it for _last_lr (~7 us a group).
# - wrap pays one Python call into the core per step (~1 us at G=1), then per group one closed-form
#   evaluation (~20 ns) and, on the float path, one Python float stored into the group dict. Right after
#   the optimizer's update those dict stores miss the cache, ~50-100 ns a group at G=1000.
# So the float path sits near 5x at every G (both sides are linear in G, torch's slope ~5x steeper) and the
# tensor path grows with G. Gates fail below half the target.
TARGETS = {  # (path, G) -> target ratio of scheduling overheads, torch / wrap
    ("float", 1): 3.5, ("float", 10): 5.0, ("float", 100): 6.0, ("float", 1000): 5.0,
    ("tensor", 1): 10.0, ("tensor", 10): 30.0, ("tensor", 100): 45.0, ("tensor", 1000): 180.0,
}
PATHS: dict[str, tuple[type, dict[str, Any]]] = {
    "float": (torch.optim.SGD, {"momentum": 0.9}),
    "tensor": (torch.optim.Adam, {"fused": True}),
}


def _torch_lambda(t: int) -> float:
    """Warmup then cosine as Transformers writes it for LambdaLR."""
    if t < WARMUP:
        return t / WARMUP
    progress = min(t - WARMUP, TOTAL - WARMUP) / (TOTAL - WARMUP)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _schedule() -> S.Schedule:
    return S.warmup(WARMUP) >> S.cosine(TOTAL - WARMUP)


def _optimizer(path: str, groups: int, seed: int = 0) -> torch.optim.Optimizer:
    cls, kwargs = PATHS[path]
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(4, generator=gen)) for _ in range(groups)]
    for p in params:
        p.grad = torch.randn(4, generator=gen)
    lrs = [0.1 / (1 + g % 7) for g in range(groups)]
    return cls([{"params": [p], "lr": torch.tensor(lr) if path == "tensor" else lr}
                for p, lr in zip(params, lrs)], **kwargs)


class _Variant:
    """One optimizer and a way to schedule it; its update is stamped by step hooks on the optimizer.

    ``bare`` is the optimizer's own ``step`` (no scheduling, and none of the wrapper a torch scheduler
    installs on the instance), ``step`` the scheduled training step. Both run alternately on the same
    instance, so the baseline has the same memory and cache state as the measurement it is subtracted from.
    """

    def __init__(self, name: str, path: str, groups: int) -> None:
        self.name = name
        opt = _optimizer(path, groups)
        self.inner = opt
        self.stamps = [0.0, 0.0]
        opt.register_step_pre_hook(lambda o, a, k: self.stamps.__setitem__(0, time.perf_counter()))
        opt.register_step_post_hook(lambda o, a, k: self.stamps.__setitem__(1, time.perf_counter()))
        self.bare: Callable[[], Any] = partial(type(opt).step, opt)
        self.step: Callable[[], Any]
        self.base_lrs = [float(g["lr"]) for g in opt.param_groups]
        if name == "torch":
            sched = torch.optim.lr_scheduler.LambdaLR(opt, _torch_lambda)

            def torch_step() -> None:
                opt.step()
                sched.step()
            self.step = torch_step
            self.steps_taken: Callable[[], int] = lambda: sched.last_epoch
        else:
            wrapped = wrap(opt, _schedule())
            self.step = wrapped.step
            self.steps_taken = lambda: wrapped.last_step
        self.walls: dict[str, list[float]] = {"bare": [], "step": []}
        self.diffs: list[float] = []  # per pair: time outside the update, scheduled minus bare
        self.lrs: list[list[float]] = []

    def record(self, steps: int) -> None:
        """Scheduled steps, untimed, recording every group's LR after each."""
        for _ in range(steps):
            self.step()
            self.lrs.append([float(g["lr"]) for g in self.inner.param_groups])

    def run(self, pairs: int) -> None:
        """An untimed bare step (the caches now hold this instance), then ``pairs`` timed (bare, scheduled)
        pairs, every other one in reverse order so that neither kind always goes first."""
        clock, stamps = time.perf_counter, self.stamps
        self.bare()
        for i in range(pairs):
            order = (("bare", self.bare), ("step", self.step))
            outside = {}
            for kind, fn in order if i % 2 == 0 else order[::-1]:
                t0 = clock()
                fn()
                t1 = clock()
                self.walls[kind].append(t1 - t0)
                outside[kind] = (t1 - t0) - (stamps[1] - stamps[0])
            self.diffs.append(outside["step"] - outside["bare"])

    def overhead(self) -> float:
        """Median over pairs of (time a scheduled step spends outside the update) - (the same for the
        bare step next to it)."""
        return statistics.median(self.diffs)


def _measure(path: str, groups: int, budget_s: float) -> dict[str, Any]:
    torch_v, wrap_v = (_Variant(n, path, groups) for n in ("torch", "wrap"))
    for v in (torch_v, wrap_v):  # warm-up, and LRs through the warmup into the cosine for the equality check
        v.record(WARMUP + 5)
    chunk = max(4, 200 // groups)
    deadline = time.perf_counter() + budget_s
    rounds = 0
    while rounds < 5 or (time.perf_counter() < deadline and rounds < 400):
        for v in (torch_v, wrap_v):  # interleaved: drift hits both alike
            v.run(chunk)
        rounds += 1
    return {
        "path": path, "groups": groups, "steps": len(wrap_v.walls["step"]),
        "opt_step": statistics.median(wrap_v.walls["bare"] + torch_v.walls["bare"]),
        "torch_ovh": torch_v.overhead(), "wrap_ovh": wrap_v.overhead(),
        "torch_lrs": torch_v.lrs, "wrap_lrs": wrap_v.lrs,
    }


def _check_same_lrs(result: dict[str, Any]) -> None:
    torch_lrs = np.asarray(result["torch_lrs"])
    wrap_lrs = np.asarray(result["wrap_lrs"])
    n = min(len(torch_lrs), len(wrap_lrs))
    assert n > WARMUP, "the LR check must cover the warmup and the start of the cosine"
    rtol = 1e-12 if result["path"] == "float" else 2.5e-7
    np.testing.assert_allclose(wrap_lrs[:n], torch_lrs[:n], rtol=rtol, atol=1e-12,
                               err_msg=f"{result['path']} G={result['groups']}: LR sequences differ")


# ---- pytest-benchmark: the two steps in one group per (path, G) ------------------------------------

@pytest.mark.parametrize("groups", [1, 100])
@pytest.mark.parametrize("path", ["float", "tensor"])
@pytest.mark.parametrize("variant", ["torch", "wrap"])
def test_bench_wrap_step(benchmark, path: str, groups: int, variant: str) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"wrap-step-{path}-G{groups}"
    v = _Variant(variant, path, groups)
    benchmark(v.step)
    k = v.steps_taken()
    assert k >= 1
    expected = [b * _torch_lambda(k) for b in v.base_lrs]
    lrs = [float(g["lr"]) for g in v.inner.param_groups]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12 if path == "float" else 2.5e-7)


# ---- gates (always run: perf_counter, same run) ---------------------------------------------------

def test_gate_wrap_overhead() -> None:
    budgets = {1: 0.3, 10: 0.5, 100: 1.2, 1000: 2.0}  # seconds per path and G
    results = [_measure(path, g, budget_s=budgets[g]) for path in PATHS for g in GROUPS]
    lines = ["", f"{'path':<7}{'G':>5}{'steps':>7}{'opt.step':>11}{'torch ovh':>11}{'wrap ovh':>10}"
             f"{'ratio':>9}{'target':>8}{'gate':>7}   (per step, microseconds)"]
    failures = []
    for r in results:
        _check_same_lrs(r)
        key = (r["path"], r["groups"])
        ratio = r["torch_ovh"] / max(r["wrap_ovh"], 1e-9)
        gate = TARGETS[key] / 2
        lines.append(f"{r['path']:<7}{r['groups']:>5}{r['steps']:>7}{r['opt_step'] * 1e6:>11.1f}"
                     f"{r['torch_ovh'] * 1e6:>11.2f}{r['wrap_ovh'] * 1e6:>10.2f}{ratio:>8.1f}x"
                     f"{TARGETS[key]:>7.1f}x{gate:>6.2f}x")
        if ratio < gate:
            failures.append(f"{key}: {ratio:.1f}x < {gate:.2f}x")
    print("\n".join(lines))
    assert not failures, "wrap() scheduling overhead gates failed: " + "; ".join(failures)
