"""A tiny timm ViT trained on random data with layer-wise LR decay, both ways torchsched offers.

1. ``torchsched.param_groups`` + ``torchsched.wrap``: the optimizer advances its own schedule.
2. The drop-in way: the same groups with the multipliers folded into ``'lr'`` (``scale_lr=True``) and
   ``torchsched.lr_scheduler.LambdaLR`` stepped as torch's would be.

Both are checked against timm itself: ``timm.optim.create_optimizer_v2(..., layer_decay=...)`` with timm's
``CosineLRScheduler``. A hook on the optimizer records the LR every parameter had when ``step()`` ran, and
every run, including one stopped halfway and resumed from a saved checkpoint, must use timm's LRs.

Run: ``python examples/timm_vit.py`` (needs timm; CPU, a few seconds). Exits 0 when every check holds.
"""

from __future__ import annotations

import io
import math
from typing import Any, Callable

import timm
import timm.optim
import timm.scheduler
import torch

import torchsched
from torchsched import schedules as S

STEPS, WARMUP, LR, WEIGHT_DECAY, LAYER_DECAY = 40, 5, 1e-3, 0.05, 0.75
# timm's CosineLRScheduler(t_initial=STEPS - WARMUP, warmup_t=WARMUP, warmup_lr_init=0, warmup_prefix=True)
SPEC = S.warmup(WARMUP) >> S.cosine(STEPS - WARMUP)

LrLog = list[dict[str, float]]  # one entry per optimizer step: parameter name -> the LR the step used


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=4, img_size=32, patch_size=8,
                             num_classes=10)


def record_lrs(model: torch.nn.Module, optimizer: torch.optim.Optimizer, log: LrLog) -> None:
    """Logs, before every ``optimizer.step()``, the LR each parameter is about to be updated with."""
    names = {id(p): n for n, p in model.named_parameters()}

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        log.append({names[id(p)]: float(g["lr"]) for g in opt.param_groups for p in g["params"]})

    optimizer.register_step_pre_hook(hook)


def train(model: torch.nn.Module, step: Callable[[], None], optimizer: torch.optim.Optimizer,
          start: int, stop: int) -> None:
    """Steps ``start..stop-1`` on random batches (batch t is the same in every run)."""
    for t in range(start, stop):
        g = torch.Generator().manual_seed(t)
        x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        step()
        assert math.isfinite(loss.item())


def timm_reference() -> LrLog:
    model = make_model()
    log: LrLog = []
    opt = timm.optim.create_optimizer_v2(model, "adamw", lr=LR, weight_decay=WEIGHT_DECAY, layer_decay=LAYER_DECAY)
    sched = timm.scheduler.CosineLRScheduler(opt, t_initial=STEPS - WARMUP, warmup_t=WARMUP, warmup_lr_init=0.0,
                                             warmup_prefix=True, lr_min=0.0, t_in_epochs=False)
    record_lrs(model, opt, log)
    updates = iter(range(1, STEPS + 1))

    def step() -> None:
        opt.step()
        sched.step_update(next(updates))  # timm's per-update call

    train(model, step, opt, 0, STEPS)
    return log


def checkpoint(obj: Any) -> Any:
    """A torch.save/torch.load round trip, as a checkpoint on disk would do."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def run_wrapped(stop_at: int | None = None, resume: Any = None) -> tuple[LrLog, Any]:
    """torchsched.param_groups + torchsched.wrap; trains to ``stop_at`` (then returns a checkpoint) or resumes."""
    model = make_model()
    log: LrLog = []
    groups = torchsched.param_groups(model, lr=LR, weight_decay=WEIGHT_DECAY, layer_decay=LAYER_DECAY)
    inner = torch.optim.AdamW(groups)
    record_lrs(model, inner, log)
    opt = torchsched.wrap(inner, SPEC)  # the one-line change: the optimizer now advances the schedule
    start = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        start = resume["step"]
    stop = STEPS if stop_at is None else stop_at
    train(model, opt.step, opt, start, stop)
    return log, checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": stop})


def run_drop_in(stop_at: int | None = None, resume: Any = None) -> tuple[LrLog, Any]:
    """The same groups with the multipliers in 'lr', and torchsched's LambdaLR (torch's API) running SPEC."""
    model = make_model()
    log: LrLog = []
    groups = torchsched.param_groups(model, lr=LR, weight_decay=WEIGHT_DECAY, layer_decay=LAYER_DECAY,
                                     scale_lr=True)
    opt = torch.optim.AdamW(groups)
    record_lrs(model, opt, log)
    sched = torchsched.lr_scheduler.LambdaLR(opt, SPEC)
    start = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        start = resume["step"]

    def step() -> None:
        opt.step()
        sched.step()

    stop = STEPS if stop_at is None else stop_at
    train(model, step, opt, start, stop)
    return log, checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(), "step": stop})


def assert_same_lrs(label: str, got: LrLog, want: LrLog) -> None:
    assert len(got) == len(want) == STEPS, (label, len(got), len(want))
    for t, (g, w) in enumerate(zip(got, want)):
        assert g.keys() == w.keys(), label
        for name, lr in w.items():
            assert math.isclose(g[name], lr, rel_tol=1e-12, abs_tol=1e-18), (label, t, name, g[name], lr)


def main() -> None:
    torch.set_num_threads(1)  # a model this small runs no faster on more, and steadier on one under load
    want = timm_reference()
    assert len({round(lr / LR, 9) for lr in want[-2].values()}) == 6  # six layer scales: the decay is in play
    for label, run in (("wrap", run_wrapped), ("drop-in", run_drop_in)):
        whole, _ = run()
        assert_same_lrs(label, whole, want)
        first, saved = run(stop_at=STEPS // 2)
        rest, _ = run(resume=saved)
        assert first + rest == whole, f"{label}: the resumed run used other LRs"  # bit for bit
        assert_same_lrs(f"{label}, resumed", first + rest, want)
        print(f"timm_vit: {label}: {STEPS} steps, LRs equal timm's layer-decay cosine, resume included")


if __name__ == "__main__":
    main()
