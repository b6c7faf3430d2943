"""Core benchmarks (pytest-benchmark): values() and Engine.advance() against pure-Python loops.

Both sides run in the same process and the same run and must produce the same numbers. The gates
compare ratios measured with the same clock (min of repeats), never absolute times: the target for
values() over 10^6 steps is 100x, and the gate fails below half of it.

Two pure-Python baselines compute the same warmup-then-cosine:
- ``_composed``: a pure-Python schedule library written the usual way (optax-style closures joined at
  a boundary), i.e. what torchsched replaces. The gates use this one.
- ``_fused``: the same numbers hand-fused into one function: the best case for Python. Its ratio is
  printed too, so the README can quote both honestly.
"""

from __future__ import annotations

import bisect
import math
import time
from typing import Callable

import numpy as np
import pytest

from torchsched import Engine
from torchsched import schedules as S

TARGET_VALUES = 100.0  # the target; the gate fails below half of it
# The issue sets no number for advance(); 20x at 10^4 groups is ours (one C++ loop against a Python
# loop over groups), gated at half.
TARGET_ADVANCE_10K = 20.0
WARMUP, TOTAL, FINAL = 1000, 1_000_000, 0.01


def _schedule() -> S.Schedule:
    return S.warmup(WARMUP) >> S.cosine(TOTAL - WARMUP, final=FINAL)


def _fused(t: int) -> float:
    """Warmup-then-cosine hand-fused into one function."""
    if t < WARMUP:
        return t / WARMUP
    frac = min(t - WARMUP, TOTAL - WARMUP) / (TOTAL - WARMUP)
    return FINAL + (1.0 - FINAL) * 0.5 * (1.0 + math.cos(math.pi * frac))


def _py_warmup(steps: int, init: float, peak: float) -> Callable[[int], float]:
    def f(t: int) -> float:
        return peak if t >= steps else init + (peak - init) * (t / steps)
    return f


def _py_cosine(steps: int, init: float, final: float) -> Callable[[int], float]:
    def f(t: int) -> float:
        frac = min(t, steps) / steps
        return final + (init - final) * (0.5 * (1.0 + math.cos(math.pi * frac)))
    return f


def _py_join(pieces: list[Callable[[int], float]], boundaries: list[int]) -> Callable[[int], float]:
    def f(t: int) -> float:
        k = bisect.bisect_right(boundaries, t)
        return pieces[k](t - boundaries[k - 1] if k else t)
    return f


_composed = _py_join([_py_warmup(WARMUP, 0.0, 1.0), _py_cosine(TOTAL - WARMUP, 1.0, FINAL)], [WARMUP])
_python_value = _composed


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _report(name: str, python_s: float, core_s: float) -> float:
    ratio = python_s / core_s
    print(f"\n{name}: python {python_s * 1e3:.3f} ms, torchsched {core_s * 1e3:.3f} ms, ratio {ratio:.1f}x")
    return ratio


# ---- values() over 10^6 steps -------------------------------------------------------------------

@pytest.mark.parametrize("python_fn", [_composed, _fused], ids=["composed", "fused"])
def test_values_matches_python_loop(python_fn: Callable[[int], float]) -> None:
    sched = _schedule()
    steps = range(0, TOTAL, 997)
    expected = np.array([python_fn(t) for t in steps])
    np.testing.assert_allclose(sched.values(steps), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.benchmark(group="values-1e6")
def test_bench_values_python(benchmark) -> None:  # type: ignore[no-untyped-def]
    out = benchmark.pedantic(lambda: [_python_value(t) for t in range(TOTAL)], rounds=1, iterations=1)
    assert len(out) == TOTAL and out[-1] == pytest.approx(FINAL)


@pytest.mark.benchmark(group="values-1e6")
def test_bench_values_torchsched(benchmark) -> None:  # type: ignore[no-untyped-def]
    sched = _schedule()
    out = benchmark(sched.values, range(TOTAL))
    assert out.shape == (TOTAL,) and out[-1] == pytest.approx(FINAL)


def test_gate_values_ratio() -> None:
    sched = _schedule()
    composed_s = _best(lambda: [_composed(t) for t in range(TOTAL)], repeat=2)
    fused_s = _best(lambda: [_fused(t) for t in range(TOTAL)], repeat=2)
    core_s = _best(lambda: sched.values(range(TOTAL)), repeat=5)
    ratio = _report(f"values() 10^6 steps vs composed Python (target {TARGET_VALUES:.0f}x)", composed_s, core_s)
    fused_ratio = _report("values() 10^6 steps vs hand-fused Python", fused_s, core_s)
    # A range of steps runs as vectorized loops over blocks of steps (the core's cosine has no call or
    # branch), so the composed Python closures (~0.35 us per step) are outrun by well over the target.
    assert ratio >= TARGET_VALUES / 2, f"values() is only {ratio:.1f}x faster than a Python loop"
    assert fused_ratio >= TARGET_VALUES / 2, f"values() is only {fused_ratio:.1f}x faster than the best-case Python loop"


# ---- advance() for G groups -----------------------------------------------------------------------

def _python_advance(step: int, base: list[float], out: list[float]) -> None:
    t = step + 1
    for g, b in enumerate(base):
        out[g] = b * _python_value(t)


@pytest.mark.parametrize("groups", [1, 100, 10_000])
def test_advance_matches_python(groups: int) -> None:
    base = list(np.linspace(0.1, 1.0, groups))
    engine = Engine(_schedule(), base)
    buf = np.zeros(groups)
    ref = [0.0] * groups
    for step in range(0, 1500, 1):
        _python_advance(step, base, ref)
        engine.advance(buf)
        if step % 250 == 0 or step == 1499:
            np.testing.assert_allclose(buf, ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("groups", [1, 100, 10_000])
def test_bench_advance(benchmark, groups: int) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"advance-G{groups}"
    engine = Engine(_schedule(), [0.1] * groups)
    buf = engine.bind(np.zeros(groups, dtype=np.float32))
    benchmark(engine.advance)
    assert engine.step >= 1 and np.all(np.isfinite(buf))


@pytest.mark.parametrize("groups", [1, 100, 10_000])
def test_gate_advance_ratio(groups: int) -> None:
    base = [0.1] * groups
    engine = Engine(_schedule(), base)
    engine.bind(np.zeros(groups))
    ref = [0.0] * groups
    calls = max(1, 20_000 // groups)

    def python_steps() -> None:
        for k in range(calls):
            _python_advance(k, base, ref)

    def core_steps() -> None:
        advance = engine.advance
        for _ in range(calls):
            advance()

    python_s = _best(python_steps, repeat=3)
    core_s = _best(core_steps, repeat=3)
    ratio = _report(f"advance() G={groups}", python_s, core_s)
    # One core call costs about as much as one Python iteration, so only many groups show the gain;
    # the gate applies where the loop over groups dominates.
    if groups == 10_000:
        assert ratio >= TARGET_ADVANCE_10K / 2, f"advance() at G={groups} is only {ratio:.1f}x faster"
    else:
        assert ratio > 0.3, f"advance() at G={groups} is {ratio:.2f}x: the call overhead regressed"
