"""The signal-driven rules on a GPU: 1,000 steps of warmup, cosine, plateau and the average-gradient rule
with GradScaler skips under ``torch.cuda.set_sync_debug_mode("error")``, and the whole step (forward,
backward, the wrapped step with its gradient read, the observation) captured in a CUDA graph and replayed,
equal to the same steps run eagerly.

Marked ``cuda``: skipped without a GPU (``make gpu-check`` runs them on one). The CPU twin of the sync
count is tests/test_signals.py.
"""

from __future__ import annotations

import math

import pytest
import torch

import torchsched
from torchsched import schedules as S
from cuda_helpers import SyncErrors

pytestmark = pytest.mark.cuda

DEV = torch.device("cuda", 0)


def _spec() -> S.Schedule:
    return S.warmup(20) >> S.cosine(980) * S.plateau(patience=10, factor=0.5) * S.average_gradient(ema=0.9)


def _replica(seed: int = 0):
    torch.manual_seed(seed)
    weight = torch.randn(64, device=DEV, requires_grad=True)
    bias = torch.randn(8, device=DEV, requires_grad=True)
    groups = [{"params": [weight], "lr": 1e-2}, {"params": [bias], "lr": 3e-3}]
    opt = torchsched.wrap(torch.optim.AdamW(groups, lr=1e-3, fused=True, capturable=True), _spec())
    return (weight, bias), opt


def _loss(params, target: torch.Tensor) -> torch.Tensor:
    weight, bias = params
    return (weight - target).square().sum() + bias.tanh().square().sum()


def test_a_thousand_steps_with_gradscaler_skips_never_sync() -> None:
    params, opt = _replica()
    scaler = torch.amp.GradScaler("cuda", init_scale=256.0, growth_interval=10)
    targets = torch.randn(1000, 64, device=DEV)
    poison = torch.ones(1000, device=DEV)
    poison[96::97] = math.inf  # GradScaler finds infs there and the fused optimizer skips the step
    torch.cuda.synchronize()
    with SyncErrors():
        for k in range(1000):
            opt.zero_grad(set_to_none=True)
            loss = _loss(params, targets[k]) * poison[k]
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.observe(loss.detach())
    lrs = opt.sync()
    assert all(math.isfinite(x) and x > 0 for x in lrs)
    rules = opt.state_dict()["torchsched"]["signals"]["rules"]
    assert int(rules[1]["ignored"].sum()) == 0  # the skipped steps were not observations
    assert float(rules[0]["level"][0]) < 1e-2  # the plateau rule reduced


def test_a_captured_step_with_signals_equals_eager_steps() -> None:
    warm, steps = 3, 40
    targets = torch.randn(warm + steps, 64, device=DEV)
    static_target = torch.empty(64, device=DEV)

    params_a, opt_a = _replica()
    eager = []
    for k in range(warm + steps):
        opt_a.zero_grad(set_to_none=True)
        loss = _loss(params_a, targets[k])
        loss.backward()
        opt_a.step()
        opt_a.observe(loss.detach())
        eager.append(torch.stack([g["lr"].detach().double() for g in opt_a.param_groups]))

    params_b, opt_b = _replica()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    replayed = []
    with torch.cuda.stream(side):
        for k in range(warm):
            opt_b.zero_grad(set_to_none=True)
            loss = _loss(params_b, targets[k])
            loss.backward()
            opt_b.step()
            opt_b.observe(loss.detach())
            replayed.append(torch.stack([g["lr"].detach().double() for g in opt_b.param_groups]))
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt_b.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss = _loss(params_b, static_target)
        loss.backward()
        opt_b.step()
        opt_b.observe(loss.detach())
    with SyncErrors():
        for k in range(warm, warm + steps):
            static_target.copy_(targets[k])
            graph.replay()
            replayed.append(torch.stack([g["lr"].detach().double() for g in opt_b.param_groups]))
    torch.cuda.synchronize()
    assert torch.equal(torch.stack(eager), torch.stack(replayed))
    opt_b.sync()
    assert opt_b.get_last_lr() == pytest.approx([float(x) for x in eager[-1]], rel=1e-6)
