"""Helpers shared by the GPU tests (tests/test_cuda.py, tests/test_cuda_capture.py, tests/test_lr_scheduler_cuda.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchsched import schedules as S


def ulp_distance32(a, b) -> np.ndarray:
    """How many float32 steps apart a and b are, element by element."""
    ia = np.ascontiguousarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
    ib = np.ascontiguousarray(b, dtype=np.float32).view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)


class SyncErrors:
    """torch.cuda.set_sync_debug_mode("error") for the block, with a control proving that it is on."""

    def __enter__(self):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        with pytest.raises(RuntimeError, match="synchroniz"):
            torch.ones((), device="cuda").item()
        return self

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")
        return False


# One schedule of every family and shape option, and the combinators.
FAMILIES = {
    "constant": S.constant(0.7),
    "step": S.step(7, 0.5),
    "piecewise_constant": S.piecewise_constant([5, 20, 20, 60], [1.0, 0.5, 0.3, 0.2, 0.1]),
    "piecewise_constant_keras": S.piecewise_constant([5, 20], [1.0, 0.5, 0.25], switch_after=True),
    "multistep": S.multistep([10, 30, 30, 90], 0.3),
    "exponential": S.exponential(0.97),
    "exponential_staircase_bound": S.exponential(0.5, 10, begin=5, staircase=True, bound=0.01),
    "exponential_growth_bound": S.exponential(1.02, bound=2.0),
    "linear": S.linear(80, init=1.0, final=0.1),
    "polynomial": S.polynomial(100, power=2.0, final=0.05),
    "polynomial_cycle_k": S.polynomial(30, power=0.5, cycle=True, k=1.5),
    "inverse_time": S.inverse_time(0.5, 10),
    "inverse_time_staircase": S.inverse_time(0.5, 10, staircase=True),
    "inverse_power": S.inverse_power(20, 0.7),
    "inverse_sqrt": S.inverse_sqrt(50),
    "cosine": S.cosine(150, final=0.01),
    "cosine_unclamped_cycles": S.cosine(60, clamp=False, cycles=1.5, exponent=2.0),
    "cosine_k": S.cosine(100, k=2.0),
    "cosine_restarts": S.cosine_restarts(25),
    "cosine_restarts_mult_decay_swing": S.cosine_restarts(10, period_mult=2.0, decay=0.7, decay_mode="swing"),
    "cosine_restarts_mult_limit_k": S.cosine_restarts(7, period_mult=1.5, decay=0.9, limit=3, k=1.3),
    "cyclic_triangular": S.cyclic(0.1, 1.0, 13),
    "cyclic_triangular2": S.cyclic(0.1, 1.0, 9, 17, mode="triangular2"),
    "cyclic_exp_range": S.cyclic(0.1, 1.0, 11, mode="exp_range", gamma=0.995),
    "one_cycle": S.one_cycle(200),
    "one_cycle_linear_three_phase": S.one_cycle(180, anneal="linear", three_phase=True),
    "warmup_linear": S.warmup(40, init=0.01),
    "warmup_exponential": S.warmup(40, init=0.01, shape="exponential"),
    "warmup_constant": S.warmup(40, init=0.1, shape="constant"),
    "anneal_linear": S.anneal(90, end=0.05),
    "anneal_cosine": S.anneal(90, end=0.05, shape="cosine"),
    "anneal_1-sqrt": S.anneal(90, end=0.05, shape="1-sqrt"),
    "anneal_exponential": S.anneal(90, end=0.05, shape="exponential"),
    "interpolate_linear": S.interpolate({0: 0.1, 30: 1.0, 100: 0.2, 150: 0.0}),
    "interpolate_cosine": S.interpolate({0: 0.1, 30: 1.0, 100: 0.2}, kind="cosine"),
    "tanh": S.tanh(120, final=0.01),
    "warmup_stable_decay": S.warmup_stable_decay(20, 50, 80, decay_shape="1-sqrt"),
    "sequence_shift": S.sequence([S.warmup(10), S.shift(S.cosine(200), 10)], [10]),
    "product_scale": S.product(S.warmup(15), 2.0 * S.cosine(150)),
    "rshift": S.warmup(25) >> S.exponential(0.98) * S.constant(0.5),
}
