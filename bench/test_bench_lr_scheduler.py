"""scheduler.step(): torch.optim.lr_scheduler against torchsched.lr_scheduler, in the same run.

Four schedulers (StepLR, CosineAnnealingLR, OneCycleLR, SequentialLR(LinearLR -> CosineAnnealingLR)),
G = 1, 10, 100, 1000 param groups, Python float LRs and LR tensors (float64, so that the sequences can
be compared to 1e-12; torch's cost does not depend on the dtype). Each benchmark first steps torch's
scheduler and ours side by side and asserts the LR sequences agree, then times ``scheduler.step()``;
torch and torchsched share a pytest-benchmark group.

The gates compare speed ratios, never absolute times, measured with ``time.perf_counter`` as the min
over interleaved repeats of both sides in the same run, so they also run under ``--benchmark-disable``
(the default addopts). Targets (the issue's, on a 2-core machine): >= 5x at G=1, >= 30x at G=1000 with
float LRs, >= 300x at G=100 with tensor LRs; a gate fails below half its target. The full table of
ratios is printed: ``pytest bench/test_bench_lr_scheduler.py -k table -s`` (or the whole file).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable

import pytest
import torch
from torch.optim import lr_scheduler as tl

from torchsched import lr_scheduler as ts
from torchsched import _torch_compat

GROUPS = [1, 10, 100, 1000]
KINDS = ["float", "tensor"]
NAMES = ["StepLR", "CosineAnnealingLR", "OneCycleLR", "SequentialLR"]
TARGETS = {  # (G, kind) -> target ratio; gates fail below half of it
    (1, "float"): 5.0, (1, "tensor"): 5.0, (1000, "float"): 30.0, (100, "tensor"): 300.0,
}
CHECK_STEPS = 60

BUILD: dict[str, Callable[[Any, torch.optim.Optimizer], Any]] = {
    "StepLR": lambda M, o: M.StepLR(o, step_size=30, gamma=0.5),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, T_max=1000, eta_min=1e-5),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=10**9),
    "SequentialLR": lambda M, o: M.SequentialLR(
        o, [M.LinearLR(o, start_factor=0.1, total_iters=20), M.CosineAnnealingLR(o, T_max=1000)], milestones=[20]),
}


def make(M: Any, name: str, groups: int, kind: str) -> tuple[torch.optim.Optimizer, Any]:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    lrs = [0.1 * (1 + g % 7) / 7 for g in range(groups)]
    param_groups = [{"params": [p], "lr": torch.tensor(lr, dtype=torch.float64) if kind == "tensor" else lr}
                    for p, lr in zip(params, lrs)]
    opt = torch.optim.SGD(param_groups, lr=0.1, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = BUILD[name](M, opt)
    opt.step()  # so the first scheduler.step() has no call-order warning to give
    return opt, sched


def assert_sequences_agree(name: str, groups: int, kind: str, steps: int = CHECK_STEPS) -> None:
    """torch and torchsched stepped side by side give the same LRs (and momenta) at every step."""
    (ot, st), (os_, ss) = make(tl, name, groups, kind), make(ts, name, groups, kind)
    for i in range(steps):
        st.step()
        ss.step()
        for gt, gs in zip(ot.param_groups, os_.param_groups):
            a, b = float(gt["lr"]), float(gs["lr"])
            assert a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b)), f"{name} G={groups} {kind} step {i}: {a} vs {b}"
            assert gt["momentum"] == gs["momentum"], f"{name} G={groups} {kind} step {i}: momentum"
    last_t = [float(x) for x in st.get_last_lr()]
    last_s = [float(x) for x in ss.get_last_lr()]
    assert last_t == pytest.approx(last_s, rel=1e-12, abs=0.0)


# ---- pytest-benchmark: both sides in one group ------------------------------------------------------

@pytest.mark.benchmark(min_rounds=5, max_time=0.5)
@pytest.mark.parametrize("side", ["torch", "torchsched"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("groups", GROUPS)
@pytest.mark.parametrize("name", NAMES)
def test_bench_step(benchmark: Any, name: str, groups: int, kind: str, side: str) -> None:
    benchmark.group = f"{name} G={groups} {kind} LRs"
    assert_sequences_agree(name, groups, kind, steps=20 if groups >= 1000 else CHECK_STEPS)
    opt, sched = make(tl if side == "torch" else ts, name, groups, kind)
    benchmark(sched.step)
    assert sched.last_epoch >= 1 and all(math.isfinite(float(g["lr"])) for g in opt.param_groups)


# ---- gates: ratios with perf_counter, min of interleaved repeats -------------------------------------

def _per_step(sched: Any, n: int) -> float:
    step = sched.step
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n


def measure(name: str, groups: int, kind: str, repeats: int = 9) -> tuple[float, float]:
    """(torch seconds per step, torchsched seconds per step): min over interleaved repeats."""
    _, st = make(tl, name, groups, kind)
    _, ss = make(ts, name, groups, kind)
    cost = groups * (4 if kind == "tensor" else 1)
    n_torch = max(3, 4000 // cost)
    n_ours = max(50, 40000 // groups)
    _per_step(st, n_torch), _per_step(ss, n_ours)  # warm up
    best_t = best_s = math.inf
    for _ in range(repeats):
        best_t = min(best_t, _per_step(st, n_torch))
        best_s = min(best_s, _per_step(ss, n_ours))
    return best_t, best_s


_measured: dict[tuple[str, int, str], tuple[float, float]] = {}


def ratio(name: str, groups: int, kind: str) -> tuple[float, float, float]:
    key = (name, groups, kind)
    if key not in _measured:
        _measured[key] = measure(name, groups, kind)
    t, s = _measured[key]
    return t / s, t, s


GATES = [(name, g, k) for name in NAMES for (g, k) in TARGETS]


def torch_lists_path(name: str, groups: int, kind: str) -> str | None:
    """Why a configuration runs off the buffer-bound fast path on the installed torch, or None where it runs on it.
    Where torch's lists alias the groups' own LR tensors (older torch), the twins keep them and fill them group by
    group as torch does (a single group's tensor still binds in place), and SequentialLR runs torch's own code."""
    if kind != "tensor" or _torch_compat.CLONES_LRS:
        return None
    if name == "SequentialLR":
        return "this torch's SequentialLR makes the base LRs the groups' LR tensors: torch's own code runs"
    if groups > 1:
        return "this torch's lists alias the groups' LR tensors: filled group by group as torch does"
    return None


@pytest.mark.parametrize("name,groups,kind", GATES, ids=[f"{n}-G{g}-{k}" for n, g, k in GATES])
def test_gate_speed_ratio(name: str, groups: int, kind: str) -> None:
    assert_sequences_agree(name, groups, kind, steps=20)
    target = TARGETS[(groups, kind)]
    off_path = torch_lists_path(name, groups, kind)
    if off_path is not None and name == "SequentialLR":
        pytest.skip(off_path)
    if off_path is not None:
        # the buffer-bound target does not apply; the gate keeps that path near torch's cost (target 1.5x, gate 0.75x)
        target = 1.5
    r, t, s = ratio(name, groups, kind)
    # one retry on a loaded machine: the gate is about the code, not a neighbour's burst
    if r < target / 2:
        _measured.pop((name, groups, kind))
        r, t, s = ratio(name, groups, kind)
    print(f"\n{name} G={groups} {kind}: torch {t * 1e6:.2f} us, torchsched {s * 1e6:.3f} us, {r:.1f}x "
          f"(target {target:g}x, gate {target / 2:g}x)")
    assert r >= target / 2, f"{name} G={groups} {kind} LRs: only {r:.1f}x (gate {target / 2:g}x, target {target:g}x)"


def test_ratio_table(capsys: pytest.CaptureFixture[str]) -> None:
    rows = []
    for name in NAMES:
        for kind in KINDS:
            for groups in GROUPS:
                r, t, s = ratio(name, groups, kind)
                target = TARGETS.get((groups, kind))
                rows.append((name, groups, kind, t, s, r, target))
    lines = ["", "scheduler.step(): torch vs torchsched (min of interleaved repeats, same run)",
             f"{'scheduler':<18} {'G':>5} {'LRs':<6} {'torch us':>10} {'torchsched us':>14} {'ratio':>8}  target",
             "-" * 74]
    for name, groups, kind, t, s, r, target in rows:
        mark = "" if target is None else f"{target:g}x" + ("" if r >= target else "  (below target)")
        if torch_lists_path(name, groups, kind) is not None:
            mark = "torch's lists (this torch): report only"
        lines.append(f"{name:<18} {groups:>5} {kind:<6} {t * 1e6:>10.2f} {s * 1e6:>14.3f} {r:>7.1f}x  {mark}")
    with capsys.disabled():
        print("\n".join(lines))
    # every configuration on the fast path beats torch; the others are gated in test_gate_speed_ratio
    slower = [(name, groups, kind, round(r, 2)) for name, groups, kind, t, s, r, _ in rows
              if r <= 1.0 and torch_lists_path(name, groups, kind) is None]
    assert slower == [], f"torchsched slower than torch: {slower}"
