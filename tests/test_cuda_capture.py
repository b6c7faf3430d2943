"""A whole wrapped training step captured in a CUDA graph equals the same steps run eagerly, bit for bit, for
every schedule family and for a fused and a non-fused optimizer.

Marked ``cuda``: skipped without a GPU (``make gpu-check`` runs them on one). The model is elementwise only (no
cuBLAS call, whose algorithm a capture may choose differently), so eager and replayed steps run the same kernels
on the same data and every parameter and LR must agree exactly.
"""

from __future__ import annotations

import pytest
import torch

import torchsched
from cuda_helpers import FAMILIES, SyncErrors

pytestmark = pytest.mark.cuda

DEV = torch.device("cuda", 0)
WARM, STEPS = 3, 40
BASE_LRS = (1e-2, 3e-3)

# The optimizers that read a device LR tensor without .item() inside a capture.
OPTIMIZERS = {
    "fused_adamw": lambda groups: torch.optim.AdamW(groups, lr=1e-3, fused=True, capturable=True),
    "foreach_adam": lambda groups: torch.optim.Adam(groups, lr=1e-3, foreach=True, capturable=True),
}


def replica(name: str, optimizer: str):
    torch.manual_seed(0)
    weight = torch.randn(64, device=DEV, requires_grad=True)
    bias = torch.randn(8, device=DEV, requires_grad=True)
    groups = [{"params": [weight], "lr": BASE_LRS[0]}, {"params": [bias], "lr": BASE_LRS[1]}]
    opt = torchsched.wrap(OPTIMIZERS[optimizer](groups), FAMILIES[name])
    return (weight, bias), opt


def train_step(params, opt, target: torch.Tensor) -> None:
    weight, bias = params
    loss = (weight - target).square().sum() + bias.tanh().square().sum()
    loss.backward()
    opt.step()


def lr_row(opt) -> torch.Tensor:
    return torch.stack([g["lr"].detach().to(torch.float64) for g in opt.param_groups])


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_captured_wrapped_step_equals_eager_steps_bit_for_bit(name, optimizer):
    target = torch.linspace(-1.0, 1.0, 64, device=DEV)

    params_a, opt_a = replica(name, optimizer)
    lrs_a = torch.empty((STEPS, len(BASE_LRS)), dtype=torch.float64, device=DEV)
    for i in range(WARM + STEPS):
        opt_a.zero_grad(set_to_none=True)
        train_step(params_a, opt_a, target)
        if i >= WARM:
            lrs_a[i - WARM].copy_(lr_row(opt_a))

    params_b, opt_b = replica(name, optimizer)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARM):
            opt_b.zero_grad(set_to_none=True)
            train_step(params_b, opt_b, target)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt_b.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        train_step(params_b, opt_b, target)
    lrs_b = torch.empty_like(lrs_a)
    with SyncErrors():
        for i in range(STEPS):
            graph.replay()
            lrs_b[i].copy_(lr_row(opt_b))
    torch.cuda.synchronize()

    assert torch.equal(lrs_b, lrs_a), f"{name}: the captured schedule differs from the eager one"
    for pa, pb in zip(params_a, params_b):
        assert torch.equal(pa, pb), f"{name}: parameters differ after {STEPS} replays"
    # The step catches up with the replays Python did not see (one explicit copy back), and the host mirror
    # then holds the device's float64 values: libm and CUDA transcendentals may differ in the last bits.
    assert opt_b.last_step == opt_a.last_step == WARM + STEPS
    assert opt_b.get_last_lr() == pytest.approx(opt_a.get_last_lr(), rel=1e-13, abs=0.0)
