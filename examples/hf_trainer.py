"""A tiny GPT-2 trained with the Hugging Face ``Trainer`` on random tokens, both ways torchsched offers.

1. The drop-in way: ``torchsched.lr_scheduler.SequentialLR`` (linear warmup, then cosine) built on a plain
   AdamW, passed as ``Trainer(optimizers=(opt, sched))``. It must use the LRs torch's own classes give.
2. ``torchsched.wrap``: the optimizer advances its own schedule, and ``wrapped.scheduler()`` is what the
   Trainer gets as its scheduler: ``Trainer(optimizers=(wrapped, wrapped.scheduler()))``. Without a scheduler
   there, the Trainer would build its own ``LambdaLR`` on the wrapped optimizer, which torchsched refuses
   (``ScheduleConflictError``); the example checks that too.

A hook on the optimizer records the LR every step used. Each run trains 20 steps and saves a checkpoint at
step 10; a second Trainer resumes from it with ``trainer.train(resume_from_checkpoint=...)``. The LRs of
both, and the LRs the Trainer logs, must equal the schedule.

Run: ``python examples/hf_trainer.py`` (needs transformers and accelerate; CPU, offline, a few seconds).
Exits 0 when every check holds.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from typing import Any, Callable

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import torchsched
from torchsched import schedules as S

STEPS, WARMUP, LR, SEQ, BATCH = 20, 4, 1e-3, 16, 4
SPEC = S.warmup(WARMUP) >> S.cosine(STEPS - WARMUP)  # the wrapped run's schedule: factors of LR


def drop_in(lr_scheduler: Any, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """The drop-in run's scheduler; ``lr_scheduler`` is torchsched's module, or torch's for the reference."""
    return lr_scheduler.SequentialLR(
        opt, [lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=WARMUP),
              lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS - WARMUP)], milestones=[WARMUP])


def torch_lrs() -> list[float]:
    """The LRs torch's own classes give at steps 0..STEPS-1 (no training needed to know them)."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = drop_in(torch.optim.lr_scheduler, opt)
    lrs = []
    for _ in range(STEPS):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


class Tokens(torch.utils.data.Dataset):
    """Random token sequences; item i is the same in every run."""

    def __len__(self) -> int:
        return STEPS * BATCH

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.randint(0, 64, (SEQ,), generator=torch.Generator().manual_seed(i))
        return {"input_ids": ids, "labels": ids}


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=SEQ, n_embd=32, n_layer=2, n_head=2))


def record_lrs(optimizer: torch.optim.Optimizer, log: list[float]) -> None:
    """Logs, before every ``optimizer.step()``, the LR the step is about to use (every group has the same)."""

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        lrs = {float(g["lr"]) for g in opt.param_groups}
        assert len(lrs) == 1, lrs
        log.append(lrs.pop())

    optimizer.register_step_pre_hook(hook)


def trainer(out: str, model: torch.nn.Module, optimizers: tuple[Any, Any]) -> Trainer:
    args = TrainingArguments(output_dir=out, max_steps=STEPS, per_device_train_batch_size=BATCH,
                             save_strategy="steps", save_steps=STEPS // 2, logging_steps=1, report_to="none",
                             use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, seed=0)
    t = Trainer(model=model, args=args, train_dataset=Tokens(), optimizers=optimizers)
    t.remove_callback(transformers.PrinterCallback)  # the logs are checked, not printed
    return t


def run(out: str, make: Callable[[torch.nn.Module, list[float]], tuple[Any, Any]],
        resume: bool) -> tuple[list[float], list[float]]:
    """Trains (or resumes at step STEPS/2); returns the LRs the optimizer used and the LRs the Trainer logged."""
    model = make_model()
    used: list[float] = []
    t = trainer(out, model, make(model, used))
    t.train(resume_from_checkpoint=os.path.join(out, f"checkpoint-{STEPS // 2}") if resume else None)
    logged = [e["learning_rate"] for e in t.state.log_history if "learning_rate" in e]
    return used, logged


def make_drop_in(model: torch.nn.Module, used: list[float]) -> tuple[Any, Any]:
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    record_lrs(opt, used)
    return opt, drop_in(torchsched.lr_scheduler, opt)  # the one-line change: torchsched's classes


def make_wrapped(model: torch.nn.Module, used: list[float]) -> tuple[Any, Any]:
    inner = torch.optim.AdamW(model.parameters(), lr=LR)
    record_lrs(inner, used)
    wrapped = torchsched.wrap(inner, SPEC)
    return wrapped, wrapped.scheduler()  # the view: the Trainer steps it, logs it and checkpoints it


def assert_lrs(label: str, got: list[float], want: list[float]) -> None:
    assert len(got) == len(want), (label, len(got), len(want))
    for t, (g, w) in enumerate(zip(got, want)):
        assert math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-18), (label, t, g, w)


def check_conflict(out: str) -> None:
    """A wrapped optimizer with no scheduler: the Trainer's own LambdaLR is refused, not silently obeyed."""
    model = make_model()
    wrapped = torchsched.wrap(torch.optim.AdamW(model.parameters(), lr=LR), SPEC)
    try:
        trainer(out, model, (wrapped, None)).train()
    except torchsched.optim.ScheduleConflictError as e:
        assert "scheduler()" in str(e), e  # the message names the fix
    else:
        raise AssertionError("the Trainer's own scheduler on a wrapped optimizer went unnoticed")
    assert wrapped.last_step == 0, wrapped.last_step  # refused before any step


def main() -> None:
    torch.set_num_threads(1)  # a model this small runs no faster on more, and steadier on one under load
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    reference = {"drop-in": torch_lrs(), "wrap": [LR * SPEC(t) for t in range(STEPS)]}
    for label, make in (("drop-in", make_drop_in), ("wrap", make_wrapped)):
        want = reference[label]
        with tempfile.TemporaryDirectory() as out:
            whole, logged = run(out, make, resume=False)
            rest, logged_rest = run(out, make, resume=True)
        assert_lrs(label, whole, want)
        assert_lrs(f"{label}, resumed", rest, want[STEPS // 2:])
        assert rest == whole[STEPS // 2:], f"{label}: the resumed run used other LRs"  # bit for bit
        # The Trainer logs get_last_lr() read between optimizer.step() and scheduler.step(): for a torch
        # scheduler that is the LR the step just used, and the view must report the same.
        assert_lrs(f"{label}, logged", logged, want)
        # the resumed Trainer's history: the first half from the checkpoint, the second half logged afresh
        assert logged_rest == logged, (label, logged_rest, logged)
        print(f"hf_trainer: {label}: {STEPS} steps, LRs used and logged equal the schedule, resume included")
    with tempfile.TemporaryDirectory() as out:
        check_conflict(out)
    print("hf_trainer: wrap without a scheduler: the Trainer's own LambdaLR raises ScheduleConflictError")


if __name__ == "__main__":
    main()
