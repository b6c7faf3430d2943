"""The signal-driven families (schedules.plateau, schedules.average_gradient) through wrap(): torch's
ReduceLROnPlateau as the oracle of the plateau rule, a float64 reference of the average-gradient rule
written here from its formula, resume, composition, non-finite signals, and zero host syncs over 1,000
steps with GradScaler skips."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import torchsched
from torchsched import schedules as S

from sync_counter import SyncCounter


def _model(groups: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(groups)])


def _param_groups(model: torch.nn.Module, lrs: list[Any]) -> list[dict[str, Any]]:
    return [{"params": list(layer.parameters()), "lr": lr} for layer, lr in zip(model, lrs)]


# ---- plateau: torch's ReduceLROnPlateau is the oracle ------------------------------------------------

plateau_configs = st.fixed_dictionaries({
    "mode": st.sampled_from(["min", "max"]),
    "factor": st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.33]),
    "patience": st.integers(0, 4),
    "threshold": st.sampled_from([0.0, 1e-4, 0.01, 0.2]),
    "threshold_mode": st.sampled_from(["rel", "abs"]),
    "cooldown": st.integers(0, 3),
    "min_lr": st.one_of(st.sampled_from([0.0, 1e-3, 0.02]), st.lists(st.sampled_from([0.0, 1e-3, 0.05]),
                                                                       min_size=2, max_size=2)),
    "eps": st.sampled_from([0.0, 1e-8, 1e-3]),
})
metric_runs = st.lists(st.one_of(st.sampled_from([1.0, 0.5, 2.0, 0.999]), st.floats(-5, 5)), min_size=1,
                       max_size=40)


@settings(max_examples=150, deadline=None)
@given(config=plateau_configs, metrics=metric_runs, lrs=st.sampled_from([[0.1, 0.05], [1.0, 0.3], [0.2, 0.2]]))
def test_plateau_equals_torch_reduce_on_plateau(config: dict[str, Any], metrics: list[float],
                                                lrs: list[float]) -> None:
    ref_model, model = _model(), _model()
    ref_opt = torch.optim.SGD(_param_groups(ref_model, lrs), lr=0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, **config)
    wrapped = torchsched.wrap(torch.optim.SGD(_param_groups(model, lrs), lr=0.1), S.plateau(**config))
    for m in metrics:
        ref_opt.step()
        ref.step(m)
        wrapped.step()
        wrapped.observe(torch.tensor(m, dtype=torch.float64))
        want = [g["lr"] for g in ref_opt.param_groups]
        got = [g["lr"] for g in wrapped.param_groups]
        # the same decisions; the LR is base x (level / base): at most an ulp or two from torch's level
        assert got == pytest.approx(want, rel=1e-15, abs=0.0)
    state = wrapped.state_dict()["torchsched"]["signals"]["rules"][0]
    assert float(state["best"]) == ref.best
    assert int(state["num_bad_epochs"]) == ref.num_bad_epochs
    assert int(state["cooldown_counter"]) == ref.cooldown_counter


def test_plateau_level_is_torchs_lr_exactly() -> None:
    """The decisions are made on torch's own numbers: the plateau level equals torch's LR bit for bit."""
    model, ref_model = _model(), _model()
    config = dict(factor=0.3, patience=1, min_lr=[1e-4, 3e-3], eps=1e-12)
    ref_opt = torch.optim.SGD(_param_groups(ref_model, [0.7, 0.011]), lr=0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, **config)  # type: ignore[arg-type]
    wrapped = torchsched.wrap(torch.optim.SGD(_param_groups(model, [0.7, 0.011]), lr=0.1), S.plateau(**config))
    for m in [3.0, 3.0, 3.0, 2.0, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5]:
        ref.step(m)
        wrapped.observe(m)
        level = wrapped.state_dict()["torchsched"]["signals"]["rules"][0]["level"]
        assert level.tolist() == [g["lr"] for g in ref_opt.param_groups]


def test_plateau_ignores_and_counts_non_finite_metrics() -> None:
    wrapped = torchsched.wrap(torch.optim.SGD(_model(1).parameters(), lr=0.5), S.plateau(patience=0, factor=0.5))
    for m in [1.0, math.nan, math.inf, -math.inf, torch.tensor(math.nan)]:
        wrapped.observe(m)
        assert all(math.isfinite(x) for x in wrapped.get_last_lr())
    rule = wrapped.state_dict()["torchsched"]["signals"]["rules"][0]
    assert int(rule["ignored"]) == 4
    assert float(rule["best"]) == 1.0 and int(rule["num_bad_epochs"]) == 0
    assert wrapped.get_last_lr() == [0.5]
    wrapped.observe(2.0)  # a finite, worse metric: patience 0, so it reduces
    assert wrapped.get_last_lr() == [0.25]


def test_plateau_composes_with_warmup_and_cosine_and_multipliers() -> None:
    plateau = S.plateau(patience=0, factor=0.5)
    spec = S.warmup(2) >> S.cosine(10) * plateau
    model = _model()
    wrapped = torchsched.wrap(torch.optim.SGD(_param_groups(model, [1.0, 1.0]), lr=1.0), spec, multipliers=[1.0, 0.1])
    metrics = [1.0, 1.0, 2.0, 0.5, 3.0, 3.0]
    factor = 1.0
    best = math.inf
    for t, m in enumerate(metrics, start=1):
        wrapped.step()
        wrapped.observe(m)
        if m < best * (1 - 1e-4):
            best = m
        else:
            factor *= 0.5
        want = [spec(t) * factor * mult for mult in (1.0, 0.1)] if t >= 2 else [spec(t) * mult for mult in (1.0, 0.1)]
        assert wrapped.get_last_lr() == pytest.approx(want, rel=1e-14)
    assert spec(5) == S.cosine(10)(3)  # outside a wrapper the factor is 1


def test_plateau_min_lr_per_group_must_match_the_groups() -> None:
    with pytest.raises(ValueError, match="min_lr"):
        torchsched.wrap(torch.optim.SGD(_param_groups(_model(), [0.1, 0.1])), S.plateau(min_lr=[0.0, 0.0, 0.0]))


def test_observe_without_a_plateau_rule_names_the_fix() -> None:
    wrapped = torchsched.wrap(torch.optim.SGD(_model(1).parameters(), lr=0.1), S.cosine(10))
    with pytest.raises(ValueError, match="plateau"):
        wrapped.observe(1.0)
    wrapped = torchsched.wrap(torch.optim.SGD(_model(1).parameters(), lr=0.1), S.plateau())
    with pytest.raises(ValueError, match="reduce"):
        wrapped.observe(1.0, reduce="median")
    with pytest.raises(ValueError, match="single value"):
        wrapped.observe(torch.ones(2))


@pytest.mark.parametrize("bad", [dict(factor=1.0), dict(factor=-0.1), dict(mode="avg"), dict(threshold_mode="x"),
                                 dict(patience=-1), dict(cooldown=-1), dict(min_lr=-1.0), dict(eps=math.nan)])
def test_plateau_refuses_what_torch_refuses(bad: dict[str, Any]) -> None:
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        S.plateau(**bad)


# ---- the average-gradient rule: a float64 reference from the formula ---------------------------------

def _reference_g(groups: list[dict[str, Any]], norm: str) -> list[float]:
    out = []
    for group in groups:
        grads = [p.grad.detach().double().numpy().ravel() for p in group["params"] if p.grad is not None]
        flat = np.concatenate(grads)
        out.append(float(np.abs(flat).mean()) if norm == "mean_abs" else float(np.sqrt(np.sum(flat * flat))))
    return out


@settings(max_examples=40, deadline=None)
@given(norm=st.sampled_from(["mean_abs", "l2"]), ema=st.sampled_from([0.0, 0.5, 0.9]),
       clamp=st.sampled_from([(None, None), (0.5, None), (None, 1.2), (0.8, 1.1)]), seed=st.integers(0, 1000))
def test_average_gradient_equals_its_formula(norm: str, ema: float, clamp: tuple[Any, Any], seed: int) -> None:
    model = _model(seed=seed)
    base = [0.05, 0.02]
    rule = S.average_gradient(norm=norm, ema=ema, min_factor=clamp[0], max_factor=clamp[1])
    wrapped = torchsched.wrap(torch.optim.SGD(_param_groups(model, base)), rule)
    gen = torch.Generator().manual_seed(seed)
    g0: list[float | None] = [None, None]
    smooth: list[float | None] = [None, None]
    for _ in range(25):
        x = torch.randn(16, 3, generator=gen)
        wrapped.zero_grad()
        model(x).pow(2).mean().backward()
        g = _reference_g(wrapped.param_groups, norm)
        wrapped.step()
        want = []
        for k in range(2):
            if g0[k] is None and g[k] > 0:
                g0[k] = g[k]
            smooth[k] = g[k] if smooth[k] is None else ema * smooth[k] + (1 - ema) * g[k]
            f = smooth[k] / g0[k]
            f = min(max(f, clamp[0] or 0.0), clamp[1] or math.inf)
            want.append(base[k] * f)
        assert wrapped.get_last_lr() == pytest.approx(want, rel=1e-12)


def test_average_gradient_first_lr_is_lr0_and_no_grads_is_no_signal() -> None:
    model = _model(1)
    wrapped = torchsched.wrap(torch.optim.SGD(model.parameters(), lr=0.1), S.average_gradient())
    wrapped.step()  # no gradients yet: ignored, the factor stays 1
    assert wrapped.get_last_lr() == [0.1]
    model(torch.ones(2, 3)).sum().backward()
    wrapped.step()  # G_0: the factor is G_0 / G_0
    assert wrapped.get_last_lr() == [0.1]


def test_average_gradient_ignores_non_finite_gradients() -> None:
    model = _model(1)
    wrapped = torchsched.wrap(torch.optim.SGD(model.parameters(), lr=0.1), S.average_gradient())
    model(torch.ones(2, 3)).sum().backward()
    wrapped.step()
    for p in model.parameters():
        p.grad.fill_(math.nan)
    kept = wrapped.state_dict()["torchsched"]["signals"]["rules"][0]
    lr = wrapped.get_last_lr()
    wrapped.step()
    assert wrapped.get_last_lr() == lr
    rule = wrapped.state_dict()["torchsched"]["signals"]["rules"][0]
    assert rule["ignored"].tolist() == [1]
    assert rule["last"].tolist() == kept["last"].tolist() and rule["g0"].tolist() == kept["g0"].tolist()


def test_average_gradient_divides_by_the_scale_of_a_fused_optimizer() -> None:
    """A fused optimizer gets GradScaler's scale and unscales inside its kernel; G must be of the unscaled
    gradients: the same LRs as the same run without a scaler."""
    runs = []
    for scaled in (False, True):
        model = _model(1, seed=3)
        opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(0.01), fused=True)
        wrapped = torchsched.wrap(opt, S.average_gradient(norm="l2"))
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, enabled=scaled)
        lrs = []
        for k in range(6):
            wrapped.zero_grad()
            loss = model(torch.full((4, 3), 0.1 * (k + 1))).pow(2).mean()
            scaler.scale(loss).backward()
            scaler.step(wrapped)
            scaler.update()
            lrs.append(wrapped.get_last_lr()[0])
        runs.append(lrs)
    assert runs[0] == pytest.approx(runs[1], rel=1e-6)
    assert len(set(runs[0])) > 1


@pytest.mark.parametrize("norm", ["mean_abs", "l2"])
def test_the_cpu_fast_path_and_the_tensor_path_agree_bit_for_bit(norm: str, monkeypatch: Any) -> None:
    """The CPU runs the rule in one core call; every other device runs it as tensor operations."""
    from torchsched import _signals

    runs = []
    for fast in (True, False):
        monkeypatch.setattr(_signals, "CPU_FAST_PATH", fast)
        model = _model(seed=5)
        opt = torch.optim.AdamW(_param_groups(model, [torch.tensor(0.01), torch.tensor(0.02)]), fused=True)
        wrapped = torchsched.wrap(opt, S.average_gradient(norm=norm, ema=0.7, min_factor=0.5, max_factor=1.5))
        scaler = torch.amp.GradScaler("cpu", init_scale=64.0)
        lrs = []
        for k in range(30):
            wrapped.zero_grad()
            loss = model(torch.full((4, 3), 0.05 * (k + 1))).pow(2).mean()
            if k in (7, 8, 20):
                loss = loss * math.inf  # skipped steps
            if k == 12:
                model[1].weight.grad = None  # a param without a gradient
            scaler.scale(loss).backward()
            if k == 15:
                model[0].bias.grad.fill_(math.nan)  # a non-finite G in group 0, found by the scaler too
            scaler.step(wrapped)
            scaler.update()
            lrs.append(wrapped.get_last_lr())
        state = wrapped.state_dict()["torchsched"]["signals"]
        runs.append((lrs, [v.tolist() for k, v in sorted(state["rules"][0].items()) if isinstance(v, torch.Tensor)]))
    assert runs[0] == runs[1]


# ---- resume ------------------------------------------------------------------------------------------

def test_resume_mid_plateau_is_bit_identical() -> None:
    spec = S.warmup(3) >> S.cosine(50) * S.plateau(patience=2, factor=0.5, cooldown=1) * S.average_gradient(ema=0.8)
    metrics = [1.0, 0.9, 0.95, 0.95, 0.97, 0.96, 0.99, 0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7, 0.8]

    def run(model: torch.nn.Module, wrapped: Any, ms: list[float], start: int = 0) -> list[list[float]]:
        out = []
        for k, m in enumerate(ms, start=start):
            wrapped.zero_grad()
            model(torch.full((4, 3), 0.1 * (k + 1))).pow(2).mean().backward()
            wrapped.step()
            wrapped.observe(m)
            out.append([float(g["lr"]) for g in wrapped.param_groups])
        return out

    model = _model()
    whole = torchsched.wrap(torch.optim.SGD(_param_groups(model, [0.1, 0.2])), spec)
    straight = run(model, whole, metrics)

    model = _model()
    first = torchsched.wrap(torch.optim.SGD(_param_groups(model, [0.1, 0.2])), spec)
    head = run(model, first, metrics[:7])
    saved = first.state_dict()
    resumed = torchsched.wrap(torch.optim.SGD(_param_groups(model, [0.1, 0.2])), spec)
    resumed.load_state_dict(saved)
    tail = run(model, resumed, metrics[7:], start=7)
    assert head + tail == straight


def test_a_refused_signal_state_changes_nothing() -> None:
    wrapped = torchsched.wrap(torch.optim.SGD(_model(1).parameters(), lr=0.1), S.plateau(patience=0))
    wrapped.observe(1.0)
    wrapped.observe(2.0)
    sd = wrapped.state_dict()
    bad = dict(sd)
    bad["torchsched"] = dict(sd["torchsched"], signals={"rules": [], "factors": torch.ones(1, 1)})
    lr = wrapped.get_last_lr()
    with pytest.raises(ValueError, match="signal"):
        wrapped.load_state_dict(bad)
    assert wrapped.get_last_lr() == lr
    wrapped.observe(3.0)
    assert wrapped.get_last_lr() == [lr[0] * 0.1]


def test_signal_state_survives_add_param_group() -> None:
    model = _model()
    wrapped = torchsched.wrap(torch.optim.SGD([{"params": model[0].parameters()}], lr=0.4), S.plateau(patience=0))
    wrapped.observe(1.0)
    wrapped.observe(2.0)
    assert wrapped.get_last_lr() == pytest.approx([0.04])
    wrapped.add_param_group({"params": model[1].parameters(), "lr": 1.0})
    assert wrapped.get_last_lr() == pytest.approx([0.04, 1.0])
    wrapped.observe(3.0)  # best is still 1.0: both reduce
    assert wrapped.get_last_lr() == pytest.approx([0.004, 0.1])


def test_float_lrs_on_another_device_than_the_state_are_refused_with_the_fix() -> None:
    meta = torch.nn.Linear(2, 2, device="meta")
    with pytest.raises(ValueError, match="tensor LRs"):
        torchsched.wrap(torch.optim.SGD(meta.parameters(), lr=0.1), S.plateau())


# ---- zero host syncs ---------------------------------------------------------------------------------

def _train(wrapped: Any, model: torch.nn.Module, steps: int, counter: SyncCounter | None) -> list[float]:
    """Warmup, cosine, plateau and the average-gradient rule, GradScaler skipping every 97th step."""
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=10)
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(steps, 8, 3, generator=gen)
    lrs: list[float] = []
    for k in range(steps):
        wrapped.zero_grad()
        loss = model(xs[k]).pow(2).mean()
        if k % 97 == 96:
            loss = loss * math.inf  # GradScaler finds infs and the fused optimizer skips the step
        scaler.scale(loss).backward()
        scaler.step(wrapped)
        scaler.update()
        wrapped.observe(loss.detach())
    lrs.extend(wrapped.get_last_lr())
    return lrs


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.AdamW(ps, lr=torch.tensor(1e-2), fused=True),
    lambda ps: torch.optim.SGD(ps, lr=torch.tensor(1e-2), momentum=0.9, fused=True),
], ids=["fused AdamW", "fused SGD"])
def test_a_thousand_steps_with_every_rule_and_gradscaler_skips_never_sync(make: Any) -> None:
    model = _model()
    spec = S.warmup(50) >> S.cosine(950) * S.plateau(patience=20, factor=0.5) * S.average_gradient(ema=0.9)
    wrapped = torchsched.wrap(make(model.parameters()), spec)
    lr_tensor = wrapped.param_groups[0]["lr"]
    with SyncCounter() as counter:
        _train(wrapped, model, 1000, counter)
    assert counter.count == 0, counter.ops
    assert wrapped.param_groups[0]["lr"] is lr_tensor  # filled in place, never replaced
    assert 0 < wrapped.last_step < 1000  # the skipped steps held the schedule
    rules = wrapped.state_dict()["torchsched"]["signals"]["rules"]
    assert float(rules[0]["level"][0]) < 1e-2  # the plateau rule reduced at least once
    assert all(math.isfinite(float(p.detach().abs().max())) for p in model.parameters())


def test_the_counter_counts() -> None:
    """The control: the ops the counter looks for are seen when the code does sync."""
    with SyncCounter() as counter:
        t = torch.tensor(2.0)
        float(t)
        bool(t > 1)
        torch.nonzero(t.reshape(1))
    assert counter.count >= 3, counter.ops


def test_a_thousand_drop_in_steps_with_plateau_and_gradscaler_skips_never_sync(monkeypatch: Any) -> None:
    """The drop-in way: torch's classes (warmup then cosine in a SequentialLR, and ReduceLROnPlateau fed the
    loss as a tensor) on a fused optimizer with a tensor LR, GradScaler skipping every 97th step. The plateau
    rule runs the device code a GPU metric runs (on the CPU it would read the metric where it lies)."""
    from torchsched import _signals
    from torchsched import lr_scheduler as L
    from torchsched import _torch_compat

    if not _torch_compat.PLATEAU_FILLS_TENSOR_LRS:
        pytest.skip("this torch's ReduceLROnPlateau replaces a reduced tensor LR by a float, and the twin follows it")
    monkeypatch.setattr(_signals, "CPU_FAST_PATH", False)
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(1e-2), fused=True)
    warm = L.LinearLR(opt, start_factor=0.01, total_iters=50)
    schedule = L.SequentialLR(opt, [warm, L.CosineAnnealingLR(opt, T_max=950)], milestones=[50])
    plateau = L.ReduceLROnPlateau(opt, patience=20, factor=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=10)
    xs = torch.randn(1000, 8, 3, generator=torch.Generator().manual_seed(0))
    lr_tensor = opt.param_groups[0]["lr"]
    with SyncCounter() as counter:
        for k in range(1000):
            opt.zero_grad()
            loss = model(xs[k]).pow(2).mean()
            if k % 97 == 96:
                loss = loss * math.inf
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            schedule.step()
            plateau.step(loss.detach())
    assert counter.count == 0, counter.ops
    assert opt.param_groups[0]["lr"] is lr_tensor
    assert "_plateau_device" in plateau.__dict__  # the rule ran on the device
    assert plateau.num_bad_epochs >= 0 and math.isfinite(float(lr_tensor))


def test_signal_state_saves_with_torch_save_and_loads_weights_only(tmp_path: Any) -> None:
    model = _model(1)
    spec = S.cosine(100) * S.plateau(patience=0) * S.average_gradient()
    wrapped = torchsched.wrap(torch.optim.SGD(model.parameters(), lr=0.1), spec)
    for k, m in enumerate([1.0, 2.0, 0.5]):
        wrapped.zero_grad()
        model(torch.full((2, 3), 0.1 * (k + 1))).sum().backward()
        wrapped.step()
        wrapped.observe(m)
    torch.save(wrapped.state_dict(), tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    other = torchsched.wrap(torch.optim.SGD(model.parameters(), lr=0.1), spec)
    other.load_state_dict(loaded)
    assert other.get_last_lr() == wrapped.get_last_lr()


def test_a_new_multiplier_keeps_the_plateau_factor() -> None:
    wrapped = torchsched.wrap(torch.optim.SGD(_param_groups(_model(), [0.2, 0.2])), S.plateau(patience=0))
    wrapped.observe(1.0)
    wrapped.observe(2.0)  # reduced: factor 0.1
    assert wrapped.get_last_lr() == pytest.approx([0.02, 0.02])
    wrapped.set_multiplier(1, 0.5)
    assert wrapped.get_last_lr() == pytest.approx([0.02, 0.01])
